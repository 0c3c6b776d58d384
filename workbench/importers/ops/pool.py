"""Pooling and reductions: MaxPool, AveragePool, global pooling, ReduceMean/Sum/Max/Min."""

from __future__ import annotations

from typing import Any

from ..registry import Emission, OnnxNode, Unsupported, converter, one
from .common import auto_pads, axis, ints, rank_of, size_value, split_pads


def _pool(node: OnnxNode) -> Emission:
    kernel = [int(k) for k in node.attr("kernel_shape", [])]
    nd = len(kernel)
    if nd not in (1, 2, 3):
        raise Unsupported(f"{nd}-D pooling")
    is_max = node.op == "MaxPool"
    strides = [int(s) for s in node.attr("strides", [1] * nd)]
    dilations = [int(d) for d in node.attr("dilations", [1] * nd)]
    if not is_max and any(d != 1 for d in dilations):
        raise Unsupported("dilated average pooling")
    pads = auto_pads(node, kernel, strides, dilations)
    padding, extra = split_pads(pads, nd)
    if any(2 * p > k for p, k in zip(padding, kernel, strict=True)):  # torch's limit on its own padding
        padding, extra = [0] * nd, [int(p) for p in pads]
    params: dict[str, Any] = {"kernel_size": size_value(kernel, nd), "stride": size_value(strides, nd),
                              "padding": size_value(padding, nd), "ceil_mode": bool(node.attr("ceil_mode", 0)),
                              "pads": extra}
    if is_max:
        params["dilation"] = size_value(dilations, nd)
    else:
        params["count_include_pad"] = bool(node.attr("count_include_pad", 0))
    return one(f"{'Max' if is_max else 'Avg'}Pool{nd}d", node, params)


converter("MaxPool", targets=("MaxPool1d", "MaxPool2d", "MaxPool3d"))(_pool)
converter("AveragePool", targets=("AvgPool1d", "AvgPool2d", "AvgPool3d"))(_pool)


@converter("GlobalAveragePool", targets=("AdaptiveAvgPool1d", "AdaptiveAvgPool2d", "AdaptiveAvgPool3d"))
@converter("GlobalMaxPool", targets=("AdaptiveMaxPool1d", "AdaptiveMaxPool2d", "AdaptiveMaxPool3d"))
def global_pool(node: OnnxNode) -> Emission:
    nd = rank_of(node.inputs[0]) - 2
    if nd not in (1, 2, 3):
        raise Unsupported(f"global pooling of a rank-{nd + 2} input")
    kind = "Avg" if node.op == "GlobalAveragePool" else "Max"
    return one(f"Adaptive{kind}Pool{nd}d", node, {"output_size": size_value([1] * nd, nd)})


_REDUCE = {"ReduceMean": "ReduceMean", "ReduceSum": "ReduceSum", "ReduceMax": "ReduceMax", "ReduceMin": "ReduceMin"}
#: opsets from which the axes are an input rather than an attribute
_AXES_INPUT = {"ReduceSum": 13, "ReduceMean": 18, "ReduceMax": 18, "ReduceMin": 18}


def _reduce(node: OnnxNode) -> Emission:
    rank = rank_of(node.inputs[0])
    if node.opset >= _AXES_INPUT[node.op]:
        given = node.input(1)
        axes_value = given.fixed() if given is not None else None
        if given is not None and axes_value is None:
            raise Unsupported("axes computed at run time")
        axes = ints(axes_value) if axes_value is not None and axes_value.size else []
    else:
        axes = [int(a) for a in node.attr("axes", [])]
    if not axes:
        if int(node.attr("noop_with_empty_axes", 0)):
            return Emission(aliases={node.outputs[0].name: node.inputs[0].name})  # type: ignore[union-attr]
        raise Unsupported("a reduction over every dimension, the batch included")
    dims = sorted(axis(a, rank) for a in axes)
    keep = bool(node.attr("keepdims", 1))
    if node.op == "ReduceMean" and keep and rank in (3, 4, 5) and dims == list(range(2, rank)):
        nd = rank - 2  # global average pooling, as exporters write it
        return one(f"AdaptiveAvgPool{nd}d", node, {"output_size": size_value([1] * nd, nd)})
    return one(_REDUCE[node.op], node, {"dims": dims, "keepdim": keep})


for _op in _REDUCE:
    converter(_op, targets=(_REDUCE[_op], "AdaptiveAvgPool2d"))(_reduce)
