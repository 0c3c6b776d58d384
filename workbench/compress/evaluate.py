"""Measuring a model before and after compression: metrics on the validation split, sizes,
multiply-accumulates and latency (medians of interleaved runs, so machine noise hits both alike)."""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from ..compiler import Compiled
from ..data import load_data
from ..data.base import Standardize
from ..project import Project
from ..training.tasks import MetricAccumulator, loss_fn, model_inputs
from .report import CompressError, Measure

Runner = Callable[[tuple[torch.Tensor, ...]], torch.Tensor]

#: tasks whose primary metric is an accuracy (a drop is measured in percentage points)
ACCURACY_TASKS = ("classification", "distillation", "language_model", "seq2seq")


@dataclass
class EvalData:
    """The project's own data, split and shaped for the model, for measuring and calibrating.

    Attributes:
        preprocess: the standardisation training applied (the ONNX export repeats it inside the
            model, so ONNX models are fed raw values: see :meth:`onnx_inputs`).
    """

    task: str
    num_classes: int
    train: tuple[torch.Tensor, torch.Tensor]
    val: tuple[torch.Tensor, torch.Tensor]
    preprocess: Standardize | None = None

    def batches(self, split: str = "val", batch: int = 256, limit: int | None = None
                ) -> list[tuple[tuple[torch.Tensor, ...], torch.Tensor]]:
        """(model inputs, target) per batch, in order (no shuffling: results repeat)."""
        x, y = self.train if split == "train" else self.val
        n = len(x) if limit is None else min(len(x), limit)
        x, y = x[:n], y[:n]
        return [model_inputs(self.task, x[i:i + batch], y[i:i + batch]) for i in range(0, n, batch)]

    def onnx_inputs(self, inputs: tuple[torch.Tensor, ...]) -> tuple[np.ndarray, ...]:
        """What the exported model reads: the raw values before training's standardisation."""
        arrays = [t.numpy() for t in inputs]
        if self.preprocess is not None:
            raw = inputs[0] * self.preprocess.std + self.preprocess.mean
            arrays[0] = raw.float().numpy()
        return tuple(arrays)

    def example(self, batch: int) -> tuple[torch.Tensor, ...]:
        """The first ``batch`` validation samples as model inputs (repeated when there are fewer)."""
        x, y = self.val
        reps = -(-batch // len(x))
        xs, ys = x.repeat(reps, *([1] * (x.ndim - 1)))[:batch], y.repeat(reps, *([1] * (y.ndim - 1)))[:batch]
        return model_inputs(self.task, xs, ys)[0]


def load_eval_data(project: Project, compiled: Compiled) -> EvalData:
    """The project's training and validation splits, as training sees them.

    Raises:
        CompressError: the task has no validation metric here, or the validation split is empty.
        DataError: the data cannot be loaded or does not fit the Input.
    """
    task = project.training["task"]
    if task == "adversarial":
        raise CompressError("training.task: the adversarial task's model is fed noise and has no validation "
                            "metric to compare before and after; compression supports the other tasks")
    spec = compiled.inputs[0]
    bundle = load_data(project.data, spec.shape[1:], spec.dtype)
    if bundle.val is None:
        raise CompressError("data.val_fraction: the validation split is empty, so nothing can be measured "
                            "before and after; set val_fraction above 0")
    samples = bundle.samples
    num_classes = (samples.num_classes if task in ("classification", "distillation")
                   else len(samples.class_names) if task in ("language_model", "seq2seq") else 0)

    def pair(ds: Any) -> tuple[torch.Tensor, torch.Tensor]:
        x, y = ds.tensors
        return (x, x) if task == "reconstruction" else (x, y)

    return EvalData(task, num_classes, pair(bundle.train), pair(bundle.val), bundle.preprocess)


def evaluate(run: Runner, data: EvalData, batch: int = 256) -> dict[str, float]:
    """The task's validation metrics (as training reports them) of a model given as ``run``."""
    acc = MetricAccumulator(data.task, data.num_classes)
    for inputs, target in data.batches("val", batch):
        out = run(inputs).float()
        acc.add(out, target, float(loss_fn(data.task, out, target, data.num_classes)))
    return acc.result()


def torch_runner(module: torch.nn.Module) -> Runner:
    module.eval()

    def run(inputs: tuple[torch.Tensor, ...]) -> torch.Tensor:
        with torch.no_grad():
            out = module(*inputs)
        return out[0] if isinstance(out, tuple) else out

    return run


def onnx_runner(session: Any, data: EvalData) -> Runner:
    names = [i.name for i in session.get_inputs()]

    def run(inputs: tuple[torch.Tensor, ...]) -> torch.Tensor:
        feed = dict(zip(names, data.onnx_inputs(inputs), strict=True))
        return torch.from_numpy(np.asarray(session.run(None, feed)[0]))

    return run


def ort_session(model: bytes | str, threads: int | None) -> Any:
    """An onnxruntime CPU session with ``threads`` intra-op threads (None: onnxruntime's default).

    Raises:
        CompressError: onnxruntime cannot load the model (its first line of explanation).
    """
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = threads or 0
    options.inter_op_num_threads = 1
    options.log_severity_level = 3
    try:
        return ort.InferenceSession(model, options, providers=["CPUExecutionProvider"])
    except Exception as exc:
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0][:300]
        raise CompressError(f"onnxruntime cannot load the compressed model: {first}") from None


