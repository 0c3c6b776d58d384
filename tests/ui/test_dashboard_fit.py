"""The training dashboard fits a 1280x800 window and explains what it shows (issue 15, item 3).

Real runs of the samples in a worker process; real key presses, clicks and mouse moves."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PySide6.QtCore import QPoint, QPointF, Qt
from PySide6.QtGui import QColor, QPalette
from PySide6.QtTest import QTest
from PySide6.QtWidgets import QApplication, QGraphicsTextItem, QWidget

from tests.ui.conftest import CNN, ROOT, drop_layer
from tests.ui.test_fields import type_text
from ui.plot_grid import MIN_PLOT_HEIGHT, MIN_PLOT_WIDTH, PlotGrid
from ui.plots import PALETTE, Plot, curve, format_value

LEFT, NO = Qt.MouseButton.LeftButton, Qt.KeyboardModifier.NoModifier


def sample_with_epochs(tmp_path: Path, name: str, epochs: int) -> Path:
    text = (ROOT / "samples" / f"{name}.json").read_text()
    path = tmp_path / f"{name}.json"
    path.write_text(text.replace('"epochs": 20', f'"epochs": {epochs}').replace('"epochs": 40', f'"epochs": {epochs}'))
    return path


def record_events(panel: Any) -> list[dict[str, Any]]:
    """Every event the dashboard handles, as the worker sent it."""
    events: list[dict[str, Any]] = []
    handle = panel.handle

    def recording(e: dict[str, Any]) -> None:
        events.append(e)
        handle(e)

    panel.handle = recording
    return events


def train_with_f5(window: Any, qtbot: Any) -> None:
    """F5 on the canvas (Run > Train), then wait for the run to end."""
    window.view.setFocus()
    QTest.keyClick(window.view, Qt.Key.Key_F5)
    assert window.training.running
    qtbot.waitUntil(lambda: not window.training.running, timeout=120_000)
    assert "finished" in window.training.status.text(), window.training.status.text()


def click_tab(window: Any, title: str) -> None:
    tabs = window.training.tabs
    index = next(i for i in range(tabs.count()) if tabs.tabText(i) == title)
    bar = tabs.tabBar()
    QTest.mouseClick(bar, LEFT, NO, bar.tabRect(index).center())
    assert tabs.currentIndex() == index


def whole(widget: QWidget) -> bool:
    """On screen and not cut by a scroll area, a dock or the window's edge: inside every ancestor."""
    if not widget.isVisible():
        return False
    parent = widget.parentWidget()
    while parent is not None:
        rect = widget.rect().translated(widget.mapTo(parent, QPoint(0, 0)))
        if not parent.rect().contains(rect):
            return False
        parent = parent.parentWidget()
    return True


def in_view(plot: Any, item: Any) -> bool:
    """A graphics item of a plot lies inside the plot widget (not cut at its edge); a text item's
    empty document margin may stick out."""
    rect = plot.mapFromScene(item.sceneBoundingRect()).boundingRect()
    if isinstance(item, QGraphicsTextItem):
        m = int(item.document().documentMargin())
        rect = rect.adjusted(m, m, -m, -m)
    return plot.viewport().rect().contains(rect)


def check_plot_reads(plot: Any) -> None:
    item = plot.getPlotItem()
    assert whole(plot), f"{plot.title()!r} is cut off"
    assert plot.width() >= MIN_PLOT_WIDTH - 1 and plot.height() >= MIN_PLOT_HEIGHT - 1, plot.title()
    assert in_view(plot, item.titleLabel), f"the title of {plot.title()!r} is cut"
    for side in ("left", "bottom"):
        axis = item.getAxis(side)
        if axis.isVisible() and axis.labelText:
            assert in_view(plot, axis.label), f"the {side} axis label of {plot.title()!r} is cut"
    legend = item.legend
    if legend is not None and legend.items:
        box = legend.sceneBoundingRect()
        assert not box.intersects(item.getViewBox().sceneBoundingRect()), f"the legend of {plot.title()!r} covers data"
        assert in_view(plot, legend), f"the legend of {plot.title()!r} is cut"


def move_to_data(plot: Any, x: float, y: float) -> QPoint:
    """Move the mouse over the plot's point (x, y) in data coordinates; returns the viewport position."""
    scene = plot.getPlotItem().getViewBox().mapViewToScene(QPointF(x, y))
    pos = plot.mapFromScene(scene)
    QTest.mouseMove(plot.viewport(), pos)
    return pos


