"""The training dashboard shows one run at a time, names it, and starts every run clean;
opening another project while a run streams asks what to do with it (real worker processes)."""

from __future__ import annotations

from pathlib import Path

from PySide6.QtCore import QPoint, QPointF, Qt
from PySide6.QtGui import QWheelEvent
from PySide6.QtTest import QTest
from PySide6.QtWidgets import QApplication, QMessageBox

from tests.ui.conftest import CNN
from tests.ui.test_training_gui import tiny_project

B = QMessageBox.StandardButton
LEFT, NO = Qt.MouseButton.LeftButton, Qt.KeyboardModifier.NoModifier


def legend_names(plot) -> list[str]:
    return [label.text for _sample, label in plot.getPlotItem().legend.items]


def zoom(plot) -> None:
    """Click a plot (it takes the focus) and turn the wheel over it."""
    vp = plot.viewport()
    QTest.mouseClick(vp, LEFT, NO, vp.rect().center())
    pos = QPointF(vp.rect().center())
    event = QWheelEvent(pos, QPointF(vp.mapToGlobal(pos.toPoint())), QPoint(), QPoint(0, 120),
                        Qt.MouseButton.NoButton, NO, Qt.ScrollPhase.NoScrollPhase, False)
    QApplication.sendEvent(vp, event)


def auto_ranging(plot) -> bool:
    return all(plot.getPlotItem().getViewBox().autoRangeEnabled())


def click_train(window) -> None:
    QTest.mouseClick(window.training.train_button, LEFT)
    assert window.training.running


def test_each_run_starts_clean_and_the_dashboard_names_project_and_run(window, qtbot, tmp_path: Path) -> None:
    window.open_path(tiny_project(tmp_path, epochs=2))
    t = window.training
    assert "blobs.json" in t.title.text() and "no run yet" in t.title.text()
    click_train(window)
    qtbot.waitUntil(lambda: not t.running, timeout=90_000)
    first = Path(t.run_dir).name
    assert "blobs.json" in t.title.text() and first in t.title.text()
    assert legend_names(t.metric_plot) and t.results_image.image is not None and t.progress.value() > 0
    assert t.layer_list.count() > 0
    t.generated.appendPlainText("text from an earlier run")
    zoom(t.loss_plot)
    assert not auto_ranging(t.loss_plot)
    click_train(window)  # the second run: everything of the first is gone at once
    assert t.train_loss.n == 0 and len(t.train_loss.curve.getData()[0] or []) == 0
    assert legend_names(t.metric_plot) == [] and t.metric_series == {}
    assert legend_names(t.loss_plot) == ["train (per step)", "validation"]
    assert t.results_image.image is None and t.results_plot.getPlotItem().titleLabel.text == "Results"
    assert t.generated.toPlainText() == "" and t.layer_list.count() == 0
    assert t.progress.value() == 0 and t.history == [] and t.run_dir is None
    assert auto_ranging(t.loss_plot)
    assert "blobs.json" in t.title.text() and "starting a run" in t.title.text()
    qtbot.waitUntil(lambda: not t.running, timeout=90_000)
    second = Path(t.run_dir).name
    assert second != first and second in t.title.text() and first not in t.title.text()
    assert t.val_loss_series.n == 2  # this run's epochs only


def start_long_run(window, qtbot, tmp_path: Path) -> Path:
    project = tiny_project(tmp_path, epochs=500)
    window.open_path(project)
    click_train(window)
    qtbot.waitUntil(lambda: window.training.train_loss.n > 5, timeout=60_000)
    return project


def test_opening_another_project_while_a_run_streams_can_stop_the_run(window, qtbot, asker, tmp_path: Path) -> None:
    start_long_run(window, qtbot, tmp_path)
    t = window.training
    asker.answers = [B.Abort]
    assert window.open_path(CNN)
    title, text = asker.asked[-1]
    assert title == "A run is training" and "blobs.json" in text and "Open digits_cnn.json" in text
    assert asker.labels[-1] == {B.Abort: "Stop the run", B.Ignore: "Keep it running", B.Cancel: "Cancel"}
    assert window.doc.project.path == CNN.resolve()
    qtbot.waitUntil(lambda: not t.running, timeout=60_000)
    assert "stopped" in t.status.text()
    assert "blobs.json" in t.title.text()  # the dashboard still says whose run it shows
    (run,) = (tmp_path / "runs" / "blobs").iterdir()
    assert (run / "checkpoints" / "last.safetensors").exists()


def test_opening_another_project_while_a_run_streams_can_keep_it_in_the_background(
        window, qtbot, asker, tmp_path: Path) -> None:
    start_long_run(window, qtbot, tmp_path)
    t = window.training
    (run,) = (tmp_path / "runs" / "blobs").iterdir()
    process = t.process
    asker.answers = [B.Ignore]
    assert window.open_path(CNN)
    assert window.doc.project.path == CNN.resolve()
    # the dashboard lets go of it: clean, named after the open project, ready to train it
    assert not t.running and t.train_loss.n == 0 and t.train_button.isEnabled()
    assert "digits_cnn.json" in t.title.text() and "no run yet" in t.title.text()
    assert [b.process for b in t.background] == [process] and process.alive
    # it goes on training: its metrics file keeps growing
    lines = len((run / "metrics.jsonl").read_text().splitlines())
    qtbot.waitUntil(lambda: len((run / "metrics.jsonl").read_text().splitlines()) > lines + 20, timeout=60_000)
    assert t.train_loss.n == 0  # and none of it reaches the dashboard
    # its end is reported (here: stopped when the window closes)
    t.shutdown()
    qtbot.waitUntil(lambda: not t.background, timeout=60_000)
    assert "The background run of blobs.json stopped" in window.statusBar().currentMessage()
    assert (run / "checkpoints" / "last.safetensors").exists()


def test_opening_another_project_while_a_run_streams_can_be_cancelled(window, qtbot, asker, tmp_path: Path) -> None:
    project = start_long_run(window, qtbot, tmp_path)
    t = window.training
    asker.answers = [B.Cancel]
    assert not window.open_path(CNN)
    assert asker.asked[-1][0] == "A run is training"
    assert window.doc.project.path == project and t.running  # nothing changed
    n = t.train_loss.n
    qtbot.waitUntil(lambda: t.train_loss.n > n + 5, timeout=60_000)  # still streaming to the dashboard
    QTest.mouseClick(t.stop_button, LEFT)
    qtbot.waitUntil(lambda: not t.running, timeout=60_000)
