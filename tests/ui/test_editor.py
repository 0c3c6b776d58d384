"""The editor driven like a user drives it: real widgets, real mouse and key events."""

from __future__ import annotations

from pathlib import Path

from PySide6.QtCore import QPoint, QPointF, Qt
from PySide6.QtTest import QTest
from PySide6.QtWidgets import QFileDialog, QMessageBox

from tests.ui.conftest import CNN, SAMPLES, drag, drop_layer, graph_json, node_point, port_point, project_json


def add_by_drop(window, layer: str, at: QPoint) -> str:
    """A drop with nothing selected (a drop while one node is selected connects after it)."""
    window.scene.clearSelection()
    before = set(window.doc.graph.nodes)
    drop_layer(window, layer, at)
    (new,) = set(window.doc.graph.nodes) - before
    return new


def test_drag_a_palette_entry_onto_the_canvas(window) -> None:
    at = QPoint(400, 300)
    nid = add_by_drop(window, "Conv2d", at)
    node = window.doc.graph.nodes[nid]
    assert node.type == "Conv2d"
    # created at the drop point (node centred on the cursor, snapped to the grid)
    item = window.scene.nodes[nid]
    centre = window.view.mapFromScene(item.pos() + QPointF(95, 33))
    assert abs(centre.x() - at.x()) <= 20 and abs(centre.y() - at.y()) <= 20
    assert window.doc.undo_stack.undoText() == "Add Conv2d"
    window.doc.undo_stack.undo()
    assert nid not in window.doc.graph.nodes and nid not in window.scene.nodes


def test_connect_by_dragging_from_output_to_input(window) -> None:
    a = add_by_drop(window, "Input", QPoint(300, 150))
    b = add_by_drop(window, "Linear", QPoint(300, 400))
    drag(window.view.viewport(), port_point(window, a, "y", True), port_point(window, b, "x", False))
    [edge] = window.doc.graph.edges
    assert (edge.src, edge.dst) == (a, b)
    assert window.scene.edges[edge].isVisible()
    # the node now shows its inferred shape
    assert window.scene.nodes[b].shape_text == "[N, 1, 8, 64]"  # Linear acts on the last dim
    assert window.doc.undo_stack.undoText().startswith("Connect")


def test_an_invalid_connection_is_refused_with_a_reason(window) -> None:
    a = add_by_drop(window, "Input", QPoint(300, 120))
    b = add_by_drop(window, "ReLU", QPoint(300, 300))
    c = add_by_drop(window, "ReLU", QPoint(300, 480))
    vp = window.view.viewport()
    drag(vp, port_point(window, a, "y", True), port_point(window, b, "x", False))
    drag(vp, port_point(window, b, "y", True), port_point(window, c, "x", False))
    # c -> b would close a cycle
    drag(vp, port_point(window, c, "y", True), port_point(window, b, "x", False))
    assert len(window.doc.graph.edges) == 2
    assert "cycle" in window.statusBar().currentMessage()
    # input to input is refused too (from a free input: a taken one lifts its wire to re-route it)
    d = add_by_drop(window, "ReLU", QPoint(560, 300))
    drag(vp, port_point(window, d, "x", False), port_point(window, c, "x", False))
    assert "Cannot connect two inputs" in window.statusBar().currentMessage()


def test_delete_then_undo_and_redo_restore_identical_graphs(window) -> None:
    assert window.open_path(CNN)
    start = graph_json(window)
    victim = window.doc.graph.by_name("fc").id
    QTest.mouseClick(window.view.viewport(), Qt.MouseButton.LeftButton, Qt.KeyboardModifier.NoModifier,
                     node_point(window, victim))
    assert window.scene.selected_node_ids() == [victim]
    QTest.keyClick(window.view, Qt.Key.Key_Delete)
    assert victim not in window.doc.graph.nodes
    after_delete = graph_json(window)
    window.doc.undo_stack.undo()
    assert graph_json(window) == start
    window.doc.undo_stack.redo()
    assert graph_json(window) == after_delete


