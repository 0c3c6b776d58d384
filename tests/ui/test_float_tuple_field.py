"""Upsample's per-dimension scale factors are a float tuple: typed into the inspector like an int
tuple, stored as floats, refused with the reason when they are not positive numbers."""

from __future__ import annotations

from PySide6.QtCore import QPoint, Qt
from PySide6.QtTest import QTest

from tests.ui.conftest import drop_layer
from tests.ui.test_fields import type_text


def test_scale_factors_are_typed_as_numbers_and_refused_with_a_reason(window) -> None:
    before = set(window.doc.graph.nodes)
    drop_layer(window, "Upsample", QPoint(400, 300))
    (nid,) = set(window.doc.graph.nodes) - before
    window.scene.select_nodes([nid])
    editor = window.inspector.editors["scale_factor"]
    assert editor.widget.text() == "2.0"
    stack, params = window.doc.undo_stack, window.doc.graph.nodes[nid].params
    count = stack.count()
    type_text(editor.widget, "2, 1.5")
    params = window.doc.graph.nodes[nid].params
    assert params["scale_factor"] == (2.0, 1.5) and stack.count() == count + 1
    type_text(editor.widget, "1e-1x3")  # the spellings NumberEditor reads, and "x" between dims
    assert window.doc.graph.nodes[nid].params["scale_factor"] == (0.1, 3.0)
    for bad in ("0, 2", "two", "nan"):
        type_text(editor.widget, bad)
        assert "finite numbers (> 0" in editor.error.text(), bad
        assert window.doc.graph.nodes[nid].params["scale_factor"] == (0.1, 3.0)
    QTest.keyClick(editor.widget, Qt.Key.Key_Escape)
    assert editor.widget.text() == "0.1, 3.0"
    stack.undo()
    assert window.doc.graph.nodes[nid].params["scale_factor"] == (2.0, 1.5)
