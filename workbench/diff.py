"""Graph diff: compare two models (projects or ONNX files, in any mix) node by node.

Nodes are matched automatically (:mod:`workbench.graph_match`: by name, then by structure),
so a renamed node is reported as renamed, not as removed and added.  For each graph of the
projects (the model, a GAN's discriminator) the diff lists the nodes added, removed, and
changed: name, type, parameters (old -> new), output shapes (from shape inference) and
wiring (the source of each input port).  Blocks are compared inside: a block whose
definition differs gets a diff of its own, and every instance of it is marked changed.

Positions and node ids are not compared (a layout is not a model), nor the data and
training set-up.  Floating-point parameters compare at float32 precision (see
:func:`~workbench.graph_match.canonical`).  Output order follows the graphs' node order,
so the same pair of files always gives the same report.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .blocks import BlockDef
from .bulk import gc_paused
from .errors import InputError, WorkbenchError
from .graph import Graph, Node
from .graph_match import Side, canonical, match
from .layers.dims import fmt_shape
from .project import Project, load_project
from .shapes import NodeInfo, infer


class _Absent:
    """A parameter the node does not have (its type changed)."""

    def __repr__(self) -> str:
        return "(absent)"


ABSENT: Any = _Absent()


@dataclass(frozen=True)
class NodeRef:
    """A node as the report names it."""

    id: str
    name: str
    type: str

    def to_dict(self) -> dict[str, str]:
        return {"id": self.id, "name": self.name, "type": self.type}


@dataclass
class NodeChange:
    """A matched pair that differs.

    Attributes:
        params: parameter -> (old, new); a side without the parameter holds :data:`ABSENT`.
        shapes: output port -> (old, new) shape text (``error`` or ``?`` when not inferred).
        wiring: input port -> (old, new) source as ``"node.port"`` text (``""``: unconnected).
        block: the block (its id in the second project) whose definition differs, for an instance.
        matched_by: ``"name"`` or ``"structure"``.
    """

    a: NodeRef
    b: NodeRef
    matched_by: str
    type: tuple[str, str] | None = None
    params: dict[str, tuple[Any, Any]] = field(default_factory=dict)
    shapes: dict[str, tuple[str, str]] = field(default_factory=dict)
    wiring: dict[str, tuple[str, str]] = field(default_factory=dict)
    block: str | None = None

    @property
    def renamed(self) -> bool:
        return self.a.name != self.b.name

    @property
    def changed(self) -> bool:
        """Whether anything but the name differs."""
        return bool(self.type or self.params or self.shapes or self.wiring or self.block)

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"a": self.a.to_dict(), "b": self.b.to_dict(), "matched_by": self.matched_by}
        if self.renamed:
            out["name"] = {"old": self.a.name, "new": self.b.name}
        if self.type:
            out["type"] = {"old": self.type[0], "new": self.type[1]}
        if self.params:
            out["params"] = {k: _old_new(o, n) for k, (o, n) in self.params.items()}
        if self.shapes:
            out["shapes"] = {k: {"old": o, "new": n} for k, (o, n) in self.shapes.items()}
        if self.wiring:
            out["wiring"] = {k: {"old": o or None, "new": n or None} for k, (o, n) in self.wiring.items()}
        if self.block:
            out["block"] = self.block
        return out


@dataclass
class GraphDiff:
    """The difference between two graphs.

    Attributes:
        label: which graph (``model``, ``discriminator``, ``block ResBlock``).
        matches: (first id, second id) of every matched pair, in the first graph's order.
        changes: matched pairs that differ (renamed or changed), in the first graph's order.
        added: nodes only in the second graph (its order); removed: only in the first.
        grouped: removed node id -> the new block that holds a node of that name and type.
    """

    label: str
    matches: list[tuple[str, str]] = field(default_factory=list)
    changes: list[NodeChange] = field(default_factory=list)
    added: list[NodeRef] = field(default_factory=list)
    removed: list[NodeRef] = field(default_factory=list)
    grouped: dict[str, str] = field(default_factory=dict)

    @property
    def equal(self) -> bool:
        return not (self.changes or self.added or self.removed)

    @property
    def renamed(self) -> list[NodeChange]:
        return [c for c in self.changes if c.renamed]

    @property
    def changed(self) -> list[NodeChange]:
        return [c for c in self.changes if c.changed]

    def summary(self) -> str:
        parts = [f"{len(x)} {what}" for x, what in ((self.changed, "changed"), (self.renamed, "renamed"),
                                                    (self.added, "added"), (self.removed, "removed")) if x]
        same = len(self.matches) - len(self.changes)
        return f"{', '.join(parts) or 'no differences'} ({same} unchanged)"

    def to_dict(self) -> dict[str, Any]:
        return {
            "graph": self.label,
            "equal": self.equal,
            "unchanged": len(self.matches) - len(self.changes),
            "added": [n.to_dict() for n in self.added],
            "removed": [{**n.to_dict(), **({"grouped_into": self.grouped[n.id]} if n.id in self.grouped else {})}
                        for n in self.removed],
            "renamed": [{"old": c.a.name, "new": c.b.name} for c in self.renamed],
            "changed": [c.to_dict() for c in self.changes],
        }


@dataclass
class BlockDiff:
    """A block whose definition differs (``a_id`` in the first project, ``b_id`` in the second)."""

    a_id: str
    b_id: str
    graph: GraphDiff
    name: tuple[str, str] | None = None
    doc: tuple[str, str] | None = None
    params: dict[str, tuple[str, str]] = field(default_factory=dict)
    """Exposed parameter -> (old, new) description (``""``: not exposed on that side)."""

    @property
    def equal(self) -> bool:
        return self.graph.equal and not (self.name or self.doc or self.params) and self.a_id == self.b_id

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"id": {"old": self.a_id, "new": self.b_id}}
        if self.name:
            out["name"] = {"old": self.name[0], "new": self.name[1]}
        if self.doc:
            out["doc"] = {"old": self.doc[0], "new": self.doc[1]}
        if self.params:
            out["exposed"] = {k: {"old": o or None, "new": n or None} for k, (o, n) in self.params.items()}
        return {**out, "inside": self.graph.to_dict()}


@dataclass
class ProjectDiff:
    """The difference between two projects: their graphs, then their blocks."""

    a: str
    b: str
    graphs: list[GraphDiff]
    blocks: list[BlockDiff]
    blocks_added: list[str]
    blocks_removed: list[str]

    @property
    def equal(self) -> bool:
        return (all(g.equal for g in self.graphs) and all(b.equal for b in self.blocks)
                and not self.blocks_added and not self.blocks_removed)

    def to_dict(self) -> dict[str, Any]:
        return {"a": self.a, "b": self.b, "equal": self.equal,
                "graphs": [g.to_dict() for g in self.graphs],
                "blocks": {"added": self.blocks_added, "removed": self.blocks_removed,
                           "changed": [b.to_dict() for b in self.blocks if not b.equal]}}

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2, default=_jsonable)

    def text(self) -> str:
        """The readable report (one line per difference, details indented)."""
        lines = [f"A: {self.a}", f"B: {self.b}"]
        for g in self.graphs:
            lines += ["", f"{g.label}: {g.summary()}", *_graph_lines(g, "  ")]
        if self.blocks_added or self.blocks_removed or any(not b.equal for b in self.blocks):
            lines.append("")
            lines += [f"block {bid}: added" for bid in self.blocks_added]
            lines += [f"block {bid}: removed" for bid in self.blocks_removed]
            for b in self.blocks:
                if b.equal:
                    continue
                if _same_inside(b):
                    lines.append(f"block {b.a_id} -> {b.b_id}: renamed (the same inside)")
                    continue
                title = b.b_id if b.a_id == b.b_id else f"{b.a_id} -> {b.b_id}"
                lines.append(f"block {title}: definition differs; inside: {b.graph.summary()}")
                if b.name:
                    lines.append(f"    name: {b.name[0]!r} -> {b.name[1]!r}")
                if b.doc:
                    lines.append("    doc changed")
                for k, (o, n) in b.params.items():
                    lines.append(f"    exposed {k}: {o or '(not exposed)'} -> {n or '(not exposed)'}")
                lines += _graph_lines(b.graph, "  ")
        lines += ["", "equal" if self.equal else "different"]
        return "\n".join(lines)


def _old_new(old: Any, new: Any) -> dict[str, Any]:
    return {**({"old": old} if old is not ABSENT else {}), **({"new": new} if new is not ABSENT else {})}


def _jsonable(value: Any) -> Any:
    if isinstance(value, tuple):
        return list(value)
    return repr(value)


def format_value(v: Any) -> str:
    """A parameter value as the report writes it (``[3, 3]``, ``1e-05``, ``'zeros'``)."""
    if v is ABSENT:
        return "(absent)"
    if isinstance(v, (list, tuple)):
        return "[" + ", ".join(format_value(x) for x in v) + "]"
    if isinstance(v, str):
        return repr(v)
    if isinstance(v, float):
        return f"{v:g}"
    return str(v)


def change_lines(c: NodeChange) -> list[str]:
    """A changed node as the report shows it: a title line, then one line per difference."""
    title = f"{c.a.name} -> {c.b.name}" if c.renamed else c.b.name
    how = ", matched by structure" if c.matched_by == "structure" else ""
    lines = [f"~ {title} ({c.b.type}){'' if c.changed else ': renamed'}{how}"]
    if c.type:
        lines.append(f"    type: {c.type[0]} -> {c.type[1]}")
    lines += [f"    {k}: {format_value(o)} -> {format_value(n)}" for k, (o, n) in c.params.items()]
    lines += [f"    input {port}: {o or '(unconnected)'} -> {n or '(unconnected)'}" for port, (o, n) in c.wiring.items()]
    lines += [f"    shape {port}: {o} -> {n}" for port, (o, n) in c.shapes.items()]
    if c.block:
        lines.append(f"    block {c.block} differs (below)")
    return lines


def _graph_lines(g: GraphDiff, pad: str) -> list[str]:
    lines = [pad + line for c in g.changes for line in change_lines(c)]
    lines += [f"{pad}+ {n.name} ({n.type})" for n in g.added]
    for n in g.removed:
        into = f": grouped into the new block {g.grouped[n.id]}" if n.id in g.grouped else ""
        lines.append(f"{pad}- {n.name} ({n.type}){into}")
    return lines


# --------------------------------------------------------------------------- comparing


def _shapes(node: Node, info: NodeInfo) -> dict[str, str]:
    """Output port -> shape text; an Output node shows the shape it receives."""
    role = node.spec.role
    ports = ("x",) if role == "output" else node.output_ports
    if info.status != "ok":
        return dict.fromkeys(ports, "error" if info.status == "error" else "?")
    if role == "output":
        shape = info.inputs.get("x")
        return {"x": fmt_shape(shape) if shape is not None else "?"}
    return {p: fmt_shape(s) for p, s in info.outputs.items()}


class _Pair:
    """Two projects being compared: the correspondence of their blocks, and block diffs (memoised)."""

    def __init__(self, pa: Project, pb: Project) -> None:
        self.pa, self.pb = pa, pb
        self.block_map: dict[str, str] = {bid: bid for bid in pa.blocks.defs if bid in pb.blocks.defs}
        self.diffs: dict[str, BlockDiff] = {}
        self._match_renamed_blocks()

    def key_a(self, node: Node) -> str:
        if node.type in self.pa.blocks.defs:
            mapped = self.block_map.get(node.type)
            return f"block:{mapped}" if mapped is not None else f"block-a:{node.type}"
        return node.type

    def key_b(self, node: Node) -> str:
        return f"block:{node.type}" if node.type in self.pb.blocks.defs else node.type

    def _match_renamed_blocks(self) -> None:
        """A block only in each project with the same inside is one block whose id changed."""
        only_b = [b for b in self.pb.blocks if b.id not in self.pa.blocks.defs]
        for block in self.pa.blocks:  # library order: a block's dependencies come first
            if block.id in self.block_map:
                continue
            for other in only_b:
                if other.id in self.block_map.values() or _block_sig(block) != _block_sig(other):
                    continue
                self.block_map[block.id] = other.id
                if _same_inside(self.block(block.id)):
                    break
                del self.block_map[block.id]
                self.diffs.pop(block.id, None)

    def block(self, a_id: str) -> BlockDiff:
        """The diff of a block and its counterpart (computed once)."""
        if a_id not in self.diffs:
            ba, bb = self.pa.blocks.defs[a_id], self.pb.blocks.defs[self.block_map[a_id]]
            self.diffs[a_id] = _block_diff(ba, bb, diff_graphs(ba.graph, bb.graph, f"block {bb.id}", self))
        return self.diffs[a_id]

    def differs(self, a_type: str) -> str | None:
        """For a block instance's type: the counterpart block's id when the definitions differ."""
        if a_type not in self.block_map or _same_inside(self.block(a_type)):
            return None
        return self.block_map[a_type]


def _same_inside(d: BlockDiff) -> bool:
    """Equal but perhaps for the block's id."""
    return d.graph.equal and not (d.name or d.doc or d.params)


