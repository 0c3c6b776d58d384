"""Editing as fast as thinking, driven like a user: palette drags (the drag events the view
receives), mouse presses, moves and releases on the canvas, keys in the set-up form.

Each gesture is one undo step with a readable text; undo puts the project back exactly.
Screenshots of the gestures go to ``artifacts/screenshots/editing/`` for a person to look at.
"""

from __future__ import annotations

import shutil
import xml.etree.ElementTree as ET
from pathlib import Path

from PySide6.QtCore import QMimeData, QPoint, QPointF, Qt, QUrl
from PySide6.QtGui import QDragEnterEvent, QDragLeaveEvent, QDragMoveEvent, QDropEvent, QImage
from PySide6.QtTest import QTest
from PySide6.QtWidgets import QApplication, QFileDialog, QMessageBox

from tests.ui.conftest import CNN, ROOT, drag, node_point, port_point, project_json
from ui.mainwindow import MainWindow
from workbench.config import DATA_FIELDS, TRAINING_FIELDS, applies
from workbench.graph import Edge

SHOTS = ROOT / "artifacts" / "screenshots" / "editing"
LEFT, NO = Qt.MouseButton.LeftButton, Qt.KeyboardModifier.NoModifier
ACTIONS = Qt.DropAction.CopyAction | Qt.DropAction.MoveAction


def shot(widget, name: str) -> Path:
    SHOTS.mkdir(parents=True, exist_ok=True)
    path = SHOTS / f"{name}.png"
    assert widget.grab().save(str(path))
    return path


def edge_between(w: MainWindow, a: str, b: str) -> Edge:
    g = w.doc.graph
    src, dst = g.by_name(a).id, g.by_name(b).id
    return next(e for e in g.edges if e.src == src and e.dst == dst)


def wire_point(w: MainWindow, edge: Edge, at: float = 0.5) -> QPoint:
    """A view point on the wire (scrolled into sight)."""
    item = w.scene.edges[edge]
    p = item.mapToScene(item.path().pointAtPercent(at))
    w.view.centerOn(p)
    return w.view.mapFromScene(p)


def palette_drag(w: MainWindow, layer: str, points: list[QPoint], drop: bool = True) -> None:
    """Drag a palette entry over the canvas through ``points`` (enter, moves), then drop at the last
    one or leave: the events the view receives from a real drag, carrying the palette's own data."""
    mime = w.palette.tree.mimeData([w.palette.items[layer]])
    vp = w.view.viewport()
    enter = QDragEnterEvent(points[0], ACTIONS, mime, Qt.MouseButton.NoButton, NO)
    QApplication.sendEvent(vp, enter)
    assert enter.isAccepted()
    for p in points:
        move = QDragMoveEvent(p, ACTIONS, mime, Qt.MouseButton.NoButton, NO)
        QApplication.sendEvent(vp, move)
        assert move.isAccepted()
    if drop:
        event = QDropEvent(QPointF(points[-1]), ACTIONS, mime, Qt.MouseButton.NoButton, NO)
        QApplication.sendEvent(vp, event)
        assert event.isAccepted()
    else:
        QApplication.sendEvent(vp, QDragLeaveEvent())


def changed_pixels(a: QImage, b: QImage, centre: QPoint, radius: int) -> tuple[int, int]:
    """Pixels that differ between two grabs: within ``radius`` of ``centre``, and elsewhere."""
    near = far = 0
    for y in range(0, a.height(), 2):
        for x in range(0, a.width(), 2):
            if a.pixel(x, y) != b.pixel(x, y):
                if abs(x - centre.x()) <= radius and abs(y - centre.y()) <= radius:
                    near += 1
                else:
                    far += 1
    return near, far


# ---------------------------------------------------------------- dropping a layer on a wire


