"""Transfer and self-supervised set-up in the GUI, with real clicks and typing: the inspector's frozen toggle
and learning-rate scale (one undo step each, drawn on the canvas, counted in the summary), the projection-head
role, and the self-supervised settings of the set-up form."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PySide6.QtCore import QPoint, QPointF, Qt
from PySide6.QtTest import QTest
from PySide6.QtWidgets import QPushButton

from tests.ui.conftest import ROOT, node_point
from tests.ui.test_fields import field, type_text
from ui.results_view import image_grid

LEFT, NO = Qt.MouseButton.LeftButton, Qt.KeyboardModifier.NoModifier
FINETUNE = ROOT / "samples" / "digits_finetune.json"
CONTRASTIVE = ROOT / "samples" / "digits_contrastive.json"


def click_node(window, name: str) -> str:
    nid = window.doc.graph.by_name(name).id
    window.view.centerOn(window.scene.nodes[nid].pos() + QPointF(60, 30))
    QTest.mouseClick(window.view.viewport(), LEFT, NO, node_point(window, nid))
    assert window.inspector.node_ids == [nid]
    return nid


def test_frozen_toggle_and_lr_scale_from_the_inspector(window, tmp_path: Path) -> None:
    window.open_path(FINETUNE)
    g, stack = window.doc.graph, window.doc.undo_stack
    conv = click_node(window, "conv2")
    frozen = window.inspector.train_editors["frozen"].widget
    count = stack.count()
    window.inspector.ensureWidgetVisible(frozen)
    QTest.mouseClick(frozen, LEFT, NO, QPoint(8, frozen.height() // 2))  # on the box (a bare check box is small)
    assert g.nodes[conv].train.get("frozen") is True and stack.count() == count + 1
    assert stack.undoText() == "Freeze conv2"
    item = window.scene.nodes[conv]
    assert item.frozen and "frozen" in item.train_badge
    assert "frozen" in window.params_label.text()
    total = window.doc.shapes.total_params()
    frozen_count = window.doc.shapes.info(conv).params
    assert f"{total - frozen_count:,} trainable, {frozen_count:,} frozen" in window.params_label.text()
    stack.undo()
    assert "frozen" not in g.nodes[conv].train and not frozen.isChecked() and not item.frozen

    scale = window.inspector.train_editors["lr_scale"]
    assert scale.widget.text() == "1.0"
    type_text(scale.widget, "0.5")
    assert g.nodes[conv].train["lr_scale"] == 0.5 and "lr ×0.5" in item.train_badge
    type_text(scale.widget, "-1")
    assert g.nodes[conv].train["lr_scale"] == 0.5 and scale.error.isVisibleTo(window)  # refused, nothing stored
    QTest.keyClick(scale.widget, Qt.Key.Key_Escape)

    doc = window.doc.project.to_dict()
    assert next(n for n in doc["graph"]["nodes"] if n["name"] == "conv2")["train"] == {"lr_scale": 0.5}


def test_projection_head_is_marked_and_settings_of_contrastive_are_typed(window) -> None:
    window.open_path(CONTRASTIVE)
    g = window.doc.graph
    proj = click_node(window, "proj1")
    role = window.inspector.train_editors["role"].widget
    assert role.currentText() == "projection_head" and "head" in window.scene.nodes[proj].train_badge
    embed = click_node(window, "embed")
    assert window.inspector.train_editors["role"].widget.currentText() == ""
    window.inspector.train_editors["role"].widget.setFocus()
    QTest.keyClick(window.inspector.train_editors["role"].widget, Qt.Key.Key_Down)  # the next choice
    assert g.nodes[embed].train == {"role": "projection_head"}
    window.doc.undo_stack.undo()
    assert g.nodes[embed].train == {}

    training = window.doc.project.training
    temperature = field(window, "training", "ssl_temperature")
    assert temperature.isVisibleTo(window)
    type_text(temperature.widget, "0.07")
    assert training["ssl_temperature"] == 0.07
    crop = field(window, "training", "view_crop")
    type_text(crop.widget, "0.3")
    assert training["view_crop"] == 0.3
    assert not field(window, "training", "mask_ratio").isVisibleTo(window)  # masked tasks only
    type_text(temperature.widget, "0")
    assert training["ssl_temperature"] == 0.07 and temperature.error.isVisibleTo(window)

    button = next(b for b in window.setup.findChildren(QPushButton) if b.text() == "Preview data")
    QTest.mouseClick(button, LEFT, NO, button.rect().center())
    assert window.setup.preview.images.title() == "Samples, then two views of each"
    shown = window.setup.preview.image_item.image
    rows_of_8 = image_grid(np.zeros((24, 1, 8, 8)), cols=8).shape  # originals, view 1, view 2
    assert shown is not None and shown.shape == rows_of_8[::-1]  # (the item shows the grid transposed)
