"""What a model costs, node by node, before anything is allocated.

Per node: multiply-accumulates and FLOPs of one forward pass (each layer declares its rule,
``workbench.analysis.macs`` defines both and the fallback), trainable parameters and their bytes
(from shape inference), and the bytes of its outputs at a batch size (activation memory).  A
block instance costs what its inside costs.  Compiling, training and exporting refuse a model that
cannot fit in this machine's memory with the figure and the nodes that weigh most, instead of
dying in the allocator.  Latency is measured, not inferred: ``workbench.analysis.profile``.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass, field
from typing import Any

from ..errors import ShapeError
from ..graph import Graph
from ..layers import Shape
from ..shapes import ShapeInference
from .dtypes import INT, infer_dtypes
from .macs import concrete, node_ops

#: bytes per stored value: parameters and floating-point activations are float32
FLOAT_BYTES = 4
#: integer tensors (token ids) are int64
INT_BYTES = 8

#: optimizer state kept per parameter (Adam's two moments; SGD's and RMSprop's momentum buffer)
OPTIMIZER_STATES = {"sgd": 1, "adam": 2, "adamw": 2, "rmsprop": 2}


@dataclass
class NodeCost:
    """The cost of one node.

    Attributes:
        node_id, name, type: which node.
        params: trainable parameters (as inferred).
        param_bytes: their storage.
        activation_bytes: its outputs' storage at the table's batch size (a block instance: every
            output inside it).
        macs: multiply-accumulates of one forward pass at the table's batch size.
        flops: floating-point operations of that pass (2 per MAC and the element-wise work).
        latency_ms: the median time of the node on a device, when a profile measured it.
    """

    node_id: str
    name: str
    type: str
    params: int = 0
    param_bytes: int = 0
    activation_bytes: int = 0
    macs: int = 0
    flops: int = 0
    latency_ms: float | None = None

    @property
    def flop_counter_flops(self) -> int:
        """What ``torch.utils.flop_counter`` counts for this node: 2 per MAC, nothing else."""
        return 2 * self.macs

    def as_dict(self) -> dict[str, Any]:
        """The figures ``workbench check --json`` lists per node (latency only when measured)."""
        out: dict[str, Any] = {"macs": self.macs, "flops": self.flops, "flop_counter_flops": self.flop_counter_flops,
                               "param_bytes": self.param_bytes, "activation_bytes": self.activation_bytes}
        if self.latency_ms is not None:
            out["latency_ms"] = self.latency_ms
        return out

    def add(self, other: NodeCost) -> None:
        """Add ``other``'s figures to this one's (a block instance sums its inside)."""
        self.params += other.params
        self.param_bytes += other.param_bytes
        self.activation_bytes += other.activation_bytes
        self.macs += other.macs
        self.flops += other.flops


@dataclass
class CostTable:
    """Per-node costs of a graph at one batch size, in the graph's node order.

    ``symbol_size`` is the size every other symbolic dimension (a length ``T``) took.
    """

    batch: int
    nodes: list[NodeCost] = field(default_factory=list)
    symbol_size: int = 1

    @property
    def params(self) -> int:
        return sum(n.params for n in self.nodes)

    @property
    def param_bytes(self) -> int:
        return sum(n.param_bytes for n in self.nodes)

    @property
    def activation_bytes(self) -> int:
        return sum(n.activation_bytes for n in self.nodes)

    @property
    def macs(self) -> int:
        return sum(n.macs for n in self.nodes)

    @property
    def flops(self) -> int:
        return sum(n.flops for n in self.nodes)

    @property
    def flop_counter_flops(self) -> int:
        return 2 * self.macs

    @property
    def latency_ms(self) -> float | None:
        """The sum of the measured node latencies (None before a profile)."""
        measured = [n.latency_ms for n in self.nodes if n.latency_ms is not None]
        return sum(measured) if measured else None

    def by_id(self) -> dict[str, NodeCost]:
        return {n.node_id: n for n in self.nodes}

    def attach(self, node_ms: dict[str, float]) -> None:
        """Take the measured median latency of each node (node id -> ms) from a profile run."""
        for n in self.nodes:
            n.latency_ms = node_ms.get(n.node_id)

    def totals(self) -> dict[str, Any]:
        """The ``cost`` section of ``workbench check --json``."""
        out: dict[str, Any] = {"batch": self.batch, "symbol_size": self.symbol_size, "macs": self.macs,
                               "flops": self.flops, "flop_counter_flops": self.flop_counter_flops,
                               "params": self.params, "param_bytes": self.param_bytes,
                               "activation_bytes": self.activation_bytes}
        if self.latency_ms is not None:
            out["latency_ms"] = self.latency_ms
        return out

    def biggest(self, attr: str, count: int = 3) -> list[NodeCost]:
        """The ``count`` nodes with the largest ``attr`` (ties keep node order), zeros left out."""
        ranked = sorted(self.nodes, key=lambda n: -(getattr(n, attr) or 0))
        return [n for n in ranked[:count] if (getattr(n, attr) or 0) > 0]


def _elements(shape: Shape, batch: int, symbol_size: int) -> int:
    return math.prod(concrete(shape, batch, symbol_size))


def cost_table(graph: Graph, shapes: ShapeInference | None = None, batch: int = 1, symbol_size: int = 1,
               ops: bool = True) -> CostTable:
    """Costs of every node that inferred; nodes with errors or unknown shapes cost 0.

    Args:
        shapes: inference to reuse (computed when None).
        batch: the size of the symbolic batch dimension ``N``.
        symbol_size: the size taken for other symbols (a variable length ``T``).
        ops: also count MACs and FLOPs and look inside blocks (False: parameters and the
            instances' own outputs only, the quick check before compiling).
    """
    si = shapes
    if si is None:
        si = ShapeInference(graph, live=False)
        si.update()
    table = CostTable(batch, symbol_size=symbol_size)
    table.nodes = _costs(graph, si, batch, symbol_size, ops, None, {})
    return table


def _costs(graph: Graph, si: ShapeInference, batch: int, symbol_size: int, ops: bool,
           bound_kinds: dict[str, str] | None, memo: dict[Any, NodeCost]) -> list[NodeCost]:
    kinds = infer_dtypes(graph, bound_kinds)[0] if ops else {}
    library = getattr(graph, "library", None)
    blocks = getattr(library, "defs", {}) if library is not None else {}
    rows = []
    for nid, info in si.all().items():
        node = graph.nodes[nid]
        cost = NodeCost(nid, node.name, node.type)
        rows.append(cost)
        if info.status != "ok" or nid in si.bound_inputs:  # a block's Input: its instance's input, counted outside
            continue
        ins = [s for s in info.inputs.values() if s is not None]
        block = blocks.get(node.type) if ops else None
        if block is not None:
            in_kinds = []
            for port in node.input_ports:
                edge = graph.edge_into(nid, port)
                in_kinds.append(kinds.get((edge.src, edge.src_port), "float") if edge is not None else "float")
            cost.add(_block_cost(block, node.params, ins, in_kinds, batch, symbol_size, memo))
            continue
        cost.params = int(info.params)
        cost.param_bytes = cost.params * FLOAT_BYTES
        cost.activation_bytes = sum(
            _elements(s, batch, symbol_size) * (INT_BYTES if kinds.get((nid, port)) == INT else FLOAT_BYTES)
            for port, s in info.outputs.items())
        if ops:
            cost.macs, cost.flops = node_ops(node.spec, node.params, [concrete(s, batch, symbol_size) for s in ins],
                                             [concrete(s, batch, symbol_size) for s in info.outputs.values()])
    return rows


def _freeze(value: Any) -> Any:
    if isinstance(value, (list, tuple)):
        return tuple(_freeze(v) for v in value)
    if isinstance(value, dict):
        return tuple(sorted((k, _freeze(v)) for k, v in value.items()))
    return value


def _block_cost(block: Any, params: dict[str, Any], ins: list[Shape], in_kinds: list[str], batch: int,
                symbol_size: int, memo: dict[Any, NodeCost]) -> NodeCost:
    """The sum of an instance's inside (its Inputs bound to what the instance is fed)."""
    key = (block.id, _freeze(params), _freeze(ins), tuple(in_kinds), batch, symbol_size)
    hit = memo.get(key)
    if hit is None:
        hit = NodeCost("", "", block.id)
        resolved = block.resolve(params, ins)
        if resolved.graph is not None:
            inner = ShapeInference(resolved.graph, live=False, bound_inputs=resolved.bound)
            inner.update()
            bound_kinds = {n.id: k for n, k in zip(resolved.graph.inputs(), in_kinds, strict=False)}
            for row in _costs(resolved.graph, inner, batch, symbol_size, True, bound_kinds, memo):
                hit.add(row)
        memo[key] = hit
    return hit


def machine_memory() -> int | None:
    """This machine's physical memory in bytes, or None where the platform does not say."""
    try:
        return int(os.sysconf("SC_PAGE_SIZE")) * int(os.sysconf("SC_PHYS_PAGES"))
    except (AttributeError, ValueError, OSError):
        return None


def format_bytes(n: float) -> str:
    """``8.0 EB``, ``23.4 GB``, ``512 B`` (binary multiples, as memory is sold and shown)."""
    for unit in ("B", "KB", "MB", "GB", "TB", "PB"):
        if n < 1024:
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} EB" if n < 1024 else f"{n:.3g} EB"


