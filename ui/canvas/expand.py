"""Blocks expanded in place: a block node grows into a frame that shows its inside, and the
nodes beyond it make room.

The inside is drawn read-only (double-click one of its nodes to edit the block itself) with
the values of this instance (exposed parameters applied) and the shapes its inputs give it.
Expanding is a way of looking, not an edit: positions in the graph do not change.  The scene
shows every node at its position plus an *offset*: the extra size of each expanded block
above it (a top-to-bottom graph; to its left for left-to-right) or beside it in its row.
"""

from __future__ import annotations

import math
import weakref
from typing import TYPE_CHECKING

from PySide6.QtCore import QPointF, QRectF, Qt
from PySide6.QtGui import QPen
from PySide6.QtWidgets import QGraphicsItem, QGraphicsPathItem

from workbench.errors import WorkbenchError
from workbench.graph import Graph
from workbench.layout import auto_layout, flow_direction
from workbench.routing import ObstacleIndex, route_wire
from workbench.shapes import ShapeInference

from .items import NODE_H, NODE_W, EdgeItem, NodeItem, route_path, wire_path

if TYPE_CHECKING:
    from .scene import GraphScene

PAD = 24.0
"""Room round the inside, for the wires routed beside it."""
GAP = 44.0
"""Between the block's own box and the inside, and between the inside and the frame's far edge:
room for the wires joining the block's ports to its Input and Output nodes."""
HEADER = "__header__"


class Frame:
    """One expanded block: the items of its inside (children of the block's node item, so they
    move with it) and the frame's size."""

    def __init__(self, node_id: str) -> None:
        self.node_id = node_id
        self.nodes: dict[str, NodeItem] = {}
        self.edges: list[EdgeItem] = []
        self.connectors: list[QGraphicsPathItem] = []
        self.index = ObstacleIndex(cell=128.0)
        self.size = (NODE_W, NODE_H)

    @property
    def extra(self) -> tuple[float, float]:
        return self.size[0] - NODE_W, self.size[1] - NODE_H


