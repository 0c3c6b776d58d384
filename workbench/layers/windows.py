"""Sliding-window arithmetic shared by the N-d convolution and pooling declarations.

Sizes are per spatial dimension: 1-D layers declare plain ints (as torch's ``Conv1d(3, 8, 5)``),
2-D and 3-D layers tuples.  Besides torch's symmetric ``padding``, these layers take ``pads``:
extra padding per side in ONNX order ``[begin of each dim..., end of each dim...]``, applied with
``F.pad`` before the torch op.  The padding on one side is ``padding + pads[side]``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from .dims import fmt_shape
from .spec import MAX_SIZE, Dim, IntParam, IntTupleParam, LayerShapeError, Param, Shape

#: the spatial dimensions of an N-d layer's input, by N
SPATIAL = {1: "L", 2: "H, W", 3: "D, H, W"}


def pattern(nd: int, channels: str = "C") -> str:
    """``[N, C, H, W]`` for ``nd=2``."""
    return f"[N, {channels}, {SPATIAL[nd]}]"


def out_pattern(nd: int, channels: str = "C") -> str:
    """``[N, C, H_out, W_out]`` for ``nd=2``."""
    return "[N, " + channels + ", " + ", ".join(f"{d}_out" for d in SPATIAL[nd].split(", ")) + "]"


def size_param(nd: int, name: str, default: int, doc: str, minimum: int) -> Param:
    """One int for 1-D layers (``kernel_size=3``), one per dimension for 2-D and 3-D ones."""
    if nd == 1:
        return IntParam(name, default, doc, minimum=minimum, maximum=MAX_SIZE)
    return IntTupleParam(name, (default,) * nd, doc, length=nd, minimum=minimum)


def pads_param(nd: int, applied: str) -> IntTupleParam:
    """The optional per-side padding (all zeros: the layer is exactly the torch module)."""
    names = SPATIAL[nd].split(", ")
    order = ", ".join([f"{n}_begin" for n in names] + [f"{n}_end" for n in names])
    return IntTupleParam(
        "pads", (0,) * (2 * nd), f"extra padding per side [{order}] (ONNX order), {applied}; adds to padding",
        length=2 * nd, minimum=0,
    )


def per_dim(p: dict[str, Any], name: str, nd: int) -> tuple[int, ...]:
    """A size parameter as one value per spatial dimension."""
    v = p[name]
    return tuple(v) if isinstance(v, (tuple, list)) else (v,) * nd


def has_pads(p: dict[str, Any]) -> bool:
    return any(p.get("pads", ()))


def sides(p: dict[str, Any], nd: int) -> tuple[tuple[int, ...], tuple[int, ...]]:
    """Total padding before and after each spatial dimension: ``padding`` plus ``pads``."""
    pad = per_dim(p, "padding", nd)
    extra = tuple(p.get("pads") or (0,) * (2 * nd))
    return tuple(pad[i] + extra[i] for i in range(nd)), tuple(pad[i] + extra[nd + i] for i in range(nd))


def torch_pad(begin: Sequence[int], end: Sequence[int]) -> tuple[int, ...]:
    """Per-side padding in ``F.pad``'s order: last dimension first, (begin, end) each."""
    out: list[int] = []
    for i in reversed(range(len(begin))):
        out += [begin[i], end[i]]
    return tuple(out)


def _offset(begin: int, end: int, span: int, stride: int, ceil_mode: bool) -> int:
    """``c`` in ``out = (L + c + stride) // stride`` (torch's and onnxruntime's rule).

    Floor: ``(L + P - span) // s + 1``.  Ceil: ``ceil((L + P - span) / s) + 1``, less one when the
    last window would start in the end padding; both bounds on the last window's start are
    ``L + const``, so the smaller constant wins for every L.
    """
    c = begin + end - span
    return min(begin - 1, c + stride - 1) if ceil_mode else c


def window_len(size: Dim, kernel: int, stride: int, begin: int, end: int, dilation: int,
               ceil_mode: bool = False, param: str = "kernel_size") -> Dim:
    """Output length of a convolution or pooling window along one axis (symbolic sizes stay
    symbolic: ``(T+1)//2``)."""
    span = dilation * (kernel - 1) + 1
    c = _offset(begin, end, span, stride, ceil_mode)
    if isinstance(size, int):
        out = (size + c + stride) // stride
        if out < 1:
            padded = f"padding {begin}" if begin == end else f"padding {begin} before and {end} after"
            raise LayerShapeError(
                f"{param}={kernel} (with {padded}, dilation {dilation}) does not fit an input of size {size}",
                param=param,
            )
        return out
    if stride == 1:
        return f"{size}{c + 1:+d}" if c + 1 else size
    return f"({size}{c + stride:+d})//{stride}" if c + stride else f"{size}//{stride}"


def ceil_may_drop(begin: int, end: int, kernel: int, stride: int, dilation: int) -> bool:
    """Whether torch, given the pads as explicit padding, could keep a last ceil-mode window
    that starts in the end padding (onnxruntime and torch's own padding drop it)."""
    span = dilation * (kernel - 1) + 1
    return _offset(begin, end, span, stride, True) != _offset(0, 0, span, stride, True) + begin + end


def spatial_out(x: Shape, p: dict[str, Any], nd: int, ceil_mode: bool = False,
                dilation: tuple[int, ...] | None = None) -> tuple[Dim, ...]:
    """Output spatial sizes of a windowed layer (``kernel_size``, ``stride``, ``padding``, ``pads``)."""
    k, s = per_dim(p, "kernel_size", nd), per_dim(p, "stride", nd)
    d = dilation if dilation is not None else per_dim(p, "dilation", nd)
    begin, end = sides(p, nd)
    return tuple(window_len(x[2 + i], k[i], s[i], begin[i], end[i], d[i], ceil_mode) for i in range(nd))


def check_rank(x: Shape, nd: int, channels: str = "C") -> None:
    if len(x) != nd + 2:
        raise LayerShapeError(port=0, expected=pattern(nd, channels))


def check_pad_fits(x: Shape, p: dict[str, Any], nd: int, mode: str) -> None:
    """``reflect`` mirrors inside the input (padding < size), ``circular`` wraps it (<= size)."""
    if mode not in ("reflect", "circular"):
        return
    begin, end = sides(p, nd)
    for i in range(nd):
        size = x[2 + i]
        worst = max(begin[i], end[i])
        if isinstance(size, int) and (worst >= size if mode == "reflect" else worst > size):
            bound = "smaller than" if mode == "reflect" else "at most"
            raise LayerShapeError(
                f"padding_mode={mode} needs the padding ({worst}) {bound} the input size {size} "
                f"(dimension {2 + i} of {fmt_shape(x)})",
                param="padding_mode",
            )