def test_a_layer_dropped_on_a_wire_is_inserted_into_it(window) -> None:
    window.open_path(CNN)
    g, stack = window.doc.graph, window.doc.undo_stack
    start = project_json(window)
    window.view.zoom_by(1 / window.view.zoom())  # 100%
    old = edge_between(window, "conv1", "bn1")
    on_wire = wire_point(window, old)
    beside = on_wire + QPoint(150, 0)
    vp = window.view.viewport()
    before = vp.grab().toImage()
    mime = window.palette.tree.mimeData([window.palette.items["Dropout"]])
    QApplication.sendEvent(vp, QDragEnterEvent(beside, ACTIONS, mime, Qt.MouseButton.NoButton, NO))
    assert window.view._drop_target.edge is None  # not on a wire yet
    QApplication.sendEvent(vp, QDragMoveEvent(on_wire, ACTIONS, mime, Qt.MouseButton.NoButton, NO))
    # over the wire: it is highlighted (a change on screen around it, and only there)
    assert window.view._drop_target.edge == old
    during = vp.grab().toImage()
    shot(window.view, "insert_highlight")
    near, far = changed_pixels(before, during, on_wire, 40)
    assert near > 10 and far < near / 4, (near, far)
    QApplication.sendEvent(vp, QDropEvent(QPointF(on_wire), ACTIONS, mime, Qt.MouseButton.NoButton, NO))
    assert window.view._drop_target.edge is None  # the highlight went with the drag
    # the wire split: conv1 -> dropout -> bn1, in one undo step
    new = g.by_name("dropout1")
    assert old not in g.edges
    assert Edge(old.src, "y", new.id, "x") in g.edges and Edge(new.id, "y", old.dst, "x") in g.edges
    assert stack.undoText() == "Insert Dropout between conv1 and bn1"
    # there was no room between the two: bn1 and everything below it moved one step down
    assert new.position == (0.0, 220.0)
    assert g.by_name("bn1").position == (0.0, 330.0) and g.by_name("logits").position == (0.0, 1650.0)
    assert g.by_name("conv1").position == (0.0, 110.0)
    # and the canvas shows them where the graph has them (the grid snaps the mouse, not the model)
    assert all(window.scene.nodes[n.id].pos() == QPointF(*n.position) for n in g)
    assert window.scene.selected_node_ids() == [new.id]
    assert window.doc.shapes.info(g.by_name("logits").id).status == "ok"
    shot(window.view, "insert_after")
    end = project_json(window)
    stack.undo()
    assert project_json(window) == start
    assert set(window.scene.edges) == set(g.edges) and set(window.scene.nodes) == set(g.nodes)
    assert all(window.scene.nodes[n.id].pos() == QPointF(*n.position) for n in g)
    stack.redo()
    assert project_json(window) == end


def test_a_layer_dropped_where_there_is_room_stays_where_it_was_dropped(window) -> None:
    g = window.doc.graph
    a = window.editor.add_layer("Input", QPointF(0, 0), connect=False)
    b = window.editor.add_layer("Linear", QPointF(0, 400), connect=False)
    drag(window.view.viewport(), port_point(window, a, "y", True), port_point(window, b, "x", False))
    [edge] = g.edges
    window.scene.clearSelection()
    palette_drag(window, "ReLU", [wire_point(window, edge, 0.45)])
    relu = g.by_name("relu1")
    assert {(e.src, e.dst) for e in g.edges} == {(a, relu.id), (relu.id, b)}
    assert g.nodes[b].position == (0.0, 400.0)  # nothing moved
    assert 66 + 20 <= relu.position[1] <= 400 - 66 - 20  # clear of both
    assert window.doc.undo_stack.undoText() == "Insert ReLU between input1 and linear1"


def test_a_layer_without_an_input_is_added_beside_the_wire(window) -> None:
    window.open_path(CNN)
    g = window.doc.graph
    old = edge_between(window, "fc", "relu3")
    edges = set(g.edges)
    palette_drag(window, "Input", [wire_point(window, old)])
    assert set(g.edges) == edges and len(g.inputs()) == 2
    assert "cannot go into a wire" in window.statusBar().currentMessage()
    assert window.doc.undo_stack.undoText() == "Add Input"


def test_a_ready_block_dropped_on_a_wire_comes_with_its_definition_in_one_step(window) -> None:
    window.open_path(CNN)
    g, stack = window.doc.graph, window.doc.undo_stack
    start = project_json(window)
    old = edge_between(window, "relu1", "pool1")
    palette_drag(window, "ready:ResBlock", [wire_point(window, old)])
    block = next(n for n in g if n.is_block)
    assert Edge(old.src, "y", block.id, block.input_ports[0]) in g.edges
    assert Edge(block.id, block.output_ports[0], old.dst, "x") in g.edges
    assert stack.undoText() == f"Insert {block.spec.name} between relu1 and pool1"
    stack.undo()
    assert project_json(window) == start  # the block's definition went too


