"""Training: one engine for the GUI (in a worker process) and the CLI (in-process)."""

from .devices import DeviceError, DeviceInfo, best_device, list_devices, resolve_device
from .engine import Control, Trainer, TrainingError

__all__ = ["Control", "DeviceError", "DeviceInfo", "Trainer", "TrainingError", "best_device", "list_devices",
           "resolve_device"]
