"""What a model costs, node by node, before anything is allocated.

Parameter counts come from shape inference (each layer declares its count rule);
activation sizes from the inferred output shapes at a batch size.  Compiling,
training and exporting refuse a model that cannot fit in this machine's memory
with the figure and the nodes that weigh most, instead of dying in the allocator.
The per-node record is meant to grow (MACs and FLOPs per node go beside these).
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass, field

from ..errors import ShapeError
from ..graph import Graph
from ..layers import Shape
from ..shapes import ShapeInference

#: bytes per stored value: parameters and activations are float32
FLOAT_BYTES = 4

#: optimizer state kept per parameter (Adam's two moments; SGD's and RMSprop's momentum buffer)
OPTIMIZER_STATES = {"sgd": 1, "adam": 2, "adamw": 2, "rmsprop": 2}


@dataclass
class NodeCost:
    """The cost of one node.

    Attributes:
        node_id, name, type: which node.
        params: trainable parameters (as inferred).
        param_bytes: their storage.
        activation_bytes: its outputs' storage at the table's batch size.
    """

    node_id: str
    name: str
    type: str
    params: int = 0
    param_bytes: int = 0
    activation_bytes: int = 0


@dataclass
class CostTable:
    """Per-node costs of a graph at one batch size, in the graph's node order."""

    batch: int
    nodes: list[NodeCost] = field(default_factory=list)

    @property
    def params(self) -> int:
        return sum(n.params for n in self.nodes)

    @property
    def param_bytes(self) -> int:
        return sum(n.param_bytes for n in self.nodes)

    @property
    def activation_bytes(self) -> int:
        return sum(n.activation_bytes for n in self.nodes)

    def biggest(self, attr: str, count: int = 3) -> list[NodeCost]:
        """The ``count`` nodes with the largest ``attr`` (ties keep node order), zeros left out."""
        ranked = sorted(self.nodes, key=lambda n: -getattr(n, attr))
        return [n for n in ranked[:count] if getattr(n, attr) > 0]


def _elements(shape: Shape, batch: int, symbol_size: int) -> int:
    return math.prod(batch if d == "N" else d if isinstance(d, int) else symbol_size for d in shape)


def cost_table(graph: Graph, shapes: ShapeInference | None = None, batch: int = 1, symbol_size: int = 1) -> CostTable:
    """Costs of every node that inferred; nodes with errors or unknown shapes cost 0.

    Args:
        shapes: inference to reuse (computed when None).
        batch: the size of the symbolic batch dimension ``N``.
        symbol_size: the size taken for other symbols (a variable length ``T``).
    """
    si = shapes
    if si is None:
        si = ShapeInference(graph, live=False)
        si.update()
    table = CostTable(batch)
    for nid, info in si.all().items():
        node = graph.nodes[nid]
        cost = NodeCost(nid, node.name, node.type)
        if info.status == "ok":
            cost.params = int(info.params)
            cost.param_bytes = cost.params * FLOAT_BYTES
            cost.activation_bytes = sum(_elements(s, batch, symbol_size) for s in info.outputs.values()) * FLOAT_BYTES
        table.nodes.append(cost)
    return table


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
    table = cost_table(graph, shapes)
    return too_big(table, table.param_bytes, "its parameters", budget)
