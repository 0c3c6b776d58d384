"""The canvas view: zoom, pan, rubber-band selection and drops from the palette; the overview
map and the node search float over it.

Fit to View shows the whole graph whatever its size.  Zoomed far out, or when a great many
nodes are in sight, the scene draws simple shapes in a few calls instead of one item at a
time (:meth:`GraphScene.set_overview`): that keeps a 10,000-node graph fluid.
"""

from __future__ import annotations

from typing import Any
from weakref import WeakKeyDictionary

from PySide6.QtCore import QPointF, QRectF, Qt, Signal
from PySide6.QtGui import (
    QDragEnterEvent,
    QDragLeaveEvent,
    QDragMoveEvent,
    QDropEvent,
    QKeyEvent,
    QMouseEvent,
    QPainter,
    QResizeEvent,
    QWheelEvent,
)
from PySide6.QtWidgets import QApplication, QGraphicsScene, QGraphicsView, QWidget

from workbench.graph import Graph

from .drop_target import WireDropTarget
from .items import NAME_MAX_PX, NODE_H, NODE_W, SHAPES_ONLY_PX
from .minimap import Minimap
from .scene import GraphScene
from .search import SearchBar

LAYER_MIME = "application/x-neural-workbench-layer"

BUSY_ZOOM = 0.35
"""Below this zoom a crowded view is drawn as simple shapes (see BUSY_NODES)."""
BUSY_NODES = 450
"""How many nodes in sight make a view crowded: more node paintings than one frame affords."""
FIT_MARGIN = 16.0


