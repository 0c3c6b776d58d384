"""A GAN project in the editor: switch between the generator and the discriminator graph,
edit either with undo, and add a discriminator to a project."""

from __future__ import annotations

from PySide6.QtCore import QPoint

from tests.ui.conftest import CNN, ROOT, drop_layer

GAN = ROOT / "samples" / "digits_gan.json"


def test_switch_graphs_and_edit_the_discriminator(window) -> None:
    assert window.open_path(GAN)
    assert window.graph_combo.isVisibleTo(window) and window.graph_combo.count() == 2
    generator_nodes = set(window.doc.project.graph.nodes)
    assert set(window.scene.nodes) == generator_nodes
    window.graph_combo.setCurrentIndex(window.graph_combo.findData("discriminator"))
    disc = window.doc.project.graphs["discriminator"]
    assert window.doc.graph is disc and set(window.scene.nodes) == set(disc.nodes)
    assert window.scene.nodes[disc.by_name("real_or_fake").id].shape_text == "[N, 1]"
    before = len(disc)
    drop_layer(window, "Dropout", QPoint(300, 300))
    assert len(disc) == before + 1 and len(window.doc.project.graph) == len(generator_nodes)
    window.doc.undo_stack.undo()
    assert len(disc) == before
    window.graph_combo.setCurrentIndex(window.graph_combo.findData("main"))
    assert set(window.scene.nodes) == generator_nodes


def test_add_a_discriminator_graph_is_undoable(window) -> None:
    window.open_path(CNN)
    assert not window.graph_combo.isVisibleTo(window)
    window.add_discriminator()
    assert "discriminator" in window.doc.project.graphs and window.doc.role == "discriminator"
    assert [n.type for n in window.doc.graph] == ["Input", "Output"]
    window.doc.undo_stack.undo()
    assert "discriminator" not in window.doc.project.graphs and window.doc.role == "main"
    assert set(window.scene.nodes) == set(window.doc.project.graph.nodes)