def _block_sig(block: BlockDef) -> tuple[Any, ...]:
    """What a block with another id must share to be the same block (checked in full after)."""
    inner = sorted(("block", "") if n.is_block else (n.type, repr(canonical(n.params))) for n in block.graph)
    return (tuple(n.name for n in block.graph.inputs()), tuple(n.name for n in block.graph.outputs()),
            tuple(bp.name for bp in block.params), tuple(inner))


def _block_diff(ba: BlockDef, bb: BlockDef, g: GraphDiff) -> BlockDiff:
    a2b = dict(g.matches)
    names_b = {n.id: n.name for n in bb.graph}

    def exposed(block: BlockDef, to_b: dict[str, str] | None) -> dict[str, str]:
        """Exposed parameter -> its targets, named as in the second block (``to_b``: ids into it)."""
        out = {}
        for bp in block.params:
            targets = []
            for nid, key in bp.targets:
                target = names_b.get(to_b.get(nid, "") if to_b is not None else nid)
                targets.append(f"{target or block.graph.nodes[nid].name + ' (removed)'}.{key}")
            out[bp.name] = ", ".join(sorted(targets)) + (f" ({bp.doc})" if bp.doc else "")
        return out

    ea, eb = exposed(ba, a2b), exposed(bb, None)
    params = {k: (ea.get(k, ""), eb.get(k, "")) for k in [*ea, *(k for k in eb if k not in ea)]
              if ea.get(k, "") != eb.get(k, "")}
    return BlockDiff(ba.id, bb.id, g, (ba.name, bb.name) if ba.name != bb.name else None,
                     (ba.doc, bb.doc) if ba.doc != bb.doc else None, params)


