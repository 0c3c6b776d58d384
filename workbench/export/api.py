"""Entry points for running exports and imports as background jobs (picklable, plain results)."""

from __future__ import annotations

from pathlib import Path
from typing import Any


def onnx_job(project_json: str, project_path: str | None, out: str, opset: int | None) -> dict[str, Any]:
    from ..project import loads_project
    from .onnx_export import export_onnx

    project = loads_project(project_json)
    project.path = Path(project_path) if project_path else None
    report = export_onnx(project, out, opset=opset)
    return {"text": report.text(), "max_abs": report.max_abs, "exporter": report.exporter, "path": str(report.path)}


def python_job(project_json: str, project_path: str | None, out: str) -> dict[str, Any]:
    from ..project import loads_project
    from .python_source import export_python

    project = loads_project(project_json)
    project.path = Path(project_path) if project_path else None
    r = export_python(project, out)
    return {"text": f"wrote {r.source} (class {r.class_name}) and {r.weights.name}", "path": str(r.source)}


def import_job(model: str, out: str, allow_mismatch: bool = False) -> dict[str, Any]:
    """Import ``model``, check it against the original, and write it to ``out`` when it matches
    (or ``allow_mismatch``).  ``status`` is ``"written"``, or ``"mismatch"`` with nothing written."""
    from ..importers.onnx_import import import_onnx, write_import
    from ..importers.selfcheck import check_import

    result = import_onnx(model)
    report = check_import(result)
    if not report.ok and not allow_mismatch:
        return {"status": "mismatch", "report": report.text(), "summary": report.summary()}
    path = write_import(result, out)
    return {"status": "written", "path": str(path), "lossless": result.lossless, "nodes": len(result.project.graph),
            "report": report.text(), "checked": report.ok}
