"""Which nodes of two graphs correspond: by name, then by structure.

The matcher behind :mod:`workbench.diff`.  In order:

1. **Names.**  Nodes with the same name correspond, whatever their type (a node retyped in
   place keeps its name), as long as both are layers, both Inputs or both Outputs.  These
   pairs are the *anchors*.
2. **Colour refinement** (Weisfeiler-Lehman) over the rest: a node's colour starts as its
   type and parameters, and each round adds the colours of its neighbours with the ports
   that join them; an anchor's colour is its pair, the same on both sides, so a colour
   says *where* a node is relative to the anchors.  Nodes whose colour after the last round
   agrees correspond: one on each side, or as many on each side (then in topological order).
3. **Propagation** from matched pairs: an unmatched node wired to a matched neighbour is a
   candidate for the unmatched node of the same type wired the same way (same ports) to
   that neighbour's partner.  Candidates are taken greedily: most shared wires, then most
   equal parameters, then the nearest topological position.  Each new pair makes its
   neighbours candidates in turn.

Steps 2 and 3 repeat while they find pairs (each new pair is a new anchor).  Every step
costs O(V + E) (times a few refinement rounds), so the whole is near-linear.  The result
is deterministic: every choice is ordered by node order and topological position, never by
hashes.  Nodes are compared by type *key* (see :class:`Side`), so a block instance matches
an instance of the corresponding block even when the block's id differs.
"""

from __future__ import annotations

import math
import struct
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from .graph import Graph, Node

#: colour refinement rounds: a colour sees this many wires away
ROUNDS = 3
#: outer repetitions of refinement + propagation (each needs new pairs to go on)
PASSES = 6


def canonical(value: Any) -> Any:
    """A hashable form of a parameter value in which equal means *the same model*.

    Floats compare as float32, the precision the model computes in: an ONNX file stores
    ``eps=1e-5`` as float32 and reads back ``9.99999974e-06``, which is the same layer.
    Booleans stay distinct from the integers 0 and 1.
    """
    t = type(value)
    if t is int or t is str or value is None:
        return value
    if t is bool:
        return ("bool", value)
    if isinstance(value, float):
        if math.isnan(value):
            return ("float", "nan")
        try:
            return struct.unpack("f", struct.pack("f", value))[0]
        except OverflowError:  # beyond float32: compare exactly
            return value
    if isinstance(value, (list, tuple)):
        return tuple(canonical(v) for v in value)
    if isinstance(value, dict):
        return tuple(sorted((str(k), canonical(v)) for k, v in value.items()))
    return value


@dataclass
class Side:
    """One graph prepared for matching.

    Args:
        graph: the graph.
        type_key: the node's type as compared with the other side (a block instance's key
            names the block it corresponds to on the other side).
    """

    graph: Graph
    type_key: Callable[[Node], str]
    ids: list[str] = field(init=False)
    topo: list[str] = field(init=False)
    order: dict[str, int] = field(init=False)
    rank: dict[str, float] = field(init=False)
    kind: dict[str, str] = field(init=False)
    role: dict[str, str] = field(init=False)
    params: dict[str, dict[str, Any]] = field(init=False)
    label: dict[str, tuple[Any, ...]] = field(init=False)
    ins: dict[str, list[tuple[str, str, str]]] = field(init=False)
    outs: dict[str, list[tuple[str, str, str]]] = field(init=False)
    by_name: dict[str, str] = field(init=False)

    def __post_init__(self) -> None:
        g = self.graph
        self.ids = list(g.nodes)
        self.order = {nid: i for i, nid in enumerate(self.ids)}
        self.topo = g.topological_order()
        last = max(1, len(self.topo) - 1)
        self.rank = {nid: i / last for i, nid in enumerate(self.topo)}
        self.kind, self.params, self.label, self.ins, self.outs, self.by_name = {}, {}, {}, {}, {}, {}
        self.role = {}
        for nid, node in g.nodes.items():
            self.kind[nid] = self.type_key(node)
            self.role[nid] = node.spec.role
            self.params[nid] = {k: canonical(v) for k, v in node.params.items()}
            self.label[nid] = (self.kind[nid], tuple(sorted(self.params[nid].items())))
            self.ins[nid] = [(e.dst_port, e.src, e.src_port) for e in g.edges_into(nid)]
            self.outs[nid] = [(e.src_port, e.dst, e.dst_port) for e in g.edges_from(nid)]
            self.by_name[node.name] = nid

    def neighbours(self, nid: str) -> list[str]:
        return [s for _, s, _ in self.ins[nid]] + [d for _, d, _ in self.outs[nid]]