@gc_paused()
def diff_graphs(ga: Graph, gb: Graph, label: str = "model", pair: _Pair | None = None) -> GraphDiff:
    """Match and compare two graphs (of two projects: ``pair`` relates their blocks).

    Cost: near-linear in nodes + edges (matching), plus one shape inference of each graph.
    """
    key_a = pair.key_a if pair is not None else (lambda n: n.type)
    key_b = pair.key_b if pair is not None else (lambda n: n.type)
    sa, sb = Side(ga, key_a), Side(gb, key_b)
    m = match(sa, sb)
    ia, ib = infer(ga).all(), infer(gb).all()
    out = GraphDiff(label)
    for x in sa.ids:
        y = m.a2b.get(x)
        na = ga.nodes[x]
        if y is None:
            out.removed.append(NodeRef(x, na.name, na.type))
            continue
        out.matches.append((x, y))
        nb = gb.nodes[y]
        c = NodeChange(NodeRef(x, na.name, na.type), NodeRef(y, nb.name, nb.type), m.how[x])
        if sa.kind[x] != sb.kind[y] or na.type != nb.type:  # (the same block under another id counts too)
            c.type = (na.type, nb.type)
        if pair is not None and sa.kind[x] == sb.kind[y] and na.is_block:
            c.block = pair.differs(na.type)
        pa, pb = sa.params[x], sb.params[y]
        for k in [*na.params, *(k for k in nb.params if k not in na.params)]:
            if pa.get(k, ABSENT) != pb.get(k, ABSENT):
                c.params[k] = (na.params.get(k, ABSENT), nb.params.get(k, ABSENT))
        shapes_a, shapes_b = _shapes(na, ia[x]), _shapes(nb, ib[y])
        for port in [*shapes_a, *(p for p in shapes_b if p not in shapes_a)]:
            if shapes_a.get(port, "") != shapes_b.get(port, ""):
                c.shapes[port] = (shapes_a.get(port, ""), shapes_b.get(port, ""))
        wired_a = {port: (s, sp) for port, s, sp in sa.ins[x]}
        wired_b = {port: (s, sp) for port, s, sp in sb.ins[y]}
        for port in [*nb.input_ports, *(p for p in wired_a if p not in nb.input_ports)]:
            src_a, src_b = wired_a.get(port), wired_b.get(port)
            if src_a is None and src_b is None:
                continue
            if src_a is None or src_b is None or m.a2b.get(src_a[0]) != src_b[0] or src_a[1] != src_b[1]:
                c.wiring[port] = (f"{ga.nodes[src_a[0]].name}.{src_a[1]}" if src_a else "",
                                  f"{gb.nodes[src_b[0]].name}.{src_b[1]}" if src_b else "")
        if c.renamed or c.changed:
            out.changes.append(c)
    out.added = [NodeRef(y, gb.nodes[y].name, gb.nodes[y].type) for y in sb.ids if y not in m.b2a]
    return out


