"""Run a background job with a progress dialog that can cancel it."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from PySide6.QtCore import QEventLoop, Qt, QTimer
from PySide6.QtWidgets import QProgressDialog, QWidget

from workbench.jobs import Job


def run_with_progress(parent: QWidget | None, label: str, fn: Callable[..., Any], *args: Any,
                      progress: bool = False) -> tuple[str, Any]:
    """Returns ("ok", result), ("error", message) or ("cancelled", None); the GUI stays live meanwhile.
    With ``progress``, ``fn`` reports (done, total) and the dialog shows it (see ``workbench.jobs.Job``)."""
    job = Job(fn, *args, progress=progress).start()
    dialog = QProgressDialog(label, "Cancel", 0, 0, parent)
    dialog.setWindowTitle("Working")
    dialog.setWindowModality(Qt.WindowModality.WindowModal)
    dialog.setMinimumDuration(300)
    loop = QEventLoop()
    outcome: list[tuple[str, Any]] = []

    def check() -> None:
        result = job.poll()
        while result is not None and result[0] == "progress":
            done, total = result[1]
            dialog.setRange(0, total)
            dialog.setValue(done)
            result = job.poll()
        if result is not None:
            outcome.append(result)
            loop.quit()

    def cancel() -> None:
        job.cancel()
        outcome.append(("cancelled", None))
        loop.quit()

    timer = QTimer()
    timer.timeout.connect(check)
    timer.start(50)
    dialog.canceled.connect(cancel)
    loop.exec()
    timer.stop()
    dialog.canceled.disconnect(cancel)
    dialog.close()
    return outcome[0]
