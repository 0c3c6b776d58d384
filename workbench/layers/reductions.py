"""Reductions over chosen dims: mean, sum, maximum and minimum (never over the batch)."""

from __future__ import annotations

from typing import Any

from .costs import per_input
from .dims import distinct_dims
from .spec import BoolParam, Example, IntTupleParam, LayerSpec, Shape, register


def _reduce_shape(p: dict[str, Any], ins: list[Shape]) -> list[Shape]:
    x = ins[0]
    dims = distinct_dims(p["dims"], x)
    if p["keepdim"]:
        return [tuple(1 if i in dims else s for i, s in enumerate(x))]
    return [tuple(s for i, s in enumerate(x) if i not in dims)]


def _reduction(type_id: str, method: str, what: str, dtype: str) -> None:
    register(
        LayerSpec(
            id=type_id,
            name=type_id,
            category="Reduction",
            dtype=dtype,
            doc=f"{what} over the given dims (never the batch); keepdim leaves them as size 1. "
            "Input: [N, a, b, ...]. Output: [N, ...] without (or with size 1 at) the reduced dims.",
            params=(
                IntTupleParam("dims", (-1,), "dims to reduce (negative counts from the end)", minimum=-8, maximum=8),
                BoolParam("keepdim", False, "keep the reduced dims with size 1"),
            ),
            infer=_reduce_shape,
            emit=lambda e, p, ins, xs: [
                e.call_method(method, xs[0], tuple(distinct_dims(p["dims"], ins[0])), keepdim=p["keepdim"])
            ],
            ops=per_input(1, 1 if method == "mean" else 0),  # a read per input element; a mean divides
            key_params=("dims", "keepdim"),
            examples=(
                Example({}, ((2, 3, 5),)),
                Example({"dims": (2, 3), "keepdim": True}, ((2, 3, 4, 5),)),
                Example({"dims": (1, -1)}, ((2, 3, 4, 5),)),
            ),
        )
    )


# a mean of integers has no integer type: its input must be float; the others keep the input's type
_reduction("ReduceMean", "mean", "Mean", "float")
_reduction("ReduceSum", "sum", "Sum", "same")
_reduction("ReduceMax", "amax", "Maximum", "same")
_reduction("ReduceMin", "amin", "Minimum", "same")
