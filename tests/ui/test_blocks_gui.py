"""Blocks in the editor, driven like a user: select and group, open with a double-click,
edit inside, expose a parameter, come back, ungroup, place from the palette, files."""

from __future__ import annotations

import gc
import weakref
from pathlib import Path

from PySide6.QtCore import QEvent, QPoint, Qt
from PySide6.QtGui import QImage
from PySide6.QtTest import QTest
from PySide6.QtWidgets import QApplication, QWidget

from tests.ui.conftest import CNN, ROOT, drop_layer, node_point, project_json
from tests.ui.test_screenshots import OUT, distinct_colours
from workbench.block_io import save_block_file
from workbench.project import load_project

RESNET = ROOT / "samples" / "digits_resnet.json"
LEFT, NO, CTRL = Qt.MouseButton.LeftButton, Qt.KeyboardModifier.NoModifier, Qt.KeyboardModifier.ControlModifier


def click(window, node_id: str, modifier: Qt.KeyboardModifier = NO) -> None:
    QTest.mouseClick(window.view.viewport(), LEFT, modifier, node_point(window, node_id))


def double_click(window, node_id: str) -> None:
    QTest.mouseDClick(window.view.viewport(), LEFT, NO, node_point(window, node_id))


def type_into(edit: QWidget, text: str) -> None:
    """Click into a field, replace its text and press Enter (fields store on Enter or focus-out)."""
    QTest.mouseClick(edit, LEFT)
    QTest.keyClick(edit, Qt.Key.Key_A, CTRL)
    QTest.keyClicks(edit, text)
    QTest.keyClick(edit, Qt.Key.Key_Return)


def test_select_nodes_and_group_them_with_ctrl_g_then_undo_and_redo(window, prompter) -> None:
    assert window.open_path(CNN)
    start = project_json(window)
    g = window.doc.graph
    conv2, bn2, relu2 = (g.by_name(n).id for n in ("conv2", "bn2", "relu2"))
    click(window, conv2)
    click(window, bn2, CTRL)
    click(window, relu2, CTRL)
    assert set(window.scene.selected_node_ids()) == {conv2, bn2, relu2}
    prompter.answers = ["Conv unit"]
    QTest.keyClick(window.view, Qt.Key.Key_G, CTRL)
    assert prompter.asked[-1][0] == "Group into block"
    [block] = [n for n in g if n.is_block]
    assert block.type == "ConvUnit" and window.scene.selected_node_ids() == [block.id]
    assert window.scene.nodes[block.id].is_block  # drawn as a block
    assert window.scene.nodes[block.id].shape_text == "[N, 32, 4, 4]"
    assert "ConvUnit" in window.palette.items  # the palette's Blocks section lists it
    assert window.doc.undo_stack.undoText() == "Group 3 nodes into Conv unit"
    grouped = project_json(window)
    window.doc.undo_stack.undo()
    assert project_json(window) == start
    assert "ConvUnit" not in window.palette.items
    assert set(window.scene.nodes) == set(g.nodes)
    window.doc.undo_stack.redo()
    assert project_json(window) == grouped


