"""Helpers shared by the converters: an emission builder, padding, axes, constants in layers."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import numpy as np

from ...layers.spec import MAX_SIZE
from ..registry import CONST, DATA, SHAPE, Emission, Layer, ModelView, OnnxNode, Out, Source, Unsupported, Value


class Build:
    """Collects the layers of one emission; ``add`` returns the new layer's output as a source."""

    def __init__(self, node: OnnxNode) -> None:
        self.node = node
        self.layers: list[Layer] = []

    def add(self, type_id: str, params: Mapping[str, Any] | None = None, inputs: Iterable[Source] = (),
            weights: Mapping[str, np.ndarray] | None = None, outputs: Iterable[tuple[str, str]] = (),
            name: str | None = None, port: str = "y") -> Out:
        self.layers.append(Layer(type_id, dict(params or {}), tuple(inputs), dict(weights or {}), tuple(outputs),
                                 name or self.node.hint()))
        return Out(len(self.layers) - 1, port)

    def output(self, src: Source, tensor: str) -> Emission:
        """The emission, with ``src`` (the last layer's output, usually) producing ``tensor``."""
        return self.emission({tensor: src})

    def emission(self, produces: Mapping[str, Source] | None = None, claims: Iterable[int] = (),
                 notes: Iterable[str] = ()) -> Emission:
        """The layers; each (tensor -> source) in ``produces`` becomes a layer output or an alias."""
        layers = list(self.layers)
        aliases: dict[str, Source] = {}
        for tensor, src in (produces or {}).items():
            if isinstance(src, Out):
                layer = layers[src.layer]
                layers[src.layer] = Layer(layer.type, layer.params, layer.inputs, layer.weights,
                                          (*layer.outputs, (src.port, tensor)), layer.name)
            else:
                aliases[tensor] = src
        return Emission(tuple(layers), aliases, frozenset(claims), tuple(notes))


def first_out(node: OnnxNode) -> str:
    out = node.outputs[0]
    assert out is not None
    return out.name


def data_users(view: ModelView, tensor: str) -> tuple[OnnxNode, ...]:
    """The nodes that read ``tensor``'s values (a ``Shape`` reads only its shape, a ``CastLike`` its type)."""
    return tuple(u for u in view.consumers(tensor) if u.op not in ("Shape", "Size") and not (
        u.op == "CastLike" and u.inputs[0] is not None and u.inputs[0].name != tensor))


def rank_of(v: Value | None, what: str = "its input") -> int:
    if v is None or v.shape is None:
        raise Unsupported(f"the rank of {what} is unknown")
    return len(v.shape)


def axis(a: int, rank: int, allow_batch: bool = False) -> int:
    """A non-negative axis; the batch (0) is refused unless allowed."""
    if not -rank <= a < rank:
        raise Unsupported(f"axis {a} is out of range for rank {rank}")
    a %= rank
    if a == 0 and not allow_batch:
        raise Unsupported("it works across the batch dimension (axis 0), which a layer never mixes")
    return a


def ints(values: Any) -> list[int]:
    return [int(x) for x in np.atleast_1d(np.asarray(values)).reshape(-1)]


def clamp_index(i: int) -> int:
    """A slice bound from ONNX (INT64_MAX means "to the end") within the catalogue's range."""
    return max(-MAX_SIZE, min(MAX_SIZE, int(i)))


def split_pads(pads: Sequence[int], nd: int) -> tuple[list[int], list[int]]:
    """ONNX ``[begin..., end...]`` -> symmetric ``padding`` plus the extra ``pads`` per side."""
    pads = list(pads) or [0] * (2 * nd)
    if len(pads) != 2 * nd or any(p < 0 for p in pads):
        raise Unsupported(f"pads {pads} (negative or of the wrong length)")
    begin, end = pads[:nd], pads[nd:]
    sym = [min(b, e) for b, e in zip(begin, end, strict=True)]
    extra = [b - s for b, s in zip(begin, sym, strict=True)] + [e - s for e, s in zip(end, sym, strict=True)]
    return sym, extra


