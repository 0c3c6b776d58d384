"""The graph model: layer nodes and port-to-port edges.

Every mutation validates first and either applies fully or raises a typed
:class:`~workbench.errors.GraphError` without changing anything.  Observers
(shape inference, the canvas) subscribe to :class:`GraphEvent`s.
"""

from __future__ import annotations

import copy
import heapq
import keyword
import re
import unicodedata
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

import networkx as nx

from .errors import (
    CycleError,
    GraphError,
    NameConflictError,
    NodeNotFoundError,
    ParamError,
    PortError,
    UnknownLayerError,
)
from .layers import REGISTRY, LayerSpec, ParamValueError
from .textcheck import text_problem


class SpecSource(Protocol):
    """Where types that are not in the catalogue come from (a project's block library)."""

    def spec(self, type_id: str) -> LayerSpec | None: ...


def lookup_spec(type_id: str, library: SpecSource | None) -> LayerSpec:
    """The declaration of ``type_id``: the catalogue first, then the block library.

    Raises:
        UnknownLayerError: neither knows it.
    """
    spec = REGISTRY.get(type_id)
    if spec is None and library is not None:
        spec = library.spec(type_id)
    if spec is None:
        raise UnknownLayerError(f"unknown layer type {type_id!r}")
    return spec


@dataclass
class Node:
    """A layer instance.  Treat as read-only: change it through :class:`Graph`.

    ``library`` resolves block types (a block instance's type is a block of the
    project's library); catalogue types never need it.
    """

    id: str
    type: str
    name: str
    params: dict[str, Any]
    position: tuple[float, float] = (0.0, 0.0)
    library: SpecSource | None = field(default=None, repr=False, compare=False)
    train: dict[str, Any] = field(default_factory=dict)
    """How training treats the node (frozen, lr_scale, role; see ``workbench.node_training``); only
    non-default values."""

    @property
    def spec(self) -> LayerSpec:
        return lookup_spec(self.type, self.library)

    @property
    def is_block(self) -> bool:
        return self.type not in REGISTRY

    @property
    def input_ports(self) -> tuple[str, ...]:
        return self.spec.input_ports(self.params)

    @property
    def output_ports(self) -> tuple[str, ...]:
        return self.spec.output_ports(self.params)


@dataclass(frozen=True)
class Edge:
    """A wire from ``src``'s output port to ``dst``'s input port (node ids)."""

    src: str
    src_port: str
    dst: str
    dst_port: str


@dataclass(frozen=True)
class GraphEvent:
    """What changed: ``kind`` is one of node_added, node_removed, edge_added,
    edge_removed, params_changed, renamed, moved, train_changed (frozen, lr_scale, role), definition_changed (the block
    this node instantiates was edited: its ports, shapes or parameters may differ)."""

    kind: str
    node: str | None = None
    edge: Edge | None = None
    extra: dict[str, Any] = field(default_factory=dict)


Listener = Callable[[GraphEvent], None]


def default_name_prefix(type_id: str) -> str:
    """``Conv2d`` -> ``conv2d``, ``MultiheadAttention`` -> ``multiheadattention``."""
    return re.sub(r"[^a-z0-9_]", "", type_id.lower()) or "node"


