"""An Input's element type and batching, set in the inspector with real clicks and keys: the
canvas shows the shapes that follow, and each change is one undo step."""

from __future__ import annotations

from PySide6.QtCore import QPoint, Qt
from PySide6.QtTest import QTest

from tests.ui.conftest import CNN
from tests.ui.test_fields import LEFT, NO, type_text


def test_unticking_batched_gives_the_input_its_whole_shape_and_typing_a_shape_fits_it(window) -> None:
    window.open_path(CNN)
    g, stack = window.doc.graph, window.doc.undo_stack
    image, conv = g.by_name("image").id, g.by_name("conv1").id
    window.scene.select_nodes([image])
    box = window.inspector.editors["batched"].widget
    assert box.isChecked()
    count = stack.count()
    QTest.mouseClick(box, LEFT, NO, QPoint(8, box.height() // 2))  # on the check mark
    assert g.nodes[image].params["batched"] is False and stack.count() == count + 1
    assert window.scene.nodes[image].shape_text == "[1, 8, 8]"  # no N: one tensor for every sample
    assert window.scene.nodes[conv].status == "error"  # a Conv2d needs [N, C, H, W]
    window.scene.select_nodes([image])
    type_text(window.inspector.editors["shape"].widget, "1, 1, 8, 8")
    assert list(g.nodes[image].params["shape"]) == [1, 1, 8, 8]
    assert window.scene.nodes[conv].status != "error"
    assert window.scene.nodes[conv].shape_text == "[1, 16, 8, 8]"
    stack.undo()
    stack.undo()
    assert g.nodes[image].params["batched"] is True and window.scene.nodes[conv].shape_text == "[N, 16, 8, 8]"


def test_float64_is_offered_for_an_input_and_chosen_with_the_keyboard(window) -> None:
    window.open_path(CNN)
    g = window.doc.graph
    image = g.by_name("image").id
    window.scene.select_nodes([image])
    combo = window.inspector.editors["dtype"].widget
    assert [combo.itemText(i) for i in range(combo.count())] == ["float32", "float64", "int64"]
    combo.setFocus()  # as Tab would give it
    QTest.keyClick(combo, Qt.Key.Key_Down)
    assert g.nodes[image].params["dtype"] == "float64"
