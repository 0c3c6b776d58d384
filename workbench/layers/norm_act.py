"""Normalisation and activation layers."""

from __future__ import annotations

from typing import Any

from .dims import expect_rank, fixed, fmt_shape
from .spec import (
    BoolParam,
    ChoiceParam,
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
    FloatParam("eps", 1e-5, "added to the variance for stability", minimum=0.0),
    FloatParam("momentum", 0.1, "running-statistics update rate", minimum=0.0, maximum=1.0),
    BoolParam("affine", True, "learn a scale and shift per channel"),
)


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
            FloatParam("eps", 1e-5, "added to the variance for stability", minimum=0.0),
            BoolParam("elementwise_affine", True, "learn a scale and shift per feature"),
        ),
        infer=_ln_shape,
        count=lambda p, ins: 2 * ins[0][-1] if p["elementwise_affine"] else 0,
        build=lambda p, ins: ModuleCall(
            "LayerNorm", ((ins[0][-1],),), {"eps": p["eps"], "elementwise_affine": p["elementwise_affine"]}
        ),
        examples=(Example({}, ((2, 5, 6),)), Example({"elementwise_affine": False}, ((2, 6),))),
    )
)

# --------------------------------------------------------------------------- activations


def _same(p: dict[str, Any], ins: list[Shape]) -> list[Shape]:
    return [ins[0]]


def _activation(
    type_id: str, doc: str, params: tuple = (), kwargs: tuple[str, ...] = (), examples: tuple[Example, ...] = ()
) -> None:
    register(
        LayerSpec(
            id=type_id,
            name=type_id,
            category="Activation",
            doc=f"{doc} Output shape = input shape.",
            params=params,
            infer=_same,
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


def _dim_rule(p: dict[str, Any], ins: list[Shape]) -> list[Shape]:
    rank = len(ins[0])
    if not -rank <= p["dim"] < rank or p["dim"] in (0, -rank):
        raise LayerShapeError(
            f"dim={p['dim']} must name a non-batch dimension of {fmt_shape(ins[0])} (1..{rank - 1} or -1..-{rank - 1})",
            param="dim",
        )
    return [ins[0]]


for _sm, _doc in (("Softmax", "Normalises to probabilities along dim."), ("LogSoftmax", "log(softmax(x)) along dim.")):
    register(
        LayerSpec(
            id=_sm,
            name=_sm,
            category="Activation",
            doc=f"{_doc} Output shape = input shape.",
            params=(IntParam("dim", -1, "dimension to normalise (negative counts from the end)", minimum=-8, maximum=8),),
            infer=_dim_rule,
            build=lambda p, ins, _cls=_sm: ModuleCall(_cls, (), {"dim": p["dim"]}),
            key_params=("dim",),
            examples=(Example({}, ((2, 5),)), Example({"dim": 1}, ((2, 3, 4),))),
        )
    )
