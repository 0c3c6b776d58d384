"""Group nodes into a block, and ungroup a block instance, as reversible changes.

Both are objects whose ``apply()`` and ``revert()`` call only the graph's and
the library's mutators, so the GUI's undo commands and the command line run
the same code (and undo restores a byte-identical project).
"""

from __future__ import annotations

from typing import Any

import networkx as nx

from .block_io import add_block_from_dict
from .blocks import BlockDef, BlockError, BlockGraph, BlockLibrary
from .errors import GraphError
from .graph import Edge, Graph
from .layers.spec import ParamValueError, ShapeParam
from .shapes import ShapeInference

#: vertical gap between a block's Input/Output nodes and the layers inside
_GAP = 120.0
_SHAPE = ShapeParam("shape", (1,))


def _library(graph: Graph) -> BlockLibrary:
    if not isinstance(graph.library, BlockLibrary):
        raise BlockError("this graph has no block library (load it as part of a project)")
    return graph.library


def _port_names(count: int, stem: str) -> list[str]:
    return [stem] if count == 1 else [f"{stem}{i}" for i in range(1, count + 1)]


class Grouping:
    """Replace ``node_ids`` of ``graph`` by one instance of a new block holding them.

    Every tensor that enters the selection becomes an input port (one per source,
    however many nodes read it) and every tensor that leaves it an output port.
    The layers keep their names and ids inside the block, so ``state_dict`` keys
    go from ``conv1.weight`` to ``block1.conv1.weight``.

    Args:
        graph: a graph of a project (it has the project's block library).
        node_ids: the nodes to group.
        name: the block's display name; its id is derived from it.
        instance_name: name of the new node (default: from the block id).
        shapes: inference following ``graph``, if one exists (else computed).

    Raises:
        BlockError / GraphError: the selection cannot be grouped (the message says why).
    """

    def __init__(self, graph: Graph, node_ids: list[str], name: str = "Block", instance_name: str | None = None,
                 shapes: ShapeInference | None = None) -> None:
        self.graph = graph
        lib = self.library = _library(graph)
        wanted = set(node_ids)
        if not wanted:
            raise BlockError("select the nodes to group into a block")
        for nid in wanted:
            graph.node(nid)
        members = [n for n in graph if n.id in wanted]
        for n in members:
            if n.spec.role != "layer":
                raise BlockError(f'{n.spec.name} "{n.name}" cannot go into a block: a block\'s inputs and outputs '
                                 "are the wires that cross its border", node=n.name)
        reason = graph.can_remove(wanted)
        if reason:
            raise BlockError(reason)
        self._check_contiguous(wanted)
        info = shapes.all() if shapes is not None else _infer(graph)
        # training settings (frozen, lr_scale, role) apply to the block's instance as a whole: the grouped nodes
        # that have weights or settings must agree, else grouping would silently change how they train
        kinds = {tuple(sorted(n.train.items())) for n in members if n.train or getattr(info.get(n.id), "params", 0)}
        if len(kinds) > 1:
            raise BlockError("the nodes have different training settings (frozen, lr scale, role): make them the "
                             "same, or clear them, before grouping", node=members[0].name)
        self.train = dict(next(iter(kinds))) if kinds else {}
        self.node_ids = [n.id for n in members]
        crossing_in = [e for e in graph.sorted_edges() if e.dst in wanted and e.src not in wanted]
        crossing_out = [e for e in graph.sorted_edges() if e.src in wanted and e.dst not in wanted]
        sources = list(dict.fromkeys((e.src, e.src_port) for e in crossing_in))
        results = list(dict.fromkeys((e.src, e.src_port) for e in crossing_out))
        in_names = _port_names(len(sources), "x")
        out_names = _port_names(len(results), "y")
        self.block_id = lib.new_id(name)
        block_graph = BlockGraph(lib, self.block_id)
        for n in members:
            block_graph.add_node(n.type, n.params, n.name, n.position, node_id=n.id)
        for e in graph.sorted_edges():
            if e.src in wanted and e.dst in wanted:
                block_graph.connect(e.src, e.src_port, e.dst, e.dst_port)
        xs = [n.position[0] for n in members]
        ys = [n.position[1] for n in members]
        left, top, bottom = min(xs), min(ys), max(ys)
        input_ids = []
        for k, (src, port) in enumerate(sources):
            shape = info[src].outputs.get(port) if info[src].status == "ok" else None
            if shape is None:
                raise BlockError(f'the shape coming from "{graph.nodes[src].name}" is not known yet: '
                                 "fix the errors above the selection first", node=graph.nodes[src].name)
            src_node = graph.nodes[src]
            dtype = src_node.params.get("dtype", "float32") if src_node.spec.role == "input" else "float32"
            inp = block_graph.add_node("Input", {"shape": _example_shape(shape), "dtype": dtype},
                                       _free(block_graph, in_names[k]), (left + 220.0 * k, top - _GAP), index=k)
            input_ids.append(inp.id)
            for e in crossing_in:
                if (e.src, e.src_port) == (src, port):
                    block_graph.connect(inp.id, "y", e.dst, e.dst_port)
        for k, (src, port) in enumerate(results):
            out = block_graph.add_node("Output", {}, _free(block_graph, out_names[k]),
                                       (left + 220.0 * k, bottom + _GAP))
            block_graph.connect(src, port, out.id, "x")
        self.block = BlockDef(self.block_id, name.strip() or self.block_id, block_graph)
        self.in_ports = [block_graph.nodes[i].name for i in input_ids]
        self.out_ports = [n.name for n in block_graph.outputs()]
        self.sources = sources
        self.results = results
        self.crossing_out = crossing_out
        self.position = (round(sum(xs) / len(xs)), top)
        self.instance_name = instance_name
        self.instance_id: str | None = None
        self._records: list[dict[str, Any]] = []
        self._removed: list[Edge] = []
        self._added: list[Edge] = []

    def _check_contiguous(self, wanted: set[str]) -> None:
        """A node outside the selection on a path between two selected nodes would
        have to be both before and after the block: refuse instead of making a cycle."""
        g = self.graph._nx
        after: set[str] = set()
        before: set[str] = set()
        for nid in wanted:
            after |= nx.descendants(g, nid)
            before |= nx.ancestors(g, nid)
        between = (after & before) - wanted
        if between:
            first = next(n for n in self.graph if n.id in between)
            raise BlockError(f'the selection has a gap: "{first.name}" lies on a path between selected nodes; '
                             "select it too, or fewer nodes", node=first.name)

    def apply(self) -> str:
        """Make the change; returns the id of the new block node."""
        g, lib = self.graph, self.library
        self._records = g.records(self.node_ids)
        wanted = set(self.node_ids)
        self._removed = [e for e in g.sorted_edges() if e.src in wanted or e.dst in wanted]
        index = min(r["index"] for r in self._records)  # where the first grouped node was in the node order
        lib.add(self.block)
        for nid in self.node_ids:
            g.remove_node(nid)
        # no name: the graph names it after the block (resblock1), as any new node
        node = g.add_node(self.block_id, {}, self.instance_name, self.position, node_id=self.instance_id, index=index)
        if self.train:
            g.set_train(node.id, self.train)
        self.instance_id, self.instance_name = node.id, node.name
        self._added = []
        for (src, port), in_name in zip(self.sources, self.in_ports, strict=True):
            self._added.append(g.connect(src, port, node.id, in_name))
        for (src, port), out_name in zip(self.results, self.out_ports, strict=True):
            for e in self.crossing_out:
                if (e.src, e.src_port) == (src, port):
                    self._added.append(g.connect(node.id, out_name, e.dst, e.dst_port))
        return node.id

    def revert(self) -> None:
        g = self.graph
        for e in self._added:
            g.disconnect(e)
        assert self.instance_id is not None
        g.remove_node(self.instance_id)
        self.library.remove(self.block_id)
        g.restore(self._records, self._removed)


