"""Reading a graph on the canvas, driven like a user: Ctrl+F and typing in the search field, F3,
Escape; clicks and drags in the overview map; the wheel; Fit to View; the layouts' shortcuts;
the View menu's Expand All / Collapse All clicked in the menu.

What is checked comes from outside the code under test where it can: node boxes against the
part of the scene the viewport shows, text sizes from the fonts a real repaint asks for and the
view's scale, wires sampled against every node's box.  Screenshots go to
``artifacts/screenshots/reading/`` for a person to look at.
"""

from __future__ import annotations

from itertools import pairwise
from pathlib import Path

import pytest
from PySide6.QtCore import QPoint, QPointF, QRectF, QSettings, Qt
from PySide6.QtGui import QColor, QWheelEvent
from PySide6.QtTest import QTest
from PySide6.QtWidgets import QApplication, QGraphicsItem, QMenu

from tests.ui.conftest import CNN, ROOT, SAMPLES, drag, project_json
from ui.canvas.items import NODE_H, NODE_W, TITLE_PX, EdgeItem, NodeItem, font_px
from ui.canvas.reading import MINIMAP_KEY
from ui.mainwindow import MainWindow
from workbench.builder import GraphBuilder
from workbench.project import Project, save_project

RESNET = ROOT / "samples" / "digits_resnet.json"
SHOTS = ROOT / "artifacts" / "screenshots" / "reading"
LEFT, NO = Qt.MouseButton.LeftButton, Qt.KeyboardModifier.NoModifier
CTRL, SHIFT = Qt.KeyboardModifier.ControlModifier, Qt.KeyboardModifier.ShiftModifier
WAIT = 20_000  # the machine is shared and loaded: generous, never slept


def shot(widget, name: str) -> Path:
    QApplication.processEvents()  # pending layout requests (the status bar's labels) first
    SHOTS.mkdir(parents=True, exist_ok=True)
    path = SHOTS / f"{name}.png"
    assert widget.grab().save(str(path))
    return path


def key(window: MainWindow, k: Qt.Key, mods: Qt.KeyboardModifier = NO) -> None:
    """A key pressed on the canvas (where the window's shortcuts start from)."""
    window.view.setFocus()
    QTest.keyClick(window.view, k, mods)


def wheel(window: MainWindow, notches: int, at: QPoint | None = None) -> None:
    """Turn the mouse wheel over the canvas (positive: away from the user, zooming in)."""
    vp = window.view.viewport()
    pos = QPointF(at if at is not None else vp.rect().center())
    event = QWheelEvent(pos, QPointF(vp.mapToGlobal(pos.toPoint())), QPoint(), QPoint(0, 120 * notches),
                        Qt.MouseButton.NoButton, NO, Qt.ScrollPhase.NoScrollPhase, False)
    QApplication.sendEvent(vp, event)


def centre(window: MainWindow) -> QPointF:
    """The scene point in the middle of the canvas, found from the viewport's own geometry."""
    return window.view.mapToScene(window.view.viewport().rect().center())


def shown_rect(window: MainWindow) -> QRectF:
    """The part of the scene the viewport shows."""
    return window.view.mapToScene(window.view.viewport().rect()).boundingRect()


def node_rect(window: MainWindow, name: str) -> QRectF:
    return window.scene.nodes[window.doc.graph.by_name(name).id].scene_body_rect()


def assert_centred_on(window: MainWindow, name: str, slack: float = 0.0) -> None:
    """The canvas's middle is the node's middle (within a few screen pixels: scrolling is whole
    pixels), give or take ``slack`` scene pixels."""
    c, want = centre(window), node_rect(window, name).center()
    tol = 3 / window.view.zoom() + slack
    assert abs(c.x() - want.x()) <= tol and abs(c.y() - want.y()) <= tol, (name, c, want)


def names(window: MainWindow, ids) -> list[str]:
    return [window.doc.graph.nodes[i].name for i in ids]


def menu_click(window: MainWindow, title: str, action) -> None:
    """Open a menu of the menu bar and click one of its entries with the mouse."""
    menu = next(m for m in window.menuBar().findChildren(QMenu) if m.title() == title)
    menu.popup(window.mapToGlobal(QPoint(40, 40)))
    assert menu.isVisible()
    QTest.mouseClick(menu, LEFT, NO, menu.actionGeometry(action).center())
    assert not menu.isVisible()


def sampled_path(item: EdgeItem, n: int = 120) -> list[QPointF]:
    path = item.path()
    return [item.mapToScene(path.pointAtPercent(k / n)) for k in range(n + 1)]


