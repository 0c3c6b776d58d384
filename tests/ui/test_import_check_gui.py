"""The GUI's import shows the self-check's report and, when the import differs from the original,
asks before writing anything: the answer is clicked in the real message box."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper
from PySide6.QtCore import Qt, QTimer
from PySide6.QtTest import QTest
from PySide6.QtWidgets import QApplication, QMessageBox

from tests.ui.conftest import CNN


def chain(tmp: Path) -> Path:
    rng = np.random.default_rng(4)
    inits = [numpy_helper.from_array(rng.standard_normal((4, 5)).astype(np.float32), "fc.weight"),
             numpy_helper.from_array(rng.standard_normal(4).astype(np.float32), "fc.bias")]
    nodes = [helper.make_node("Gemm", ["x", "fc.weight", "fc.bias"], ["h"], transB=1, name="/fc/Gemm"),
             helper.make_node("Relu", ["h"], ["y"], name="/act/Relu")]
    graph = helper.make_graph(nodes, "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 5])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", 4])], inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.save(model, str(tmp / "chain.onnx"))
    return tmp / "chain.onnx"


@pytest.fixture
def wrong_and_in_process(monkeypatch: pytest.MonkeyPatch) -> None:
    """A broken converter (Relu mapped to Tanh) for the self-check to catch; the job runs in this
    process so that the broken converter is the one it uses."""
    import ui.jobs
    from workbench.importers import registry

    entries = registry._CONVERTERS[("", "Relu")]
    monkeypatch.setitem(registry._CONVERTERS, ("", "Relu"),
                        [registry._Entry(lambda node: registry.one("Tanh", node), 1, None), *entries[1:]])
    monkeypatch.setattr(ui.jobs, "run_with_progress", lambda parent, label, fn, *args: ("ok", fn(*args)))


def answer(texts: list[str], seen: list[str]) -> None:
    """Click, in the message box that comes up, the button labelled ``texts[0]``; then the next one."""

    def click() -> None:
        box = QApplication.activeModalWidget()
        if not isinstance(box, QMessageBox) or not box.isVisible():
            QTimer.singleShot(50, click)
            return
        seen.append(box.text())
        button = next(b for b in box.buttons() if b.text().replace("&", "") == texts[0])
        texts.pop(0)
        QTest.mouseClick(button, Qt.MouseButton.LeftButton)
        if texts:
            QTimer.singleShot(50, click)

    QTimer.singleShot(50, click)


def test_a_mismatch_asks_and_dont_write_writes_nothing(window: Any, tmp_path: Path, wrong_and_in_process) -> None:
    window.open_path(CNN)
    window.ask = window._message_box  # the real message boxes
    seen: list[str] = []
    answer(["Don't write"], seen)
    assert not window.import_onnx(chain(tmp_path), tmp_path / "imported.json")
    assert "DIFFERS from the original" in seen[0] and "/act/Relu" in seen[0] and "Write the project anyway?" in seen[0]
    assert not (tmp_path / "imported.json").exists() and not (tmp_path / "imported.safetensors").exists()
    assert "nothing was written" in window.statusBar().currentMessage()
    assert window.doc.project.path == CNN.resolve()


def test_a_mismatch_written_anyway_opens_with_the_report(window: Any, tmp_path: Path, wrong_and_in_process) -> None:
    window.open_path(CNN)
    window.ask = window._message_box
    seen: list[str] = []
    answer(["Write anyway", "OK"], seen)
    assert window.import_onnx(chain(tmp_path), tmp_path / "imported.json")
    assert "DIFFERS" in seen[0] and "DIFFERS" in seen[1]  # the question, then the report of what was written
    assert window.doc.project.path == (tmp_path / "imported.json").resolve()
    assert "DIFFERS from the original" in window.statusBar().currentMessage()


def test_a_matching_import_shows_its_check(window: Any, asker: Any, tmp_path: Path) -> None:
    window.open_path(CNN)
    assert window.import_onnx(chain(tmp_path), tmp_path / "imported.json")  # the real job, in a worker process
    title, text = asker.asked[-1]
    assert title == "ONNX import checked" and "matches the original" in text and "batch 3" in text
    assert "checked against the original" in window.statusBar().currentMessage()