class Expansions:
    """The expanded blocks of a scene."""

    def __init__(self, scene: GraphScene) -> None:
        self._scene = weakref.ref(scene)  # not a cycle through the scene: it must die by refcount
        self.frames: dict[str, Frame] = {}

    @property
    def scene(self) -> GraphScene:
        scene = self._scene()
        assert scene is not None, "the scene is gone"
        return scene

    def __bool__(self) -> bool:
        return bool(self.frames)

    def is_expanded(self, node_id: str) -> bool:
        return node_id in self.frames

    def inner_nodes(self, node_id: str) -> list[NodeItem]:
        f = self.frames.get(node_id)
        return list(f.nodes.values()) if f is not None else []

    def inner_edges(self) -> list[EdgeItem]:
        return [e for f in self.frames.values() for e in f.edges]

    def items(self) -> list[QGraphicsItem]:
        """Every item drawing the insides."""
        return [it for f in self.frames.values() for it in (*f.nodes.values(), *f.edges, *f.connectors)]

    def frame(self, node_id: str) -> Frame | None:
        return self.frames.get(node_id)

    # ------------------------------------------------------------------ expand / collapse
    def expand(self, node_id: str) -> bool:
        """Show the block's inside in place; False if the node is not a block (or is already open)."""
        item = self.scene.nodes.get(node_id)
        if node_id in self.frames or item is None or not item.is_block:
            return False
        frame = self._build(node_id, item)
        if frame is None:
            return False
        self.frames[node_id] = frame
        item.set_frame(frame.size)
        return True

    def collapse(self, node_id: str) -> bool:
        frame = self.frames.pop(node_id, None)
        if frame is None:
            return False
        self._discard(frame)
        item = self.scene.nodes.get(node_id)
        if item is not None:
            item.set_frame(None)
        return True

    def rebuild(self, node_id: str) -> None:
        """The block's values or definition changed: draw its inside again."""
        if node_id in self.frames:
            self.collapse(node_id)
            self.expand(node_id)

    def forget(self, node_id: str) -> None:
        """The node is gone (its child items went with it)."""
        self.frames.pop(node_id, None)

    def _discard(self, frame: Frame) -> None:
        scene = self.scene
        for it in [*frame.edges, *frame.connectors, *frame.nodes.values()]:
            if it.scene() is scene:
                scene.removeItem(it)
        frame.edges.clear()
        frame.connectors.clear()
        frame.nodes.clear()

    # ------------------------------------------------------------------ offsets
    def offset(self, node_id: str) -> QPointF:
        """How far the node is shown from its position, to make room for expanded blocks."""
        if not self.frames:
            return QPointF()
        g = self.scene.doc.graph
        x, y = g.nodes[node_id].position
        lr = self.scene.direction == "LR"
        dx = dy = 0.0
        for bid, f in self.frames.items():
            if bid == node_id or bid not in g.nodes:
                continue
            bx, by = g.nodes[bid].position
            ex, ey = f.extra
            if lr:
                if x >= bx + NODE_W:
                    dx += ex
                elif x + NODE_W > bx and y >= by + NODE_H:
                    dy += ey
            elif y >= by + NODE_H:
                dy += ey
            elif y + NODE_H > by and x >= bx + NODE_W:
                dx += ex
        return QPointF(dx, dy)

    def to_model(self, pos: QPointF) -> QPointF:
        """A scene point (where something is dropped) as a graph position: the inverse of the
        offsets for a node whose corner would be there."""
        if not self.frames:
            return pos
        g = self.scene.doc.graph
        lr = self.scene.direction == "LR"
        x, y = pos.x(), pos.y()
        for bid, f in self.frames.items():
            if bid not in g.nodes:
                continue
            shown = self.scene.nodes[bid].pos()
            ex, ey = f.extra
            if lr and x >= shown.x() + f.size[0]:
                x -= ex
            elif not lr and y >= shown.y() + f.size[1]:
                y -= ey
        return QPointF(x, y)

    # ------------------------------------------------------------------ building the inside
    def _build(self, node_id: str, item: NodeItem) -> Frame | None:
        from .scene import describe

        scene = self.scene
        g = scene.doc.graph
        node = g.nodes[node_id]
        defs = getattr(g.library, "defs", {})
        block = defs.get(node.type)
        if block is None:
            return None
        try:
            inner = block.instance_graph(node.params)
        except WorkbenchError:
            inner = block.graph.copy()
        info = scene.doc.shapes.info(node_id)
        shapes = [info.inputs.get(p) for p in node.input_ports]
        bound = {n.id: tuple(s) for n, s in zip(inner.inputs(), shapes, strict=False) if s is not None}
        si = ShapeInference(inner, live=False, bound_inputs=bound)
        si.update()
        direction = scene.direction
        pos = {n.id: n.position for n in inner}
        if len(inner) > 1 and flow_direction(inner) != direction:
            pos = auto_layout(inner, direction)
        if not pos:
            return None
        x0, y0 = min(p[0] for p in pos.values()), min(p[1] for p in pos.values())
        inner_w = max(p[0] for p in pos.values()) - x0 + NODE_W
        inner_h = max(p[1] for p in pos.values()) - y0 + NODE_H
        lr = direction == "LR"
        origin = QPointF(NODE_W + GAP, PAD) if lr else QPointF(PAD, NODE_H + GAP)
        frame = Frame(node_id)
        frame.index.set(HEADER, (0.0, 0.0, NODE_W, NODE_H))
        for n in inner:
            at = origin + QPointF(pos[n.id][0] - x0, pos[n.id][1] - y0)
            child = NodeItem(n.id, n.spec.category, scene.colors, n.input_ports, n.output_ports, n.is_block,
                             direction, parent=item, interactive=False, pos=at)
            child.owner_id = node_id
            child.setZValue(1)
            child.set_info(*describe(inner, si, n.id))
            frame.nodes[n.id] = child
            frame.index.set(n.id, (at.x(), at.y(), NODE_W, NODE_H))

        def route(edge: EdgeItem, a: QPointF, b: QPointF) -> list[QPointF] | None:
            pts = route_wire((a.x(), a.y()), (b.x(), b.y()), frame.index, edge.edge.src, edge.edge.dst, direction)
            return [QPointF(x, y) for x, y in pts] if pts else None

        for e in inner.edges:
            src, dst = frame.nodes[e.src].port(e.src_port, True), frame.nodes[e.dst].port(e.dst_port, False)
            edge = EdgeItem(e, src, dst, scene.colors, router=route, parent=item)
            edge.setFlag(QGraphicsItem.GraphicsItemFlag.ItemIsSelectable, False)
            src.node_item.edges.add(edge)
            dst.node_item.edges.add(edge)
            edge.set_error(False, _edge_tip(si, e))
            frame.edges.append(edge)
        # the frame holds the inside and the wires routed beside it, and leaves room for the joins
        box = QRectF(origin.x(), origin.y(), inner_w, inner_h)
        for edge in frame.edges:
            box = box.united(edge.path().boundingRect())
        w = max(NODE_W, box.right() + (GAP if lr else PAD))
        h = max(NODE_H, box.bottom() + (PAD if lr else GAP))
        frame.size = (_up(w), _up(h))
        self._connect_ports(frame, item, inner, direction)
        if scene.overview_on:  # far out: drawn by the overview, like the rest
            for it in (*frame.nodes.values(), *frame.edges, *frame.connectors):
                it.setFlag(QGraphicsItem.GraphicsItemFlag.ItemHasNoContents)
        return frame

    def _connect_ports(self, frame: Frame, item: NodeItem, inner: Graph, direction: str) -> None:
        """Dashed joins from the block's own box to its Input nodes, and from its Output nodes to
        the frame's output ports (where the wires out of the block leave)."""
        lr = direction == "LR"
        w, h = frame.size
        joins: list[tuple[QPointF, QPointF, str]] = []
        for port, n in zip(item.inputs.values(), inner.inputs(), strict=False):
            child = frame.nodes[n.id]
            start = QPointF(NODE_W, port.pos().y()) if lr else QPointF(port.pos().x(), NODE_H)
            end = child.pos() + (QPointF(0, NODE_H / 2) if lr else QPointF(NODE_W / 2, 0))
            joins.append((start, end, n.id))
        for k, n in enumerate(inner.outputs()):
            child = frame.nodes[n.id]
            t = (k + 1) / (len(inner.outputs()) + 1)
            start = child.pos() + (QPointF(NODE_W, NODE_H / 2) if lr else QPointF(NODE_W / 2, NODE_H))
            end = QPointF(w, NODE_H * t) if lr else QPointF(NODE_W * t, h)
            joins.append((start, end, n.id))
        dash = QPen(item.accent, 1.4, Qt.PenStyle.DashLine)
        for start, end, inner_id in joins:
            ends = (HEADER, inner_id) if inner_id in {n.id for n in inner.inputs()} else (inner_id, None)
            pts = route_wire((start.x(), start.y()), (end.x(), end.y()), frame.index, ends[0], ends[1], direction)
            path = route_path([QPointF(x, y) for x, y in pts]) if pts else wire_path(start, end, direction)
            join = QGraphicsPathItem(path, item)
            join.setPen(dash)
            join.setZValue(0)
            frame.connectors.append(join)


def _up(v: float, step: float = 20.0) -> float:
    """Rounded up to the grid: offsets made of whole grid steps keep moved nodes on the grid."""
    return math.ceil(v / step) * step


def _edge_tip(si: ShapeInference, e: object) -> str:
    from workbench.layers.dims import fmt_shape

    shape = si.info(e.src).outputs.get(e.src_port)  # type: ignore[attr-defined]
    return fmt_shape(shape) if shape is not None else "unknown shape"