def test_double_click_opens_a_block_an_edit_inside_reaches_its_uses_and_undo_goes_back_inside(window) -> None:
    assert window.open_path(RESNET)
    start = project_json(window)
    block1 = window.doc.graph.by_name("block1").id
    double_click(window, block1)
    assert window.doc.role == "block:ResBlock" and window.doc.block_id == "ResBlock"
    assert window.blocks.bar.isVisible() and "ResNet basic block" in window.blocks.bar.crumbs.text()
    assert window.blocks.bar.hint.text() == "Block ResBlock: changes apply to all 2 uses"
    inner = window.doc.graph
    conv2 = inner.by_name("conv2").id
    click(window, conv2)
    assert window.inspector.node_ids == [conv2]
    type_into(window.inspector.editors["padding"].widget, "0, 0")
    assert inner.nodes[conv2].params["padding"] == (0, 0)
    # back to the model: the first use carries the error (the second is downstream of it, so unknown)
    QTest.mouseClick(window.blocks.bar.back, LEFT)
    assert window.doc.role == "main" and not window.blocks.bar.isVisible()
    g = window.doc.graph
    assert window.scene.nodes[g.by_name("block1").id].status == "error"
    assert window.scene.nodes[g.by_name("block2").id].status == "unknown"
    problems = [window.problems.list.item(i).text() for i in range(window.problems.list.count())]
    assert any('"block1": inside the block, Add "add"' in p for p in problems)
    # undo shows the block again (where the change is) and restores it
    window.doc.undo_stack.undo()
    assert window.doc.role == "block:ResBlock"
    window.blocks.close_block()
    assert project_json(window) == start
    assert window.scene.nodes[g.by_name("block1").id].status == "ok"


def test_expose_a_parameter_then_set_it_on_one_use(window, prompter) -> None:
    assert window.open_path(RESNET)
    window.blocks.open_definition("ResBlock")
    inner = window.doc.graph
    click(window, inner.by_name("conv1").id)
    button = window.inspector.expose_buttons["kernel_size"]
    assert not button.isChecked()
    prompter.answers = ["k"]
    QTest.mouseClick(button, LEFT)
    assert [p.name for p in window.doc.project.blocks.defs["ResBlock"].params] == ["channels", "k"]
    assert window.inspector.expose_buttons["kernel_size"].isChecked()
    assert window.inspector.expose_buttons["kernel_size"].text() == "◆ k"
    QTest.keyClick(window.view, Qt.Key.Key_Up, Qt.KeyboardModifier.AltModifier)  # back (Alt+Up)
    assert window.doc.role == "main"
    g = window.doc.graph
    click(window, g.by_name("block2").id)
    assert set(window.inspector.editors) == {"channels", "k"}
    type_into(window.inspector.editors["k"].widget, "1, 1")
    assert g.by_name("block2").params["k"] == (1, 1) and g.by_name("block1").params["k"] == (3, 3)
    # a 1x1 first convolution in block2 only: fewer parameters there
    assert window.doc.shapes.info(g.by_name("block2").id).params < window.doc.shapes.info(g.by_name("block1").id).params
    # undo twice: the value, then the exposure (which shows the block again)
    window.doc.undo_stack.undo()
    window.doc.undo_stack.undo()
    assert window.doc.role == "block:ResBlock"
    assert [p.name for p in window.doc.project.blocks.defs["ResBlock"].params] == ["channels"]


def test_ungroup_with_the_keyboard_replaces_the_block_by_its_layers(window) -> None:
    assert window.open_path(RESNET)
    g = window.doc.graph
    click(window, g.by_name("block1").id)
    QTest.keyClick(window.view, Qt.Key.Key_G, CTRL | Qt.KeyboardModifier.ShiftModifier)
    names = {n.name for n in g}
    assert "block1" not in names and {"conv1", "add", "relu2"} <= names
    assert set(window.scene.selected_node_ids()) == {g.by_name(n).id for n in ("conv1", "bn1", "relu1", "conv2",
                                                                                "bn2", "add", "relu2")}
    assert window.doc.shapes.errors() == []
    window.doc.undo_stack.undo()
    assert "block1" in {n.name for n in g}


def test_the_canvas_menu_offers_the_block_actions(window) -> None:
    assert window.open_path(RESNET)
    g = window.doc.graph
    menu = window.blocks.canvas_menu(node_point(window, g.by_name("block1").id))
    texts = [a.text() for a in menu.actions() if a.text()]
    assert {"&Open Block", "&Group into Block…", "&Ungroup Block", "Export Bloc&k…"} <= set(texts)
    assert window.scene.selected_node_ids() == [g.by_name("block1").id]  # right-click selects the node
    next(a for a in menu.actions() if a.text() == "&Open Block").trigger()
    assert window.doc.role == "block:ResBlock"


