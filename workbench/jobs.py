"""Long one-off work (export, import, a profile run) in a spawned process, so the caller can show
progress, stay responsive and cancel by ending the process (atomic writes mean a
cancelled job leaves nothing behind)."""

from __future__ import annotations

import multiprocessing as mp
import queue
from collections.abc import Callable
from typing import Any


def _run(fn: Callable[..., Any], args: tuple[Any, ...], results: Any, progress: bool = False,
         stop: Any = None) -> None:
    from .errors import WorkbenchError

    def report(done: int, total: int, note: str | None = None) -> None:
        results.put(("progress", (done, total) if note is None else (done, total, note)))

    kwargs: dict[str, Any] = {"progress": report} if progress else {}
    if stop is not None:
        kwargs["stop"] = stop.is_set
    try:
        results.put(("ok", fn(*args, **kwargs)))
    except WorkbenchError as exc:
        results.put(("error", str(exc)))
    except Exception as exc:
        results.put(("error", f"unexpected error: {type(exc).__name__}: {exc}"))


class Job:
    """``fn(*args)`` in a spawned process; poll for ("ok", result) or ("error", message).

    With ``progress=True``, ``fn`` is also given ``progress=callback(done, total)``, and polling
    returns ("progress", (done, total)) as it reports (("progress", (done, total, note)) when the
    callback is given a third argument, a sentence saying what is being done).  With
    ``stoppable=True``, ``fn`` is also given ``stop``, a callable that turns True after
    :meth:`request_stop`, so it can end cleanly at its next safe point.
    """

    def __init__(self, fn: Callable[..., Any], *args: Any, progress: bool = False, stoppable: bool = False) -> None:
        ctx = mp.get_context("spawn")
        self.results = ctx.Queue()
        self.stop_event = ctx.Event() if stoppable else None
        self.process = ctx.Process(target=_run, args=(fn, args, self.results, progress, self.stop_event), daemon=True,
                                   name="workbench-job")

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

    def request_stop(self) -> None:
        """Ask a stoppable job to end at its next safe point (it still reports how it ended)."""
        if self.stop_event is not None:
            self.stop_event.set()

    def cancel(self) -> None:
        if self.process.is_alive():
            self.process.kill()
