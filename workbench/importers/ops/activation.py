"""Activations and Softmax: one ONNX op each, and Clip as ReLU/ReLU6/Hardtanh/Clamp."""

from __future__ import annotations

import math

import numpy as np

from ..registry import Emission, OnnxNode, Unsupported, converter, one
from .common import Build, axis, first_out, fits_float, rank_of

for _op, _target in (("Relu", "ReLU"), ("Sigmoid", "Sigmoid"), ("Tanh", "Tanh"), ("Softsign", "Softsign"),
                     ("HardSwish", "Hardswish"), ("Mish", "Mish")):
    converter(_op, targets=(_target,))(lambda node, _t=_target: one(_t, node))


@converter("LeakyRelu", targets=("LeakyReLU",))
def leaky_relu(node: OnnxNode) -> Emission:
    slope = float(node.attr("alpha", 0.01))
    if slope < 0:
        raise Unsupported(f"a negative slope {slope}")
    return one("LeakyReLU", node, {"negative_slope": slope})


@converter("Elu", targets=("ELU",))
def elu(node: OnnxNode) -> Emission:
    return one("ELU", node, {"alpha": float(node.attr("alpha", 1.0))})


@converter("Celu", targets=("CELU",))
def celu(node: OnnxNode) -> Emission:
    return one("CELU", node, {"alpha": float(node.attr("alpha", 1.0))})


@converter("Selu", targets=("SELU",))
def selu(node: OnnxNode) -> Emission:
    alpha, gamma = float(node.attr("alpha", 1.67326319217681884765625)), float(node.attr("gamma", 1.05070102214813232421875))
    if not (math.isclose(alpha, 1.6732632423543772, rel_tol=1e-6) and math.isclose(gamma, 1.0507009873554805,
                                                                                   rel_tol=1e-6)):
        raise Unsupported(f"alpha={alpha}, gamma={gamma} other than the self-normalising constants")
    return one("SELU", node)


@converter("Softplus", targets=("Softplus",))
def softplus(node: OnnxNode) -> Emission:
    return one("Softplus", node, {"beta": 1.0, "threshold": 20.0})


@converter("Gelu", since=20, targets=("GELU",))
def gelu(node: OnnxNode) -> Emission:
    return one("GELU", node, {"approximate": node.attr("approximate", "none")})


@converter("HardSigmoid", targets=("Hardsigmoid", "ScalarOp", "Clamp"))
def hard_sigmoid(node: OnnxNode) -> Emission:
    alpha, beta = float(node.attr("alpha", 0.2)), float(node.attr("beta", 0.5))
    if math.isclose(alpha, 1 / 6, rel_tol=1e-6) and math.isclose(beta, 0.5, rel_tol=1e-6):
        return one("Hardsigmoid", node)
    b = Build(node)  # max(0, min(1, alpha * x + beta)), as written
    y = b.add("ScalarOp", {"op": "multiply", "constant": alpha}, (node.inputs[0].name,))  # type: ignore[union-attr]
    y = b.add("ScalarOp", {"op": "add", "constant": beta}, (y,))
    return b.output(b.add("Clamp", {"bounds": "both", "min": 0.0, "max": 1.0}, (y,)), first_out(node))


@converter("PRelu", targets=("PReLU",))
def prelu(node: OnnxNode) -> Emission:
    slope = np.asarray(node.const_input(1, "the slope"), np.float32)
    rank = rank_of(node.inputs[0])
    if slope.size == 1:
        return one("PReLU", node, {"per_channel": False}, weights={"weight": slope.reshape(1)}, name=node.hint(1))
    x = node.inputs[0]
    channels = x.shape[1] if x is not None and x.shape is not None and rank > 1 else None
    if node.opset < 7 and slope.ndim == 1 and slope.size == channels:  # before opset 7 a slope is per channel
        return one("PReLU", node, {"per_channel": True}, weights={"weight": slope}, name=node.hint(1))
    shape = (1,) * (rank - slope.ndim) + slope.shape
    varying = [i for i, s in enumerate(shape) if s != 1]
    if varying != [1]:
        raise Unsupported(f"a slope of shape {list(slope.shape)} that is not one per channel (dimension 1)")
    return one("PReLU", node, {"per_channel": True}, weights={"weight": slope.reshape(-1)}, name=node.hint(1))


