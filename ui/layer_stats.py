"""The dashboard's Layers tab: gradient and weight norms per layer over the steps.

The list beside the plots names each layer in its curve's colour (so the plots need no
legend over their data) and picks which layers are drawn; a curve is made the first
time its layer is checked."""

from __future__ import annotations

import pyqtgraph as pg
from PySide6.QtCore import Qt
from PySide6.QtGui import QColor, QIcon, QPixmap
from PySide6.QtWidgets import QHBoxLayout, QListWidget, QListWidgetItem, QWidget

from .plot_grid import PlotGrid
from .plots import PALETTE, Plot, Series, make_plot

#: layers drawn at the start of a run (more tangle the plots; the list checks others)
SHOWN_AT_START = 6


def swatch(color: str) -> QIcon:
    pixmap = QPixmap(12, 12)
    pixmap.fill(QColor(color))
    return QIcon(pixmap)


class LayerStats(QWidget):
    """The layer list and the two per-layer plots; ``grad_series`` / ``weight_series`` by layer name."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.layer_list = QListWidget()
        self.layer_list.setMaximumWidth(200)
        self.layer_list.setMinimumHeight(60)
        self.layer_list.itemChanged.connect(lambda _i: self.update_visibility())
        self.grad_plot = make_plot("Gradient norm per layer", "‖grad‖", legend=False)
        self.weight_plot = make_plot("Weight norm per layer", "‖w‖", legend=False)
        self.names: list[str] = []
        self.grad_series: dict[str, Series] = {}
        self.weight_series: dict[str, Series] = {}
        row = QHBoxLayout(self)
        row.setContentsMargins(0, 0, 0, 0)
        row.addWidget(self.layer_list)
        row.addWidget(PlotGrid([self.grad_plot, self.weight_plot]), 1)

    def plot_series(self) -> list[tuple[Plot, list[Series]]]:
        return [(self.grad_plot, list(self.grad_series.values())),
                (self.weight_plot, list(self.weight_series.values()))]

    def setup(self, names: list[str]) -> None:
        """A new run's layers (none: a clean tab)."""
        self.names = names
        self.layer_list.blockSignals(True)
        self.layer_list.clear()
        for plot in (self.grad_plot, self.weight_plot):
            plot.clear()
        self.grad_series = {name: Series(None) for name in names}
        self.weight_series = {name: Series(None) for name in names}
        for i, name in enumerate(names):
            item = QListWidgetItem(swatch(PALETTE[i % len(PALETTE)]), name)
            item.setFlags(item.flags() | Qt.ItemFlag.ItemIsUserCheckable)
            item.setCheckState(Qt.CheckState.Checked if i < SHOWN_AT_START else Qt.CheckState.Unchecked)
            self.layer_list.addItem(item)
        self.layer_list.blockSignals(False)
        self.update_visibility()

    def append(self, step: int, grad_norm: dict[str, float], weight_norm: dict[str, float]) -> None:
        for values, series in ((grad_norm, self.grad_series), (weight_norm, self.weight_series)):
            for name, v in values.items():
                if name in series:
                    series[name].append(step, v)

    def update_visibility(self) -> None:
        """Checked layers get curves (made on first use); unchecked ones are hidden."""
        for i in range(self.layer_list.count()):
            item = self.layer_list.item(i)
            on = item.checkState() == Qt.CheckState.Checked
            name = item.text()
            for series, plot in ((self.grad_series, self.grad_plot), (self.weight_series, self.weight_plot)):
                s = series.get(name)
                if s is None:
                    continue
                if on and s.curve is None:
                    s.curve = plot.plot([], [], name=name, pen=pg.mkPen(PALETTE[i % len(PALETTE)]))
                    s.dirty = True
                if s.curve is not None:
                    s.curve.setVisible(on)
                    s.redraw()