def test_a_run_fits_1280x800_with_whole_plots_values_under_the_pointer_and_a_readable_confusion_matrix(
        window, qtbot, tmp_path: Path) -> None:
    window.resize(1280, 800)
    t = window.training
    window.open_path(sample_with_epochs(tmp_path, "digits_cnn", 2))
    events = record_events(t)
    train_with_f5(window, qtbot)
    qtbot.wait(100)  # the last layout pass

    # every plot whole, the run controls visible, titles and axis labels inside, legends off the data
    for w in (t.train_button, t.pause_button, t.stop_button, t.progress, t.device):
        assert whole(w), w
    for title in ("Curves", "Layers", "Results"):
        click_tab(window, title)
        qtbot.wait(50)
        plots = [p for p in t.plots() if p.isVisibleTo(t.tabs.currentWidget())]
        assert plots
        for plot in plots:
            check_plot_reads(plot)
        for w in (t.train_button, t.stop_button, t.progress):
            assert whole(w)
    assert not t.tabs.isTabVisible(t.tabs.indexOf(t.generated))  # a CNN writes no text

    # the confusion matrix: counts in the cells, class names on labelled axes, exactly the matrix, a colour bar
    (validation,) = [e for e in events if e["type"] == "validation" and e["epoch"] == 2]
    cm = np.asarray(validation["confusion"])
    plot = t.results_plot
    assert plot.isVisible()
    assert np.array_equal(plot.counts.counts, cm) and np.array_equal(plot.matrix, cm)
    item = plot.getPlotItem()
    assert item.getAxis("left").labelText == "true class" and item.getAxis("bottom").labelText == "predicted class"
    names = [str(c) for c in validation["classes"]]
    for side in ("left", "bottom"):
        ((ticks),) = item.getAxis(side)._tickLevels
        assert [label for _pos, label in ticks] == names
    (x0, x1), (y0, y1) = item.getViewBox().viewRange()
    n = len(cm)
    assert (x0, x1) == pytest.approx((-0.5, n - 0.5), abs=1e-6)
    assert (y0, y1) == pytest.approx((-0.5, n - 0.5), abs=1e-6)
    assert item.getViewBox().yInverted()  # true class 0 in the top row
    assert not item.getAxis("bottom").grid and not item.getAxis("left").grid
    assert plot.colorbar.scene() is plot.scene() and plot.colorbar.isVisible()
    assert plot.colorbar.getAxis("right").labelText == "share of true class"
    assert f"{int(np.trace(cm)):,} of {int(cm.sum()):,} right" in plot.title()
    move_to_data(plot, 3, 5)  # hovering a cell tells its count
    assert f"true 5, predicted 3: {int(cm[5, 3])}" in plot.hover_text()

    # hovering a curve shows the step and each curve's value there; leaving hides it
    click_tab(window, "Curves")
    qtbot.wait(50)
    loss = t.loss_plot
    xs, ys = t.train_loss.values()
    k = len(xs) // 2
    pointer = move_to_data(loss, xs[k], float(np.mean(ys)))
    text = loss.hover_text()
    assert text.startswith(f"step {format_value(xs[k])}"), text
    assert f"train (per step): {format_value(ys[k])}" in text
    vx, vy = t.val_loss_series.values()
    j = int(np.argmin(np.abs(vx - xs[k])))
    assert f"validation: {format_value(vy[j])}" in text
    assert loss.crosshair.isVisible() and loss.crosshair.value() == pytest.approx(xs[k])
    label = loss.mapFromScene(loss.hover_label.sceneBoundingRect()).boundingRect()
    assert not label.contains(pointer)  # the label never hides what is pointed at
    metric = t.metric_plot
    acc = t.metric_series["val_accuracy"]
    move_to_data(metric, 2, acc.values()[1][1])
    assert f"accuracy: {format_value(acc.values()[1][1])}" in metric.hover_text()
    assert "epoch 2" in metric.hover_text()
    QTest.mouseMove(window.view.viewport(), QPoint(20, 20))
    qtbot.waitUntil(lambda: metric.hover_text() == "")


