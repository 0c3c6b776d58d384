"""Convolution layers (1-D, 2-D, 3-D and transposed) and upsampling.

Every convolution takes ``groups`` (``groups = in_channels`` is depthwise) and ``dilation``;
Conv1d/2d/3d take torch's ``padding_mode``.  ``pads`` adds padding per side (ONNX order,
begin values then end values) for the asymmetric padding converted models carry: a
convolution pads its input with ``F.pad`` (in ``padding_mode``) before the torch op, a
transposed convolution crops its output, as ONNX ConvTranspose does.
"""

from __future__ import annotations

import math
import operator
from typing import Any

import torch.nn.functional as F

from .costs import numel
from .dims import fixed
from .float_params import FloatTupleParam
from .spec import (
    MAX_SIZE,
    BoolParam,
    BuildRule,
    ChoiceParam,
    EmitRule,
    Emitter,
    Example,
    IntParam,
    IntTupleParam,
    LayerShapeError,
    LayerSpec,
    ModuleCall,
    OpsRule,
    Shape,
    ShapeRule,
    register,
)
from .windows import (
    check_pad_fits,
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
)


def _channels(x: Shape, groups: int, out_channels: int) -> int:
    c = fixed(x[1], "number of input channels (dimension 1)")
    if c % groups or out_channels % groups:
        raise LayerShapeError(
            f"groups={groups} must divide both input channels ({c}) and out_channels ({out_channels})",
            param="groups",
        )
    return c


def _kernel_elems(p: dict[str, Any], nd: int) -> int:
    return math.prod(per_dim(p, "kernel_size", nd))


def _conv_ops(nd: int, transposed: bool) -> OpsRule:
    """Each output element of a convolution sums C_in/groups x kernel products; each input element
    of a transposed one scatters into out_channels/groups x kernel outputs (torch's flop_counter)."""
    def ops(p: dict[str, Any], ins: list[tuple[int, ...]], outs: list[tuple[int, ...]]) -> tuple[int, int]:
        x, y, g = ins[0], outs[0], p["groups"]
        fan = p["out_channels"] // g if transposed else x[1] // g
        macs = numel(x if transposed else y) * fan * _kernel_elems(p, nd)
        return macs, 2 * macs + (numel(y) if p["bias"] else 0)

    return ops


_COMMON = (
    IntParam("groups", 1, "blocked connections from input to output channels (in_channels: depthwise)",
             minimum=1, maximum=MAX_SIZE),
    BoolParam("bias", True, "learn an additive bias"),
)

# --------------------------------------------------------------------------- Conv1d / 2d / 3d

_PADDING_MODES = ("zeros", "reflect", "replicate", "circular")


def _conv_rule(nd: int) -> ShapeRule:
    def infer(p: dict[str, Any], ins: list[Shape]) -> list[Shape]:
        x = ins[0]
        check_rank(x, nd)
        _channels(x, p["groups"], p["out_channels"])
        check_pad_fits(x, p, nd, p["padding_mode"])
        return [(x[0], p["out_channels"], *spatial_out(x, p, nd))]

    return infer


def _conv_build(nd: int) -> BuildRule:
    def build(p: dict[str, Any], ins: list[Shape]) -> ModuleCall:
        kwargs = {k: p[k] for k in ("stride", "padding", "dilation", "groups", "bias")}
        if has_pads(p):  # all padding happens in F.pad (emit): the module pads nothing
            kwargs["padding"] = 0 if nd == 1 else (0,) * nd
        elif p["padding_mode"] != "zeros":
            kwargs["padding_mode"] = p["padding_mode"]
        return ModuleCall(f"Conv{nd}d", (ins[0][1], p["out_channels"], p["kernel_size"]), kwargs)

    return build


def _conv_emit(nd: int) -> EmitRule:
    def emit(e: Emitter, p: dict[str, Any], ins: list[Shape], xs: list[Any]) -> list[Any]:
        if not has_pads(p):
            return [e.call_module(xs[0])]
        mode = "constant" if p["padding_mode"] == "zeros" else p["padding_mode"]
        return [e.call_module(e.call_function(F.pad, xs[0], torch_pad(*sides(p, nd)), mode))]

    return emit