def test_drop_a_ready_block_from_the_palette_as_one_undo_step(window) -> None:
    assert window.open_path(CNN)
    start = project_json(window)
    window.palette.search.setText("projection")
    assert "ready:ResBlockDown" in window.palette.visible_layers()
    drop_layer(window, "ready:ResBlockDown", QPoint(500, 300))
    [node] = [n for n in window.doc.graph if n.is_block]
    assert node.type == "ResBlockDown" and "ResBlockDown" in window.doc.project.blocks
    assert window.doc.undo_stack.undoText() == "Add ResNet basic block (projection)"
    window.doc.undo_stack.undo()
    assert project_json(window) == start


def test_deleting_a_wired_port_inside_a_block_is_refused_with_a_message(window) -> None:
    assert window.open_path(RESNET)
    window.blocks.open_definition("ResBlock")
    inner = window.doc.graph
    x = inner.by_name("x").id
    click(window, x)
    QTest.keyClick(window.view, Qt.Key.Key_Delete)
    assert x in inner.nodes
    assert 'Cannot delete: "x" is the input port of ResBlock, wired at "block1"' in window.statusBar().currentMessage()


def test_export_a_block_and_import_it_into_another_project(window, tmp_path: Path) -> None:
    assert window.open_path(RESNET)
    path = tmp_path / "res.block.json"
    assert window.blocks.export_block("ResBlock", path)
    assert window.open_path(CNN)
    assert window.blocks.import_block(path) == "ResBlock"
    assert "ResBlock" in window.palette.items
    drop_layer(window, "ResBlock", QPoint(500, 300))
    assert any(n.type == "ResBlock" for n in window.doc.graph)
    # a broken file is a message, not a crash
    path.write_text('{"format": "neural-workbench-block", "version": 1, "block": "A", "blocks": {"A": 3}}')
    assert window.blocks.import_block(path) is None
    title, text = window.ask.asked[-1]
    assert title == "Cannot import the block" and "blocks.A: expected an object" in text


def test_copy_a_block_node_and_paste_it_into_another_project(window) -> None:
    assert window.open_path(RESNET)
    click(window, window.doc.graph.by_name("block1").id)
    assert window.editor.copy()
    assert window.open_path(CNN)
    new = window.editor.paste()
    assert len(new) == 1 and window.doc.graph.nodes[new[0]].type == "ResBlock"
    assert window.doc.project.blocks.defs["ResBlock"].to_dict() == load_project(RESNET).blocks.defs["ResBlock"].to_dict()
    window.doc.undo_stack.undo()  # one step removes the node and the block it brought
    assert "ResBlock" not in window.doc.project.blocks


def test_palette_block_menu_renames_and_deletes(window, prompter, tmp_path: Path) -> None:
    assert window.open_path(CNN)
    save_block_file(load_project(RESNET).blocks, "ResBlock", tmp_path / "b.json")
    window.blocks.import_block(tmp_path / "b.json")
    menu = window.palette.block_menu("ResBlock")
    actions = {a.objectName(): a for a in menu.actions()}
    prompter.answers = ["Residual unit"]
    actions["block_rename"].trigger()
    assert window.doc.project.blocks.defs["ResBlock"].name == "Residual unit"
    assert window.palette.items["ResBlock"].text(0) == "Residual unit"
    actions["block_delete"].trigger()
    assert "ResBlock" not in window.doc.project.blocks and "ResBlock" not in window.palette.items
    window.doc.undo_stack.undo()
    assert "ResBlock" in window.doc.project.blocks


def test_screenshot_of_a_block_open_for_editing(window, qtbot) -> None:
    assert window.open_path(RESNET)
    double_click(window, window.doc.graph.by_name("block2").id)
    click(window, window.doc.graph.by_name("conv1").id)
    qtbot.wait(50)
    OUT.mkdir(parents=True, exist_ok=True)
    path = OUT / "block_editing.png"
    assert window.grab().save(str(path))
    assert distinct_colours(QImage(str(path))) > 12


