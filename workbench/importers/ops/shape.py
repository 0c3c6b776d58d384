"""Shape ops: Flatten, Reshape, Transpose, Squeeze, Unsqueeze, Expand, Tile.

A layer never moves, resizes or mixes the batch (dimension 0), so each converter first checks
that the ONNX op keeps it.  Shapes with symbolic sizes are read at the two probe settings of
the input sizes (``OnnxNode.sizes``): a target shape computed from ``Shape`` ops is known at
each, so a dimension that follows the batch or a sequence length is told from a fixed one.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

import numpy as np

from ..registry import BATCH, DATA, Dim, Emission, OnnxNode, Unsupported, Value, converter, one
from .common import Build, axis, first_out, ints, rank_of

Concrete = tuple[int, ...]


def concrete(shape: Sequence[Dim] | None, sizes: Mapping[str, int], batched: bool = False) -> Concrete | None:
    """``shape`` with every symbol replaced by its size (None when one is unknown).  The first dim of a
    ``batched`` tensor is the batch when inference lost it (every data tensor a layer reads has it first)."""
    if shape is None:
        return None
    out = []
    for i, d in enumerate(shape):
        if isinstance(d, int) and d >= 0:
            out.append(d)
        elif isinstance(d, str) and d in sizes:
            out.append(sizes[d])
        elif i == 0 and batched and BATCH in sizes:
            out.append(sizes[BATCH])
        else:
            return None
    return tuple(out)


def both(v: Value | None, node: OnnxNode) -> tuple[Concrete, Concrete] | None:
    if v is None:
        return None
    batched = v.kind == DATA and v.name in {i.name for i in node.inputs if i is not None}
    a, b = concrete(v.shape, node.sizes[0], batched), concrete(v.shape, node.sizes[1], batched)
    if (a is None or b is None) and v.ran is not None:
        return v.ran
    return None if a is None or b is None else (a, b)


def _reshaped(target: np.ndarray, shape: Concrete, allowzero: bool) -> Concrete:
    t = [int(x) for x in target.reshape(-1)]
    out = [shape[i] if x == 0 and not allowzero and i < len(shape) else x for i, x in enumerate(t)]
    if out.count(-1) == 1:
        known = math.prod(x for x in out if x != -1)
        out[out.index(-1)] = math.prod(shape) // known if known else 0
    return tuple(out)


def _target_outputs(node: OnnxNode, x: tuple[Concrete, Concrete]) -> tuple[Concrete, Concrete] | None:
    """The Reshape's output shape at both probes: from the target (what the op computes), else from
    inference (a declared output shape may be fixed where the target follows the batch)."""
    t = node.input(1)
    allowzero = bool(node.attr("allowzero", 0))
    fixed = t.fixed() if t is not None else None
    if fixed is not None:
        return _reshaped(fixed, x[0], allowzero), _reshaped(fixed, x[1], allowzero)
    if t is not None and t.probes is not None:
        return _reshaped(t.probes[0], x[0], allowzero), _reshaped(t.probes[1], x[1], allowzero)
    return both(node.outputs[0], node)


def reshape_layers(b: Build, src: str, ins: tuple[Concrete, Concrete], outs: tuple[Concrete, Concrete]):
    """The layer (or none) that turns shape ``ins`` into ``outs`` at both probes, keeping the batch."""
    (ia, ib), (oa, ob) = ins, outs
    if not oa or oa[0] != ia[0] or ob[0] != ib[0]:
        raise Unsupported(f"a reshape that changes the batch dimension ({list(ia)} -> {list(oa)})")
    if math.prod(ia) != math.prod(oa) or math.prod(ib) != math.prod(ob):
        raise Unsupported(f"a reshape of {list(ia)} into {list(oa)}, which do not hold the same number of values")
    if ia == oa and ib == ob:
        return src
    for k in range(1, len(ia)):  # flatten from dim k to the end
        if len(oa) == k + 1 and oa[:k] == ia[:k] and ob[:k] == ib[:k] and oa[k] == math.prod(ia[k:]) \
                and ob[k] == math.prod(ib[k:]):
            return b.add("Flatten", {"start_dim": k}, (src,))
    extra = len(oa) - len(ia)
    for d in range(1, len(ia)):  # split dim d into several
        sizes = oa[d: d + extra + 1]
        if extra >= 1 and ob[d: d + extra + 1] == sizes and oa[:d] == ia[:d] and ob[:d] == ib[:d] \
                and oa[d + extra + 1:] == ia[d + 1:] and ob[d + extra + 1:] == ib[d + 1:] and math.prod(sizes) == ia[d] \
                and math.prod(sizes) == ib[d]:
            return b.add("Unflatten", {"dim": d, "sizes": list(sizes)}, (src,))
    if ia[1:] == ib[1:] and oa[1:] == ob[1:]:
        return b.add("Reshape", {"shape": list(oa[1:])}, (src,))
    raise Unsupported(f"a reshape of {list(ia)} into {list(oa)} whose sizes change with the input's")


@converter("Reshape", targets=("Flatten", "Unflatten", "Reshape"))
def reshape(node: OnnxNode) -> Emission:
    x = node.inputs[0]
    ins = both(x, node)
    if ins is None:
        raise Unsupported(f"an input of unknown shape ({list(x.shape) if x and x.shape else None})")
    outs = _target_outputs(node, ins)
    if outs is None:
        raise Unsupported("a target shape that cannot be worked out")
    b = Build(node)
    return b.output(reshape_layers(b, x.name, ins, outs), first_out(node))  # type: ignore[union-attr]


@converter("Flatten", targets=("Flatten", "Unsqueeze"))
def flatten(node: OnnxNode) -> Emission:
    x = node.inputs[0]
    rank = rank_of(x)
    a = int(node.attr("axis", 1))
    a = a + rank if a < 0 else a
    if a == 0:
        raise Unsupported("flattening the batch into the features (axis 0)")
    if rank == 1:  # [N] -> [N, 1]: one value per sample becomes a feature of size 1
        return one("Unsqueeze", node, {"dim": 1})
    ins = both(x, node)
    if a > 1 and (ins is None or any(d != 1 for d in ins[0][1:a] + ins[1][1:a])):
        raise Unsupported(f"flattening to 2-D at axis {a}, which folds dimensions 1..{a - 1} into the batch")
    return one("Flatten", node, {"start_dim": 1})


@converter("Transpose", targets=("Permute", "Transpose"))
def transpose(node: OnnxNode) -> Emission:
    rank = rank_of(node.inputs[0])
    perm = [int(p) for p in node.attr("perm", list(range(rank))[::-1])]
    if perm[0] != 0:
        raise Unsupported(f"a permutation {perm} that moves the batch dimension")
    if perm == list(range(rank)):
        return Emission(aliases={first_out(node): node.inputs[0].name})  # type: ignore[union-attr]
    moved = [i for i, p in enumerate(perm) if p != i]
    if len(moved) == 2:
        return one("Transpose", node, {"dim0": moved[0], "dim1": moved[1]})
    return one("Permute", node, {"dims": perm[1:]})


def _axes(node: OnnxNode, since: int) -> list[int] | None:
    if node.opset >= since:
        v = node.input(1)
        if v is None:
            return None
        value = v.fixed()
        if value is None:
            raise Unsupported("axes computed at run time")
        return ints(value)
    given = node.attr("axes")
    return None if given is None else [int(a) for a in given]


@converter("Squeeze", targets=("Squeeze",))
def squeeze(node: OnnxNode) -> Emission:
    x = node.inputs[0]
    rank = rank_of(x)
    given = _axes(node, 13)
    if given is None:
        ins = both(x, node)
        if ins is None:
            raise Unsupported("squeezing every size-1 dimension of an input of unknown shape")
        if ins[0][0] == 1 or ins[1][0] == 1:
            raise Unsupported("squeezing every size-1 dimension, the batch of 1 included")
        dims = [i for i in range(1, rank) if ins[0][i] == 1 and ins[1][i] == 1]
    else:
        dims = sorted(axis(a, rank) for a in given)
    if not dims:
        return Emission(aliases={first_out(node): x.name})  # type: ignore[union-attr]
    return one("Squeeze", node, {"dims": dims})


@converter("Unsqueeze", targets=("Unsqueeze",))
def unsqueeze(node: OnnxNode) -> Emission:
    x = node.inputs[0]
    given = _axes(node, 13) or []
    out_rank = rank_of(x) + len(given)
    dims = sorted(axis(a, out_rank) for a in given)
    b = Build(node)
    src: object = x.name  # type: ignore[union-attr]
    for d in dims:
        src = b.add("Unsqueeze", {"dim": d}, (src,))  # type: ignore[arg-type]
    return b.output(src, first_out(node))  # type: ignore[arg-type]


@converter("Expand", targets=("Expand",))
def expand(node: OnnxNode) -> Emission:
    x, out = node.inputs[0], node.outputs[0]
    ins, outs = both(x, node), both(out, node)
    if outs is None:
        t = node.input(1)
        if ins is not None and t is not None and t.probes is not None:
            outs = tuple(tuple(np.broadcast_shapes(i, tuple(int(v) for v in p)))  # type: ignore[assignment]
                         for i, p in zip(ins, t.probes, strict=True))
        elif ins is not None and t is not None and t.fixed() is not None:
            outs = tuple(tuple(np.broadcast_shapes(i, tuple(ints(t.fixed())))) for i in ins)  # type: ignore[assignment]
    if ins is None or outs is None:
        raise Unsupported("a target shape that cannot be worked out")
    (ia, ib), (oa, ob) = ins, outs
    if len(oa) != len(ia) or oa[0] != ia[0] or ob[0] != ib[0]:
        raise Unsupported(f"an expansion of {list(ia)} to {list(oa)} that changes the rank or the batch")
    sizes = []
    for i in range(1, len(ia)):
        if oa[i] == ia[i] and ob[i] == ib[i]:
            sizes.append(-1)
        elif oa[i] == ob[i] and ia[i] == ib[i] == 1:
            sizes.append(oa[i])
        else:
            raise Unsupported(f"an expansion of dimension {i} to a size that changes with the input's")
    while sizes and sizes[-1] == -1:
        sizes.pop()
    if not sizes:
        return Emission(aliases={first_out(node): x.name})  # type: ignore[union-attr]
    return one("Expand", node, {"sizes": sizes, "match_batch": False})


@converter("Tile", targets=("Repeat",))
def tile(node: OnnxNode) -> Emission:
    reps = node.input(1)
    value = reps.fixed() if reps is not None else None
    if value is None:
        raise Unsupported("repeats computed at run time")
    r = ints(value)
    if r[0] != 1:
        raise Unsupported(f"repeats {r} that tile the batch")
    while len(r) > 1 and r[-1] == 1:
        r.pop()
    if len(r) == 1:
        return Emission(aliases={first_out(node): node.inputs[0].name})  # type: ignore[union-attr]
    return one("Repeat", node, {"repeats": r[1:]})
