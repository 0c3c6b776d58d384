"""``workbench train --nproc-per-node N``: the torchrun options of ``train`` and the launch.

The launching process only builds the torchrun command (:func:`~.training.distributed.torchrun_command`)
and runs it; the ranks are ordinary ``workbench train`` processes that find torchrun's variables
in their environment.  Ctrl+C stops the ranks at a batch boundary (through a stop file rank 0 reads),
a second Ctrl+C ends them.
"""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

from .cli_common import EXIT_INVALID, EXIT_OK, _fail, _load

#: the options consumed by the launcher (with whether they take a value); the ranks never see them
LAUNCH_OPTIONS = {"--nproc-per-node": True, "--nnodes": True, "--node-rank": True, "--rdzv-endpoint": True,
                  "--rdzv-backend": True, "--rdzv-id": True, "--print-command": False}


def add_arguments(p: argparse.ArgumentParser, positive_int: Any) -> None:
    """The distributed options of ``workbench train``."""
    g = p.add_argument_group("distributed data-parallel (torchrun)")
    g.add_argument("--nproc-per-node", type=positive_int, metavar="N", dest="nproc_per_node",
                   help="train on N processes of this machine under torchrun (the global batch is the project's "
                   "batch_size, split evenly over all processes)")
    g.add_argument("--nnodes", metavar="M", default="1", help="machines taking part (torchrun's --nnodes; needs "
                   "--rdzv-endpoint)")
    g.add_argument("--node-rank", type=int, metavar="R", dest="node_rank", help="this machine's rank (static rendezvous)")
    g.add_argument("--rdzv-endpoint", metavar="HOST:PORT", dest="rdzv_endpoint", default="",
                   help="where the machines meet (the same on every machine)")
    g.add_argument("--rdzv-backend", metavar="NAME", dest="rdzv_backend", default="",
                   help="torchrun's rendezvous backend, e.g. c10d (default: torchrun's)")
    g.add_argument("--rdzv-id", metavar="ID", dest="rdzv_id", default="", help="job id shared by the machines")
    g.add_argument("--print-command", action="store_true", dest="print_command",
                   help="print the torchrun command that would run and exit (for batch scripts)")
    g.add_argument("--dist-timeout", type=positive_int, metavar="S", dest="dist_timeout",
                   help="seconds the processes wait for each other before the run fails (default 300)")


def wants_launch(args: argparse.Namespace) -> bool:
    return bool(getattr(args, "nproc_per_node", None) or getattr(args, "print_command", False))


def rank_args(argv: list[str]) -> list[str]:
    """``train``'s own arguments without the launcher's options (what each rank receives)."""
    out: list[str] = []
    skip = False
    for word in argv:
        if skip:
            skip = False
            continue
        name = word.split("=", 1)[0]
        if name in LAUNCH_OPTIONS:
            skip = LAUNCH_OPTIONS[name] and "=" not in word
            continue
        out.append(word)
    return out


def launch(args: argparse.Namespace) -> int:
    """Print or run the torchrun command of this ``workbench train`` invocation."""
    from .launch import (
        PAUSE_FILE_ENV,
        STOP_FILE_ENV,
        DistributedError,
        FlagFile,
        LaunchOptions,
        die_with_parent,
        format_command,
        torchrun_command,
    )

    argv: list[str] = list(args.raw_argv)
    train_argv = rank_args(argv[argv.index("train") + 1:])
    options = LaunchOptions(args.nproc_per_node or 1, str(args.nnodes), args.node_rank, args.rdzv_endpoint,
                            args.rdzv_backend, args.rdzv_id)
    try:
        cmd = torchrun_command(options, train_argv)
    except DistributedError as exc:
        return _fail(str(exc), EXIT_INVALID)
    refusal = _batch_refusal(args, options)
    if refusal:
        return _fail(refusal, EXIT_INVALID)
    if args.print_command:
        print(format_command(cmd))
        return EXIT_OK
    with tempfile.TemporaryDirectory(prefix="workbench-ddp-") as tmp:
        # a caller (the GUI's worker) may hand its own flag files down
        stop = FlagFile(os.environ.get(STOP_FILE_ENV) or Path(tmp) / "stop")
        pause = FlagFile(os.environ.get(PAUSE_FILE_ENV) or Path(tmp) / "pause")
        env = {**os.environ, STOP_FILE_ENV: str(stop.path), PAUSE_FILE_ENV: str(pause.path)}
        # its own session: the terminal's Ctrl+C reaches this process only, which asks rank 0 to stop
        proc = subprocess.Popen(cmd, env=env, start_new_session=True, preexec_fn=die_with_parent)

        def interrupt(_sig: int, _frame: Any) -> None:
            if stop.is_set():
                os.killpg(proc.pid, signal.SIGTERM)
                return
            print("\nstopping every process after this step (Ctrl+C again to abort)...", file=sys.stderr)
            stop.set()

        previous = signal.signal(signal.SIGINT, interrupt)
        try:
            code = proc.wait()
        finally:
            signal.signal(signal.SIGINT, previous)
    if code:
        return _fail(f"the distributed run failed (torchrun exit status {code}); the lines above name the "
                     "process that failed and why", EXIT_INVALID)
    return EXIT_OK


def rank_control(args: argparse.Namespace) -> Any:
    """A rank's pause and stop flags: the launcher's files when it made them (only rank 0 reads them).

    torchrun ends the other ranks with SIGTERM when one fails: it becomes an error, so the run's
    summary still says how it ended."""
    from .training.distributed import DistributedError

    def terminated(_sig: int, _frame: Any) -> None:
        raise DistributedError("ended by the launcher (SIGTERM): another process failed or the job was cancelled")

    signal.signal(signal.SIGTERM, terminated)
    from .launch import PAUSE_FILE_ENV, STOP_FILE_ENV, TIMEOUT_ENV, FlagFile
    from .training import Control

    if getattr(args, "dist_timeout", None):
        os.environ[TIMEOUT_ENV] = str(args.dist_timeout)
    stop, pause = os.environ.get(STOP_FILE_ENV), os.environ.get(PAUSE_FILE_ENV)
    return Control(FlagFile(pause) if pause else None, FlagFile(stop) if stop else None)


def _batch_refusal(args: argparse.Namespace, options: Any) -> str | None:
    """The global batch must split evenly; said here, before any process starts (when the world size
    is known: a fixed number of machines)."""
    if not options.nnodes.isdigit():
        return None
    world = options.nproc_per_node * int(options.nnodes)
    batch = args.batch_size or int(_load(args.project).data.get("batch_size", 64))
    if batch % world:
        return (f"data.batch_size: {batch} does not split evenly over {world} processes; use a multiple of {world} "
                "(it is the global batch, each process takes an equal share)")
    return None
