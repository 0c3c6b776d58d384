"""A form for the data or training section, generated from the field declarations
(the same kind-to-editor table as the inspector); each change is one undo step."""

from __future__ import annotations

from typing import Any

from PySide6.QtGui import QUndoCommand
from PySide6.QtWidgets import QFormLayout, QLabel, QWidget

from workbench.layers.spec import Param

from .document import Document
from .inspector import EDITORS, ParamEditor


class SetConfigCommand(QUndoCommand):
    def __init__(self, doc: Document, section: str, key: str, value: Any) -> None:
        super().__init__(f"Set {section} {key}")
        self.doc, self.section, self.key, self.value = doc, section, key, value
        self.old = getattr(doc.project, section)[key]

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
        form = QFormLayout(self)
        for p in fields:
            editor = EDITORS[p.kind](p, self)
            editor.committed.connect(lambda value, key=p.name: self._commit(key, value))
            label = QLabel(p.name.replace("_", " "))
            label.setToolTip(p.doc)
            form.addRow(label, editor)
            self.editors[p.name] = editor

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
        self.load()

    def _on_index(self, _index: int) -> None:
        self.load()

    def load(self) -> None:
        if self.doc is None:
            return
        values = getattr(self.doc.project, self.section)
        for key, editor in self.editors.items():
            if not editor.error.isVisible():
                editor.set_value(values[key])

    def _commit(self, key: str, value: Any) -> None:
        if self.doc is None or getattr(self.doc.project, self.section)[key] == value:
            return
        self.doc.undo_stack.push(SetConfigCommand(self.doc, self.section, key, value))
