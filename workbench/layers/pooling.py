"""Pooling layers: max and average over windows (1-D, 2-D, 3-D), adaptive (fixed output size) pooling.

``pads`` (ONNX order: begin of each spatial dimension, then end) pads per side for the asymmetric
padding of converted models, before the torch op: with -inf for max pooling (padding never wins),
with zeros for average pooling, whose divisor then follows ONNX ``count_include_pad``: the window
clipped to the padded input (1), or only the input's own elements in it (0).
"""

from __future__ import annotations

import math
import operator
from typing import Any

import torch
import torch.nn.functional as F

from .costs import adaptive_reads, numel
from .spec import (
    BoolParam,
    BuildRule,
    EmitRule,
    Emitter,
    Example,
    LayerShapeError,
    LayerSpec,
    ModuleCall,
    OpsRule,
    Shape,
    ShapeRule,
    register,
)
from .windows import (
    ceil_may_drop,
    check_rank,
    has_pads,
    out_pattern,
    pads_param,
    pattern,
    per_dim,
    sides,
    size_param,
    spatial_out,
    torch_pad,
    window_len,
)


def _dilation(p: dict[str, Any], nd: int) -> tuple[int, ...]:
    return per_dim(p, "dilation", nd) if "dilation" in p else (1,) * nd


def _pool_rule(nd: int) -> ShapeRule:
    def infer(p: dict[str, Any], ins: list[Shape]) -> list[Shape]:
        x = ins[0]
        check_rank(x, nd)
        k, s, d = per_dim(p, "kernel_size", nd), per_dim(p, "stride", nd), _dilation(p, nd)
        if has_pads(p):
            begin, end = sides(p, nd)
            for i in range(nd):
                if max(begin[i], end[i]) >= k[i]:  # as onnxruntime: every window holds an input element
                    raise LayerShapeError(
                        f"padding + pads on one side ({max(begin[i], end[i])}) must be smaller than "
                        f"kernel_size={p['kernel_size']} (dimension {2 + i})",
                        param="pads",
                    )
                if p["ceil_mode"] and not isinstance(x[2 + i], int) and ceil_may_drop(begin[i], end[i], k[i],
                                                                                      s[i], d[i]):
                    raise LayerShapeError(
                        f"ceil_mode with pads at the end needs a fixed size along dimension {2 + i} "
                        f"(got the symbolic size {x[2 + i]})",
                        param="ceil_mode",
                    )
        else:
            pad = per_dim(p, "padding", nd)
            if any(2 * pad[i] > k[i] for i in range(nd)):  # torch's own rule for its symmetric padding
                raise LayerShapeError(
                    f"padding={p['padding']} must be at most half of kernel_size={p['kernel_size']} "
                    "(use pads for more)",
                    param="padding",
                )
        return [(x[0], x[1], *spatial_out(x, p, nd, p["ceil_mode"], d))]

    return infer


def _pool_build(cls: str, nd: int) -> BuildRule:
    def build(p: dict[str, Any], ins: list[Shape]) -> ModuleCall:
        kwargs: dict[str, Any] = {"stride": p["stride"], "padding": p["padding"]}
        if has_pads(p):  # all padding happens in F.pad (emit)
            kwargs["padding"] = 0 if nd == 1 else (0,) * nd
        # settings at torch's defaults are left out: older projects keep their generated source
        if any(v != 1 for v in _dilation(p, nd)):
            kwargs["dilation"] = p["dilation"]
        if p["ceil_mode"]:
            kwargs["ceil_mode"] = True
        if not p.get("count_include_pad", True) and not has_pads(p):
            kwargs["count_include_pad"] = False
        return ModuleCall(cls, (p["kernel_size"],), kwargs)

    return build


