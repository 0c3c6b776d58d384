"""Activations exporters write as several ops: GELU with Erf, HardSwish and HardSigmoid as
``x * relu6(x + 3) / 6``, SiLU as ``x * sigmoid(x)``, Mish as ``x * tanh(softplus(x))``, GLU as
Split + Sigmoid + Mul, Softmin as Neg + Softmax, and a per-channel scale then shift as one
Scale/Bias.  Each recogniser claims the ops it replaces; anything else is left to the converters."""

from __future__ import annotations

import math

import numpy as np

from ..registry import DATA, Emission, ModelView, OnnxNode, recogniser
from .common import Build, channel_axis, data_users, first_out, rank_of


def _sole_user(view: ModelView, node: OnnxNode, ops: tuple[str, ...]) -> OnnxNode | None:
    out = first_out(node)
    users = data_users(view, out)
    if len(users) == 1 and users[0].op in ops and not view.is_output(out):
        return users[0]
    return None


def _other(node: OnnxNode, name: str) -> tuple[str | None, float | None]:
    """The operand of a binary ``node`` that is not ``name``: its name, and its value if it is a scalar constant."""
    others = [v for v in node.inputs if v is not None and v.name != name]
    if len(others) != 1:
        return (name, None) if len(node.inputs) == 2 else (None, None)  # x * x
    value = others[0].fixed()
    if value is not None and value.size == 1:
        return others[0].name, float(value.reshape(-1)[0])
    return others[0].name, None


def _near(a: float | None, b: float) -> bool:
    return a is not None and math.isclose(a, b, rel_tol=1e-4)


def _one(node: OnnxNode, type_id: str, x: str, out: str, claims: list[int], params: dict | None = None,
         name: str | None = None) -> Emission:
    b = Build(node)
    return b.emission({out: b.add(type_id, params or {}, (x,), name=name or node.hint())}, claims=claims)


@recogniser("Erf", targets=("GELU",))
def gelu_erf(node: OnnxNode, view: ModelView) -> Emission | None:
    """``x * 0.5 * (1 + erf(x / sqrt(2)))`` in any of the orders exporters write it."""
    scaled = view.producer(node.inputs[0].name) if node.inputs[0] is not None else None
    if scaled is None or scaled.op not in ("Div", "Mul") or len(data_users(view, first_out(scaled))) != 1:
        return None
    x = next((v.name for v in scaled.inputs if v is not None and v.kind == DATA), None)
    if x is None:
        return None
    _, k = _other(scaled, x)
    if not (_near(k, math.sqrt(2)) if scaled.op == "Div" else _near(k, 1 / math.sqrt(2))):
        return None
    add = _sole_user(view, node, ("Add",))
    if add is None or not _near(_other(add, first_out(node))[1], 1.0):
        return None
    claims = [scaled.index, add.index]
    first = _sole_user(view, add, ("Mul",))
    if first is None:
        return None
    operand, value = _other(first, first_out(add))
    claims.append(first.index)
    if operand == x:  # (x * (1 + erf)) * 0.5
        last = _sole_user(view, first, ("Mul", "Div"))
        if last is None or not (_near(_other(last, first_out(first))[1], 0.5 if last.op == "Mul" else 2.0)):
            return None
        claims.append(last.index)
        return _one(node, "GELU", x, first_out(last), claims, {"approximate": "none"})
    if _near(value, 0.5):  # ((1 + erf) * 0.5) * x
        last = _sole_user(view, first, ("Mul",))
        if last is None or _other(last, first_out(first))[0] != x:
            return None
        claims.append(last.index)
        return _one(node, "GELU", x, first_out(last), claims, {"approximate": "none"})
    half = view.producer(operand) if operand else None  # (x * 0.5) * (1 + erf)
    if half is not None and half.op == "Mul" and _other(half, x)[0] != x and _near(_other(half, x)[1], 0.5) \
            and len(data_users(view, first_out(half))) == 1:
        claims.append(half.index)
        return _one(node, "GELU", x, first_out(first), claims, {"approximate": "none"})
    return None


@recogniser("Add", targets=("Hardswish", "Hardsigmoid"))
def hard_swish(node: OnnxNode, view: ModelView) -> Emission | None:
    """``relu6(x + 3) / 6`` is Hardsigmoid; times ``x`` it is Hardswish."""
    x = next((v.name for v in node.inputs if v is not None and v.kind == DATA), None)
    if x is None or not _near(_other(node, x)[1], 3.0):
        return None
    clip = _sole_user(view, node, ("Clip", "Relu"))
    if clip is None or not _is_relu6(clip):
        return None
    claims = [node.index, clip.index]
    nxt = _sole_user(view, clip, ("Div", "Mul"))
    if nxt is None:
        return None
    operand, value = _other(nxt, first_out(clip))
    if (nxt.op == "Div" and _near(value, 6.0)) or (nxt.op == "Mul" and _near(value, 1 / 6)):
        claims.append(nxt.index)
        times = _sole_user(view, nxt, ("Mul",))
        if times is not None and _other(times, first_out(nxt))[0] == x:
            return _one(node, "Hardswish", x, first_out(times), [*claims, times.index])
        return _one(node, "Hardsigmoid", x, first_out(nxt), claims)
    if nxt.op == "Mul" and operand == x:  # x * relu6(x + 3), then / 6
        last = _sole_user(view, nxt, ("Div", "Mul"))
        value = _other(last, first_out(nxt))[1] if last is not None else None
        if last is not None and ((last.op == "Div" and _near(value, 6.0)) or (last.op == "Mul" and _near(value, 1 / 6))):
            return _one(node, "Hardswish", x, first_out(last), [*claims, nxt.index, last.index])
    return None


