"""The scene mirrors the document's graph: items are created, removed and
annotated from graph events and shape inference; user gestures become commands.

Reading a large graph: zoomed far out, node and wire items stop painting and
:class:`~ui.canvas.overview.Overview` draws the whole graph as simple shapes in a few calls
(the view decides when, :meth:`GraphScene.set_overview`); meanwhile the scene answers clicks,
drags and the rubber band from its own index of node boxes (items that do not paint are not
hit by Qt's tests).  Items stay top-level so Qt's index culls them: children of a parent
item would all be visited on every frame.  Wires
are routed around the nodes in their way (:mod:`workbench.routing`) against an index of the
nodes' boxes kept here.  The ports sit on the sides that match the way the graph flows
(:func:`workbench.layout.flow_direction`), judged again when most nodes move at once (an
auto-layout, or its undo).
"""

from __future__ import annotations

import math
import time
import weakref
from collections.abc import Iterator
from typing import Any

from PySide6.QtCore import QPointF, QRectF, Qt, QTimer, Signal
from PySide6.QtGui import QPainter, QPen, QTransform
from PySide6.QtWidgets import (
    QGraphicsItem,
    QGraphicsScene,
    QGraphicsSceneHelpEvent,
    QGraphicsSceneMouseEvent,
    QToolTip,
)

from workbench.bulk import gc_paused
from workbench.graph import Edge, Graph, GraphEvent
from workbench.layers.dims import fmt_shape
from workbench.layout import NODE_SIZE, flow_direction
from workbench.routing import ObstacleIndex, route_wire
from workbench.shapes import ShapeInference

from ..commands import MoveNodesCommand
from ..document import Document
from ..style import canvas_colors
from .expand import Expansions
from .items import NODE_H, NODE_W, PORT_HIT, EdgeItem, NodeItem, PortItem
from .overview import Overview
from .wiring import WireDrag

GRID = 20.0
NO_CONTENTS = QGraphicsItem.GraphicsItemFlag.ItemHasNoContents
ROUTE_AT_OPEN_LIMIT = 1500
"""Graphs with more nodes open with plain curves and route their wires afterwards, in slices."""
ROUTE_SLICE_S = 0.02
"""How long one slice of deferred routing may keep the event loop (a frame and a bit)."""
REROUTE_REACH = 40.0
"""How near a moved, added or removed node a wire must pass to be routed again."""


def format_count(n: int) -> str:
    if n >= 1_000_000:
        return f"{n / 1e6:.2f}M"
    if n >= 10_000:
        return f"{n / 1e3:.1f}k"
    return f"{n:,}" if n else "0"


def describe(g: Graph, si: ShapeInference, nid: str) -> tuple[str, str, str, str, str, str]:
    """What a node shows: title, subtitle, shape text, parameter count, status and tooltip."""
    node, info = g.nodes[nid], si.info(nid)
    spec = node.spec
    keys = ", ".join(f"{_SHORT.get(k, k)} {_fmt_value(node.params[k])}" for k in spec.key_params)
    subtitle = f"{spec.name}" + (f" · {keys}" if keys else "")
    if info.status == "ok":
        shapes = info.outputs or {"": info.inputs.get("x")}
        shape_text = "  ".join(fmt_shape(s) for s in shapes.values() if s is not None)
    else:
        shape_text = "error" if info.status == "error" else "?"
    tooltip = f"<b>{node.name}</b> ({spec.name})<br>{spec.doc}"
    if node.is_block:
        tooltip += "<br><i>Double-click to open the block; its chevron shows the inside here.</i>"
    if info.error:
        tooltip += f"<br><span style='color:#d32f2f'>{info.error}</span>"
    return node.name, subtitle, shape_text, format_count(info.params) if info.params else "", info.status, tooltip


