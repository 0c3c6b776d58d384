"""The export package's error type (apart, so that pre-processing can raise it too)."""

from __future__ import annotations

from ..errors import WorkbenchError


class ExportError(WorkbenchError):
    """Export failed or did not verify; nothing was written."""
