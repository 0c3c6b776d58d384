"""The Explain view with real clicks: a short real training of the digits CNN, a click on a cell of
the confusion matrix explains that cell's samples (a job in a spawned process), a click on a
sample and on a canvas node shows the node's activations, Grad-CAM at a clicked node, errors and
Cancel; a screenshot at 1280x800 (artifacts/screenshots/explain.png) for a person to look at."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PySide6.QtCore import QPoint, QPointF, Qt
from PySide6.QtGui import QImage
from PySide6.QtTest import QTest

from tests.ui.conftest import CNN, ROOT, node_point
from workbench.project import load_project, save_project

pytest.importorskip("captum.attr", reason="the explain extra (Captum) is not installed")

SHOTS = ROOT / "artifacts" / "screenshots"


def short_cnn(tmp_path: Path, epochs: int = 3) -> Path:
    project = load_project(CNN)
    project.training["epochs"] = epochs
    return save_project(project, tmp_path / "digits_cnn.json")


def click(widget, pos: QPoint | None = None) -> None:
    QTest.mouseClick(widget, Qt.MouseButton.LeftButton, Qt.KeyboardModifier.NoModifier,
                     pos if pos is not None else widget.rect().center())


def click_node(window, name: str) -> None:
    click(window.view.viewport(), node_point(window, window.doc.graph.by_name(name).id))


def choose(combo, text: str) -> None:
    """Pick an item of a combo box with the keyboard, as a user types its first letters."""
    combo.setFocus()
    QTest.keyClicks(combo, text)
    assert combo.currentText().lower().startswith(text.lower()), combo.currentText()


def train(window, qtbot, tmp_path: Path) -> np.ndarray:
    """A real short run from the GUI; returns the confusion matrix it drew."""
    assert window.open_path(short_cnn(tmp_path))
    click(window.training.train_button)
    qtbot.waitUntil(lambda: not window.training.running, timeout=180_000)
    assert "finished" in window.training.status.text()
    bar = window.training.tabs.tabBar()
    window.show_training()
    click(bar, bar.tabRect(2).center())  # Results
    qtbot.waitUntil(lambda: window.training.results_plot.matrix is not None, timeout=10_000)
    return np.asarray(window.training.results_plot.matrix)


def cell_point(plot, true: int, predicted: int) -> QPoint:
    vb = plot.getPlotItem().getViewBox()
    scene = vb.mapViewToScene(QPointF(predicted, true))
    return plot.mapFromScene(scene)


def wait_explained(qtbot, view) -> None:
    qtbot.waitUntil(lambda: not view.running, timeout=120_000)


def test_confusion_cell_sample_node_and_gradcam(window, qtbot, tmp_path: Path) -> None:
    window.resize(1280, 800)
    cm = train(window, qtbot, tmp_path)
    off = cm - np.diag(np.diag(cm))
    true, predicted = divmod(int(off.argmax()), len(cm))
    assert off[true, predicted] > 0, "the short run left no mistake to look at"
    run_last = str(Path(window.training.run_dir) / "checkpoints" / "last.safetensors")
    assert window.explain.weights.currentData() == run_last  # the run just finished is what gets explained
    plot = window.training.results_plot
    qtbot.wait(100)  # let the plot lay out at its final size
    click(plot.viewport(), cell_point(plot, true, predicted))
    view = window.explain
    assert window.explain_dock.isVisible() and view.running
    wait_explained(qtbot, view)
    e = view.explanation
    assert e is not None, view.status.text()
    # the samples of that cell, with the weights the matrix came from, explained for what the model said
    assert len(e.indices) == min(16, int(cm[true, predicted]))
    assert set(e.labels) == {true} and set(e.predicted) == {predicted} and e.targets == e.predicted
    assert view.weights.currentData() == run_last and "The matrix shows" not in view.status.text()
    assert len(view.tiles) == len(e.indices) and view.chosen == 0
    assert not view.tiles[0].picture.pixmap().isNull()

    # a sample, then a node on the canvas: its activations for that sample
    last = len(view.tiles) - 1
    click(view.tiles[last])
    assert view.chosen == last
    click_node(window, "conv1")
    assert view.node.text() == "conv1"
    assert "conv1" in view.activation_title.text() and "[N, 16, 8, 8]" in view.activation_title.text()
    assert f"#{e.indices[last]}" in view.activation_title.text()
    assert not view.activation_image.pixmap().isNull()
    window.show_explain()
    qtbot.wait(200)
    SHOTS.mkdir(parents=True, exist_ok=True)
    path = SHOTS / "explain.png"
    assert window.grab().save(str(path))
    img = QImage(str(path))
    assert (img.width(), img.height()) == (1280, 800)

    # Grad-CAM at a node clicked on the canvas, the method chosen from the keyboard
    click_node(window, "conv2")
    choose(view.method, "Grad")
    click(view.explain_button)
    wait_explained(qtbot, view)
    e = view.explanation
    assert e.method == "gradcam" and e.node == "conv2" and e.layer_maps.shape[1:] == (4, 4)
    assert "Grad-CAM at conv2" in view.title.text()

    # a typed node that does not exist: the error is shown, nothing breaks, the maps stay
    view.node.clear()
    click(view.node)
    QTest.keyClicks(view.node, "conv9")
    click(view.explain_button)
    wait_explained(qtbot, view)
    assert 'no node &quot;conv9&quot;' in view.status.text() and view.explanation is e

    # a cell whose count the weights do not reproduce (a matrix older than the checkpoint) is said so
    view.node.clear()
    view.show_cell(true, predicted, window.training.run_dir, count=int(cm[true, predicted]) + 1)
    wait_explained(qtbot, view)
    assert "The matrix shows" in view.status.text()


def with_weights(tmp_path: Path) -> Path:
    """The short CNN project with a weights file of its own (no run)."""
    from workbench.compiler import compile_graph
    from workbench.weights import save_weights

    path = short_cnn(tmp_path)
    project = load_project(path)
    save_weights(compile_graph(project.graph).module, tmp_path / "digits_cnn.safetensors")
    doc = json.loads(path.read_text())
    doc["weights"] = "digits_cnn.safetensors"
    path.write_text(json.dumps(doc))
    return path


def test_explain_and_cancel_from_index_choice(window, qtbot, tmp_path: Path) -> None:
    """Without a run: the project's weights, samples typed by index, a job cancelled."""
    assert window.open_path(with_weights(tmp_path))
    window.show_explain()
    view = window.explain
    assert view.weights.currentText().startswith("project weights")
    click(view.indices)
    QTest.keyClicks(view.indices, "3, 7-8")
    choose(view.method, "Sal")
    click(view.explain_button)
    wait_explained(qtbot, view)
    assert view.explanation is not None and view.explanation.indices == [3, 7, 8], view.status.text()

    choose(view.method, "Int")  # integrated gradients on many samples: long enough to cancel
    view.indices.clear()
    view.count.setFocus()
    view.count.selectAll()
    QTest.keyClicks(view.count, "64")
    click(view.explain_button)
    job = view.job
    assert job is not None
    click(view.cancel_button)
    assert not view.running and "Cancelled" in view.status.text()
    qtbot.waitUntil(lambda: not job.process.is_alive(), timeout=10_000)
    assert view.explain_button.isEnabled()


