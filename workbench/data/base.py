"""The data interface: sources, splits, fitting samples to the graph's Input."""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import torch
from torch.utils.data import TensorDataset

from ..errors import WorkbenchError
from ..layers.dims import fmt_shape


class DataError(WorkbenchError):
    """A dataset cannot be loaded or does not fit the model; the message says why."""


@dataclass
class Samples:
    """A whole dataset in memory.

    Attributes:
        x: inputs, first dimension = samples.
        y: targets (class indices for classification, floats for regression), or None.
        kind: ``"classification"``, ``"regression"`` or ``"unlabelled"``.
        class_names: names of the classes, when known.
        name: shown in the GUI and written to exports' metadata.
    """

    x: torch.Tensor
    y: torch.Tensor | None
    kind: str
    name: str
    class_names: list[str] = field(default_factory=list)
    image: bool = False  # samples are images [C, H, W] (previews show them as pictures)

    def __len__(self) -> int:
        return int(self.x.shape[0])

    @property
    def num_classes(self) -> int:
        if self.class_names:
            return len(self.class_names)
        return int(self.y.max().item()) + 1 if self.y is not None and self.kind == "classification" else 0


@dataclass
class DataBundle:
    """Splits ready for training, already shaped for the model's Input."""

    train: TensorDataset
    val: TensorDataset | None
    test: TensorDataset | None
    samples: Samples
    sample_shape: tuple[int, ...]


Source = Callable[[dict[str, Any]], Samples]
SOURCES: dict[str, Source] = {}


def source(name: str) -> Callable[[Source], Source]:
    def deco(fn: Source) -> Source:
        SOURCES[name] = fn
        return fn

    return deco


def load_samples(cfg: dict[str, Any]) -> Samples:
    """Load the configured dataset (``cfg`` is a validated ``data`` section)."""
    from . import sources  # noqa: F401 - registers the sources

    try:
        fn = SOURCES[cfg["dataset"]]
    except KeyError:
        raise DataError(f"unknown dataset {cfg['dataset']!r} (known: {', '.join(sorted(SOURCES))})") from None
    return fn(cfg)


def fit_to_input(x: torch.Tensor, input_shape: tuple[Any, ...], layout: str = "auto", what: str = "dataset") -> torch.Tensor:
    """Reshape samples to the Input's shape (without batch), or explain the mismatch.

    ``auto`` reshapes when the number of values per sample agrees (64 pixels ->
    [1, 8, 8], [8, 8] or [64]); ``rows`` reads images row by row as sequences.
    """
    sample = tuple(x.shape[1:])
    want = tuple(input_shape)
    symbolic = [i for i, d in enumerate(want) if not isinstance(d, int)]
    if layout == "rows" and len(sample) == 3:
        x = x[:, 0] if sample[0] == 1 else x.permute(0, 2, 3, 1).reshape(x.shape[0], sample[1], -1)
        sample = tuple(x.shape[1:])
    if symbolic:
        # a variable length: the data must match the fixed dims and provide the rest
        if len(sample) == len(want) and all(isinstance(w, str) or w == s for w, s in zip(want, sample, strict=True)):
            return x
        raise DataError(f"the {what} gives samples of shape {fmt_shape(sample)}, but the Input expects "
                        f"{fmt_shape(want)}")
    if sample == want:
        return x
    if math.prod(sample) == math.prod(want) and layout in ("auto", "rows", "flat", "image"):
        return x.reshape(x.shape[0], *want)
    raise DataError(
        f"the {what} gives samples of shape {fmt_shape(sample)} ({math.prod(sample)} values), but the Input "
        f"expects {fmt_shape(want)} ({math.prod(want)} values): change the Input's shape or the dataset"
    )


def load_data(cfg: dict[str, Any], input_shape: tuple[Any, ...], input_dtype: str = "float32") -> DataBundle:
    """Load, fit to the Input and split (seeded) into train / validation / test."""
    samples = load_samples(cfg)
    x = fit_to_input(samples.x, input_shape, cfg.get("layout", "auto"), samples.name)
    x = x.long() if input_dtype == "int64" else x.float()
    n = len(samples)
    g = torch.Generator().manual_seed(int(cfg.get("seed", 0)))
    perm = torch.randperm(n, generator=g)
    n_val = round(n * float(cfg.get("val_fraction", 0.2)))
    n_test = round(n * float(cfg.get("test_fraction", 0.0)))
    n_train = n - n_val - n_test
    if n_train < 1:
        raise DataError(f"the splits leave no training samples ({n} samples, val {n_val}, test {n_test})")
    parts = torch.split(perm, [n_train, n_val, n_test])
    y = samples.y if samples.y is not None else x

    def subset(idx: torch.Tensor) -> TensorDataset | None:
        return TensorDataset(x[idx], y[idx]) if len(idx) else None

    train = subset(parts[0])
    assert train is not None
    return DataBundle(train, subset(parts[1]), subset(parts[2]), samples, tuple(x.shape[1:]))


def preview(samples: Samples, count: int = 16) -> dict[str, Any]:
    """What the GUI shows before training: shapes, class balance, a few samples."""
    info: dict[str, Any] = {"name": samples.name, "samples": len(samples), "shape": list(samples.x.shape[1:]),
                            "kind": samples.kind}
    if samples.kind == "classification" and samples.y is not None:
        counts = torch.bincount(samples.y.long(), minlength=samples.num_classes).tolist()
        info["classes"] = samples.class_names or [str(i) for i in range(len(counts))]
        info["class_counts"] = counts
    info["examples"] = samples.x[:count]
    info["targets"] = samples.y[:count] if samples.y is not None else None
    return info
