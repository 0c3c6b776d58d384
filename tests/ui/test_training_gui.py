"""Training from the GUI: real buttons, a real worker process, live plots, runs panel."""

from __future__ import annotations

from pathlib import Path

from PySide6.QtCore import QPoint, Qt
from PySide6.QtTest import QTest

from tests.ui.conftest import drop_layer
from workbench.builder import GraphBuilder
from workbench.config import DATA_FIELDS, TRAINING_FIELDS, validate_section
from workbench.project import Project, save_project


def tiny_project(tmp_path: Path, epochs: int) -> Path:
    b = GraphBuilder()
    x = b.input((8,), name="features")
    h = b.layer("ReLU", b.layer("Linear", x, out_features=16, name="hidden"), name="act")
    b.output(b.layer("Linear", h, out_features=4, name="head"), name="logits")
    b.auto_layout()
    project = Project(b.graph, "Blobs", data=validate_section(DATA_FIELDS, {"dataset": "synthetic_blobs",
                                                                          "num_samples": 400, "batch_size": 16}),
                      training=validate_section(TRAINING_FIELDS, {"epochs": epochs, "lr": 0.01}))
    return save_project(project, tmp_path / "blobs.json")


def test_train_from_the_gui_plots_points_and_lists_the_run(window, qtbot, tmp_path: Path) -> None:
    window.open_path(tiny_project(tmp_path, epochs=3))
    QTest.mouseClick(window.training.train_button, Qt.MouseButton.LeftButton)
    assert window.training.running
    qtbot.waitUntil(lambda: not window.training.running, timeout=90_000)
    t = window.training
    assert "finished" in t.status.text()
    assert t.train_loss.n == 3 * 20  # every step reached the plot
    assert t.val_loss_series.n == 3 and t.metric_series["val_accuracy"].n == 3
    assert t.grad_series["hidden"].n > 0 and t.weight_series["head"].n > 0
    x, _y = t.train_loss.curve.getData()
    assert len(x) > 0
    assert window.runs.table.rowCount() == 1 and window.runs.table.item(0, 1).text() == "finished"
    csv = t.export_csv(tmp_path / "m.csv").read_text().splitlines()
    assert len(csv) == 4 and "val_accuracy" in csv[0]
    assert t.export_png(tmp_path / "p.png").stat().st_size > 1000
    # load the run's weights into the project (for export)
    window.runs.table.selectRow(0)
    assert window.runs.load_weights_of_current()
    assert window.doc.project.weights == "blobs.safetensors" and (tmp_path / "blobs.safetensors").exists()
    assert window.isWindowModified()


def test_stop_button_stops_with_a_checkpoint(window, qtbot, tmp_path: Path) -> None:
    window.open_path(tiny_project(tmp_path, epochs=500))
    QTest.mouseClick(window.training.train_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: window.training.train_loss.n > 5, timeout=60_000)
    QTest.mouseClick(window.training.stop_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: not window.training.running, timeout=60_000)
    assert "stopped" in window.training.status.text()
    runs = list((tmp_path / "runs" / "blobs").iterdir())
    assert (runs[0] / "checkpoints" / "last.safetensors").exists()


def test_a_killed_worker_is_reported_and_the_editor_lives_on(window, qtbot, tmp_path: Path) -> None:
    window.open_path(tiny_project(tmp_path, epochs=500))
    QTest.mouseClick(window.training.train_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: window.training.train_loss.n > 5, timeout=60_000)
    window.training.process.kill()
    qtbot.waitUntil(lambda: not window.training.running, timeout=30_000)
    assert "the training process was killed" in window.training.status.text()
    assert window.training.train_button.isEnabled()
    n = len(window.doc.graph)
    drop_layer(window, "ReLU", QPoint(300, 300))  # the editor still works
    assert len(window.doc.graph) == n + 1


def test_the_gui_refuses_to_train_a_broken_graph(window, tmp_path: Path) -> None:
    window.open_path(tiny_project(tmp_path, epochs=1))
    g = window.doc.graph
    window.doc.undo_stack.push(__import__("ui.commands", fromlist=["x"]).RemoveNodesCommand(g, [g.by_name("act").id]))
    assert not window.training.start()
    assert "Fix the graph first" in window.training.status.text()
    assert window.training.process is None
