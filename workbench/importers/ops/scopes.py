"""Module scopes: the nodes an exporter recorded under one torch module, what crosses their border,
and the matrix products inside (for recognisers that read a whole module as one layer)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..registry import DATA, ModelView, OnnxNode, Unsupported
from .common import data_users, first_out

#: ops that only rearrange or rescale one data tensor (followed back to find where a tensor came from)
_LAYOUT = {"Transpose", "Reshape", "Unsqueeze", "Squeeze", "Identity", "Gather", "Slice", "Split", "Mul", "Div",
           "Cast", "Expand", "Concat"}


@dataclass(frozen=True)
class Proj:
    node: OnnxNode
    src: str
    weight: np.ndarray  # [out, in]
    bias: np.ndarray | None
    out: str
    nodes: tuple[int, ...]


class Group:
    """The live nodes of one module and what crosses its border."""

    def __init__(self, view: ModelView, scope: str) -> None:
        self.view = view
        self.scope = scope
        self.nodes = view.in_scope(scope)
        self.index = {n.index for n in self.nodes}
        self.made = {o.name for n in self.nodes for o in n.outputs if o is not None}

    def inputs(self) -> list[str]:
        """The data tensors from outside that the group's nodes read for their values."""
        seen: list[str] = []
        for n in self.nodes:
            if n.op in ("Shape", "Size"):
                continue
            for v in n.inputs:
                if v is not None and v.kind == DATA and v.name not in self.made and v.name not in seen:
                    seen.append(v.name)
        return seen

    def inside(self, tensor: str) -> bool:
        return tensor in self.made

    def outputs(self) -> list[str]:
        outs = []
        for n in self.nodes:
            for o in n.outputs:
                if o is None or o.kind != DATA:
                    continue
                readers = [u for u in data_users(self.view, o.name) if u.index not in self.index]
                if readers or self.view.is_output(o.name):
                    outs.append(o.name)
        return outs

    def child(self, name: str) -> str:
        return f"{self.scope}.{name}"

    def in_child(self, name: str) -> list[OnnxNode]:
        prefix = self.child(name)
        return [n for n in self.nodes if prefix in n.scope]

    def children(self) -> set[str]:
        prefix = self.scope + "."
        return {s[len(prefix):].split(".")[0] for n in self.nodes for s in n.scope if s.startswith(prefix)}


def origin(group: Group, tensor: str) -> str | None:
    """The tensor from outside the group that ``tensor`` is a reshaping of (None when it is computed)."""
    seen = 0
    while group.inside(tensor) and seen < 64:
        p = group.view.producer(tensor)
        if p is None or p.op not in _LAYOUT:
            return None
        data = [v for v in p.inputs if v is not None and v.kind == DATA]
        if len(data) != 1:
            return None
        tensor, seen = data[0].name, seen + 1
    return tensor


def projections(group: Group) -> list[Proj]:
    out = []
    for n in group.nodes:
        if n.op not in ("MatMul", "Gemm") or n.inputs[0] is None or n.inputs[0].kind != DATA:
            continue
        w = n.inputs[1].fixed() if n.inputs[1] is not None else None
        if w is None or w.ndim != 2:
            continue
        bias = None
        if n.op == "Gemm":
            if int(n.attr("transA", 0)) or float(n.attr("alpha", 1.0)) != 1.0 or float(n.attr("beta", 1.0)) != 1.0:
                raise Unsupported("a projection with transA, alpha or beta")
            weight = w if int(n.attr("transB", 0)) else w.T
            bias = n.input(2).fixed() if n.input(2) is not None else None  # type: ignore[union-attr]
        else:
            weight = w.T
        tensor, nodes = first_out(n), [n.index]
        users = data_users(group.view, tensor)
        if bias is None and len(users) == 1 and users[0].op == "Add" and users[0].index in group.index:
            other = [v for v in users[0].inputs if v is not None and v.name != tensor]
            value = other[0].fixed() if len(other) == 1 else None
            if value is not None and value.size == weight.shape[0]:
                bias, tensor = value.reshape(-1), first_out(users[0])
                nodes.append(users[0].index)
        out.append(Proj(n, n.inputs[0].name, np.asarray(weight, np.float32), None if bias is None else
                         np.asarray(bias, np.float32).reshape(-1), tensor, tuple(nodes)))
    return out


def forward(group: Group, tensor: str) -> set[tuple[int, int]]:
    """The (MatMul of two data operands or Attention, operand) pairs ``tensor`` reaches in the group."""
    hits: set[tuple[int, int]] = set()
    stack, seen = [tensor], set()
    while stack:
        t = stack.pop()
        if t in seen:
            continue
        seen.add(t)
        for u in group.view.consumers(t):
            if u.index not in group.index or u.op in ("Shape", "Size"):
                continue
            if u.op == "MatMul" and all(v is not None and v.kind == DATA for v in u.inputs[:2]):
                hits |= {(u.index, i) for i, v in enumerate(u.inputs[:2]) if v is not None and v.name == t}
                continue
            if u.op == "Attention":  # opset 23: queries, keys, values are inputs 0, 1, 2
                hits |= {(u.index, i) for i, v in enumerate(u.inputs[:3]) if v is not None and v.name == t}
                continue
            stack += [o.name for o in u.outputs if o is not None and o.kind == DATA]
    return hits