@gc_paused()
def diff_projects(pa: Project, pb: Project, a: str = "A", b: str = "B") -> ProjectDiff:
    """Compare two projects: every graph (by role), then every block."""
    pair = _Pair(pa, pb)
    graphs = [diff_graphs(pa.graph, pb.graph, "model", pair)]
    for role in [*pa.graphs, *(r for r in pb.graphs if r not in pa.graphs)]:
        ga, gb = pa.graphs.get(role), pb.graphs.get(role)
        graphs.append(diff_graphs(ga if ga is not None else Graph(pa.blocks),
                                  gb if gb is not None else Graph(pb.blocks), role, pair))
    blocks = [pair.block(bid) for bid in pa.blocks.defs if bid in pair.block_map]
    mapped = set(pair.block_map.values())
    added = [bid for bid in pb.blocks.defs if bid not in mapped]
    removed = [bid for bid in pa.blocks.defs if bid not in pair.block_map]
    for g in graphs:  # removed nodes that reappear inside a new block were grouped into it
        gb = pb.graph if g.label == "model" else pb.graphs.get(g.label)
        new_blocks = dict.fromkeys(n.type for n in gb or () if n.type in added)  # (ordered: the output is)
        inside = {(m.name, m.type): bid for bid in new_blocks for m in pb.blocks.defs[bid].graph}
        for n in g.removed:
            if (n.name, n.type) in inside:
                g.grouped[n.id] = inside[(n.name, n.type)]
    return ProjectDiff(a, b, graphs, blocks, added, removed)