def _clip_bounds(node: OnnxNode) -> tuple[float | None, float | None]:
    if node.opset < 11:
        lo, hi = node.attr("min"), node.attr("max")
        return (None if lo is None or lo <= -3.4e38 else float(lo)), (None if hi is None or hi >= 3.4e38 else float(hi))
    bounds = []
    for i in (1, 2):
        v = node.input(i)
        if v is None:
            bounds.append(None)
            continue
        value = v.fixed()
        if value is None:
            raise Unsupported("a bound computed at run time")
        bounds.append(fits_float(value) if np.isfinite(np.asarray(value, np.float64)).all() else None)
    return bounds[0], bounds[1]


@converter("Clip", targets=("ReLU", "ReLU6", "Hardtanh", "Clamp"))
def clip(node: OnnxNode) -> Emission:
    lo, hi = _clip_bounds(node)
    if lo == 0.0 and hi == 6.0:
        return one("ReLU6", node)
    if lo == 0.0 and hi is None:
        return one("ReLU", node)
    if lo is not None and hi is not None:
        if lo < hi:
            return one("Hardtanh", node, {"min_val": lo, "max_val": hi})
        return one("Clamp", node, {"bounds": "both", "min": lo, "max": hi})
    if lo is None and hi is None:
        return Emission(aliases={first_out(node): node.inputs[0].name})  # type: ignore[union-attr]
    return one("Clamp", node, {"bounds": "min", "min": lo} if lo is not None else {"bounds": "max", "max": hi})


_SOFTMAX = {"Softmax": "Softmax", "LogSoftmax": "LogSoftmax"}


def _softmax(node: OnnxNode) -> Emission:
    x = node.inputs[0]
    rank = rank_of(x)
    if node.opset >= 13:  # one axis, -1 by default
        return one(_SOFTMAX[node.op], node, {"dim": axis(int(node.attr("axis", -1)), rank)})
    # before opset 13: the input is seen as 2-D [prod(dims[:axis]), prod(dims[axis:])] (axis 1 by default)
    a = axis(int(node.attr("axis", 1)), rank)
    assert x is not None and x.shape is not None
    rest = list(x.shape[a + 1:])
    if a == rank - 1 or all(d == 1 for d in rest):
        return one(_SOFTMAX[node.op], node, {"dim": a})
    if not all(isinstance(d, int) for d in x.shape[a:]):
        raise Unsupported(f"softmax over dimensions {a}.. of sizes that are not fixed ({list(x.shape)})")
    b = Build(node)  # flatten the dims it normalises over, normalise, restore them
    flat = b.add("Flatten", {"start_dim": a}, (x.name,))
    y = b.add(_SOFTMAX[node.op], {"dim": a}, (flat,))
    return b.output(b.add("Unflatten", {"dim": a, "sizes": [int(d) for d in x.shape[a:]]}, (y,)), first_out(node))


for _op in _SOFTMAX:
    converter(_op, targets=(_SOFTMAX[_op], "Flatten", "Unflatten"))(_softmax)


@converter("Identity", targets=())
@converter("Dropout", targets=())
def passthrough(node: OnnxNode) -> Emission:
    """Inference graphs keep Dropout as identity (its mask, when read, is refused by the mapper)."""
    if node.op == "Dropout" and node.opset >= 12 and node.input(2) is not None:
        training = node.input(2).fixed()  # type: ignore[union-attr]
        if training is None or bool(np.asarray(training).reshape(-1)[0]):
            raise Unsupported("dropout in training mode")
    return Emission(aliases={first_out(node): node.inputs[0].name})  # type: ignore[union-attr]


@converter("Cast", targets=())
def cast(node: OnnxNode) -> Emission:
    """A cast to the type the tensor already has passes it through; others change what is computed."""
    x = node.inputs[0]
    to = int(node.attr("to", 0))
    if x is None or x.elem != to:
        import onnx

        have = onnx.TensorProto.DataType.Name(x.elem).lower() if x is not None and x.elem else "unknown"
        raise Unsupported(f"a cast from {have} to {onnx.TensorProto.DataType.Name(to).lower()}")
    return Emission(aliases={first_out(node): x.name})
