"""Files: new, open, save, the questions asked before a project is replaced, recent files,
and project or ONNX files dropped on the window (part of the main window)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from PySide6.QtCore import QMimeData, QTimer
from PySide6.QtGui import QDragEnterEvent, QDragMoveEvent, QDropEvent
from PySide6.QtWidgets import QFileDialog, QMessageBox

from workbench.errors import ProjectError
from workbench.project import Project, load_project, save_project

from .document import Document
from .editors import commit_focused_field

if TYPE_CHECKING:
    from .mainwindow import MainWindow

MAX_RECENT = 10
#: what a file dropped on the window does, by its suffix
DROP_KINDS = {".json": "project", ".onnx": "ONNX model"}


def dropped_files(mime: QMimeData | None) -> list[Path]:
    """The local files a drag carries that the window can open (a project or an ONNX model)."""
    if mime is None or not mime.hasUrls():
        return []
    files = [Path(u.toLocalFile()) for u in mime.urls() if u.isLocalFile()]
    return [f for f in files if f.suffix.lower() in DROP_KINDS]


class FilesMixin:
    """File > New, Open, Save; what happens to unsaved changes and a streaming run first."""

    def new_project(self: MainWindow) -> None:
        if self.may_replace_document("Start a new project"):
            self.set_document(Document(Project()))

    def new_from_template(self: MainWindow, make: Callable[[], Project]) -> None:
        """A starting point (a sample with its data and training set-up, or a known architecture),
        built in memory: a new, untitled project."""
        project = make()
        if self.may_replace_document(f"Start from {project.name}"):
            self.set_document(Document(project))

    def open_dialog(self: MainWindow) -> None:
        commit_focused_field()  # before the dialog takes the focus (and would commit it unasked)
        path, _ = QFileDialog.getOpenFileName(self, "Open project", str(self._last_dir()),
                                              "Neural Workbench projects (*.json);;All files (*)")
        if path:
            self.open_path(path)

    def open_path(self: MainWindow, path: str | Path, ask_save: bool = True) -> bool:
        """Open a project; errors are shown with their JSON path and the current project stays.
        A streaming run and unsaved changes are asked about first (see :meth:`may_replace_document`),
        unless ``ask_save`` is False: the caller has settled them."""
        try:
            project = load_project(path)
        except ProjectError as exc:
            self.ask("Cannot open the project", str(exc), QMessageBox.StandardButton.Ok)
            return False
        if ask_save and not self.may_replace_document(f"Open {Path(path).name}"):
            return False
        self.set_document(Document(project))
        self._add_recent(project.path)
        self.offer_recovery()
        return True

    # ------------------------------------------------------------------ files dropped on the window
    def dragEnterEvent(self: MainWindow, event: QDragEnterEvent) -> None:
        if dropped_files(event.mimeData()):
            event.acceptProposedAction()
        else:
            event.ignore()

    def dragMoveEvent(self: MainWindow, event: QDragMoveEvent) -> None:
        self.dragEnterEvent(event)

    def dropEvent(self: MainWindow, event: QDropEvent) -> None:
        files = dropped_files(event.mimeData())
        if not files:
            event.ignore()
            return
        event.acceptProposedAction()
        # opened once the drop has returned: the questions asked first (unsaved changes, a running
        # run) must not block the application the file was dragged from
        QTimer.singleShot(0, lambda: self.open_dropped(files))

    def open_dropped(self: MainWindow, files: list[Path]) -> bool:
        """Open a dropped project, or import a dropped ONNX model (asking where to save the project),
        through the same paths as File > Open and File > Import ONNX."""
        path = files[0]
        if len(files) > 1:
            self.show_message(f"{len(files)} files dropped: opening {path.name} only")
        if path.suffix.lower() == ".onnx":
            out, _ = QFileDialog.getSaveFileName(self, "Save the imported project as", str(path.with_suffix(".json")),
                                                 "Projects (*.json)")
            return bool(out) and self.import_onnx(path, out)
        return self.open_path(path)

    def may_replace_document(self: MainWindow, action: str) -> bool:
        """Before another project takes the window: what the user typed in a field is committed,
        then a streaming run (stop it, keep it in the background, or cancel) and unsaved changes
        are asked about.  Nothing happens to the run unless every question is answered."""
        commit_focused_field()
        B = QMessageBox.StandardButton
        run = B.NoButton
        if self.training.running:
            run = self.ask("A run is training",
                           f"A run of {self.training.run_project} is still training. {action}: stop the run "
                           "(it saves a checkpoint), keep it running in the background (listed in Runs when it "
                           "ends), or cancel?", B.Abort | B.Ignore | B.Cancel,
                           labels={B.Abort: "Stop the run", B.Ignore: "Keep it running", B.Cancel: "Cancel"})
            if run not in (B.Abort, B.Ignore):
                return False
        if not self.maybe_save():
            return False
        if run == B.Abort:
            self.training.stop()
        elif run == B.Ignore:
            self.training.detach()
        return True

    def save(self: MainWindow) -> bool:
        commit_focused_field()
        if self.doc.project.path is None:
            return self.save_as()
        return self._save_to(self.doc.project.path)

    def save_as(self: MainWindow) -> bool:
        start = str(self.doc.project.path or (self._last_dir() / f"{self.doc.project.name}.json"))
        path, _ = QFileDialog.getSaveFileName(self, "Save project", start, "Neural Workbench projects (*.json)")
        return self._save_to(Path(path)) if path else False

    def _save_to(self: MainWindow, path: Path) -> bool:
        try:
            save_project(self.doc.project, path)
        except OSError as exc:
            self.ask("Cannot save", f"{path}: {exc.strerror or exc}", QMessageBox.StandardButton.Ok)
            return False
        self.doc.undo_stack.setClean()
        self._add_recent(self.doc.project.path)
        self._recovery_file().unlink(missing_ok=True)
        self._update_title()
        self.show_message(f"Saved {path}")
        return True

    def maybe_save(self: MainWindow) -> bool:
        """Ask before discarding unsaved work; False means the user cancelled."""
        commit_focused_field()
        if not self.doc.modified:
            return True
        B = QMessageBox.StandardButton
        answer = self.ask("Unsaved changes", f"Save changes to {self.doc.display_name()}?",
                          B.Save | B.Discard | B.Cancel)
        if answer == B.Save:
            return self.save()
        if answer == B.Discard:
            self._recovery_file().unlink(missing_ok=True)
            return True
        return False

    def _last_dir(self: MainWindow) -> Path:
        recent = self.recent_files()
        return Path(recent[0]).parent if recent else Path.home()

    def recent_files(self: MainWindow) -> list[str]:
        value = self.settings.value("recentFiles", [])
        files = [value] if isinstance(value, str) else list(value or [])
        return [f for f in files if f]

    def _add_recent(self: MainWindow, path: Path | None) -> None:
        if path is None:
            return
        files = [str(path)] + [f for f in self.recent_files() if f != str(path)]
        self.settings.setValue("recentFiles", files[:MAX_RECENT])

    def _fill_recent(self: MainWindow) -> None:
        self.recent_menu.clear()
        for f in self.recent_files():
            self.recent_menu.addAction(f, lambda p=f: self.open_path(p))
        if not self.recent_files():
            self.recent_menu.addAction("(none)").setEnabled(False)
