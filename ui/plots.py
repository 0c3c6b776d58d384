"""Live curves on preallocated numpy buffers (pyqtgraph): appending is amortised O(1),
drawing downsamples and clips to the view, so plotting never slows training.

Plots sit in scrolling panels.  The wheel zooms a plot only after the user clicked
it (it has the focus); over any other plot it scrolls the panel, so scrolling past
a plot never zooms it and never switches its auto-range off.  Zooming or panning a
plot does switch auto-range off (pyqtgraph's rule) until a double-click, the plot's
"A" button or the next run (:meth:`Plot.auto_range`) turns it back on.

Every plot follows the window's palette (light or dark, also when the theme changes
while it is open), keeps its legend in a row under the axes (never over the data),
and shows, under the pointer, the value of each curve at that step (:meth:`Plot.hover_info`).
``ui.plot_grid.PlotGrid`` arranges plots in as many columns as the panel's shape suits.
"""

from __future__ import annotations

import html
import math

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import QEvent, QPointF, QRectF, QSizeF, Qt
from PySide6.QtGui import QBrush, QColor, QMouseEvent, QPalette, QPen, QResizeEvent, QWheelEvent
from PySide6.QtWidgets import QApplication, QGraphicsRectItem, QGraphicsTextItem

from .plot_grid import MIN_PLOT_HEIGHT, MIN_PLOT_WIDTH
from .wheel import forward_wheel

__all__ = ["MIN_PLOT_HEIGHT", "MIN_PLOT_WIDTH", "PALETTE", "Plot", "Series", "curve", "make_plot"]

PALETTE = ["#1e88e5", "#e53935", "#43a047", "#fb8c00", "#8e24aa", "#00897b", "#6d4c41", "#d81b60", "#3949ab",
           "#7cb342"]
TITLE_SIZE, TITLE_HEIGHT = "10pt", 22
#: the part of a plot's width its legend leaves free (the left axis and a margin)
LEGEND_MARGIN = 70


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


def format_value(value: float) -> str:
    """A number as a hover label shows it: 4 significant digits, thousands separated."""
    if not math.isfinite(value):
        return str(value)
    a = abs(value)
    if a >= 1e6 or (0 < a < 1e-3):
        return f"{value:.3e}"
    if a >= 1000:
        return f"{value:,.0f}"
    return f"{value:.4g}"


def text_color() -> QColor:
    """The window's text colour (light or dark theme)."""
    return QApplication.palette().color(QPalette.ColorRole.WindowText)


def style_axis(axis: pg.AxisItem, color: QColor) -> None:
    axis.setPen(pg.mkPen(color))
    axis.setTextPen(pg.mkPen(color))


class CountAxis(pg.AxisItem):
    """An axis of whole numbers (steps, epochs): no ticks at 1.5 epochs."""

    def tickValues(self, minVal: float, maxVal: float, size: float) -> list[tuple[float, list[float]]]:
        levels = [(spacing, [v for v in values if float(v).is_integer()])
                  for spacing, values in super().tickValues(minVal, maxVal, size) if spacing >= 1]
        if not levels:  # fewer than a few units in view: every one
            levels = [(1.0, [float(v) for v in range(math.ceil(minVal), math.floor(maxVal) + 1)])]
        return levels


class DataViewBox(pg.ViewBox):
    """A view box whose auto-range gives a constant series (a fixed learning rate) a range around
    its value (pyqtgraph keeps the previous range's height: +-0.5 around an lr of 0.0002).

    With ``steady``, auto-range keeps the range while the data still fill most of it, and leaves
    room ahead when it must change (the steps grow to the right): a plot whose range is unchanged
    redraws its curve only, while a new range redraws its axes and grid too, which cost most of a
    live plot's redraw.
    """

    def __init__(self, steady: bool = False) -> None:
        super().__init__()
        self.steady = steady

    def setRange(self, rect: QRectF | None = None, xRange: tuple[float, float] | None = None,
                 yRange: tuple[float, float] | None = None, padding: float | None = None, update: bool = True,
                 disableAutoRange: bool = True) -> None:
        if self.steady and not disableAutoRange:  # pyqtgraph's auto-range (it alone keeps it on)
            (x0, x1), (y0, y1) = self.viewRange()
            xRange = steady_range(xRange, (x0, x1), below=0.0, above=0.25)
            yRange = steady_range(yRange, (y0, y1), below=0.08, above=0.08)
        super().setRange(rect, spread(xRange), spread(yRange), padding, update, disableAutoRange)


