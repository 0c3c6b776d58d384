"""Convolution, pooling and upsampling layers."""

from __future__ import annotations

from typing import Any

from .dims import expect_rank, fixed, transpose_out, window_out
from .spec import (
    MAX_SIZE,
    BoolParam,
    ChoiceParam,
    Example,
    IntParam,
    IntTupleParam,
    LayerShapeError,
    LayerSpec,
    ModuleCall,
    Shape,
    register,
)


def _channels(x: Shape, groups: int, out_channels: int) -> int:
    c = fixed(x[1], "number of input channels (dimension 1)")
    if c % groups or out_channels % groups:
        raise LayerShapeError(
            f"groups={groups} must divide both input channels ({c}) and out_channels ({out_channels})",
            param="groups",
        )
    return c


# --------------------------------------------------------------------------- Conv1d


def _conv1d_shape(p: dict[str, Any], ins: list[Shape]) -> list[Shape]:
    x = ins[0]
    expect_rank(x, 3, "[N, C, L]")
    _channels(x, p["groups"], p["out_channels"])
    length = window_out(x[2], p["kernel_size"], p["stride"], p["padding"], p["dilation"], "kernel_size")
    return [(x[0], p["out_channels"], length)]


def _conv_count(p: dict[str, Any], ins: list[Shape], kernel_elems: int) -> int:
    c = ins[0][1]
    assert isinstance(c, int)
    return c // p["groups"] * p["out_channels"] * kernel_elems + (p["out_channels"] if p["bias"] else 0)


_CONV_COMMON = (
    IntParam("groups", 1, "blocked connections from input to output channels", minimum=1, maximum=MAX_SIZE),
    BoolParam("bias", True, "learn an additive bias"),
)

register(
    LayerSpec(
        id="Conv1d",
        name="Conv1d",
        category="Convolution",
        doc="1-D convolution. Input: [N, C_in, L]. Output: [N, out_channels, L_out].",
        params=(
            IntParam("out_channels", 16, "number of filters", minimum=1, maximum=MAX_SIZE),
            IntParam("kernel_size", 3, "window length", minimum=1, maximum=MAX_SIZE),
            IntParam("stride", 1, "step between windows", minimum=1, maximum=MAX_SIZE),
            IntParam("padding", 0, "zeros added on both sides", minimum=0, maximum=MAX_SIZE),
            IntParam("dilation", 1, "spacing between kernel elements", minimum=1, maximum=MAX_SIZE),
            *_CONV_COMMON,
        ),
        infer=_conv1d_shape,
        count=lambda p, ins: _conv_count(p, ins, p["kernel_size"]),
        build=lambda p, ins: ModuleCall(
            "Conv1d",
            (ins[0][1], p["out_channels"], p["kernel_size"]),
            {k: p[k] for k in ("stride", "padding", "dilation", "groups", "bias")},
        ),
        key_params=("out_channels", "kernel_size"),
        examples=(
            Example({"out_channels": 4, "kernel_size": 3}, ((2, 3, 10),)),
            Example({"out_channels": 4, "kernel_size": 2, "stride": 2, "padding": 1, "groups": 2}, ((2, 2, 9),)),
        ),
    )
)

# --------------------------------------------------------------------------- Conv2d


def _pair_params(kernel_default: tuple[int, int]) -> tuple[IntTupleParam, ...]:
    return (
        IntTupleParam("kernel_size", kernel_default, "window height and width", length=2, minimum=1),
        IntTupleParam("stride", (1, 1), "step between windows", length=2, minimum=1),
        IntTupleParam("padding", (0, 0), "zeros added on each side", length=2, minimum=0),
    )


def _conv2d_shape(p: dict[str, Any], ins: list[Shape]) -> list[Shape]:
    x = ins[0]
    expect_rank(x, 4, "[N, C, H, W]")
    _channels(x, p["groups"], p["out_channels"])
    hw = tuple(
        window_out(x[2 + i], p["kernel_size"][i], p["stride"][i], p["padding"][i], p["dilation"][i], "kernel_size")
        for i in range(2)
    )
    return [(x[0], p["out_channels"], *hw)]


