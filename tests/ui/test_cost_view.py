"""Cost bars on the canvas (View > Cost Bars), their tooltips, the Summary's cost columns, the cost
batch typed into its dialog, and the latency profile run as a job; all through real menus, mouse
and keyboard events on the real widgets."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from PySide6.QtCore import QEvent, QPoint, Qt, QTimer
from PySide6.QtGui import QColor, QHelpEvent
from PySide6.QtTest import QTest
from PySide6.QtWidgets import QApplication, QInputDialog, QLineEdit, QToolTip

from tests.ui.conftest import ROOT
from ui.canvas.items import COST_BAR, NODE_H, NODE_W
from ui.commands import SetParamsCommand
from ui.inspector import ask_text
from workbench.analysis.cost import cost_table, format_bytes
from workbench.analysis.macs import format_count

RESNET = ROOT / "samples" / "digits_resnet.json"
SHOTS = Path("/tmp/nw/shots")


def choose(window: Any, qtbot: Any, key: str) -> None:
    """View > Cost Bars > <measure>, clicked with the mouse."""
    view_menu = next(a.menu() for a in window.menuBar().actions() if a.text() == "&View")
    view_menu.popup(window.mapToGlobal(QPoint(60, 30)))
    qtbot.waitUntil(view_menu.isVisible)
    costs = window.costs.menu
    QTest.mouseClick(view_menu, Qt.MouseButton.LeftButton, pos=view_menu.actionGeometry(costs.menuAction()).center())
    qtbot.waitUntil(costs.isVisible)
    target = window.costs.actions.get(key) or {"batch": window.costs.act_batch}[key]
    QTest.mouseClick(costs, Qt.MouseButton.LeftButton, pos=costs.actionGeometry(target).center())
    qtbot.waitUntil(lambda: not view_menu.isVisible())


def node_point(window: Any, name: str, y: float = NODE_H / 2) -> QPoint:
    item = window.scene.nodes[window.doc.graph.by_name(name).id]
    window.view.centerOn(item)
    return window.view.mapFromScene(item.mapToScene(NODE_W / 2, y))


def hover(window: Any, qtbot: Any, name: str) -> str:
    """Move the mouse onto a node and ask for its tooltip as Qt does; the text shown."""
    viewport = window.view.viewport()
    pos = node_point(window, name)
    QTest.mouseMove(viewport, pos)
    QToolTip.hideText()
    QApplication.sendEvent(viewport, QHelpEvent(QEvent.Type.ToolTip, pos, viewport.mapToGlobal(pos)))
    qtbot.waitUntil(QToolTip.isVisible, timeout=2000)
    return QToolTip.text()


def bar_pixel(window: Any, name: str, fraction: float) -> QColor:
    """The colour painted where a node's bar is, ``fraction`` along it."""
    window.view.zoom_by(1.5 / window.view.zoom())  # large enough to read the face and the bar
    item = window.scene.nodes[window.doc.graph.by_name(name).id]
    window.view.centerOn(item)
    QApplication.processEvents()
    pos = window.view.mapFromScene(item.mapToScene(12 + (NODE_W - 20) * fraction, NODE_H - 6))
    return window.view.viewport().grab().toImage().pixelColor(pos)


def test_macs_and_parameter_bars_chosen_from_the_menu(window: Any, qtbot: Any) -> None:
    window.open_path(RESNET)
    g = window.doc.graph
    table = cost_table(g, batch=1).by_id()
    items = window.scene.nodes
    assert all(item.cost is None for item in items.values())
    choose(window, qtbot, "macs")
    assert window.costs.measure == "macs" and window.costs.actions["macs"].isChecked()
    block, stem = g.by_name("block1").id, g.by_name("stem").id
    assert items[block].cost[0] == 1.0  # the largest node
    assert items[stem].cost[0] == table[stem].macs / table[block].macs
    assert bar_pixel(window, "block1", 0.9) == COST_BAR
    assert bar_pixel(window, "stem", 0.5) != COST_BAR  # 1.6% of the largest: the bar stops short
    tip = hover(window, qtbot, "block1")
    assert f"<b>MACs</b> {format_count(table[block].macs)}" in tip and "block1" in tip
    choose(window, qtbot, "params")
    assert items[stem].cost[0] == table[stem].params / table[block].params
    assert f"{table[stem].params:,}" in hover(window, qtbot, "stem")
    choose(window, qtbot, "none")
    assert all(item.cost is None for item in items.values())
    assert bar_pixel(window, "block1", 0.9) != COST_BAR
    assert "MACs" not in hover(window, qtbot, "block1")


