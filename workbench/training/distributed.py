"""Data-parallel training under torchrun: rank set-up, data order and the flags (the torchrun
command itself is built in :mod:`workbench.launch`, which imports no torch).

``workbench train P --nproc-per-node N`` re-executes itself under PyTorch's own launcher
(``python -m torch.distributed.run``); each rank runs the ordinary :class:`~.engine.Trainer` with a
:class:`DistRun`, which holds every distributed decision so the engine only calls small hooks:

* device and backend where every device is chosen (:func:`.devices.rank_device`): gloo on the CPU,
  nccl on CUDA with one GPU per rank (``cuda:LOCAL_RANK``); ``init_process_group`` gets a timeout,
  so a rank that hangs ends the run with an error instead of blocking the others for ever;
* the global batch is the project's ``batch_size``, split over the ranks (it must divide evenly);
  :class:`GlobalBatchSampler` (a ``DistributedSampler``, epoch set by the engine) draws the
  epoch's order with the same torch code and generator as the one-process run, and gives each rank
  a strided share of every global batch, so N processes see exactly the batches one process sees;
* the loss each rank back-propagates is scaled so DDP's gradient average equals the gradient of
  the mean over the global batch (also for a short last batch), and the reported loss is the
  global mean (``all_reduce``);
* only rank 0 writes the run folder, events and checkpoints; stop and pause are read on rank 0
  and broadcast at every batch boundary (:class:`SyncedControl`).
"""

from __future__ import annotations

import datetime
import math
import os
from collections.abc import Iterator
from typing import Any

import torch

from ..launch import (
    DEFAULT_TIMEOUT_S,
    PAUSE_FILE_ENV,
    STOP_FILE_ENV,
    TIMEOUT_ENV,
    DistributedError,
    FlagFile,
    LaunchOptions,
    format_command,
    torchrun_command,
    under_torchrun,
)
from .devices import rank_device

__all__ = ["DEFAULT_TIMEOUT_S", "PAUSE_FILE_ENV", "STOP_FILE_ENV", "TIMEOUT_ENV", "DistRun", "DistributedError",
           "FlagFile", "GlobalBatchSampler", "LaunchOptions", "SyncedControl", "describe", "epoch_seeds",
           "format_command", "rank_device", "refuse", "share_size", "torchrun_command", "under_torchrun"]

# --------------------------------------------------------------------------- a rank


def refuse(task: str, batch_size: int, private: bool = False) -> None:
    """What a rank refuses before it joins the others (every rank refuses alike).

    Raises:
        DistributedError: naming the setting, or the missing torchrun environment.
    """
    if not under_torchrun():
        raise DistributedError("a distributed run needs torchrun's environment (RANK, WORLD_SIZE, LOCAL_RANK): "
                               "start it with workbench train --nproc-per-node N")
    if task == "adversarial":
        raise DistributedError("training.task: the adversarial task trains two models in turn and cannot run on "
                               "several processes yet; train it in one process")
    if task in ("contrastive", "masked_image", "masked_tokens"):
        raise DistributedError(f"training.task: the {task} task runs in one process for now (a contrastive loss takes "
                               "its negatives from the whole batch, which no rank holds); train it without "
                               "--nproc-per-node")
    if private:
        raise DistributedError("training.privacy: differentially private training runs in one process (its "
                               "privacy accounting assumes one sampler); train it without --nproc-per-node")
    world = int(os.environ["WORLD_SIZE"])
    if batch_size % world:
        raise DistributedError(f"data.batch_size: {batch_size} does not split evenly over {world} processes; use a "
                               f"multiple of {world} (it is the global batch, each process takes an equal share)")


def share_size(count: int, world_size: int, rank: int) -> int:
    """How many of ``count`` samples (strided: positions rank, rank + W, ...) fall to ``rank``."""
    return max(0, math.ceil((count - rank) / world_size))


def epoch_seeds(data_seed: int, epoch: int) -> tuple[int, int]:
    """The seeds of an epoch's shuffling and augmentation, the same with any number of ranks and
    for a resumed run (epochs < 2**20)."""
    base = (int(data_seed) << 20) + epoch
    return 2 * base, 2 * base + 1


