"""The open project as the GUI sees it: the project, its undo stack and live shapes.

Views never change the graph directly: they push commands (``ui.commands``) on
``undo_stack``; the commands call the graph's mutators; the graph's events keep
the views in sync.  After every change ``changed`` fires once, with shapes
already re-inferred for what the change touched.

The canvas shows one graph of the project at a time (its *role*): the model
(``"main"``), another graph such as a GAN's discriminator, or the inside of a
block (``"block:<id>"``).  One undo stack serves them all; a command undone or
redone on a graph that is not on the canvas first asks for that graph to be
shown (``roleRequested``), so the user sees what changes.
"""

from __future__ import annotations

from pathlib import Path

from PySide6.QtCore import QObject, Signal
from PySide6.QtGui import QUndoStack

from workbench.errors import ShapeError
from workbench.graph import Graph
from workbench.project import Project
from workbench.shapes import ShapeInference

from .commands import register_focus

BLOCK_ROLE = "block:"


def block_role(block_id: str) -> str:
    return f"{BLOCK_ROLE}{block_id}"


class Document(QObject):
    """Signals:
    changed(set): after an edit, with the ids whose shape info was updated.
    roleRequested(str): a command is about to change a graph that is not shown.
    """

    changed = Signal(object)
    roleRequested = Signal(str)

    def __init__(self, project: Project | None = None, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.project = project or Project()
        self.role = "main"
        self._shown = self.project.graph
        self.shapes = ShapeInference(self.project.graph)
        self.shapes.update()
        self.undo_stack = QUndoStack(self)
        self.undo_stack.indexChanged.connect(self._after_change)
        self.recovery_file: Path | None = None
        """Where autosave keeps this document's unsaved work (named once: a Save As must not orphan it)."""
        register_focus(self.project.blocks, self._focus)

    @property
    def graph(self) -> Graph:
        """The graph on the canvas: the model, another role, or a block's inside (the same
        object until :meth:`set_role`, even if an undo just removed that block)."""
        return self._shown

    def graph_of(self, role: str) -> Graph:
        if role == "main":
            return self.project.graph
        if role.startswith(BLOCK_ROLE):
            return self.project.blocks.defs[role[len(BLOCK_ROLE):]].graph
        return self.project.graphs[role]

    def has_role(self, role: str) -> bool:
        try:
            self.graph_of(role)
        except KeyError:
            return False
        return True

    def roles(self) -> list[str]:
        """The project's graphs (blocks are reached through their instances or the palette)."""
        return ["main", *self.project.graphs]

    def role_of(self, graph: Graph) -> str | None:
        for role in [*self.roles(), *(block_role(b) for b in self.project.blocks.defs)]:
            if self.graph_of(role) is graph:
                return role
        return None

    @property
    def block_id(self) -> str | None:
        """The block whose inside is on the canvas, if one is."""
        return self.role[len(BLOCK_ROLE):] if self.role.startswith(BLOCK_ROLE) else None

    def set_role(self, role: str) -> None:
        """Show another of the project's graphs; shape inference follows it."""
        if not self.has_role(role):
            raise KeyError(role)
        self.shapes.close()
        self.role = role
        self._shown = self.graph_of(role)
        self.shapes = ShapeInference(self.graph)
        self.shapes.update()

    def errors(self, roles: list[str] | None = None) -> list[ShapeError]:
        """Located errors of the project's graphs (default: the model and the other roles,
        whichever is on the canvas), each prefixed with its graph when it is not the model."""
        from workbench.shapes import infer

        found: list[ShapeError] = []
        for role in roles or self.roles():
            graph = self.graph_of(role)
            errors = self.shapes.errors() if graph is self.graph else infer(graph).errors()
            if role != "main":
                errors = [type(e)(f"{role}: {e}", e.node, e.node_id, e.param) for e in errors]
            found += errors
        return found

    def _focus(self, graph: Graph) -> None:
        role = self.role_of(graph)
        if role is not None and role != self.role:
            self.roleRequested.emit(role)

    @property
    def path(self) -> Path | None:
        return self.project.path

    @property
    def modified(self) -> bool:
        return not self.undo_stack.isClean()

    def display_name(self) -> str:
        return self.project.path.name if self.project.path else f"{self.project.name}"

    def _after_change(self, _index: int = 0) -> None:
        self.changed.emit(self.shapes.update())

    def refresh(self) -> None:
        """Re-announce (after changes made outside the undo stack, e.g. loading weights)."""
        self._after_change()

    def close(self) -> None:
        """The document is finished (replaced, or its window closed).  Its undo stack goes quiet:
        when Qt destroys it later (at exit, or on deleteLater) it clears itself, and the signals
        that clearing emits would reach views and slots of a half-destroyed document."""
        self.shapes.close()
        self.undo_stack.blockSignals(True)