def steady_range(target: tuple[float, float] | None, current: tuple[float, float], below: float,
                 above: float, fill: float = 0.7) -> tuple[float, float] | None:
    """The current range while it holds ``target`` and ``target`` fills at least ``fill`` of it;
    otherwise ``target`` with room: ``below`` and ``above`` its width on either side."""
    if target is None:
        return None
    lo, hi = min(target), max(target)
    width = hi - lo
    if current[0] <= lo and hi <= current[1] and width >= fill * (current[1] - current[0]):
        return current
    return lo - below * width, hi + above * width


def spread(span: tuple[float, float] | None) -> tuple[float, float] | None:
    """A zero-width range widened to +-10 % of its value (+-1 around zero)."""
    if span is None or span[0] != span[1]:
        return span
    d = abs(span[0]) * 0.1 or 1.0
    return span[0] - d, span[1] + d


class OutsideLegend(pg.LegendItem):
    """A legend in a row under the axes, so it never covers a curve; its entries flow into as many
    columns (up to ``columns``) as the plot's width holds, more rows when it is narrow.  Clicking
    an entry's line hides or shows that curve (pyqtgraph's)."""

    def __init__(self, columns: int = 4) -> None:
        super().__init__(offset=None, frame=False, labelTextSize="8pt", horSpacing=4)
        self.max_columns = columns
        self.available = math.inf  # the width it may take (set by its plot)

    def addItem(self, item: pg.GraphicsObject, name: str) -> None:
        super().addItem(item, name)
        self._reflow()

    def removeItem(self, item: object) -> None:
        super().removeItem(item)
        self._reflow()

    def clear(self) -> None:
        super().clear()
        self._reflow()

    def fit(self, width: float) -> None:
        """Take at most ``width`` pixels (as many columns as fit)."""
        self.available = width
        self._reflow()

    def _reflow(self) -> None:
        widths = [sample.boundingRect().width() + label.item.boundingRect().width() + 10
                  for sample, label in self.items]
        cols = max(1, min(len(widths), self.max_columns))
        while cols > 1:  # entries fill rows left to right: column c holds entries c, c + cols, ...
            if sum(max(widths[c::cols]) for c in range(cols)) <= self.available:
                break
            cols -= 1
        if cols != self.columnCount:
            self.setColumnCount(cols)
        self.layout.invalidate()
        self.updateGeometry()


class HoverLabel(QGraphicsRectItem):
    """The values under the pointer, in a box in a corner of the plot area (in pixels)."""

    PAD = 4

    def __init__(self, parent: pg.GraphicsObject) -> None:
        super().__init__(parent)
        self.text = QGraphicsTextItem(self)
        self.text.setPos(self.PAD, self.PAD)
        self.text.document().setDocumentMargin(0)
        font = self.text.font()
        font.setPointSizeF(8)
        self.text.setFont(font)
        self.setZValue(1e9)
        self.hide()

    def set_html(self, html: str) -> None:
        self.text.setHtml(html)
        r = self.text.boundingRect()
        self.setRect(0, 0, r.width() + 2 * self.PAD, r.height() + 2 * self.PAD)

    def set_colors(self, background: QColor, text: QColor) -> None:
        fill = QColor(background)
        fill.setAlpha(235)
        self.setBrush(QBrush(fill))
        border = QColor(text)
        border.setAlpha(90)
        self.setPen(QPen(border))
        self.text.setDefaultTextColor(text)