class Ungrouping:
    """Replace a block instance by the layers inside it (with its parameter values).

    The block stays in the library (the palette still offers it).  Inner names
    are kept where they are free, else prefixed with the instance's name.

    Raises:
        BlockError: the node is not a block instance.
    """

    def __init__(self, graph: Graph, node_id: str) -> None:
        self.graph = graph
        lib = _library(graph)
        node = graph.node(node_id)
        if node.type not in lib.defs:
            raise BlockError(f'"{node.name}" is a {node.spec.name}, not a block', node=node.name)
        self.node_id = node_id
        self.block_id = node.type
        try:
            self.inner = lib.defs[node.type].instance_graph(node.params)
        except GraphError as exc:
            raise BlockError(f'cannot ungroup "{node.name}": {exc}', node=node.name) from None
        self.layers = [n for n in self.inner if n.spec.role == "layer"]
        taken = graph.names() - {node.name}
        self.names: dict[str, str] = {}
        for n in self.layers:
            name = n.name if n.name not in taken else f"{node.name}_{n.name}"
            i = 2
            base = name
            while name in taken:
                name, i = f"{base}_{i}", i + 1
            taken.add(name)
            self.names[n.id] = name
        if self.layers:
            ox = min(n.position[0] for n in self.layers)
            oy = min(n.position[1] for n in self.layers)
        else:
            ox = oy = 0.0
        self.positions = {n.id: (node.position[0] + n.position[0] - ox, node.position[1] + n.position[1] - oy)
                          for n in self.layers}
        self.new_ids: dict[str, str] = {}
        self._record: list[dict[str, Any]] = []
        self._removed: list[Edge] = []
        self._added: list[Edge] = []

    def apply(self) -> list[str]:
        """Make the change; returns the ids of the nodes that replaced the instance."""
        g = self.graph
        node = g.node(self.node_id)
        self._record = g.records([self.node_id])
        self._removed = [e for e in g.sorted_edges() if self.node_id in (e.src, e.dst)]
        feeds = {e.dst_port: (e.src, e.src_port) for e in self._removed if e.dst == node.id}
        reads = [e for e in self._removed if e.src == node.id]
        index = self._record[0]["index"]  # the layers take the instance's place in the node order
        g.remove_node(self.node_id)
        first = not self.new_ids
        for k, n in enumerate(self.layers):
            added = g.add_node(n.type, n.params, self.names[n.id], self.positions[n.id],
                               node_id=None if first else self.new_ids[n.id], index=index + k)
            self.new_ids[n.id] = added.id
            if node.train:  # the instance's training settings go to each of its layers (grouping's reverse)
                g.set_train(added.id, node.train)
        inner = self.inner
        kind = {n.id: n.spec.role for n in inner}

        def outer_source(src: str, port: str) -> tuple[str, str] | None:
            if kind[src] == "input":
                return feeds.get(inner.nodes[src].name)
            return self.new_ids[src], port

        self._added = []
        for e in inner.sorted_edges():
            if kind[e.dst] == "output":
                continue
            source = outer_source(e.src, e.src_port)
            if source is not None:
                self._added.append(g.connect(source[0], source[1], self.new_ids[e.dst], e.dst_port))
        for out in inner.outputs():
            edge = inner.edge_into(out.id, "x")
            source = outer_source(edge.src, edge.src_port) if edge is not None else None
            if source is None:
                continue
            for e in reads:
                if e.src_port == out.name:
                    self._added.append(g.connect(source[0], source[1], e.dst, e.dst_port))
        return list(self.new_ids.values())

    def revert(self) -> None:
        g = self.graph
        for e in self._added:
            g.disconnect(e)
        for nid in self.new_ids.values():
            g.remove_node(nid)
        g.restore(self._record, self._removed)