# ---------------------------------------------------------------- a drop after the selected node


def test_a_drop_with_one_node_selected_connects_after_it(window) -> None:
    window.open_path(CNN)
    g, stack = window.doc.graph, window.doc.undo_stack
    classifier = g.by_name("classifier")
    QTest.mouseClick(window.view.viewport(), LEFT, NO, node_point(window, classifier.id))
    assert window.scene.selected_node_ids() == [classifier.id]
    empty = window.view.mapFromScene(QPointF(classifier.position[0] + 450, classifier.position[1] + 40))
    start = project_json(window)
    palette_drag(window, "Softmax", [empty])
    soft = g.by_name("softmax1")
    assert Edge(classifier.id, "y", soft.id, "x") in g.edges
    assert stack.undoText() == "Add Softmax after classifier"
    assert window.scene.selected_node_ids() == [soft.id]  # so the next drop chains after it
    palette_drag(window, "Dropout", [empty + QPoint(0, 140)])
    assert Edge(soft.id, "y", g.by_name("dropout1").id, "x") in g.edges
    stack.undo()
    stack.undo()
    assert project_json(window) == start
    # two nodes selected: a drop connects to neither
    window.scene.select_nodes([classifier.id, g.by_name("fc").id])
    palette_drag(window, "Softmax", [empty])
    assert not g.edges_from(g.by_name("softmax1").id) and not g.edges_into(g.by_name("softmax1").id)
    assert stack.undoText() == "Add Softmax"


# ---------------------------------------------------------------- wires: replace, re-route, disconnect


def test_a_wire_dropped_on_a_taken_input_replaces_the_old_one(window) -> None:
    window.open_path(CNN)
    g, stack = window.doc.graph, window.doc.undo_stack
    start = project_json(window)
    conv1, bn1, relu1 = (g.by_name(n).id for n in ("conv1", "bn1", "relu1"))
    window.view.centerOn(window.scene.nodes[bn1].pos())
    drag(window.view.viewport(), port_point(window, conv1, "y", True), port_point(window, relu1, "x", False))
    assert g.edge_into(relu1, "x") == Edge(conv1, "y", relu1, "x")
    assert Edge(bn1, "y", relu1, "x") not in g.edges
    assert stack.undoText() == "Connect conv1 to relu1 (replacing bn1)"
    stack.undo()
    assert project_json(window) == start
    # one that would close a cycle is still refused, and the old wire stays
    steps = stack.count()
    drag(window.view.viewport(), port_point(window, relu1, "y", True), port_point(window, bn1, "x", False))
    assert "cycle" in window.statusBar().currentMessage()
    assert project_json(window) == start and stack.count() == steps


def test_a_wire_end_dragged_off_an_input_is_rerouted_or_disconnected(window, qtbot) -> None:
    window.open_path(CNN)
    g, stack = window.doc.graph, window.doc.undo_stack
    bn1, relu1 = g.by_name("bn1").id, g.by_name("relu1").id
    spare = window.editor.add_layer("ReLU", QPointF(300, 330), connect=False)
    window.scene.clearSelection()
    window.view.zoom_by(1 / window.view.zoom())  # 100%
    window.view.centerOn(window.scene.nodes[relu1].pos() + QPointF(150, 0))
    vp = window.view.viewport()
    start = project_json(window)
    # a click on a taken input changes nothing
    QTest.mouseClick(vp, LEFT, NO, port_point(window, relu1, "x", False))
    assert project_json(window) == start
    # press on the input end and move: the wire comes off (drawn faint where it was)
    a, b = port_point(window, relu1, "x", False), port_point(window, spare, "x", False)
    QTest.mousePress(vp, LEFT, NO, a)
    for i in range(1, 9):
        QTest.mouseMove(vp, a + (b - a) * (i / 8))
    assert window.scene.edges[Edge(bn1, "y", relu1, "x")].opacity() < 0.5
    shot(window.view, "reroute_drag")
    QTest.mouseRelease(vp, LEFT, NO, b)
    assert g.edge_into(spare, "x") == Edge(bn1, "y", spare, "x") and g.edge_into(relu1, "x") is None
    assert stack.undoText() == "Reconnect bn1 from relu1 to relu4"
    assert window.scene.edges[Edge(bn1, "y", spare, "x")].opacity() == 1.0
    rerouted = project_json(window)
    # from there to empty canvas: disconnected
    empty = window.view.mapFromScene(QPointF(700, 330))
    drag(vp, port_point(window, spare, "x", False), empty)
    assert g.edge_into(spare, "x") is None and g.edge_into(relu1, "x") is None
    assert stack.undoText() == "Disconnect bn1 from relu4"
    stack.undo()
    assert project_json(window) == rerouted
    stack.undo()
    assert g.edge_into(relu1, "x") == Edge(bn1, "y", relu1, "x") and g.edge_into(spare, "x") is None


