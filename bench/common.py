"""Shared benchmark helpers: interleaved timing, medians, result rows."""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass


@dataclass
class Row:
    """One benchmark result.

    ``value`` is the measured quantity in ``unit``; ``target`` its limit; ``lower_is_better``
    decides the direction of the check.  ``ratio`` = value / target for limits.
    """

    issue: str
    name: str
    value: float
    unit: str
    target: float | None = None
    lower_is_better: bool = True
    note: str = ""

    @property
    def ok(self) -> bool | None:
        if self.target is None:
            return None
        return self.value <= self.target if self.lower_is_better else self.value >= self.target


def median_time(fn: Callable[[], object], repeat: int = 15, warmup: int = 3) -> float:
    """Median wall time of ``fn()`` in seconds."""
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeat):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return statistics.median(times)


def interleaved_ratio(a: Callable[[], object], b: Callable[[], object], rounds: int = 21, inner: int = 5) -> tuple[float, float, float]:
    """Time ``a`` and ``b`` alternately (ABAB...) so machine noise hits both alike.

    Returns:
        (median seconds of a, median seconds of b, median of the per-round ratios a/b).
    """
    for _ in range(3):
        a()
        b()
    ta, tb, ratios = [], [], []
    for i in range(rounds):
        pair = []
        for fn in ((a, b) if i % 2 == 0 else (b, a)):
            t = time.perf_counter()
            for _ in range(inner):
                fn()
            pair.append((fn, (time.perf_counter() - t) / inner))
        da = next(d for f, d in pair if f is a)
        db = next(d for f, d in pair if f is b)
        ta.append(da)
        tb.append(db)
        ratios.append(da / db)
    return statistics.median(ta), statistics.median(tb), statistics.median(ratios)