def _is_relu6(clip: OnnxNode) -> bool:
    if clip.op != "Clip":
        return False
    if clip.opset < 11:
        return clip.attr("min") == 0.0 and clip.attr("max") == 6.0
    lo = clip.input(1).fixed() if clip.input(1) is not None else None
    hi = clip.input(2).fixed() if clip.input(2) is not None else None
    return lo is not None and hi is not None and float(lo) == 0.0 and float(hi) == 6.0


@recogniser("HardSigmoid", targets=("Hardswish",))
def hard_swish_op(node: OnnxNode, view: ModelView) -> Emission | None:
    """``x * HardSigmoid(x)`` with torch's constants is Hardswish."""
    if not (_near(float(node.attr("alpha", 0.2)), 1 / 6) and _near(float(node.attr("beta", 0.5)), 0.5)):
        return None
    x = node.inputs[0].name if node.inputs[0] is not None else None
    times = _sole_user(view, node, ("Mul",))
    if x is None or times is None or _other(times, first_out(node))[0] != x:
        return None
    return _one(node, "Hardswish", x, first_out(times), [times.index])


@recogniser("Sigmoid", targets=("SiLU",))
def silu(node: OnnxNode, view: ModelView) -> Emission | None:
    x = node.inputs[0].name if node.inputs[0] is not None else None
    times = _sole_user(view, node, ("Mul",))
    if x is None or times is None or _other(times, first_out(node))[0] != x:
        return None
    return _one(node, "SiLU", x, first_out(times), [times.index])


@recogniser("Softplus", targets=("Mish",))
def mish(node: OnnxNode, view: ModelView) -> Emission | None:
    x = node.inputs[0].name if node.inputs[0] is not None else None
    tanh = _sole_user(view, node, ("Tanh",))
    times = _sole_user(view, tanh, ("Mul",)) if tanh is not None else None
    if x is None or tanh is None or times is None or _other(times, first_out(tanh))[0] != x:
        return None
    return _one(node, "Mish", x, first_out(times), [tanh.index, times.index])


@recogniser("Neg", targets=("Softmin",))
def softmin(node: OnnxNode, view: ModelView) -> Emission | None:
    soft = _sole_user(view, node, ("Softmax",))
    x = node.inputs[0]
    if soft is None or x is None or x.shape is None:
        return None
    rank = len(x.shape)
    a = int(soft.attr("axis", -1 if soft.opset >= 13 else 1)) % rank
    if a == 0 or (soft.opset < 13 and a != rank - 1 and any(d != 1 for d in x.shape[a + 1:])):
        return None
    return _one(node, "Softmin", x.name, first_out(soft), [soft.index], {"dim": a})


@recogniser("Split", targets=("GLU",))
def glu(node: OnnxNode, view: ModelView) -> Emission | None:
    """``a, b = x.split(2, dim); a * sigmoid(b)``."""
    x = node.inputs[0]
    outs = [v for v in node.outputs if v is not None]
    if x is None or x.shape is None or len(outs) != 2 or (outs[0].shape and outs[1].shape and outs[0].shape != outs[1].shape):
        return None
    a, b = outs[0].name, outs[1].name
    sig = data_users(view, b)
    if len(sig) != 1 or sig[0].op != "Sigmoid" or view.is_output(b):
        return None
    times = _sole_user(view, sig[0], ("Mul",))
    users_a = data_users(view, a)
    if times is None or _other(times, first_out(sig[0]))[0] != a or len(users_a) != 1 or users_a[0].index != times.index:
        return None
    dim = int(node.attr("axis", 0)) % len(x.shape)
    if dim == 0:
        return None
    return _one(node, "GLU", x.name, first_out(times), [sig[0].index, times.index], {"dim": dim})


@recogniser("Mul", priority=-20, targets=("ScaleBias",))
def scale_and_shift(node: OnnxNode, view: ModelView) -> Emission | None:
    """``x * s + b`` with one value per channel (of the same dim) in each is one Scale/Bias."""
    x = next((v for v in node.inputs if v is not None and v.kind == DATA), None)
    if x is None:
        return None
    s = _other(node, x.name)[0]
    sv = next((v.fixed() for v in node.inputs if v is not None and v.name == s), None)
    add = _sole_user(view, node, ("Add",))
    if sv is None or add is None:
        return None
    bv = next((v.fixed() for v in add.inputs if v is not None and v.name != first_out(node)), None)
    rank = rank_of(x)
    dim = channel_axis(sv, rank)
    if bv is None or dim is None or channel_axis(bv, rank) != dim or sv.size != bv.size:
        return None
    shape = (int(sv.size),) + (1,) * (rank - 1 - dim)
    b = Build(node)
    y = b.add("ScaleBias", {"dim": dim, "scale": True, "bias": True}, (x.name,),
              {"weight": np.asarray(sv, np.float32).reshape(shape), "bias": np.asarray(bv, np.float32).reshape(shape)})
    return b.emission({first_out(add): y}, claims=[add.index])


