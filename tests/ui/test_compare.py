"""The Compare view: real clicks on the difference list and on nodes select and centre the match
on the other side; wheel and drag on one side move the other; File > Compare With… opens it."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from PySide6.QtCore import QPoint, QPointF, Qt
from PySide6.QtGui import QColor, QImage, QWheelEvent
from PySide6.QtTest import QTest
from PySide6.QtWidgets import QApplication, QFileDialog

from tests.ui.conftest import ROOT, drag
from ui.canvas.items import NODE_H, NODE_W
from ui.compare import CompareWindow, Entry, open_compare
from ui.compare_canvas import KINDS, Side
from ui.document import Document
from workbench.builder import GraphBuilder
from workbench.layout import auto_layout
from workbench.project import Project, load_project, loads_project, save_project

RESNET = ROOT / "samples" / "digits_resnet.json"
SHOTS = ROOT / "artifacts" / "screenshots"


def second_version(a: Project) -> Project:
    """digits_resnet edited as a user might: a rename, a Dropout inserted, a ReLU deleted, a block
    parameter changed, then laid out again (so matched nodes sit elsewhere on the two sides)."""
    b = loads_project(a.to_json())
    g = b.graph
    g.rename(g.by_name("gap").id, "pool")
    cls = g.by_name("classifier").id
    (e,) = g.edges_into(cls)
    g.disconnect(e)
    drop = g.add_node("Dropout", {"p": 0.2}, "drop")
    g.connect(e.src, e.src_port, drop.id, "x")
    g.connect(drop.id, "y", cls, "x")
    relu = g.by_name("stem_relu").id
    (into,), outs = g.edges_into(relu), g.edges_from(relu)
    g.remove_node(relu)
    for o in outs:
        g.connect(into.src, into.src_port, o.dst, o.dst_port)
    for nid, pos in auto_layout(g).items():
        g.move(nid, pos)
    inner = b.blocks.defs["ResBlock"].graph
    inner.set_params(inner.by_name("bn2").id, {"momentum": 0.05})
    return b


@pytest.fixture
def compare(qtbot: Any) -> CompareWindow:
    a = load_project(RESNET)
    w = CompareWindow(a, second_version(a), "digits_resnet.json", "digits_resnet_v2.json")
    qtbot.addWidget(w)
    w.resize(1280, 800)
    w.show()
    qtbot.waitExposed(w)
    return w


def node_id(side: Side, name: str) -> str:
    return side.scene.doc.graph.by_name(name).id


def centre_of(side: Side, nid: str) -> QPointF:
    return side.scene.nodes[nid].pos() + QPointF(NODE_W / 2, NODE_H / 2)


def assert_centred(side: Side, nid: str) -> None:
    here, there = side.view.visible_center(), centre_of(side, nid)
    tolerance = 2.0 / side.view.zoom()  # a pixel or two: scroll bars move in whole pixels
    assert abs(here.x() - there.x()) <= tolerance and abs(here.y() - there.y()) <= tolerance, (here, there)


def click_entry(w: CompareWindow, entry: Entry) -> None:
    item = w.item_for(entry)
    assert item is not None, entry
    w.list.scrollToItem(item)
    QTest.mouseClick(w.list.viewport(), Qt.MouseButton.LeftButton, Qt.KeyboardModifier.NoModifier,
                     w.list.visualItemRect(item).center())


def click_node(side: Side, nid: str) -> None:
    side.view.center_on_node(nid)  # (the other side follows; the click is what is tested)
    at = side.view.mapFromScene(side.scene.nodes[nid].pos() + QPointF(60, 30))
    QTest.mouseClick(side.view.viewport(), Qt.MouseButton.LeftButton, Qt.KeyboardModifier.NoModifier, at)


def test_differences_are_coloured_on_both_sides_and_listed(compare: CompareWindow) -> None:
    left, right = compare.left, compare.right

    def kinds(side: Side) -> dict[str, str]:
        colour = {QColor(c).name(): k for k, (c, _) in KINDS.items()}
        found = {}
        for halo in side.scene.halos:
            nid = next(n for n, item in side.scene.nodes.items() if item.pos() == halo.pos())
            found[side.scene.doc.graph.nodes[nid].name] = colour[halo.pen().color().name()]
        return found

    assert kinds(left) == {"stem_relu": "removed", "block1": "changed", "block2": "changed", "gap": "renamed",
                           "classifier": "changed"}
    assert kinds(right) == {"drop": "added", "block1": "changed", "block2": "changed", "pool": "renamed",
                            "classifier": "changed"}
    assert left.scene.nodes[node_id(left, "flatten")].opacity() < 1 <= left.scene.nodes[node_id(left, "gap")].opacity()
    rows = [compare.list.topLevelItem(0).child(i).text(0) for i in range(compare.list.topLevelItem(0).childCount())]
    assert rows == ["~ block1: wiring, block ResBlock differs", "~ block2: block ResBlock differs", "→ gap → pool",
                    "~ classifier: wiring", "+ drop (Dropout)", "− stem_relu (ReLU)"]
    assert "7 differences" in compare.verdict.text()


def test_clicking_a_difference_selects_and_centres_it_on_both_sides(compare: CompareWindow, qtbot: Any) -> None:
    left, right = compare.left, compare.right
    a, b = node_id(left, "gap"), node_id(right, "pool")
    click_entry(compare, Entry(0, a, b))
    assert left.scene.selected_node_ids() == [a] and right.scene.selected_node_ids() == [b]
    assert_centred(left, a)
    assert_centred(right, b)
    assert compare.details.toPlainText().startswith("~ gap -> pool (AdaptiveAvgPool2d): renamed")
    # an added node: selected where it is; the other side shows where it would be (its input's match)
    drop = node_id(right, "drop")
    click_entry(compare, Entry(0, None, drop))
    assert right.scene.selected_node_ids() == [drop] and left.scene.selected_node_ids() == []
    assert_centred(right, drop)
    assert_centred(left, node_id(left, "flatten"))
    assert "only in B" in compare.details.toPlainText() and "p: 0.2" in compare.details.toPlainText()


def test_clicking_a_node_selects_and_centres_its_match(compare: CompareWindow) -> None:
    left, right = compare.left, compare.right
    a, b = node_id(left, "block2"), node_id(right, "block2")
    click_node(left, a)
    assert left.scene.selected_node_ids() == [a] and right.scene.selected_node_ids() == [b]
    assert_centred(right, b)
    assert compare.list.currentItem().text(0) == "~ block2: block ResBlock differs"
    # from the right, an unchanged node: its match is chosen, the list has no row for it
    b, a = node_id(right, "flatten"), node_id(left, "flatten")
    click_node(right, b)
    assert left.scene.selected_node_ids() == [a] and right.scene.selected_node_ids() == [b]
    assert_centred(left, a)
    assert not compare.list.selectedItems() and "unchanged" in compare.details.toPlainText()


def test_a_change_inside_a_block_opens_the_block_on_both_sides(compare: CompareWindow) -> None:
    bd = compare.diff.blocks[0]
    (c,) = bd.graph.changes
    click_entry(compare, Entry(1, c.a.id, c.b.id))
    assert compare.graph_box.currentText() == "Block ResBlock (differs)"
    for side, nid in ((compare.left, c.a.id), (compare.right, c.b.id)):
        assert side.scene.doc.graph is side.project.blocks.defs["ResBlock"].graph
        assert side.scene.selected_node_ids() == [nid]
        assert_centred(side, nid)
    assert "momentum: 0.1 -> 0.05" in compare.details.toPlainText()


def test_a_block_that_differs_only_in_what_it_exposes_is_listed(qtbot: Any) -> None:
    a = load_project(RESNET)
    b = loads_project(a.to_json())
    b.blocks.expose("ResBlock", b.blocks.defs["ResBlock"].graph.by_name("bn1").id, "momentum", "mom")
    w = CompareWindow(a, b, "a.json", "b.json")
    qtbot.addWidget(w)
    w.show()
    qtbot.waitExposed(w)
    assert w.graph_box.itemText(1) == "Block ResBlock (differs)"
    click_entry(w, Entry(1, None, None))
    assert w.item_for(Entry(1, None, None)).text(0) == "Block ResBlock: its exposed parameters differ"
    assert w.graph_box.currentIndex() == 1 and "exposed mom: (not exposed) -> bn1.momentum" in w.details.toPlainText()


def aligned(w: CompareWindow) -> tuple[QPoint, QPoint]:
    """Where the matched node nearest the left centre is drawn in each view."""
    left, right = w.left, w.right
    centre = left.view.visible_center()
    a = min((nid for nid in left.scene.nodes if w.partner(left, nid)),
            key=lambda n: (centre_of(left, n) - centre).manhattanLength())
    b = w.partner(left, a)
    assert b is not None
    return left.view.mapFromScene(centre_of(left, a)), right.view.mapFromScene(centre_of(right, b))


def test_zooming_and_panning_one_side_moves_the_other(compare: CompareWindow) -> None:
    left, right = compare.left, compare.right
    vp = left.view.viewport()
    pos = QPointF(vp.rect().center())
    before = right.view.zoom()
    wheel = QWheelEvent(pos, QPointF(vp.mapToGlobal(pos.toPoint())), QPoint(), QPoint(0, 240),
                        Qt.MouseButton.NoButton, Qt.KeyboardModifier.NoModifier, Qt.ScrollPhase.NoScrollPhase, False)
    QApplication.sendEvent(vp, wheel)
    assert left.view.zoom() > before * 1.2 and right.view.zoom() == pytest.approx(left.view.zoom())
    p, q = aligned(compare)
    assert (p - q).manhattanLength() <= 3
    start = right.view.visible_center()
    drag(vp, vp.rect().center(), vp.rect().center() + QPoint(-60, -150), button=Qt.MouseButton.MiddleButton)
    assert (right.view.visible_center() - start).manhattanLength() > 50
    p, q = aligned(compare)
    assert (p - q).manhattanLength() <= 3
    # and the other way round
    vp = right.view.viewport()
    drag(vp, vp.rect().center(), vp.rect().center() + QPoint(0, 120), button=Qt.MouseButton.MiddleButton)
    p, q = aligned(compare)
    assert (p - q).manhattanLength() <= 3


def test_the_view_is_read_only(compare: CompareWindow) -> None:
    left = compare.left
    nid = node_id(left, "block1")
    before = left.project.to_json()
    item = left.scene.nodes[nid]
    start = item.pos()
    click_node(left, nid)
    at = left.view.mapFromScene(item.pos() + QPointF(60, 30))
    drag(left.view.viewport(), at, at + QPoint(80, 40))  # a node drag elsewhere moves the node
    out = left.view.mapFromScene(item.port("y", True).scenePos())
    drag(left.view.viewport(), out, out + QPoint(200, 30))  # a wire drag elsewhere connects
    QTest.mouseDClick(left.view.viewport(), Qt.MouseButton.LeftButton, Qt.KeyboardModifier.NoModifier, at)
    assert item.pos() == start and left.project.to_json() == before and left.doc.undo_stack.count() == 0


def test_screenshot_of_the_compare_view(compare: CompareWindow, qtbot: Any) -> None:
    click_entry(compare, Entry(0, node_id(compare.left, "classifier"), node_id(compare.right, "classifier")))
    qtbot.wait(50)
    SHOTS.mkdir(parents=True, exist_ok=True)
    path = SHOTS / "compare.png"
    assert compare.grab().save(str(path))
    img = QImage(str(path))
    assert (img.width(), img.height()) == (1280, 800)

    def colours(side: Side) -> set[str]:
        shot = side.view.viewport().grab().toImage()
        return {shot.pixelColor(x, y).name() for y in range(0, shot.height(), 2) for x in range(0, shot.width(), 2)}

    for side, kinds in ((compare.left, ("removed", "changed", "renamed")), (compare.right, ("added", "changed"))):
        seen = colours(side)
        for kind in kinds:  # the halos of the differences in sight are drawn
            assert QColor(KINDS[kind][0]).name() in seen, kind
    assert QColor(KINDS["added"][0]).name() not in colours(compare.left)
    from ui.style import CATEGORY_COLORS

    assert not {c for c, _ in KINDS.values()} & set(CATEGORY_COLORS.values())


# --------------------------------------------------------------------------- from the main window


def test_file_compare_with_opens_the_view_on_the_open_project(window: Any, tmp_path: Path,
                                                              monkeypatch: pytest.MonkeyPatch, asker: Any) -> None:
    assert window.open_path(RESNET)
    other = second_version(load_project(RESNET))
    save_project(other, tmp_path / "v2.json")
    monkeypatch.setattr(QFileDialog, "getOpenFileName", staticmethod(lambda *a, **k: (str(tmp_path / "v2.json"), "")))
    window.act_compare.trigger()
    (view,) = window.findChildren(CompareWindow)
    assert view.isVisible() and not view.diff.equal
    assert [c.b.name for c in view.diff.graphs[0].changes] == ["block1", "block2", "pool", "classifier"]
    assert view.left.project is not window.doc.project  # a snapshot: the editor's later edits do not reach it
    view.close()
    (tmp_path / "bad.json").write_text("{")
    monkeypatch.setattr(QFileDialog, "getOpenFileName", staticmethod(lambda *a, **k: (str(tmp_path / "bad.json"), "")))
    window.act_compare.trigger()
    assert asker.asked[-1][0] == "Cannot compare" and "not valid JSON" in asker.asked[-1][1]


def test_comparing_with_an_onnx_file_imports_it_in_a_worker(window: Any, tmp_path: Path,
                                                            monkeypatch: pytest.MonkeyPatch, qtbot: Any) -> None:
    import onnx
    from onnx import TensorProto, helper

    vi = helper.make_tensor_value_info
    nodes = [helper.make_node("Relu", ["x"], ["h"], name="/act/Relu"),
             helper.make_node("Sigmoid", ["h"], ["y"], name="/gate/Sigmoid")]
    graph = helper.make_graph(nodes, "g", [vi("x", TensorProto.FLOAT, ["N", 4])], [vi("y", TensorProto.FLOAT, ["N", 4])])
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), str(tmp_path / "m.onnx"))
    b = GraphBuilder()
    b.output(b.layer("Tanh", b.layer("ReLU", b.input((4,), name="x"), name="act")), name="y")
    window.set_document(Document(Project(b.auto_layout(), "mine")))
    view = open_compare(window, tmp_path / "m.onnx")
    assert view is not None
    model = view.diff.graphs[0]
    assert [(c.a.type, c.b.type) for c in model.changes if c.type] == []
    assert [n.type for n in model.added] == ["Sigmoid"] and [n.type for n in model.removed] == ["Tanh"]
    assert "ONNX" not in view.diff.a and "m.onnx" in view.diff.b
    view.close()