def test_moving_a_node_is_one_undo_step(window) -> None:
    nid = add_by_drop(window, "ReLU", QPoint(300, 300))
    old = window.doc.graph.nodes[nid].position
    count = window.doc.undo_stack.count()
    drag(window.view.viewport(), node_point(window, nid), node_point(window, nid) + QPoint(150, 90), steps=12)
    new = window.doc.graph.nodes[nid].position
    assert new != old and window.doc.undo_stack.count() == count + 1
    window.doc.undo_stack.undo()
    assert window.doc.graph.nodes[nid].position == old
    assert window.scene.nodes[nid].pos() == QPointF(*old)


def test_inspector_edits_update_shapes_and_undo(window, qtbot) -> None:
    window.open_path(CNN)  # digits_cnn.json
    g = window.doc.graph
    conv = g.by_name("conv1").id
    window.scene.select_nodes([conv])
    spin = window.inspector.editors["out_channels"].widget
    count = window.doc.undo_stack.count()
    QTest.mouseClick(spin, Qt.MouseButton.LeftButton)
    QTest.keyClick(spin, Qt.Key.Key_A, Qt.KeyboardModifier.ControlModifier)
    QTest.keyClicks(spin, "8")
    QTest.keyClick(spin, Qt.Key.Key_Return)
    assert g.nodes[conv].params["out_channels"] == 8
    assert window.doc.undo_stack.count() == count + 1
    assert window.scene.nodes[conv].shape_text == "[N, 8, 8, 8]"
    assert window.scene.nodes[g.by_name("bn1").id].params_text == "16"  # 2 x 8 affine params
    window.doc.undo_stack.undo()
    assert g.nodes[conv].params["out_channels"] == 16
    assert spin.text() == "16"  # the editor follows undo


def test_tuple_editor_validates_as_you_type_and_stores_on_enter(window) -> None:
    window.open_path(CNN)
    conv = window.doc.graph.by_name("conv1").id
    window.scene.select_nodes([conv])
    editor = window.inspector.editors["kernel_size"]
    QTest.keyClicks(editor.widget, "")
    editor.widget.selectAll()
    QTest.keyClicks(editor.widget, "0, 3")
    assert editor.error.isVisibleTo(window.inspector)
    assert "positive ints" in editor.error.text()
    assert window.doc.graph.nodes[conv].params["kernel_size"] == (3, 3)
    editor.widget.selectAll()
    QTest.keyClicks(editor.widget, "5x5")
    assert not editor.error.isVisibleTo(window.inspector)
    assert window.doc.graph.nodes[conv].params["kernel_size"] == (3, 3)  # typed, not stored yet
    QTest.keyClick(editor.widget, Qt.Key.Key_Return)
    assert window.doc.graph.nodes[conv].params["kernel_size"] == (5, 5)
    # 5x5 with padding 1 on an 8x8 input: [N, 16, 6, 6]
    assert window.scene.nodes[conv].shape_text == "[N, 16, 6, 6]"


def test_multi_selection_edits_nodes_of_one_type_together(window) -> None:
    window.open_path(CNN)
    g = window.doc.graph
    convs = [g.by_name("conv1").id, g.by_name("conv2").id]
    window.scene.select_nodes(convs)
    window.inspector.editors["bias"].widget.setChecked(False)
    assert all(g.nodes[c].params["bias"] is False for c in convs)
    assert window.doc.undo_stack.undoText() == "Set bias of 2 nodes"


def test_a_broken_shape_is_pinned_to_the_node_and_listed(window) -> None:
    window.open_path(CNN)
    g = window.doc.graph
    pool = g.by_name("pool2").id
    window.scene.select_nodes([pool])
    window.inspector.editors["kernel_size"].widget.selectAll()
    QTest.keyClicks(window.inspector.editors["kernel_size"].widget, "9, 9")
    QTest.keyClick(window.inspector.editors["kernel_size"].widget, Qt.Key.Key_Return)
    item = window.scene.nodes[pool]
    assert item.status == "error" and "kernel_size" in item.toolTip()
    problems = [window.problems.list.item(i).text() for i in range(window.problems.list.count())]
    assert any('MaxPool2d "pool2"' in p for p in problems)
    # clicking the problem selects the node
    window.scene.clearSelection()
    window.problems._clicked(window.problems.list.item(0))
    assert window.scene.selected_node_ids() == [pool]