def metric_rows(before: dict[str, float], after: dict[str, float], task: str, label: str = "") -> list[Measure]:
    """Validation rows: accuracy in % (a change in points) when the task has one, and the loss."""
    rows = []
    if "accuracy" in before:
        rows.append(Measure(f"validation accuracy{label}", "%", 100 * before["accuracy"],
                            100 * after["accuracy"] if "accuracy" in after else None, "diff"))
    rows.append(Measure(f"validation loss{label}", "", before["loss"], after.get("loss"), "diff"))
    if task == "regression" and "r2" in before:
        rows.append(Measure(f"validation R²{label}", "", before["r2"], after.get("r2"), "diff"))
    return rows


def accuracy_drop(before: dict[str, float], after: dict[str, float]) -> float:
    """Validation accuracy lost, in percentage points (negative: it rose)."""
    return 100 * (before["accuracy"] - after["accuracy"])


def check_max_drop(task: str, max_drop: float | None) -> None:
    """Refuse a limit on the accuracy drop for a task without an accuracy.

    Raises:
        CompressError: naming the option and the task.
    """
    if max_drop is None:
        return
    if max_drop < 0:
        raise CompressError(f"max_drop: expected a number of accuracy points >= 0, got {max_drop}")
    if task not in ACCURACY_TASKS:
        raise CompressError(f"max_drop: the limit is a drop of validation accuracy in points, but the {task} task "
                            "has no accuracy; leave it out (the report shows the loss before and after)")


def count_macs(module: torch.nn.Module, inputs: Sequence[torch.Tensor]) -> int:
    """Multiply-accumulates of one forward pass, from ``torch.utils.flop_counter`` (FLOPs / 2: it
    counts matrix products and convolutions, two FLOPs per multiply-accumulate)."""
    from torch.utils.flop_counter import FlopCounterMode

    module.eval()
    with torch.no_grad(), FlopCounterMode(display=False) as counter:
        module(*inputs)
    return int(counter.get_total_flops()) // 2


@dataclass
class Latency:
    """Median milliseconds per call of models measured side by side (the first is the reference),
    and the medians of the per-round ratios to the first."""

    ms: list[float]
    ratios: list[float]
    spreads: list[list[float]]
    """Per model, the interquartile range of its per-round ratios to the first."""

    @property
    def before_ms(self) -> float:
        return self.ms[0]

    @property
    def after_ms(self) -> float:
        return self.ms[-1]


def interleaved(*fns: Callable[[], object], rounds: int = 15, target_s: float = 0.01) -> Latency:
    """Time the functions in turn, each round in another order (so machine noise hits all alike);
    a round runs each as many times as fill about ``target_s``."""
    for _ in range(2):
        for fn in fns:
            fn()
    t = time.perf_counter()
    for fn in fns:
        fn()
    inner = max(1, min(200, int(len(fns) * target_s / max(time.perf_counter() - t, 1e-7))))
    times: list[list[float]] = [[] for _ in fns]
    for i in range(rounds):
        order = list(range(len(fns)))
        order = order[i % len(order):] + order[:i % len(order)]
        if i % 2:
            order.reverse()
        for k in order:
            t = time.perf_counter()
            for _ in range(inner):
                fns[k]()
            times[k].append((time.perf_counter() - t) / inner)
    per_round = [[a / b for a, b in zip(ts, times[0], strict=True)] for ts in times]
    spreads = [statistics.quantiles(r, n=4)[::2] if len(r) > 1 else [r[0], r[0]] for r in per_round]
    return Latency([1e3 * statistics.median(ts) for ts in times], [statistics.median(r) for r in per_round], spreads)


def latency_rows(measure: Callable[[int], Latency], batches: Sequence[int] = (1, 64), what: str = "",
                 middle: str = "") -> list[Measure]:
    """Rows per batch size from ``measure(batch)``: reference vs last model and, with ``middle``, the
    reference vs a model between them (named by ``middle``)."""
    rows = []
    for b in batches:
        lat = measure(b)
        lo, hi = lat.spreads[-1]
        rows.append(Measure(f"latency, batch {b}", "ms", lat.ms[0], lat.ms[-1], "ratio",
                            f"{what}; medians of interleaved runs; ratio per round {lo:.2f}-{hi:.2f}x (IQR)",
                            lat.ratios[-1], [lo, hi]))
        if middle and len(lat.ms) > 2:
            lo, hi = lat.spreads[1]
            rows.append(Measure(f"latency, batch {b}, {middle}", "ms", lat.ms[0], lat.ms[1], "ratio",
                                f"the graph optimisation alone; ratio per round {lo:.2f}-{hi:.2f}x (IQR)",
                                lat.ratios[1], [lo, hi]))
    return rows


def speed_note(rows: list[Measure]) -> str:
    """What the measured latencies say, and only that."""
    parts = []
    for r in rows:
        if r.name.count(",") > 1:  # the breakdown rows
            continue
        if r.change is None:
            continue
        lo, hi = r.spread or [r.change, r.change]
        if hi < 1.0 and r.change < 0.97:  # three rounds in four faster: a speed-up, not noise
            parts.append(f"{r.name}: {1 / r.change:.2f}x faster")
        elif lo > 1.0 and r.change > 1.03:
            parts.append(f"{r.name}: {r.change:.2f}x slower")
        else:
            parts.append(f"{r.name}: no difference beyond the noise (ratio {r.change:.2f}x, rounds {lo:.2f}-{hi:.2f}x)")
    return "measured here: " + "; ".join(parts) if parts else "latency not measured"
