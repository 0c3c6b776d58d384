"""Device choice lives here and only here.

:func:`list_devices` enumerates what this machine offers (CPU with its thread
count, each CUDA GPU with name and memory, Apple MPS) and says why something is
missing; :func:`resolve_device` turns the user's choice into a ``torch.device``, and
:func:`rank_device` gives one process of a distributed run its device and backend.
Call both inside the training worker so the GUI never initialises CUDA.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import torch

from ..errors import WorkbenchError


class DeviceError(WorkbenchError):
    """The requested device does not exist or cannot be used; the message says why."""


@dataclass(frozen=True)
class DeviceInfo:
    id: str  # "cpu", "cuda:0", "mps"
    name: str
    kind: str  # cpu | cuda | mps
    available: bool
    memory_bytes: int | None = None
    threads: int | None = None
    note: str = ""

    def label(self) -> str:
        extra = []
        if self.threads:
            extra.append(f"{self.threads} threads")
        if self.memory_bytes:
            extra.append(f"{self.memory_bytes / 2**30:.1f} GB")
        if not self.available and self.note:
            extra.append(self.note)
        return f"{self.id}: {self.name}" + (f" ({', '.join(extra)})" if extra else "")


def _mps_status() -> tuple[bool, str]:
    mps = getattr(torch.backends, "mps", None)
    if mps is None or not mps.is_built():
        return False, "this PyTorch build has no MPS support"
    if not mps.is_available():
        return False, "MPS is built but not available (needs macOS 12.3+ on Apple silicon)"
    return True, ""


def list_devices() -> list[DeviceInfo]:
    """Every device of this machine, CPU first; unavailable MPS is listed with the reason."""
    threads = torch.get_num_threads()
    devices = [DeviceInfo("cpu", f"CPU ({os.cpu_count()} cores)", "cpu", True, threads=threads)]
    if torch.cuda.is_available():
        for i in range(torch.cuda.device_count()):
            props = torch.cuda.get_device_properties(i)
            devices.append(DeviceInfo(f"cuda:{i}", props.name, "cuda", True, memory_bytes=int(props.total_memory)))
    ok, why = _mps_status()
    if ok or (getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_built()):
        devices.append(DeviceInfo("mps", "Apple Metal (MPS)", "mps", ok, note=why))
    return devices


def best_device(devices: list[DeviceInfo] | None = None) -> str:
    """The default choice: the first CUDA GPU, else MPS, else the CPU."""
    devices = devices if devices is not None else list_devices()
    for kind in ("cuda", "mps"):
        for d in devices:
            if d.kind == kind and d.available:
                return d.id
    return "cpu"


def resolve_device(spec: str, devices: list[DeviceInfo] | None = None) -> torch.device:
    """``auto | cpu | cuda | cuda:N | mps`` -> a usable ``torch.device``.

    Raises:
        DeviceError: naming what was asked and what exists.
    """
    devices = devices if devices is not None else list_devices()
    spec = (spec or "auto").strip().lower()
    if spec == "auto":
        return torch.device(best_device(devices))
    if spec == "cuda":
        spec = "cuda:0"
    known = {d.id: d for d in devices}
    if spec in known:
        d = known[spec]
        if not d.available:
            raise DeviceError(f"device {spec} is not usable: {d.note}")
        return torch.device(spec)
    have = ", ".join(d.id for d in devices if d.available)
    if spec.startswith("cuda"):
        count = sum(1 for d in devices if d.kind == "cuda")
        reason = "no CUDA GPU is available" if not count else f"only {count} CUDA GPU(s) exist"
        raise DeviceError(f"device {spec} is not available: {reason} (available: {have})")
    if spec == "mps":
        raise DeviceError(f"device mps is not available: {_mps_status()[1]} (available: {have})")
    raise DeviceError(f"unknown device {spec!r}: use auto, cpu, cuda, cuda:N or mps (available: {have})")


def rank_device(spec: str, local_rank: int) -> tuple[torch.device, str]:
    """The device and process-group backend of one rank: the only place that chooses them.

    ``cpu`` (or ``auto`` without a GPU) -> gloo; ``cuda``/``auto`` with GPUs -> nccl on
    ``cuda:LOCAL_RANK`` (one GPU per rank).  A fixed ``cuda:N`` cannot be shared by several ranks.

    Raises:
        DeviceError: MPS (no multi-process backend), a fixed GPU, or fewer GPUs than ranks.
    """
    device = resolve_device(spec)
    if device.type == "cpu":
        return device, "gloo"
    if device.type != "cuda":
        raise DeviceError(f"training.device: {device} has no multi-process backend; use cpu or cuda")
    if (spec or "auto").strip().lower() not in ("auto", "cuda"):
        raise DeviceError(f"training.device: {spec} names one GPU, but every rank needs its own; use cuda "
                          "(rank N trains on cuda:LOCAL_RANK)")
    count = torch.cuda.device_count()
    if local_rank >= count:
        raise DeviceError(f"local rank {local_rank} has no GPU of its own: this machine has {count}; "
                          "lower --nproc-per-node")
    torch.cuda.set_device(local_rank)
    return torch.device("cuda", local_rank), "nccl"


PRECISIONS = {"fp32": None, "bf16": torch.bfloat16, "fp16": torch.float16}


def autocast_dtype(device: torch.device, precision: str) -> torch.dtype | None:
    """The ``torch.autocast`` dtype for mixed precision on ``device``, or None for full precision.

    Every combination torch's autocast supports is used: bf16 and fp16 on CUDA (bf16 where the GPU
    has it), on the CPU and on MPS (bf16 from macOS 14).  fp16 needs loss scaling
    (``torch.amp.GradScaler``); bf16 has fp32's range and does not.

    Raises:
        DeviceError: naming the setting and the device, when torch cannot run the combination.
    """
    if precision not in PRECISIONS:
        raise DeviceError(f"precision {precision!r} is unknown: use {', '.join(PRECISIONS)}")
    dtype = PRECISIONS[precision]
    if dtype is None:
        return None
    where = f"precision {precision} cannot be used on {device}"
    if not torch.amp.is_autocast_available(device.type):
        raise DeviceError(f"{where}: this PyTorch has no mixed precision (autocast) for {device.type} devices; "
                          "use fp32")
    if dtype == torch.bfloat16 and device.type == "cuda" and not _cuda_bf16(device):
        raise DeviceError(f"{where}: the GPU has no bfloat16 support; use fp16")
    if dtype == torch.bfloat16 and device.type == "mps" and not torch.backends.mps.is_macos_or_newer(14, 0):
        raise DeviceError(f"{where}: bfloat16 on MPS needs macOS 14 or newer; use fp16")
    return dtype


def _cuda_bf16(device: torch.device) -> bool:
    if not torch.cuda.is_available():
        return False
    with torch.cuda.device(device):
        return bool(torch.cuda.is_bf16_supported())
