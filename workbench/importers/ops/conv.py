"""Convolutions: Conv and ConvTranspose (1-D, 2-D, 3-D; groups, dilation, asymmetric pads)."""

from __future__ import annotations

from typing import Any

from ..registry import Emission, OnnxNode, Unsupported, converter, one
from .common import auto_pads, size_value, split_pads


def _bias(node: OnnxNode) -> Any:
    return node.optional_const(2)


@converter("Conv", targets=("Conv1d", "Conv2d", "Conv3d"))
def conv(node: OnnxNode) -> Emission:
    w = node.const_input(1, "the weight")
    nd = w.ndim - 2
    if nd not in (1, 2, 3):
        raise Unsupported(f"a {nd}-D convolution")
    kernel = list(w.shape[2:])
    strides = [int(s) for s in node.attr("strides", [1] * nd)]
    dilations = [int(d) for d in node.attr("dilations", [1] * nd)]
    padding, extra = split_pads(auto_pads(node, kernel, strides, dilations), nd)
    bias = _bias(node)
    params: dict[str, Any] = {
        "out_channels": int(w.shape[0]), "kernel_size": size_value(kernel, nd), "stride": size_value(strides, nd),
        "padding": size_value(padding, nd), "dilation": size_value(dilations, nd),
        "groups": int(node.attr("group", 1)), "bias": bias is not None, "pads": extra,
    }
    weights = {"weight": w} | ({"bias": bias} if bias is not None else {})
    return one(f"Conv{nd}d", node, params, weights=weights, name=node.hint(1))


@converter("ConvTranspose", targets=("ConvTranspose1d", "ConvTranspose2d", "ConvTranspose3d"))
def conv_transpose(node: OnnxNode) -> Emission:
    w = node.const_input(1, "the weight")
    nd = w.ndim - 2
    if nd not in (1, 2, 3):
        raise Unsupported(f"a {nd}-D transposed convolution")
    groups = int(node.attr("group", 1))
    kernel = list(w.shape[2:])
    strides = [int(s) for s in node.attr("strides", [1] * nd)]
    dilations = [int(d) for d in node.attr("dilations", [1] * nd)]
    out_pad = [int(p) for p in node.attr("output_padding", [0] * nd)]
    pads = _transpose_pads(node, kernel, strides, dilations, out_pad)
    padding, extra = split_pads(pads, nd)
    bias = _bias(node)
    params: dict[str, Any] = {
        "out_channels": int(w.shape[1]) * groups, "kernel_size": size_value(kernel, nd),
        "stride": size_value(strides, nd), "padding": size_value(padding, nd),
        "output_padding": size_value(out_pad, nd), "dilation": size_value(dilations, nd), "groups": groups,
        "bias": bias is not None, "pads": extra,
    }
    weights = {"weight": w} | ({"bias": bias} if bias is not None else {})
    return one(f"ConvTranspose{nd}d", node, params, weights=weights, name=node.hint(1))


def _transpose_pads(node: OnnxNode, kernel: list[int], strides: list[int], dilations: list[int],
                    out_pad: list[int]) -> list[int]:
    """Explicit pads, from ``pads``, ``auto_pad`` or ``output_shape`` (ONNX's formulas)."""
    nd = len(kernel)
    shape = node.attr("output_shape")
    mode = node.attr("auto_pad", "NOTSET")
    if shape is None and mode in ("NOTSET", "", "VALID"):
        return [int(p) for p in node.attr("pads", [0] * (2 * nd))] if mode != "VALID" else [0] * (2 * nd)
    x = node.inputs[0]
    sizes = list(x.shape[2:]) if x is not None and x.shape is not None else []
    if len(sizes) != nd or not all(isinstance(s, int) for s in sizes):
        raise Unsupported("output_shape or auto_pad on an input whose spatial sizes are not fixed")
    wanted = [int(s) for s in (shape[-nd:] if shape is not None else [int(s) * st for s, st in zip(sizes, strides,
                                                                                                  strict=True)])]
    begin, end = [], []
    for size, k, s, d, op, want in zip(sizes, kernel, strides, dilations, out_pad, wanted, strict=True):
        total = s * (int(size) - 1) + op + (k - 1) * d + 1 - want
        if total < 0:
            raise Unsupported(f"an output_shape ({want}) larger than the transposed convolution makes")
        small, big = total // 2, total - total // 2
        upper = mode == "SAME_UPPER"
        begin.append(small if upper else big)
        end.append(big if upper else small)
    return begin + end
