"""Normalisation and activation layers."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch

from .costs import AFFINE, NORMALISE, SOFTMAX, STATS, norm, per_output
from .dims import expect_rank, fixed, fmt_shape, non_batch_dim
from .spec import (
    BoolParam,
    ChoiceParam,
    Emitter,
    Example,
    FloatParam,
    IntParam,
    LayerShapeError,
    LayerSpec,
    ModuleCall,
    Shape,
    register,
)

# --------------------------------------------------------------------------- normalisation

_BN_PARAMS = (
    FloatParam("eps", 1e-5, "added to the variance for stability (positive: torch refuses 0 in training)", minimum=1e-12),
    FloatParam("momentum", 0.1, "running-statistics update rate", minimum=0.0, maximum=1.0),
    BoolParam("affine", True, "learn a scale and shift per channel"),
)


def _bn_ops(p: dict[str, Any], ins: list[tuple[int, ...]], outs: list[tuple[int, ...]]) -> tuple[int, int]:
    """At inference batch normalisation uses its running statistics: normalise (and scale, shift)."""
    return norm(NORMALISE + (AFFINE if p["affine"] else 0))(p, ins, outs)


def _bn_rule(rank: tuple[int, ...], pattern: str):
    def infer(p: dict[str, Any], ins: list[Shape]) -> list[Shape]:
        expect_rank(ins[0], rank, pattern)
        fixed(ins[0][1], "number of channels (dimension 1)")
        return [ins[0]]

    return infer


for _bn, _rank, _pattern, _example in (
    ("BatchNorm1d", (2, 3), "[N, C] or [N, C, L]", ((4, 3),)),
    ("BatchNorm2d", (4,), "[N, C, H, W]", ((4, 3, 5, 5),)),
):
    register(
        LayerSpec(
            id=_bn,
            name=_bn,
            category="Normalization",
            doc=f"Batch normalisation over channels. Input: {_pattern}. Output shape = input shape.",
            params=_BN_PARAMS,
            infer=_bn_rule(_rank, _pattern),
            count=lambda p, ins: 2 * ins[0][1] if p["affine"] else 0,
            build=lambda p, ins, _cls=_bn: ModuleCall(
                _cls, (ins[0][1],), {"eps": p["eps"], "momentum": p["momentum"], "affine": p["affine"]}
            ),
            ops=_bn_ops,
            examples=(Example({}, _example), Example({"affine": False}, _example)),
        )
    )


def _ln_shape(p: dict[str, Any], ins: list[Shape]) -> list[Shape]:
    expect_rank(ins[0], tuple(range(2, 9)), "[N, *, features]")
    fixed(ins[0][-1], "number of features (last dimension)")
    return [ins[0]]


register(
    LayerSpec(
        id="LayerNorm",
        name="LayerNorm",
        category="Normalization",
        doc="Layer normalisation over the last dimension. Input: [N, *, D]. Output shape = input shape.",
        params=(
            FloatParam("eps", 1e-5, "added to the variance for stability (positive: torch refuses 0 in training)", minimum=1e-12),
            BoolParam("elementwise_affine", True, "learn a scale and shift per feature"),
        ),
        infer=_ln_shape,
        count=lambda p, ins: 2 * ins[0][-1] if p["elementwise_affine"] else 0,
        build=lambda p, ins: ModuleCall(
            "LayerNorm", ((ins[0][-1],),), {"eps": p["eps"], "elementwise_affine": p["elementwise_affine"]}
        ),
        ops=lambda p, ins, outs: norm(STATS + NORMALISE + (AFFINE if p["elementwise_affine"] else 0))(p, ins, outs),
        examples=(Example({}, ((2, 5, 6),)), Example({"elementwise_affine": False}, ((2, 6),))),
    )
)

# --------------------------------------------------------------------------- activations


def _same(p: dict[str, Any], ins: list[Shape]) -> list[Shape]:
    return [ins[0]]


def _activation(
    type_id: str,
    doc: str,
    params: tuple = (),
    kwargs: tuple[str, ...] = (),
    examples: tuple[Example, ...] = (),
    check: Callable[[dict[str, Any]], None] | None = None,
) -> None:
    """Register an element-wise activation module; ``check`` refuses parameter combinations
    torch would refuse at construction (or compute silently wrong) with a located error."""

    def infer(p: dict[str, Any], ins: list[Shape]) -> list[Shape]:
        if check is not None:
            check(p)
        return [ins[0]]

    register(
        LayerSpec(
            id=type_id,
            name=type_id,
            category="Activation",
            doc=f"{doc} Output shape = input shape.",
            params=params,
            infer=infer if check is not None else _same,
            build=lambda p, ins: ModuleCall(type_id, (), {k: p[k] for k in kwargs}),
            key_params=kwargs[:1],
            examples=examples or (Example({}, ((2, 5),)),),
        )
    )


_activation("ReLU", "max(0, x).")
_activation(
    "LeakyReLU",
    "x for x > 0, negative_slope * x otherwise.",
    (FloatParam("negative_slope", 0.01, "slope for negative inputs", minimum=0.0),),
    ("negative_slope",),
    (Example({"negative_slope": 0.2}, ((2, 5),)),),
)
_activation(
    "GELU",
    "Gaussian error linear unit.",
    (ChoiceParam("approximate", "none", "exact or tanh approximation", choices=("none", "tanh")),),
    ("approximate",),
    (Example({}, ((2, 5),)), Example({"approximate": "tanh"}, ((2, 3, 4),))),
)
_activation("SiLU", "x * sigmoid(x) (swish).")
_activation("Sigmoid", "1 / (1 + exp(-x)).")
_activation("Tanh", "Hyperbolic tangent.")

# Shapes the new activations' examples run on: a feature vector and an image batch.
_VEC, _IMG = ((2, 5),), ((2, 3, 4, 4),)
_TWO = (Example({}, _VEC), Example({}, _IMG))

_activation("ReLU6", "min(max(0, x), 6). Input: [N, *].", examples=_TWO)
_activation("Hardswish", "x * relu6(x + 3) / 6 (MobileNetV3). Input: [N, *].", examples=_TWO)
_activation("Hardsigmoid", "relu6(x + 3) / 6. Input: [N, *].", examples=_TWO)
_activation("SELU", "Scaled ELU with the self-normalising constants. Input: [N, *].", examples=_TWO)
_activation("Mish", "x * tanh(softplus(x)). Input: [N, *].", examples=_TWO)
_activation("Softsign", "x / (1 + |x|). Input: [N, *].", examples=_TWO)


def _check_hardtanh(p: dict[str, Any]) -> None:
    if p["min_val"] >= p["max_val"]:
        raise LayerShapeError(
            f"max_val={p['max_val']} must be greater than min_val={p['min_val']}", param="max_val"
        )


_activation(
    "Hardtanh",
    "x clipped to [min_val, max_val]. Input: [N, *].",
    (
        FloatParam("min_val", -1.0, "lower bound of the linear region"),
        FloatParam("max_val", 1.0, "upper bound of the linear region (greater than min_val)"),
    ),
    ("min_val", "max_val"),
    (Example({}, _VEC), Example({"min_val": -0.5, "max_val": 2.0}, _IMG)),
    check=_check_hardtanh,
)
_activation(
    "ELU",
    "x for x > 0, alpha * (exp(x) - 1) otherwise. Input: [N, *].",
    (FloatParam("alpha", 1.0, "value the output approaches for very negative inputs (times -1)"),),
    ("alpha",),
    (Example({}, _VEC), Example({"alpha": 0.5}, _IMG)),
)


def _check_celu(p: dict[str, Any]) -> None:
    if p["alpha"] == 0:
        raise LayerShapeError("alpha must not be 0 (CELU divides by it)", param="alpha")


_activation(
    "CELU",
    "max(0, x) + min(0, alpha * (exp(x / alpha) - 1)). Input: [N, *].",
    (FloatParam("alpha", 1.0, "scale of the negative part (not 0)"),),
    ("alpha",),
    (Example({}, _VEC), Example({"alpha": 2.0}, _IMG)),
    check=_check_celu,
)


def _check_softplus(p: dict[str, Any]) -> None:
    if p["beta"] <= 0:  # beta = 0 divides by zero (inf everywhere); a negative one flips the curve
        raise LayerShapeError(f"beta={p['beta']} must be positive", param="beta")


_activation(
    "Softplus",
    "log(1 + exp(beta * x)) / beta, and x itself where beta * x > threshold. Input: [N, *].",
    (
        FloatParam("beta", 1.0, "sharpness (positive)"),
        FloatParam("threshold", 20.0, "above beta * x > threshold the output is x (numerical stability)"),
    ),
    ("beta", "threshold"),
    (Example({}, _VEC), Example({"beta": 2.0, "threshold": 1.0}, _IMG)),
    check=_check_softplus,
)


def _prelu_shape(p: dict[str, Any], ins: list[Shape]) -> list[Shape]:
    if p["per_channel"]:
        expect_rank(ins[0], tuple(range(2, 9)), "[N, C, *]")
        fixed(ins[0][1], "number of channels (dimension 1)")
    return [ins[0]]


register(
    LayerSpec(
        id="PReLU",
        name="PReLU",
        category="Activation",
        doc="x for x > 0, a * x otherwise, with the slope a learned (one, or one per channel of dim 1). "
        "Input: [N, C, *]. Output shape = input shape.",
        params=(
            BoolParam("per_channel", False, "learn one slope per channel (dimension 1) instead of one in all"),
            FloatParam("init", 0.25, "initial slope"),
        ),
        infer=_prelu_shape,
        count=lambda p, ins: ins[0][1] if p["per_channel"] else 1,
        build=lambda p, ins: ModuleCall(
            "PReLU", (), {"num_parameters": ins[0][1] if p["per_channel"] else 1, "init": p["init"]}
        ),
        key_params=("per_channel",),
        examples=(Example({}, _VEC), Example({"per_channel": True, "init": 0.1}, _IMG)),
    )
)


def _glu_shape(p: dict[str, Any], ins: list[Shape]) -> list[Shape]:
    x = ins[0]
    d = non_batch_dim(p["dim"], x)
    if not isinstance(x[d], int):
        raise LayerShapeError(f"dim={p['dim']} has the variable size {x[d]}; GLU needs a fixed, even size", param="dim")
    if x[d] % 2:
        raise LayerShapeError(
            f"dim={p['dim']} has the odd size {x[d]} in {fmt_shape(x)}; GLU halves it, so it must be even",
            param="dim",
        )
    return [(*x[:d], x[d] // 2, *x[d + 1 :])]


register(
    LayerSpec(
        id="GLU",
        name="GLU",
        category="Activation",
        doc="Gated linear unit: splits dim in halves a, b and returns a * sigmoid(b). "
        "Input: [N, *, 2D, *]. Output: [N, *, D, *].",
        params=(IntParam("dim", -1, "dimension to halve (negative counts from the end)", minimum=-8, maximum=8),),
        infer=_glu_shape,
        build=lambda p, ins: ModuleCall("GLU", (), {"dim": p["dim"]}),
        ops=per_output(2),  # a sigmoid and a product per output element
        key_params=("dim",),
        examples=(Example({}, ((2, 6),)), Example({"dim": 1}, ((2, 4, 3, 3),))),
    )
)


def _clamp_shape(p: dict[str, Any], ins: list[Shape]) -> list[Shape]:
    if p["bounds"] == "both" and p["min"] > p["max"]:
        raise LayerShapeError(f"max={p['max']} must not be less than min={p['min']}", param="max")
    return [ins[0]]


def _clamp_emit(e: Emitter, p: dict[str, Any], ins: list[Shape], xs: list[Any]) -> list[Any]:
    bounds = {k: p[k] for k in ("min", "max") if p["bounds"] in (k, "both")}
    return [e.call_function(torch.clamp, xs[0], **bounds)]


register(
    LayerSpec(
        id="Clamp",
        name="Clamp",
        category="Activation",
        doc="Clips x to [min, max], or only from below (bounds=min) or above (bounds=max). "
        "Input: [N, *]. Output shape = input shape.",
        params=(
            ChoiceParam("bounds", "both", "which bounds apply: both, min only, max only", choices=("both", "min", "max")),
            FloatParam("min", -1.0, "lower bound (used when bounds is both or min)"),
            FloatParam("max", 1.0, "upper bound (used when bounds is both or max)"),
        ),
        infer=_clamp_shape,
        emit=_clamp_emit,
        key_params=("bounds", "min", "max"),
        examples=(
            Example({}, _VEC),
            Example({"bounds": "min", "min": 0.5}, _IMG),
            Example({"bounds": "max", "max": -0.2}, _VEC),
        ),
    )
)


def _dim_rule(p: dict[str, Any], ins: list[Shape]) -> list[Shape]:
    non_batch_dim(p["dim"], ins[0])
    return [ins[0]]


for _sm, _doc in (
    ("Softmax", "Normalises to probabilities along dim."),
    ("LogSoftmax", "log(softmax(x)) along dim."),
    ("Softmin", "Normalises exp(-x) to probabilities along dim: the smallest values weigh most."),
):
    register(
        LayerSpec(
            id=_sm,
            name=_sm,
            category="Activation",
            doc=f"{_doc} Output shape = input shape.",
            params=(IntParam("dim", -1, "dimension to normalise (negative counts from the end)", minimum=-8, maximum=8),),
            infer=_dim_rule,
            build=lambda p, ins, _cls=_sm: ModuleCall(_cls, (), {"dim": p["dim"]}),
            ops=per_output(SOFTMAX),
            key_params=("dim",),
            examples=(Example({}, ((2, 5),)), Example({"dim": 1}, ((2, 3, 4),))),
        )
    )