_CONV_EXAMPLES = {
    1: (
        Example({"out_channels": 4, "kernel_size": 3}, ((2, 3, 10),)),
        Example({"out_channels": 4, "kernel_size": 2, "stride": 2, "padding": 1, "groups": 2}, ((2, 2, 9),)),
        Example({"out_channels": 3, "kernel_size": 3, "dilation": 2, "padding": 2, "padding_mode": "reflect",
                 "groups": 3, "bias": False}, ((2, 3, 8),)),
        Example({"out_channels": 2, "kernel_size": 4, "stride": 2, "pads": (1, 2), "padding_mode": "circular"},
                ((1, 2, 7),)),
    ),
    2: (
        Example({"out_channels": 4, "kernel_size": (3, 3)}, ((2, 3, 8, 8),)),
        Example(
            {"out_channels": 6, "kernel_size": (3, 2), "stride": (2, 1), "padding": (1, 0), "groups": 3},
            ((2, 3, 7, 9),),
        ),
        Example({"out_channels": 2, "kernel_size": (3, 3), "dilation": (2, 2), "bias": False}, ((1, 1, 9, 9),)),
        Example({"out_channels": 4, "kernel_size": (3, 3), "padding": (1, 2), "padding_mode": "circular",
                 "groups": 4}, ((2, 4, 5, 6),)),
        Example({"out_channels": 2, "kernel_size": (3, 3), "stride": (2, 2), "pads": (0, 1, 1, 0),
                 "padding_mode": "replicate"}, ((1, 3, 6, 7),)),
    ),
    3: (
        Example({"out_channels": 4, "kernel_size": (3, 3, 3)}, ((2, 2, 5, 5, 5),)),
        Example({"out_channels": 4, "kernel_size": (3, 1, 2), "stride": (1, 2, 1), "padding": (1, 0, 1),
                 "dilation": (2, 1, 1), "groups": 2, "padding_mode": "reflect"}, ((1, 2, 6, 5, 4),)),
        Example({"out_channels": 3, "kernel_size": (2, 2, 2), "pads": (0, 1, 0, 1, 0, 1)}, ((2, 3, 4, 4, 4),)),
    ),
}

for _nd in (1, 2, 3):
    register(
        LayerSpec(
            id=f"Conv{_nd}d",
            name=f"Conv{_nd}d",
            category="Convolution",
            doc=f"{_nd}-D convolution. Input: {pattern(_nd, 'C_in')}. Output: {out_pattern(_nd, 'out_channels')}.",
            params=(
                IntParam("out_channels", 16, "number of filters", minimum=1, maximum=MAX_SIZE),
                size_param(_nd, "kernel_size", 3, "window size" if _nd == 1 else "window size per dimension", 1),
                size_param(_nd, "stride", 1, "step between windows", 1),
                size_param(_nd, "padding", 0, "padding added on both sides (in padding_mode)", 0),
                size_param(_nd, "dilation", 1, "spacing between kernel elements", 1),
                *_COMMON,
                ChoiceParam("padding_mode", "zeros", "what the padding holds: zeros, a mirror of the input "
                            "(reflect), its edge values (replicate) or its other end (circular)",
                            choices=_PADDING_MODES),
                pads_param(_nd, "padded in padding_mode before the convolution"),
            ),
            infer=_conv_rule(_nd),
            count=lambda p, ins, _nd=_nd: ins[0][1] // p["groups"] * p["out_channels"] * _kernel_elems(p, _nd)
            + (p["out_channels"] if p["bias"] else 0),
            build=_conv_build(_nd),
            emit=_conv_emit(_nd),
            ops=_conv_ops(_nd, False),
            key_params=("out_channels", "kernel_size"),
            examples=_CONV_EXAMPLES[_nd],
            dtype="float",
        )
    )

# --------------------------------------------------------------------------- ConvTranspose1d / 2d / 3d


def _convt_rule(nd: int) -> ShapeRule:
    def infer(p: dict[str, Any], ins: list[Shape]) -> list[Shape]:
        x = ins[0]
        check_rank(x, nd)
        _channels(x, p["groups"], p["out_channels"])
        k, s, d = per_dim(p, "kernel_size", nd), per_dim(p, "stride", nd), per_dim(p, "dilation", nd)
        op = per_dim(p, "output_padding", nd)
        for i in range(nd):
            if op[i] >= max(s[i], d[i]):
                raise LayerShapeError(
                    f"output_padding={p['output_padding']} must be smaller than stride={p['stride']} "
                    f"or dilation={p['dilation']}",
                    param="output_padding",
                )
        begin, end = sides(p, nd)
        out: list[Any] = []
        for i in range(nd):
            const = d[i] * (k[i] - 1) + op[i] + 1 - begin[i] - end[i]
            size = x[2 + i]
            if isinstance(size, int):
                n = (size - 1) * s[i] + const
                if n < 1:
                    raise LayerShapeError(
                        f"padding={p['padding']} and pads={list(p['pads'])} crop away the whole output "
                        f"(size {n + begin[i] + end[i]} along dimension {2 + i})",
                        param="padding",
                    )
                out.append(n)
            else:
                scaled = str(size) if s[i] == 1 else f"{size}*{s[i]}"
                out.append(f"{scaled}{const - s[i]:+d}" if const != s[i] else scaled)
        return [(x[0], p["out_channels"], *out)]

    return infer


