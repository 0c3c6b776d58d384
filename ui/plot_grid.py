"""Plots in a grid that suits the panel's shape, and the scrolling page that holds it."""

from __future__ import annotations

import math

from PySide6.QtCore import QEvent, QRect, QSize, Qt
from PySide6.QtWidgets import QScrollArea, QSizePolicy, QWidget

#: the smallest plot that still reads (title, ticks, a legend row and a curve)
MIN_PLOT_WIDTH, MIN_PLOT_HEIGHT = 240, 170


def scrolling(widget: QWidget) -> QScrollArea:
    """A page that scrolls vertically when its panel is too short for the plots in it."""
    area = QScrollArea()
    area.setWidget(widget)
    area.setWidgetResizable(True)
    area.setFrameShape(QScrollArea.Shape.NoFrame)
    area.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
    return area


class PlotGrid(QWidget):
    """Plots in as many columns as suit the space: one row in a wide, short dock, one column in a
    tall, narrow one.  Each plot gets at least ``MIN_PLOT_WIDTH`` x ``MIN_PLOT_HEIGHT``; a
    scroll area around the grid scrolls when even the best arrangement needs more height
    (its :meth:`heightForWidth`).  Hidden plots (``setVisible(False)``) take no cell."""

    def __init__(self, widgets: list[QWidget], aspect: float = 1.6, spacing: int = 6,
                 parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.widgets = list(widgets)
        self.aspect = aspect
        self.spacing = spacing
        for w in self.widgets:
            w.setParent(self)
            w.installEventFilter(self)
        policy = QSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Expanding)
        policy.setHeightForWidth(True)
        self.setSizePolicy(policy)

    def shown(self) -> list[QWidget]:
        return [w for w in self.widgets if not w.isHidden()]

    def columns(self, width: int, height: int) -> int:
        """The number of columns giving the largest plots of the right shape; arrangements whose
        cells are smaller than the minimum lose to any that fits."""
        n = len(self.shown())
        if n == 0:
            return 1
        best, best_score = 1, -math.inf
        for cols in range(1, n + 1):
            rows = -(-n // cols)
            cw = (width - self.spacing * (cols - 1)) / cols
            ch = (height - self.spacing * (rows - 1)) / rows
            fits = cw >= MIN_PLOT_WIDTH and ch >= MIN_PLOT_HEIGHT
            score = min(cw / self.aspect, ch) + (0 if fits else -1e6 + min(cw - MIN_PLOT_WIDTH, 0) * 10
                                                 + min(ch - MIN_PLOT_HEIGHT, 0))
            if score > best_score:
                best, best_score = cols, score
        return best

    def hasHeightForWidth(self) -> bool:
        return True

    def heightForWidth(self, width: int) -> int:
        """The least height at this width: as many columns as fit, rows of the minimum height."""
        n = len(self.shown())
        if n == 0:
            return 0
        cols = max(1, min(n, (width + self.spacing) // (MIN_PLOT_WIDTH + self.spacing)))
        rows = -(-n // cols)
        return rows * MIN_PLOT_HEIGHT + (rows - 1) * self.spacing

    def sizeHint(self) -> QSize:
        return QSize(2 * MIN_PLOT_WIDTH, int(1.4 * MIN_PLOT_HEIGHT))

    def minimumSizeHint(self) -> QSize:
        return QSize(MIN_PLOT_WIDTH, MIN_PLOT_HEIGHT if self.shown() else 0)

    def eventFilter(self, watched: object, event: QEvent) -> bool:
        if event.type() in (QEvent.Type.ShowToParent, QEvent.Type.HideToParent):
            self.updateGeometry()  # the scroll area asks heightForWidth again
            self.arrange()
        return False

    def resizeEvent(self, event: object) -> None:
        self.arrange()

    def arrange(self) -> None:
        shown = self.shown()
        if not shown:
            return
        width, height = self.width(), self.height()
        cols = self.columns(width, height)
        rows = -(-len(shown) // cols)
        cw = (width - self.spacing * (cols - 1)) / cols
        ch = (height - self.spacing * (rows - 1)) / rows
        for i, w in enumerate(shown):
            r, c = divmod(i, cols)
            x, y = round(c * (cw + self.spacing)), round(r * (ch + self.spacing))
            cell = QRect(x, y, round((c + 1) * (cw + self.spacing) - self.spacing) - x,
                         round((r + 1) * (ch + self.spacing) - self.spacing) - y)
            shape = getattr(w, "width_for_height", None)  # a plot of a given shape: centred in its cell
            if shape is not None and shape(cell.height()) < cell.width():
                width = max(MIN_PLOT_WIDTH, shape(cell.height()))
                cell = QRect(cell.x() + (cell.width() - width) // 2, cell.y(), width, cell.height())
            w.setGeometry(cell)