def test_the_autoencoder_shows_inputs_above_their_reconstructions_and_its_latent_codes(
        window, qtbot, tmp_path: Path) -> None:
    window.open_path(sample_with_epochs(tmp_path, "digits_autoencoder", 1))
    t = window.training
    events = record_events(t)
    train_with_f5(window, qtbot)
    click_tab(window, "Results")
    (validation,) = [e for e in events if e["type"] == "validation"]
    inputs, outputs = np.asarray(validation["inputs"]), np.asarray(validation["samples"]["outputs"])
    samples = t.results.samples
    assert samples.isVisible() and "reconstructions" in samples.title()
    shown = samples.image.image.T  # ImageItem holds [x, y]; rows run downwards (the view is inverted)
    assert samples.getPlotItem().getViewBox().yInverted()
    assert np.allclose(shown[1:9, 1:9], inputs[0].reshape(8, 8))  # top row: the inputs
    assert np.allclose(shown[10:18, 1:9], outputs[0].reshape(8, 8))  # below: their reconstructions
    assert np.allclose(shown[10:18, 64:72], outputs[7].reshape(8, 8))
    assert [label for _p, label in samples.getPlotItem().getAxis("left")._tickLevels[0]] == ["input", "reconstruction"]
    scatter = t.results.scatter
    latent = np.asarray(validation["latent"])
    assert scatter.isVisible()
    assert sum(len(s.data) for s in scatter.groups.values()) == len(latent)
    assert list(scatter.groups) == [str(c) for c in sorted(set(np.asarray(validation["latent_labels"]).tolist()))]
    assert not t.results_plot.isVisible()  # no confusion matrix for an autoencoder
    check_plot_reads(samples)
    check_plot_reads(scatter)


def test_plot_titles_axes_and_legends_follow_the_dark_theme(window, qtbot) -> None:
    t = window.training
    window.show_training()
    view_menu = next(a.menu() for a in window.menuBar().actions() if a.text() == "&View")
    theme_menu = next(a.menu() for a in view_menu.actions() if a.text() == "&Theme")
    action = {a.text(): a for a in theme_menu.actions()}
    plots = [*t.plots(), window.runs.plot]
    try:
        for theme in ("Dark", "Light"):
            action[theme].trigger()
            fg = QApplication.palette().color(QPalette.ColorRole.WindowText).name()
            assert (fg == "#e8eaed") == (theme == "Dark")
            for plot in plots:
                item = plot.getPlotItem()
                assert QColor(item.titleLabel.opts["color"]).name() == fg, plot.title()
                for side in ("left", "bottom"):
                    assert item.getAxis(side).textPen().color().name() == fg
                    assert item.getAxis(side).labelStyle["color"] == fg, (plot.title(), side, item.getAxis(side).labelText)
                if item.legend is not None:
                    assert QColor(item.legend.labelTextColor()).name() == fg
                    assert all(QColor(label.opts["color"]).name() == fg for _s, label in item.legend.items)
    finally:
        action["Light"].trigger()


