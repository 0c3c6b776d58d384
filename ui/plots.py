"""Live curves on preallocated numpy buffers (pyqtgraph): appending is amortised O(1),
drawing downsamples and clips to the view, so plotting never slows training."""

from __future__ import annotations

import numpy as np
import pyqtgraph as pg
from PySide6.QtGui import QColor, QPalette
from PySide6.QtWidgets import QApplication

PALETTE = ["#1e88e5", "#e53935", "#43a047", "#fb8c00", "#8e24aa", "#00897b", "#6d4c41", "#d81b60", "#3949ab",
           "#7cb342"]


class Series:
    """A growing (x, y) series, optionally bound to a plot curve.

    The smoothed values are kept incrementally (O(1) per point), so redrawing a
    long smoothed curve costs no Python loop; unbound series just collect data
    until a curve is attached (e.g. when their tab is first shown).
    """

    def __init__(self, curve: pg.PlotDataItem | None, capacity: int = 1024) -> None:
        self.curve = curve
        self.x = np.empty(capacity)
        self.y = np.empty(capacity)
        self.s = np.empty(capacity)
        self.n = 0
        self.smoothing = 0.0
        self._acc = 0.0
        self._weight = 0.0
        self.dirty = False

    def append(self, x: float, y: float) -> None:
        if self.n == len(self.x):
            self.x = np.resize(self.x, 2 * self.n)
            self.y = np.resize(self.y, 2 * self.n)
            self.s = np.resize(self.s, 2 * self.n)
        self.x[self.n], self.y[self.n] = x, y
        a = self.smoothing
        self._acc = a * self._acc + (1 - a) * y
        self._weight = a * self._weight + (1 - a)
        self.s[self.n] = self._acc / self._weight if self._weight else y
        self.n += 1
        self.dirty = True

    def set_smoothing(self, alpha: float) -> None:
        self.smoothing = alpha
        if self.n:
            self.s[: self.n] = ema(self.y[: self.n], alpha)
            self._acc, self._weight = float(self.s[self.n - 1]), 1.0
        self.dirty = True

    def clear(self) -> None:
        self.n = 0
        self._acc = self._weight = 0.0
        self.dirty = True

    def values(self) -> tuple[np.ndarray, np.ndarray]:
        return self.x[: self.n], (self.s if self.smoothing > 0 else self.y)[: self.n]

    def redraw(self) -> None:
        if self.dirty and self.curve is not None and self.curve.isVisible():
            self.curve.setData(*self.values())
            self.dirty = False


def ema(y: np.ndarray, alpha: float) -> np.ndarray:
    """Exponential moving average with bias correction (as TensorBoard smooths)."""
    out = np.empty_like(y)
    acc, weight = 0.0, 0.0
    for i, v in enumerate(y):
        acc = alpha * acc + (1 - alpha) * v
        weight = alpha * weight + (1 - alpha)
        out[i] = acc / weight
    return out


def make_plot(title: str, left: str, bottom: str = "step") -> pg.PlotWidget:
    w = pg.PlotWidget(title=title)
    w.setBackground(None)  # follow the window's light or dark palette
    w.setLabel("left", left)
    w.setLabel("bottom", bottom)
    w.showGrid(x=True, y=True, alpha=0.25)
    w.addLegend(offset=(-10, 10))
    w.setDownsampling(auto=True, mode="peak")
    w.setClipToView(True)
    w.setMenuEnabled(True)
    fg = QApplication.palette().color(QPalette.ColorRole.WindowText)
    for axis in ("left", "bottom"):
        w.getAxis(axis).setPen(pg.mkPen(fg))
        w.getAxis(axis).setTextPen(pg.mkPen(fg))
    w.setTitle(title, color=fg.name())
    return w


def curve(plot: pg.PlotWidget, name: str, color: str, symbol: str | None = None, width: float = 1.0) -> Series:
    item = plot.plot([], [], name=name, pen=pg.mkPen(QColor(color), width=width), symbol=symbol,
                     symbolSize=6, symbolBrush=QColor(color))
    return Series(item)
