"""The editor's worker runs a data-parallel run: torchrun in a child process, rank 0's events relayed.

The worker (a spawned process, see :mod:`.worker`) writes the project to a temporary file, starts
the torchrun command of ``workbench train`` (:func:`~workbench.launch.torchrun_command`, the same
the CLI runs), and opens a local, authenticated connection (``multiprocessing.connection``) on which
rank 0 sends its events in bundles; the worker passes them on to the GUI's queue as if it trained
itself.  Pause and stop become the flag files rank 0 reads and broadcasts to every rank.
"""

from __future__ import annotations

import os
import secrets
import subprocess
import tempfile
import threading
import time
from multiprocessing.connection import Client, Listener
from pathlib import Path
from typing import Any

from ..errors import WorkbenchError
from ..launch import PAUSE_FILE_ENV, STOP_FILE_ENV, FlagFile, LaunchOptions, die_with_parent, torchrun_command

EVENTS_ENV = "WORKBENCH_EVENTS"  # host:port of the worker's listener
EVENTS_KEY_ENV = "WORKBENCH_EVENTS_KEY"  # its authentication key (hex)
PROJECT_PATH_ENV = "WORKBENCH_PROJECT_PATH"  # where the project lives (run folders, a teacher beside it)
FLUSH_INTERVAL = 1 / 30
_URGENT = {"start", "epoch", "validation", "done", "error", "status", "log", "checkpoint", "test"}
#: the overrides the editor can pass, as ``workbench train`` options
_OPTIONS = {"device": "--device", "epochs": "--epochs", "batch_size": "--batch-size", "lr": "--lr", "seed": "--seed"}


class RelayClient:
    """Rank 0's listener: sends events to the worker in bundles (at most ~30 a second)."""

    def __init__(self, address: str, key: str) -> None:
        host, port = address.rsplit(":", 1)
        self.conn = Client((host, int(port)), authkey=bytes.fromhex(key))
        self.buffer: list[dict[str, Any]] = []
        self.last = time.perf_counter()

    def __call__(self, event: dict[str, Any]) -> None:
        from .worker import _plain

        self.buffer.append(_plain(event))
        now = time.perf_counter()
        if event["type"] in _URGENT or now - self.last >= FLUSH_INTERVAL:
            try:
                self.conn.send(self.buffer)
            except OSError:  # the worker is gone: nobody watches this run any more
                from .distributed import DistributedError

                raise DistributedError("the editor's training worker is gone; ending the run") from None
            self.buffer, self.last = [], now
        if event["type"] == "done":
            self.conn.close()


def rank_listeners(project: Any) -> list[Any]:
    """In a rank the editor's worker started: the project's real place, and (rank 0) the relay."""
    if os.environ.get(PROJECT_PATH_ENV):
        project.path = Path(os.environ[PROJECT_PATH_ENV])
    if os.environ.get(EVENTS_ENV) and os.environ.get("RANK") == "0":
        return [RelayClient(os.environ[EVENTS_ENV], os.environ[EVENTS_KEY_ENV])]
    return []


def rank_arguments(project_file: Path, run_dir: Path, overrides: dict[str, Any], resume: str | None,
                   threads: int) -> list[str]:
    """``workbench train``'s arguments for the editor's settings.

    Raises:
        WorkbenchError: an override the command line has no option for.
    """
    args = [str(project_file), "--out", str(run_dir), "--threads", str(threads), "--quiet"]
    for key, value in overrides.items():
        if value is None:
            continue
        if key not in _OPTIONS:
            raise WorkbenchError(f"training.{key} cannot be changed for a run on several processes")
        args += [_OPTIONS[key], str(value)]
    if resume:
        args += ["--resume", resume]
    return args


def run_ranks(project_json: str, project_path: str | None, overrides: dict[str, Any], run_dir: str | None,
              resume: str | None, send: Any, pause: Any, stop: Any, threads: int, processes: int) -> None:
    """Run ``processes`` ranks under torchrun and relay rank 0's events to ``send`` (in the worker).

    Raises:
        WorkbenchError: the run could not start, or ended without rank 0 saying why (torchrun's reason).
    """
    from ..project import loads_project
    from .runs import new_run_dir, runs_root

    project = loads_project(project_json)
    path = Path(project_path) if project_path else None
    batch = int(overrides.get("batch_size") or project.data.get("batch_size", 0))
    if batch % processes:  # said before any process starts (the ranks would refuse it too)
        raise WorkbenchError(f"data.batch_size: {batch} does not split evenly over {processes} processes; use a "
                             f"multiple of {processes} (it is the global batch, each process takes an equal share)")
    with tempfile.TemporaryDirectory(prefix="workbench-ranks-") as tmp:
        project_file = Path(tmp) / "project.json"
        project_file.write_text(project_json, encoding="utf-8")
        out = Path(run_dir) if run_dir else (Path(resume).parent.parent if resume
                                             else new_run_dir(runs_root(path), project.name))
        args = rank_arguments(project_file, out, overrides, resume, max(1, threads // processes))
        cmd = torchrun_command(LaunchOptions(processes), args)
        key = secrets.token_bytes(16)
        listener = Listener(("127.0.0.1", 0), authkey=key)
        host, port = listener.address
        stop_file, pause_file = FlagFile(Path(tmp) / "stop"), FlagFile(Path(tmp) / "pause")
        env = {**os.environ, EVENTS_ENV: f"{host}:{port}", EVENTS_KEY_ENV: key.hex(), PROJECT_PATH_ENV: str(path or ""),
               STOP_FILE_ENV: str(stop_file.path), PAUSE_FILE_ENV: str(pause_file.path)}
        proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
                                preexec_fn=die_with_parent)
        errors: list[str] = []
        reader = threading.Thread(target=lambda: errors.extend(proc.stderr or []), daemon=True)
        reader.start()
        conns: list[Any] = []

        def accept() -> None:
            try:
                conns.append(listener.accept())
            except OSError:  # closed: rank 0 never connected (the run failed before it started)
                pass

        threading.Thread(target=accept, daemon=True).start()
        ended = False
        try:
            while True:
                for flag, event in ((stop_file, stop), (pause_file, pause)):  # mirror the GUI's flags
                    if event.is_set() != flag.is_set():
                        flag.set() if event.is_set() else flag.clear()
                running = proc.poll() is None
                if conns and conns[0].poll(0.05):
                    try:
                        for e in conns[0].recv():
                            ended |= e["type"] == "done"
                            send(e)
                    except EOFError:  # rank 0 closed the connection (after its last event)
                        conns.clear()
                elif not running:
                    break
                else:
                    time.sleep(0.05)
        finally:
            if proc.poll() is None:
                proc.terminate()
            proc.wait()
            listener.close()
        reader.join(timeout=5)
        if not run_dir and not resume and out.is_dir() and not any(out.iterdir()):
            out.rmdir()  # the folder made for a run that never started
        said = [ln.split("error:", 1)[1].strip() for ln in errors if ln.startswith("workbench: error:")]
        if said:
            raise WorkbenchError(said[0])
        if proc.returncode or not ended:
            tail = " ".join(ln.strip() for ln in errors[-6:] if ln.strip())[-600:]
            raise WorkbenchError(f"the {processes} training processes failed (torchrun exit status "
                                 f"{proc.returncode}): {tail}")