class MakeUnique:
    """Give one block instance a copy of its block of its own, so edits inside reach it alone.

    The copy is ``<Block>2`` (named "<name> (copy)"); the node keeps its id, name,
    parameters and wires.

    Raises:
        BlockError: the node is not a block instance.
    """

    def __init__(self, graph: Graph, node_id: str) -> None:
        self.graph = graph
        lib = self.library = _library(graph)
        node = graph.node(node_id)
        if node.type not in lib.defs:
            raise BlockError(f'"{node.name}" is a {node.spec.name}, not a block', node=node.name)
        block = lib.defs[node.type]
        self.node_id, self.old_type = node_id, node.type
        self.new_type = lib.new_id(block.id)
        self.doc = {**block.to_dict(), "name": f"{block.name} (copy)"}
        self._copy: BlockDef | None = None
        self._index: int | None = None
        self._record: list[dict[str, Any]] = []
        self._edges: list[Edge] = []

    def apply(self) -> str:
        """Make the change; returns the new block's id."""
        g = self.graph
        if self._copy is None:
            self._copy = add_block_from_dict(self.library, self.new_type, self.doc, f"blocks.{self.new_type}")
        else:
            # a redo puts back the very copy (and inner graph) it took away: later changes made
            # inside it hold that graph, and must reach the block the project uses
            self.library.add(self._copy, self._index)
        self._record = g.records([self.node_id])
        self._edges = [e for e in g.sorted_edges() if self.node_id in (e.src, e.dst)]
        g.remove_node(self.node_id)
        g.restore([{**self._record[0], "type": self.new_type}], self._edges)
        return self.new_type

    def revert(self) -> None:
        g = self.graph
        g.remove_node(self.node_id)
        g.restore(self._record, self._edges)
        self._index, self._copy = self.library.remove(self.new_type)


def _infer(graph: Graph) -> dict[str, Any]:
    si = ShapeInference(graph, live=False)
    si.update()
    return si.all()


def _example_shape(shape: tuple[Any, ...]) -> list[Any]:
    """The Input parameter that shows a block on its own: the shape without the batch."""
    rest = list(shape[1:]) if shape and shape[0] == "N" else list(shape)
    try:
        return list(_SHAPE.validate(rest))
    except ParamValueError:
        return [1]


def _free(graph: Graph, name: str) -> str:
    return name if name not in graph.names() else graph.unique_name(f"{name}_")


def group(graph: Graph, node_ids: list[str], name: str = "Block", instance_name: str | None = None) -> tuple[BlockDef, str]:
    """Group nodes into a new block (see :class:`Grouping`); returns the block and the new node's id."""
    change = Grouping(graph, node_ids, name, instance_name)
    return change.block, change.apply()


def ungroup(graph: Graph, node_id: str) -> list[str]:
    """Replace a block instance by its layers (see :class:`Ungrouping`); returns their ids."""
    return Ungrouping(graph, node_id).apply()


__all__ = ["Grouping", "MakeUnique", "Ungrouping", "group", "ungroup"]
