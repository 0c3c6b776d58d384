"""The training package's error type, apart from the engine so that the modules the engine uses
(pre-flight, privacy, self-supervised tasks, transfer) can raise it without importing the engine."""

from __future__ import annotations

from ..errors import WorkbenchError


class TrainingError(WorkbenchError):
    """Training cannot start or had to stop; the message says where and why."""
