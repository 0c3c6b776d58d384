"""The wire gesture: press on a port, drag, release on another port.

From an output (or a free input) it draws a new wire; on a taken input it replaces the
wire there.  Pressed on an input that already has a wire, it picks up that wire's input end:
released on another input the wire is re-routed there, on empty canvas it is disconnected,
back where it was (a click) nothing changes.  Each outcome is one undo step.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import networkx as nx
from PySide6.QtCore import QPointF, Qt
from PySide6.QtGui import QTransform
from PySide6.QtWidgets import QApplication

from workbench.graph import Edge, Graph

from ..commands import ConnectCommand, RewireCommand
from .items import NodeItem, PortItem, WireItem, wire_path

if TYPE_CHECKING:
    from .scene import GraphScene

PICKED_OPACITY = 0.25
"""A wire whose end is being dragged stays faintly where it was, so the user sees what moves."""


def cycle_reason(g: Graph, src: str, dst: str) -> str | None:
    """Why a wire from ``src`` to ``dst`` would close a cycle (whatever is on the input now)."""
    if src == dst or src in g.descendants(dst):
        return f'connecting "{g.nodes[src].name}" to "{g.nodes[dst].name}" would create a cycle'
    return None


class WireDrag:
    """One wire gesture on a scene, from the press to the release."""

    def __init__(self, scene: GraphScene, port: PortItem, press: QPointF) -> None:
        self.scene = scene
        self.press = press
        self.moved = False
        g = scene.doc.graph
        self.picked: Edge | None = None if port.is_output else g.edge_into(port.node_id, port.name)
        if self.picked is not None:  # the wire's input end comes off: it now hangs from its source
            self.anchor = scene.nodes[self.picked.src].port(self.picked.src_port, True)
            scene.edges[self.picked].setOpacity(PICKED_OPACITY)
        else:
            self.anchor = port
        self.wire = WireItem(scene.colors)
        scene.addItem(self.wire)
        self._mark_targets(g)

    def _mark_targets(self, g: Graph) -> None:
        # Which ports would accept this wire? One reachability query, not one per port.
        anchor = self.anchor
        if anchor.is_output:  # a taken input is a target too: the new wire replaces the old one
            blocked = nx.ancestors(g._nx, anchor.node_id) | {anchor.node_id}
            for nid, item in self.scene.nodes.items():
                for p in item.inputs.values():
                    p.set_state("bad" if nid in blocked else "ok")
        else:
            blocked = g.descendants(anchor.node_id) | {anchor.node_id}
            for nid, item in self.scene.nodes.items():
                for p in item.outputs.values():
                    p.set_state("bad" if nid in blocked else "ok")

    def move(self, pos: QPointF) -> None:
        if (pos - self.press).manhattanLength() >= QApplication.startDragDistance():
            self.moved = True
        a, flow = self.anchor.scene_anchor(), self.scene.direction
        self.wire.setPath(wire_path(a, pos, flow) if self.anchor.is_output else wire_path(pos, a, flow))

    def cancel(self) -> None:
        """Take the gesture's marks off the scene."""
        scene = self.scene
        scene.removeItem(self.wire)
        for item in scene.nodes.values():
            for p in (*item.inputs.values(), *item.outputs.values()):
                p.set_state("normal")
        if self.picked is not None and self.picked in scene.edges:
            scene.edges[self.picked].setOpacity(1.0)

    def finish(self, pos: QPointF) -> None:
        """Release at ``pos``: connect, replace, re-route or disconnect (or say why not)."""
        self.cancel()
        target = self.scene.port_at(pos)
        if self.picked is not None:
            self._finish_picked(target, pos)
        elif target is not None and target is not self.anchor:
            self._finish_new(self.anchor, target)

    # ------------------------------------------------------------------ a new wire
    def _finish_new(self, src: PortItem, target: PortItem) -> None:
        scene, g = self.scene, self.scene.doc.graph
        if target.is_output == src.is_output:
            scene.message.emit(f"Cannot connect two {'outputs' if src.is_output else 'inputs'}: "
                               "drag from an output port to an input port")
            return
        out, inp = (src, target) if src.is_output else (target, src)
        new = Edge(out.node_id, out.name, inp.node_id, inp.name)
        taken = g.edge_into(inp.node_id, inp.name)
        if taken == new:
            scene.message.emit(f"{g.nodes[out.node_id].name} is already connected there")
            return
        reason = cycle_reason(g, out.node_id, inp.node_id) if taken else g.can_connect(new.src, new.src_port, new.dst, new.dst_port)
        if reason:
            scene.message.emit(f"Connection refused: {reason}")
            return
        a, b = g.nodes[out.node_id].name, g.nodes[inp.node_id].name
        if taken is None:
            scene.doc.undo_stack.push(ConnectCommand(g, new))
            scene.message.emit(f"Connected {a} to {b}")
        else:
            old = g.nodes[taken.src].name
            scene.doc.undo_stack.push(RewireCommand(g, [taken], [new], f"Connect {a} to {b} (replacing {old})"))
            scene.message.emit(f"Connected {a} to {b}; the wire from {old} is gone")

    # ------------------------------------------------------------------ a wire end picked up
    def _finish_picked(self, target: PortItem | None, pos: QPointF) -> None:
        scene, g = self.scene, self.scene.doc.graph
        picked = self.picked
        assert picked is not None
        src, was = g.nodes[picked.src].name, g.nodes[picked.dst].name
        if target is not None and not target.is_output and (target.node_id, target.name) == (picked.dst,
                                                                                             picked.dst_port):
            return  # put back where it was (or just clicked)
        if not self.moved:
            return
        if target is None:
            if any(isinstance(i, NodeItem) for i in scene.items(pos, Qt.ItemSelectionMode.IntersectsItemShape,
                                                                  Qt.SortOrder.DescendingOrder, QTransform())):
                scene.message.emit("Drop the wire's end on an input port to re-route it, or on empty canvas "
                                   "to disconnect it")
                return
            scene.doc.undo_stack.push(RewireCommand(g, [picked], [], f"Disconnect {src} from {was}"))
            scene.message.emit(f"Disconnected {src} from {was}")
            return
        if target.is_output:
            scene.message.emit("Drop the wire's end on an input port to re-route it, or on empty canvas to "
                               "disconnect it")
            return
        reason = cycle_reason(g, picked.src, target.node_id)
        if reason:
            scene.message.emit(f"Connection refused: {reason}")
            return
        new = Edge(picked.src, picked.src_port, target.node_id, target.name)
        taken = g.edge_into(target.node_id, target.name)
        to = g.nodes[target.node_id].name
        text = f"Reconnect {src} from {was} to {to}"
        remove = [picked]
        if taken is not None:
            remove.append(taken)
            text += f" (replacing {g.nodes[taken.src].name})"
        scene.doc.undo_stack.push(RewireCommand(g, remove, [new], text))
        scene.message.emit(text)