register(
    LayerSpec(
        id="Conv2d",
        name="Conv2d",
        category="Convolution",
        doc="2-D convolution. Input: [N, C_in, H, W]. Output: [N, out_channels, H_out, W_out].",
        params=(
            IntParam("out_channels", 16, "number of filters", minimum=1, maximum=MAX_SIZE),
            *_pair_params((3, 3)),
            IntTupleParam("dilation", (1, 1), "spacing between kernel elements", length=2, minimum=1),
            *_CONV_COMMON,
        ),
        infer=_conv2d_shape,
        count=lambda p, ins: _conv_count(p, ins, p["kernel_size"][0] * p["kernel_size"][1]),
        build=lambda p, ins: ModuleCall(
            "Conv2d",
            (ins[0][1], p["out_channels"], p["kernel_size"]),
            {k: p[k] for k in ("stride", "padding", "dilation", "groups", "bias")},
        ),
        key_params=("out_channels", "kernel_size"),
        examples=(
            Example({"out_channels": 4, "kernel_size": (3, 3)}, ((2, 3, 8, 8),)),
            Example(
                {"out_channels": 6, "kernel_size": (3, 2), "stride": (2, 1), "padding": (1, 0), "groups": 3},
                ((2, 3, 7, 9),),
            ),
            Example({"out_channels": 2, "kernel_size": (3, 3), "dilation": (2, 2), "bias": False}, ((1, 1, 9, 9),)),
        ),
    )
)

# --------------------------------------------------------------------------- ConvTranspose2d


def _convt_shape(p: dict[str, Any], ins: list[Shape]) -> list[Shape]:
    x = ins[0]
    expect_rank(x, 4, "[N, C, H, W]")
    _channels(x, 1, p["out_channels"])
    for i in range(2):
        if p["output_padding"][i] >= max(p["stride"][i], 1) and p["output_padding"][i] > 0:
            raise LayerShapeError(
                f"output_padding={list(p['output_padding'])} must be smaller than stride={list(p['stride'])}",
                param="output_padding",
            )
    hw = tuple(
        transpose_out(x[2 + i], p["kernel_size"][i], p["stride"][i], p["padding"][i], p["output_padding"][i], 1)
        for i in range(2)
    )
    if any(isinstance(d, int) and d < 1 for d in hw):
        raise LayerShapeError(f"padding={list(p['padding'])} leaves no output", param="padding")
    return [(x[0], p["out_channels"], *hw)]


register(
    LayerSpec(
        id="ConvTranspose2d",
        name="ConvTranspose2d",
        category="Convolution",
        doc="Transposed 2-D convolution (learned upsampling). Input: [N, C_in, H, W]. Output: [N, out_channels, H_out, W_out].",
        params=(
            IntParam("out_channels", 16, "number of filters", minimum=1, maximum=MAX_SIZE),
            IntTupleParam("kernel_size", (2, 2), "window height and width", length=2, minimum=1),
            IntTupleParam("stride", (2, 2), "upsampling step", length=2, minimum=1),
            IntTupleParam("padding", (0, 0), "implicit padding removed from each side", length=2, minimum=0),
            IntTupleParam("output_padding", (0, 0), "extra size added to one side", length=2, minimum=0),
            BoolParam("bias", True, "learn an additive bias"),
        ),
        infer=_convt_shape,
        count=lambda p, ins: ins[0][1] * p["out_channels"] * p["kernel_size"][0] * p["kernel_size"][1]
        + (p["out_channels"] if p["bias"] else 0),
        build=lambda p, ins: ModuleCall(
            "ConvTranspose2d",
            (ins[0][1], p["out_channels"], p["kernel_size"]),
            {k: p[k] for k in ("stride", "padding", "output_padding", "bias")},
        ),
        key_params=("out_channels", "kernel_size", "stride"),
        examples=(
            Example({"out_channels": 3, "kernel_size": (2, 2), "stride": (2, 2)}, ((2, 4, 4, 4),)),
            Example(
                {"out_channels": 2, "kernel_size": (3, 3), "stride": (2, 2), "padding": (1, 1), "output_padding": (1, 1)},
                ((1, 3, 5, 5),),
            ),
        ),
    )
)

# --------------------------------------------------------------------------- pooling