def test_summary_has_cost_columns_and_totals(window: Any, qtbot: Any) -> None:
    window.open_path(RESNET)
    problems = window.problems
    problems.setCurrentIndex(1)
    t = problems.table
    headers = [t.model().headerData(c, Qt.Orientation.Horizontal) for c in range(t.model().columnCount())]
    assert headers[-3:] == ["MACs", "memory", "latency"]
    table = cost_table(window.doc.graph, batch=1)
    rows = {problems.cell(r, 1): r for r in range(t.model().rowCount())}
    for cost in table.nodes:
        assert problems.cell(rows[cost.name], 5) == format_count(cost.macs)
        assert problems.cell(rows[cost.name], 6) == format_bytes(cost.activation_bytes)
        assert problems.cell(rows[cost.name], 7) == ""  # not profiled
    totals = problems.totals.text()
    assert f"<b>{format_count(table.macs)}</b> MACs" in totals and "at batch 1" in totals
    header = t.horizontalHeader()
    QTest.mouseClick(header.viewport(), Qt.MouseButton.LeftButton,
                     pos=QPoint(header.sectionViewportPosition(5) + header.sectionSize(5) // 2, header.height() // 2))
    QTest.mouseClick(header.viewport(), Qt.MouseButton.LeftButton,
                     pos=QPoint(header.sectionViewportPosition(5) + header.sectionSize(5) // 2, header.height() // 2))
    assert problems.cell(0, 1) in ("block1", "block2")  # sorted by MACs, largest first


def test_the_cost_batch_is_typed_and_scales_memory(window: Any, qtbot: Any, asker: Any) -> None:
    window.open_path(RESNET)
    window.prompt = lambda title, label, default, choices: ask_text(window, title, label, default, choices)
    choose(window, qtbot, "memory")
    one = cost_table(window.doc.graph, batch=1).by_id()
    eight = cost_table(window.doc.graph, batch=8).by_id()
    stem = window.doc.graph.by_name("stem").id
    assert format_bytes(one[stem].activation_bytes) in hover(window, qtbot, "stem")

    def type_into_dialog(text: str) -> None:
        dialog = next(w for w in QApplication.topLevelWidgets() if isinstance(w, QInputDialog) and w.isVisible())
        field = dialog.findChild(QLineEdit)
        field.selectAll()
        QTest.keyClicks(field, text)
        QTest.keyClick(field, Qt.Key.Key_Return)

    QTimer.singleShot(300, lambda: type_into_dialog("8"))
    choose(window, qtbot, "batch")
    qtbot.waitUntil(lambda: window.costs.batch == 8)
    tip = hover(window, qtbot, "stem")
    assert format_bytes(eight[stem].activation_bytes) in tip and "batch 8" in tip
    window.problems.setCurrentIndex(1)  # the Summary fills when shown
    assert "at batch 8" in window.problems.totals.text()
    QTimer.singleShot(300, lambda: type_into_dialog("0"))
    choose(window, qtbot, "batch")
    qtbot.waitUntil(lambda: bool(asker.asked))
    assert "from 1 to 1,000,000" in asker.asked[-1][1] and window.costs.batch == 8


def test_latency_bars_come_from_a_profile_job_and_an_edit_drops_them(window: Any, qtbot: Any) -> None:
    window.open_path(ROOT / "samples" / "digits_cnn.json")
    g = window.doc.graph
    choose(window, qtbot, "latency")  # no profile yet: choosing latency runs one (a spawned job)
    qtbot.waitUntil(lambda: window.costs.measure == "latency", timeout=120_000)
    items = window.scene.nodes
    measured = {nid: item.cost for nid, item in items.items() if item.cost is not None and item.cost[0] > 0}
    assert g.by_name("conv1").id in measured and max(c[0] for c in measured.values()) == 1.0
    tip = hover(window, qtbot, "conv1")
    assert "Latency</b>" in tip and " ms (median of 20 passes on cpu, batch 1" in tip
    problems = window.problems
    problems.setCurrentIndex(1)  # the Summary fills when shown
    rows = {problems.cell(r, 1): r for r in range(problems.table.model().rowCount())}
    assert problems.cell(rows["conv1"], 7).endswith(" ms")
    assert "measured" in window.problems.totals.text()
    window.doc.undo_stack.push(SetParamsCommand(g, [g.by_name("conv1").id], {"out_channels": 8}))
    assert all(item.cost is None for item in items.values())  # the profile measured another model
    assert problems.cell(rows["conv1"], 7) == ""


def test_screenshot_of_the_cost_bars(window: Any, qtbot: Any) -> None:
    """/tmp/nw/shots/cost_bars.png: the ResNet sample at 1280x800, MACs bars and the Summary."""
    window.resize(1280, 800)
    window.open_path(RESNET)
    choose(window, qtbot, "macs")
    window.problems_dock.raise_()
    window.problems.setCurrentIndex(1)
    window.view.fit()
    QApplication.processEvents()
    SHOTS.mkdir(parents=True, exist_ok=True)
    image = window.grab().toImage()
    assert (image.width(), image.height()) == (1280, 800)
    assert image.save(str(SHOTS / "cost_bars.png"))


def test_latency_of_a_broken_graph_is_refused_with_the_reason(window: Any, qtbot: Any, asker: Any) -> None:
    window.open_path(ROOT / "samples" / "digits_cnn.json")
    g = window.doc.graph
    choose(window, qtbot, "macs")
    window.doc.undo_stack.push(SetParamsCommand(g, [g.by_name("conv2").id], {"kernel_size": [9, 9]}))  # too big
    choose(window, qtbot, "latency")
    assert asker.asked[-1][0] == "Cannot profile" and '"conv2"' in asker.asked[-1][1]
    assert window.costs.measure == "macs" and window.costs.actions["macs"].isChecked()