def test_a_wire_end_dropped_on_a_node_body_stays_with_a_hint(window) -> None:
    window.open_path(CNN)
    g = window.doc.graph
    relu1, pool1 = g.by_name("relu1").id, g.by_name("pool1").id
    window.view.centerOn(window.scene.nodes[relu1].pos())
    start = project_json(window)
    drag(window.view.viewport(), port_point(window, relu1, "x", False), node_point(window, pool1) + QPoint(40, 0))
    assert project_json(window) == start
    assert "input port" in window.statusBar().currentMessage()


# ---------------------------------------------------------------- files dropped on the window


def file_drop(w: MainWindow, paths: list[Path], at: QPoint | None = None) -> bool:
    """Drop files (as a file manager does) on the canvas; returns whether the drag was accepted."""
    mime = QMimeData()
    mime.setUrls([QUrl.fromLocalFile(str(p)) for p in paths])
    vp = w.view.viewport()
    at = at or vp.rect().center()
    enter = QDragEnterEvent(at, ACTIONS, mime, Qt.MouseButton.NoButton, NO)
    QApplication.sendEvent(vp, enter)
    if not enter.isAccepted():
        return False
    move = QDragMoveEvent(at, ACTIONS, mime, Qt.MouseButton.NoButton, NO)
    QApplication.sendEvent(vp, move)
    assert move.isAccepted()
    drop = QDropEvent(QPointF(at), ACTIONS, mime, Qt.MouseButton.NoButton, NO)
    QApplication.sendEvent(vp, drop)
    return drop.isAccepted()


def test_a_project_dropped_on_the_window_opens_after_asking_about_unsaved_changes(window, asker, qtbot,
                                                                                   tmp_path: Path) -> None:
    window.editor.add_layer("ReLU", QPointF(0, 0))  # unsaved work
    (tmp_path / "notes.txt").write_text("hello")
    assert not file_drop(window, [tmp_path / "notes.txt"])  # not something the window opens
    asker.answers = [QMessageBox.StandardButton.Cancel]
    assert file_drop(window, [CNN])
    qtbot.waitUntil(lambda: bool(asker.asked))
    assert asker.asked[-1][0] == "Unsaved changes"
    assert window.doc.project.path is None  # cancelled: the work stays
    assert file_drop(window, [CNN])  # answered Discard (the default)
    qtbot.waitUntil(lambda: window.doc.project.path == CNN.resolve())
    assert "conv1" in {n.name for n in window.doc.graph}
    # a broken file is an error naming it, and the project stays
    (tmp_path / "broken.json").write_text("{")
    assert file_drop(window, [tmp_path / "broken.json"])
    qtbot.waitUntil(lambda: asker.asked[-1][0] == "Cannot open the project")
    assert "broken.json" in asker.asked[-1][1] and window.doc.project.path == CNN.resolve()


