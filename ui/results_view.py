"""The dashboard's Results tab: what a validation shows for its task.

- classification: the confusion matrix, with each cell's count, the class names on the
  "true class" and "predicted class" axes, exactly the matrix in view and a colour bar
  (the colour is the cell's share of its true class);
- reconstruction: validation inputs above their reconstructions, and the 2-D latent codes
  (when the model has a second, 2-D output) coloured by class;
- adversarial: a grid of generated samples;
- regression: predictions against targets, with the line where they are equal.

Only the plots a run has something for are shown (:class:`~ui.plots.PlotGrid`).
"""

from __future__ import annotations

import html
from typing import Any

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import QPointF, QRectF, Qt
from PySide6.QtGui import QColor, QFont, QFontMetrics, QPainter
from PySide6.QtWidgets import QLabel, QWidget

from workbench.imaging import grid

from .plot_grid import PlotGrid
from .plots import PALETTE, Plot, style_axis, text_color

VIRIDIS = "viridis"
#: confusion cells whose share of their true class is above this are bright (yellow): dark text
BRIGHT = 0.6
#: at most this many class names on an axis (more would overlap); a larger matrix labels every k-th
MAX_TICKS = 20


def image_grid(images: np.ndarray, cols: int = 8) -> np.ndarray:
    """A mosaic for an ImageItem: the core's grid with transparent gaps."""
    return grid(images, cols, fill=np.nan)


class CellCounts(pg.GraphicsObject):
    """The count of each confusion-matrix cell, written in the middle of the cell in screen pixels
    (so it reads at any zoom); left out when the cells are too small to hold it."""

    def __init__(self) -> None:
        super().__init__()
        self.counts: np.ndarray | None = None
        self.shares: np.ndarray | None = None

    def set_counts(self, counts: np.ndarray | None, shares: np.ndarray | None = None) -> None:
        self.prepareGeometryChange()
        self.counts, self.shares = counts, shares
        self.update()

    def boundingRect(self) -> QRectF:
        n = 0 if self.counts is None else len(self.counts)
        return QRectF(-0.5, -0.5, n, n)

    def cell_pixels(self, painter: QPainter) -> tuple[float, float]:
        t = painter.transform()
        return abs(t.m11()) + abs(t.m21()), abs(t.m22()) + abs(t.m12())

    def paint(self, painter: QPainter, *args: Any) -> None:
        if self.counts is None or self.shares is None:
            return
        t = painter.transform()
        cw, ch = self.cell_pixels(painter)
        font = QFont(painter.font())
        font.setPixelSize(int(min(14, max(8, ch * 0.5))))
        metrics = QFontMetrics(font)
        if ch < 11 or metrics.horizontalAdvance(str(int(self.counts.max()))) > cw - 2:
            return
        dark, light = QColor("#111111"), QColor("#ffffff")
        dim = QColor(light)
        dim.setAlpha(110)  # the many zeros recede
        painter.save()
        painter.resetTransform()
        painter.setFont(font)
        n = len(self.counts)
        for i in range(n):
            for j in range(n):
                count = int(self.counts[i, j])
                painter.setPen(dark if self.shares[i, j] > BRIGHT else light if count else dim)
                c = t.map(QPointF(j, i))
                painter.drawText(QRectF(c.x() - cw / 2, c.y() - ch / 2, cw, ch), Qt.AlignmentFlag.AlignCenter,
                                 str(count))
        painter.restore()


