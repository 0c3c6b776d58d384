"""A node whose number of output ports is a parameter (Split): drawn with one port per piece,
wired with the mouse, and a change that would drop a wired port is refused in the inspector."""

from __future__ import annotations

from pathlib import Path

from PySide6.QtCore import QPoint, Qt
from PySide6.QtTest import QTest

from tests.ui.conftest import drag, drop_layer, port_point

SHOTS = Path("/tmp/nw/shots")


def add_by_drop(window, layer: str, at: QPoint) -> str:
    before = set(window.doc.graph.nodes)
    drop_layer(window, layer, at)
    (new,) = set(window.doc.graph.nodes) - before
    return new


def type_into(window, key: str, text: str) -> None:
    """Replace the inspector field ``key`` by ``text`` and press Enter, as a user does."""
    field = window.inspector.editors[key].widget
    QTest.mouseClick(field, Qt.MouseButton.LeftButton)
    field.selectAll()
    QTest.keyClicks(field, text)
    QTest.keyClick(field, Qt.Key.Key_Return)


def test_split_draws_one_port_per_piece_and_its_second_output_wires_by_mouse(window, qtbot) -> None:
    g, vp = window.doc.graph, window.view.viewport()
    src = add_by_drop(window, "Input", QPoint(420, 110))
    window.scene.select_nodes([src])
    type_into(window, "shape", "8, 4")
    split = add_by_drop(window, "Split", QPoint(420, 280))
    drag(vp, port_point(window, src, "y", True), port_point(window, split, "x", False))
    window.scene.select_nodes([split])
    type_into(window, "sizes", "2, 3, 3")
    assert g.nodes[split].params["sizes"] == (2, 3, 3)
    item = window.scene.nodes[split]
    assert list(item.outputs) == ["y1", "y2", "y3"]  # one port per piece, drawn below the node
    xs = [p.scenePos().x() for p in item.outputs.values()]
    assert xs == sorted(xs) and len(set(xs)) == 3

    relu = add_by_drop(window, "ReLU", QPoint(300, 470))
    tanh = add_by_drop(window, "Tanh", QPoint(560, 470))
    drag(vp, port_point(window, split, "y2", True), port_point(window, relu, "x", False))
    drag(vp, port_point(window, split, "y3", True), port_point(window, tanh, "x", False))
    wired = {(e.src_port, e.dst) for e in g.edges_from(split)}
    assert wired == {("y2", relu), ("y3", tanh)}
    assert window.scene.nodes[relu].shape_text == "[N, 3, 4]"  # the second piece: 3 of the 8 rows
    assert "[N, 2, 4]  [N, 3, 4]  [N, 3, 4]" == item.shape_text
    SHOTS.mkdir(parents=True, exist_ok=True)
    qtbot.wait(50)
    assert window.grab().save(str(SHOTS / "split.png"))  # for a person to look at

    # two pieces would drop y3, which is wired: refused with the reason, nothing changes
    window.scene.select_nodes([split])
    steps = window.doc.undo_stack.count()
    type_into(window, "sizes", "4, 4")
    assert g.nodes[split].params["sizes"] == (2, 3, 3)
    assert window.doc.undo_stack.count() == steps
    error = window.inspector.editors["sizes"].error
    assert error.isVisibleTo(window.inspector) and "y3" in error.text()
    assert list(item.outputs) == ["y1", "y2", "y3"]

    # four pieces keep every wire: the wires follow their ports to the new places
    type_into(window, "sizes", "2, 2, 2, 2")
    assert list(window.scene.nodes[split].outputs) == ["y1", "y2", "y3", "y4"]
    for edge in g.edges_from(split):
        edge_item = window.scene.edges[edge]
        port = window.scene.nodes[split].port(edge.src_port, True)
        assert edge_item.src is port, f"the wire from {edge.src_port} lost its port"
        assert edge_item.path().pointAtPercent(0) == port.scenePos()
    assert window.scene.nodes[relu].shape_text == "[N, 2, 4]"
    window.doc.undo_stack.undo()  # back to three pieces, the wires still on their ports
    assert list(item.outputs) == ["y1", "y2", "y3"]
    for edge in g.edges_from(split):
        assert window.scene.edges[edge].src is item.port(edge.src_port, True)
    window.doc.undo_stack.redo()

    qtbot.wait(50)
    assert window.grab().save(str(SHOTS / "split_4.png"))