def wires_off_their_ports(window: MainWindow) -> list[tuple[str, str]]:
    """Drawn wires (the graph's and those inside expanded blocks) that do not start on their
    output port or end on their input port, as shown in the scene."""
    off = []
    for wire in window.scene.all_edge_items():
        path = wire.path()
        start, end = wire.mapToScene(path.pointAtPercent(0)), wire.mapToScene(path.pointAtPercent(1))
        a, b = wire.src.scenePos(), wire.dst.scenePos()
        if (start - a).manhattanLength() > 0.5 or (end - b).manhattanLength() > 0.5:
            off.append((wire.src.node_item.title, wire.dst.node_item.title))
    return off


def wires_across_nodes(window: MainWindow) -> list[tuple[str, str, str]]:
    """(wire, node) pairs where a drawn wire runs through the inside of a node's box (or of a
    node inside an expanded block), found by sampling every drawn wire."""
    scene = window.scene
    boxes: dict[str, QRectF] = {}
    for item in scene.nodes.values():
        if item.frame_size is None:  # an expanded block's frame holds wires by design: its header only
            boxes[item.title] = item.scene_body_rect()
        else:
            boxes[item.title] = QRectF(item.scenePos(), QPointF(item.scenePos().x() + NODE_W,
                                                                 item.scenePos().y() + NODE_H))
        for inner in scene.expansions.inner_nodes(item.node_id):
            boxes[f"{item.title}/{inner.title}"] = inner.scene_body_rect()
    found = []
    for wire in scene.all_edge_items():
        points = sampled_path(wire)
        for name, box in boxes.items():
            inside = box.adjusted(1, 1, -1, -1)  # a wire ends on its port, on the box's edge
            if any(inside.contains(p) for p in points):
                found.append((wire.src.node_item.title, wire.dst.node_item.title, name))
    return found


def assert_wires_clear(window: MainWindow) -> None:
    assert wires_off_their_ports(window) == []
    assert wires_across_nodes(window) == []


def generated(path: Path, size: int = 300) -> Path:
    """A ``size``-node graph: 20 branches off a hub, then a long chain with skips, laid out."""
    b = GraphBuilder()
    x = b.input((32,), name="in")
    hub = b.layer("ReLU", x, name="hub")
    ends = [b.layer("Tanh", hub, name=f"branch{i}") for i in range(20)]
    prev, i = ends[0], 0
    while len(b.graph) < size - 1:
        if i % 10 == 9:
            prev = b.layer("Add", prev, ends[i % 20], name=f"add{i}")
        else:
            prev = b.layer("Linear", prev, out_features=32, name=f"fc{i}")
        i += 1
    b.output(prev)
    b.auto_layout()
    save_project(Project(b.graph, "generated"), path)
    return path


# ---------------------------------------------------------------- node search


def test_find_a_node_by_name_or_type_step_through_matches_and_escape(window, qtbot) -> None:
    window.resize(1280, 800)
    window.open_path(CNN)
    view, search = window.view, window.view.search
    assert not search.isVisible()
    key(window, Qt.Key.Key_F, CTRL)
    assert search.isVisible() and search.edit.hasFocus()
    QTest.keyClicks(search.edit, "conv")  # by name (and type: both are Conv2d)
    assert names(window, search.matches) == ["conv1", "conv2"]
    assert window.scene.highlighted == {window.doc.graph.by_name("conv1").id: "current",
                                        window.doc.graph.by_name("conv2").id: "match"}
    assert [window.scene.nodes[n.id].highlight for n in window.doc.graph] == [
        {"conv1": "current", "conv2": "match"}.get(n.name) for n in window.doc.graph]
    assert search.count.text() == "1 of 2"
    assert_centred_on(window, "conv1")
    assert view.zoom() >= view.FIND_ZOOM - 1e-9  # large enough to read (it opened at fit zoom, smaller)
    assert window.scene.selected_node_ids() == [window.doc.graph.by_name("conv1").id]  # the inspector follows
    shot(window, "search_conv")

    QTest.keyClick(search.edit, Qt.Key.Key_Return)  # Enter: the next match
    assert_centred_on(window, "conv2")
    assert window.scene.highlighted[window.doc.graph.by_name("conv2").id] == "current"
    assert window.scene.highlighted[window.doc.graph.by_name("conv1").id] == "match"
    assert search.count.text() == "2 of 2"
    QTest.keyClick(search.edit, Qt.Key.Key_F3)  # F3: the next, round the end
    assert_centred_on(window, "conv1")
    QTest.keyClick(search.edit, Qt.Key.Key_F3, SHIFT)  # Shift+F3: the previous, round the start
    assert_centred_on(window, "conv2")
    QTest.keyClick(search.edit, Qt.Key.Key_Return, SHIFT)
    assert_centred_on(window, "conv1")

    # by type only: no node is named after its type here
    search.edit.selectAll()
    QTest.keyClicks(search.edit, "batchnorm")
    assert names(window, search.matches) == ["bn1", "bn2"]
    assert_centred_on(window, "bn1")
    search.edit.selectAll()
    QTest.keyClicks(search.edit, "Linear")
    assert names(window, search.matches) == ["fc", "classifier"]  # in graph order
    key_before = centre(window)

    # no match: said so, no marks, and the canvas stays where it was
    search.edit.selectAll()
    QTest.keyClicks(search.edit, "zzz")
    assert search.matches == [] and window.scene.highlighted == {}
    assert search.count.text() == "no match"
    assert centre(window) == key_before
    QTest.keyClick(search.edit, Qt.Key.Key_Return)  # nothing to step to: no error
    assert search.count.text() == "no match"

    search.edit.selectAll()
    QTest.keyClicks(search.edit, "relu")
    assert names(window, search.matches) == ["relu1", "relu2", "relu3"]
    QTest.keyClick(search.edit, Qt.Key.Key_Escape)  # done: the marks go, the canvas has the keys
    assert not search.isVisible()
    assert window.scene.highlighted == {} and all(i.highlight is None for i in window.scene.nodes.values())
    assert view.hasFocus()
    assert window.doc.undo_stack.count() == 0  # reading is no edit