@dataclass
class Matching:
    """Pairs of node ids (first graph -> second) and how each pair was found
    (``"name"`` or ``"structure"``)."""

    a2b: dict[str, str] = field(default_factory=dict)
    b2a: dict[str, str] = field(default_factory=dict)
    how: dict[str, str] = field(default_factory=dict)

    def pair(self, x: str, y: str, how: str) -> None:
        self.a2b[x], self.b2a[y], self.how[x] = y, x, how


def match(a: Side, b: Side) -> Matching:
    """Match the nodes of ``a`` and ``b`` (see the module's docstring)."""
    m = Matching()
    for x in a.ids:
        y = b.by_name.get(a.graph.nodes[x].name)
        if y is not None and a.role[x] == b.role[y]:  # (an Input and a layer are not one node retyped)
            m.pair(x, y, "name")
    for _ in range(PASSES):
        before = len(m.a2b)
        if before == min(len(a.ids), len(b.ids)):
            break
        _refine(a, b, m)
        _propagate(a, b, m, [x for x in a.ids if x not in m.a2b])
        if len(m.a2b) == before:
            break
    return m


def _refine(a: Side, b: Side, m: Matching) -> None:
    """Colour refinement with the pairs as fixed colours; pair equal final colours."""
    table: dict[Any, int] = {}

    def intern(key: Any) -> int:
        return table.setdefault(key, len(table))

    ca = {x: intern(("pair", m.a2b[x])) if x in m.a2b else intern(("node", a.label[x])) for x in a.ids}
    cb = {y: intern(("pair", y)) if y in m.b2a else intern(("node", b.label[y])) for y in b.ids}
    free_a = [x for x in a.topo if x not in m.a2b]  # in topological order: so is every bucket below
    free_b = [y for y in b.topo if y not in m.b2a]
    for r in range(ROUNDS):
        for side, colour, free in ((a, ca, free_a), (b, cb, free_b)):
            new = {}
            for v in free:
                ins = tuple(sorted((port, colour[s], sp) for port, s, sp in side.ins[v]))
                outs = tuple(sorted((sp, dp, colour[d]) for sp, d, dp in side.outs[v]))
                new[v] = intern((r, colour[v], ins, outs))
            colour.update(new)
    buckets: dict[int, tuple[list[str], list[str]]] = {}
    for x in free_a:
        buckets.setdefault(ca[x], ([], []))[0].append(x)
    for y in free_b:
        if cb[y] in buckets:
            buckets[cb[y]][1].append(y)
    for xs, ys in buckets.values():
        if xs and len(xs) == len(ys):
            for x, y in zip(xs, ys, strict=True):
                m.pair(x, y, "structure")


def _propagate(a: Side, b: Side, m: Matching, frontier: list[str]) -> None:
    """Grow the matching from matched neighbours, greedily, until it stops growing."""
    # B's wires by (node, out port, in port) -> consumers, and by (node, in port) -> source
    fan: dict[tuple[str, str, str], list[str]] = {}
    for y in b.ids:
        for sp, d, dp in b.outs[y]:
            fan.setdefault((y, sp, dp), []).append(d)
    feed = {(y, dp): (s, sp) for y in b.ids for dp, s, sp in b.ins[y]}
    todo = set(frontier)
    while todo:
        votes: dict[tuple[str, str], int] = {}
        for x in sorted(todo, key=a.order.__getitem__):
            if x in m.a2b:
                continue
            kind = a.kind[x]
            for port, s, sp in a.ins[x]:
                ys = m.a2b.get(s)
                if ys is not None:
                    for y in fan.get((ys, sp, port), ()):
                        if y not in m.b2a and b.kind[y] == kind:
                            votes[(x, y)] = votes.get((x, y), 0) + 1
            for sp, d, dp in a.outs[x]:
                yd = m.a2b.get(d)
                if yd is not None:
                    src = feed.get((yd, dp))
                    if src is not None and src[1] == sp and src[0] not in m.b2a and b.kind[src[0]] == kind:
                        votes[(x, src[0])] = votes.get((x, src[0]), 0) + 1

        ranked = []
        for (x, y), count in votes.items():
            px, py = a.params[x], b.params[y]
            same = sum(1 for k, v in px.items() if py.get(k, _NONE) == v)
            ranked.append((-count, -same, abs(a.rank[x] - b.rank[y]), a.order[x], b.order[y], x, y))
        ranked.sort()
        paired = []
        for *_, x, y in ranked:
            if x not in m.a2b and y not in m.b2a:
                m.pair(x, y, "structure")
                paired.append(x)
        todo = {n for x in paired for n in a.neighbours(x) if n not in m.a2b}


_NONE = object()