class GlobalBatchSampler(torch.utils.data.distributed.DistributedSampler):  # type: ignore[type-arg]
    """Each rank's share of every global batch, in the one-process order (a batch sampler).

    ``DistributedSampler`` itself strides the whole epoch and pads it with repeated samples, so its
    ranks together would not see the batches one process sees.  This subclass keeps its contract
    (``num_replicas``, ``rank``, ``set_epoch``) but draws the epoch's global batches with
    ``DataLoader(range(n), batch_size, shuffle, generator)``, the very code the one-process engine
    runs with the same seed, and yields positions ``rank, rank + W, ...`` of each.  A rank whose
    share of a short last batch is empty gets one sample with weight 0 (DDP needs every rank to
    take part in every step).
    """

    def __init__(self, dataset: Any, batch_size: int, rank: int, world_size: int, shuffle: bool,
                 data_seed: int) -> None:
        super().__init__(dataset, num_replicas=world_size, rank=rank, shuffle=shuffle, seed=data_seed)
        self.batch_size = batch_size

    def global_batches(self) -> Iterator[torch.Tensor]:
        """The epoch's global batches of dataset positions."""
        gen = torch.Generator().manual_seed(epoch_seeds(self.seed, self.epoch)[0])
        yield from torch.utils.data.DataLoader(range(len(self.dataset)), batch_size=self.batch_size,  # type: ignore[arg-type]
                                               shuffle=self.shuffle, generator=gen)

    def __iter__(self) -> Iterator[list[int]]:  # type: ignore[override]
        for batch in self.global_batches():
            share = batch[self.rank::self.num_replicas]
            yield (share if len(share) else batch[:1]).tolist()

    def __len__(self) -> int:
        return math.ceil(len(self.dataset) / self.batch_size)  # type: ignore[arg-type]

    def global_count(self, index: int) -> int:
        """Samples in global batch ``index``."""
        return min(self.batch_size, len(self.dataset) - index * self.batch_size)  # type: ignore[arg-type]


class SyncedControl:
    """Pause and stop as every rank sees them: rank 0 reads the real flags, :meth:`sync` broadcasts
    them (at batch boundaries), and the engine only ever reads the synced copies, so all ranks pause,
    resume and stop at the same step."""

    def __init__(self, source: Any, device: torch.device) -> None:
        import threading

        self.source = source
        self.pause, self.stop = threading.Event(), threading.Event()
        self._flags = torch.zeros(2, dtype=torch.int32, device=device)

    def sync(self) -> None:
        import torch.distributed as dist

        if dist.get_rank() == 0:
            self._flags[0] = int(self.source.pause.is_set())
            self._flags[1] = int(self.source.stop.is_set())
        dist.broadcast(self._flags, src=0)
        for flag, event in zip(self._flags.tolist(), (self.pause, self.stop), strict=True):
            event.set() if flag else event.clear()


