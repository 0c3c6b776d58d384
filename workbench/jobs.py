"""Long one-off work (export, import) in a spawned process, so the caller can show
progress, stay responsive and cancel by ending the process (atomic writes mean a
cancelled job leaves nothing behind)."""

from __future__ import annotations

import multiprocessing as mp
import queue
from collections.abc import Callable
from typing import Any


def _run(fn: Callable[..., Any], args: tuple[Any, ...], results: Any) -> None:
    from .errors import WorkbenchError

    try:
        results.put(("ok", fn(*args)))
    except WorkbenchError as exc:
        results.put(("error", str(exc)))
    except Exception as exc:
        results.put(("error", f"unexpected error: {type(exc).__name__}: {exc}"))


class Job:
    """``fn(*args)`` in a spawned process; poll for ("ok", result) or ("error", message)."""

    def __init__(self, fn: Callable[..., Any], *args: Any) -> None:
        ctx = mp.get_context("spawn")
        self.results = ctx.Queue()
        self.process = ctx.Process(target=_run, args=(fn, args, self.results), daemon=True, name="workbench-job")

    def start(self) -> Job:
        self.process.start()
        return self

    def poll(self) -> tuple[str, Any] | None:
        try:
            return self.results.get_nowait()
        except queue.Empty:
            if self.process.exitcode is not None:
                try:
                    return self.results.get(timeout=0.5)
                except queue.Empty:
                    return ("error", f"the worker process ended unexpectedly (exit code {self.process.exitcode})")
            return None

    def cancel(self) -> None:
        if self.process.is_alive():
            self.process.kill()