def test_the_summary_lists_nodes_in_graph_order_and_keeps_it_after_edits(window, qtbot) -> None:
    window.open_path(CNN)
    problems = window.problems
    problems.setCurrentIndex(1)
    table = problems.table

    def names() -> list[str]:
        return [table.item(r, 1).text() for r in range(table.rowCount())]

    def graph_order() -> list[str]:
        g = window.doc.graph
        return [g.nodes[nid].name for nid in g.topological_order()]

    assert names() == graph_order() and names()[0] == "image"
    assert table.horizontalHeaderItem(0).text() == "#"
    drop_layer(window, "ReLU", QPoint(300, 300))  # an edit: a new node
    assert names() == graph_order()
    window.scene.select_nodes([window.doc.graph.by_name("conv2").id])
    type_text(window.inspector.name_edit, "a_first_by_name")  # renaming never re-sorts by name
    assert "a_first_by_name" in names() and names() == graph_order()
    header = table.horizontalHeader()
    params = header.sectionViewportPosition(4) + 5
    QTest.mouseClick(header.viewport(), LEFT, NO, QPoint(params, header.height() // 2))  # the user sorts by params
    counts = [table.item(r, 4).value for r in range(table.rowCount())]
    assert counts == sorted(counts) or counts == sorted(counts, reverse=True)
    QTest.mouseClick(header.viewport(), LEFT, NO, QPoint(header.sectionViewportPosition(0) + 5, header.height() // 2))
    if names() != graph_order():  # a second click on "#" may sort descending first
        QTest.mouseClick(header.viewport(), LEFT, NO,
                         QPoint(header.sectionViewportPosition(0) + 5, header.height() // 2))
    assert names() == graph_order()


def test_starting_a_run_keeps_the_canvas_under_the_cursor_still(window, qtbot, tmp_path: Path) -> None:
    window.resize(1280, 800)
    window.open_path(sample_with_epochs(tmp_path, "digits_cnn", 50))
    qtbot.wait(100)
    vp = window.view.viewport()
    at = QPoint(vp.width() // 2, 80)
    QTest.mouseMove(vp, at)
    before = window.view.mapToScene(at)
    height = vp.height()
    window.view.setFocus()
    QTest.keyClick(window.view, Qt.Key.Key_F5)
    t = window.training
    qtbot.waitUntil(lambda: t.train_loss.n > 10, timeout=120_000)
    qtbot.wait(300)  # the docks' layout passes and a few redraws
    assert vp.height() < height  # the dashboard did take room from the canvas...
    assert window.view.mapToScene(at) == before  # ...and the node under the cursor stayed there
    QTest.mouseClick(t.stop_button, LEFT)
    qtbot.waitUntil(lambda: not t.running, timeout=60_000)


def test_plots_take_the_columns_the_space_suits(qtbot) -> None:
    plots = [QWidget() for _ in range(4)]
    grid = PlotGrid(plots)
    qtbot.addWidget(grid)
    assert grid.columns(1260, 230) == 4  # a wide, short dock: one row
    assert grid.columns(400, 900) == 1  # a tall, narrow one: one column
    assert grid.columns(1000, 700) == 2
    assert grid.heightForWidth(1260) == MIN_PLOT_HEIGHT  # one row fits this wide
    assert grid.heightForWidth(300) == 4 * MIN_PLOT_HEIGHT + 3 * grid.spacing
    plots[3].hide()
    assert grid.columns(1260, 230) == 3


def test_a_narrow_plot_wraps_its_legend_and_a_constant_curve_gets_a_range_around_it(qtbot) -> None:
    plot = Plot("Loss", "loss")
    qtbot.addWidget(plot)
    plot.resize(300, 240)
    names = ["generator (per step)", "validation", "discriminator (per step)"]
    for i, name in enumerate(names):
        series = curve(plot, name, PALETTE[i])
        for step in range(1, 30):
            series.append(step, 1.0 + i + 0.01 * step)
        series.redraw()
    lr = curve(plot, "lr", PALETTE[3])  # a fixed learning rate: a flat line
    plot.show()
    qtbot.waitExposed(plot)
    legend = plot.getPlotItem().legend
    assert legend.columnCount < 4  # not all in one row: they would not fit
    assert in_view(plot, legend)  # nothing of it cut
    assert not legend.sceneBoundingRect().intersects(plot.getPlotItem().getViewBox().sceneBoundingRect())
    plot.getPlotItem().clear()
    for step in range(1, 30):
        lr.append(step, 2e-4)
    plot.getPlotItem().addItem(lr.curve)
    lr.redraw()
    plot.auto_range()
    qtbot.wait(20)
    (_x0, _x1), (y0, y1) = plot.getPlotItem().getViewBox().viewRange()
    assert y0 < 2e-4 < y1 and y1 - y0 < 1e-4  # around the value, not +-0.5 around it


def test_a_metric_of_another_scale_gets_its_own_axis(window, qtbot) -> None:
    """A language model's perplexity (about 20) beside its accuracy (0.3): each readable."""
    t = window.training
    window.show_training()
    t.reset()
    for epoch, (acc, ppl) in enumerate([(0.21, 19.8), (0.26, 17.2), (0.3, 16.5)], start=1):
        t.handle({"type": "epoch", "epoch": epoch, "step": 12 * epoch, "lr": 1e-3, "time": 1.0,
                  "train_loss": 3.0, "val_loss": 2.9, "val_accuracy": acc, "val_perplexity": ppl})
    t.redraw_visible(everything=True)
    plot = t.metric_plot
    item = plot.getPlotItem()
    accuracy, perplexity = t.metric_series["val_accuracy"], t.metric_series["val_perplexity"]
    assert accuracy.curve in item.listDataItems() and perplexity.curve in plot.right_view.addedItems
    assert item.getAxis("right").isVisible() and item.getAxis("right").labelText == "perplexity"
    qtbot.wait(20)
    (_x, (y0, y1)) = item.getViewBox().viewRange()
    assert y0 >= 0.1 and y1 <= 0.4  # the accuracy fills its axis
    (_x, (r0, r1)) = plot.right_view.viewRange()
    assert r0 >= 15 and r1 <= 21
    assert [label.text for _s, label in item.legend.items] == ["accuracy", "perplexity"]
    move_to_data(plot, 2, 0.26)
    assert "accuracy: 0.26" in plot.hover_text() and "perplexity: 17.2" in plot.hover_text()
    t.reset()
    assert not item.getAxis("right").isVisible() and item.legend.items == []
