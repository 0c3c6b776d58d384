"""Export to ONNX and PyTorch source, import from ONNX: background jobs with progress
(part of the main window)."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from PySide6.QtWidgets import QFileDialog, QMessageBox

from .editors import commit_focused_field

if TYPE_CHECKING:
    from .mainwindow import MainWindow


class ExchangeMixin:
    """File > Export/Import: each runs in a background process with a cancellable progress dialog."""

    def _export_ready(self: MainWindow) -> bool:
        commit_focused_field()  # what the user just typed is part of the model exported
        errors = self.doc.errors(["main"])  # the model is exported, whichever graph is on the canvas
        if errors:
            self.ask("Cannot export", f"Fix the graph first: {errors[0]}", QMessageBox.StandardButton.Ok)
            return False
        return True

    def export_onnx(self: MainWindow, out: str | Path) -> bool:
        """Export with verification in a background process; the report is shown when it ends."""
        from workbench.export.api import onnx_job

        from .jobs import run_with_progress

        if not self._export_ready():
            return False
        path = str(self.doc.project.path) if self.doc.project.path else None
        status, result = run_with_progress(self, "Exporting to ONNX and verifying with onnxruntime…", onnx_job,
                                           self.doc.project.to_json(), path, str(out), None)
        if status == "ok":
            self.ask("ONNX export verified", result["text"], QMessageBox.StandardButton.Ok)
            return True
        if status == "error":
            self.ask("ONNX export failed", result, QMessageBox.StandardButton.Ok)
        return False

    def export_python(self: MainWindow, out: str | Path) -> bool:
        from workbench.export.api import python_job

        from .jobs import run_with_progress

        if not self._export_ready():
            return False
        path = str(self.doc.project.path) if self.doc.project.path else None
        status, result = run_with_progress(self, "Writing PyTorch source…", python_job, self.doc.project.to_json(),
                                           path, str(out))
        if status == "ok":
            self.show_message(result["text"])
            return True
        if status == "error":
            self.ask("Export failed", result, QMessageBox.StandardButton.Ok)
        return False

    def import_onnx(self: MainWindow, model: str | Path, out: str | Path) -> bool:
        from workbench.export.api import import_job

        from .jobs import run_with_progress

        if not self.may_replace_document(f"Import {Path(model).name}"):
            return False
        label = "Importing ONNX and checking it against the original…"
        status, result = run_with_progress(self, label, import_job, str(model), str(out))
        if status == "ok" and result["status"] == "mismatch":  # nothing written yet: the user decides
            yes, no = QMessageBox.StandardButton.Yes, QMessageBox.StandardButton.No
            answer = self.ask("Imported model differs from the original",
                              f"{result['report']}\n\nWrite the project anyway?", yes | no,
                              {yes: "Write anyway", no: "Don't write"})
            if answer != yes:
                self.show_message(f"Import of {Path(model).name} cancelled: nothing was written")
                return False
            status, result = run_with_progress(self, label, import_job, str(model), str(out), True)
        if status == "ok":
            self.open_path(result["path"], ask_save=False)
            kind = "lossless" if result["lossless"] else "mapped op by op"
            checked = "checked against the original" if result["checked"] else "DIFFERS from the original"
            self.show_message(f"Imported {Path(model).name}: {result['nodes']} nodes ({kind}; {checked})")
            self.ask("ONNX import checked" if result["checked"] else "ONNX import written despite differences",
                     result["report"], QMessageBox.StandardButton.Ok)
            return True
        if status == "error":
            self.ask("Import failed", result, QMessageBox.StandardButton.Ok)
        return False

    def export_onnx_dialog(self: MainWindow) -> None:
        start = str((self.doc.project.path or self._last_dir() / "model.json").with_suffix(".onnx"))
        out, _ = QFileDialog.getSaveFileName(self, "Export ONNX", start, "ONNX models (*.onnx)")
        if out:
            self.export_onnx(out)

    def export_python_dialog(self: MainWindow) -> None:
        start = str((self.doc.project.path or self._last_dir() / "model.json").with_suffix(".py"))
        out, _ = QFileDialog.getSaveFileName(self, "Export PyTorch source", start, "Python files (*.py)")
        if out:
            self.export_python(out)

    def import_onnx_dialog(self: MainWindow) -> None:
        model, _ = QFileDialog.getOpenFileName(self, "Import ONNX", str(self._last_dir()), "ONNX models (*.onnx)")
        if not model:
            return
        out, _ = QFileDialog.getSaveFileName(self, "Save the imported project as",
                                             str(Path(model).with_suffix(".json")), "Projects (*.json)")
        if out:
            self.import_onnx(model, out)