def test_an_onnx_model_dropped_on_the_window_is_imported(window, asker, qtbot, monkeypatch,
                                                        tmp_path: Path) -> None:
    from workbench.export.onnx_export import export_onnx
    from workbench.project import load_project

    export_onnx(load_project(CNN), tmp_path / "cnn.onnx")
    asked: list[str] = []

    def save_as(parent, title, start, *a, **k):
        asked.append(start)
        return (str(tmp_path / "imported.json"), "")

    monkeypatch.setattr(QFileDialog, "getSaveFileName", staticmethod(save_as))
    assert file_drop(window, [tmp_path / "cnn.onnx"])
    qtbot.waitUntil(lambda: window.doc.project.path == (tmp_path / "imported.json").resolve(), timeout=60_000)
    assert asked == [str(tmp_path / "cnn.json")]  # the project is saved where the user says
    assert asker.asked[-1][0] == "ONNX import checked"
    assert len(window.doc.graph) == len(load_project(CNN).graph)


# ---------------------------------------------------------------- the diagram as a picture


def test_the_diagram_exports_as_png_and_svg_never_over_the_project(window, asker, monkeypatch,
                                                                   tmp_path: Path) -> None:
    window.open_path(CNN)
    window.scene.select_nodes([window.doc.graph.by_name("conv1").id])
    chosen: list[tuple[str, str]] = [(str(tmp_path / "cnn.png"), "PNG image (*.png)"),
                                     (str(tmp_path / "cnn"), "SVG image (*.svg)")]
    monkeypatch.setattr(QFileDialog, "getSaveFileName", staticmethod(lambda *a, **k: chosen.pop(0)))
    window.act_export_diagram.trigger()
    img = QImage(str(tmp_path / "cnn.png"))
    # the whole graph (15 nodes in a column) at twice the scene's size
    assert img.height() > 2 * 15 * 66 and img.height() > 4 * img.width()
    colours = {img.pixel(x, y) for y in range(0, img.height(), 9) for x in range(0, img.width(), 3)}
    assert len(colours) > 20
    SHOTS.mkdir(parents=True, exist_ok=True)
    shutil.copy(tmp_path / "cnn.png", SHOTS / "diagram_cnn.png")
    assert "Diagram written" in window.statusBar().currentMessage()
    window.view.zoom_by(0.001)  # so far out that the canvas draws a quick overview instead of its items
    assert window.scene.overview_on
    window.act_export_diagram.trigger()  # no suffix typed: the chosen filter's
    assert window.scene.overview_on  # (put back)
    svg = ET.parse(tmp_path / "cnn.svg").getroot()
    assert svg.tag.endswith("svg")
    texts = {t.text.strip() for t in svg.iter() if t.tag.endswith("text") and t.text}
    assert {"conv1", "bn1", "logits"} <= texts
    assert window.scene.selected_node_ids() == [window.doc.graph.by_name("conv1").id]  # put back
    assert window.scene.show_grid
    # never over the project it shows (here a project whose file is named like a picture)
    shown = tmp_path / "model.svg"
    shutil.copy(CNN, shown)
    window.open_path(shown)
    before = shown.read_bytes()
    chosen.append((str(shown), "SVG image (*.svg)"))
    window.act_export_diagram.trigger()
    assert asker.asked[-1][0] == "Cannot export the diagram" and "overwrite the project" in asker.asked[-1][1]
    assert shown.read_bytes() == before
    # a folder in the way: refused, nothing left behind
    (tmp_path / "pics.png").mkdir()
    chosen.append((str(tmp_path / "pics.png"), "PNG image (*.png)"))
    window.act_export_diagram.trigger()
    assert "is a directory" in asker.asked[-1][1]
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]


def test_an_empty_canvas_has_no_diagram(window, asker, monkeypatch, tmp_path: Path) -> None:
    monkeypatch.setattr(QFileDialog, "getSaveFileName",
                        staticmethod(lambda *a, **k: (str(tmp_path / "x.png"), "PNG image (*.png)")))
    window.act_export_diagram.trigger()
    assert asker.asked[-1][0] == "Cannot export the diagram" and "empty" in asker.asked[-1][1]
    assert not (tmp_path / "x.png").exists()


# ---------------------------------------------------------------- the inspector comes forward


def in_front(widget) -> bool:
    """Whether a dock's page is on screen (Qt moves a dock behind another's tab out of sight)."""
    return not widget.visibleRegion().isEmpty()