def _convt_emit(nd: int) -> EmitRule:
    def emit(e: Emitter, p: dict[str, Any], ins: list[Shape], xs: list[Any]) -> list[Any]:
        y = e.call_module(xs[0])
        if not has_pads(p):
            return [y]
        pads = p["pads"]  # the torch module crops `padding`; ONNX-style pads crop the rest
        index = (slice(None), slice(None), *(slice(pads[i] or None, -pads[nd + i] or None) for i in range(nd)))
        return [e.call_function(operator.getitem, y, index)]

    return emit


def _convt_build(nd: int) -> BuildRule:
    def build(p: dict[str, Any], ins: list[Shape]) -> ModuleCall:
        kwargs = {k: p[k] for k in ("stride", "padding", "output_padding", "bias")}
        if p["groups"] != 1:  # only when set: the generated source of older projects stays as it was
            kwargs["groups"] = p["groups"]
        if any(d != 1 for d in per_dim(p, "dilation", nd)):
            kwargs["dilation"] = p["dilation"]
        return ModuleCall(f"ConvTranspose{nd}d", (ins[0][1], p["out_channels"], p["kernel_size"]), kwargs)

    return build


_CONVT_EXAMPLES = {
    1: (
        Example({"out_channels": 3, "kernel_size": 2, "stride": 2}, ((2, 4, 5),)),
        Example({"out_channels": 4, "kernel_size": 3, "stride": 2, "padding": 1, "output_padding": 1,
                 "dilation": 2, "groups": 2, "pads": (0, 1)}, ((1, 2, 6),)),
    ),
    2: (
        Example({"out_channels": 3, "kernel_size": (2, 2), "stride": (2, 2)}, ((2, 4, 4, 4),)),
        Example(
            {"out_channels": 2, "kernel_size": (3, 3), "stride": (2, 2), "padding": (1, 1), "output_padding": (1, 1)},
            ((1, 3, 5, 5),),
        ),
        Example({"out_channels": 6, "kernel_size": (3, 2), "stride": (1, 2), "dilation": (2, 1), "groups": 3,
                 "pads": (1, 0, 0, 1), "bias": False}, ((2, 3, 4, 3),)),
    ),
    3: (
        Example({"out_channels": 2, "kernel_size": (2, 2, 2), "stride": (2, 2, 2)}, ((2, 3, 3, 3, 3),)),
        Example({"out_channels": 4, "kernel_size": (3, 3, 2), "stride": (2, 1, 2), "padding": (1, 0, 0),
                 "output_padding": (1, 0, 1), "groups": 2, "pads": (0, 1, 0, 1, 0, 0)}, ((1, 2, 3, 4, 3),)),
    ),
}

