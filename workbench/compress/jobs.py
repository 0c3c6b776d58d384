"""Compression as background jobs (``workbench.jobs.Job`` with progress and stop): picklable entry
points with plain results, for the GUI."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from .report import Cancelled, Progress, ResultRefused

#: job kinds, as the Compress dialog names them
KINDS = ("quantize", "prune_structured", "prune_unstructured")


def compress_job(kind: str, project_json: str, project_path: str | None, out: str, options: dict[str, Any],
                 progress: Callable[..., None] | None = None, stop: Callable[[], bool] | None = None) -> dict[str, Any]:
    """Run one compression job; returns ``{"status": "ok" | "refused" | "cancelled", "report": {...},
    "message": str}``.  Errors that keep the job from running are raised (the Job reports them).

    Args:
        kind: one of :data:`KINDS`.
        options: the job's keyword arguments (``checkpoint`` as a path string).
    """
    from ..project import loads_project
    from .prune import prune_structured, prune_unstructured
    from .quantize import quantize

    if options.get("threads"):
        import torch

        torch.set_num_threads(int(options["threads"]))  # this process's torch too (export, data, pruning)
    project = loads_project(project_json)
    project.path = Path(project_path) if project_path else None
    fn = {"quantize": quantize, "prune_structured": prune_structured, "prune_unstructured": prune_unstructured}[kind]
    kwargs = dict(options)
    if kwargs.get("checkpoint"):
        kwargs["checkpoint"] = Path(kwargs["checkpoint"])
    else:
        kwargs.pop("checkpoint", None)

    def forward(p: Progress) -> None:
        if progress is not None:
            progress(round(1000 * p.fraction) if p.fraction is not None else 0, 1000 if p.fraction is not None else 0,
                     p.message)

    try:
        report = fn(project, out, progress=forward, stop=stop or (lambda: False), **kwargs)
    except ResultRefused as exc:
        return {"status": "refused", "report": exc.report.to_dict(), "message": exc.report.refused or ""}
    except Cancelled as exc:
        return {"status": "cancelled", "report": None, "message": str(exc)}
    return {"status": "ok", "report": report.to_dict(), "message": f"wrote {', '.join(report.outputs)}"}
