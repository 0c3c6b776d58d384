"""Tasks decide what the model is fed, the loss and the metrics: classification, regression, reconstruction,
language model, sequence to sequence."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import torch
import torch.nn.functional as F

from ..data.base import PAD
from ..errors import WorkbenchError


class TaskError(WorkbenchError):
    """The model's output does not fit the task (e.g. 3 logits for 10 classes)."""


#: tasks scored as classification (distillation trains a classifier: only its loss differs, see ``distill``)
CLASSIFYING = ("classification", "distillation")


@dataclass
class MetricAccumulator:
    """Sums over a validation pass; ``result()`` gives the epoch's metrics."""

    task: str
    num_classes: int = 0
    top_k: int = 5
    n: int = 0
    loss_sum: float = 0.0
    correct: int = 0
    correct_k: int = 0
    abs_err: float = 0.0
    sq_err: float = 0.0
    # regression R², per output column in float64: running mean, sum of squared deviations (merged batch by
    # batch, Chan et al.) and sum of squared errors
    y_mean: torch.Tensor | None = None
    y_m2: torch.Tensor | None = None
    col_sse: torch.Tensor | None = None
    classes: int = 0
    confusion: torch.Tensor | None = None
    decoded: int = 0  # seq2seq: sequences decoded greedily, and how many of them were exactly right
    decoded_right: int = 0
    examples: tuple[torch.Tensor, torch.Tensor, torch.Tensor] | None = None  # seq2seq: a few (source, written, target)
    samples: dict[str, Any] = field(default_factory=dict)

    def add(self, out: torch.Tensor, y: torch.Tensor, loss: float) -> None:
        b = int(y.shape[0])
        self.n += b
        self.loss_sum += loss * b
        if self.task == "language_model":  # accuracy of the next-token guess, over all positions
            self.correct += int((out.argmax(-1) == y).sum())
            self.abs_err += float(y.numel())
        elif self.task == "seq2seq":  # the same, over the target's tokens (padding is no token)
            real = y != PAD
            self.correct += int(((out.argmax(-1) == y) & real).sum())
            self.abs_err += float(real.sum())
        elif self.task in CLASSIFYING:
            pred = out.argmax(1)
            self.correct += int((pred == y).sum())
            self.classes = int(out.shape[1])
            if self.top_k < self.classes:  # top-k of k >= classes is always 1.0: not reported
                self.correct_k += int((out.topk(self.top_k, 1).indices == y[:, None]).any(1).sum())
            if self.confusion is None:
                self.confusion = torch.zeros(self.num_classes, self.num_classes, dtype=torch.long)
            idx = y.cpu() * self.num_classes + pred.cpu()
            self.confusion += torch.bincount(idx, minlength=self.num_classes**2).reshape(self.num_classes, -1)
        else:
            yb = y.detach().double().reshape(b, -1)
            diff = out.detach().double().reshape(b, -1) - yb
            self.abs_err += float(diff.abs().mean(1).sum())
            self.sq_err += float(diff.pow(2).mean(1).sum())
            if self.task == "regression":
                self._add_columns(yb, diff, self.n - b)
        if not self.samples:  # keep a few for previews (predictions, reconstructions)
            self.samples = {"outputs": out[:16].detach().float().cpu(), "targets": y[:16].detach().cpu()}

    def add_decoded(self, predicted: torch.Tensor, y: torch.Tensor, source: torch.Tensor | None = None) -> None:
        """seq2seq: sequences the model wrote by itself (``seq2seq.greedy_decode``) against the targets; one is
        right when every target token up to its EOS is (the padding after it is not compared).  The first
        few are kept in ``examples`` (with their sources, when given) to show."""
        self.decoded += int(y.shape[0])
        self.decoded_right += int(((predicted == y) | (y == PAD)).all(1).sum())
        if self.examples is None and source is not None:
            self.examples = (source[:8].cpu(), predicted[:8].cpu(), y[:8].cpu())

    def _add_columns(self, yb: torch.Tensor, diff: torch.Tensor, before: int) -> None:
        b = yb.shape[0]
        mean = yb.mean(0)
        m2 = (yb - mean).pow(2).sum(0)
        sse = diff.pow(2).sum(0)
        if self.y_mean is None or self.y_m2 is None or self.col_sse is None:
            self.y_mean, self.y_m2, self.col_sse = mean, m2, sse
            return
        total = before + b
        delta = mean - self.y_mean
        self.y_mean = self.y_mean + delta * (b / total)
        self.y_m2 = self.y_m2 + m2 + delta.pow(2) * (before * b / total)
        self.col_sse = self.col_sse + sse

    def r2(self) -> float:
        """R² per output column, averaged (scikit-learn's ``multioutput='uniform_average'``); a constant
        target column scores 1 when predicted exactly, else 0 (scikit-learn's ``force_finite``)."""
        if self.y_m2 is None or self.col_sse is None or self.y_mean is None:
            return 0.0
        # rounding leaves a constant column a variance of ~1e-32 x mean²: that is zero
        constant = self.y_m2 <= 1e-20 * self.n * (1 + self.y_mean.pow(2))
        scores = torch.where(constant, (self.col_sse == 0).double(), 1 - self.col_sse / self.y_m2.clamp_min(1e-300))
        return float(scores.mean())

    def result(self) -> dict[str, float]:
        n = max(self.n, 1)
        r = {"loss": self.loss_sum / n}
        if self.task in ("language_model", "seq2seq"):
            r["accuracy"] = self.correct / max(self.abs_err, 1.0)
            r["perplexity"] = math.exp(min(r["loss"], 50.0))
            if self.decoded:
                r["sequence_accuracy"] = self.decoded_right / self.decoded
        elif self.task in CLASSIFYING:
            r["accuracy"] = self.correct / n
            if self.top_k < self.classes:
                r[f"top{self.top_k}_accuracy"] = self.correct_k / n
        else:
            r["mae"] = self.abs_err / n
            r["mse"] = self.sq_err / n
            if self.task == "regression":
                r["r2"] = self.r2()
        return r