@recogniser("Softplus", priority=1, targets=("Softplus",))
def softplus_threshold(node: OnnxNode, view: ModelView) -> Emission | None:
    """torch's Softplus as torch.export writes it: ``where(x * b > t, x, softplus(x * b) / b)``."""
    scaled = view.producer(node.inputs[0].name) if node.inputs[0] is not None else None
    if scaled is None or scaled.op != "Mul":
        return None
    x = next((v.name for v in scaled.inputs if v is not None and v.kind == DATA), None)
    beta = _other(scaled, x)[1] if x is not None else None
    div = _sole_user(view, node, ("Div",))
    if x is None or beta is None or div is None or not _near(_other(div, first_out(node))[1], beta):
        return None
    where = _sole_user(view, div, ("Where",))
    if where is None or where.inputs[1] is None or where.inputs[1].name != x or where.inputs[0] is None:
        return None
    greater = view.producer(where.inputs[0].name)
    if greater is None or greater.op != "Greater" or greater.inputs[0] is None or greater.inputs[0].name != first_out(scaled):
        return None
    threshold = _other(greater, first_out(scaled))[1]
    if threshold is None or beta <= 0:
        return None
    claims = [scaled.index, div.index, where.index, greater.index]
    return _one(node, "Softplus", x, first_out(where), claims, {"beta": beta, "threshold": threshold})


def _rows(value: np.ndarray) -> np.ndarray | None:
    """A table of rows [T, E] (leading 1s dropped), or None."""
    while value.ndim > 2 and value.shape[0] == 1:
        value = value[0]
    return value if value.ndim == 2 else None


def _sinusoids(steps: int, dim: int) -> np.ndarray:
    """The catalogue's sinusoidal table (PositionalEncoding, kind sinusoidal), in float64."""
    pos = np.arange(steps, dtype=np.float64)[:, None]
    angle = pos * np.exp(np.arange(0, dim, 2, dtype=np.float64) * (-math.log(10000.0) / dim))
    return np.stack([np.sin(angle), np.cos(angle)], -1).reshape(steps, dim)


def _table(view: ModelView, tensor: str, dim: int) -> np.ndarray | None:
    """A constant [rows, dim] table the shape-derived ``tensor`` is read from (a Gather or a Slice of it)."""
    stack, seen = [tensor], 0
    while stack and seen < 16:
        p = view.producer(stack.pop())
        seen += 1
        if p is None:
            continue
        for v in p.inputs:
            if v is None:
                continue
            if v.const is not None and v.const.ndim in (2, 3) and v.const.shape[-1] == dim:
                rows = _rows(v.const)
                if rows is not None:
                    return rows
            if v.kind != DATA and v.const is None:
                stack.append(v.name)
    return None


@recogniser("Add", priority=5, targets=("PositionalEncoding",))
def positions(node: OnnxNode, view: ModelView) -> Emission | None:
    """``x + table[:T]`` where ``T`` is the input's (variable) length: a learned positional encoding
    (the table is its weight), or the fixed sinusoidal one when the values are those sinusoids."""
    data = [v for v in node.inputs if v is not None and v.kind == DATA]
    other = [v for v in node.inputs if v is not None and v.kind != DATA]
    if len(data) != 1 or len(other) != 1 or other[0].probes is None or data[0].shape is None:
        return None
    x, s = data[0], other[0]
    if len(x.shape) != 3 or not isinstance(x.shape[2], int):
        return None
    a, b = (_rows(np.asarray(p, np.float64)) for p in s.probes)
    if a is None or b is None or a.shape[0] == b.shape[0] or a.shape[1] != x.shape[2]:
        return None  # not a table that follows the length (a fixed one is a Parameter)
    dim = int(x.shape[2])
    table = _table(view, s.name, dim)
    if table is not None and table.shape[0] >= max(len(a), len(b)) and np.array_equal(a, table[: len(a)]) \
            and np.array_equal(b, table[: len(b)]):
        b_ = Build(node)
        y = b_.add("PositionalEncoding", {"kind": "learned", "max_len": int(table.shape[0])}, (x.name,),
                   {"weight": np.asarray(table, np.float32)})
        return b_.emission({first_out(node): y})
    if dim % 2 == 0 and all(np.allclose(t, _sinusoids(len(t), dim), atol=1e-5) for t in (a, b)):
        return _one(node, "PositionalEncoding", x.name, first_out(node), [], {"kind": "sinusoidal"})
    return None