def test_selecting_a_node_brings_the_inspector_forward(window, qtbot) -> None:
    window.open_path(CNN)
    window.setup_dock.raise_()
    qtbot.waitUntil(lambda: in_front(window.setup) and not in_front(window.inspector))
    QTest.mouseClick(window.view.viewport(), LEFT, NO, node_point(window, window.doc.graph.by_name("fc").id))
    qtbot.waitUntil(lambda: in_front(window.inspector))
    assert not in_front(window.setup)
    assert "out_features" in window.inspector.editors
    # a click on empty canvas leaves the docks as they are
    window.setup_dock.raise_()
    QTest.mouseClick(window.view.viewport(), LEFT, NO, window.view.mapFromScene(QPointF(900, 300)))
    qtbot.wait(50)
    assert in_front(window.setup)


# ---------------------------------------------------------------- the set-up shows what applies


def shown(window, section: str) -> set[str]:
    form = window.setup.training_form if section == "training" else window.setup.data_form
    return {k for k in form.editors if form.is_shown(k)}


def choose(window, section: str, key: str, text: str) -> None:
    """Pick ``text`` in a list of the set-up form by typing it (keyboard search), as a user can."""
    form = window.setup.training_form if section == "training" else window.setup.data_form
    combo = form.editors[key].widget
    combo.setFocus()
    QTest.qWait(QApplication.keyboardInputInterval() + 50)  # (a new search, not the last one continued)
    QTest.keyClicks(combo, text)  # a list finds what is typed
    assert combo.currentText() == text
    assert getattr(window.doc.project, section)[key] == text


def test_the_setup_form_shows_only_what_applies_and_hidden_values_stay(window) -> None:
    window.setup_dock.show()
    window.setup_dock.raise_()
    stack = window.doc.undo_stack
    assert "nesterov" not in shown(window, "training") and "momentum" in shown(window, "training")
    assert window.setup.training_form.labels["momentum"].text() == "beta1"  # adam
    choose(window, "training", "optimizer", "sgd")
    assert {"nesterov", "momentum"} <= shown(window, "training")
    assert window.setup.training_form.labels["momentum"].text() == "momentum"
    assert stack.undoText() == "Set training optimizer"
    # a schedule's settings: typed while shown, kept while hidden
    assert "step_size" not in shown(window, "training")
    choose(window, "training", "schedule", "step")
    step = window.setup.training_form.editors["step_size"].widget
    assert step.isVisible()
    QTest.mouseClick(step, LEFT, NO, step.rect().center())
    QTest.keyClick(step, Qt.Key.Key_A, Qt.KeyboardModifier.ControlModifier)
    QTest.keyClicks(step, "7")
    QTest.keyClick(step, Qt.Key.Key_Return)
    assert window.doc.project.training["step_size"] == 7
    choose(window, "training", "schedule", "cosine")
    assert not step.isVisible() and window.doc.project.training["step_size"] == 7
    choose(window, "training", "schedule", "step")
    assert step.isVisible() and step.text() == "7"
    # the data side follows the dataset
    assert shown(window, "data") >= {"augment"} and not shown(window, "data") & {"path", "seq_len"}
    choose(window, "data", "dataset", "text")
    assert {"path", "seq_len"} <= shown(window, "data") and "augment" not in shown(window, "data")
    stack.undo()  # undo follows too
    assert "seq_len" not in shown(window, "data")


def test_the_form_follows_the_rules_for_every_choice(window) -> None:
    """Generated from the declarations: each choice of each list, set as a user would, shows
    exactly the rows ``workbench.config.applies`` names."""
    from ui.config_form import SetConfigCommand

    doc = window.doc
    for section, fields in (("data", DATA_FIELDS), ("training", TRAINING_FIELDS)):
        for f in fields:
            for value in getattr(f, "choices", ()) or ():
                old = getattr(doc.project, section)[f.name]
                if value != old:
                    doc.undo_stack.push(SetConfigCommand(doc, section, f.name, value))
                for sec, decl in (("data", DATA_FIELDS), ("training", TRAINING_FIELDS)):
                    want = {d.name for d in decl if applies(f"{sec}.{d.name}", doc.project.data, doc.project.training)}
                    assert shown(window, sec) == want, (f.name, value, sec)
                if value != old:
                    doc.undo_stack.undo()