class DistRun:
    """One rank of a data-parallel run (made by :meth:`from_env` inside a torchrun worker).

    Attributes:
        rank, world_size, local_rank: from torchrun's environment.
        device, backend: from :func:`rank_device`.
    """

    def __init__(self, rank: int, world_size: int, local_rank: int, device: torch.device, backend: str) -> None:
        self.rank, self.world_size, self.local_rank = rank, world_size, local_rank
        self.device, self.backend = device, backend
        self.sampler: GlobalBatchSampler | None = None

    @property
    def is_main(self) -> bool:
        """Rank 0: the one that writes files and emits events."""
        return self.rank == 0

    @classmethod
    def from_env(cls, device_spec: str, timeout_s: float | None = None) -> DistRun:
        """Join the process group torchrun set up (gloo or nccl, with a timeout).

        Raises:
            DistributedError: the device cannot serve this rank, or the others never came.
        """
        import torch.distributed as dist

        rank, world, local = (int(os.environ[k]) for k in ("RANK", "WORLD_SIZE", "LOCAL_RANK"))
        device, backend = rank_device(device_spec, local)  # devices.py: the one place that chooses
        timeout = float(timeout_s or os.environ.get(TIMEOUT_ENV) or DEFAULT_TIMEOUT_S)
        try:
            dist.init_process_group(backend, timeout=datetime.timedelta(seconds=timeout),
                                    device_id=device if backend == "nccl" else None)
        except Exception as exc:  # a store that never answers, a port in use: say so, with the rank
            raise DistributedError(f"rank {rank} could not join the process group ({backend}): {exc}") from None
        return cls(rank, world, local, device, backend)

    def local_batch(self, batch_size: int) -> int:
        """Samples per rank in a full step.

        Raises:
            DistributedError: the batch does not split evenly over the ranks.
        """
        if batch_size % self.world_size:
            raise DistributedError(f"data.batch_size: {batch_size} does not split evenly over {self.world_size} "
                                   f"processes; use a multiple of {self.world_size} (it is the global batch)")
        return batch_size // self.world_size

    def wrap(self, model: torch.nn.Module, unused: bool = False) -> torch.nn.Module:
        """The model under DistributedDataParallel (BatchNorm synchronised on CUDA, where torch can).

        ``unused``: some parameters may get no gradient (a graph with several outputs, of which the
        loss reads the first), which DDP must then look for after every backward pass."""
        from torch.nn.parallel import DistributedDataParallel

        if self.device.type == "cuda":
            model = torch.nn.SyncBatchNorm.convert_sync_batchnorm(model)
        ids = [self.device.index] if self.device.type == "cuda" else None
        return DistributedDataParallel(model, device_ids=ids, find_unused_parameters=unused)

    def loader(self, dataset: Any, batch_size: int, shuffle: bool, data_seed: int,
               epoch: int) -> torch.utils.data.DataLoader:  # type: ignore[type-arg]
        """This rank's loader for one epoch."""
        if self.sampler is None:
            self.sampler = GlobalBatchSampler(dataset, batch_size, self.rank, self.world_size, shuffle, data_seed)
        self.sampler.set_epoch(epoch)
        return torch.utils.data.DataLoader(dataset, batch_sampler=self.sampler)

    def weight(self, index: int) -> tuple[float, int]:
        """(loss scale, global count) of global batch ``index``: the scale makes DDP's average over the
        ranks the mean over the global batch, whatever the shares."""
        assert self.sampler is not None
        count = self.sampler.global_count(index)
        return share_size(count, self.world_size, self.rank) * self.world_size / count, count

    def global_mean(self, loss: torch.Tensor, index: int) -> tuple[torch.Tensor, torch.Tensor, int]:
        """(the loss this rank back-propagates, the global batch's mean loss, its sample count)."""
        import torch.distributed as dist

        scale, count = self.weight(index)
        scaled = loss * scale
        total = scaled.detach().float().clone()
        dist.all_reduce(total)
        return scaled, total / self.world_size, count

    def augment(self, augment: Any, x: torch.Tensor, generator: torch.Generator, index: int) -> torch.Tensor:
        """Augment this rank's share with the random draws the one-process run makes for the whole batch."""
        count = self.sampler.global_count(index) if self.sampler is not None else x.shape[0]
        positions = torch.arange(self.rank, count, self.world_size)
        if not len(positions):
            positions = torch.zeros(1, dtype=torch.long)
        return augment(x, generator, positions=positions, total=count)

    def sync_buffers(self, model: torch.nn.Module) -> None:
        """Rank 0's buffers (BatchNorm running statistics) on every rank: each rank updated its own
        from its share since DDP last broadcast them, and a held-out pass must give every rank the same
        metrics (early stopping, the plateau schedule and the best checkpoint depend on them)."""
        import torch.distributed as dist

        for buffer in model.buffers():
            dist.broadcast(buffer, src=0)

    def barrier(self) -> None:
        import torch.distributed as dist

        dist.barrier()

    def close(self) -> None:
        import torch.distributed as dist

        if dist.is_initialized():
            dist.destroy_process_group()


def describe(run: DistRun, global_batch: int) -> dict[str, Any]:
    """What the summary states about the distribution."""
    return {"world_size": run.world_size, "backend": run.backend, "global_batch": global_batch,
            "batch_per_rank": global_batch // run.world_size}

