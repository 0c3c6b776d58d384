"""Learned tensors: a Parameter node (a class token, a position table, a layer scale) and a
per-channel scale and bias.

Both keep their tensors in an ``nn.ParameterDict`` named after the node, so ``state_dict``
keys read ``cls_token.weight`` (Parameter) or ``scale1.weight`` / ``scale1.bias`` (ScaleBias),
and ``forward`` reads them as ``self.cls_token.weight``.  The tensors are stored in the shape
they are used in (a per-channel scale of an image as [C, 1, 1]), so the ONNX export holds them
as initializers that feed a plain Mul or Add.
"""

from __future__ import annotations

import math
import operator
from dataclasses import dataclass
from typing import Any, Protocol, cast

import torch

from .costs import numel, zero
from .dims import fixed, fmt_shape
from .spec import (
    MAX_SIZE,
    BoolParam,
    ChoiceParam,
    Emitter,
    Example,
    FloatParam,
    IntParam,
    IntTupleParam,
    LayerShapeError,
    LayerSpec,
    ModuleCall,
    Shape,
    register,
)

INITS = ("zeros", "ones", "constant", "normal", "uniform")


@dataclass(frozen=True)
class LearnedTensor:
    """One learned tensor of a :class:`TensorsCall`: its key, shape and initial values."""

    name: str
    shape: tuple[int, ...]
    init: str = "zeros"
    scale: float = 0.0

    def make(self) -> torch.Tensor:
        """The initial values; draws from torch's global generator as :meth:`source` does."""
        if self.init == "normal":
            return torch.empty(self.shape).normal_(0.0, self.scale)
        if self.init == "uniform":
            return torch.empty(self.shape).uniform_(-self.scale, self.scale)
        value = {"zeros": 0.0, "ones": 1.0}.get(self.init, self.scale)
        return torch.full(self.shape, value)

    def source(self) -> str:
        shape = repr(tuple(int(d) for d in self.shape))
        if self.init == "normal":
            value = f"torch.empty({shape}).normal_(0.0, {self.scale!r})"
        elif self.init == "uniform":
            value = f"torch.empty({shape}).uniform_({-self.scale!r}, {self.scale!r})"
        else:
            fill = {"zeros": 0.0, "ones": 1.0}.get(self.init, self.scale)
            value = f"torch.full({shape}, {fill!r})"
        return f"nn.Parameter({value})"


@dataclass(frozen=True)
class TensorsCall(ModuleCall):
    """An ``nn.ParameterDict`` of learned tensors with their initialisation.

    A :class:`ModuleCall` cannot say how a tensor starts (``nn.Parameter`` needs a tensor),
    so this one builds the dict itself and writes the same construction as source.
    """

    cls: str = "ParameterDict"
    tensors: tuple[LearnedTensor, ...] = ()

    def instantiate(self) -> Any:
        return torch.nn.ParameterDict({t.name: torch.nn.Parameter(t.make()) for t in self.tensors})

    def source(self) -> str:
        return "nn.ParameterDict({" + ", ".join(f"{t.name!r}: {t.source()}" for t in self.tensors) + "})"


class _AttrEmitter(Emitter, Protocol):
    def get_attr(self, name: str) -> Any:
        """A tensor of this node's module (``self.cls_token.weight``)."""
        ...


def _attr(e: Emitter, name: str) -> Any:
    # the compiler's emitter reads module attributes; the Emitter protocol (spec.py) does not declare it yet
    return cast(_AttrEmitter, e).get_attr(name)


# --------------------------------------------------------------------------- Parameter


def _init_params() -> tuple[ChoiceParam, FloatParam]:
    return (
        ChoiceParam("init", "normal", "initial values: zeros, ones, a constant, normal or uniform", choices=INITS),
        FloatParam("scale", 0.02, "normal: the standard deviation; uniform: values in [-scale, scale]; "
                   "constant: the value", minimum=0.0, maximum=1e6),
    )


