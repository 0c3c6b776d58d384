"""Normalisation: BatchNormalization (with the per-channel scale and shift that follow it folded in
where that is exact), InstanceNormalization, LayerNormalization, GroupNormalization, LRN, RMS."""

from __future__ import annotations

import numpy as np

from ..registry import DATA, Emission, ModelView, OnnxNode, Unsupported, converter, one, recogniser
from .common import channel_axis, data_users, first_out, rank_of

_BN = {2: "BatchNorm1d", 3: "BatchNorm1d", 4: "BatchNorm2d", 5: "BatchNorm3d"}


def _bn_parts(node: OnnxNode) -> tuple[str, dict[str, float | bool], dict[str, np.ndarray]]:
    if node.opset < 7 and not int(node.attr("spatial", 1)):
        raise Unsupported("spatial=0 (statistics per position, not per channel)")
    if int(node.attr("training_mode", 0)):
        raise Unsupported("training_mode=1 (batch statistics at inference)")
    rank = rank_of(node.inputs[0])
    if rank not in _BN:
        raise Unsupported(f"batch normalisation of a rank-{rank} input")
    scale, bias, mean, var = (node.const_input(i, "the statistics") for i in range(1, 5))
    momentum = float(node.attr("momentum", 0.9))
    params = {"eps": float(node.attr("epsilon", 1e-5)), "momentum": round(min(max(1.0 - momentum, 0.0), 1.0), 6),
              "affine": True}
    weights = {"weight": scale, "bias": bias, "running_mean": mean, "running_var": var}
    return _BN[rank], params, weights


@converter("BatchNormalization", targets=tuple(set(_BN.values())))
def batchnorm(node: OnnxNode) -> Emission:
    type_id, params, weights = _bn_parts(node)
    return one(type_id, node, params, weights=weights, name=node.hint(1))


@recogniser("BatchNormalization", priority=-10)
def batchnorm_affine(node: OnnxNode, view: ModelView) -> Emission | None:
    """BatchNorm followed by a per-channel Mul and/or Add of constants (what converted Caffe models
    carry): ``s * bn(x) + b`` is a BatchNorm with weight ``s * gamma`` and bias ``s * beta + b``."""
    try:
        type_id, params, weights = _bn_parts(node)
    except Unsupported:
        return None
    rank = rank_of(node.inputs[0])
    gamma, beta = np.array(weights["weight"], np.float64), np.array(weights["bias"], np.float64)
    tensor, claims = first_out(node), []
    while True:
        users = data_users(view, tensor)
        if len(users) != 1 or view.is_output(tensor) or users[0].op not in ("Mul", "Add"):
            break
        user = users[0]
        other = [v for v in user.inputs if v is not None and v.name != tensor]
        if len(other) != 1 or other[0].const is None:
            break
        c = np.asarray(other[0].const, np.float64)
        if c.size == 1:
            c = np.full(gamma.shape, float(c.reshape(-1)[0]))
        elif channel_axis(c, rank) != 1 or c.size != gamma.size:
            break
        c = c.reshape(-1)
        if user.op == "Mul":
            gamma, beta = gamma * c, beta * c
        else:
            beta = beta + c
        claims.append(user.index)
        tensor = first_out(user)
    if not claims:
        return None
    weights = {**weights, "weight": gamma.astype(np.float32), "bias": beta.astype(np.float32)}
    return Emission(one(type_id, node, params, weights=weights, name=node.hint(1),
                        outputs=(("y", tensor),)).layers, claims=frozenset(claims))


@converter("InstanceNormalization", targets=("InstanceNorm1d", "InstanceNorm2d", "InstanceNorm3d"))
def instancenorm(node: OnnxNode) -> Emission:
    nd = rank_of(node.inputs[0]) - 2
    if nd not in (1, 2, 3):
        raise Unsupported(f"instance normalisation of a rank-{nd + 2} input")
    scale, bias = node.const_input(1, "the scale"), node.const_input(2, "the bias")
    return one(f"InstanceNorm{nd}d", node, {"eps": float(node.attr("epsilon", 1e-5)), "affine": True},
               weights={"weight": scale, "bias": bias}, name=node.hint(1))


@converter("LayerNormalization", targets=("LayerNorm",))
def layernorm(node: OnnxNode) -> Emission:
    rank = rank_of(node.inputs[0])
    if int(node.attr("axis", -1)) % rank != rank - 1:
        raise Unsupported("normalisation over more than the last dimension")
    scale = node.const_input(1, "the scale")
    bias = node.optional_const(2)
    return one("LayerNorm", node, {"eps": float(node.attr("epsilon", 1e-5))},
               weights={"weight": scale.reshape(-1), "bias": (bias if bias is not None else np.zeros_like(scale))
                        .reshape(-1)}, name=node.hint(1))


@converter("RMSNormalization", targets=("RMSNorm",))
def rmsnorm(node: OnnxNode) -> Emission:
    rank = rank_of(node.inputs[0])
    if int(node.attr("axis", -1)) % rank != rank - 1:
        raise Unsupported("normalisation over more than the last dimension")
    scale = node.const_input(1, "the scale")
    return one("RMSNorm", node, {"eps": float(node.attr("epsilon", 1e-5))}, weights={"weight": scale.reshape(-1)},
               name=node.hint(1))


@converter("GroupNormalization", since=18, targets=("GroupNorm",))
def groupnorm(node: OnnxNode) -> Emission:
    x = node.inputs[0]
    groups = int(node.attr("num_groups"))
    channels = x.shape[1] if x is not None and x.shape is not None and len(x.shape) > 1 else None
    if not isinstance(channels, int):
        raise Unsupported("an input whose channels (dimension 1) are not fixed")
    scale, bias = node.const_input(1, "the scale").reshape(-1), node.const_input(2, "the bias").reshape(-1)
    if scale.size == groups and groups != channels:  # opset 18: one scale per group
        scale, bias = np.repeat(scale, channels // groups), np.repeat(bias, channels // groups)
    if scale.size != channels:
        raise Unsupported(f"a scale of {scale.size} values for {channels} channels")
    return one("GroupNorm", node, {"num_groups": groups, "eps": float(node.attr("epsilon", 1e-5)), "affine": True},
               weights={"weight": scale, "bias": bias}, name=node.hint(1))


@converter("LRN", targets=("LocalResponseNorm",))
def lrn(node: OnnxNode) -> Emission:
    size = int(node.attr("size"))
    if size % 2 == 0:  # ONNX's window runs [c - (size-1)//2, c + size//2], torch's the other way round
        raise Unsupported(f"an even window (size={size}), which ONNX and torch centre differently")
    x = node.inputs[0]
    if x is not None and x.kind != DATA:
        raise Unsupported("an input that is not data")
    return one("LocalResponseNorm", node, {"size": size, "alpha": float(node.attr("alpha", 1e-4)),
                                           "beta": float(node.attr("beta", 0.75)), "k": float(node.attr("bias", 1.0))})