class GraphView(QGraphicsView):
    """Signals:
    layerDropped(str, QPointF): a palette layer was dropped at a graph position.
    layerDroppedOnWire(str, QPointF, Edge): ... dropped on a wire (to be inserted into it).
    zoomChanged(float): the zoom changed (1.0 = 100%).
    viewChanged(): the part of the scene in sight changed (zoom or scroll).
    """

    layerDropped = Signal(str, QPointF)
    layerDroppedOnWire = Signal(str, QPointF, object)
    zoomChanged = Signal(float)
    viewChanged = Signal()

    MIN_ZOOM, MAX_ZOOM = 0.08, 4.0
    FIT_MAX_ZOOM = 1.25
    """Fit to View never magnifies a small graph beyond this."""
    FIND_ZOOM = 0.55
    """The least zoom a search shows its match at (the compact face, name in large type)."""

    def __init__(self, scene: GraphScene, parent: QWidget | None = None) -> None:
        super().__init__(scene, parent)
        self.setRenderHints(QPainter.RenderHint.Antialiasing | QPainter.RenderHint.TextAntialiasing)
        self.setViewportUpdateMode(QGraphicsView.ViewportUpdateMode.SmartViewportUpdate)
        self.setOptimizationFlag(QGraphicsView.OptimizationFlag.DontSavePainterState, True)
        self.setDragMode(QGraphicsView.DragMode.RubberBandDrag)
        self.setTransformationAnchor(QGraphicsView.ViewportAnchor.AnchorUnderMouse)
        self.setResizeAnchor(QGraphicsView.ViewportAnchor.AnchorViewCenter)
        self.setAcceptDrops(True)
        self.setFocusPolicy(Qt.FocusPolicy.StrongFocus)
        self._space = False
        self._panning: QPointF | None = None
        self._drop_target = WireDropTarget(self)
        self._expanded: WeakKeyDictionary[Graph, set[str]] = WeakKeyDictionary()
        """Blocks expanded per graph, so coming back from inside a block finds them as they were."""
        self.minimap = Minimap(self)
        self.search = SearchBar(self)
        self.rubberBandChanged.connect(self._rubber_band)
        self.horizontalScrollBar().valueChanged.connect(self._view_changed)
        self.verticalScrollBar().valueChanged.connect(self._view_changed)
        self._follow_scene(scene)
        self.search.scene_changed()
        self.minimap.scene_changed()
        self.update_scene_rect()

    @property
    def graph_scene(self) -> GraphScene:
        return self.scene()  # type: ignore[return-value]

    def setScene(self, scene: QGraphicsScene) -> None:
        super().setScene(scene)
        if isinstance(scene, GraphScene):
            self._follow_scene(scene)
            for nid in self._expanded.get(scene.graph, set()).copy():
                scene.set_expanded(nid, True)
        self.search.scene_changed()
        self.minimap.scene_changed()
        self._update_detail()

    def _follow_scene(self, scene: GraphScene) -> None:
        scene.expandedChanged.connect(self._remember_expanded)

    def _remember_expanded(self, node_id: str, expanded: bool) -> None:
        shown = self._expanded.setdefault(self.graph_scene.graph, set())
        (shown.add if expanded else shown.discard)(node_id)
        self.update_scene_rect()

    def update_scene_rect(self) -> None:
        """An explicit, generous scene rect (growing the rect on every move is slow)."""
        rect = self.graph_scene.nodes_rect()
        if rect.isNull():
            rect = QRectF(-500, -400, 1000, 800)
        pad = max(2000.0, 0.5 * max(rect.width(), rect.height()))
        self.setSceneRect(rect.adjusted(-pad, -pad, pad, pad))

    # ------------------------------------------------------------------ zoom
    def zoom(self) -> float:
        return self.transform().m11()

    def min_zoom(self) -> float:
        """As far out as the whole graph needs (and a little more), never less than that."""
        return min(self.MIN_ZOOM, 0.8 * self.fit_zoom())

    def fit_zoom(self) -> float:
        rect = self.graph_scene.nodes_rect()
        vp = self.viewport().rect()
        if rect.isNull() or vp.width() < 2 or vp.height() < 2:
            return 1.0
        rect = rect.adjusted(-FIT_MARGIN, -FIT_MARGIN, FIT_MARGIN, FIT_MARGIN)
        return min(vp.width() / rect.width(), vp.height() / rect.height())

    def set_zoom(self, zoom: float) -> None:
        zoom = min(self.MAX_ZOOM, max(self.min_zoom(), zoom))
        factor = zoom / self.zoom()
        self.scale(factor, factor)
        self._update_detail()
        self.zoomChanged.emit(self.zoom())

    def zoom_by(self, factor: float) -> None:
        self.set_zoom(self.zoom() * factor)

    def fit(self) -> None:
        """Show the whole graph: as large as the canvas allows, up to 125%."""
        rect = self.graph_scene.nodes_rect()
        if rect.isNull():
            return
        self.update_scene_rect()
        zoom = min(self.FIT_MAX_ZOOM, self.fit_zoom())
        self.resetTransform()
        self.scale(zoom, zoom)
        self.centerOn(rect.center())
        self._update_detail()
        self.zoomChanged.emit(self.zoom())

    def center_on_node(self, node_id: str) -> None:
        item = self.graph_scene.nodes.get(node_id)
        if item is not None:
            self.centerOn(item.pos() + QPointF(NODE_W / 2, NODE_H / 2))

    def show_node(self, node_id: str) -> None:
        """Bring a node into the middle of the view, large enough to read."""
        if self.zoom() < self.FIND_ZOOM:
            anchor = self.transformationAnchor()
            self.setTransformationAnchor(QGraphicsView.ViewportAnchor.NoAnchor)
            self.set_zoom(self.FIND_ZOOM)
            self.setTransformationAnchor(anchor)
        self.center_on_node(node_id)

    def visible_center(self) -> QPointF:
        return self.mapToScene(self.viewport().rect().center())

    def visible_rect(self) -> QRectF:
        return self.mapToScene(self.viewport().rect()).boundingRect()

    def wheelEvent(self, event: QWheelEvent) -> None:
        if event.modifiers() & Qt.KeyboardModifier.ShiftModifier:
            super().wheelEvent(event)  # shift+wheel scrolls
            return
        steps = event.angleDelta().y() / 120.0
        if steps:
            self.zoom_by(1.15 ** steps)
        event.accept()

    # ------------------------------------------------------------------ level of detail
    def _view_changed(self, _value: int = 0) -> None:
        self._update_detail()

    def _update_detail(self) -> None:
        """Choose between drawing items and drawing simple shapes in batches."""
        scene = self.graph_scene
        zoom = self.zoom()
        if NAME_MAX_PX * zoom < SHAPES_ONLY_PX:  # no text would be drawn anyway: batch it all
            far = True
        elif zoom >= BUSY_ZOOM:
            far = False
        else:  # a little hysteresis, so panning along the edge of a crowd does not flicker
            limit = BUSY_NODES * (0.8 if scene.overview_on else 1.0)
            r = self.visible_rect()
            far = scene.obstacles.estimate(r.left(), r.top(), r.right(), r.bottom(), int(limit)) > limit
        scene.set_overview(far)
        self.viewChanged.emit()

    def _rubber_band(self, rect: Any, start: QPointF, end: QPointF) -> None:
        # far out the items do not paint, and Qt's rubber band only finds painted items
        if self.graph_scene.overview_on and not rect.isNull():
            add = bool(QApplication.keyboardModifiers() & Qt.KeyboardModifier.ControlModifier)
            self.graph_scene.select_in(QRectF(start, end).normalized(), add)

    def mouseDoubleClickEvent(self, event: QMouseEvent) -> None:
        if self.graph_scene.overview_on and event.button() == Qt.MouseButton.LeftButton:
            # far out a double-click reads as "let me see that": zoom in there, as on a map
            at = self.mapToScene(event.position().toPoint())
            self.set_zoom(self.FIND_ZOOM)
            self.centerOn(at)
            event.accept()
            return
        super().mouseDoubleClickEvent(event)

    # ------------------------------------------------------------------ overlays
    def resizeEvent(self, event: QResizeEvent) -> None:
        super().resizeEvent(event)
        self.place_overlays()
        self._update_detail()

    def place_overlays(self) -> None:
        vp = self.viewport().geometry()
        m = self.minimap
        m.move(vp.right() - m.width() - 10, vp.bottom() - m.height() - 10)
        s = self.search
        s.adjustSize()
        s.move(vp.right() - s.width() - 10, vp.top() + 10)

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
        if event.key() == Qt.Key.Key_Escape and self.search.isVisible():
            self.search.close_search()
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
            self._drop_target.track(event.position().toPoint())
            event.acceptProposedAction()
        elif event.mimeData() is not None and event.mimeData().hasUrls():
            event.ignore()  # files: the main window opens them (ui.files)
        else:
            super().dragEnterEvent(event)

    def dragMoveEvent(self, event: QDragMoveEvent) -> None:
        if self._layer_of(event):
            self._drop_target.track(event.position().toPoint())  # the wire a drop here would split
            event.acceptProposedAction()
        else:
            super().dragMoveEvent(event)

    def dragLeaveEvent(self, event: QDragLeaveEvent) -> None:
        self._drop_target.clear()
        super().dragLeaveEvent(event)

    def dropEvent(self, event: QDropEvent) -> None:
        layer = self._layer_of(event)
        if not layer:
            super().dropEvent(event)
            return
        edge = self._drop_target.track(event.position().toPoint())
        self._drop_target.clear()
        pos = self.mapToScene(event.position().toPoint())
        at = self.graph_scene.model_point(pos - QPointF(NODE_W / 2, NODE_H / 2))
        if edge is not None:
            self.layerDroppedOnWire.emit(layer, at, edge)
        else:
            self.layerDropped.emit(layer, at)
        event.acceptProposedAction()
