"""Training in a spawned worker process, for the GUI.

A crash, a hang or the OOM killer in the worker never takes the editor down,
and the GIL is not shared with the UI.  Events come back over a queue in
bundles (at most ~30 a second); pause and stop are multiprocessing events.
The worker exits when its parent dies.  No Qt here: the GUI polls
:meth:`TrainingProcess.poll` from a timer.
"""

from __future__ import annotations

import multiprocessing as mp
import os
import queue
import threading
import time
import traceback
from pathlib import Path
from typing import Any

FLUSH_INTERVAL = 1 / 30
_URGENT = {"start", "epoch", "validation", "done", "error", "status", "log", "checkpoint"}


def _plain(value: Any) -> Any:
    """Tensors -> nested lists/ndarrays so events pickle small and safe."""
    import torch

    if torch.is_tensor(value):
        return value.detach().cpu().numpy()
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return value


def _watch_parent(parent_pid: int) -> None:
    while True:
        time.sleep(0.5)
        if os.getppid() != parent_pid:  # re-parented: the GUI is gone
            os._exit(3)


def worker_main(project_json: str, project_path: str | None, overrides: dict[str, Any], run_dir: str | None,
                resume: str | None, events: Any, pause: Any, stop: Any, parent_pid: int, threads: int,
                processes: int = 1) -> None:
    """Entry point of the worker process (``processes`` > 1: it runs torchrun and relays rank 0)."""
    threading.Thread(target=_watch_parent, args=(parent_pid,), daemon=True).start()
    if hasattr(os, "nice"):
        # A background job: the editor must win the CPU when both want it (it needs ~20 % of a core).
        try:
            os.nice(5)
        except OSError:
            pass
    import torch

    torch.set_num_threads(max(1, threads))
    from ..errors import WorkbenchError
    from ..project import loads_project
    from .devices import list_devices
    from .engine import Control, Trainer

    buffer: list[dict[str, Any]] = []
    last = [time.perf_counter()]

    def send(event: dict[str, Any]) -> None:
        buffer.append(_plain(event))
        now = time.perf_counter()
        if event["type"] in _URGENT or now - last[0] >= FLUSH_INTERVAL:
            events.put(list(buffer))
            buffer.clear()
            last[0] = now

    try:
        send({"type": "devices", "devices": [d.__dict__ for d in list_devices()]})
        if processes > 1:
            from .relay import run_ranks

            run_ranks(project_json, project_path, overrides, run_dir, resume, send, pause, stop, threads, processes)
            return
        project = loads_project(project_json)
        project.path = Path(project_path) if project_path else None
        trainer = Trainer(project, overrides, run_dir=Path(run_dir) if run_dir else None,
                          resume=Path(resume) if resume else None, listeners=[send], control=Control(pause, stop))
        trainer.run()
    except WorkbenchError as exc:
        send({"type": "error", "message": str(exc)})
    except Exception as exc:
        send({"type": "error", "message": f"unexpected error: {exc}", "detail": traceback.format_exc()})
    finally:
        if buffer:
            events.put(list(buffer))
        events.close()
        events.join_thread()


class TrainingProcess:
    """Owns one training worker.  Never blocks the caller.

    The worker uses ``cpu_count() - 1`` torch threads: measured on 2 cores, giving it every core
    halved its throughput (0.47 of headless, against 0.84) because the OpenMP threads wait on the
    one the GUI interrupts.
    """

    def __init__(self, project_json: str, project_path: Path | None, overrides: dict[str, Any] | None = None,
                 run_dir: Path | None = None, resume: Path | None = None, threads: int | None = None,
                 processes: int = 1) -> None:
        ctx = mp.get_context("spawn")  # fork is unsafe with threads, CUDA and Qt
        self.events = ctx.Queue()
        self.pause_flag, self.stop_flag = ctx.Event(), ctx.Event()
        self.finished = False
        self.process = ctx.Process(
            target=worker_main,
            args=(project_json, str(project_path) if project_path else None, overrides or {},
                  str(run_dir) if run_dir else None, str(resume) if resume else None, self.events,
                  self.pause_flag, self.stop_flag, os.getpid(), threads or self.default_threads(), processes),
            daemon=True,
            name="workbench-training",
        )

    @staticmethod
    def default_threads() -> int:
        """Torch threads of a worker: every core but one, which the GUI keeps."""
        return max(1, (os.cpu_count() or 2) - 1)

    def start(self) -> None:
        self.process.start()

    def poll(self, limit: int = 200) -> list[dict[str, Any]]:
        """Events received so far (non-blocking); adds a ``died`` event when the process
        ended without saying goodbye (killed, segfault, out of memory)."""
        out: list[dict[str, Any]] = []
        for _ in range(limit):
            try:
                out.extend(self.events.get_nowait())
            except queue.Empty:
                break
            except (EOFError, OSError):
                break
        if any(e["type"] in ("done", "error") for e in out):
            self.finished = True
        code = self.process.exitcode
        if code is not None and not self.finished and not out:
            self.finished = True
            how = "was killed (perhaps by the out-of-memory killer)" if code < 0 else f"exited with status {code}"
            out.append({"type": "died", "message": f"the training process {how}", "exitcode": code})
        return out

    @property
    def alive(self) -> bool:
        return self.process.is_alive()

    def pause(self) -> None:
        self.pause_flag.set()

    def resume(self) -> None:
        self.pause_flag.clear()

    def stop(self) -> None:
        """Finish the current step, write a checkpoint, end."""
        self.pause_flag.clear()
        self.stop_flag.set()

    def kill(self) -> None:
        if self.process.is_alive():
            self.process.kill()