def test_nodes_inside_a_block_are_addressed_through_the_instance(window, qtbot) -> None:
    assert window.open_path(ROOT / "samples" / "digits_resnet.json")
    view = window.explain
    click_node(window, "block2")
    assert view.node.text() == "block2"
    window.blocks.open_block(window.doc.graph.by_name("block2").id)
    click_node(window, "conv1")
    assert view.node.text() == "block2/conv1"


def test_the_controls_make_the_request(window, tmp_path: Path) -> None:
    """Every control reaches the job's request (the core tests show each setting changes the maps)."""
    assert window.open_path(short_cnn(tmp_path))
    window.show_explain()
    view = window.explain
    click(view.explain_button)
    assert not view.running and "No trained weights" in view.status.text()
    assert window.open_path(with_weights(tmp_path / "w"))
    choose(view.split, "tr")
    click(view.indices)
    QTest.keyClicks(view.indices, "4-6, 9")
    choose(view.true_class, "7")
    choose(view.predicted_class, "2")
    click(view.misclassified)
    choose(view.method, "Occ")
    click(view.node)
    QTest.keyClicks(view.node, "conv2")
    choose(view.target, "5")
    view.count.setFocus()
    view.count.selectAll()
    QTest.keyClicks(view.count, "9")
    r = view._request()
    assert (r.choice.split, r.choice.indices, r.choice.label, r.choice.predicted, r.choice.misclassified,
            r.choice.count) == ("train", [4, 5, 6, 9], 7, 2, True, 9)
    assert (r.options.method, r.options.node, r.options.target) == ("occlusion", "conv2", 5)
    assert r.checkpoint is None and json.loads(r.project_json)["name"] == "Digits CNN"
    view.indices.clear()
    QTest.keyClicks(view.indices, "4-x")
    click(view.explain_button)
    assert not view.running and "not an index" in view.status.text()  # refused before any job starts


def test_token_models_show_each_token_on_its_colour(window, tmp_path: Path) -> None:
    import torch

    from workbench.analysis.activations import SampleChoice, load_model, select_samples
    from workbench.analysis.explain import ExplainOptions, explain
    from workbench.compiler import compile_graph
    from workbench.weights import save_checkpoint

    project = load_project(ROOT / "samples" / "char_language_model.json")
    torch.manual_seed(0)
    ckpt = save_checkpoint(tmp_path / "lm.safetensors", compile_graph(project.graph).module, None, {})
    model = load_model(project, ckpt)
    idx, x, labels = select_samples(model, SampleChoice(count=2))
    e = explain(model, x, ExplainOptions("saliency"), idx, labels, "val")
    view = window.explain
    view.show_explanation(e)
    text = view.tiles[0].picture.text()
    assert text.count("<span") == x.shape[1] and "background-color:#" in text
    assert "time step 47" in view.title.text()
