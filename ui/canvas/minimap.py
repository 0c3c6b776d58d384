"""The overview map: the whole graph, small, in a corner of the canvas, with a rectangle for
the part the canvas shows.  Clicking or dragging in it moves the canvas there; the wheel
over it zooms the canvas.

The graph's picture is drawn once (by the scene's :class:`~ui.canvas.overview.Overview`) and
kept until the graph changes; following the canvas only redraws the rectangle.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from PySide6.QtCore import QPointF, QRectF, QSize, Qt
from PySide6.QtGui import QColor, QMouseEvent, QPainter, QPaintEvent, QPen, QPixmap, QTransform, QWheelEvent
from PySide6.QtWidgets import QWidget

if TYPE_CHECKING:
    from .view import GraphView

SIZE = QSize(220, 150)
PAD = 6.0


class Minimap(QWidget):
    """An overlay child of a :class:`GraphView` (not of its viewport, which scrolls its children)."""

    def __init__(self, view: GraphView) -> None:
        super().__init__(view)
        self.view = view
        self.setObjectName("minimap")
        self.setFixedSize(SIZE)
        self.setCursor(Qt.CursorShape.PointingHandCursor)
        self.setToolTip("Overview map: click or drag to move the canvas there")
        self.setAttribute(Qt.WidgetAttribute.WA_OpaquePaintEvent, False)
        self._picture: QPixmap | None = None
        self._key: tuple[object, ...] | None = None
        self._dragging = False
        view.viewChanged.connect(self.update)
        self.hide()

    def scene_changed(self) -> None:
        """The view shows another scene: follow its document's changes."""
        self._picture = None
        scene = self.view.graph_scene
        unique = Qt.ConnectionType.UniqueConnection  # the same document comes back with each of its graphs
        scene.doc.changed.connect(self._graph_changed, unique)
        scene.expandedChanged.connect(self._graph_changed, unique)
        self.update()

    def _graph_changed(self, *_args: object) -> None:
        if self.isVisible():
            self.update()

    # ------------------------------------------------------------------ geometry
    def graph_rect(self) -> QRectF:
        """The part of the scene the map shows: every node, with a margin."""
        rect = self.view.graph_scene.overview.bounds().united(self.view.graph_scene.nodes_rect())
        if rect.isNull():
            return QRectF(-200, -150, 400, 300)
        m = 0.04 * max(rect.width(), rect.height())
        return rect.adjusted(-m, -m, m, m)

    def map_transform(self) -> QTransform:
        """Scene to map coordinates: the graph's rect, centred, as large as the map allows."""
        rect = self.graph_rect()
        w, h = self.width() - 2 * PAD, self.height() - 2 * PAD
        s = min(w / rect.width(), h / rect.height())
        t = QTransform()
        t.translate(PAD + (w - rect.width() * s) / 2, PAD + (h - rect.height() * s) / 2)
        t.scale(s, s)
        t.translate(-rect.left(), -rect.top())
        return t

    def to_scene(self, pos: QPointF) -> QPointF:
        inverse, _ok = self.map_transform().inverted()
        return inverse.map(pos)

    def visible_box(self) -> QRectF:
        """The canvas's visible part, in map coordinates."""
        return self.map_transform().mapRect(self.view.visible_rect())

    # ------------------------------------------------------------------ painting
    def paintEvent(self, event: QPaintEvent) -> None:
        scene = self.view.graph_scene
        colors = scene.colors
        p = QPainter(self)
        back = QColor(colors.background)
        back.setAlpha(235)
        p.setPen(QPen(colors.node_border, 1))
        p.setBrush(back)
        p.drawRoundedRect(QRectF(self.rect()).adjusted(0.5, 0.5, -0.5, -0.5), 6, 6)
        key = (id(scene), scene.overview.version, self.width(), self.height(), self.devicePixelRatioF())
        if self._picture is None or key != self._key or scene.overview._tiles is None:
            self._picture = self._render()
            self._key = (id(scene), scene.overview.version, self.width(), self.height(), self.devicePixelRatioF())
        p.drawPixmap(0, 0, self._picture)
        box = self.visible_box().intersected(QRectF(self.rect()).adjusted(1, 1, -1, -1))
        fill = QColor(colors.selection)
        fill.setAlpha(40)
        p.setBrush(fill)
        p.setPen(QPen(colors.selection, 1.5))
        p.drawRect(box)
        p.end()

    def _render(self) -> QPixmap:
        ratio = self.devicePixelRatioF()
        pix = QPixmap(self.size() * ratio)
        pix.setDevicePixelRatio(ratio)
        pix.fill(Qt.GlobalColor.transparent)
        p = QPainter(pix)
        p.setTransform(self.map_transform())
        self.view.graph_scene.overview.paint(p, None, selection=False)
        p.end()
        return pix

    # ------------------------------------------------------------------ gestures
    def mousePressEvent(self, event: QMouseEvent) -> None:
        if event.button() == Qt.MouseButton.LeftButton:
            self._dragging = True
            self._go(event.position())
            event.accept()
            return
        super().mousePressEvent(event)

    def mouseMoveEvent(self, event: QMouseEvent) -> None:
        if self._dragging:
            self._go(event.position())
            event.accept()
            return
        super().mouseMoveEvent(event)

    def mouseReleaseEvent(self, event: QMouseEvent) -> None:
        if self._dragging and event.button() == Qt.MouseButton.LeftButton:
            self._dragging = False
            event.accept()
            return
        super().mouseReleaseEvent(event)

    def wheelEvent(self, event: QWheelEvent) -> None:
        steps = event.angleDelta().y() / 120.0
        if steps:
            self.view.zoom_by(1.15 ** steps)
        event.accept()

    def _go(self, pos: QPointF) -> None:
        self.view.centerOn(self.to_scene(pos))
