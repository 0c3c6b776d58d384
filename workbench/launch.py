"""Launching ``workbench train`` under torchrun, without importing torch (the launching process
only builds a command line and waits; the ranks import torch).

Rank set-up, data order and the flags live in :mod:`workbench.training.distributed`.
"""

from __future__ import annotations

import os
import shlex
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from .errors import WorkbenchError

#: seconds a collective may wait for the other ranks before the run fails (a hung or lost rank)
DEFAULT_TIMEOUT_S = 300
#: files through which a launching process (the CLI, the GUI worker) stops and pauses rank 0
STOP_FILE_ENV = "WORKBENCH_STOP_FILE"
PAUSE_FILE_ENV = "WORKBENCH_PAUSE_FILE"
TIMEOUT_ENV = "WORKBENCH_DIST_TIMEOUT"


class DistributedError(WorkbenchError):
    """A distributed run cannot start or lost a rank; the message says which setting or rank."""


@dataclass(frozen=True)
class LaunchOptions:
    """What ``workbench train`` passes to torchrun.

    Attributes:
        nproc_per_node: processes on this machine.
        nnodes: machines (or torchrun's ``MIN:MAX`` range).
        node_rank: this machine's rank (static rendezvous).
        rdzv_endpoint: ``HOST:PORT`` of the rendezvous, needed across machines.
        rdzv_backend: torchrun's rendezvous backend (``c10d``, ``static``...); torchrun's default if empty.
        rdzv_id: the job id shared by every machine (e.g. ``$SLURM_JOB_ID``).
    """

    nproc_per_node: int
    nnodes: str = "1"
    node_rank: int | None = None
    rdzv_endpoint: str = ""
    rdzv_backend: str = ""
    rdzv_id: str = ""

    def check(self) -> None:
        """Raises DistributedError naming the option that cannot work."""
        if self.nproc_per_node < 1:
            raise DistributedError(f"--nproc-per-node: expected a positive int, got {self.nproc_per_node}")
        if self.nnodes != "1" and not self.rdzv_endpoint:
            raise DistributedError(f"--nnodes {self.nnodes}: several machines meet at a rendezvous; give "
                                   "--rdzv-endpoint HOST:PORT (the same on every machine)")
        if self.rdzv_endpoint and ":" not in self.rdzv_endpoint:
            raise DistributedError(f"--rdzv-endpoint {self.rdzv_endpoint!r}: expected HOST:PORT")


def torchrun_command(options: LaunchOptions, train_args: Sequence[str], python: str | None = None) -> list[str]:
    """The torchrun command line that runs ``workbench train`` with ``train_args`` on every rank.

    One machine without an endpoint uses ``--standalone`` (a local rendezvous on a free port);
    otherwise the rendezvous options are passed through as given.  ``--max-restarts 0``: a failed
    rank ends the run (a restart would repeat the same failure).
    """
    options.check()
    cmd = [python or sys.executable, "-m", "torch.distributed.run", f"--nproc-per-node={options.nproc_per_node}"]
    if options.nnodes == "1" and not options.rdzv_endpoint:
        cmd.append("--standalone")
    else:
        cmd.append(f"--nnodes={options.nnodes}")
        if options.node_rank is not None:
            cmd.append(f"--node-rank={options.node_rank}")
        cmd.append(f"--rdzv-endpoint={options.rdzv_endpoint}")
        if options.rdzv_backend:
            cmd.append(f"--rdzv-backend={options.rdzv_backend}")
        if options.rdzv_id:
            cmd.append(f"--rdzv-id={options.rdzv_id}")
    cmd += ["--max-restarts=0", "-m", "workbench", "train", *train_args]
    return cmd


def format_command(cmd: Sequence[str]) -> str:
    """The command as one shell line (each word quoted where needed)."""
    return shlex.join(cmd)


def under_torchrun() -> bool:
    """True in a process that torchrun started (it sets RANK, WORLD_SIZE and LOCAL_RANK)."""
    return all(k in os.environ for k in ("RANK", "WORLD_SIZE", "LOCAL_RANK"))


class FlagFile:
    """A flag other processes can see: set means the file exists.  Has the ``threading.Event``
    methods the engine uses, so it stands in for one in :class:`workbench.training.Control`."""

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)

    def is_set(self) -> bool:
        return self.path.exists()

    def set(self) -> None:
        self.path.touch()

    def clear(self) -> None:
        self.path.unlink(missing_ok=True)


def _set_parent_death_signal() -> None:
    import ctypes
    import signal

    ctypes.CDLL(None, use_errno=True).prctl(1, int(signal.SIGTERM))  # 1: PR_SET_PDEATHSIG


#: ``preexec_fn`` for torchrun: on Linux it gets SIGTERM when the process that started it dies, however
#: it dies (killed, out of memory, a crashed editor), and ends the ranks in turn; orphaned ranks would
#: train on (a paused rank 0 would not even notice that nobody listens).  Elsewhere: None.
die_with_parent = _set_parent_death_signal if sys.platform == "linux" else None