def _pool_shape(p: dict[str, Any], ins: list[Shape]) -> list[Shape]:
    x = ins[0]
    expect_rank(x, 4, "[N, C, H, W]")
    for i in range(2):
        if p["padding"][i] * 2 > p["kernel_size"][i]:
            raise LayerShapeError(
                f"padding={list(p['padding'])} must be at most half of kernel_size={list(p['kernel_size'])}",
                param="padding",
            )
    hw = tuple(
        window_out(x[2 + i], p["kernel_size"][i], p["stride"][i], p["padding"][i], 1, "kernel_size") for i in range(2)
    )
    return [(x[0], x[1], *hw)]


for _pool in ("MaxPool2d", "AvgPool2d"):
    register(
        LayerSpec(
            id=_pool,
            name=_pool,
            category="Pooling",
            doc=f"{'Max' if _pool.startswith('Max') else 'Average'} over windows. Input: [N, C, H, W]. Output: [N, C, H_out, W_out].",
            params=(
                IntTupleParam("kernel_size", (2, 2), "window height and width", length=2, minimum=1),
                IntTupleParam("stride", (2, 2), "step between windows", length=2, minimum=1),
                IntTupleParam("padding", (0, 0), "padding on each side", length=2, minimum=0),
            ),
            infer=_pool_shape,
            build=lambda p, ins, _cls=_pool: ModuleCall(
                _cls, (p["kernel_size"],), {"stride": p["stride"], "padding": p["padding"]}
            ),
            key_params=("kernel_size",),
            examples=(
                Example({}, ((2, 3, 8, 8),)),
                Example({"kernel_size": (3, 3), "stride": (1, 2), "padding": (1, 1)}, ((2, 2, 7, 6),)),
            ),
        )
    )


def _adaptive_shape(p: dict[str, Any], ins: list[Shape]) -> list[Shape]:
    x = ins[0]
    expect_rank(x, 4, "[N, C, H, W]")
    return [(x[0], x[1], *p["output_size"])]


register(
    LayerSpec(
        id="AdaptiveAvgPool2d",
        name="AdaptiveAvgPool2d",
        category="Pooling",
        doc="Average-pools to a fixed size (1x1 = global average pooling). Input: [N, C, H, W]. Output: [N, C, *output_size].",
        params=(IntTupleParam("output_size", (1, 1), "output height and width", length=2, minimum=1),),
        infer=_adaptive_shape,
        build=lambda p, ins: ModuleCall("AdaptiveAvgPool2d", (p["output_size"],)),
        key_params=("output_size",),
        examples=(Example({}, ((2, 3, 5, 5),)), Example({"output_size": (2, 3)}, ((2, 3, 6, 7),))),
    )
)

# --------------------------------------------------------------------------- upsampling


def _upsample_shape(p: dict[str, Any], ins: list[Shape]) -> list[Shape]:
    x = ins[0]
    expect_rank(x, (3, 4), "[N, C, L] or [N, C, H, W]")
    if p["mode"] == "bilinear" and len(x) != 4:
        raise LayerShapeError("mode=bilinear needs a 4-D input [N, C, H, W]", param="mode")
    s = p["scale_factor"]
    return [(x[0], x[1], *(d * s if isinstance(d, int) else f"{d}*{s}" for d in x[2:]))]


register(
    LayerSpec(
        id="Upsample",
        name="Upsample",
        category="Convolution",
        doc="Upsamples by an integer factor. Input: [N, C, H, W] (or [N, C, L]). Output: [N, C, H*s, W*s].",
        params=(
            IntParam("scale_factor", 2, "integer upsampling factor", minimum=1, maximum=16),
            ChoiceParam("mode", "nearest", "interpolation", choices=("nearest", "bilinear")),
        ),
        infer=_upsample_shape,
        build=lambda p, ins: ModuleCall(
            "Upsample",
            (),
            {"scale_factor": float(p["scale_factor"]), "mode": p["mode"]}
            | ({"align_corners": False} if p["mode"] == "bilinear" else {}),
        ),
        key_params=("scale_factor", "mode"),
        examples=(Example({}, ((2, 3, 4, 4),)), Example({"scale_factor": 3, "mode": "bilinear"}, ((1, 2, 3, 5),))),
    )
)