# --------------------------------------------------------------------------- files


@dataclass
class Loaded:
    """A model read for comparison: the project and how it was read."""

    project: Project
    path: Path
    kind: str

    def describe(self) -> str:
        blocks = len(self.project.blocks)
        extra = f", {blocks} block{'s' if blocks != 1 else ''}" if blocks else ""
        return f"{self.path} ({self.kind}, {len(self.project.graph)} nodes{extra})"


def load_model(path: str | Path) -> Loaded:
    """Read a project file, or an ONNX model through the importer (``.onnx``).

    Raises:
        InputError: the file cannot be read, or the model cannot be imported (with the reason).
    """
    path = Path(path)
    if path.suffix.lower() != ".onnx":
        return Loaded(load_project(path), path, "project")
    from .importers.onnx_import import import_onnx

    try:
        result = import_onnx(path)
    except InputError:
        raise
    except WorkbenchError as exc:  # unsupported operators, no input shapes: the file is not usable here
        # the importer's advice on partial imports does not apply: a diff compares whole models
        raise InputError(str(exc).split(" Nothing was written")[0], str(path)) from None
    return Loaded(result.project, path, "ONNX, lossless" if result.lossless else "ONNX, mapped op by op")


def model_json(path: str) -> str:
    """The project JSON of a model file (a job for a worker process: the GUI stays live)."""
    return load_model(path).project.to_json()


def diff_files(path_a: str | Path, path_b: str | Path) -> ProjectDiff:
    """Compare two model files (projects or ONNX, any mix).

    Raises:
        InputError: a file cannot be read (see :func:`load_model`).
    """
    a, b = load_model(path_a), load_model(path_b)
    return diff_projects(a.project, b.project, a.describe(), b.describe())