def test_f3_opens_the_search_and_ctrl_f_finds_the_last_text_again(window) -> None:
    window.open_path(CNN)
    search = window.view.search
    key(window, Qt.Key.Key_F3)  # nothing searched yet: F3 opens the field
    assert search.isVisible() and search.edit.hasFocus()
    QTest.keyClicks(search.edit, "pool")
    assert names(window, search.matches) == ["pool1", "pool2"]
    QTest.keyClick(search.edit, Qt.Key.Key_Escape)
    assert window.scene.highlighted == {}
    key(window, Qt.Key.Key_F, CTRL)  # the text is kept, selected, and found again
    assert search.edit.selectedText() == "pool"
    assert names(window, search.matches) == ["pool1", "pool2"]
    assert_centred_on(window, "pool1")
    window.view.setFocus()  # F3 and Shift+F3 work from the canvas too, the field open
    key(window, Qt.Key.Key_F3)
    assert_centred_on(window, "pool2")
    key(window, Qt.Key.Key_F3, SHIFT)
    assert_centred_on(window, "pool1")
    key(window, Qt.Key.Key_Escape)  # Escape on the canvas closes it as well
    assert not search.isVisible() and window.scene.highlighted == {}


def test_search_marks_show_far_out(window, qtbot, tmp_path: Path) -> None:
    window.open_path(generated(tmp_path / "g.json"))
    window.view.fit()
    assert window.scene.overview_on  # 300 nodes fitted: drawn as shapes
    key(window, Qt.Key.Key_F, CTRL)
    QTest.keyClicks(window.view.search.edit, "branch1")
    # branch1, branch10..branch19: eleven, in graph order
    assert names(window, window.view.search.matches) == ["branch1"] + [f"branch{i}" for i in range(10, 20)]
    assert_centred_on(window, "branch1")
    # the marks are drawn far out too: the current one in its colour round the node
    window.view.set_zoom(window.view.fit_zoom())
    window.view.centerOn(node_rect(window, "branch1").center())
    assert window.scene.overview_on
    img = window.view.viewport().grab().toImage()
    around = window.view.mapFromScene(node_rect(window, "branch1").center())
    orange = QColor("#ff6d00")
    near = [img.pixelColor(around.x() + dx, around.y() + dy) for dx in range(-12, 13) for dy in range(-12, 13)]
    assert any(abs(c.red() - orange.red()) + abs(c.green() - orange.green()) + abs(c.blue() - orange.blue()) < 60
               for c in near)


# ---------------------------------------------------------------- the overview map


