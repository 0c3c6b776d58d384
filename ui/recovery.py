"""Autosave to a recovery file and the offer to recover after a crash (part of the main window)."""

from __future__ import annotations

import hashlib
import json
import uuid
from pathlib import Path
from typing import TYPE_CHECKING

from PySide6.QtCore import QStandardPaths
from PySide6.QtGui import QUndoCommand
from PySide6.QtWidgets import QMessageBox

from workbench.errors import ProjectError
from workbench.project import loads_project

from .document import Document

if TYPE_CHECKING:
    from .mainwindow import MainWindow


class RecoveryMixin:
    """Unsaved work goes to a recovery file every minute, never over the project itself;
    opening a project (or starting empty) offers what a crashed session left."""

    @staticmethod
    def recovery_dir() -> Path:
        base = QStandardPaths.writableLocation(QStandardPaths.StandardLocation.AppDataLocation)
        return Path(base or Path.home() / ".neural-workbench") / "recovery"

    def _recovery_file(self: MainWindow) -> Path:
        """The document's recovery file.  It is named once, when first needed, and kept by the
        document: naming it after the current path lost it on Save As (the untitled work's file
        stayed behind and was offered as crashed work when the next project was opened)."""
        doc = self.doc
        if doc.recovery_file is None:
            key = str(doc.project.path) if doc.project.path else f"untitled-{uuid.uuid4().hex}"
            doc.recovery_file = self.recovery_dir() / f"{hashlib.sha1(key.encode()).hexdigest()[:16]}.json"
        return doc.recovery_file

    def autosave(self: MainWindow) -> Path | None:
        """Write unsaved work to a recovery file (never over the project itself)."""
        if not self.doc.modified:
            return None
        target = self._recovery_file()
        doc = {"original": str(self.doc.project.path or ""), "project": self.doc.project.to_dict()}
        from workbench.fileio import atomic_write_text

        try:
            atomic_write_text(target, json.dumps(doc))
        except OSError as exc:
            self.show_message(f"Autosave failed: {exc}")
            return None
        return target

    def offer_recovery(self: MainWindow) -> bool:
        """After a crash, offer the newest recovery file for the open project (or an untitled one)."""
        folder = self.recovery_dir()
        if not folder.is_dir():
            return False
        mine = str(self.doc.project.path or "")
        for f in sorted(folder.glob("*.json"), key=lambda p: p.stat().st_mtime, reverse=True):
            try:
                data = json.loads(f.read_text())
                original = data.get("original", "")
            except (OSError, ValueError, AttributeError):
                f.unlink(missing_ok=True)
                continue
            if original and original != mine:
                continue
            B = QMessageBox.StandardButton
            what = f"{Path(original).name}" if original else "an untitled project"
            answer = self.ask("Recover unsaved work?",
                              f"Neural Workbench found unsaved changes to {what} from a session that did not "
                              "close normally. Recover them?", B.Yes | B.No)
            if answer == B.Yes:
                try:
                    project = loads_project(json.dumps(data["project"]))
                except ProjectError as exc:
                    self.ask("Cannot recover", str(exc), B.Ok)
                    return False
                project.path = Path(original) if original else None
                doc = Document(project)
                self.set_document(doc)
                doc.undo_stack.resetClean()  # recovered work is unsaved work
                doc.undo_stack.push(_MarkModified())
                f.unlink(missing_ok=True)
                return True
            f.unlink(missing_ok=True)
            return False
        return False


class _MarkModified(QUndoCommand):
    """An empty step so a recovered project shows as unsaved."""

    def __init__(self) -> None:
        super().__init__("Recovered unsaved work")
