"""The scene mirrors the document's graph: items are created, removed and
annotated from graph events and shape inference; user gestures become commands."""

from __future__ import annotations

import math
from typing import Any

import networkx as nx
from PySide6.QtCore import QPointF, QRectF, Qt, Signal
from PySide6.QtGui import QPainter, QPen, QTransform
from PySide6.QtWidgets import QGraphicsItem, QGraphicsScene, QGraphicsSceneMouseEvent

from workbench.graph import Edge, GraphEvent
from workbench.layers.dims import fmt_shape

from ..commands import ConnectCommand, MoveNodesCommand
from ..document import Document
from ..style import canvas_colors
from .items import NODE_H, NODE_W, EdgeItem, NodeItem, PortItem, WireItem, wire_path

GRID = 20.0


def format_count(n: int) -> str:
    if n >= 1_000_000:
        return f"{n / 1e6:.2f}M"
    if n >= 10_000:
        return f"{n / 1e3:.1f}k"
    return f"{n:,}" if n else "0"


class GraphScene(QGraphicsScene):
    """Signals:
    message(str): a status-bar message (e.g. why a connection was refused).
    renameRequested(str): the user asked to rename a node (double-click).
    openRequested(str): the user asked to open a block node (double-click on it).
    """

    message = Signal(str)
    renameRequested = Signal(str)
    openRequested = Signal(str)

    def __init__(self, document: Document, parent: Any = None) -> None:
        super().__init__(parent)
        self.doc = document
        self.colors = canvas_colors()
        self.nodes: dict[str, NodeItem] = {}
        self.edges: dict[Edge, EdgeItem] = {}
        self.snap_to_grid = True
        self.show_grid = True
        self._wire: WireItem | None = None
        self._wire_from: PortItem | None = None
        self._press_positions: dict[str, QPointF] = {}
        self.setItemIndexMethod(QGraphicsScene.ItemIndexMethod.BspTreeIndex)
        for node in self.doc.graph:
            self._add_node_item(node.id)
        for edge in self.doc.graph.edges:
            self._add_edge_item(edge)
        self.graph = self.doc.graph  # the graph this scene mirrors (the document may show another later)
        self.graph.subscribe(self._on_graph_event)
        self.doc.changed.connect(self.refresh)
        self.refresh(set(self.doc.graph.nodes))

    def detach(self) -> None:
        """Stop following the document (before the scene is discarded)."""
        self.graph.unsubscribe(self._on_graph_event)
        self.doc.changed.disconnect(self.refresh)

    # ------------------------------------------------------------------ mirroring
    def _add_node_item(self, node_id: str) -> NodeItem:
        node = self.doc.graph.nodes[node_id]
        item = NodeItem(node_id, node.spec.category, self.colors, node.input_ports, node.output_ports, node.is_block)
        item.setPos(QPointF(*node.position))
        self.addItem(item)
        self.nodes[node_id] = item
        return item

    def _add_edge_item(self, edge: Edge) -> None:
        src = self.nodes[edge.src].port(edge.src_port, True)
        dst = self.nodes[edge.dst].port(edge.dst_port, False)
        item = EdgeItem(edge, src, dst, self.colors)
        self.addItem(item)
        self.edges[edge] = item
        self.nodes[edge.src].edges.add(item)
        self.nodes[edge.dst].edges.add(item)

    def _on_graph_event(self, ev: GraphEvent) -> None:
        if ev.kind == "node_added":
            self._add_node_item(ev.node)  # type: ignore[arg-type]
        elif ev.kind == "node_removed":
            item = self.nodes.pop(ev.node)  # type: ignore[arg-type]
            self.removeItem(item)
        elif ev.kind == "edge_added":
            self._add_edge_item(ev.edge)  # type: ignore[arg-type]
        elif ev.kind == "edge_removed":
            item = self.edges.pop(ev.edge)  # type: ignore[arg-type]
            for end in (ev.edge.src, ev.edge.dst):  # type: ignore[union-attr]
                if end in self.nodes:
                    self.nodes[end].edges.discard(item)
            self.removeItem(item)
        elif ev.kind == "moved":
            item = self.nodes[ev.node]  # type: ignore[index]
            pos = QPointF(*self.doc.graph.nodes[ev.node].position)  # type: ignore[index]
            if item.pos() != pos:
                item.setPos(pos)
        elif ev.kind in ("params_changed", "definition_changed"):  # a block's ports follow its definition
            node = self.doc.graph.nodes[ev.node]  # type: ignore[index]
            self.nodes[node.id].set_ports(node.input_ports, node.output_ports)

    def refresh(self, node_ids: set[str] | None = None) -> None:
        """Update annotations (text, shapes, error colours) of the given nodes and their wires."""
        g, si = self.doc.graph, self.doc.shapes
        ids = set(g.nodes) if node_ids is None else {n for n in node_ids if n in g.nodes}
        # a renamed node changes only its own title; refresh every node cheaply when asked for all
        for nid in ids | {n for n in g.nodes if self.nodes[n].title != g.nodes[n].name}:
            node, info, item = g.nodes[nid], si.info(nid), self.nodes[nid]
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
                tooltip += "<br><i>Double-click to open the block.</i>"
            if info.error:
                tooltip += f"<br><span style='color:#d32f2f'>{info.error}</span>"
            item.set_info(node.name, subtitle, shape_text, format_count(info.params) if info.params else "",
                          info.status, tooltip)
            for e in g.edges_into(nid):
                edge_item = self.edges.get(e)
                if edge_item is None:
                    continue
                src_info = si.info(e.src)
                shape = src_info.outputs.get(e.src_port)
                text = fmt_shape(shape) if shape is not None else "unknown shape"
                err = info.status == "error" and info.error is not None
                edge_item.set_error(err, f"{text}<br>{info.error}" if err else text)

    # ------------------------------------------------------------------ helpers
    def snap(self, pos: QPointF) -> QPointF:
        if not self.snap_to_grid:
            return pos
        return QPointF(round(pos.x() / GRID) * GRID, round(pos.y() / GRID) * GRID)

    def selected_node_ids(self) -> list[str]:
        return [i.node_id for i in self.selectedItems() if isinstance(i, NodeItem)]

    def selected_edges(self) -> list[Edge]:
        return [i.edge for i in self.selectedItems() if isinstance(i, EdgeItem)]

    def select_nodes(self, ids: list[str]) -> None:
        self.clearSelection()
        for nid in ids:
            if nid in self.nodes:
                self.nodes[nid].setSelected(True)

    def port_at(self, pos: QPointF) -> PortItem | None:
        for item in self.items(pos, Qt.ItemSelectionMode.IntersectsItemShape, Qt.SortOrder.DescendingOrder,
                               QTransform()):
            if isinstance(item, PortItem):
                return item
        return None

    def nodes_rect(self) -> QRectF:
        rect = QRectF()
        for item in self.nodes.values():
            rect = rect.united(item.sceneBoundingRect())
        return rect

    # ------------------------------------------------------------------ gestures
    def mousePressEvent(self, event: QGraphicsSceneMouseEvent) -> None:
        if event.button() == Qt.MouseButton.LeftButton:
            port = self.port_at(event.scenePos())
            if port is not None:
                self._start_wire(port)
                event.accept()
                return
        super().mousePressEvent(event)
        self._press_positions = {nid: self.nodes[nid].pos() for nid in self.selected_node_ids()}

    def mouseMoveEvent(self, event: QGraphicsSceneMouseEvent) -> None:
        if self._wire is not None and self._wire_from is not None:
            a, b = self._wire_from.scene_anchor(), event.scenePos()
            self._wire.setPath(wire_path(a, b) if self._wire_from.is_output else wire_path(b, a))
            event.accept()
            return
        super().mouseMoveEvent(event)

    def mouseReleaseEvent(self, event: QGraphicsSceneMouseEvent) -> None:
        if self._wire is not None:
            self._finish_wire(self.port_at(event.scenePos()))
            event.accept()
            return
        super().mouseReleaseEvent(event)
        moves = {}
        for nid, old in self._press_positions.items():
            if nid in self.nodes and self.nodes[nid].pos() != old:
                new = self.nodes[nid].pos()
                moves[nid] = ((old.x(), old.y()), (new.x(), new.y()))
        self._press_positions = {}
        if moves:  # one command per drag gesture
            self.doc.undo_stack.push(MoveNodesCommand(self.doc.graph, moves))

    def _start_wire(self, port: PortItem) -> None:
        self._wire_from = port
        self._wire = WireItem(self.colors)
        self.addItem(self._wire)
        g = self.doc.graph
        # Which ports would accept this wire? One reachability query, not one per port.
        if port.is_output:
            blocked = nx.ancestors(g._nx, port.node_id) | {port.node_id}
            for nid, item in self.nodes.items():
                for name, p in item.inputs.items():
                    ok = nid not in blocked and g.edge_into(nid, name) is None
                    p.set_state("ok" if ok else "bad")
        else:
            blocked = nx.descendants(g._nx, port.node_id) | {port.node_id}
            free = g.edge_into(port.node_id, port.name) is None
            for nid, item in self.nodes.items():
                for p in item.outputs.values():
                    p.set_state("ok" if free and nid not in blocked else "bad")

    def _finish_wire(self, target: PortItem | None) -> None:
        src = self._wire_from
        assert src is not None
        self.removeItem(self._wire)
        self._wire, self._wire_from = None, None
        for item in self.nodes.values():
            for p in (*item.inputs.values(), *item.outputs.values()):
                p.set_state("normal")
        if target is None or target is src:
            return
        if target.is_output == src.is_output:
            self.message.emit(f"Cannot connect two {'outputs' if src.is_output else 'inputs'}: "
                              "drag from an output port to an input port")
            return
        out, inp = (src, target) if src.is_output else (target, src)
        g = self.doc.graph
        reason = g.can_connect(out.node_id, out.name, inp.node_id, inp.name)
        if reason:
            self.message.emit(f"Connection refused: {reason}")
            return
        self.doc.undo_stack.push(ConnectCommand(g, Edge(out.node_id, out.name, inp.node_id, inp.name)))
        self.message.emit(f"Connected {g.nodes[out.node_id].name} to {g.nodes[inp.node_id].name}")

    # ------------------------------------------------------------------ background
    def drawBackground(self, painter: QPainter, rect: QRectF) -> None:
        painter.fillRect(rect, self.colors.background)
        if not self.show_grid:
            return
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