class GraphScene(QGraphicsScene):
    """Signals:
    message(str): a status-bar message (e.g. why a connection was refused).
    renameRequested(str): the user asked to rename a node (double-click).
    openRequested(str): the user asked to open a block node (double-click on it).
    expandedChanged(str, bool): a block node was expanded in place or collapsed.
    """

    message = Signal(str)
    renameRequested = Signal(str)
    openRequested = Signal(str)
    expandedChanged = Signal(str, bool)

    def __init__(self, document: Document, parent: Any = None) -> None:
        super().__init__(parent)
        self.doc = document
        self.colors = canvas_colors()
        self.nodes: dict[str, NodeItem] = {}
        self.edges: dict[Edge, EdgeItem] = {}
        self.snap_to_grid = True
        self.show_grid = True
        self.direction = flow_direction(self.doc.graph, NODE_SIZE)
        self.obstacles = ObstacleIndex()
        self.highlighted: dict[str, str] = {}
        """Search marks: node id -> "match" | "current"."""
        self.overview = Overview(self)
        self.overview_on = False
        self.expansions = Expansions(self)
        self._drag: WireDrag | None = None
        self._router = _Router(self)
        self._press_positions: dict[str, QPointF] = {}
        self._far_press: QPointF | None = None  # a drag of nodes begun while zoomed far out
        self._touched: list[QRectF] = []  # where nodes came, went or moved since the last change
        self._moved: set[str] = set()
        self._selected_edges: set[EdgeItem] = set()
        self._selection_pending = False
        self.setItemIndexMethod(QGraphicsScene.ItemIndexMethod.BspTreeIndex)
        # a huge graph opens with plain curves and routes its wires afterwards, a slice at a time
        # (a long skip's route looks at every node it passes: thousands of them make opening slow)
        self._unrouted: list[EdgeItem] = []
        self._defer_routing = len(self.doc.graph) > ROUTE_AT_OPEN_LIMIT
        self._route_timer = QTimer(self)
        self._route_timer.setInterval(0)
        self._route_timer.timeout.connect(self._route_some)
        with gc_paused():  # tens of thousands of objects that all stay: collections would find nothing
            for node in self.doc.graph:
                self._add_node_item(node.id)
            for edge in self.doc.graph.edges:
                self._add_edge_item(edge)
        self._defer_routing = False
        if self._unrouted:
            self._route_timer.start()
        self.graph = self.doc.graph  # the graph this scene mirrors (the document may show another later)
        self.graph.subscribe(self._on_graph_event)
        self.doc.changed.connect(self.refresh)
        self.doc.changed.connect(self._settle)
        self.selectionChanged.connect(self._selection_changed)
        with gc_paused():
            self.refresh(set(self.doc.graph.nodes))

    def detach(self) -> None:
        """Stop following the document (before the scene is discarded)."""
        self.graph.unsubscribe(self._on_graph_event)
        self.doc.changed.disconnect(self.refresh)
        self.doc.changed.disconnect(self._settle)

    # ------------------------------------------------------------------ mirroring
    def _add_node_item(self, node_id: str) -> NodeItem:
        node = self.doc.graph.nodes[node_id]
        pos = QPointF(*node.position) + self.expansions.offset(node_id)
        item = NodeItem(node_id, node.spec.category, self.colors, node.input_ports, node.output_ports, node.is_block,
                        self.direction, pos=pos)
        item.setZValue(1)
        if self.overview_on:
            item.setFlag(NO_CONTENTS)
        self.addItem(item)  # into the scene once made: each change before that would cost Qt work
        self.nodes[node_id] = item
        if node.train:
            self._mark_train(node_id)
        self.obstacles.set(node_id, (pos.x(), pos.y(), NODE_W, NODE_H))
        return item

    def _add_edge_item(self, edge: Edge) -> None:
        src = self.nodes[edge.src].port(edge.src_port, True)
        dst = self.nodes[edge.dst].port(edge.dst_port, False)
        item = EdgeItem(edge, src, dst, self.colors, router=self._router)
        if self.overview_on:
            item.setFlag(NO_CONTENTS)
        self.addItem(item)
        self.edges[edge] = item
        self.nodes[edge.src].edges.add(item)
        self.nodes[edge.dst].edges.add(item)

    def _route(self, item: EdgeItem, a: QPointF, b: QPointF) -> list[QPointF] | None:
        if self._defer_routing:
            self._unrouted.append(item)
            return None
        pts = route_wire((a.x(), a.y()), (b.x(), b.y()), self.obstacles, item.edge.src, item.edge.dst, self.direction)
        return [QPointF(x, y) for x, y in pts] if pts else None

    def _route_some(self) -> None:
        """Route deferred wires for up to ``ROUTE_SLICE_S`` and hand the event loop back."""
        end = time.perf_counter() + ROUTE_SLICE_S
        while self._unrouted and time.perf_counter() < end:
            item = self._unrouted.pop()
            if item.scene() is self:  # not removed meanwhile
                item.update_path()
        if not self._unrouted:
            self._route_timer.stop()

    @property
    def routing_pending(self) -> int:
        """How many wires still wait for their route (a huge graph routes them after opening)."""
        return len(self._unrouted)

    def finish_routing(self) -> None:
        """Route every deferred wire now."""
        self._route_timer.stop()
        while self._unrouted:
            item = self._unrouted.pop()
            if item.scene() is self:
                item.update_path()

    def place(self, item: NodeItem, pos: QPointF) -> None:
        """Show a node item at ``pos`` (as given: the grid snaps what the mouse does, not the
        graph), its wires following: how the scene moves a node, and how other code should."""
        if item.pos() != pos:
            item.setPos(pos)
            self.node_moved(item)

    def node_moved(self, item: NodeItem) -> None:
        """A node item moved: keep the routing index current, then route its wires again."""
        if self.nodes.get(item.node_id) is item:
            self.obstacles.set(item.node_id, _box(item.scene_body_rect()))
            self.overview.invalidate()
        for e in item.edges:
            e.update_path()

    def _on_graph_event(self, ev: GraphEvent) -> None:
        if ev.kind == "node_added":
            item = self._add_node_item(ev.node)  # type: ignore[arg-type]
            self._touched.append(item.scene_body_rect())
        elif ev.kind == "node_removed":
            item = self.nodes.pop(ev.node)  # type: ignore[arg-type]
            self._touched.append(item.scene_body_rect())
            self.obstacles.remove(ev.node)
            self.expansions.forget(ev.node)  # type: ignore[arg-type]
            self.highlighted.pop(ev.node, None)  # type: ignore[arg-type]
            self.removeItem(item)
        elif ev.kind == "edge_added":
            self._add_edge_item(ev.edge)  # type: ignore[arg-type]
        elif ev.kind == "edge_removed":
            item = self.edges.pop(ev.edge)  # type: ignore[arg-type]
            self._selected_edges.discard(item)
            for end in (ev.edge.src, ev.edge.dst):  # type: ignore[union-attr]
                if end in self.nodes:
                    self.nodes[end].edges.discard(item)
            self.removeItem(item)
        elif ev.kind == "moved":
            item = self.nodes[ev.node]  # type: ignore[index]
            pos = QPointF(*self.doc.graph.nodes[ev.node].position) + self.expansions.offset(ev.node)  # type: ignore
            self._moved.add(ev.node)  # type: ignore[arg-type]
            if item.pos() != pos:
                self._touched.append(item.scene_body_rect())
                self.place(item, pos)  # the graph's position as it is (the grid snaps the mouse, not the model)
                self._touched.append(item.scene_body_rect())
        elif ev.kind == "train_changed":
            self._mark_train(ev.node)  # type: ignore[arg-type]
        elif ev.kind in ("params_changed", "definition_changed"):  # a block's ports follow its definition
            node = self.doc.graph.nodes[ev.node]  # type: ignore[index]
            self.nodes[node.id].set_ports(node.input_ports, node.output_ports)
            if self.expansions.is_expanded(node.id):
                self.expansions.rebuild(node.id)
                self._moved.add(node.id)
        self.overview.invalidate()

    def _mark_train(self, node_id: str) -> None:
        from workbench.node_training import flag

        train = self.doc.graph.nodes[node_id].train
        self.nodes[node_id].set_train(bool(flag(train, "frozen")), float(flag(train, "lr_scale")), flag(train, "role"))

    def refresh(self, node_ids: set[str] | None = None) -> None:
        """Update annotations (text, shapes, error colours) of the given nodes and their wires."""
        g, si = self.doc.graph, self.doc.shapes
        ids = set(g.nodes) if node_ids is None else {n for n in node_ids if n in g.nodes}
        # a renamed node changes only its own title; refresh every node cheaply when asked for all
        for nid in ids | {n for n in g.nodes if self.nodes[n].title != g.nodes[n].name}:
            info, item = si.info(nid), self.nodes[nid]
            item.set_info(*describe(g, si, nid))
            for e in g.edges_into(nid):
                edge_item = self.edges.get(e)
                if edge_item is None:
                    continue
                shape = si.info(e.src).outputs.get(e.src_port)
                text = fmt_shape(shape) if shape is not None else "unknown shape"
                err = info.status == "error" and info.error is not None
                edge_item.set_error(err, f"{text}<br>{info.error}" if err else text)
        if ids:
            self.overview.invalidate()

    def _settle(self, _ids: object = None) -> None:
        """After a change: judge the flow again when most nodes moved at once, make room for
        expanded blocks, and route again the wires near nodes that came, went or moved."""
        moved, touched = self._moved, self._touched
        self._moved, self._touched = set(), []
        if len(moved) >= 2 and len(moved) * 2 >= len(self.nodes):
            direction = flow_direction(self.doc.graph, NODE_SIZE)
            if direction != self.direction:
                self.set_direction(direction)
                return
        if self.expansions and moved:
            self.relayout()
            return
        self.reroute_near(touched)

    def reroute_near(self, rects: list[QRectF]) -> None:
        """Route again the wires passing near these places (a node arrived there, or left)."""
        seen: set[EdgeItem] = set()
        for r in rects:
            for item in self.items(r.adjusted(-REROUTE_REACH, -REROUTE_REACH, REROUTE_REACH, REROUTE_REACH)):
                if isinstance(item, EdgeItem) and item.parentItem() is None and item not in seen:
                    seen.add(item)
                    item.update_path()
        if seen:
            self.overview.invalidate()

    def all_edge_items(self) -> Iterator[EdgeItem]:
        """Every wire on the canvas: the graph's, and those inside expanded blocks."""
        yield from self.edges.values()
        yield from self.expansions.inner_edges()

    # ------------------------------------------------------------------ direction, expansion
    def set_direction(self, direction: str) -> None:
        """Put every node's ports on the sides of a top-to-bottom or left-to-right flow."""
        self.direction = direction
        for nid in list(self.expansions.frames):
            self.expansions.collapse(nid)  # their insides are laid out along the flow
            self.expansions.expand(nid)
        for item in self.nodes.values():
            item.set_direction(direction)
        self.relayout()

    def relayout(self) -> None:
        """Show every node at its position plus its offset (room for expanded blocks), and route
        every wire again."""
        g = self.doc.graph
        for nid, item in self.nodes.items():
            pos = QPointF(*g.nodes[nid].position) + self.expansions.offset(nid)
            if item.pos() != pos:
                item.setPos(pos)
                self.obstacles.set(nid, _box(item.scene_body_rect()))
        for e in self.edges.values():
            e.update_path()
        self.overview.invalidate()
        self.update()

    def toggle_expanded(self, node_id: str) -> bool:
        """Expand a block node in place, or collapse it; returns whether it is now expanded."""
        self.set_expanded(node_id, not self.expansions.is_expanded(node_id))
        return self.expansions.is_expanded(node_id)

    def set_expanded(self, node_id: str, expanded: bool) -> None:
        changed = self.expansions.expand(node_id) if expanded else self.expansions.collapse(node_id)
        if changed:
            item = self.nodes[node_id]
            self.obstacles.set(node_id, _box(item.scene_body_rect()))
            self.relayout()
            self.expandedChanged.emit(node_id, expanded)

    def model_point(self, pos: QPointF) -> QPointF:
        """A scene point as a graph position (they differ below expanded blocks)."""
        return self.expansions.to_model(pos)

    # ------------------------------------------------------------------ reading aids
    def set_overview(self, on: bool) -> None:
        """Draw the graph as simple shapes in a few calls (far out), or item by item."""
        if on != self.overview_on:
            self.overview_on = on
            for item in self.drawn_items():
                item.setFlag(NO_CONTENTS, on)  # a flag, not the opacity: the Compare view dims with that
            self.update()

    def drawn_items(self) -> Iterator[QGraphicsItem]:
        """The items that draw the graph (those inside expanded blocks too)."""
        yield from self.nodes.values()
        yield from self.edges.values()
        yield from self.expansions.items()

    def node_at(self, pos: QPointF) -> NodeItem | None:
        """The node whose box holds ``pos``, from the scene's own index (it works far out too)."""
        for nid in self.obstacles.query(pos.x(), pos.y(), pos.x() + 1e-3, pos.y() + 1e-3):
            return self.nodes.get(nid)  # type: ignore[arg-type]
        return None

    def select_in(self, rect: QRectF, add: bool = False) -> None:
        """Select the nodes whose boxes meet ``rect`` (the rubber band, far out)."""
        if not add:
            self.clearSelection()
        for nid in self.obstacles.query(rect.left(), rect.top(), rect.right(), rect.bottom()):
            self.nodes[nid].setSelected(True)  # type: ignore[index]

    def set_highlights(self, marks: dict[str, str]) -> None:
        """Mark nodes found by a search (id -> "match" | "current"); the others lose their mark."""
        for nid in set(self.highlighted) - set(marks):
            if nid in self.nodes:
                self.nodes[nid].set_highlight(None)
        for nid, kind in marks.items():
            if nid in self.nodes:
                self.nodes[nid].set_highlight(kind)
        self.highlighted = {n: k for n, k in marks.items() if n in self.nodes}
        if self.overview_on:
            self.update()

    def _selection_changed(self) -> None:
        # Qt reports each node of a select-all apart: look once the event loop is back
        if not self._selection_pending:
            self._selection_pending = True
            QTimer.singleShot(0, self._repaint_selected_edges)

    def _repaint_selected_edges(self) -> None:
        self._selection_pending = False
        try:
            now = {i for i in self.selectedItems() if isinstance(i, EdgeItem)}
        except RuntimeError:  # the scene was deleted meanwhile
            return
        for e in now ^ self._selected_edges:
            e.refresh_pen()
        self._selected_edges = now
        if self.overview_on:
            self.update()

    def helpEvent(self, event: QGraphicsSceneHelpEvent) -> None:
        """Tooltips are made when asked for (a port's, else the top item's): storing one in Qt
        for each of 10,000 nodes and wires costs more than opening the graph."""
        pos = event.scenePos()
        port = self.port_at(pos)
        text = port.toolTip() if port is not None else ""
        if not text and self.overview_on:
            node = self.node_at(pos)
            text = node.toolTip() if node is not None else ""
        if not text:
            for item in self.items(pos, Qt.ItemSelectionMode.IntersectsItemShape, Qt.SortOrder.DescendingOrder,
                                   QTransform()):
                text = item.toolTip()
                if text:
                    break
        if text:
            QToolTip.showText(event.screenPos(), text, event.widget())
        else:
            QToolTip.hideText()
        event.setAccepted(bool(text))

    # ------------------------------------------------------------------ helpers
    def snap(self, pos: QPointF) -> QPointF:
        if not self.snap_to_grid:
            return pos
        return QPointF(round(pos.x() / GRID) * GRID, round(pos.y() / GRID) * GRID)

    def selected_node_ids(self) -> list[str]:
        return [i.node_id for i in self.selectedItems() if isinstance(i, NodeItem) and i.interactive]

    def selected_edges(self) -> list[Edge]:
        return [i.edge for i in self.selectedItems() if isinstance(i, EdgeItem)]

    def select_nodes(self, ids: list[str]) -> None:
        self.clearSelection()
        for nid in ids:
            if nid in self.nodes:
                self.nodes[nid].setSelected(True)

    def port_at(self, pos: QPointF) -> PortItem | None:
        box = QRectF(pos.x() - PORT_HIT, pos.y() - PORT_HIT, 2 * PORT_HIT, 2 * PORT_HIT)
        for item in self.items(box, Qt.ItemSelectionMode.IntersectsItemBoundingRect, Qt.SortOrder.DescendingOrder,
                               QTransform()):
            if isinstance(item, NodeItem) and item.interactive:
                port = item.port_at(pos)
                if port is not None:
                    return port
        return None

    def nodes_rect(self) -> QRectF:
        """The box round every node (with room for ports and their names)."""
        b = self.obstacles.bounds()
        if b is None:
            return QRectF()
        return QRectF(*b).adjusted(-12, -14, 12, 14)

    # ------------------------------------------------------------------ gestures
    def mousePressEvent(self, event: QGraphicsSceneMouseEvent) -> None:
        if event.button() == Qt.MouseButton.LeftButton:
            if self.overview_on and self._far_pick(event):
                return
            port = self.port_at(event.scenePos())
            if port is not None:  # a wire gesture (ui.canvas.wiring): new, replacing, or picked up
                self._drag = WireDrag(self, port, event.scenePos())
                event.accept()
                return
        super().mousePressEvent(event)
        self._press_positions = {nid: self.nodes[nid].pos() for nid in self.selected_node_ids()}

    def _far_pick(self, event: QGraphicsSceneMouseEvent) -> bool:
        """Far out the items do not paint, so Qt does not hit them: select and start a drag here."""
        item = self.node_at(event.scenePos())
        if item is None:
            return False
        if event.modifiers() & Qt.KeyboardModifier.ControlModifier:
            item.setSelected(not item.isSelected())
        elif not item.isSelected():
            self.clearSelection()
            item.setSelected(True)
        self._press_positions = {nid: self.nodes[nid].pos() for nid in self.selected_node_ids()}
        self._far_press = event.scenePos()
        event.accept()
        return True

    def mouseMoveEvent(self, event: QGraphicsSceneMouseEvent) -> None:
        if self._drag is not None:
            self._drag.move(event.scenePos())
            event.accept()
            return
        if self._far_press is not None:
            delta = event.scenePos() - self._far_press
            for nid, old in self._press_positions.items():
                if nid in self.nodes:
                    self.place(self.nodes[nid], self.snap(old + delta))
            event.accept()
            return
        super().mouseMoveEvent(event)
        if self._press_positions and event.buttons() & Qt.MouseButton.LeftButton:
            # Qt moved the selected nodes with the mouse: onto the grid, their wires following
            for nid, old in self._press_positions.items():
                item = self.nodes.get(nid)
                if item is not None and item.pos() != old:
                    item.setPos(self.snap(item.pos()))
                    self.node_moved(item)

    def mouseReleaseEvent(self, event: QGraphicsSceneMouseEvent) -> None:
        if self._drag is not None:
            drag, self._drag = self._drag, None
            drag.finish(event.scenePos())
            event.accept()
            return
        if self._far_press is not None:
            self._far_press = None
            event.accept()
        else:
            super().mouseReleaseEvent(event)
        moves = {}
        g = self.doc.graph
        for nid, old in self._press_positions.items():
            if nid in self.nodes and self.nodes[nid].pos() != old:
                # shown positions may carry room made for expanded blocks: move by what the mouse did
                delta = self.nodes[nid].pos() - old
                x, y = g.nodes[nid].position
                moves[nid] = ((x, y), (x + delta.x(), y + delta.y()))
                # where it left and where it came: wires passing either may be routed otherwise now
                body = self.nodes[nid].scene_body_rect()
                self._touched += [QRectF(old, body.size()), body]
        self._press_positions = {}
        if moves:  # one command per drag gesture
            self.doc.undo_stack.push(MoveNodesCommand(g, moves))

    # ------------------------------------------------------------------ background
    def drawBackground(self, painter: QPainter, rect: QRectF) -> None:
        painter.fillRect(rect, self.colors.background)
        if self.show_grid:
            self._draw_grid(painter, rect)
        if self.overview_on:
            self.overview.paint(painter, rect)

    def _draw_grid(self, painter: QPainter, rect: QRectF) -> None:
        scale = painter.worldTransform().m11()
        step = GRID if scale > 0.6 else GRID * 5
        if step * scale < 6:
            return
        left = math.floor(rect.left() / step) * step
        top = math.floor(rect.top() / step) * step
        minor, major = [], []
        x = left
        while x < rect.right():
            (major if round(x / step) % 5 == 0 else minor).append((QPointF(x, rect.top()), QPointF(x, rect.bottom())))
            x += step
        y = top
        while y < rect.bottom():
            (major if round(y / step) % 5 == 0 else minor).append((QPointF(rect.left(), y), QPointF(rect.right(), y)))
            y += step
        for lines, color in ((minor, self.colors.grid), (major, self.colors.grid_major)):
            painter.setPen(QPen(color, 0))
            for a, b in lines:
                painter.drawLine(a, b)