class Plot(pg.PlotWidget):
    """A plot that zooms with the wheel only once clicked (see the module's note), follows
    the palette, keeps its legend outside the data and labels what is under the pointer.

    Args:
        title: the title above the plot.
        left, bottom: the axis labels.
        legend: give it a legend (under the axes); plots with one curve need none.
        grid: draw a grid (at the major ticks).
    """

    def __init__(self, title: str, left: str = "", bottom: str = "step", legend: bool = True,
                 grid: bool = True) -> None:
        self._ready = False  # Qt sends palette changes while the base class is still being built
        counted = bottom in ("step", "epoch")  # a live plot: its x grows as the run goes on
        super().__init__(viewBox=DataViewBox(steady=counted), axisItems={"bottom": CountAxis("bottom")} if counted
                         else None)
        self.setFocusPolicy(Qt.FocusPolicy.ClickFocus)  # a click (not the wheel, not Tab) picks a plot to zoom
        self.setBackground(None)  # the window's own background, light or dark
        self._title = title
        self.x_name = bottom
        item = self.getPlotItem()
        item.setLabel("left", left)
        item.setLabel("bottom", bottom)
        for side in ("left", "bottom"):
            # ticks and grid lines at the major ticks only: minor lines cluttered a small plot, and the
            # axes draw the grid, over half the time of a redraw
            item.getAxis(side).setStyle(maxTickLevel=0)
        self.grid = grid
        if grid:
            self.showGrid(x=True, y=True, alpha=0.2)
        if legend:
            item.legend = OutsideLegend()  # PlotItem.addItem puts every named curve in it
            item.layout.addItem(item.legend, 4, 1)
            item.layout.setAlignment(item.legend, Qt.AlignmentFlag.AlignHCenter)
        self.setDownsampling(auto=True, mode="peak")
        self.setClipToView(True)
        self.setMenuEnabled(True)
        vb = item.getViewBox()
        self.crosshair = pg.InfiniteLine(angle=90, movable=False)
        self.crosshair.hide()
        vb.addItem(self.crosshair, ignoreBounds=True)
        self.hover_label = HoverLabel(vb)
        self.right_view: DataViewBox | None = None  # a second y-axis, made on first use
        self._hover_pos: QPointF | None = None
        self.scene().sigMouseMoved.connect(self._mouse_moved)
        self._ready = True
        self.apply_palette()
        # Qt sends widgets ApplicationPaletteChange only once its event loop runs (app.exec()), so a
        # theme applied at start-up (or in a test) left plots in the old colours: follow the signal too.
        app = QApplication.instance()
        if isinstance(app, QApplication):
            app.paletteChanged.connect(self._palette_changed)

    # ------------------------------------------------------------------ look
    def set_title(self, title: str) -> None:
        """The title, in the window's text colour (light or dark theme)."""
        self._title = title
        item = self.getPlotItem()
        item.setTitle(title, color=text_color().name(), size=TITLE_SIZE)
        item.titleLabel.setMaximumHeight(TITLE_HEIGHT)  # pyqtgraph reserves 30 px: more than a 10 pt line
        item.layout.setRowFixedHeight(0, TITLE_HEIGHT)

    def title(self) -> str:
        return self._title

    def apply_palette(self) -> None:
        """Title, axes, grid, legend and hover label in the current palette's colours."""
        fg = text_color()
        item = self.getPlotItem()
        for side in ("left", "bottom", "right", "top"):
            style_axis(item.getAxis(side), fg)
        self.set_title(self._title)
        if item.legend is not None:
            item.legend.setLabelTextColor(fg)
        line = QColor(fg)
        line.setAlpha(110)
        self.crosshair.setPen(pg.mkPen(line, style=Qt.PenStyle.DashLine))
        pal = QApplication.palette()
        self.hover_label.set_colors(pal.color(QPalette.ColorRole.ToolTipBase), pal.color(QPalette.ColorRole.ToolTipText))

    def _palette_changed(self, _palette: QPalette) -> None:
        if self.getPlotItem() is not None:  # None once pyqtgraph's close() ran
            self.apply_palette()

    def changeEvent(self, event: QEvent) -> None:
        super().changeEvent(event)
        if event.type() in (QEvent.Type.PaletteChange, QEvent.Type.ApplicationPaletteChange) and self._ready:
            self._palette_changed(self.palette())

    # ------------------------------------------------------------------ hover
    def _mouse_moved(self, pos: QPointF) -> None:
        self._hover_pos = QPointF(pos)
        self.refresh_hover()

    def refresh_hover(self) -> None:
        """Show (or hide) the values under the last pointer position (after new data too)."""
        pos = self._hover_pos
        vb = self.getPlotItem().getViewBox()
        if pos is None or not vb.sceneBoundingRect().contains(pos):
            self.hide_hover()
            return
        text, x = self.hover_info(vb.mapSceneToView(pos))
        if text is None:
            self.hide_hover()
            return
        if x is not None:
            self.crosshair.setPos(x)
            self.crosshair.show()
        else:
            self.crosshair.hide()
        label = self.hover_label
        label.set_html(text)
        label.setPos(self._label_corner(vb, vb.mapFromScene(pos), label.rect().width(), label.rect().height()))
        label.show()

    def _label_corner(self, vb: pg.ViewBox, pointer: QPointF, w: float, h: float) -> QPointF:
        """The corner of the plot area for the hover label: never over the pointer, and over as
        few of the curves' points as can be."""
        area, m = vb.rect(), 6.0
        corners = [QPointF(area.width() - w - m, m), QPointF(m, m), QPointF(area.width() - w - m, area.height() - h - m),
                   QPointF(m, area.height() - h - m)]
        corners = [c for c in corners if not QRectF(c, QSizeF(w, h)).contains(pointer)] or corners
        points = []
        for item in self.getPlotItem().listDataItems():
            xs, ys = item.getOriginalDataset() if isinstance(item, pg.PlotDataItem) else (None, None)
            if item.isVisible() and xs is not None and ys is not None and len(xs):
                step = max(1, len(xs) // 400)  # a sample is enough to tell a crowded corner
                y = np.asarray(ys[::step], dtype=np.float64)
                if item.opts.get("logMode", (False, False))[1]:  # drawn as log10(y)
                    with np.errstate(divide="ignore", invalid="ignore"):
                        y = np.log10(y)
                points.append(np.column_stack([xs[::step], y]))
        if not points:
            return corners[0]
        data = np.concatenate(points)
        (x0, x1), (y0, y1) = vb.viewRange()
        px = (data[:, 0] - x0) / max(x1 - x0, 1e-300) * area.width()
        py = (y1 - data[:, 1]) / max(y1 - y0, 1e-300) * area.height()
        if vb.yInverted():
            py = area.height() - py

        def covered(c: QPointF) -> int:
            return int(np.count_nonzero((px >= c.x()) & (px <= c.x() + w) & (py >= c.y()) & (py <= c.y() + h)))

        return min(corners, key=covered)  # min keeps the first of equals: top right, top left...

    def hide_hover(self) -> None:
        self.crosshair.hide()
        self.hover_label.hide()

    def hover_text(self) -> str:
        """The hover label's text (empty when hidden)."""
        return self.hover_label.text.toPlainText() if self.hover_label.isVisible() else ""

    def hover_info(self, point: QPointF) -> tuple[str | None, float | None]:
        """What the hover label says at a point (data coordinates), and where the crosshair goes:
        the nearest step of the first curve, and every visible curve's value there."""
        rows: list[str] = []
        at: float | None = None
        right = self.right_view.addedItems if self.right_view is not None else []
        for item in [*self.getPlotItem().listDataItems(), *right]:
            if not item.isVisible() or not isinstance(item, pg.PlotDataItem):
                continue
            xs, ys = item.getOriginalDataset()
            if xs is None or ys is None or len(xs) == 0:
                continue
            i = nearest(xs, point.x() if at is None else at)
            x, y = float(xs[i]), float(ys[i])
            if at is None:
                at = x
            where = "" if x == at else f" <i>({self.x_name} {format_value(x)})</i>"
            color = item.opts["pen"].color().name() if item.opts.get("pen") is not None else text_color().name()
            name = html.escape(item.name() or "value")  # names are the user's (layers, runs)
            rows.append(f"<span style='color:{color}'>&#9632;</span> {name}: <b>{format_value(y)}</b>{where}")
        if at is None:
            return None, None
        return f"<b>{self.x_name} {format_value(at)}</b><br>" + "<br>".join(rows), at

    # ------------------------------------------------------------------ a second y-axis
    def right_curve(self, name: str, color: str, symbol: str | None = None) -> Series:
        """A curve on a y-axis of its own, on the right: a metric of another scale than the others
        (a perplexity of 20 would flatten an accuracy of 0.9 to a line at 0)."""
        item = self.getPlotItem()
        main = item.getViewBox()
        if self.right_view is None:
            view = DataViewBox(steady=main.steady)
            item.scene().addItem(view)
            view.setXLink(main)
            view.enableAutoRange(axis=pg.ViewBox.YAxis)
            item.getAxis("right").linkToView(view)
            main.sigResized.connect(lambda: view.setGeometry(main.sceneBoundingRect()))
            view.setGeometry(main.sceneBoundingRect())
            self.right_view = view
        item.showAxis("right")
        style_axis(item.getAxis("right"), text_color())
        data = pg.PlotDataItem([], [], name=name, pen=pg.mkPen(QColor(color)), symbol=symbol, symbolSize=6,
                               symbolBrush=QColor(color))
        self.right_view.addItem(data)
        if item.legend is not None:
            item.legend.addItem(data, name)
        names = [i.name() for i in self.right_view.addedItems if isinstance(i, pg.PlotDataItem)]
        item.getAxis("right").setLabel(", ".join(n for n in names if n))
        return Series(data)

    def remove_curve(self, curve_item: pg.PlotDataItem) -> None:
        """Take a curve off the plot (either axis) and its legend."""
        item = self.getPlotItem()
        view = self.right_view
        if view is not None and curve_item in view.addedItems:
            view.removeItem(curve_item)
            if item.legend is not None:
                item.legend.removeItem(curve_item)
            if not any(isinstance(i, pg.PlotDataItem) for i in view.addedItems):
                item.hideAxis("right")
        else:
            item.removeItem(curve_item)

    def resizeEvent(self, event: QResizeEvent) -> None:
        item = self.getPlotItem() if self._ready else None  # None too once pyqtgraph's close() ran
        legend = item.legend if item is not None else None
        if isinstance(legend, OutsideLegend):
            legend.fit(event.size().width() - LEGEND_MARGIN)
        super().resizeEvent(event)

    def leaveEvent(self, event: QEvent) -> None:
        self._hover_pos = None
        self.hide_hover()
        super().leaveEvent(event)

    # ------------------------------------------------------------------ wheel and range
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

    def settle(self) -> None:
        """Fit the data exactly, without the room ahead a live plot keeps (a run has ended)."""
        vb = self.getPlotItem().getViewBox()
        steady = getattr(vb, "steady", False)
        vb.steady = False
        vb.updateAutoRange()  # nothing happens if the user zoomed (auto-range is off)
        vb.steady = steady

    def auto_ranging(self) -> bool:
        return all(self.getPlotItem().getViewBox().autoRangeEnabled())


def nearest(xs: np.ndarray, x: float) -> int:
    """Index of the value of ``xs`` (ascending) nearest to ``x``."""
    i = int(np.searchsorted(xs, x))
    if i <= 0:
        return 0
    if i >= len(xs):
        return len(xs) - 1
    return i if abs(xs[i] - x) < abs(x - xs[i - 1]) else i - 1


def make_plot(title: str, left: str, bottom: str = "step", legend: bool = True, grid: bool = True) -> Plot:
    return Plot(title, left, bottom, legend=legend, grid=grid)


def curve(plot: pg.PlotWidget, name: str, color: str, symbol: str | None = None, width: float = 1.0) -> Series:
    item = plot.plot([], [], name=name, pen=pg.mkPen(QColor(color), width=width), symbol=symbol,
                     symbolSize=6, symbolBrush=QColor(color))
    return Series(item)