def test_the_overview_map_toggles_with_its_shortcut_and_remembers(window, qtbot, asker, prompter) -> None:
    window.open_path(CNN)
    minimap, action = window.view.minimap, window.reading.minimap
    assert action.isChecked() and minimap.isVisible()  # on by default
    key(window, Qt.Key.Key_M, CTRL | SHIFT)
    assert not action.isChecked() and not minimap.isVisible()
    assert QSettings().value(MINIMAP_KEY) == "false"
    other = MainWindow(ask=asker, prompt=prompter)  # the next start finds it off
    qtbot.addWidget(other)
    other.show()
    qtbot.waitExposed(other)
    assert not other.reading.minimap.isChecked() and not other.view.minimap.isVisible()
    other.doc.undo_stack.setClean()
    other.close()
    key(window, Qt.Key.Key_M, CTRL | SHIFT)
    assert action.isChecked() and minimap.isVisible()
    assert QSettings().value(MINIMAP_KEY) == "true"
    # it sits inside the canvas, in its bottom-right corner
    vp = window.view.viewport().geometry()
    assert vp.contains(minimap.geometry()) and vp.bottom() - minimap.geometry().bottom() < 30
    assert vp.right() - minimap.geometry().right() < 30


def test_a_click_in_the_overview_map_centres_the_canvas_there_and_a_drag_pans(window, qtbot) -> None:
    window.open_path(CNN)
    view, minimap = window.view, window.view.minimap
    view.set_zoom(1.0)
    view.centerOn(node_rect(window, "image").center())
    zoom = view.zoom()
    # where the map draws "logits": its box must really be painted there (the map is drawn from it)
    t = minimap.map_transform()
    target = t.map(node_rect(window, "logits").center()).toPoint()
    slack = 1 / t.m11()  # a click lands on a whole pixel of the map: that much of the scene
    img = minimap.grab().toImage()
    aside = t.map(node_rect(window, "logits").center() + QPointF(NODE_W * 1.5, 0)).toPoint()
    assert img.pixelColor(target) != img.pixelColor(aside), "no node drawn where the map says"
    QTest.mouseClick(minimap, LEFT, NO, target)
    assert_centred_on(window, "logits", slack)
    assert view.zoom() == zoom  # moved, not zoomed
    shown = minimap.visible_box()  # the map's rectangle follows
    assert abs(shown.center().x() - target.x()) <= 2 and abs(shown.center().y() - target.y()) <= 2
    # a drag moves the canvas all along, to where it ends
    start = t.map(node_rect(window, "conv2").center()).toPoint()
    end = t.map(node_rect(window, "conv1").center()).toPoint()
    QTest.mousePress(minimap, LEFT, NO, start)
    assert_centred_on(window, "conv2", slack)
    seen = []
    for k in range(1, 6):
        QTest.mouseMove(minimap, start + (end - start) * (k / 5))
        seen.append(centre(window).y())
    QTest.mouseRelease(minimap, LEFT, NO, end)
    assert_centred_on(window, "conv1", slack)
    assert seen == sorted(seen, reverse=True) and len(set(seen)) == 5  # it panned step by step
    # after the release, moving over the map does nothing
    QTest.mouseMove(minimap, start)
    assert_centred_on(window, "conv1", slack)
    # the wheel over the map zooms the canvas
    pos = QPointF(minimap.rect().center())
    QApplication.sendEvent(minimap, QWheelEvent(pos, QPointF(minimap.mapToGlobal(pos.toPoint())), QPoint(),
                                                QPoint(0, -240), Qt.MouseButton.NoButton, NO,
                                                Qt.ScrollPhase.NoScrollPhase, False))
    assert view.zoom() == pytest.approx(zoom / 1.15**2)
    assert window.doc.undo_stack.count() == 0


def test_the_overview_map_shows_the_whole_graph_at_1280x800(window, qtbot) -> None:
    window.resize(1280, 800)
    window.open_path(CNN)
    window.view.set_zoom(0.8)
    window.view.centerOn(node_rect(window, "conv2").center())
    minimap = window.view.minimap
    t = minimap.map_transform()
    inner = QRectF(minimap.rect()).adjusted(2, 2, -2, -2)
    for n in window.doc.graph:  # every node lies inside the map
        assert inner.contains(t.mapRect(window.scene.nodes[n.id].scene_body_rect())), n.name
    shot(window, "minimap")


# ---------------------------------------------------------------- fit to view, zoom


