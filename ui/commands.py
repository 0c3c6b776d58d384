"""Undoable edits.  Each command calls only the graph's and the block library's public mutators.

Commands are validated before they are pushed (``Document.graph.can_connect``,
``validate_params``...), so ``redo`` does not fail; if the graph refuses anyway
the error propagates and the stack stays consistent because nothing applied.

A project has several graphs (the model, a discriminator, the inside of each
block) and one undo stack.  Before a command changes a graph it calls
:func:`focus`, which asks the document to show that graph, so undoing an edit
made inside a block first opens that block.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any
from weakref import WeakKeyDictionary, WeakMethod

from PySide6.QtGui import QUndoCommand

from workbench.block_io import add_block_from_dict
from workbench.blocks import BlockDef, BlockLibrary, BlockParam
from workbench.graph import Edge, Graph
from workbench.grouping import Grouping, MakeUnique, Ungrouping

_FOCUS: WeakKeyDictionary[BlockLibrary, WeakMethod[Callable[[Graph], None]]] = WeakKeyDictionary()


def register_focus(library: BlockLibrary, callback: Callable[[Graph], None]) -> None:
    """Make ``callback(graph)`` (a bound method) run before a command changes a graph of this
    project.  Held weakly: a closed document (which owns the library) is not kept alive."""
    _FOCUS[library] = WeakMethod(callback)  # type: ignore[arg-type]


def focus(graph: Graph) -> None:
    ref = _FOCUS.get(graph.library) if isinstance(graph.library, BlockLibrary) else None
    callback = ref() if ref is not None else None
    if callback is not None:
        callback(graph)


class GraphCommand(QUndoCommand):
    """A command on one graph: shows that graph, then applies or reverts the change."""

    def __init__(self, graph: Graph, text: str) -> None:
        super().__init__(text)
        self.graph = graph

    def redo(self) -> None:
        focus(self.graph)
        self.apply()

    def undo(self) -> None:
        focus(self.graph)
        self.revert()

    def apply(self) -> None:  # overridden
        raise TypeError(type(self).__name__)

    def revert(self) -> None:  # overridden
        raise TypeError(type(self).__name__)


class AddNodeCommand(GraphCommand):
    """Add one node; remembers its id and name so redo after undo recreates the same node."""

    def __init__(self, graph: Graph, type_id: str, position: tuple[float, float],
                 params: dict[str, Any] | None = None, name: str | None = None) -> None:
        super().__init__(graph, f"Add {graph.spec_of(type_id).name}")
        self.record: dict[str, Any] = {"type": type_id, "params": params or {}, "name": name, "position": position}
        self.node_id: str | None = None

    def apply(self) -> None:
        r = self.record
        node = self.graph.add_node(r["type"], r["params"], r["name"], r["position"], node_id=self.node_id)
        self.node_id, r["name"] = node.id, node.name

    def revert(self) -> None:
        assert self.node_id is not None
        self.graph.remove_node(self.node_id)


class RemoveNodesCommand(GraphCommand):
    """Delete nodes (with their wires) and loose wires, as one step."""

    def __init__(self, graph: Graph, node_ids: list[str], edges: list[Edge] = ()) -> None:  # type: ignore[assignment]
        count = len(node_ids)
        text = (f"Delete {graph.nodes[node_ids[0]].name}" if count == 1 else f"Delete {count} nodes") if count else (
            "Delete wire" if len(edges) == 1 else f"Delete {len(edges)} wires")
        super().__init__(graph, text)
        self.records = graph.records(node_ids)
        wanted = set(node_ids)
        self.edges = list(dict.fromkeys([e for e in graph.edges if e.src in wanted or e.dst in wanted] + list(edges)))

    def apply(self) -> None:
        for e in self.edges:
            if self.graph.edge_into(e.dst, e.dst_port) == e:
                self.graph.disconnect(e)
        for r in self.records:
            self.graph.remove_node(r["id"])

    def revert(self) -> None:
        self.graph.restore(self.records, self.edges)


class ConnectCommand(GraphCommand):
    def __init__(self, graph: Graph, edge: Edge) -> None:
        super().__init__(graph, f"Connect {graph.nodes[edge.src].name} to {graph.nodes[edge.dst].name}")
        self.edge = edge

    def apply(self) -> None:
        e = self.edge
        self.graph.connect(e.src, e.src_port, e.dst, e.dst_port)

    def revert(self) -> None:
        self.graph.disconnect(self.edge)


class RewireCommand(GraphCommand):
    """Take some wires out and put others in, as one step: a wire dropped on a taken input
    replaces the old one, a wire end dragged to another input re-routes it (or, dropped on
    nothing, disconnects it), a layer dropped on a wire splits it.

    The caller checks the new wires against the graph as it will be once ``remove`` is gone.
    """

    def __init__(self, graph: Graph, remove: list[Edge], add: list[Edge], text: str) -> None:
        super().__init__(graph, text)
        self.remove, self.add = list(remove), list(add)

    def apply(self) -> None:
        for e in self.remove:
            self.graph.disconnect(e)
        for e in self.add:
            self.graph.connect(e.src, e.src_port, e.dst, e.dst_port)

    def revert(self) -> None:
        for e in reversed(self.add):
            self.graph.disconnect(e)
        for e in self.remove:
            self.graph.connect(e.src, e.src_port, e.dst, e.dst_port)


class SetParamsCommand(GraphCommand):
    """Change parameters of one or more nodes (multi-selection edits them together).

    Each typed edit is its own step.  With ``merge``, a change made by stepping a
    number (arrows, wheel) merges into the previous step of the same gesture, so
    clicking an arrow five times is one undo.
    """

    ID = 1001

    def __init__(self, graph: Graph, node_ids: list[str], changes: dict[str, Any], merge: bool = False) -> None:
        names = ", ".join(sorted(changes))
        who = graph.nodes[node_ids[0]].name if len(node_ids) == 1 else f"{len(node_ids)} nodes"
        super().__init__(graph, f"Set {names} of {who}")
        self.new = {nid: dict(changes) for nid in node_ids}
        self.old = {nid: {k: graph.nodes[nid].params[k] for k in changes} for nid in node_ids}
        self.merge = merge

    def id(self) -> int:
        return self.ID if self.merge else -1

    def mergeWith(self, other: QUndoCommand) -> bool:
        if not isinstance(other, SetParamsCommand) or not (self.merge and other.merge):
            return False
        if other.graph is not self.graph or other.new.keys() != self.new.keys():
            return False
        if any(other.new[n].keys() != self.new[n].keys() for n in self.new):
            return False
        self.new = other.new
        return True

    def apply(self) -> None:
        for nid, changes in self.new.items():
            self.graph.set_params(nid, changes)

    def revert(self) -> None:
        for nid, changes in self.old.items():
            self.graph.set_params(nid, changes)


class RenameCommand(GraphCommand):
    def __init__(self, graph: Graph, node_id: str, name: str) -> None:
        old = graph.nodes[node_id].name
        super().__init__(graph, f"Rename {old} to {name}")
        self.node_id, self.old, self.new = node_id, old, name

    def apply(self) -> None:
        self.graph.rename(self.node_id, self.new)

    def revert(self) -> None:
        self.graph.rename(self.node_id, self.old)


class MoveNodesCommand(GraphCommand):
    """Move nodes: one command per drag gesture (or per auto-layout)."""

    def __init__(self, graph: Graph, moves: dict[str, tuple[tuple[float, float], tuple[float, float]]],
                 text: str | None = None) -> None:
        super().__init__(graph, text or (f"Move {graph.nodes[next(iter(moves))].name}" if len(moves) == 1
                                         else f"Move {len(moves)} nodes"))
        self.moves = moves

    def apply(self) -> None:
        for nid, (_, new) in self.moves.items():
            self.graph.move(nid, new)

    def revert(self) -> None:
        for nid, (old, _) in self.moves.items():
            self.graph.move(nid, old)


class PasteCommand(GraphCommand):
    """Insert a graph fragment (clipboard JSON) with fresh ids and names."""

    def __init__(self, graph: Graph, fragment: Graph, offset: tuple[float, float], text: str = "Paste") -> None:
        super().__init__(graph, f"{text} {len(fragment)} node{'s' if len(fragment) != 1 else ''}")
        self.fragment = fragment
        self.offset = offset
        self.records: list[dict[str, Any]] | None = None
        self.edges: list[Edge] = []

    def apply(self) -> None:
        if self.records is not None:
            self.graph.restore(self.records, self.edges)
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
        self.records = self.graph.records(id_map.values())

    @property
    def new_ids(self) -> list[str]:
        return [r["id"] for r in self.records or []]

    def revert(self) -> None:
        for e in self.edges:
            self.graph.disconnect(e)
        for r in self.records or []:
            self.graph.remove_node(r["id"])


# --------------------------------------------------------------------------- blocks


class _ChangeCommand(GraphCommand):
    """A reversible core change (an object with ``graph``, ``apply()`` and ``revert()``) as a command."""

    def __init__(self, change: Grouping | Ungrouping | MakeUnique, text: str) -> None:
        super().__init__(change.graph, text)
        self.change = change

    def apply(self) -> None:
        self.change.apply()

    def revert(self) -> None:
        self.change.revert()


class GroupCommand(_ChangeCommand):
    """Group the selection into a new block (see :class:`workbench.grouping.Grouping`)."""

    def __init__(self, change: Grouping) -> None:
        n = len(change.node_ids)
        super().__init__(change, f"Group {n} node{'s' if n != 1 else ''} into {change.block.name}")

    @property
    def node_id(self) -> str | None:
        return self.change.instance_id  # type: ignore[union-attr]


class UngroupCommand(_ChangeCommand):
    """Replace a block instance by its layers (see :class:`workbench.grouping.Ungrouping`)."""

    def __init__(self, change: Ungrouping) -> None:
        super().__init__(change, f"Ungroup {change.graph.nodes[change.node_id].name}")


class MakeUniqueCommand(_ChangeCommand):
    """Give one block node a copy of its block (see :class:`workbench.grouping.MakeUnique`)."""

    def __init__(self, change: MakeUnique) -> None:
        super().__init__(change, f"Make {change.graph.nodes[change.node_id].name} unique")


class ReplaceBatchNormCommand(_ChangeCommand):
    """BatchNorm nodes become GroupNorm nodes, for private training (see
    :class:`workbench.training.privacy.BatchNormToGroupNorm`)."""

    def __init__(self, change: Any) -> None:
        super().__init__(change, f"Replace {change.count} BatchNorm by GroupNorm")


class AddBlocksCommand(QUndoCommand):
    """Add block definitions (from the ready blocks, a block file or the clipboard).

    The definitions are made from JSON once; a redo adds back the same objects, because
    later commands (an edit inside one of them) hold their inner graphs.
    """

    def __init__(self, library: BlockLibrary, blocks: dict[str, Any], text: str) -> None:
        super().__init__(text)
        self.library, self.blocks = library, blocks
        self.added: list[tuple[int, BlockDef]] = []

    def redo(self) -> None:
        if not self.added:
            for bid, doc in self.blocks.items():
                add_block_from_dict(self.library, bid, doc, f"blocks.{bid}")
            return
        for index, block in reversed(self.added):
            self.library.add(block, index)

    def undo(self) -> None:
        self.added = [self.library.remove(bid) for bid in reversed(list(self.blocks))]


class RemoveBlockCommand(QUndoCommand):
    """Delete an unused block definition."""

    def __init__(self, library: BlockLibrary, block_id: str) -> None:
        super().__init__(f"Delete block {library.defs[block_id].name}")
        self.library, self.block_id = library, block_id
        self.removed: tuple[int, BlockDef] | None = None

    def redo(self) -> None:
        self.removed = self.library.remove(self.block_id)

    def undo(self) -> None:
        assert self.removed is not None
        index, block = self.removed
        self.library.add(block, index)


class SetBlockParamsCommand(QUndoCommand):
    """Change which parameters a block exposes (instances keep the values they can)."""

    def __init__(self, library: BlockLibrary, block_id: str, params: tuple[BlockParam, ...], text: str) -> None:
        super().__init__(text)
        self.library, self.block_id = library, block_id
        self.old = library.defs[block_id].params
        self.new = params
        self.instances: list[tuple[Graph, str, dict[str, Any]]] = []

    def redo(self) -> None:
        focus(self.library.defs[self.block_id].graph)
        self.instances = self.library.set_params(self.block_id, self.new)

    def undo(self) -> None:
        focus(self.library.defs[self.block_id].graph)
        self.library.set_params(self.block_id, self.old)
        self.library.restore_instance_params(self.instances)


class SetBlockInfoCommand(QUndoCommand):
    """Rename a block or change its description."""

    def __init__(self, library: BlockLibrary, block_id: str, name: str, doc: str) -> None:
        block = library.defs[block_id]
        super().__init__(f"Rename block {block.name} to {name}" if name != block.name else f"Describe {block.name}")
        self.library, self.block_id = library, block_id
        self.old = (block.name, block.doc)
        self.new = (name, doc)

    def redo(self) -> None:
        self.library.set_info(self.block_id, *self.new)

    def undo(self) -> None:
        self.library.set_info(self.block_id, *self.old)
