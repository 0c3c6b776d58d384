"""Training from the GUI on several processes: the spin box, torchrun under the worker, rank 0's
events in the same dashboard, equal to a one-process run."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PySide6.QtCore import Qt
from PySide6.QtTest import QTest

from tests.ui.test_training_gui import tiny_project
from workbench.project import load_project
from workbench.training import Trainer


@pytest.mark.slow  # two torchrun processes beside the GUI: about a minute on 2 busy cores
def test_run_on_two_processes_streams_rank_0_into_the_dashboard(window, qtbot, tmp_path: Path) -> None:
    path = tiny_project(tmp_path, epochs=2)
    window.open_path(path)
    t = window.training
    t.processes.setFocus()
    t.processes.selectAll()
    QTest.keyClicks(t.processes, "2")
    QTest.keyClick(t.processes, Qt.Key.Key_Tab)
    assert t.processes.value() == 2
    QTest.mouseClick(t.train_button, Qt.MouseButton.LeftButton)
    assert t.running
    qtbot.waitUntil(lambda: not t.running, timeout=180_000)
    assert "finished" in t.status.text(), t.status.text()
    assert t.train_loss.n == 2 * 20 and t.val_loss_series.n == 2
    run = next((tmp_path / "runs" / "blobs").iterdir())
    assert json.loads((run / "summary.json").read_text())["distributed"]["world_size"] == 2
    t.grab().save(str(tmp_path / "processes.png"))

    one = Trainer(load_project(path), {"device": "cpu"}, run_dir=tmp_path / "one").run()
    assert one["status"] == "finished"
    expected = [json.loads(ln)["loss"] for ln in (tmp_path / "one" / "metrics.jsonl").read_text().splitlines()
                if json.loads(ln)["type"] == "batch"]
    assert np.allclose(t.train_loss.y[:t.train_loss.n], expected, atol=1e-5)