def auto_pads(node: OnnxNode, kernel: Sequence[int], strides: Sequence[int], dilations: Sequence[int]) -> list[int]:
    """The explicit pads ``auto_pad`` stands for (SAME_* need the input's spatial sizes)."""
    mode = node.attr("auto_pad", "NOTSET")
    nd = len(kernel)
    if mode in ("NOTSET", ""):
        return [int(p) for p in node.attr("pads", [0] * (2 * nd))]
    if mode == "VALID":
        return [0] * (2 * nd)
    x = node.inputs[0]
    sizes = list(x.shape[2:]) if x is not None and x.shape is not None else []
    if len(sizes) != nd or not all(isinstance(s, int) for s in sizes):
        raise Unsupported(f"auto_pad={mode} on an input whose spatial sizes are not fixed")
    begin, end = [], []
    for size, k, s, d in zip(sizes, kernel, strides, dilations, strict=True):
        out = -(-int(size) // s)
        total = max(0, (out - 1) * s + (k - 1) * d + 1 - int(size))
        small, big = total // 2, total - total // 2
        begin.append(small if mode == "SAME_UPPER" else big)
        end.append(big if mode == "SAME_UPPER" else small)
    return begin + end


def size_value(values: Sequence[int], nd: int) -> int | list[int]:
    """1-D layers take one int, 2-D and 3-D ones a list."""
    values = [int(v) for v in values]
    return values[0] if nd == 1 else values


def fits_float(value: np.ndarray) -> float:
    v = float(np.asarray(value).reshape(-1)[0])
    if not np.isfinite(v):
        raise Unsupported(f"a constant {v} that is not finite")
    return v


def channel_axis(c: np.ndarray, rank: int) -> int | None:
    """When constant ``c`` broadcast against a rank-``rank`` tensor varies along exactly one
    non-batch axis, that axis (else None)."""
    if c.ndim > rank:
        return None
    shape = (1,) * (rank - c.ndim) + tuple(c.shape)
    varying = [i for i, s in enumerate(shape) if s != 1]
    if len(varying) != 1 or varying[0] == 0:
        return None
    return varying[0]


def parameter(b: Build, value: np.ndarray, name: str) -> Out:
    """A Parameter layer holding ``value`` (the constant operand of an element-wise op)."""
    value = np.asarray(value, np.float32)
    if value.ndim == 0 or value.size == 0:
        raise Unsupported("a constant operand of no size")
    return b.add("Parameter", {"shape": list(value.shape), "init": "zeros"}, (), {"weight": value}, name=name)


def materialise(b: Build, v: Value, like: str | None) -> Source:
    """A source for operand ``v``: data as is; a constant as a Parameter; a value computed from
    shapes only (a class token expanded to the batch) as a Parameter expanded to the batch of ``like``."""
    if v.kind == DATA:
        return v.name
    fixed = v.fixed()
    if fixed is not None:
        return parameter(b, fixed, _param_name(b.node, v))
    if v.kind == SHAPE and v.probes is not None and like is not None:
        a, c = v.probes
        if a.ndim >= 1 and a.ndim == c.ndim and a.shape[1:] == c.shape[1:] and a.shape[0] != c.shape[0]:
            row = a[:1]
            if np.array_equal(np.broadcast_to(row, a.shape), a) and np.array_equal(np.broadcast_to(row, c.shape), c):
                p = parameter(b, row, _param_name(b.node, v))
                return b.add("Expand", {"sizes": [], "match_batch": True}, (p, like))
    raise Unsupported(f"operand {v.name!r} is computed from shapes in a way no layer holds")


def _param_name(node: OnnxNode, v: Value) -> str:
    name = v.name
    if "." in name and not name.startswith(("onnx::", "val_", "/")):
        return name
    return f"{node.hint()}_const"


def is_const(v: Value | None) -> bool:
    return v is not None and v.kind == CONST