def _pool_emit(nd: int, is_max: bool) -> EmitRule:
    def emit(e: Emitter, p: dict[str, Any], ins: list[Shape], xs: list[Any]) -> list[Any]:
        x = xs[0]
        if not has_pads(p):
            return [e.call_module(x)]
        begin, end = sides(p, nd)
        order = torch_pad(begin, end)
        if is_max:
            y = e.call_module(e.call_function(F.pad, x, order, "constant", e.call_function(float, "-inf")))
        elif p["count_include_pad"]:
            y = e.call_module(e.call_function(F.pad, x, order))
        else:  # sum over the window / number of input elements in it (the module's divisors cancel)
            ones = e.call_function(torch.ones_like, e.call_function(operator.getitem, x, (slice(None, 1),) * 2))
            y = e.call_function(operator.truediv, e.call_module(e.call_function(F.pad, x, order)),
                                e.call_module(e.call_function(F.pad, ones, order)))
        if not p["ceil_mode"]:
            return [y]
        # torch sees the pads as input: in ceil mode it may keep a last window starting in them
        k, s, d = per_dim(p, "kernel_size", nd), per_dim(p, "stride", nd), _dilation(p, nd)
        want = spatial_out(ins[0], p, nd, True, d)
        index: list[slice] = [slice(None), slice(None)]
        for i in range(nd):
            size = ins[0][2 + i]
            got = window_len(size + begin[i] + end[i], k[i], s[i], 0, 0, d[i], True) if isinstance(size, int) else None
            index.append(slice(None, want[i]) if got is not None and got != want[i] else slice(None))
        if all(ix == slice(None) for ix in index):
            return [y]
        return [e.call_function(operator.getitem, y, tuple(index))]

    return emit


def _pool_ops(nd: int, average: bool) -> OpsRule:
    """One FLOP per window element read (a comparison or an add); averaging divides once more."""
    def ops(p: dict[str, Any], ins: list[tuple[int, ...]], outs: list[tuple[int, ...]]) -> tuple[int, int]:
        y = numel(outs[0])
        return 0, y * math.prod(per_dim(p, "kernel_size", nd)) + (y if average else 0)

    return ops


def _adaptive_ops(average: bool) -> OpsRule:
    def ops(p: dict[str, Any], ins: list[tuple[int, ...]], outs: list[tuple[int, ...]]) -> tuple[int, int]:
        x, y = ins[0], outs[0]
        reads = x[0] * x[1] * math.prod(adaptive_reads(a, b) for a, b in zip(x[2:], y[2:], strict=True))
        return 0, reads + (numel(y) if average else 0)

    return ops


_MAX_EXAMPLES = {
    1: (
        Example({}, ((2, 3, 8),)),
        Example({"kernel_size": 3, "stride": 2, "padding": 1, "dilation": 2, "ceil_mode": True}, ((2, 2, 10),)),
        Example({"kernel_size": 3, "stride": 2, "pads": (0, 1)}, ((1, 2, 6),)),
    ),
    2: (
        Example({}, ((2, 3, 8, 8),)),
        Example({"kernel_size": (3, 3), "stride": (1, 2), "padding": (1, 1)}, ((2, 2, 7, 6),)),
        Example({"kernel_size": (3, 2), "stride": (2, 2), "dilation": (2, 1), "ceil_mode": True}, ((1, 2, 9, 7),)),
        Example({"kernel_size": (3, 3), "stride": (2, 2), "pads": (0, 0, 1, 1)}, ((1, 2, 6, 6),)),
        Example({"kernel_size": (2, 3), "stride": (4, 2), "pads": (1, 0, 1, 2), "ceil_mode": True}, ((1, 1, 4, 5),)),
    ),
    3: (
        Example({}, ((1, 2, 4, 4, 4),)),
        Example({"kernel_size": (3, 2, 2), "stride": (1, 2, 2), "padding": (1, 0, 1), "dilation": (1, 2, 1),
                 "ceil_mode": True}, ((1, 2, 4, 5, 5),)),
        Example({"kernel_size": (2, 2, 2), "stride": (2, 2, 2), "pads": (0, 1, 0, 1, 0, 1)}, ((2, 1, 3, 4, 5),)),
    ),
}

_AVG_EXAMPLES = {
    1: (
        Example({}, ((2, 3, 8),)),
        Example({"kernel_size": 3, "stride": 2, "padding": 1, "ceil_mode": True, "count_include_pad": False},
                ((2, 2, 8),)),
        Example({"kernel_size": 3, "stride": 2, "pads": (1, 2), "count_include_pad": False}, ((1, 2, 7),)),
    ),
    2: (
        Example({}, ((2, 3, 8, 8),)),
        Example({"kernel_size": (3, 3), "stride": (1, 2), "padding": (1, 1)}, ((2, 2, 7, 6),)),
        Example({"kernel_size": (3, 3), "stride": (2, 2), "padding": (1, 1), "ceil_mode": True,
                 "count_include_pad": False}, ((1, 2, 6, 7),)),
        Example({"kernel_size": (3, 3), "stride": (2, 2), "pads": (0, 0, 1, 1)}, ((1, 2, 6, 6),)),
        Example({"kernel_size": (2, 3), "stride": (3, 2), "padding": (0, 1), "pads": (1, 0, 0, 1),
                 "ceil_mode": True, "count_include_pad": False}, ((1, 2, 5, 6),)),
    ),
    3: (
        Example({}, ((1, 2, 4, 4, 4),)),
        Example({"kernel_size": (3, 2, 2), "stride": (2, 1, 2), "padding": (1, 0, 1), "ceil_mode": True,
                 "count_include_pad": False}, ((1, 2, 5, 4, 5),)),
        Example({"kernel_size": (2, 2, 2), "stride": (2, 2, 2), "pads": (1, 0, 0, 0, 1, 1)}, ((2, 1, 3, 4, 5),)),
    ),
}

