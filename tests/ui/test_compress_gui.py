"""The Compress dialog with real clicks and typing: int8 quantization of a trained digits CNN (the
table's accuracy is what onnxruntime gives on the written file), structured pruning whose smaller
project opens from the dialog, a result refused over the user's limit (nothing written), the
errors that keep a job from starting, and Cancel; screenshots (artifacts/screenshots/compress*.png)
for a person to look at."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import onnxruntime as ort
import pytest
import torch
from PySide6.QtCore import QPoint, Qt
from PySide6.QtGui import QPainter, QPixmap
from PySide6.QtTest import QTest
from PySide6.QtWidgets import QApplication, QMessageBox

from tests.ui.conftest import CNN, ROOT
from ui.compress import CompressDialog
from workbench.compiler import compile_graph
from workbench.compress.evaluate import load_eval_data
from workbench.project import Project, load_project, save_project
from workbench.training import Trainer

SHOTS = ROOT / "artifacts" / "screenshots"


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The digits CNN sample trained 3 epochs; its run is listed beside it (runs/digits_cnn/...)."""
    folder = tmp_path_factory.mktemp("compress")
    project = load_project(CNN)
    project.training["epochs"] = 3
    path = save_project(project, folder / "digits_cnn.json")
    torch.manual_seed(0)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # a shared machine: more threads only contend
    try:
        Trainer(load_project(path)).run()
    finally:
        torch.set_num_threads(threads)
    return path


def click(widget: Any, pos: QPoint | None = None) -> None:
    QTest.mouseClick(widget, Qt.MouseButton.LeftButton, Qt.KeyboardModifier.NoModifier,
                     pos if pos is not None else widget.rect().center())


def type_into(field: Any, text: str) -> None:
    """Replace a field's text as a user does: focus, select all, type."""
    field.setFocus()
    QTest.keyClick(field, Qt.Key.Key_A, Qt.KeyboardModifier.ControlModifier)
    QTest.keyClicks(field, text)


def choose(combo: Any, text: str) -> None:
    """Pick a combo box item by typing its first letters."""
    QTest.qWait(QApplication.keyboardInputInterval() + 50)  # a new search, not the end of the last one
    combo.setFocus()
    QTest.keyClicks(combo, text)
    assert combo.currentText().startswith(text), combo.currentText()


def open_dialog(window: Any, path: Path) -> CompressDialog:
    assert window.open_path(path)
    window.act_compress.trigger()
    dialog = window.compress_dialog
    assert dialog.isVisible()
    return dialog


def run(dialog: CompressDialog, qtbot: Any) -> dict[str, Any]:
    click(dialog.run_button)
    assert dialog.running, dialog.status.text()
    qtbot.waitUntil(lambda: not dialog.running, timeout=120_000)
    assert dialog.outcome is not None
    return dialog.outcome


def cells(dialog: CompressDialog) -> dict[str, list[str]]:
    t = dialog.table
    return {t.item(i, 0).text(): [t.item(i, j).text() for j in range(1, 5)] for i in range(t.rowCount())}