def test_copy_paste_and_duplicate(window) -> None:
    window.open_path(CNN)
    g = window.doc.graph
    n0 = len(g)
    ids = [g.by_name("conv1").id, g.by_name("bn1").id]
    window.scene.select_nodes(ids)
    assert window.editor.copy()
    new = window.editor.paste()
    assert len(new) == 2 and len(g) == n0 + 2
    names = {g.nodes[i].name for i in new}
    assert names.isdisjoint({"conv1", "bn1"})
    # the wire between the two copied nodes came along
    assert any(e.src in new and e.dst in new for e in g.edges)
    dup = window.editor.duplicate()
    assert len(dup) == 2 and len(g) == n0 + 4
    window.doc.undo_stack.undo()
    window.doc.undo_stack.undo()
    assert len(g) == n0


def test_paste_of_garbage_is_a_message_not_a_crash(window) -> None:
    assert window.editor.paste('{"graph": {"nodes": [{"id": 3}]}}') == []
    assert "graph.nodes[0].id" in window.statusBar().currentMessage()
    assert window.editor.paste("not json") == []


def test_palette_search_and_enter_adds_after_the_selection(window) -> None:
    window.open_path(CNN)
    g = window.doc.graph
    classifier = g.by_name("classifier").id
    out = g.by_name("logits").id
    g_edges = [e for e in g.edges if e.src == classifier]
    window.doc.undo_stack.push(__import__("ui.commands", fromlist=["x"]).RemoveNodesCommand(g, [out]))
    assert not g_edges or all(e.dst != out for e in g.edges)
    window.scene.select_nodes([classifier])
    QTest.keyClicks(window.palette.search, "softmax")
    hits = window.palette.visible_layers()
    assert {"LogSoftmax", "Softmax"} <= set(hits)
    from workbench.layers import REGISTRY

    # every hit matches by name or by its one-line doc (Softmin is "Softmax of -x")
    assert all("softmax" in (REGISTRY[h].name + REGISTRY[h].doc).lower() for h in hits), hits
    window.palette.search.clear()
    QTest.keyClicks(window.palette.search, "Softmax")
    QTest.keyClick(window.palette.search, Qt.Key.Key_Return)
    new = g.by_name("softmax1")
    assert any(e.src == classifier and e.dst == new.id for e in g.edges)
    assert window.doc.undo_stack.undoText() == "Add Softmax after classifier"


def test_rename_in_place(window) -> None:
    nid = add_by_drop(window, "Linear", QPoint(300, 300))
    QTest.mouseDClick(window.view.viewport(), Qt.MouseButton.LeftButton, Qt.KeyboardModifier.NoModifier,
                      node_point(window, nid))
    edit = window.view.viewport().findChild(type(window.palette.search), "renameEdit")
    assert edit is not None
    edit.selectAll()
    QTest.keyClicks(edit, "hidden layer")
    QTest.keyClick(edit, Qt.Key.Key_Return)
    assert window.doc.graph.nodes[nid].name == "hidden layer"
    assert window.scene.nodes[nid].title == "hidden layer"


def test_auto_layout_is_one_undo_step(window) -> None:
    window.open_path(CNN)
    before = graph_json(window)
    window.editor.auto_layout("LR")
    assert graph_json(window) != before
    assert window.doc.undo_stack.undoText().startswith("Auto-layout")
    window.doc.undo_stack.undo()
    assert graph_json(window) == before


def test_zoom_keys_and_wheel(window) -> None:
    z = window.view.zoom()
    window.act_zoom_in.trigger()
    assert window.view.zoom() > z
    window.act_zoom_out.trigger()
    window.act_zoom_out.trigger()
    assert window.view.zoom() < z