def class_ticks(names: list[str], width: int = 8) -> list[tuple[float, str]]:
    step = max(1, -(-len(names) // MAX_TICKS))
    return [(float(i), n if len(n) <= width else n[: width - 1] + "…") for i, n in enumerate(names) if i % step == 0]


class ConfusionPlot(Plot):
    """Rows are true classes (top to bottom), columns predicted classes (left to right)."""

    def __init__(self) -> None:
        self.colorbar: pg.ColorBarItem | None = None
        super().__init__("Results", "true class", "predicted class", legend=False, grid=False)
        item = self.getPlotItem()
        vb = item.getViewBox()
        vb.invertY(True)
        vb.setDefaultPadding(0.0)  # the matrix fills the plot: no empty range around it
        self.image = pg.ImageItem()
        self.image.setColorMap(pg.colormap.get(VIRIDIS))
        item.addItem(self.image)
        self.counts = CellCounts()
        vb.addItem(self.counts, ignoreBounds=True)
        self.colorbar = pg.ColorBarItem(values=(0, 1), colorMap=VIRIDIS, interactive=False, width=12,
                                        colorMapMenu=False)
        self.colorbar.setImageItem(self.image, insert_in=item)
        bar_axis = self.colorbar.getAxis("right")
        bar_axis.setWidth(None)  # room for its label
        bar_axis.setLabel("share of true class")
        self.matrix: np.ndarray | None = None
        self.classes: list[str] = []
        self.apply_palette()

    def width_for_height(self, height: int) -> int:
        """About square cells: the matrix as wide as it is tall (the plot's height less its title and
        bottom axis), plus the left axis and the colour bar; never narrower than the title."""
        title = self.getPlotItem().titleLabel.item.boundingRect().width()
        return int(max(height + 110, title + 30))

    def apply_palette(self) -> None:
        super().apply_palette()
        if self.colorbar is not None:
            for side in ("left", "right", "top", "bottom"):
                style_axis(self.colorbar.getAxis(side), text_color())

    def clear_matrix(self) -> None:
        self.image.clear()
        self.counts.set_counts(None)
        self.matrix = None
        self.set_title("Results")

    def show_matrix(self, cm: np.ndarray, classes: list[str], epoch: int) -> None:
        n = len(cm)
        names = [str(c) for c in classes][:n] + [str(i) for i in range(len(classes), n)]
        item = self.getPlotItem()
        if names != self.classes:
            self.classes = names
            ticks = class_ticks(names)
            item.getAxis("bottom").setTicks([ticks])
            item.getAxis("left").setTicks([ticks])
            vb = item.getViewBox()
            vb.setLimits(xMin=-0.5, xMax=n - 0.5, yMin=-0.5, yMax=n - 0.5)
            vb.setRange(xRange=(-0.5, n - 0.5), yRange=(-0.5, n - 0.5), padding=0)
        shares = cm / np.maximum(cm.sum(1, keepdims=True), 1)
        self.image.setImage(shares.T.astype(np.float32), levels=(0, 1))  # ImageItem's [x, y] is [predicted, true]
        self.image.setRect(QRectF(-0.5, -0.5, n, n))
        self.counts.set_counts(cm.astype(np.int64), shares)
        self.matrix = cm
        right = int(np.trace(cm))
        total = max(int(cm.sum()), 1)
        self.set_title(f"Confusion matrix, epoch {epoch}: {right:,} of {total:,} right")

    def hover_info(self, point: QPointF) -> tuple[str | None, float | None]:
        cm = self.matrix
        if cm is None:
            return None, None
        j, i = round(point.x()), round(point.y())
        if not (0 <= i < len(cm) and 0 <= j < len(cm)):
            return None, None
        row = max(int(cm[i].sum()), 1)
        true, predicted = html.escape(self.classes[i]), html.escape(self.classes[j])  # the dataset's names
        return (f"true <b>{true}</b>, predicted <b>{predicted}</b>: "
                f"<b>{int(cm[i, j]):,}</b> ({100 * cm[i, j] / row:.1f}% of true {true})"), None


class SamplesPlot(Plot):
    """Images in a mosaic with square pixels: reconstructions under their inputs, or generated samples."""

    def __init__(self) -> None:
        super().__init__("Samples", "", "", legend=False, grid=False)
        item = self.getPlotItem()
        item.hideAxis("bottom")
        item.getAxis("left").setStyle(tickLength=0)
        vb = item.getViewBox()
        vb.invertY(True)  # image rows run downwards
        vb.setAspectLocked(True)
        self.image = pg.ImageItem()
        item.addItem(self.image)

    def apply_palette(self) -> None:
        super().apply_palette()
        axis = self.getPlotItem().getAxis("left")
        axis.setPen(pg.mkPen(None))  # row names only, no axis line (this also recolours its text...)
        axis.setTextPen(pg.mkPen(text_color()))  # ...which follows the palette

    def show_images(self, mosaic: np.ndarray, title: str, rows: list[tuple[float, str]] | None = None) -> None:
        finite = mosaic[np.isfinite(mosaic)]
        levels = (float(finite.min()), float(finite.max())) if finite.size else (0.0, 1.0)
        if levels[1] <= levels[0]:
            levels = (levels[0], levels[0] + 1)
        self.image.setImage(mosaic.T, levels=levels)  # ImageItem's [x, y]
        item = self.getPlotItem()
        item.getAxis("left").setTicks([rows or []])
        item.showAxis("left", bool(rows))
        self.set_title(title)
        item.getViewBox().autoRange(padding=0.02)

    def show_pairs(self, inputs: np.ndarray, outputs: np.ndarray, epoch: int, k: int = 8) -> None:
        """Inputs in the top row, their reconstructions in the row below."""
        k = min(k, len(inputs), len(outputs))
        both = np.concatenate([inputs[:k].reshape(k, -1), outputs[:k].reshape(k, -1)])
        mosaic = image_grid(both, cols=k)
        h = (mosaic.shape[0] - 3) / 2  # two rows of images, 1-pixel gaps
        self.show_images(mosaic, f"Inputs (top) and reconstructions (bottom), epoch {epoch}",
                         [(1 + h / 2, "input"), (2 + 1.5 * h, "reconstruction")])

    def clear_images(self) -> None:
        self.image.clear()
        self.set_title("Samples")


class ScatterPlot(Plot):
    """Points coloured by class (one item per class: a single brush each keeps pyqtgraph fast)."""

    def __init__(self) -> None:
        super().__init__("Latent codes", "code 2", "code 1", legend=True, grid=True)
        self.getPlotItem().legend.max_columns = 10
        self.groups: dict[str, pg.ScatterPlotItem] = {}
        self.diagonal = pg.InfiniteLine(angle=45, movable=False, pen=pg.mkPen("#9e9e9e", style=Qt.PenStyle.DashLine))
        self.diagonal.hide()
        self.getPlotItem().getViewBox().addItem(self.diagonal, ignoreBounds=True)

    def show_points(self, x: np.ndarray, y: np.ndarray, labels: np.ndarray | None, names: list[str] | None,
                    title: str, axes: tuple[str, str] = ("code 1", "code 2"), diagonal: bool = False) -> None:
        item = self.getPlotItem()
        labels = np.zeros(len(x), int) if labels is None else np.asarray(labels).astype(int)[: len(x)]
        x, y = x[: len(labels)], y[: len(labels)]
        wanted: dict[str, np.ndarray] = {}
        for c in np.unique(labels):
            name = names[c] if names is not None and 0 <= c < len(names) else ("samples" if labels.max() == 0
                                                                                else str(c))
            wanted[name] = labels == c
        if list(wanted) != list(self.groups):  # new classes: new items (and legend entries, in class order)
            for scatter in self.groups.values():
                item.removeItem(scatter)
            self.groups = {}
            for k, name in enumerate(wanted):
                color = QColor(PALETTE[k % len(PALETTE)])
                scatter = pg.ScatterPlotItem(size=5, pen=None, brush=pg.mkBrush(color), name=name)
                item.addItem(scatter)
                self.groups[name] = scatter
        for name, mask in wanted.items():
            self.groups[name].setData(x[mask], y[mask])
        item.setLabel("bottom", axes[0])
        item.setLabel("left", axes[1])
        self.x_name = axes[0]
        self.diagonal.setVisible(diagonal)
        self.set_title(title)

    def clear_points(self) -> None:
        for scatter in self.groups.values():
            self.getPlotItem().removeItem(scatter)
        self.groups = {}
        self.set_title("Latent codes")

    def hover_info(self, point: QPointF) -> tuple[str | None, float | None]:
        return None, None


class ResultsView(PlotGrid):
    """The Results tab: the plots this run's validations have something for."""

    def __init__(self, parent: QWidget | None = None) -> None:
        self.confusion = ConfusionPlot()
        self.samples = SamplesPlot()
        self.scatter = ScatterPlot()
        self.placeholder = QLabel("Results appear after each validation: a confusion matrix, reconstructions, "
                                  "latent codes, generated samples or predictions against targets.")
        self.placeholder.setWordWrap(True)
        self.placeholder.setAlignment(Qt.AlignmentFlag.AlignCenter)
        super().__init__([self.confusion, self.samples, self.scatter, self.placeholder], aspect=1.3, parent=parent)
        self.clear()

    def plots(self) -> list[Plot]:
        return [self.confusion, self.samples, self.scatter]

    def clear(self) -> None:
        self.confusion.clear_matrix()
        self.samples.clear_images()
        self.scatter.clear_points()
        self._show(set())

    def _show(self, which: set[QWidget]) -> None:
        for w in self.plots():
            w.setVisible(w in which)
        self.placeholder.setVisible(not which)

    def show_validation(self, e: dict[str, Any]) -> None:
        """Draw a validation event (as ``workbench.training.engine`` sends it)."""
        epoch, task = e["epoch"], e["task"]
        shown: set[QWidget] = set()
        if "confusion" in e:
            self.confusion.show_matrix(np.asarray(e["confusion"]), list(e.get("classes") or []), epoch)
            shown.add(self.confusion)
        if "generated" in e:
            self.samples.show_images(image_grid(np.asarray(e["generated"]), cols=8), f"Generated samples, epoch {epoch}")
            shown.add(self.samples)
        elif "views" in e:  # contrastive: validation images and two augmented views of each, one row per set
            self.samples.show_images(image_grid(np.asarray(e["views"]), cols=8),
                                     f"Samples and two contrastive views, epoch {epoch}")
            shown.add(self.samples)
        elif task in ("reconstruction", "masked_image") and len(e.get("inputs", [])) and len(
                e["samples"].get("outputs", [])):
            self.samples.show_pairs(np.asarray(e["inputs"]), np.asarray(e["samples"]["outputs"]), epoch)
            shown.add(self.samples)
        if "latent" in e:
            pts = np.asarray(e["latent"], dtype=np.float64)
            labels = e.get("latent_labels")
            self.scatter.show_points(pts[:, 0], pts[:, 1], None if labels is None else np.asarray(labels),
                                     e.get("classes"), f"2-D latent codes of validation samples, epoch {epoch}")
            shown.add(self.scatter)
        elif task == "regression":
            out = np.asarray(e["samples"]["outputs"], dtype=np.float64).reshape(-1)
            tgt = np.asarray(e["samples"]["targets"], dtype=np.float64).reshape(-1)
            n = min(len(out), len(tgt))
            self.scatter.show_points(tgt[:n], out[:n], None, None, f"Predictions against targets, epoch {epoch}",
                                     axes=("target", "prediction"), diagonal=True)
            shown.add(self.scatter)
        if shown:
            self._show(shown)
