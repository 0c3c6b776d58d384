"""TensorBoard event files in every run folder (the optional ``tensorboard`` extra).

A listener like the run writer: it turns the engine's events into TensorBoard's own records with
``torch.utils.tensorboard.SummaryWriter``, into the run folder itself (``tensorboard --logdir
runs/<project>`` lists each run by its folder name):

* scalars: every step's loss and learning rate (``train/``), every epoch's metrics (``epoch/``),
  the test metrics (``test/``);
* per layer (node name) and parameter, weight and gradient histograms at the end of every epoch
  (the gradients of the epoch's last step);
* the validation confusion matrix as an image (rows: true class, columns: predicted, shaded by the
  share of the row);
* the run's settings as hyperparameters with its final metrics in the HParams tab.  They are
  written into the same event file: ``SummaryWriter.add_hparams`` would open a sub-folder, which
  TensorBoard shows as a second, phantom run.

The setting ``training.tensorboard`` turns it off; without the package the run goes on with a
one-line note.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np
import torch

MISSING_NOTE = ("TensorBoard logs skipped: the tensorboard package is not installed "
                "(pip install 'neural-workbench[tensorboard]')")
_NOT_METRICS = {"type", "epoch", "step", "time", "progress", "samples_per_s"}


def confusion_image(confusion: Any, cell: int | None = None) -> np.ndarray:
    """[C, C] counts -> an RGB uint8 image [H, W, 3]: white (0) to dark blue (all of the row)."""
    counts = np.asarray(confusion, dtype=np.float64)
    share = counts / np.maximum(counts.sum(axis=1, keepdims=True), 1)
    n = share.shape[0]
    cell = cell or max(2, min(32, 512 // max(1, n)))
    white, blue = np.array([255.0, 255.0, 255.0]), np.array([8.0, 48.0, 107.0])
    rgb = white + share[..., None] * (blue - white)
    return np.kron(rgb, np.ones((cell, cell, 1))).round().astype(np.uint8)


def _scalar(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    value = float(value)
    return value if math.isfinite(value) else None


class TensorBoardLogger:
    """Writes a run's events as TensorBoard records (rank 0 only, like the run writer).

    Args:
        log_dir: the run folder.
        model: the trained module (its parameters and their gradients are read at epoch ends).
        layer_names: module attribute -> node name (as the canvas shows it).
        settings: the run's settings, ``{"training": {...}, "data": {...}}``: the hyperparameters.
    """

    def __init__(self, log_dir: Path, model: torch.nn.Module, layer_names: dict[str, str],
                 settings: dict[str, dict[str, Any]]) -> None:
        from torch.utils.tensorboard import SummaryWriter

        self.writer = SummaryWriter(log_dir=str(log_dir))
        self.model = model
        self.layer_names = layer_names
        self.hparams = {f"{section}.{k}": v for section, values in settings.items() for k, v in values.items()
                        if isinstance(v, (bool, int, float, str))}
        self._closed = False

    def __call__(self, event: dict[str, Any]) -> None:
        kind = event["type"]
        if self._closed:
            return
        if kind == "batch":
            for key in ("loss", "d_loss", "lr"):
                value = _scalar(event.get(key))
                if value is not None:
                    self.writer.add_scalar(f"train/{key}", value, event["step"])
        elif kind == "epoch":
            epoch = int(event["epoch"])
            for key, value in event.items():
                if key not in _NOT_METRICS and _scalar(value) is not None:
                    self.writer.add_scalar(f"epoch/{key}", float(value), epoch)
            self._histograms(epoch)
            self.writer.flush()
        elif kind == "validation" and event.get("confusion") is not None:
            self.writer.add_image("validation/confusion_matrix", confusion_image(event["confusion"]),
                                  int(event["epoch"]), dataformats="HWC")
        elif kind == "test":
            for key, value in (event.get("metrics") or {}).items():
                if _scalar(value) is not None:
                    self.writer.add_scalar(f"test/{key}", float(value), 0)
        elif kind == "done":
            self._write_hparams(event["summary"])
            self.close()

    def _histograms(self, epoch: int) -> None:
        for attr, module in self.model.named_children():
            node = self.layer_names.get(attr, attr)
            for name, p in module.named_parameters():
                self.writer.add_histogram(f"weights/{node}/{name}", p.detach().float().cpu(), epoch)
                if p.grad is not None:
                    self.writer.add_histogram(f"gradients/{node}/{name}", p.grad.detach().float().cpu(), epoch)

    @staticmethod
    def final_metrics(summary: dict[str, Any]) -> dict[str, float]:
        """The metrics the HParams tab shows for a run: final validation, best, test."""
        out = {f"final_{k}": v for k, v in (summary.get("final") or {}).items()}
        out.update({f"test_{k}": v for k, v in (summary.get("test") or {}).items()})
        out.update({k: v for k, v in summary.items() if k.startswith("best_")})
        return {f"hparam/{k}": float(v) for k, v in out.items() if _scalar(v) is not None}

    def _write_hparams(self, summary: dict[str, Any]) -> None:
        from torch.utils.tensorboard.summary import hparams

        metrics = self.final_metrics(summary)
        hp = {**self.hparams, "status": str(summary.get("status", ""))}
        experiment, session_start, session_end = hparams(hp, metrics)
        step = int(summary.get("steps") or 0)
        for record in (experiment, session_start, session_end):
            self.writer.file_writer.add_summary(record, step)
        for tag, value in metrics.items():  # the values the HParams tab reads, by these tags, from this run
            self.writer.add_scalar(tag, value, step)

    def close(self) -> None:
        if not self._closed:
            self._closed = True
            self.writer.close()


def tensorboard_logger(run_dir: Path, model: torch.nn.Module, layer_names: dict[str, str],
                       settings: dict[str, dict[str, Any]]) -> TensorBoardLogger | None:
    """A logger for this run, or None when the tensorboard package is missing (say :data:`MISSING_NOTE`)."""
    try:
        import tensorboard  # noqa: F401  # torch.utils.tensorboard needs it
    except ImportError:
        return None
    return TensorBoardLogger(run_dir, model, layer_names, settings)
