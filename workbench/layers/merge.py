"""Layers that merge several inputs: Add, Multiply, Concat."""

from __future__ import annotations

import operator
from functools import reduce
from typing import Any

import torch

from .costs import numel, zero
from .dims import broadcast, fmt_shape
from .spec import BoolParam, Emitter, Example, IntParam, LayerShapeError, LayerSpec, Shape, register


def _ports(p: dict[str, Any]) -> tuple[str, ...]:
    return tuple(f"in{i + 1}" for i in range(p["num_inputs"]))


_NUM_INPUTS = IntParam("num_inputs", 2, "number of input ports", minimum=2, maximum=16)


def _elementwise_shape(p: dict[str, Any], ins: list[Shape]) -> list[Shape]:
    out = ins[0]
    for i, s in enumerate(ins[1:], start=1):
        if not p["broadcast"] and tuple(s) != tuple(out):
            raise LayerShapeError(
                f"input in{i + 1} has shape {fmt_shape(s)}, which does not match {fmt_shape(out)} from in1 "
                "(a residual connection needs equal shapes; enable broadcast to allow size-1 dimensions)",
                port=i,
            )
        b = broadcast(out, s)
        if b is None:
            raise LayerShapeError(
                f"input in{i + 1} has shape {fmt_shape(s)}, which does not match {fmt_shape(out)} from in1"
                " (shapes must be equal or broadcast)",
                port=i,
            )
        out = b
    return [out]


def _fold(op: Any):
    def emit(e: Emitter, p: dict[str, Any], ins: list[Shape], xs: list[Any]) -> list[Any]:
        return [reduce(lambda a, b: e.call_function(op, a, b), xs)]

    return emit


for _id, _op, _doc in (
    ("Add", operator.add, "Element-wise sum (residual connections). Inputs: equal or broadcastable shapes."),
    ("Multiply", operator.mul, "Element-wise product (gating). Inputs: equal or broadcastable shapes."),
):
    register(
        LayerSpec(
            id=_id,
            name=_id,
            category="Merge",
            dtype="promote",
            doc=f"{_doc} Output: the common shape.",
            params=(_NUM_INPUTS, BoolParam("broadcast", False, "allow numpy-style broadcasting of size-1 dims")),
            inputs=_ports,
            infer=_elementwise_shape,
            emit=_fold(_op),
            ops=lambda p, ins, outs: (0, (p["num_inputs"] - 1) * numel(outs[0])),
            key_params=("num_inputs",),
            examples=(
                Example({"num_inputs": 2}, ((2, 3, 4), (2, 3, 4))),
                Example({"num_inputs": 3, "broadcast": True}, ((2, 5), (2, 5), (2, 1))),
            ),
        )
    )


def _concat_shape(p: dict[str, Any], ins: list[Shape]) -> list[Shape]:
    first = ins[0]
    rank = len(first)
    d = p["dim"]
    if not -rank <= d < rank or d in (0, -rank):
        raise LayerShapeError(
            f"dim={d} must name a non-batch dimension of {fmt_shape(first)}", param="dim"
        )
    d %= rank
    total: Any = 0
    for i, s in enumerate(ins):
        if len(s) != rank or any(a != b for j, (a, b) in enumerate(zip(s, first, strict=True)) if j != d):
            raise LayerShapeError(
                f"input in{i + 1} has shape {fmt_shape(s)}; all inputs must match {fmt_shape(first)} except in dim {d}",
                port=i,
            )
        total = total + s[d] if isinstance(total, int) and isinstance(s[d], int) else f"{total}+{s[d]}"
    return [(*first[:d], total, *first[d + 1 :])]


register(
    LayerSpec(
        id="Concat",
        name="Concat",
        category="Merge",
        dtype="promote",
        doc="Concatenates inputs along dim (1 = channels/features). Output: sizes along dim added.",
        params=(_NUM_INPUTS, IntParam("dim", 1, "dimension to join along", minimum=-8, maximum=8)),
        inputs=_ports,
        infer=_concat_shape,
        emit=lambda e, p, ins, xs: [e.call_function(torch.cat, list(xs), p["dim"])],
        ops=zero,  # a copy
        key_params=("dim",),
        examples=(
            Example({"num_inputs": 2, "dim": 1}, ((2, 3, 4, 4), (2, 5, 4, 4))),
            Example({"num_inputs": 3, "dim": -1}, ((2, 3), (2, 1), (2, 2))),
        ),
    )
)