def test_train_and_export_check_the_model_while_a_block_is_open(window) -> None:
    assert window.open_path(RESNET)
    window.blocks.open_definition("ResBlock")
    inner = window.doc.graph
    click(window, inner.by_name("conv2").id)
    type_into(window.inspector.editors["groups"].widget, "64")  # fine for the 64-channel example input...
    assert inner.by_name("conv2").params["groups"] == 64
    assert window.doc.shapes.errors() == []
    assert not window.training.start()  # ...not for the model's 32 channels, and the model is what trains
    assert 'Fix the graph first: ResNet basic block "block1": inside the block' in window.training.status.text()
    assert not window._export_ready()
    assert window.ask.asked[-1][0] == "Cannot export"


def test_undoing_the_import_of_the_open_block_goes_back_to_the_model(window, qtbot, tmp_path: Path) -> None:
    assert window.open_path(CNN)
    save_block_file(load_project(RESNET).blocks, "ResBlock", tmp_path / "b.json")
    window.blocks.import_block(tmp_path / "b.json")
    window.palette.block_menu("ResBlock").actions()[0].trigger()  # Open (edit inside)
    assert window.doc.role == "block:ResBlock"
    window.doc.undo_stack.undo()  # the import: the block on the canvas disappears
    qtbot.waitUntil(lambda: window.doc.role == "main")
    assert "ResBlock" not in window.doc.project.blocks
    assert set(window.scene.nodes) == set(window.doc.graph.nodes) and not window.blocks.bar.isVisible()


def test_a_closed_document_is_not_kept_alive_by_the_undo_focus_hook(window) -> None:
    assert window.open_path(RESNET)
    old = weakref.ref(window.doc.project.blocks)
    assert window.open_path(CNN)
    QApplication.sendPostedEvents(None, QEvent.Type.DeferredDelete)  # the old document's and scene's deleteLater
    gc.collect()
    assert old() is None


def test_a_block_dropped_into_its_own_inside_is_refused_with_a_message(window) -> None:
    assert window.open_path(RESNET)
    window.blocks.open_definition("ResBlock")
    before = project_json(window)
    for entry in ("ResBlock", "ready:ResBlock"):  # from the project's blocks, and the identical ready one
        drop_layer(window, entry, QPoint(500, 300))
        assert 'cannot contain itself' in window.statusBar().currentMessage()
        assert project_json(window) == before


def test_make_a_block_node_unique_from_the_canvas_menu(window) -> None:
    assert window.open_path(RESNET)
    start = project_json(window)
    g = window.doc.graph
    block2 = g.by_name("block2").id
    menu = window.blocks.canvas_menu(node_point(window, block2))
    next(a for a in menu.actions() if a.text() == "Make Block &Unique").trigger()
    assert g.nodes[block2].type == "ResBlock2" and "ResBlock2" in window.palette.items
    assert window.doc.undo_stack.undoText() == "Make block2 unique"
    window.doc.undo_stack.undo()
    assert project_json(window) == start


def test_the_palette_follows_block_names_not_every_edit_inside(window, prompter) -> None:
    assert window.open_path(RESNET)
    item = window.palette.items["ResBlock"]
    inner = window.doc.project.blocks.defs["ResBlock"].graph
    inner.set_params(inner.by_name("conv1").id, {"bias": True})  # an edit inside: the entry is kept as is
    assert window.palette.items["ResBlock"] is item
    prompter.answers = ["Residual"]
    window.palette.block_menu("ResBlock").actions()[1].trigger()  # Rename…
    assert window.palette.items["ResBlock"].text(0) == "Residual"
    window.blocks.open_definition("ResBlock")
    assert "<b>Residual</b>" in window.blocks.bar.crumbs.text()
