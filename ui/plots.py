"""Live curves on preallocated numpy buffers (pyqtgraph): appending is amortised O(1),
drawing downsamples and clips to the view, so plotting never slows training.

Plots sit in scrolling panels.  The wheel zooms a plot only after the user clicked
it (it has the focus); over any other plot it scrolls the panel, so scrolling past
a plot never zooms it and never switches its auto-range off.  Zooming or panning a
plot does switch auto-range off (pyqtgraph's rule) until a double-click, the plot's
"A" button or the next run (:meth:`Plot.auto_range`) turns it back on.
"""

from __future__ import annotations

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import Qt
from PySide6.QtGui import QColor, QMouseEvent, QPalette, QWheelEvent
from PySide6.QtWidgets import QApplication

from .wheel import forward_wheel

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


class Plot(pg.PlotWidget):
    """A plot that zooms with the wheel only once clicked (see the module's note)."""

    def __init__(self, title: str) -> None:
        super().__init__(title=title)
        self.setFocusPolicy(Qt.FocusPolicy.ClickFocus)  # a click (not the wheel, not Tab) picks a plot to zoom

    def wheelEvent(self, event: QWheelEvent) -> None:
        if not self.hasFocus():
            forward_wheel(self, event)
            return
        super().wheelEvent(event)

    def mouseDoubleClickEvent(self, event: QMouseEvent) -> None:
        super().mouseDoubleClickEvent(event)
        if event.button() == Qt.MouseButton.LeftButton:
            self.auto_range()

    def auto_range(self) -> None:
        """Follow the data again on both axes (after a zoom or pan)."""
        self.getPlotItem().enableAutoRange()

    def reset_view(self) -> None:
        """For new data: neutral axes (auto-range keeps the last range while a plot is empty), then
        follow the data."""
        self.getPlotItem().getViewBox().setRange(xRange=(0, 1), yRange=(0, 1), padding=0)
        self.auto_range()

    def set_title(self, title: str) -> None:
        """The title, in the window's text colour (light or dark theme)."""
        self.setTitle(title, color=QApplication.palette().color(QPalette.ColorRole.WindowText).name())

    def auto_ranging(self) -> bool:
        return all(self.getPlotItem().getViewBox().autoRangeEnabled())


def make_plot(title: str, left: str, bottom: str = "step") -> Plot:
    w = Plot(title)
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
    w.set_title(title)
    return w


def curve(plot: pg.PlotWidget, name: str, color: str, symbol: str | None = None, width: float = 1.0) -> Series:
    item = plot.plot([], [], name=name, pen=pg.mkPen(QColor(color), width=width), symbol=symbol,
                     symbolSize=6, symbolBrush=QColor(color))
    return Series(item)