def test_fit_to_view_shows_every_node_of_a_300_node_graph(window, qtbot, tmp_path: Path) -> None:
    window.open_path(generated(tmp_path / "g.json"))
    assert len(window.doc.graph) == 300
    view = window.view
    wheel(window, 8)  # zoom in, off somewhere
    view.centerOn(QPointF(5000, 5000))
    key(window, Qt.Key.Key_0, CTRL)  # Fit to View
    shown = shown_rect(window)
    outside = [i.title for i in window.scene.nodes.values() if not shown.contains(i.scene_body_rect())]
    assert outside == []
    assert view.zoom() < 0.6 * 0.5  # far below the old 60% floor
    # and it uses the room: the graph's box touches the viewport on one axis (within the margin)
    box = view.mapFromScene(window.scene.nodes_rect()).boundingRect()
    vp = view.viewport().rect()
    assert box.width() >= vp.width() - 40 or box.height() >= vp.height() - 40


def test_the_wheel_zooms_far_below_60_percent_and_back(window) -> None:
    window.open_path(CNN)
    view = window.view
    levels = [view.zoom()]
    for _ in range(25):
        wheel(window, -1)
        levels.append(view.zoom())
    assert levels == sorted(levels, reverse=True)
    assert levels[-1] < 0.2  # the old floor was 0.6
    assert levels[-1] == pytest.approx(view.min_zoom())  # and it stops there
    wheel(window, 3)
    assert view.zoom() == pytest.approx(levels[-1] * 1.15**3)


# ---------------------------------------------------------------- level of detail


@pytest.fixture
def painted(monkeypatch: pytest.MonkeyPatch) -> list[tuple[str, float, list]]:
    """The faces nodes paint: (node id, level of detail, text runs) for every paint call."""
    calls: list[tuple[str, float, list]] = []
    original = NodeItem.face

    def face(self: NodeItem, lod: float) -> list:
        runs = original(self, lod)
        calls.append((self.node_id, lod, runs))
        return runs

    monkeypatch.setattr(NodeItem, "face", face)
    return calls


@pytest.mark.parametrize("size", [(1280, 800), (1600, 1000)])
def test_every_sample_opens_whole_with_node_names_at_least_10_px(window, qtbot, painted, size) -> None:
    window.resize(*size)
    for sample in SAMPLES:
        window.open_path(sample)
        view = window.view
        shown = shown_rect(window)
        assert all(shown.contains(i.scene_body_rect()) for i in window.scene.nodes.values()), sample.name
        painted.clear()
        view.viewport().grab()  # a real repaint
        drawn = {nid: (lod, runs) for nid, lod, runs in painted}
        assert set(drawn) == set(window.scene.nodes), sample.name  # every node drew its own face
        for nid, (lod, runs) in drawn.items():
            assert lod == pytest.approx(view.zoom())
            name = window.doc.graph.nodes[nid].name
            title = [r for r in runs if r.role in ("title", "name")]
            assert len(title) == 1 and (title[0].text == name or "…" in title[0].text), (sample.name, name)
            for r in runs:  # every line of text on screen at least 10 px tall
                assert font_px(r.font) * lod >= 10 - 1e-6, (sample.name, name, r.role, font_px(r.font), lod)


def test_text_stays_at_least_10_px_at_every_zoom_it_is_drawn_at(window) -> None:
    window.open_path(CNN)
    items = list(window.scene.nodes.values())
    for k in range(230, 4000, 7):  # the least zoom that can hold a 10 px name (a 66 px box) and up
        lod = k / 1000
        for item in items:
            runs = item.face(lod)
            assert runs, (lod, item.title)
            for r in runs:
                assert font_px(r.font) * lod >= 10 - 1e-6, (lod, item.title, r.role, font_px(r.font))
                assert r.rect.right() <= NODE_W + 80 and r.rect.bottom() <= NODE_H + 20  # in or beside the box


def test_zoomed_out_nodes_show_a_compact_face_then_simple_shapes(window, qtbot, painted) -> None:
    window.open_path(CNN)
    view = window.view
    view.set_zoom(1.0)  # full face: name, type line, shape, parameters
    painted.clear()
    view.viewport().grab()
    roles = {r.role for _, _, runs in painted for r in runs}
    assert {"title", "subtitle", "shape"} <= roles
    view.set_zoom(0.3)  # compact: the name, larger than the full face's title, and the type under it
    view.centerOn(node_rect(window, "conv1").center())
    painted.clear()
    view.viewport().grab()
    assert painted
    for _nid, lod, runs in painted:
        assert {r.role for r in runs} <= {"name", "detail"}
        [name] = [r for r in runs if r.role == "name"]
        # larger type than the full face's title (in the scene), and larger than its text at 100% on screen
        assert font_px(name.font) > TITLE_PX and font_px(name.font) * lod >= 12
    assert not window.scene.overview_on
    for _ in range(30):  # far out: no node paints, the overview draws the whole graph as boxes
        wheel(window, -1)
    assert window.scene.overview_on
    assert all(i.flags() & QGraphicsItem.GraphicsItemFlag.ItemHasNoContents for i in window.scene.nodes.values())
    painted.clear()
    img = view.viewport().grab().toImage()
    assert painted == []
    body = window.scene.colors.node
    where = view.mapFromScene(node_rect(window, "flatten").center())
    assert img.pixelColor(where) == body  # the box is still drawn
    wheel(window, 30)  # and back in: items paint again
    assert not window.scene.overview_on
    painted.clear()
    view.viewport().grab()
    assert painted


