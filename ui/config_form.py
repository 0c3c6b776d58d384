"""A form for the data or training section, generated from the field declarations
(the same kind-to-editor table as the inspector); each change is one undo step.

Only the settings that apply to the chosen dataset, task, optimizer and schedule are shown
(``workbench.config.applies``); a hidden one keeps its value."""

from __future__ import annotations

from typing import Any

from PySide6.QtGui import QUndoCommand
from PySide6.QtWidgets import QFormLayout, QLabel, QWidget

from workbench.config import applies, field_label
from workbench.layers.spec import Param

from .document import Document
from .editors import EDITORS, ParamEditor


class SetConfigCommand(QUndoCommand):
    """One field of the data or training section; with ``merge``, the steps of one arrow or
    wheel gesture on the same field make one undo step."""

    ID = 1002

    def __init__(self, doc: Document, section: str, key: str, value: Any, merge: bool = False) -> None:
        super().__init__(f"Set {section} {key}")
        self.doc, self.section, self.key, self.value = doc, section, key, value
        self.old = getattr(doc.project, section)[key]
        self.merge = merge

    def id(self) -> int:
        return self.ID if self.merge else -1

    def mergeWith(self, other: QUndoCommand) -> bool:
        if not (isinstance(other, SetConfigCommand) and self.merge and other.merge):
            return False
        if (other.doc, other.section, other.key) != (self.doc, self.section, self.key):
            return False
        self.value = other.value
        return True

    def redo(self) -> None:
        getattr(self.doc.project, self.section)[self.key] = self.value

    def undo(self) -> None:
        getattr(self.doc.project, self.section)[self.key] = self.old


class ConfigForm(QWidget):
    def __init__(self, section: str, fields: tuple[Param, ...], parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.section = section
        self.doc: Document | None = None
        self.editors: dict[str, ParamEditor] = {}
        self.labels: dict[str, QLabel] = {}
        self.form = form = QFormLayout(self)
        for p in fields:
            editor = EDITORS[p.kind](p, self)
            editor.committed.connect(lambda value, merge, key=p.name: self._commit(key, value, merge))
            label = QLabel(p.name.replace("_", " "))
            label.setToolTip(p.doc)
            form.addRow(label, editor)
            self.editors[p.name] = editor
            self.labels[p.name] = label

    def set_document(self, doc: Document) -> None:
        if self.doc is not None:
            try:
                self.doc.undo_stack.indexChanged.disconnect(self._on_index)
            except (RuntimeError, TypeError):  # the old document is already gone
                pass
        self.doc = doc
        # a bound slot (not a lambda): Qt drops the connection when this form is destroyed,
        # so an undo stack outliving the form never calls into deleted editors
        doc.undo_stack.indexChanged.connect(self._on_index)
        self.load(force=True)  # text typed for the previous project is dropped, never stored in this one

    def _on_index(self, _index: int) -> None:
        self.load()

    def load(self, force: bool = False) -> None:
        """Show the section's values (a field the user is typing in keeps its text unless ``force``)."""
        if self.doc is None:
            return
        values = getattr(self.doc.project, self.section)
        for key, editor in self.editors.items():
            if force:
                editor.set_value(values[key])
            else:
                editor.sync(values[key])
        self.show_applicable()

    def show_applicable(self) -> None:
        """Show the rows of the settings that apply to the project's configuration (and name
        them as it does: momentum is beta1 for Adam)."""
        if self.doc is None:
            return
        data, training = self.doc.project.data, self.doc.project.training
        for key, editor in self.editors.items():
            field = f"{self.section}.{key}"
            visible = applies(field, data, training)
            if visible != self.is_shown(key):
                self.form.setRowVisible(editor, visible)
            if visible:
                self.labels[key].setText(field_label(field, data, training))

    def is_shown(self, key: str) -> bool:
        """Whether the field's row is shown (whether or not the form itself is on screen)."""
        return not self.editors[key].isHidden()

    def _commit(self, key: str, value: Any, merge: bool = False) -> None:
        if self.doc is None or getattr(self.doc.project, self.section)[key] == value:
            return
        self.doc.undo_stack.push(SetConfigCommand(self.doc, self.section, key, value, merge))