for _nd in (1, 2, 3):
    register(
        LayerSpec(
            id=f"ConvTranspose{_nd}d",
            name=f"ConvTranspose{_nd}d",
            category="Convolution",
            doc=f"Transposed {_nd}-D convolution (learned upsampling). Input: {pattern(_nd, 'C_in')}. "
            f"Output: {out_pattern(_nd, 'out_channels')}.",
            params=(
                IntParam("out_channels", 16, "number of filters", minimum=1, maximum=MAX_SIZE),
                size_param(_nd, "kernel_size", 2, "window size" if _nd == 1 else "window size per dimension", 1),
                size_param(_nd, "stride", 2, "upsampling step", 1),
                size_param(_nd, "padding", 0, "implicit padding removed from each side", 0),
                size_param(_nd, "output_padding", 0, "extra size added to the end of each dimension", 0),
                size_param(_nd, "dilation", 1, "spacing between kernel elements", 1),
                *_COMMON,
                pads_param(_nd, "cropped from the output (ONNX ConvTranspose pads)"),
            ),
            infer=_convt_rule(_nd),
            count=lambda p, ins, _nd=_nd: ins[0][1] * (p["out_channels"] // p["groups"]) * _kernel_elems(p, _nd)
            + (p["out_channels"] if p["bias"] else 0),
            build=_convt_build(_nd),
            emit=_convt_emit(_nd),
            ops=_conv_ops(_nd, True),
            key_params=("out_channels", "kernel_size", "stride"),
            examples=_CONVT_EXAMPLES[_nd],
            dtype="float",
        )
    )

# --------------------------------------------------------------------------- upsampling

_UPSAMPLE_RANKS = {"nearest": (3, 4, 5), "linear": (3,), "bilinear": (4,), "bicubic": (4,), "trilinear": (5,)}
_RANK_PATTERN = {3: "[N, C, L]", 4: "[N, C, H, W]", 5: "[N, C, D, H, W]"}


def _upsample_shape(p: dict[str, Any], ins: list[Shape]) -> list[Shape]:
    x, mode = ins[0], p["mode"]
    ranks = _UPSAMPLE_RANKS[mode]
    if len(x) not in ranks:
        if mode == "nearest":
            raise LayerShapeError(port=0, expected="[N, C, L], [N, C, H, W] or [N, C, D, H, W]")
        raise LayerShapeError(f"mode={mode} needs a {ranks[0]}-D input {_RANK_PATTERN[ranks[0]]}", param="mode")
    if p["align_corners"] and mode == "nearest":
        raise LayerShapeError("align_corners applies to the linear and cubic modes, not to nearest",
                              param="align_corners")
    nd = len(x) - 2
    key = p["resize_by"]
    values = p[key]
    if len(values) not in (1, nd):
        raise LayerShapeError(f"{key}={list(values)} needs 1 value (for every dimension) or {nd}, one per "
                              f"spatial dimension", param=key)
    values = values * nd if len(values) == 1 else values
    if key == "size":
        return [(x[0], x[1], *values)]
    out: list[Any] = []
    for d, s in zip(x[2:], values, strict=True):
        if isinstance(d, int):
            n = math.floor(d * s)  # torch's rule (in double precision, as Python floats are)
            if not 1 <= n <= MAX_SIZE:
                raise LayerShapeError(f"scale_factor {s:g} turns size {d} into {n}", param="scale_factor")
            out.append(n)
        else:
            out.append(f"{d}*{int(s)}" if s.is_integer() else f"floor({d}*{s:g})")
    return [(x[0], x[1], *out)]


#: FLOPs per output element: a weight multiply and an add per neighbour read (nearest only copies)
_UPSAMPLE_FLOPS = {"nearest": 0, "linear": 4, "bilinear": 8, "bicubic": 32, "trilinear": 16}


def _upsample_build(p: dict[str, Any], ins: list[Shape]) -> ModuleCall:
    key = p["resize_by"]
    values = p[key]
    kwargs: dict[str, Any] = {key: values[0] if len(values) == 1 else tuple(values), "mode": p["mode"]}
    if p["mode"] != "nearest":
        kwargs["align_corners"] = p["align_corners"]
    return ModuleCall("Upsample", (), kwargs)


register(
    LayerSpec(
        id="Upsample",
        name="Upsample",
        category="Convolution",
        doc="Resizes by a scale factor or to a size (nn.Upsample). Input: [N, C, L], [N, C, H, W] or "
        "[N, C, D, H, W]. Output: [N, C, floor(L*s)...] or [N, C, *size].",
        params=(
            FloatTupleParam("scale_factor", (2.0,), "factor per spatial dimension (one value: all); output "
                            "size = floor(size * factor)", minimum=0.0, exclusive_minimum=True,
                            maximum=float(MAX_SIZE), max_length=3),
            ChoiceParam("mode", "nearest", "interpolation: nearest (any rank), linear (3-D input), bilinear "
                        "or bicubic (4-D), trilinear (5-D)",
                        choices=("nearest", "linear", "bilinear", "bicubic", "trilinear")),
            ChoiceParam("resize_by", "scale_factor", "which of scale_factor and size sets the output",
                        choices=("scale_factor", "size")),
            IntTupleParam("size", (16,), "output size per spatial dimension (one value: all), when "
                          "resize_by=size", minimum=1, max_length=3),
            BoolParam("align_corners", False, "align the corner pixels of input and output (linear and cubic "
                      "modes)"),
        ),
        infer=_upsample_shape,
        build=_upsample_build,
        ops=lambda p, ins, outs: (0, _UPSAMPLE_FLOPS[p["mode"]] * numel(outs[0])),
        key_params=("mode", "resize_by"),  # a static list: scale_factor would mislead when resizing by size
        examples=(
            Example({}, ((2, 3, 4, 4),)),
            Example({"scale_factor": 3, "mode": "bilinear"}, ((1, 2, 3, 5),)),
            Example({"scale_factor": (1.5, 2.25), "mode": "bicubic", "align_corners": True}, ((1, 2, 4, 5),)),
            Example({"resize_by": "size", "size": (7,), "mode": "linear"}, ((2, 3, 5),)),
            Example({"resize_by": "size", "size": (3, 5, 4), "mode": "trilinear", "align_corners": True},
                    ((1, 2, 2, 3, 6),)),
            Example({"scale_factor": (2, 0.5, 1.5)}, ((1, 1, 2, 4, 3),)),
        ),
        dtype="float",
    )
)