# ---------------------------------------------------------------- layouts and ports


def port_sides(window: MainWindow) -> set[tuple[str, str]]:
    """For every port: (input|output, the side of its node's box it sits on)."""
    sides = set()
    for item in window.scene.nodes.values():
        box = item.scene_body_rect()
        for ports, kind in ((item.inputs, "input"), (item.outputs, "output")):
            for p in ports.values():
                at = p.scenePos()
                side = {abs(at.x() - box.left()): "left", abs(at.x() - box.right()): "right",
                        abs(at.y() - box.top()): "top", abs(at.y() - box.bottom()): "bottom"}
                d = min(side)
                assert d < 0.5, (item.title, p.name)  # on the edge
                assert box.adjusted(-0.5, -0.5, 0.5, 0.5).contains(at)
                sides.add((kind, side[d]))
    return sides


def test_left_to_right_layout_puts_ports_on_the_sides_and_undo_brings_top_to_bottom(window, qtbot) -> None:
    window.open_path(CNN)
    g, stack = window.doc.graph, window.doc.undo_stack
    assert window.scene.direction == "TB"
    assert port_sides(window) == {("input", "top"), ("output", "bottom")}
    key(window, Qt.Key.Key_L, CTRL | SHIFT)  # Auto-layout Left to Right
    assert stack.undoText() == "Auto-layout (left to right)" and stack.count() == 1
    assert window.scene.direction == "LR"
    assert port_sides(window) == {("input", "left"), ("output", "right")}
    for e in g.edges:  # every wire runs left to right, port to port
        a = window.scene.nodes[e.src].port(e.src_port, True).scenePos()
        b = window.scene.nodes[e.dst].port(e.dst_port, False).scenePos()
        assert b.x() > a.x()
    assert_wires_clear(window)
    shown = shown_rect(window)  # the layout fits the result into view
    assert all(shown.contains(i.scene_body_rect()) for i in window.scene.nodes.values())
    window.view.setFocus()
    QTest.keySequence(window.view, window.act_undo.shortcut())
    assert window.scene.direction == "TB"
    assert port_sides(window) == {("input", "top"), ("output", "bottom")}
    QTest.keySequence(window.view, window.act_redo.shortcut())
    assert window.scene.direction == "LR"
    window.resize(1280, 800)
    window.view.fit()
    shot(window, "cnn_left_to_right")


def test_the_direction_is_read_back_from_positions_when_opened_again(window, qtbot, tmp_path: Path) -> None:
    window.open_path(RESNET)
    key(window, Qt.Key.Key_L, CTRL | SHIFT)
    assert window.scene.direction == "LR"
    path = tmp_path / "lr.json"
    save_project(window.doc.project, path)
    window.doc.undo_stack.setClean()
    window.open_path(path)
    assert window.scene.direction == "LR"
    assert port_sides(window) == {("input", "left"), ("output", "right")}
    key(window, Qt.Key.Key_L, CTRL)  # and top to bottom again
    assert window.scene.direction == "TB"
    assert port_sides(window) == {("input", "top"), ("output", "bottom")}


# ---------------------------------------------------------------- wires round nodes


def test_a_skip_connection_is_drawn_round_the_nodes_it_passes(window, qtbot, tmp_path: Path) -> None:
    window.open_path(generated(tmp_path / "g.json", size=60))
    routed = [w for w in window.scene.edges.values() if w.route is not None]
    assert routed  # the skips from the branches to the adds pass other nodes
    assert_wires_clear(window)
    key(window, Qt.Key.Key_L, CTRL | SHIFT)  # and laid out left to right
    assert window.scene.direction == "LR"
    assert_wires_clear(window)


