"""The wire a layer dragged from the palette would be inserted into: found under the pointer
while the drag moves, and highlighted so the user sees where the drop goes."""

from __future__ import annotations

from typing import TYPE_CHECKING

from PySide6.QtCore import QPoint, QPointF, QRect, Qt
from PySide6.QtGui import QColor, QPen
from PySide6.QtWidgets import QGraphicsPathItem

from workbench.graph import Edge

from .items import EdgeItem, NodeItem

if TYPE_CHECKING:
    from .view import GraphView

REACH = 6
"""View pixels around the pointer that still count as on the wire (at any zoom)."""
HIGHLIGHT_WIDTH = 10.0
"""On-screen width of the highlight under the wire."""


def wire_under(view: GraphView, at: QPoint) -> EdgeItem | None:
    """The wire of the shown graph under view point ``at`` (none when a node is there: a drop on a
    node is not a drop on the wires behind it)."""
    scene = view.graph_scene
    here = QRect(at.x() - REACH, at.y() - REACH, 2 * REACH + 1, 2 * REACH + 1)
    best: tuple[float, EdgeItem] | None = None
    for item in view.items(here, Qt.ItemSelectionMode.IntersectsItemShape):
        if isinstance(item, NodeItem) and item.contains(item.mapFromScene(view.mapToScene(at))):
            return None
        if isinstance(item, EdgeItem) and scene.edges.get(item.edge) is item:  # not a wire inside a block
            d = _distance(view, item, at)
            if best is None or d < best[0]:
                best = (d, item)
    return best[1] if best else None


def _distance(view: GraphView, item: EdgeItem, at: QPoint) -> float:
    """Roughly how far (view pixels) the wire passes from ``at``: the nearest of points along it."""
    path = item.path()
    target = QPointF(at)
    nearest = float("inf")
    for i in range(41):
        p = view.mapFromScene(item.mapToScene(path.pointAtPercent(i / 40)))
        nearest = min(nearest, (QPointF(p) - target).manhattanLength())
    return nearest


class WireDropTarget:
    """Tracks the wire under a palette drag and draws a highlight under it."""

    def __init__(self, view: GraphView) -> None:
        self.view = view
        self.item: EdgeItem | None = None
        self._halo: QGraphicsPathItem | None = None

    @property
    def edge(self) -> Edge | None:
        return self.item.edge if self.item is not None else None

    def track(self, at: QPoint) -> Edge | None:
        """Follow the pointer at view point ``at``; returns the wire a drop there would split."""
        item = wire_under(self.view, at)
        if item is not self.item:
            self.clear()
            self.item = item
            if item is not None:
                self._halo = QGraphicsPathItem(item.path())
                self._halo.setPos(item.scenePos())
                color = QColor(self.view.graph_scene.colors.selection)
                color.setAlpha(190)
                pen = QPen(color, HIGHLIGHT_WIDTH)
                pen.setCosmetic(True)  # as wide on screen at every zoom
                pen.setCapStyle(Qt.PenCapStyle.RoundCap)
                self._halo.setPen(pen)
                self._halo.setZValue(item.zValue() - 0.01)  # under the wire, above the grid
                self._halo.setAcceptedMouseButtons(Qt.MouseButton.NoButton)
                self.view.graph_scene.addItem(self._halo)
        return self.edge

    def clear(self) -> None:
        if self._halo is not None and self._halo.scene() is not None:
            self._halo.scene().removeItem(self._halo)
        self._halo = None
        self.item = None
