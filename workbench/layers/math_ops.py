"""Element-wise arithmetic: binary operations on two tensors, unary functions, and operations
with a constant operand; and the batched matrix product.

The binary element-wise layers broadcast by the rules of Add and Multiply (merge.py): equal
shapes, or size-1 dims when ``broadcast`` is on.
"""

from __future__ import annotations

import operator
from collections.abc import Callable
from typing import Any

import torch

from .costs import numel
from .dims import broadcast, fmt_shape
from .merge import _elementwise_shape
from .spec import (
    BoolParam,
    ChoiceParam,
    Emitter,
    Example,
    FloatParam,
    LayerShapeError,
    LayerSpec,
    Shape,
    register,
)

# --------------------------------------------------------------------------- matrix product


def _matmul_shape(p: dict[str, Any], ins: list[Shape]) -> list[Shape]:
    a, b = ins
    for i, s in enumerate(ins):
        if len(s) < 2:
            raise LayerShapeError(port=i, expected="[N, *, rows, cols] (at least 2 dims)")
        if "N" in s[-2:]:  # a rank-2 [N, k] would multiply across samples, not within each one
            raise LayerShapeError(
                "its batch dim would be a matrix dim: each sample needs a matrix, [N, *, rows, cols] (rank 3 "
                "or more); a [rows, cols] without batch (a learned Parameter) is multiplied with every sample",
                port=i,
            )
    if a[-1] != b[-2]:
        raise LayerShapeError(
            f"b has {b[-2]} rows but a has {a[-1]} columns ({fmt_shape(a)} @ {fmt_shape(b)}): they must be equal",
            port=1,
        )
    batch = broadcast(a[:-2], b[:-2])
    if batch is None:
        raise LayerShapeError(
            f"the leading dims of {fmt_shape(a)} and {fmt_shape(b)} (all but the last two) do not broadcast",
            port=1,
        )
    return [(*batch, a[-2], b[-1])]


register(
    LayerSpec(
        id="MatMul",
        name="MatMul",
        category="Math",
        dtype="promote",
        doc="Batched matrix product a @ b (torch.matmul), leading dims broadcast. "
        "Inputs: a [N, *, n, k], b [N, *, k, m] or [k, m]. Output: [N, *, n, m].",
        inputs=("a", "b"),
        infer=_matmul_shape,
        emit=lambda e, p, ins, xs: [e.call_function(torch.matmul, xs[0], xs[1])],
        # every output element sums k products (k: a's columns); the leading dims broadcast
        ops=lambda p, ins, outs: (numel(outs[0]) * ins[0][-1], 2 * numel(outs[0]) * ins[0][-1]),
        examples=(
            Example({}, ((2, 3, 4), (2, 4, 5))),
            Example({}, ((2, 3, 2, 4), (2, 1, 4, 3))),
        ),
    )
)

# --------------------------------------------------------------------------- binary element-wise


_BROADCAST = BoolParam("broadcast", False, "allow numpy-style broadcasting of size-1 dims")


def _binary(type_id: str, fn: Callable[..., Any], doc: str, dtype: str) -> None:
    register(
        LayerSpec(
            id=type_id,
            name=type_id,
            category="Math",
            dtype=dtype,
            doc=f"{doc} Inputs: in1, in2 of equal (or broadcastable) shapes. Output: the common shape.",
            params=(_BROADCAST,),
            inputs=("in1", "in2"),
            infer=_elementwise_shape,
            emit=lambda e, p, ins, xs: [e.call_function(fn, xs[0], xs[1])],
            examples=(
                Example({}, ((2, 3, 4), (2, 3, 4))),
                Example({"broadcast": True}, ((2, 5), (2, 1))),
                Example({"broadcast": True}, ((2, 1, 4), (2, 3, 1))),
            ),
        )
    )


_binary("Subtract", operator.sub, "Element-wise difference in1 - in2.", "promote")
_binary("Divide", operator.truediv, "Element-wise quotient in1 / in2 (true division).", "float")
_binary("Power", operator.pow, "Element-wise power in1 ** in2.", "float")
_binary("Maximum", torch.maximum, "Element-wise maximum of in1 and in2.", "promote")
_binary("Minimum", torch.minimum, "Element-wise minimum of in1 and in2.", "promote")