def training_bytes(table: CostTable, optimizer: str = "adam") -> int:
    """Memory one training step needs: weights, gradients and optimizer state, plus every
    activation kept for the backward pass and its gradient (an estimate, from below)."""
    per_param = 2 + OPTIMIZER_STATES.get(optimizer, 2)
    return table.param_bytes * per_param + 2 * table.activation_bytes


def too_big(table: CostTable, need: int, what: str, budget: int | None, attr: str = "param_bytes",
            graph_label: str = "the model") -> ShapeError | None:
    """A located error when ``need`` bytes exceed ``budget`` (None: this machine's memory).

    The error names the node that weighs most by ``attr`` (``param_bytes`` or
    ``activation_bytes``) and lists the three biggest.
    """
    budget = machine_memory() if budget is None else budget
    if budget is None or need <= budget:
        return None
    top = table.biggest(attr) or table.biggest("param_bytes") or table.biggest("activation_bytes")
    listing = ", ".join(f'"{n.name}" {n.type} {format_bytes(getattr(n, attr))}' for n in top)
    message = (f"{graph_label} needs {format_bytes(need)} for {what} (this machine has {format_bytes(budget)})"
               + (f"; biggest: {listing}" if listing else "") + ": make the biggest layers smaller")
    where = top[0] if top else None
    return ShapeError(message, where.name if where else "(graph)", where.node_id if where else "")


def parameters_fit(graph: Graph, shapes: ShapeInference, budget: int | None = None) -> ShapeError | None:
    """The error :func:`~workbench.compiler.compile_graph` raises before creating any parameter
    that cannot fit in memory (None when they fit)."""
    table = cost_table(graph, shapes, ops=False)
    return too_big(table, table.param_bytes, "its parameters", budget)