class _Router:
    """Routes a scene's wires, holding the scene weakly: a wire holding its scene would put the
    scene in a reference cycle, freed by the garbage collector at some random later moment, and
    Qt items torn down inside a collection crash the interpreter."""

    def __init__(self, scene: GraphScene) -> None:
        self.scene = weakref.ref(scene)

    def __call__(self, item: EdgeItem, a: QPointF, b: QPointF) -> list[QPointF] | None:
        scene = self.scene()
        return scene._route(item, a, b) if scene is not None else None


def _box(r: QRectF) -> tuple[float, float, float, float]:
    return (r.x(), r.y(), r.width(), r.height())


#: short labels for key parameters on the node face (the tooltip and inspector say it in full)
_SHORT = {
    "out_channels": "out", "out_features": "out", "kernel_size": "k", "hidden_size": "hidden",
    "num_layers": "layers", "num_heads": "heads", "nhead": "heads", "dim_feedforward": "ff",
    "embedding_dim": "dim", "num_embeddings": "vocab", "scale_factor": "x", "output_size": "size",
    "negative_slope": "slope", "num_inputs": "inputs",
}


def _fmt_value(v: Any) -> str:
    if isinstance(v, (tuple, list)):
        if len(set(v)) == 1 and len(v) == 2:
            return str(v[0])
        return "x".join(str(i) for i in v)
    if isinstance(v, float):
        return f"{v:g}"
    return str(v)


def node_center(item: QGraphicsItem) -> QPointF:
    return item.pos() + QPointF(NODE_W / 2, NODE_H / 2)