class Graph:
    """A directed acyclic graph of layer nodes.

    Nodes keep insertion order, which fixes the order of a model's inputs and
    outputs and makes every derived listing deterministic.
    """

    def __init__(self, library: SpecSource | None = None) -> None:
        self.library = library
        """The project's blocks; a graph without one holds catalogue layers only."""
        self._nodes: dict[str, Node] = {}
        self._edges: dict[tuple[str, str], Edge] = {}  # keyed by (dst, dst_port)
        self._nx = nx.MultiDiGraph()
        self._listeners: list[Listener] = []
        self._next_id = 1
        # Indexes that keep every query and mutation O(1) (or O(degree)) on large graphs.
        # Per node, its wires in the order they were connected (the order of _edges):
        self._in: dict[str, dict[str, Edge]] = {}  # dst -> {dst_port: edge}
        self._out: dict[str, dict[tuple[str, str], Edge]] = {}  # src -> {(dst, dst_port): edge}
        self._seq: dict[tuple[str, str], int] = {}  # when each edge was connected: merges _in and _out
        self._edge_count = 0
        self._by_name: dict[str, str] = {}  # name -> node id
        # unique_name(prefix) -> the i from which to look: every f"{prefix}{j}", j < i, is taken
        self._name_from: dict[str, int] = {}
        self._index: dict[str, int] | None = None  # node id -> position, built when asked
        self._topo: list[str] | None = None  # topological order, until the structure changes

    # ------------------------------------------------------------------ observers
    def subscribe(self, listener: Listener) -> None:
        self._listeners.append(listener)

    def unsubscribe(self, listener: Listener) -> None:
        self._listeners.remove(listener)

    def _emit(self, event: GraphEvent) -> None:
        for listener in list(self._listeners):
            listener(event)

    # ------------------------------------------------------------------ queries
    @property
    def nodes(self) -> dict[str, Node]:
        """Nodes by id (a read-only view by convention)."""
        return self._nodes

    @property
    def edges(self) -> list[Edge]:
        return list(self._edges.values())

    def node(self, node_id: str) -> Node:
        try:
            return self._nodes[node_id]
        except KeyError:
            raise NodeNotFoundError(f"no node with id {node_id!r}") from None

    def by_name(self, name: str) -> Node:
        nid = self._by_name.get(name)
        if nid is None:
            raise NodeNotFoundError(f"no node named {name!r}", node=name)
        return self._nodes[nid]

    def names(self) -> set[str]:
        """A new set of the node names (use :meth:`has_name` to test one name)."""
        return set(self._by_name)

    def has_name(self, name: str) -> bool:
        """Whether a node is called ``name`` (O(1), unlike building :meth:`names`)."""
        return name in self._by_name

    def edge_into(self, node_id: str, port: str) -> Edge | None:
        return self._edges.get((node_id, port))

    def index_of(self, node_id: str) -> int:
        """The node's position in the node order.

        Raises:
            ValueError: no such node.
        """
        if self._index is None:
            self._index = {nid: i for i, nid in enumerate(self._nodes)}
        try:
            return self._index[node_id]
        except KeyError:
            raise ValueError(f"{node_id!r} is not in list") from None  # as list.index said

    def edges_into(self, node_id: str) -> list[Edge]:
        """Edges into the node, in the order they were connected."""
        return list(self._in.get(node_id, {}).values())

    def edges_from(self, node_id: str) -> list[Edge]:
        """Edges out of the node, in the order they were connected."""
        return list(self._out.get(node_id, {}).values())

    def successors(self, node_id: str) -> set[str]:
        return set(self._nx.successors(node_id))

    def descendants(self, node_id: str) -> set[str]:
        return nx.descendants(self._nx, node_id)

    def topological_order(self) -> list[str]:
        """Node ids in a deterministic topological order (ties by insertion).

        Of the nodes whose inputs are all placed, the earliest in the node order
        comes next: the order ``networkx.lexicographical_topological_sort`` gives
        with the node position as key, in O((V + E) log V) without its per-node
        overhead, and kept until the structure changes.
        """
        if self._topo is None:
            ids = list(self._nodes)
            pos = {nid: i for i, nid in enumerate(ids)}
            waiting = {nid: len(ins) for nid, ins in self._in.items() if ins}
            ready = [i for i, nid in enumerate(ids) if nid not in waiting]
            heapq.heapify(ready)
            order: list[str] = []
            while ready:
                nid = ids[heapq.heappop(ready)]
                order.append(nid)
                for e in self._out.get(nid, {}).values():
                    waiting[e.dst] -= 1
                    if not waiting[e.dst]:
                        heapq.heappush(ready, pos[e.dst])
            self._topo = order
        return list(self._topo)

    def inputs(self) -> list[Node]:
        return [n for n in self._nodes.values() if n.spec.role == "input"]

    def outputs(self) -> list[Node]:
        return [n for n in self._nodes.values() if n.spec.role == "output"]

    def __len__(self) -> int:
        return len(self._nodes)

    def __iter__(self) -> Iterator[Node]:
        return iter(self._nodes.values())

    # ------------------------------------------------------------------ validation helpers
    def can_connect(self, src: str, src_port: str, dst: str, dst_port: str) -> str | None:
        """Why a connection is refused, or None when it is allowed (for the canvas)."""
        try:
            self._check_connect(Edge(src, src_port, dst, dst_port))
        except GraphError as exc:
            return str(exc)
        return None

    def _check_connect(self, edge: Edge, cycles: bool = True) -> None:
        """Raise the error :meth:`connect` gives for ``edge``; ``cycles=False`` looks
        for a cycle only when the wire loops on its node (see :meth:`connect_many`)."""
        a, b = self.node(edge.src), self.node(edge.dst)
        if edge.src_port not in a.output_ports:
            raise PortError(f'"{a.name}" has no output port {edge.src_port!r}', node=a.name)
        if edge.dst_port not in b.input_ports:
            raise PortError(f'"{b.name}" has no input port {edge.dst_port!r}', node=b.name)
        if edge.src == edge.dst or (cycles and self._closes_cycle(edge)):
            raise CycleError(f'connecting "{a.name}" to "{b.name}" would create a cycle', node=b.name)
        taken = self._edges.get((edge.dst, edge.dst_port))
        if taken is not None:
            raise PortError(
                f'input {edge.dst_port!r} of "{b.name}" is already connected to "{self._nodes[taken.src].name}"',
                node=b.name,
            )

    def _closes_cycle(self, edge: Edge) -> bool:
        """Whether adding ``edge`` would close a cycle (a path from its dst back to its src).

        No path can leave a node without successors or reach one without predecessors:
        wiring a new node onto a graph (a builder, an importer, a file listed in
        topological order) needs no search at all.
        """
        if edge.src == edge.dst:
            return True
        if not self._out.get(edge.dst) or not self._in.get(edge.src):
            return False
        return nx.has_path(self._nx, edge.dst, edge.src)

    def validate_params(self, type_id: str, params: dict[str, Any], node_name: str | None = None) -> dict[str, Any]:
        """Fill defaults, validate every value, refuse unknown keys."""
        spec = self._spec(type_id)
        unknown = set(params) - {p.name for p in spec.params}
        if unknown:
            key = sorted(unknown)[0]
            raise ParamError(f"{spec.id} has no parameter {key!r}", node=node_name, param=key)
        out = {}
        for p in spec.params:
            value = params.get(p.name, p.default)
            try:
                out[p.name] = p.validate(value)
            except ParamValueError as exc:
                where = f'"{node_name}" ' if node_name else ""
                raise ParamError(f"{spec.id} {where}parameter {p.name}: {exc}", node=node_name, param=p.name) from None
        return out

    def validate_name(self, name: str, ignore: str | None = None) -> str:
        if not isinstance(name, str) or not name.strip():
            raise NameConflictError("a node name cannot be empty", node=str(name))
        problem = text_problem(name)
        if problem:
            raise NameConflictError(f"a node name {problem}", node=name.encode("utf-8", "backslashreplace").decode())
        name = name.strip()
        owner = self._by_name.get(name)
        if owner is not None and owner != ignore:
            raise NameConflictError(f"the name {name!r} is already used by another node", node=name)
        return name

    def unique_name(self, prefix: str) -> str:
        """The first of ``prefix1``, ``prefix2``... that no node is called.

        Amortised O(1): the search for a prefix goes on from where the last one
        stopped (every name before it is taken), and goes back when a node that
        held one of them is removed or renamed.
        """
        i = self._name_from.get(prefix, 1)
        while f"{prefix}{i}" in self._by_name:
            i += 1
        self._name_from[prefix] = i
        return f"{prefix}{i}"

    def _forget_name(self, name: str) -> None:
        """``name`` is free again: the searches of the prefixes it ends may find it."""
        del self._by_name[name]
        digits = len(name)
        while digits and name[digits - 1] in "0123456789":
            digits -= 1
        for cut in range(digits, len(name)):  # name = prefix + str(i) for each cut before a nonzero digit
            prefix = name[:cut]
            if name[cut] != "0" and prefix in self._name_from:
                self._name_from[prefix] = min(self._name_from[prefix], int(name[cut:]))

    def _spec(self, type_id: str) -> LayerSpec:
        return lookup_spec(type_id, self.library)

    def spec_of(self, type_id: str) -> LayerSpec:
        """The declaration of a type this graph can hold (catalogue or block)."""
        return self._spec(type_id)

    # Hooks a block's definition graph overrides to keep its instances valid.
    def check_add(self, type_id: str) -> None:
        """Raise GraphError when a node of ``type_id`` may not be added (a block inside itself)."""

    def check_remove(self, node_id: str) -> None:
        """Raise GraphError when removing the node would break something outside this graph."""

    def check_rename(self, node_id: str, name: str) -> None:
        """Raise GraphError when renaming the node would break something outside this graph."""

    def can_remove(self, node_ids: Iterable[str]) -> str | None:
        """Why these nodes cannot be removed, or None (for the editor, before it pushes a command)."""
        try:
            for nid in node_ids:
                self.check_remove(nid)
        except GraphError as exc:
            return str(exc)
        return None

    def _new_id(self) -> str:
        while f"n{self._next_id}" in self._nodes:
            self._next_id += 1
        return f"n{self._next_id}"

    # ------------------------------------------------------------------ mutations
    def add_node(
        self,
        type_id: str,
        params: dict[str, Any] | None = None,
        name: str | None = None,
        position: tuple[float, float] = (0.0, 0.0),
        node_id: str | None = None,
        index: int | None = None,
    ) -> Node:
        """Add a node and return it.

        ``index`` puts it at that place in the node order (undo restores a deleted
        node where it was, which keeps input/output order and the file identical).

        Raises:
            UnknownLayerError, ParamError, NameConflictError, GraphError (id in use).
        """
        self._spec(type_id)
        self.check_add(type_id)
        name = self.validate_name(name) if name is not None else self.unique_name(default_name_prefix(type_id))
        params = self.validate_params(type_id, params or {}, name)
        if node_id is None:
            node_id = self._new_id()
        elif not isinstance(node_id, str) or not node_id or node_id in self._nodes:
            raise GraphError(f"node id {node_id!r} is invalid or already used", node=name)
        x, y = position
        node = Node(node_id, type_id, name, params, (float(x), float(y)), self.library)
        if index is None or index >= len(self._nodes):
            self._nodes[node_id] = node
            if self._index is not None:
                self._index[node_id] = len(self._nodes) - 1
        else:
            items = list(self._nodes.items())
            items.insert(max(0, index), (node_id, node))
            self._nodes = dict(items)
            self._index = None
        self._by_name[name] = node_id
        self._topo = None
        self._nx.add_node(node_id)
        self._emit(GraphEvent("node_added", node_id))
        return node

    def remove_node(self, node_id: str) -> list[Edge]:
        """Remove a node and its edges; returns the removed edges (for undo)."""
        node = self.node(node_id)
        self.check_remove(node_id)
        removed = sorted([*self.edges_into(node_id), *self.edges_from(node_id)],
                         key=lambda e: self._seq[(e.dst, e.dst_port)])  # in the order they were connected
        for e in removed:
            self.disconnect(e)
        del self._nodes[node.id]
        self._in.pop(node_id, None)
        self._out.pop(node_id, None)
        self._forget_name(node.name)
        self._index = self._topo = None
        self._nx.remove_node(node.id)
        self._emit(GraphEvent("node_removed", node_id, extra={"node": node}))
        return removed

    def connect(self, src: str, src_port: str, dst: str, dst_port: str) -> Edge:
        """Wire ``src.src_port`` to ``dst.dst_port``.

        Raises:
            NodeNotFoundError, PortError (no such port, input already taken), CycleError.
        """
        edge = Edge(src, src_port, dst, dst_port)
        self._check_connect(edge)
        self._add_edge(edge)
        self._emit(GraphEvent("edge_added", dst, edge))
        return edge

    def connect_many(self, wires: Sequence[tuple[str, str, str, str]]) -> tuple[int, GraphError] | None:
        """Connect ``(src, src_port, dst, dst_port)`` wires in order, as a loop over
        :meth:`connect` would, with one cycle check for them all instead of one per wire.

        Loading a graph wires all its edges at once, and a path search per wire made
        that quadratic when the nodes are not listed in a topological order.  The
        outcome is the loop's: the wires before the first one refused are connected,
        the rest are not.  Observers hear of the new edges once they are all in place.

        Returns:
            None when every wire was connected, else ``(index, error)``: the first wire
            refused and the error :meth:`connect` raises for it.
        """
        added: list[Edge] = []
        refused: int | None = None
        for i, wire in enumerate(wires):
            edge = Edge(*wire)
            try:
                self._check_connect(edge, cycles=False)
            except GraphError:
                refused = i
                break
            self._add_edge(edge)
            added.append(edge)
        closing = self._first_cycle(added)
        if closing is not None:  # the wire that closes the first cycle is refused, not the later one
            refused = closing
        failure = None
        if refused is not None:
            for e in added[refused:]:
                self._remove_edge(e)
            del added[refused:]
            try:  # the graph is now as the loop left it: connect's own checks say why
                self._check_connect(Edge(*wires[refused]))
            except GraphError as exc:
                failure = (refused, exc)
            assert failure is not None, "a refused wire passed the check"
        for e in added:
            self._emit(GraphEvent("edge_added", e.dst, e))
        return failure

    def _first_cycle(self, added: list[Edge]) -> int | None:
        """The index of the wire in ``added`` (the last edges connected, unchecked for
        cycles, on a graph that had none before them) that closes the first cycle."""
        if self._acyclic(()):
            return None
        lo, hi = 0, len(added)  # with added[:lo] acyclic, added[:hi] not
        while hi - lo > 1:
            mid = (lo + hi) // 2
            if self._acyclic({(e.dst, e.dst_port) for e in added[mid:]}):
                lo = mid
            else:
                hi = mid
        return hi - 1

    def _acyclic(self, without: Iterable[tuple[str, str]]) -> bool:
        """Whether the graph is acyclic, leaving out the edges keyed ``without`` (Kahn)."""
        skip = set(without)
        waiting = {nid: sum(1 for port in ins if (nid, port) not in skip) for nid, ins in self._in.items()}
        ready = [nid for nid in self._nodes if not waiting.get(nid)]
        seen = 0
        while ready:
            nid = ready.pop()
            seen += 1
            for key in self._out.get(nid, {}):
                if key not in skip:
                    waiting[key[0]] -= 1
                    if not waiting[key[0]]:
                        ready.append(key[0])
        return seen == len(self._nodes)

    def _add_edge(self, edge: Edge) -> None:
        key = (edge.dst, edge.dst_port)
        self._edges[key] = edge
        self._in.setdefault(edge.dst, {})[edge.dst_port] = edge
        self._out.setdefault(edge.src, {})[key] = edge
        self._edge_count += 1
        self._seq[key] = self._edge_count
        self._topo = None
        self._nx.add_edge(edge.src, edge.dst, key=(edge.src_port, edge.dst_port))

    def _remove_edge(self, edge: Edge) -> None:
        key = (edge.dst, edge.dst_port)
        del self._edges[key], self._in[edge.dst][edge.dst_port], self._out[edge.src][key], self._seq[key]
        self._topo = None
        self._nx.remove_edge(edge.src, edge.dst, key=(edge.src_port, edge.dst_port))

    def disconnect(self, edge: Edge) -> None:
        if self._edges.get((edge.dst, edge.dst_port)) != edge:
            raise PortError(f"no such connection: {edge}")
        self._remove_edge(edge)
        self._emit(GraphEvent("edge_removed", edge.dst, edge))

    def set_params(self, node_id: str, changes: dict[str, Any]) -> dict[str, Any]:
        """Change parameters; returns the previous values of the changed keys.

        Raises:
            ParamError when a value is refused; PortError when the change would
            remove a port that still has a wire.
        """
        node = self.node(node_id)
        merged = self.check_params(node_id, changes)
        old = {k: node.params[k] for k in changes}
        node.params = merged
        self._emit(GraphEvent("params_changed", node_id, extra={"old": old}))
        return old

    def set_train(self, node_id: str, changes: dict[str, Any]) -> dict[str, Any]:
        """Change how training treats a node (``{"frozen": True}``); returns the previous full settings.

        Raises:
            ParamError naming the setting when a value is refused.
        """
        from .node_training import TrainFlagError, validate_train

        node = self.node(node_id)
        try:
            merged = validate_train({**node.train, **changes})
        except TrainFlagError as exc:
            raise ParamError(f'"{node.name}": train.{exc}', node=node.name, param=f"train.{exc.key}") from None
        old = dict(node.train)
        node.train = merged
        self._emit(GraphEvent("train_changed", node_id, extra={"old": old}))
        return old

    def check_params(self, node_id: str, changes: dict[str, Any]) -> dict[str, Any]:
        """The node's parameters with ``changes`` applied, validated, without changing anything.

        An editor asks this before it records an undo step (a step whose redo fails is a
        step that did nothing).

        Raises:
            ParamError or PortError, as :meth:`set_params`.
        """
        node = self.node(node_id)
        merged = self.validate_params(node.type, {**node.params, **changes}, node.name)
        new_inputs = set(node.spec.input_ports(merged))
        for e in self.edges_into(node_id):
            if e.dst_port not in new_inputs:
                raise PortError(
                    f'"{node.name}": disconnect input {e.dst_port!r} before removing it', node=node.name
                )
        new_outputs = set(node.spec.output_ports(merged))
        for e in self.edges_from(node_id):
            if e.src_port not in new_outputs:
                raise PortError(f'"{node.name}": disconnect output {e.src_port!r} first', node=node.name)
        return merged

    def reset_params(self, node_id: str, params: dict[str, Any]) -> dict[str, Any]:
        """Replace every parameter (keys the type no longer declares are dropped, new
        ones take their defaults); returns the previous dict.  Used when a block's
        parameters change under its instances."""
        node = self.node(node_id)
        spec = node.spec
        known = {p.name for p in spec.params}
        merged = self.validate_params(node.type, {k: v for k, v in params.items() if k in known}, node.name)
        old, node.params = node.params, merged
        self._emit(GraphEvent("params_changed", node_id, extra={"old": old}))
        return old

    def definition_changed(self, type_id: str) -> list[str]:
        """Tell observers that the block ``type_id`` changed; returns its instances here."""
        ids = [n.id for n in self._nodes.values() if n.type == type_id]
        for nid in ids:
            self._emit(GraphEvent("definition_changed", nid))
        return ids

    def set_param(self, node_id: str, key: str, value: Any) -> Any:
        """Change one parameter; returns its previous value."""
        return self.set_params(node_id, {key: value})[key]

    def rename(self, node_id: str, name: str) -> str:
        """Rename a node; returns the old name."""
        node = self.node(node_id)
        name = self.validate_name(name, ignore=node_id)
        if name != node.name:
            self.check_rename(node_id, name)
        old, node.name = node.name, name
        if name != old:
            self._forget_name(old)
            self._by_name[name] = node_id
        self._emit(GraphEvent("renamed", node_id, extra={"old": old}))
        return old

    def move(self, node_id: str, position: tuple[float, float]) -> tuple[float, float]:
        """Move a node on the canvas; returns the old position."""
        node = self.node(node_id)
        old = node.position
        node.position = (float(position[0]), float(position[1]))
        self._emit(GraphEvent("moved", node_id, extra={"old": old}))
        return old

    # ------------------------------------------------------------------ (de)serialisation
    def to_dict(self, node_ids: Iterable[str] | None = None) -> dict[str, Any]:
        """JSON-able form; with ``node_ids``, only those nodes and the edges among them."""
        keep = set(self._nodes) if node_ids is None else set(node_ids)
        return {
            "nodes": [
                {
                    "id": n.id,
                    "type": n.type,
                    "name": n.name,
                    "params": {k: list(v) if isinstance(v, tuple) else v for k, v in n.params.items()},
                    "position": [n.position[0], n.position[1]],
                    **({"train": dict(n.train)} if n.train else {}),
                }
                for n in self._nodes.values()
                if n.id in keep
            ],
            "edges": [
                {"from": [e.src, e.src_port], "to": [e.dst, e.dst_port]}
                for e in self.sorted_edges()
                if e.src in keep and e.dst in keep
            ],
        }

    def sorted_edges(self) -> list[Edge]:
        """Edges in a canonical order (by destination node, then port), whatever the
        order they were connected in: saving is a function of the graph alone."""
        out: list[Edge] = []
        for nid, node in self._nodes.items():  # O(V + E): no sort across the whole graph
            wired = self._in.get(nid)
            if wired:
                ports = node.input_ports
                out.extend(sorted(wired.values(), key=lambda e, ports=ports: ports.index(e.dst_port)))
        return out

    # ------------------------------------------------------------------ undo support
    def records(self, node_ids: Iterable[str]) -> list[dict[str, Any]]:
        """What :meth:`restore` needs to put these nodes back exactly (order included)."""
        out = []
        for nid in node_ids:
            n = self.node(nid)
            out.append({"id": n.id, "type": n.type, "name": n.name, "params": dict(n.params),
                        "position": n.position, "index": self.index_of(nid), "train": dict(n.train)})
        return out

    def restore(self, records: list[dict[str, Any]], edges: Iterable[Edge] = ()) -> None:
        """Re-add removed nodes where they were in the node order, then their edges."""
        for r in sorted(records, key=lambda r: r["index"]):
            self.add_node(r["type"], r["params"], r["name"], r["position"], node_id=r["id"], index=r["index"])
            self._nodes[r["id"]].train = dict(r.get("train") or {})
        for e in edges:
            if self.edge_into(e.dst, e.dst_port) != e:
                self.connect(e.src, e.src_port, e.dst, e.dst_port)

    def copy(self) -> Graph:
        """A deep copy without listeners (a plain :class:`Graph` sharing the library)."""
        g = Graph(self.library)
        g._nodes = {k: Node(v.id, v.type, v.name, copy.deepcopy(v.params), v.position, self.library, dict(v.train))
                    for k, v in self._nodes.items()}
        g._edges = dict(self._edges)
        g._in = {nid: dict(ins) for nid, ins in self._in.items()}
        g._out = {nid: dict(outs) for nid, outs in self._out.items()}
        g._seq, g._edge_count = dict(self._seq), self._edge_count
        g._by_name, g._name_from = dict(self._by_name), dict(self._name_from)
        g._nx = self._nx.copy()
        g._next_id = self._next_id
        return g


def python_identifier(name: str) -> str:
    """Turn a node name into a valid, non-keyword, ASCII Python identifier.

    ASCII only: Python normalises non-ASCII identifiers (NFKC: ``ﬁ`` reads as ``fi``) and
    refuses some word characters (``²``), so a generated file could name another attribute than
    the module holds, or not parse.  Accents are dropped (``é`` -> ``e``); any other character
    becomes ``_``.
    """
    parts = []
    for ch in name.strip():
        base = unicodedata.normalize("NFKD", ch).encode("ascii", "ignore").decode("ascii")
        parts.append(base if base else "_")
    ident = re.sub(r"[^A-Za-z0-9_]", "_", "".join(parts)) or "node"
    if ident[0].isdigit():
        ident = "_" + ident
    if ident.startswith("__"):  # `self.__x` in a class body is name-mangled: the attribute would differ
        ident = "n" + ident
    if keyword.iskeyword(ident) or keyword.issoftkeyword(ident):
        ident += "_"
    return ident
