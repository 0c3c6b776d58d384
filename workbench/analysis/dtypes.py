"""Which element type flows along each wire: floating point or integer ids.

Shape inference says nothing about element types, yet a Linear fed token ids, or an
Embedding fed pixels, fails on its first batch.  Every layer declares what it reads
(:attr:`~workbench.layers.spec.LayerSpec.dtype`); this pass follows the Inputs' dtypes
through the graph (into blocks too) and names the first node that would be fed the
wrong kind of values.
"""

from __future__ import annotations

from ..errors import ShapeError
from ..graph import Graph

FLOAT, INT = "float", "int"


def _of_input(dtype: str) -> str:
    return INT if dtype.startswith("int") else FLOAT


def infer_dtypes(graph: Graph, bound: dict[str, str] | None = None,
                 label: str = "") -> tuple[dict[tuple[str, str], str], list[ShapeError]]:
    """Element kind (``"float"`` or ``"int"``) of every output port, and the located errors.

    Args:
        bound: Input node id -> the kind it is fed (a block's inside); other Inputs
            follow their ``dtype`` parameter.
        label: prefix for messages about a block's inside.

    Nodes with an unconnected input are skipped (shape inference reports those).
    """
    bound = bound or {}
    kinds: dict[tuple[str, str], str] = {}
    errors: list[ShapeError] = []
    for nid in graph.topological_order():
        node = graph.nodes[nid]
        spec = node.spec
        if spec.role == "input":
            kinds[(nid, "y")] = bound.get(nid) or _of_input(str(node.params.get("dtype", "float32")))
            continue
        ins: list[str] = []
        for port in node.input_ports:
            edge = graph.edge_into(nid, port)
            kind = kinds.get((edge.src, edge.src_port)) if edge is not None else None
            if kind is None:
                break
            ins.append(kind)
        else:
            out, problem = _rule(graph, node.id, ins, label)
            if problem:
                errors.append(ShapeError(f'{label}{spec.name} "{node.name}": {problem}', node.name, nid))
                continue
            for port in node.output_ports:
                kinds[(nid, port)] = out
    return kinds, errors


def _rule(graph: Graph, nid: str, ins: list[str], label: str) -> tuple[str, str | None]:
    node = graph.nodes[nid]
    spec = node.spec
    if spec.role == "output":
        return ins[0] if ins else FLOAT, None
    library = getattr(graph, "library", None)
    block = getattr(library, "defs", {}).get(node.type) if library is not None else None
    if block is not None:
        inner = block.graph
        bound = {n.id: k for n, k in zip(inner.inputs(), ins, strict=False)}
        kinds, errors = infer_dtypes(inner, bound, f"{label}inside the block {block.id}, ")
        if errors:
            return FLOAT, str(errors[0])
        outs = [kinds.get((e.src, e.src_port), FLOAT) for o in inner.outputs()
                for e in [inner.edge_into(o.id, "x")] if e is not None]
        return (FLOAT if FLOAT in outs or not outs else INT), None  # one kind for all its outputs
    rule = spec.dtype
    if rule == "same":
        return ins[0], None
    if rule == "promote":
        return (FLOAT if FLOAT in ins else INT), None
    if rule == "index":
        if FLOAT in ins:
            return FLOAT, ("expects integer token ids (an int64 Input, e.g. the 'text' dataset) but is fed "
                           "floating-point values; set the Input's dtype to int64 or remove this layer")
        return FLOAT, None
    if INT in ins:
        return FLOAT, ("expects floating-point values but is fed integer token ids from an int64 Input; "
                       "put an Embedding first or set the Input's dtype to float32")
    return FLOAT, None