def model_inputs(task: str, x: torch.Tensor, y: torch.Tensor) -> tuple[tuple[torch.Tensor, ...], torch.Tensor]:
    """What the model is fed for a batch, and what its output is scored against.

    seq2seq trains with teacher forcing: the model reads the source and the target without its last
    token (BOS first: the target shifted right) and is scored on the target without its BOS (each step
    predicts the next token).  The other tasks feed the samples and score against the targets.
    """
    if task == "seq2seq":
        return (x, y[:, :-1]), y[:, 1:]
    return (x,), y


def loss_fn(task: str, out: torch.Tensor, y: torch.Tensor, num_classes: int) -> torch.Tensor:
    """The task's loss; shape problems become a :class:`TaskError` that says what to change."""
    if task == "seq2seq":
        if out.ndim != 3 or tuple(out.shape[:2]) != tuple(y.shape) or (num_classes and out.shape[2] != num_classes):
            raise TaskError(f"seq2seq needs the Output to be [N, {y.shape[1]}, {num_classes or 'vocabulary'}] (a score "
                            f"per target token), got {list(out.shape)}; end the decoder with a Linear layer of "
                            f"out_features={num_classes or 'vocabulary size'}")
        return F.cross_entropy(out.reshape(-1, out.shape[-1]), y.reshape(-1), ignore_index=PAD)
    if task == "language_model":
        if out.ndim != 3 or (num_classes and out.shape[2] != num_classes):
            raise TaskError(f"a language model needs the Output to be [N, T, {num_classes or 'vocabulary'}] "
                            f"(a score per token), got {list(out.shape)}; end with a Linear layer of "
                            f"out_features={num_classes or 'vocabulary size'}")
        return F.cross_entropy(out.reshape(-1, out.shape[-1]), y.reshape(-1))
    if task in CLASSIFYING:
        if out.ndim != 2:
            raise TaskError(f"classification needs the Output to be [N, classes], got {list(out.shape)}; "
                            "add a Flatten and a Linear layer before the Output")
        if num_classes and out.shape[1] != num_classes:
            raise TaskError(f"the dataset has {num_classes} classes but the Output gives {out.shape[1]} values "
                            f"per sample; set the last Linear layer's out_features to {num_classes}")
        return F.cross_entropy(out, y)
    if out.shape != y.shape:
        if out.numel() == y.numel():
            out = out.reshape(y.shape)
        else:
            raise TaskError(f"{task} needs the Output to have the target's shape {list(y.shape[1:])} per sample, "
                            f"got {list(out.shape[1:])}")
    return F.mse_loss(out.float(), y.float())


def primary_metric(task: str) -> tuple[str, str]:
    """The metric that decides 'best' and its direction: (name, 'max' | 'min')."""
    if task == "seq2seq":
        return "sequence_accuracy", "max"
    return ("accuracy", "max") if task in CLASSIFYING else ("loss", "min")
