"""Small helpers for shape rules: symbolic dims, rank checks, conv arithmetic."""

from __future__ import annotations

from collections.abc import Sequence

import torch

from .spec import Dim, LayerShapeError, Shape

#: an Input's ``dtype`` parameter -> the torch element type its values are given
INPUT_DTYPES = {"float32": torch.float32, "float64": torch.float64, "int64": torch.int64}


def fmt_shape(shape: Sequence[Dim]) -> str:
    """``("N", 1, 8, 8)`` -> ``[N, 1, 8, 8]``."""
    return "[" + ", ".join(str(d) for d in shape) + "]"


def expect_rank(shape: Shape, rank: int | tuple[int, ...], pattern: str, port: int = 0) -> None:
    """Raise unless ``shape`` has the given rank (or one of the ranks)."""
    ranks = (rank,) if isinstance(rank, int) else rank
    if len(shape) not in ranks:
        raise LayerShapeError(port=port, expected=pattern)


def fixed(dim: Dim, what: str, port: int = 0) -> int:
    """A dimension that must be concrete (a layer's in_features, channels...)."""
    if not isinstance(dim, int):
        raise LayerShapeError(f"needs a fixed {what}, got the symbolic size {dim}", port=port)
    return dim


def product(dims: Sequence[Dim]) -> Dim:
    """Product of dims; symbolic factors stay in the expression (``8*T``)."""
    n = 1
    syms: list[str] = []
    for d in dims:
        if isinstance(d, int):
            n *= d
        else:
            syms.append(str(d))
    if not syms:
        return n
    # a compound factor keeps its parentheses: 3 * ((T+1)//2) is not (3*(T+1))//2
    syms = [s if s.isidentifier() or s.isdigit() or (s.startswith("(") and s.endswith(")") and _balanced(s[1:-1]))
            else f"({s})" for s in syms]
    return "*".join(([str(n)] if n != 1 else []) + syms)


def _balanced(text: str) -> bool:
    """Whether ``text`` has no parenthesis closing before it opened (so ``(a)+(b)`` is not one group)."""
    depth = 0
    for ch in text:
        depth += ch == "("
        depth -= ch == ")"
        if depth < 0:
            return False
    return depth == 0


def window_out(size: Dim, kernel: int, stride: int, padding: int, dilation: int, param: str) -> Dim:
    """Output length of a convolution or pooling window along one axis."""
    span = dilation * (kernel - 1) + 1
    if isinstance(size, int):
        out = (size + 2 * padding - span) // stride + 1
        if out < 1:
            raise LayerShapeError(
                f"{param}={kernel} (with padding {padding}, dilation {dilation}) does not fit an input of size {size}",
                param=param,
            )
        return out
    offset = 2 * padding - span + 1
    if stride == 1:
        return size if offset == 0 else f"{size}{offset:+d}"
    # (L + offset - 1) // stride + 1 written as one floor division
    return f"({size}{offset + stride - 1:+d})//{stride}" if offset + stride - 1 else f"{size}//{stride}"


def transpose_out(size: Dim, kernel: int, stride: int, padding: int, output_padding: int, dilation: int) -> Dim:
    """Output length of a transposed convolution along one axis."""
    if isinstance(size, int):
        return (size - 1) * stride - 2 * padding + dilation * (kernel - 1) + output_padding + 1
    return f"{size}*{stride}{dilation * (kernel - 1) + output_padding + 1 - stride - 2 * padding:+d}"


def same_dims(a: Shape, b: Shape) -> bool:
    return len(a) == len(b) and all(x == y for x, y in zip(a, b, strict=True))


def broadcast(a: Shape, b: Shape) -> Shape | None:
    """Numpy-style broadcast of two shapes, or None when they do not broadcast."""
    out: list[Dim] = []
    for i in range(1, max(len(a), len(b)) + 1):
        x = a[-i] if i <= len(a) else 1
        y = b[-i] if i <= len(b) else 1
        if x == y or y == 1:
            out.append(x)
        elif x == 1:
            out.append(y)
        else:
            return None
    return tuple(reversed(out))


def non_batch_dim(dim: int, shape: Sequence[Dim], param: str = "dim") -> int:
    """``dim`` (negative counts from the end) as an index into ``shape``.

    Dim 0 is the batch: an op that removed or reordered it would mix or drop samples,
    so it is refused like a dim out of range, naming ``param``.
    """
    rank = len(shape)
    if not -rank <= dim < rank or dim in (0, -rank):
        raise LayerShapeError(
            f"{param}={dim} must name a non-batch dimension of {fmt_shape(shape)} "
            f"(1..{rank - 1} or -1..-{rank - 1}; 0 is the batch)",
            param=param,
        )
    return dim % rank


def distinct_dims(dims: Sequence[int], shape: Sequence[Dim], param: str = "dims") -> list[int]:
    """Non-batch ``dims`` as indices into ``shape``, each named once (see :func:`non_batch_dim`)."""
    out = [non_batch_dim(d, shape, param) for d in dims]
    if len(set(out)) != len(out):
        raise LayerShapeError(f"{param}={list(dims)} names a dimension of {fmt_shape(shape)} twice", param=param)
    return out
