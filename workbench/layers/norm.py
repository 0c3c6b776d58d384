"""Further normalisation layers (batch, group, instance, local response, RMS)."""

from __future__ import annotations

import math
from typing import Any

from .costs import AFFINE, NORMALISE, STATS, norm
from .dims import fixed, fmt_shape
from .norm_act import _BN_PARAMS, _bn_ops
from .spec import (
    MAX_SIZE,
    BoolParam,
    Example,
    FloatParam,
    IntParam,
    LayerShapeError,
    LayerSpec,
    ModuleCall,
    Shape,
    ShapeRule,
    register,
)
from .windows import check_rank, pattern


def _channels(x: Shape) -> int:
    return fixed(x[1], "number of channels (dimension 1)")


# --------------------------------------------------------------------------- BatchNorm3d


def _bn3d_shape(p: dict[str, Any], ins: list[Shape]) -> list[Shape]:
    check_rank(ins[0], 3)
    _channels(ins[0])
    return [ins[0]]


register(
    LayerSpec(
        id="BatchNorm3d",
        name="BatchNorm3d",
        category="Normalization",
        doc="Batch normalisation over channels of volumes. Input: [N, C, D, H, W]. Output shape = input shape.",
        params=_BN_PARAMS,
        infer=_bn3d_shape,
        count=lambda p, ins: 2 * ins[0][1] if p["affine"] else 0,
        build=lambda p, ins: ModuleCall(
            "BatchNorm3d", (ins[0][1],), {"eps": p["eps"], "momentum": p["momentum"], "affine": p["affine"]}
        ),
        ops=_bn_ops,
        examples=(Example({}, ((3, 2, 3, 4, 2),)), Example({"affine": False, "eps": 1e-3}, ((2, 3, 2, 2, 2),))),
        dtype="float",
    )
)

# --------------------------------------------------------------------------- GroupNorm


def _gn_shape(p: dict[str, Any], ins: list[Shape]) -> list[Shape]:
    x = ins[0]
    if not 2 <= len(x) <= 8:
        raise LayerShapeError(port=0, expected="[N, C, *]")
    c = _channels(x)
    if c % p["num_groups"]:
        raise LayerShapeError(f"num_groups={p['num_groups']} must divide the channels ({c})", param="num_groups")
    return [x]


register(
    LayerSpec(
        id="GroupNorm",
        name="GroupNorm",
        category="Normalization",
        doc="Normalises each sample over groups of channels (and all positions). Input: [N, C, *]. "
        "Output shape = input shape.",
        params=(
            IntParam("num_groups", 1, "number of channel groups (must divide the channels)", minimum=1,
                     maximum=MAX_SIZE),
            FloatParam("eps", 1e-5, "added to the variance for stability (positive: torch refuses 0 in training)", minimum=1e-12),
            BoolParam("affine", True, "learn a scale and shift per channel"),
        ),
        infer=_gn_shape,
        count=lambda p, ins: 2 * ins[0][1] if p["affine"] else 0,
        build=lambda p, ins: ModuleCall(
            "GroupNorm", (p["num_groups"], ins[0][1]), {"eps": p["eps"], "affine": p["affine"]}
        ),
        ops=lambda p, ins, outs: norm(STATS + NORMALISE + (AFFINE if p["affine"] else 0))(p, ins, outs),
        key_params=("num_groups",),
        examples=(
            Example({}, ((2, 4, 5, 5),)),
            Example({"num_groups": 3, "eps": 1e-3, "affine": False}, ((2, 6, 7),)),
            Example({"num_groups": 3}, ((3, 12),)),
        ),
        dtype="float",
    )
)

# --------------------------------------------------------------------------- InstanceNorm1d / 2d / 3d


def _in_rule(nd: int) -> ShapeRule:
    def infer(p: dict[str, Any], ins: list[Shape]) -> list[Shape]:
        x = ins[0]
        check_rank(x, nd)
        _channels(x)
        spatial = x[2:]
        if all(isinstance(d, int) for d in spatial) and math.prod(spatial) == 1:  # type: ignore[arg-type]
            raise LayerShapeError(
                f"normalises over the positions of each channel, and {fmt_shape(x)} has only one "
                "(torch refuses to train it)",
                port=0,
            )
        return [x]

    return infer


_IN_EXAMPLES = {1: ((2, 3, 6),), 2: ((2, 3, 4, 5),), 3: ((2, 2, 3, 4, 2),)}