def test_a_node_dragged_into_a_wires_way_makes_it_go_round(window, qtbot, tmp_path: Path) -> None:
    b = GraphBuilder()
    x = b.input((8,), name="x")
    b.output(b.layer("ReLU", x, name="far"), name="y")
    b.layer("Tanh", x, name="aside")
    g = b.graph
    for name, pos in (("x", (0, 0)), ("far", (0, 660)), ("y", (0, 770)), ("aside", (600, 320))):
        g.move(g.by_name(name).id, pos)
    save_project(Project(g, "aside"), tmp_path / "p.json")
    window.open_path(tmp_path / "p.json")
    scene, view = window.scene, window.view
    wire = next(w for e, w in scene.edges.items() if window.doc.graph.nodes[e.dst].name == "far")
    assert wire.route is None  # a plain curve: nothing in its way
    view.set_zoom(0.6)
    view.centerOn(QPointF(400, 350))
    aside = node_rect(window, "aside")
    drag(view.viewport(), view.mapFromScene(aside.center()), view.mapFromScene(QPointF(95, aside.center().y())))
    assert node_rect(window, "aside").left() < 100  # it sits across the wire's way now
    assert wire.route is not None
    assert_wires_clear(window)
    window.view.setFocus()
    QTest.keySequence(window.view, window.act_undo.shortcut())  # back beside it: the curve again
    assert node_rect(window, "aside").left() == 600 and wire.route is None


# ---------------------------------------------------------------- blocks expanded in place


def top_level_positions(window: MainWindow) -> dict[str, QPointF]:
    return {nid: QPointF(item.pos()) for nid, item in window.scene.nodes.items()}


def test_expand_all_and_collapse_all_in_place_without_an_edit(window, qtbot) -> None:
    """Expanding is a way of looking (ui.canvas.expand): no undo step, the project unchanged."""
    window.open_path(RESNET)
    scene, g = window.scene, window.doc.graph
    blocks = [n.id for n in g if n.is_block]
    assert len(blocks) == 2
    before, start = top_level_positions(window), project_json(window)
    menu_click(window, "&View", window.reading.expand_all)
    assert all(scene.expansions.is_expanded(b) for b in blocks)
    for b in blocks:
        frame = scene.nodes[b].scene_body_rect()
        inner = scene.expansions.inner_nodes(b)
        assert len(inner) >= 4  # the ResBlock's inside: conv, bn, relu, ..., add
        assert all(frame.contains(i.scene_body_rect()) for i in inner)
        # and no bigger than its inside needs: a node's height of room at most past its last node
        last = max(i.scene_body_rect().bottom() for i in inner)
        assert frame.bottom() - last <= NODE_H, (frame, last)
        assert all(i.isVisible() and not i.flags() & QGraphicsItem.GraphicsItemFlag.ItemIsMovable for i in inner)
    # in place: what is above a block stays, what is below moves down by the room it takes
    boxes = {nid: item.scene_body_rect() for nid, item in scene.nodes.items()}
    for a, b in pairwise(g.topological_order()):
        assert boxes[b].top() >= boxes[a].bottom(), (g.nodes[a].name, g.nodes[b].name)  # no overlap
    first = g.nodes[blocks[0]].position[1]
    for nid, item in scene.nodes.items():
        if g.nodes[nid].position[1] <= first:
            assert item.pos() == before[nid]
        else:
            assert item.pos().x() == before[nid].x() and item.pos().y() > before[nid].y()
    assert_wires_clear(window)
    assert project_json(window) == start and window.doc.undo_stack.count() == 0 and not window.doc.modified
    key(window, Qt.Key.Key_0, CTRL)  # the fit takes in the larger frames
    shown = shown_rect(window)
    assert all(shown.contains(box) for box in boxes.values())
    window.resize(1280, 800)
    window.view.fit()
    shot(window, "resnet_expanded")
    menu_click(window, "&View", window.reading.collapse_all)
    assert not scene.expansions and top_level_positions(window) == before
    assert not [i for i in scene.items() if isinstance(i, NodeItem) and not i.interactive]  # the insides went
    assert project_json(window) == start and window.doc.undo_stack.count() == 0


def test_a_block_chevron_click_expands_that_block_only(window, qtbot) -> None:
    window.open_path(RESNET)
    scene, g = window.scene, window.doc.graph
    window.view.set_zoom(1.0)
    block1, block2 = g.by_name("block1").id, g.by_name("block2").id
    item = scene.nodes[block1]
    window.view.centerOn(item.scene_body_rect().center())
    chevron = window.view.mapFromScene(item.mapToScene(item.chevron_rect().center()))
    below = top_level_positions(window)[block2]
    QTest.mouseClick(window.view.viewport(), LEFT, NO, chevron)
    assert scene.expansions.is_expanded(block1) and not scene.expansions.is_expanded(block2)
    assert scene.nodes[block2].pos().y() > below.y()
    assert window.doc.undo_stack.count() == 0
    chevron = window.view.mapFromScene(item.mapToScene(item.chevron_rect().center()))
    QTest.mouseClick(window.view.viewport(), LEFT, NO, chevron)
    assert not scene.expansions and scene.nodes[block2].pos() == below


