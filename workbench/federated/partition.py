"""Splitting a training set among federated clients, deterministically from a seed.

``iid``: a seeded permutation cut into near-equal parts.  ``dirichlet:ALPHA``: for each class,
the shares of the clients are drawn from a symmetric Dirichlet(ALPHA) distribution (the usual
label-skew benchmark of Hsu et al., 2019): a small alpha gives each client few classes, a large
one approaches IID.  Every client gets at least ``min_size`` samples (the draw is repeated,
with the next numbers of the same generator, until it does).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..errors import WorkbenchError


class PartitionError(WorkbenchError):
    """A partition cannot be made (bad spelling, more clients than samples, ...)."""


@dataclass(frozen=True)
class Partitioning:
    """How to split: ``kind`` is ``iid`` or ``dirichlet`` (with ``alpha``)."""

    kind: str
    alpha: float = 0.0

    def __str__(self) -> str:
        return "iid" if self.kind == "iid" else f"dirichlet:{self.alpha:g}"


def parse_partitioning(text: str) -> Partitioning:
    """``iid`` or ``dirichlet:ALPHA`` (ALPHA > 0).

    Raises:
        PartitionError: naming what is wrong.
    """
    kind, _, arg = text.strip().lower().partition(":")
    if kind == "iid" and not arg:
        return Partitioning("iid")
    if kind == "dirichlet":
        try:
            alpha = float(arg)
        except ValueError:
            raise PartitionError(f"--partition {text!r}: expected dirichlet:ALPHA with a number, e.g. "
                                 "dirichlet:0.5") from None
        if not (alpha > 0 and np.isfinite(alpha)):
            raise PartitionError(f"--partition {text!r}: the Dirichlet alpha must be a positive number")
        return Partitioning("dirichlet", alpha)
    raise PartitionError(f"--partition {text!r}: expected iid or dirichlet:ALPHA (e.g. dirichlet:0.5)")


def partition(labels: np.ndarray, clients: int, how: Partitioning, seed: int, min_size: int = 2) -> list[np.ndarray]:
    """The sample indices of each client (sorted), a partition of ``range(len(labels))``.

    Args:
        labels: the class of each training sample (used by ``dirichlet``; any values for ``iid``).
        clients: how many clients.
        how: IID or Dirichlet.
        seed: the same seed gives the same partition on every machine.
        min_size: the fewest samples a client may get.

    Raises:
        PartitionError: fewer samples than clients need, or no Dirichlet draw gives every client
            ``min_size`` samples.
    """
    n = len(labels)
    if clients < 1:
        raise PartitionError(f"--clients must be at least 1, got {clients}")
    if n < clients * min_size:
        raise PartitionError(f"{n} training samples cannot give {clients} clients {min_size} samples each: use "
                             "fewer clients")
    rng = np.random.default_rng(seed)
    if how.kind == "iid":
        return [np.sort(part) for part in np.array_split(rng.permutation(n), clients)]
    classes = np.unique(labels)
    for _ in range(1000):
        parts: list[list[np.ndarray]] = [[] for _ in range(clients)]
        for c in classes:
            idx = rng.permutation(np.flatnonzero(labels == c))
            shares = rng.dirichlet(np.full(clients, how.alpha))
            cuts = (np.cumsum(shares)[:-1] * len(idx)).astype(int)
            for k, piece in enumerate(np.split(idx, cuts)):
                parts[k].append(piece)
        out = [np.sort(np.concatenate(p)) for p in parts]
        if min(len(p) for p in out) >= min_size:
            return out
    raise PartitionError(f"no Dirichlet({how.alpha:g}) draw gave each of {clients} clients {min_size} samples: "
                         "raise alpha or use fewer clients")


def label_histograms(labels: np.ndarray, parts: list[np.ndarray], num_classes: int) -> np.ndarray:
    """``[clients, classes]`` sample counts (what each client holds of each class)."""
    return np.stack([np.bincount(labels[p], minlength=num_classes) for p in parts])