# --------------------------------------------------------------------------- unary element-wise


def _unary(type_id: str, fn: Callable[..., Any], doc: str, dtype: str) -> None:
    register(
        LayerSpec(
            id=type_id,
            name=type_id,
            category="Math",
            dtype=dtype,
            doc=f"{doc} Input: [N, *]. Output shape = input shape.",
            infer=lambda p, ins: [ins[0]],
            emit=lambda e, p, ins, xs: [e.call_function(fn, xs[0])],
            examples=(Example({}, ((2, 5),)), Example({}, ((2, 3, 4, 4),))),
        )
    )


_unary("Negate", operator.neg, "-x.", "same")
_unary("Abs", torch.abs, "|x|.", "same")
_unary("Sqrt", torch.sqrt, "Square root (NaN for negative x).", "float")
_unary("Exp", torch.exp, "e ** x.", "float")
_unary("Log", torch.log, "Natural logarithm (NaN for negative x, -inf at 0).", "float")
_unary("Reciprocal", torch.reciprocal, "1 / x.", "float")

# --------------------------------------------------------------------------- a constant operand


#: op -> (function, whether the constant is the left operand, formula for the docs);
#: maximum and minimum are torch.clamp with the constant as its min or max
_SCALAR_OPS: dict[str, tuple[Callable[..., Any], bool, str]] = {
    "add": (operator.add, False, "x + c"),
    "subtract": (operator.sub, False, "x - c"),
    "multiply": (operator.mul, False, "x * c"),
    "divide": (operator.truediv, False, "x / c"),
    "power": (operator.pow, False, "x ** c"),
    "maximum": (torch.clamp, False, "max(x, c)"),
    "minimum": (torch.clamp, False, "min(x, c)"),
    "reverse_subtract": (operator.sub, True, "c - x"),
    "reverse_divide": (operator.truediv, True, "c / x"),
    "reverse_power": (operator.pow, True, "c ** x"),
}


def _scalar_shape(p: dict[str, Any], ins: list[Shape]) -> list[Shape]:
    op, c = p["op"], p["constant"]
    if op == "divide" and c == 0:
        raise LayerShapeError("constant=0: dividing by zero gives inf or NaN everywhere", param="constant")
    if op == "reverse_power" and c < 0:
        raise LayerShapeError(f"constant={c}: a negative base gives NaN for every non-integer x", param="constant")
    return [ins[0]]


def _scalar_emit(e: Emitter, p: dict[str, Any], ins: list[Shape], xs: list[Any]) -> list[Any]:
    op, c, x = p["op"], p["constant"], xs[0]
    if op in ("maximum", "minimum"):
        return [e.call_function(torch.clamp, x, **{"min" if op == "maximum" else "max": c})]
    fn, reverse, _ = _SCALAR_OPS[op]
    return [e.call_function(fn, c, x) if reverse else e.call_function(fn, x, c)]


register(
    LayerSpec(
        id="ScalarOp",
        name="Scalar Op",
        category="Math",
        doc="An element-wise op with a constant c: "
        + ", ".join(f"{k} ({v[2]})" for k, v in _SCALAR_OPS.items())
        + ". Input: [N, *]. Output shape = input shape.",
        params=(
            ChoiceParam("op", "add", "the operation; the reverse_ ones put the constant first",
                        choices=tuple(_SCALAR_OPS)),
            FloatParam("constant", 1.0, "the constant operand c"),
        ),
        infer=_scalar_shape,
        emit=_scalar_emit,
        key_params=("op", "constant"),
        examples=tuple(
            Example({"op": op, "constant": c}, ((2, 5),) if i % 2 else ((2, 3, 4),))
            for i, (op, c) in enumerate(
                (("add", 1.5), ("subtract", 0.5), ("multiply", -2.0), ("divide", 4.0), ("power", 2.0),
                 ("maximum", 0.1), ("minimum", -0.1), ("reverse_subtract", 1.0), ("reverse_divide", 2.0),
                 ("reverse_power", 2.0))
            )
        ),
    )
)