def test_the_search_follows_edits_without_moving_the_canvas(window, qtbot) -> None:
    window.open_path(CNN)
    search, g = window.view.search, window.doc.graph
    key(window, Qt.Key.Key_F, CTRL)
    QTest.keyClicks(search.edit, "relu")
    QTest.keyClick(search.edit, Qt.Key.Key_Return)  # at relu2, 2 of 3
    assert names(window, [search.matches[search.current]]) == ["relu2"]
    relu1 = g.by_name("relu1").id
    window.scene.select_nodes([relu1])  # delete relu1 with the Delete key
    key(window, Qt.Key.Key_Delete)
    assert relu1 not in g.nodes
    assert names(window, search.matches) == ["relu2", "relu3"] and search.count.text() == "1 of 2"
    assert set(window.scene.highlighted) == set(search.matches)
    where = centre(window)
    window.editor.add_layer("ReLU", QPointF(600, 0), connect=False)  # a new match comes in, the canvas stays
    assert names(window, search.matches) == ["relu2", "relu3", "relu1"]  # the new one took the free name
    assert search.count.text() == "1 of 3" and centre(window) == where
    QTest.keyClick(search.edit, Qt.Key.Key_Return)  # stepping goes on from where it was
    assert names(window, [search.matches[search.current]]) == ["relu3"]
    assert_centred_on(window, "relu3")
    assert search.count.text() == "2 of 3"


def test_blocks_expand_in_place_in_a_left_to_right_graph(window, qtbot) -> None:
    window.open_path(RESNET)
    scene, g = window.scene, window.doc.graph
    key(window, Qt.Key.Key_L, CTRL | SHIFT)
    assert scene.direction == "LR"
    before, start = top_level_positions(window), project_json(window)
    menu_click(window, "&View", window.reading.expand_all)
    boxes = {nid: item.scene_body_rect() for nid, item in scene.nodes.items()}
    for a, b in pairwise(g.topological_order()):  # one row, each box wholly right of the one before
        assert boxes[b].left() >= boxes[a].right(), (g.nodes[a].name, g.nodes[b].name)
    for b in (n.id for n in g if n.is_block):
        frame, inner = boxes[b], scene.expansions.inner_nodes(b)
        assert inner and all(frame.contains(i.scene_body_rect()) for i in inner)
        assert frame.right() - max(i.scene_body_rect().right() for i in inner) <= NODE_W / 2
        for i in inner:  # the inside flows left to right too
            assert {p.scenePos().x() for p in i.inputs.values()} <= {i.scene_body_rect().left()}
            assert {p.scenePos().x() for p in i.outputs.values()} <= {i.scene_body_rect().right()}
    assert_wires_clear(window)
    menu_click(window, "&View", window.reading.collapse_all)
    assert top_level_positions(window) == before and project_json(window) == start


def test_far_out_a_click_selects_a_drag_moves_and_the_rubber_band_selects(window, qtbot) -> None:
    window.open_path(CNN)
    view, scene, g = window.view, window.scene, window.doc.graph
    for _ in range(30):
        wheel(window, -1)
    assert scene.overview_on  # the items do not paint: the scene answers the mouse from its own index
    vp = view.viewport()
    fc = g.by_name("fc").id
    QTest.mouseClick(vp, LEFT, NO, view.mapFromScene(node_rect(window, "fc").center()))
    assert scene.selected_node_ids() == [fc]
    was = g.nodes[fc].position
    at = view.mapFromScene(node_rect(window, "fc").center())
    drag(vp, at, at + QPoint(40, 0))
    moved = g.nodes[fc].position
    assert moved[1] == was[1] and moved[0] == pytest.approx(was[0] + 40 / view.zoom(), abs=20)  # snapped
    assert window.doc.undo_stack.count() == 1 and window.doc.undo_stack.undoText().startswith("Move")
    # a rubber band from empty canvas over the first three nodes
    top = view.mapFromScene(node_rect(window, "image").topLeft() - QPointF(300, 40))
    bottom = view.mapFromScene(node_rect(window, "bn1").bottomRight() + QPointF(300, 10))
    drag(vp, top, bottom)
    assert sorted(names(window, scene.selected_node_ids())) == ["bn1", "conv1", "image"]
