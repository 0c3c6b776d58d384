"""The open project as the GUI sees it: the project, its undo stack and live shapes.

Views never change the graph directly: they push commands (``ui.commands``) on
``undo_stack``; the commands call the graph's mutators; the graph's events keep
the views in sync.  After every change ``changed`` fires once, with shapes
already re-inferred for what the change touched.
"""

from __future__ import annotations

from pathlib import Path

from PySide6.QtCore import QObject, Signal
from PySide6.QtGui import QUndoStack

from workbench.graph import Graph
from workbench.project import Project
from workbench.shapes import ShapeInference


class Document(QObject):
    """Signals:
    changed(set): after an edit, with the ids whose shape info was updated.
    """

    changed = Signal(object)

    def __init__(self, project: Project | None = None, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.project = project or Project()
        self.role = "main"
        self.shapes = ShapeInference(self.project.graph)
        self.shapes.update()
        self.undo_stack = QUndoStack(self)
        self.undo_stack.indexChanged.connect(self._after_change)

    @property
    def graph(self) -> Graph:
        """The graph on the canvas: the model, or another role (a GAN's discriminator)."""
        return self.project.graph if self.role == "main" else self.project.graphs[self.role]

    def roles(self) -> list[str]:
        return ["main", *self.project.graphs]

    def set_role(self, role: str) -> None:
        """Show another of the project's graphs; shape inference follows it."""
        if role != "main" and role not in self.project.graphs:
            raise KeyError(role)
        self.shapes.close()
        self.role = role
        self.shapes = ShapeInference(self.graph)
        self.shapes.update()

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
        self.shapes.close()
