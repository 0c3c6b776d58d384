"""Undoable edits.  Each command calls only the graph's public mutators.

Commands are validated before they are pushed (``Document.graph.can_connect``,
``validate_params``...), so ``redo`` does not fail; if the graph refuses anyway
the error propagates and the stack stays consistent because nothing applied.
"""

from __future__ import annotations

from typing import Any

from PySide6.QtGui import QUndoCommand

from workbench.graph import Edge, Graph
from workbench.layers import REGISTRY


def _node_record(graph: Graph, node_id: str) -> dict[str, Any]:
    n = graph.nodes[node_id]
    return {"id": n.id, "type": n.type, "name": n.name, "params": dict(n.params), "position": n.position,
            "index": graph.index_of(node_id)}


def _restore(graph: Graph, records: list[dict[str, Any]], edges: list[Edge]) -> None:
    for r in sorted(records, key=lambda r: r["index"]):  # back where they were in the node order
        graph.add_node(r["type"], r["params"], r["name"], r["position"], node_id=r["id"], index=r["index"])
    for e in edges:
        if graph.edge_into(e.dst, e.dst_port) != e:
            graph.connect(e.src, e.src_port, e.dst, e.dst_port)


class AddNodeCommand(QUndoCommand):
    """Add one node; remembers its id and name so redo after undo recreates the same node."""

    def __init__(self, graph: Graph, type_id: str, position: tuple[float, float],
                 params: dict[str, Any] | None = None, name: str | None = None) -> None:
        super().__init__(f"Add {REGISTRY[type_id].name}")
        self.graph = graph
        self.record: dict[str, Any] = {"type": type_id, "params": params or {}, "name": name, "position": position}
        self.node_id: str | None = None

    def redo(self) -> None:
        r = self.record
        node = self.graph.add_node(r["type"], r["params"], r["name"], r["position"], node_id=self.node_id)
        self.node_id, r["name"] = node.id, node.name

    def undo(self) -> None:
        assert self.node_id is not None
        self.graph.remove_node(self.node_id)


class RemoveNodesCommand(QUndoCommand):
    """Delete nodes (with their wires) and loose wires, as one step."""

    def __init__(self, graph: Graph, node_ids: list[str], edges: list[Edge] = ()) -> None:  # type: ignore[assignment]
        count = len(node_ids)
        text = (f"Delete {graph.nodes[node_ids[0]].name}" if count == 1 else f"Delete {count} nodes") if count else (
            "Delete wire" if len(edges) == 1 else f"Delete {len(edges)} wires")
        super().__init__(text)
        self.graph = graph
        self.records = [_node_record(graph, nid) for nid in node_ids]
        wanted = set(node_ids)
        self.edges = list(dict.fromkeys([e for e in graph.edges if e.src in wanted or e.dst in wanted] + list(edges)))

    def redo(self) -> None:
        for e in self.edges:
            if self.graph.edge_into(e.dst, e.dst_port) == e:
                self.graph.disconnect(e)
        for r in self.records:
            self.graph.remove_node(r["id"])

    def undo(self) -> None:
        _restore(self.graph, self.records, self.edges)


class ConnectCommand(QUndoCommand):
    def __init__(self, graph: Graph, edge: Edge) -> None:
        super().__init__(f"Connect {graph.nodes[edge.src].name} to {graph.nodes[edge.dst].name}")
        self.graph, self.edge = graph, edge

    def redo(self) -> None:
        e = self.edge
        self.graph.connect(e.src, e.src_port, e.dst, e.dst_port)

    def undo(self) -> None:
        self.graph.disconnect(self.edge)


class SetParamsCommand(QUndoCommand):
    """Change parameters of one or more nodes (multi-selection edits them together).

    Consecutive edits of the same parameters of the same nodes merge into one
    step, so typing 1-2-8 into a spin box is one undo.
    """

    ID = 1001

    def __init__(self, graph: Graph, node_ids: list[str], changes: dict[str, Any]) -> None:
        names = ", ".join(sorted(changes))
        who = graph.nodes[node_ids[0]].name if len(node_ids) == 1 else f"{len(node_ids)} nodes"
        super().__init__(f"Set {names} of {who}")
        self.graph = graph
        self.new = {nid: dict(changes) for nid in node_ids}
        self.old = {nid: {k: graph.nodes[nid].params[k] for k in changes} for nid in node_ids}

    def id(self) -> int:
        return self.ID

    def mergeWith(self, other: QUndoCommand) -> bool:
        if not isinstance(other, SetParamsCommand) or other.new.keys() != self.new.keys():
            return False
        if any(other.new[n].keys() != self.new[n].keys() for n in self.new):
            return False
        self.new = other.new
        return True

    def redo(self) -> None:
        for nid, changes in self.new.items():
            self.graph.set_params(nid, changes)

    def undo(self) -> None:
        for nid, changes in self.old.items():
            self.graph.set_params(nid, changes)


class RenameCommand(QUndoCommand):
    def __init__(self, graph: Graph, node_id: str, name: str) -> None:
        old = graph.nodes[node_id].name
        super().__init__(f"Rename {old} to {name}")
        self.graph, self.node_id, self.old, self.new = graph, node_id, old, name

    def redo(self) -> None:
        self.graph.rename(self.node_id, self.new)

    def undo(self) -> None:
        self.graph.rename(self.node_id, self.old)


class MoveNodesCommand(QUndoCommand):
    """Move nodes: one command per drag gesture (or per auto-layout)."""

    def __init__(self, graph: Graph, moves: dict[str, tuple[tuple[float, float], tuple[float, float]]],
                 text: str | None = None) -> None:
        super().__init__(text or (f"Move {graph.nodes[next(iter(moves))].name}" if len(moves) == 1
                                  else f"Move {len(moves)} nodes"))
        self.graph, self.moves = graph, moves

    def redo(self) -> None:
        for nid, (_, new) in self.moves.items():
            self.graph.move(nid, new)

    def undo(self) -> None:
        for nid, (old, _) in self.moves.items():
            self.graph.move(nid, old)


class PasteCommand(QUndoCommand):
    """Insert a graph fragment (clipboard JSON) with fresh ids and names."""

    def __init__(self, graph: Graph, fragment: Graph, offset: tuple[float, float], text: str = "Paste") -> None:
        super().__init__(f"{text} {len(fragment)} node{'s' if len(fragment) != 1 else ''}")
        self.graph = graph
        self.fragment = fragment
        self.offset = offset
        self.records: list[dict[str, Any]] | None = None
        self.edges: list[Edge] = []

    def redo(self) -> None:
        if self.records is not None:
            _restore(self.graph, self.records, self.edges)
            return
        id_map: dict[str, str] = {}
        for n in self.fragment:
            name = n.name if n.name not in self.graph.names() else None
            if name is None:
                base = n.name.rstrip("0123456789_") or n.name
                name = self.graph.unique_name(f"{base}_" if base[-1:].isdigit() else base)
            pos = (n.position[0] + self.offset[0], n.position[1] + self.offset[1])
            id_map[n.id] = self.graph.add_node(n.type, n.params, name, pos).id
        for e in self.fragment.edges:
            self.edges.append(self.graph.connect(id_map[e.src], e.src_port, id_map[e.dst], e.dst_port))
        self.records = [_node_record(self.graph, nid) for nid in id_map.values()]

    @property
    def new_ids(self) -> list[str]:
        return [r["id"] for r in self.records or []]

    def undo(self) -> None:
        for e in self.edges:
            self.graph.disconnect(e)
        for r in self.records or []:
            self.graph.remove_node(r["id"])