for _nd in (1, 2, 3):
    register(
        LayerSpec(
            id=f"InstanceNorm{_nd}d",
            name=f"InstanceNorm{_nd}d",
            category="Normalization",
            doc=f"Normalises each channel of each sample over its positions. Input: {pattern(_nd)}. "
            "Output shape = input shape.",
            params=(
                FloatParam("eps", 1e-5, "added to the variance for stability (positive: torch refuses 0 in training)", minimum=1e-12),
                FloatParam("momentum", 0.1, "running-statistics update rate (with track_running_stats)",
                           minimum=0.0, maximum=1.0),
                BoolParam("affine", False, "learn a scale and shift per channel"),
                BoolParam("track_running_stats", False, "keep running statistics in training and use them in "
                          "evaluation (else each sample's own statistics, always)"),
            ),
            infer=_in_rule(_nd),
            count=lambda p, ins: 2 * ins[0][1] if p["affine"] else 0,
            build=lambda p, ins, _cls=f"InstanceNorm{_nd}d": ModuleCall(
                _cls, (ins[0][1],),
                {k: p[k] for k in ("eps", "momentum", "affine", "track_running_stats")},
            ),
            # at inference, running statistics (when kept) replace each sample's own
            ops=lambda p, ins, outs: norm((0 if p["track_running_stats"] else STATS) + NORMALISE
                                          + (AFFINE if p["affine"] else 0))(p, ins, outs),
            key_params=("affine",),
            examples=(
                Example({}, _IN_EXAMPLES[_nd]),
                Example({"affine": True, "track_running_stats": True, "eps": 1e-3, "momentum": 0.3},
                        _IN_EXAMPLES[_nd]),
            ),
            dtype="float",
        )
    )

# --------------------------------------------------------------------------- LocalResponseNorm


def _lrn_shape(p: dict[str, Any], ins: list[Shape]) -> list[Shape]:
    if not 3 <= len(ins[0]) <= 8:
        raise LayerShapeError(port=0, expected="[N, C, *] with at least one position dimension")
    return [ins[0]]


register(
    LayerSpec(
        id="LocalResponseNorm",
        name="LocalResponseNorm",
        category="Normalization",
        doc="Divides by the activity of neighbouring channels (AlexNet, GoogLeNet): x / (k + alpha/size * "
        "sum of x^2 over size channels)^beta. Input: [N, C, *]. Output shape = input shape.",
        params=(
            IntParam("size", 5, "number of neighbouring channels summed over", minimum=1, maximum=MAX_SIZE),
            FloatParam("alpha", 1e-4, "multiplicative factor"),
            FloatParam("beta", 0.75, "exponent"),
            FloatParam("k", 1.0, "additive factor"),
        ),
        infer=_lrn_shape,
        build=lambda p, ins: ModuleCall("LocalResponseNorm", (p["size"],),
                                        {"alpha": p["alpha"], "beta": p["beta"], "k": p["k"]}),
        # a square, a read per neighbour summed, then scale, shift, power and divide
        ops=lambda p, ins, outs: norm(p["size"] + 5)(p, ins, outs),
        key_params=("size",),
        examples=(
            Example({}, ((2, 7, 4, 4),)),
            Example({"size": 2, "alpha": 0.5, "beta": 0.5, "k": 2.0}, ((2, 4, 5),)),
            Example({"size": 3, "alpha": 1e-3}, ((1, 5, 2, 3, 2),)),
        ),
        dtype="float",
    )
)

# --------------------------------------------------------------------------- RMSNorm


def _rms_shape(p: dict[str, Any], ins: list[Shape]) -> list[Shape]:
    if not 2 <= len(ins[0]) <= 8:
        raise LayerShapeError(port=0, expected="[N, *, features]")
    fixed(ins[0][-1], "number of features (last dimension)")
    return [ins[0]]


register(
    LayerSpec(
        id="RMSNorm",
        name="RMSNorm",
        category="Normalization",
        doc="Root-mean-square normalisation over the last dimension (no centring): x / sqrt(mean(x^2) + eps) "
        "* weight. Input: [N, *, D]. Output shape = input shape.",
        params=(
            FloatParam("eps", 0.0, "added to the mean square; 0 means torch's eps=None: the machine epsilon of "
                       "the input's dtype (1.19e-07 for float32)", minimum=0.0),
            BoolParam("elementwise_affine", True, "learn a scale per feature"),
        ),
        infer=_rms_shape,
        count=lambda p, ins: ins[0][-1] if p["elementwise_affine"] else 0,
        build=lambda p, ins: ModuleCall(
            "RMSNorm", ((ins[0][-1],),),
            {"eps": p["eps"] or None, "elementwise_affine": p["elementwise_affine"]},
        ),
        # mean of squares (square, add), one scaling by its inverse root, the learned scale
        ops=lambda p, ins, outs: norm(3 + (1 if p["elementwise_affine"] else 0))(p, ins, outs),
        examples=(Example({}, ((2, 5, 6),)), Example({"eps": 1e-2, "elementwise_affine": False}, ((3, 4),))),
        dtype="float",
    )
)
