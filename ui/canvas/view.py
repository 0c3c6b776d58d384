"""The canvas view: zoom, pan, rubber-band selection and drops from the palette."""

from __future__ import annotations

from typing import Any

from PySide6.QtCore import QPointF, QRectF, Qt, Signal
from PySide6.QtGui import QDragEnterEvent, QDragMoveEvent, QDropEvent, QKeyEvent, QMouseEvent, QPainter, QWheelEvent
from PySide6.QtWidgets import QGraphicsView, QWidget

from .items import NODE_H, NODE_W
from .scene import GraphScene

LAYER_MIME = "application/x-neural-workbench-layer"


class GraphView(QGraphicsView):
    """Signals:
    layerDropped(str, QPointF): a palette layer was dropped at a scene position.
    """

    layerDropped = Signal(str, QPointF)
    zoomChanged = Signal(float)

    MIN_ZOOM, MAX_ZOOM = 0.08, 4.0
    READABLE_ZOOM = 0.6

    def __init__(self, scene: GraphScene, parent: QWidget | None = None) -> None:
        super().__init__(scene, parent)
        self.setRenderHints(QPainter.RenderHint.Antialiasing | QPainter.RenderHint.TextAntialiasing)
        self.setViewportUpdateMode(QGraphicsView.ViewportUpdateMode.SmartViewportUpdate)
        self.setDragMode(QGraphicsView.DragMode.RubberBandDrag)
        self.setTransformationAnchor(QGraphicsView.ViewportAnchor.AnchorUnderMouse)
        self.setResizeAnchor(QGraphicsView.ViewportAnchor.AnchorViewCenter)
        self.setAcceptDrops(True)
        self.setFocusPolicy(Qt.FocusPolicy.StrongFocus)
        self._space = False
        self._panning: QPointF | None = None
        self.update_scene_rect()

    @property
    def graph_scene(self) -> GraphScene:
        return self.scene()  # type: ignore[return-value]

    def update_scene_rect(self) -> None:
        """An explicit, generous scene rect (growing the rect on every move is slow)."""
        rect = self.graph_scene.nodes_rect()
        if rect.isNull():
            rect = QRectF(-500, -400, 1000, 800)
        self.setSceneRect(rect.adjusted(-2000, -2000, 2000, 2000))

    # ------------------------------------------------------------------ zoom
    def zoom(self) -> float:
        return self.transform().m11()

    def zoom_by(self, factor: float) -> None:
        new = min(self.MAX_ZOOM, max(self.MIN_ZOOM, self.zoom() * factor))
        factor = new / self.zoom()
        self.scale(factor, factor)
        self.zoomChanged.emit(self.zoom())

    def fit(self) -> None:
        """Fit the graph; a graph too tall to read at a glance is shown from its inputs down
        at a readable zoom instead of shrinking to unreadable boxes."""
        rect = self.graph_scene.nodes_rect()
        if rect.isNull():
            return
        self.update_scene_rect()
        self.fitInView(rect.adjusted(-40, -40, 40, 40), Qt.AspectRatioMode.KeepAspectRatio)
        zoom = self.zoom()
        if zoom > 1.25 or zoom < self.READABLE_ZOOM:
            self.resetTransform()
            target = min(1.25, max(zoom, self.READABLE_ZOOM))
            self.scale(target, target)
            visible = self.mapToScene(self.viewport().rect()).boundingRect()
            self.centerOn(rect.center().x(), max(rect.center().y(), rect.top() - 40 + visible.height() / 2)
                          if zoom > 1.25 else rect.top() - 40 + visible.height() / 2)
        self.zoomChanged.emit(self.zoom())

    def center_on_node(self, node_id: str) -> None:
        item = self.graph_scene.nodes.get(node_id)
        if item is not None:
            self.centerOn(item.pos() + QPointF(NODE_W / 2, NODE_H / 2))

    def visible_center(self) -> QPointF:
        return self.mapToScene(self.viewport().rect().center())

    def wheelEvent(self, event: QWheelEvent) -> None:
        if event.modifiers() & Qt.KeyboardModifier.ShiftModifier:
            super().wheelEvent(event)  # shift+wheel scrolls
            return
        steps = event.angleDelta().y() / 120.0
        if steps:
            self.zoom_by(1.15 ** steps)
        event.accept()

    # ------------------------------------------------------------------ pan (middle button, space+drag)
    def mousePressEvent(self, event: QMouseEvent) -> None:
        if event.button() == Qt.MouseButton.MiddleButton or (
            self._space and event.button() == Qt.MouseButton.LeftButton
        ):
            self._panning = event.position()
            self.viewport().setCursor(Qt.CursorShape.ClosedHandCursor)
            event.accept()
            return
        super().mousePressEvent(event)

    def mouseMoveEvent(self, event: QMouseEvent) -> None:
        if self._panning is not None:
            delta = event.position() - self._panning
            self._panning = event.position()
            self.horizontalScrollBar().setValue(self.horizontalScrollBar().value() - int(delta.x()))
            self.verticalScrollBar().setValue(self.verticalScrollBar().value() - int(delta.y()))
            event.accept()
            return
        super().mouseMoveEvent(event)

    def mouseReleaseEvent(self, event: QMouseEvent) -> None:
        if self._panning is not None:
            self._panning = None
            self.viewport().setCursor(Qt.CursorShape.OpenHandCursor if self._space else Qt.CursorShape.ArrowCursor)
            event.accept()
            return
        super().mouseReleaseEvent(event)

    def keyPressEvent(self, event: QKeyEvent) -> None:
        if event.key() == Qt.Key.Key_Space and not event.isAutoRepeat():
            self._space = True
            self.viewport().setCursor(Qt.CursorShape.OpenHandCursor)
            event.accept()
            return
        super().keyPressEvent(event)

    def keyReleaseEvent(self, event: QKeyEvent) -> None:
        if event.key() == Qt.Key.Key_Space and not event.isAutoRepeat():
            self._space = False
            self.viewport().setCursor(Qt.CursorShape.ArrowCursor)
            event.accept()
            return
        super().keyReleaseEvent(event)

    # ------------------------------------------------------------------ drops from the palette
    def _layer_of(self, event: Any) -> str | None:
        mime = event.mimeData()
        if mime is not None and mime.hasFormat(LAYER_MIME):
            return bytes(mime.data(LAYER_MIME).data()).decode("utf-8")
        return None

    def dragEnterEvent(self, event: QDragEnterEvent) -> None:
        if self._layer_of(event):
            event.acceptProposedAction()
        else:
            super().dragEnterEvent(event)

    def dragMoveEvent(self, event: QDragMoveEvent) -> None:
        if self._layer_of(event):
            event.acceptProposedAction()
        else:
            super().dragMoveEvent(event)

    def dropEvent(self, event: QDropEvent) -> None:
        layer = self._layer_of(event)
        if not layer:
            super().dropEvent(event)
            return
        pos = self.mapToScene(event.position().toPoint())
        self.layerDropped.emit(layer, pos - QPointF(NODE_W / 2, NODE_H / 2))
        event.acceptProposedAction()