def test_every_sample_opens_mirrors_saves_and_reopens(window, tmp_path: Path) -> None:
    for sample in SAMPLES:
        assert window.open_path(sample, ask_save=False)
        g = window.doc.graph
        assert set(window.scene.nodes) == set(g.nodes)
        assert set(window.scene.edges) == set(g.edges)
        for nid, item in window.scene.nodes.items():
            assert item.title == g.nodes[nid].name and item.status == "ok"
        before = project_json(window)
        out = tmp_path / sample.name
        assert window._save_to(out)
        assert window.open_path(out, ask_save=False)
        assert project_json(window) == before


def test_a_broken_file_shows_its_json_path_and_the_editor_stays_usable(window, asker, tmp_path: Path) -> None:
    window.open_path(CNN)
    bad = tmp_path / "bad.json"
    text = CNN.read_text().replace('"out_channels": 16', '"out_channels": -1', 1)
    bad.write_text(text)
    assert not window.open_path(bad)
    _title, message = asker.asked[-1]
    assert "graph.nodes[1].params.out_channels: expected" in message and message.endswith("got -1")
    assert window.doc.project.path == CNN.resolve()  # the open project stayed
    add_by_drop(window, "ReLU", QPoint(200, 200))


def test_unsaved_changes_are_asked_about(window, asker) -> None:
    window.open_path(CNN)
    add_by_drop(window, "ReLU", QPoint(200, 200))
    assert window.isWindowModified()
    asker.answers = [QMessageBox.StandardButton.Cancel]
    assert not window.close()
    assert asker.asked[-1][0] == "Unsaved changes"
    asker.answers = [QMessageBox.StandardButton.Discard]
    window.new_project()
    assert len(window.doc.graph) == 0


def test_autosave_and_recovery_after_a_crash(window, asker, tmp_path: Path) -> None:
    work = tmp_path / "work.json"
    work.write_text(CNN.read_text())
    window.open_path(work)
    nid = add_by_drop(window, "ReLU", QPoint(200, 200))
    name = window.doc.graph.nodes[nid].name
    recovery = window.autosave()
    assert recovery is not None and recovery.exists()
    assert name not in work.read_text()  # autosave never writes over the project
    # "crash": a fresh open of the same file offers the recovered work
    window.doc.undo_stack.setClean()
    asker.answers = [QMessageBox.StandardButton.Yes]
    window.open_path(work)
    assert asker.asked[-1][0] == "Recover unsaved work?"
    assert name in window.doc.graph.names()
    assert window.isWindowModified()


def test_save_as_of_an_untitled_project_leaves_no_recovery_to_offer(window, asker, tmp_path: Path,
                                                                    monkeypatch) -> None:
    """Recovery offers only what a crashed session left, never this session's own saved work."""
    add_by_drop(window, "ReLU", QPoint(300, 300))
    assert window.doc.project.path is None and window.doc.modified
    assert window.autosave() is not None  # a minute passed: the untitled work is in a recovery file
    target = tmp_path / "mine.json"
    monkeypatch.setattr(QFileDialog, "getSaveFileName", staticmethod(lambda *a, **k: (str(target), "")))
    assert window.save_as()
    assert target.exists() and not window.doc.modified
    assert list((tmp_path / "recovery").glob("*.json")) == []  # saved: nothing left to recover
    window.open_path(CNN)
    assert "Recover unsaved work?" not in [title for title, _ in asker.asked]


def test_every_template_opens_from_the_menu_as_an_untitled_project(window) -> None:
    """Samples and architectures are built in code: the menu works from any install (no files needed)."""
    from PySide6.QtGui import QAction

    from workbench.templates import starting_points

    for template_id, (title, _) in starting_points().items():
        if template_id in ("bert_base", "vgg16", "alexnet", "resnet50"):
            continue  # large: the same code path, built in the core tests
        action = window.templates_menu.findChild(QAction, f"template_{template_id}")
        assert action is not None and action.text() == title
        action.trigger()
        assert window.doc.project.path is None and len(window.doc.graph) > 0, template_id
        window.doc.undo_stack.setClean()