def over_window(window: Any, dialog: Any) -> QPixmap:
    """The 1280x800 window with the dialog drawn over its middle, as a user sees them (offscreen,
    each top-level window is grabbed on its own)."""
    picture = window.grab()
    painter = QPainter(picture)
    shot = dialog.grab()
    painter.drawPixmap((picture.width() - shot.width()) // 2, (picture.height() - shot.height()) // 2, shot)
    painter.end()
    return picture


def onnx_accuracy(path: Path, project: Project) -> float:
    """Validation accuracy of an ONNX file, computed here apart from the job."""
    data = load_eval_data(project, compile_graph(project.graph))
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    x, y = data.val
    out = session.run(None, {session.get_inputs()[0].name: x.numpy()})[0]
    return 100.0 * float((out.argmax(1) == y.numpy()).mean())


def test_int8_quantization_from_the_dialog(window: Any, qtbot: Any, trained: Path, tmp_path: Path) -> None:
    window.resize(1280, 800)
    dialog = open_dialog(window, trained)
    assert dialog.weights.currentData().endswith("last.safetensors")  # the run's checkpoint, found beside it
    assert Path(dialog.output.text()) == trained.with_name("digits_cnn_int8.onnx")
    choose(dialog.method, "Static")
    assert dialog.calibration.isVisibleTo(dialog) and not dialog.amount.isVisibleTo(dialog)
    type_into(dialog.calibration, "256")
    type_into(dialog.max_drop, "2")
    type_into(dialog.threads, "1")
    out = tmp_path / "small.onnx"
    type_into(dialog.output, str(out))
    outcome = run(dialog, qtbot)
    assert outcome["status"] == "ok", dialog.status.text()
    assert out.is_file() and "Done" in dialog.status.text()
    rows = cells(dialog)
    project = load_project(trained)
    assert rows["validation accuracy"][1] == f"{onnx_accuracy(out, project):.2f} %"
    assert rows["file size"][1] == f"{out.stat().st_size:,} B"
    assert "latency, batch 1" in rows and "latency, batch 64" in rows
    assert rows["latency, batch 64"][3].startswith("onnxruntime CPU, 1 thread;")  # the typed thread count
    assert "calibrated on 256 samples" in dialog.notes.toPlainText()  # the typed setting reached the job
    assert not dialog.open_button.isVisible()  # an ONNX file is not a project to open
    SHOTS.mkdir(parents=True, exist_ok=True)
    assert dialog.grab().save(str(SHOTS / "compress_dialog.png"))
    assert over_window(window, dialog).save(str(SHOTS / "compress_window.png"))


def test_structured_pruning_opens_the_smaller_project(window: Any, qtbot: Any, trained: Path, tmp_path: Path,
                                                      asker: Any) -> None:
    dialog = open_dialog(window, trained)
    choose(dialog.method, "Channel")
    assert dialog.amount.isVisibleTo(dialog) and dialog.finetune.isVisibleTo(dialog)
    assert not dialog.calibration.isVisibleTo(dialog)
    type_into(dialog.amount, "75")
    out = tmp_path / "pruned.json"
    type_into(dialog.output, str(out))
    assert dialog.options()["amount"] == 0.75
    assert run(dialog, qtbot)["status"] == "ok", dialog.status.text()
    t = dialog.layers
    layers = {t.item(i, 0).text(): t.item(i, 2).text() for i in range(t.rowCount())}
    assert layers == {"conv1": "16 -> 4", "conv2": "32 -> 8"}
    assert float(cells(dialog)["MACs per sample"][2].rstrip("x")) < 0.2
    assert dialog.open_button.isVisible()
    SHOTS.mkdir(parents=True, exist_ok=True)
    assert dialog.grab().save(str(SHOTS / "compress_pruned.png"))
    click(dialog.open_button)
    assert window.doc.project.path == out.resolve() and not dialog.isVisible()
    assert window.doc.graph.by_name("conv2").params["out_channels"] == 8


def test_a_refused_result_writes_nothing(window: Any, qtbot: Any, trained: Path, tmp_path: Path) -> None:
    dialog = open_dialog(window, trained)
    choose(dialog.method, "Magnitude")
    assert dialog.scope.isVisibleTo(dialog) and not dialog.finetune.isVisibleTo(dialog)
    type_into(dialog.amount, "97")
    type_into(dialog.max_drop, "0.5")
    out = tmp_path / "sparse.json"
    type_into(dialog.output, str(out))
    outcome = run(dialog, qtbot)
    assert outcome["status"] == "refused"
    assert "Refused" in dialog.status.text() and "nothing was written" in dialog.status.text()
    assert "refused, nothing written" in dialog.report_title.text()
    before, after = (float(v.rstrip(" %")) for v in cells(dialog)["validation accuracy"][:2])
    assert before - after > 0.5  # the measured drop the refusal is about is shown
    assert not out.exists() and not out.with_suffix(".safetensors").exists()


def test_what_keeps_a_job_from_starting_is_said(window: Any, qtbot: Any, trained: Path, tmp_path: Path,
                                                asker: Any) -> None:
    untrained = save_project(load_project(trained), tmp_path / "fresh.json")  # no runs, no weights
    dialog = open_dialog(window, untrained)
    assert dialog.weights.currentData() == "__choose__"
    click(dialog.run_button)
    assert not dialog.running and "No trained weights" in dialog.status.text()
    type_into(dialog.output, str(tmp_path / "mine.onnx"))
    dialog.close()
    dialog = open_dialog(window, trained)
    # another project: its own weights and output name, and none of the last one's messages
    assert Path(dialog.output.text()) == trained.with_name("digits_cnn_int8.onnx")
    assert dialog.weights.currentData().endswith("last.safetensors") and "No trained" not in dialog.status.text()
    type_into(dialog.max_drop, "lots")
    click(dialog.run_button)
    assert not dialog.running and "Refuse a drop over" in dialog.status.text()
    type_into(dialog.max_drop, "1")
    existing = tmp_path / "there.onnx"
    existing.write_bytes(b"keep me")
    type_into(dialog.output, str(existing))
    asker.answers = [QMessageBox.StandardButton.No]
    click(dialog.run_button)
    assert not dialog.running and asker.asked[-1][0] == "Replace files?"
    assert existing.read_bytes() == b"keep me"


@pytest.mark.slow
def test_cancel_stops_at_a_safe_point_and_writes_nothing(window: Any, qtbot: Any, trained: Path,
                                                         tmp_path: Path) -> None:
    dialog = open_dialog(window, trained)
    choose(dialog.method, "Channel")
    type_into(dialog.finetune, "200")
    out = tmp_path / "never.json"
    type_into(dialog.output, str(out))
    click(dialog.run_button)
    qtbot.waitUntil(lambda: "fine-tuning" in dialog.status.text(), timeout=60_000)
    click(dialog.cancel_button)  # asks the job to stop at its next safe point
    assert dialog.cancel_button.text() == "Stop Now"
    qtbot.waitUntil(lambda: not dialog.running, timeout=60_000)
    assert dialog.outcome is not None and dialog.outcome["status"] == "cancelled"
    assert "Cancelled" in dialog.status.text() and "nothing was written" in dialog.status.text()
    assert not out.exists() and not out.with_suffix(".safetensors").exists()


def test_stop_now_ends_the_job_at_once(window: Any, qtbot: Any, trained: Path, tmp_path: Path) -> None:
    dialog = open_dialog(window, trained)
    choose(dialog.method, "FP16")
    folder = tmp_path / "out"  # tmp_path holds the window's settings too
    folder.mkdir()
    out = folder / "never.onnx"
    type_into(dialog.output, str(out))
    click(dialog.run_button)
    click(dialog.cancel_button)
    assert dialog.running and "Stopping" in dialog.status.text()
    process = dialog.job.process
    click(dialog.cancel_button)
    assert not dialog.running and dialog.outcome["status"] == "cancelled"
    qtbot.waitUntil(lambda: not process.is_alive(), timeout=10_000)
    assert not list(folder.iterdir())


def test_each_setting_reaches_the_job(window: Any, trained: Path) -> None:
    """What is typed or chosen is what the job gets (the core's tests show each one changes what it
    does: tests/core/test_quantize.py, test_prune.py); a setting the method does not use is hidden
    and not sent."""
    dialog = open_dialog(window, trained)
    choose(dialog.method, "Channel")
    type_into(dialog.amount, "30")
    choose(dialog.criterion, "Batch")
    click(dialog.include_linear, QPoint(8, dialog.include_linear.height() // 2))  # on its box
    type_into(dialog.finetune, "4")
    type_into(dialog.max_drop, "1,5")  # a decimal comma is read too
    opts = dialog.options()
    assert opts == {"checkpoint": dialog.weights.currentData(), "threads": dialog.threads.value(), "amount": 0.3,
                    "criterion": "bn", "include_linear": True, "finetune_epochs": 4, "max_drop": 1.5}
    choose(dialog.method, "Magnitude")
    choose(dialog.scope, "the smallest in")
    assert not dialog.criterion.isVisibleTo(dialog) and dialog.scope.isVisibleTo(dialog)
    opts = dialog.options()
    assert opts["scope"] == "layer" and "criterion" not in opts and "finetune_epochs" not in opts
    choose(dialog.method, "Dynamic")
    assert not dialog.amount.isVisibleTo(dialog) and not dialog.calibration.isVisibleTo(dialog)
    assert dialog.options()["mode"] == "dynamic" and "amount" not in dialog.options()
    assert Path(dialog.output.text()).name == "digits_cnn_dynamic.onnx"  # the default name follows the method