register(
    LayerSpec(
        id="Parameter",
        name="Parameter",
        category="Learned",
        doc="A learned tensor of a fixed shape (a class token [1, 1, E], a position table [1, T, E], a layer "
        "scale [C]); no input. Output: shape (no batch dimension: broadcast it, or Expand it to a batch). "
        "Saved as <node>.weight.",
        params=(
            IntTupleParam("shape", (1, 1, 64), "the tensor's shape (no batch dimension)", minimum=1,
                          maximum=MAX_SIZE),
            *_init_params(),
        ),
        inputs=(),
        infer=lambda p, ins: [tuple(p["shape"])],
        count=lambda p, ins: math.prod(p["shape"]),
        build=lambda p, ins: TensorsCall(tensors=(LearnedTensor("weight", tuple(p["shape"]), p["init"], p["scale"]),)),
        emit=lambda e, p, ins, xs: [_attr(e, "weight")],
        ops=zero,
        key_params=("shape", "init"),
        examples=(
            # the model needs an Input: the conformance harness feeds these to an unused one
            Example({"shape": (1, 1, 8)}, ((2, 3),)),
            Example({"shape": (6,), "init": "constant", "scale": 1e-5}, ((2, 3),)),
            Example({"shape": (1, 5, 4), "init": "uniform", "scale": 0.5}, ((2, 3),)),
        ),
    )
)


# --------------------------------------------------------------------------- ScaleBias


def _channel_dim(p: dict[str, Any], x: Shape) -> int:
    """The non-negative index of the channel dimension, or a located error."""
    d, rank = p["dim"], len(x)
    if rank < 2 or not -rank < d < rank or d == 0:
        raise LayerShapeError(f"dim={d} must name a non-batch dimension of {fmt_shape(x)} (1 for [N, C, ...], "
                              "-1 for [N, ..., C])", param="dim")
    return d % rank


def _scale_bias_shape(p: dict[str, Any], ins: list[Shape]) -> list[Shape]:
    x = ins[0]
    d = _channel_dim(p, x)
    fixed(x[d], f"number of channels (dimension {d})")
    if not (p["scale"] or p["bias"]):
        raise LayerShapeError("learns nothing with both scale and bias off; turn one on", param="scale")
    return [x]


def _param_shape(p: dict[str, Any], x: Shape) -> tuple[int, ...]:
    """[C] followed by a 1 for every dimension after the channels: it broadcasts against x."""
    d = _channel_dim(p, x)
    return (int(x[d]), *([1] * (len(x) - 1 - d)))


def _scale_bias_build(p: dict[str, Any], ins: list[Shape]) -> TensorsCall:
    shape = _param_shape(p, ins[0])
    tensors = ([LearnedTensor("weight", shape, "ones")] if p["scale"] else []) + (
        [LearnedTensor("bias", shape, "zeros")] if p["bias"] else [])
    return TensorsCall(tensors=tuple(tensors))


def _scale_bias_emit(e: Emitter, p: dict[str, Any], ins: list[Shape], xs: list[Any]) -> list[Any]:
    y = xs[0]
    if p["scale"]:
        y = e.call_function(operator.mul, y, _attr(e, "weight"))
    if p["bias"]:
        y = e.call_function(operator.add, y, _attr(e, "bias"))
    return [y]


register(
    LayerSpec(
        id="ScaleBias",
        name="Scale / Bias",
        category="Learned",
        doc="A learned scale and/or bias per channel: y = x * weight + bias along dim (1: [N, C, ...], "
        "-1: [N, ..., C]). Output shape = input shape.",
        params=(
            IntParam("dim", 1, "the channel dimension: 1 for [N, C, ...], -1 for [N, ..., C]", minimum=-8,
                     maximum=8),
            BoolParam("scale", True, "learn a scale per channel (starts at 1)"),
            BoolParam("bias", True, "learn a bias per channel (starts at 0)"),
        ),
        infer=_scale_bias_shape,
        count=lambda p, ins: int(ins[0][_channel_dim(p, ins[0])]) * (int(p["scale"]) + int(p["bias"])),
        build=_scale_bias_build,
        emit=_scale_bias_emit,
        ops=lambda p, ins, outs: (0, (int(p["scale"]) + int(p["bias"])) * numel(outs[0])),
        key_params=("dim",),
        examples=(
            Example({}, ((2, 3, 4, 5),)),
            Example({"dim": -1, "bias": False}, ((2, 5, 6),)),
            Example({"dim": 2, "scale": False}, ((2, 3, 4, 5),)),
        ),
    )
)