for _nd in (1, 2, 3):
    _common = (
        size_param(_nd, "kernel_size", 2, "window size" if _nd == 1 else "window size per dimension", 1),
        size_param(_nd, "stride", 2, "step between windows", 1),
        size_param(_nd, "padding", 0, "padding on both sides (at most half the window)", 0),
    )
    register(
        LayerSpec(
            id=f"MaxPool{_nd}d",
            name=f"MaxPool{_nd}d",
            category="Pooling",
            doc=f"Maximum over windows. Input: {pattern(_nd)}. Output: {out_pattern(_nd)}.",
            params=(
                *_common,
                size_param(_nd, "dilation", 1, "spacing between window elements", 1),
                BoolParam("ceil_mode", False, "round the output size up: a last, partial window"),
                pads_param(_nd, "padded with -inf before pooling"),
            ),
            infer=_pool_rule(_nd),
            build=_pool_build(f"MaxPool{_nd}d", _nd),
            emit=_pool_emit(_nd, True),
            ops=_pool_ops(_nd, False),
            key_params=("kernel_size",),
            examples=_MAX_EXAMPLES[_nd],
            dtype="float",
        )
    )
    register(
        LayerSpec(
            id=f"AvgPool{_nd}d",
            name=f"AvgPool{_nd}d",
            category="Pooling",
            doc=f"Average over windows. Input: {pattern(_nd)}. Output: {out_pattern(_nd)}.",
            params=(
                *_common,
                BoolParam("ceil_mode", False, "round the output size up: a last, partial window"),
                BoolParam("count_include_pad", True, "divide by the window size including padding (else by "
                          "the number of input elements in the window)"),
                pads_param(_nd, "padded with zeros before pooling (count_include_pad as in ONNX)"),
            ),
            infer=_pool_rule(_nd),
            build=_pool_build(f"AvgPool{_nd}d", _nd),
            emit=_pool_emit(_nd, False),
            ops=_pool_ops(_nd, True),
            key_params=("kernel_size",),
            examples=_AVG_EXAMPLES[_nd],
            dtype="float",
        )
    )

# --------------------------------------------------------------------------- adaptive pooling


def _adaptive_rule(nd: int) -> ShapeRule:
    def infer(p: dict[str, Any], ins: list[Shape]) -> list[Shape]:
        x = ins[0]
        check_rank(x, nd)
        return [(x[0], x[1], *per_dim(p, "output_size", nd))]

    return infer


# sizes the output divides: ONNX has no adaptive pooling, torch exports those as plain pooling
_ADAPTIVE_INPUTS = {1: ((2, 3, 7), (2, 3, 9)), 2: ((2, 3, 5, 5), (2, 3, 6, 9)), 3: ((1, 2, 4, 5, 3), (2, 1, 6, 6, 7))}
_ADAPTIVE_SIZES = {1: 3, 2: (2, 3), 3: (2, 3, 1)}

for _nd in (1, 2, 3):
    for _kind, _what in (("Avg", "Average"), ("Max", "Maximum")):
        _id = f"Adaptive{_kind}Pool{_nd}d"
        register(
            LayerSpec(
                id=_id,
                name=_id,
                category="Pooling",
                doc=f"{_what}-pools to a fixed size (1 = global {_what.lower()} pooling). Input: {pattern(_nd)}. "
                f"Output: [N, C, *output_size].",
                params=(size_param(_nd, "output_size", 1, "output size" if _nd == 1 else "output size per dimension",
                                   1),),
                infer=_adaptive_rule(_nd),
                build=lambda p, ins, _cls=_id: ModuleCall(_cls, (p["output_size"],)),
                ops=_adaptive_ops(_kind == "Avg"),
                key_params=("output_size",),
                examples=(Example({}, (_ADAPTIVE_INPUTS[_nd][0],)),
                          Example({"output_size": _ADAPTIVE_SIZES[_nd]}, (_ADAPTIVE_INPUTS[_nd][1],))),
                dtype="float",
            )
        )
