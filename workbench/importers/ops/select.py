"""Selecting and arranging: Concat, Split, Slice, Gather (Select / Embedding / SequencePool), Pad,
DepthToSpace / SpaceToDepth (pixel shuffles) and Resize / Upsample."""

from __future__ import annotations

from typing import Any

import numpy as np
import onnx

from ...layers.spec import MAX_SIZE
from ..registry import CONST, DATA, Emission, ModelView, OnnxNode, Out, Source, Unsupported, converter, one, recogniser
from .common import Build, axis, clamp_index, first_out, ints, materialise, rank_of
from .shape import both


@converter("Concat", targets=("Concat", "Parameter", "Expand"))
def concat(node: OnnxNode) -> Emission:
    ins = [v for v in node.inputs if v is not None]
    data = [v for v in ins if v.kind == DATA]
    rank = rank_of(data[0] if data else ins[0])
    dim = axis(int(node.attr("axis")), rank)
    if len(ins) == 1:
        return Emission(aliases={first_out(node): ins[0].name})
    b = Build(node)
    sources: list[Source] = [materialise(b, v, data[0].name) for v in ins]
    return b.output(b.add("Concat", {"num_inputs": len(ins), "dim": dim}, sources), first_out(node))


@converter("Split", targets=("Split", "Chunk"))
def split(node: OnnxNode) -> Emission:
    x = node.inputs[0]
    rank = rank_of(x)
    dim = axis(int(node.attr("axis", 0)), rank)
    outs = [v for v in node.outputs]
    if len(outs) == 1:
        return Emission(aliases={first_out(node): x.name})  # type: ignore[union-attr]
    if node.opset >= 13 and node.input(1) is not None:
        value = node.input(1).fixed()  # type: ignore[union-attr]
        if value is None:
            raise Unsupported("split sizes computed at run time")
        sizes = ints(value)
    else:
        sizes = [int(s) for s in node.attr("split", [])]
    size = x.shape[dim] if x is not None and x.shape is not None else None
    if not sizes:
        if not isinstance(size, int):
            raise Unsupported("an even split of a dimension whose size is not fixed")
        step = -(-size // len(outs))
        sizes = [step] * (len(outs) - 1) + [size - step * (len(outs) - 1)]
    if len(sizes) != len(outs) or any(s < 1 for s in sizes):
        raise Unsupported(f"split sizes {sizes} for {len(outs)} outputs")
    if not isinstance(size, int):
        sizes[-1] = -1  # the rest of a variable length
    b = Build(node)
    y = b.add("Split", {"sizes": sizes, "dim": dim}, (x.name,))  # type: ignore[union-attr]
    return b.emission({v.name: Out(y.layer, f"y{i + 1}") for i, v in enumerate(outs) if v is not None})


def _slice_args(node: OnnxNode) -> tuple[list[int], list[int], list[int], list[int]]:
    rank = rank_of(node.inputs[0])
    if node.opset < 10:
        starts, ends = [int(s) for s in node.attr("starts")], [int(e) for e in node.attr("ends")]
        axes = [int(a) for a in node.attr("axes", list(range(len(starts))))]
        return starts, ends, axes, [1] * len(starts)
    values = []
    for i in (1, 2, 3, 4):
        v = node.input(i)
        fixed = v.fixed() if v is not None else None
        if v is not None and fixed is None:
            raise Unsupported("slice bounds computed at run time")
        values.append(ints(fixed) if fixed is not None else None)
    starts, ends = values[0] or [], values[1] or []
    axes = values[2] if values[2] is not None else list(range(len(starts)))
    steps = values[3] if values[3] is not None else [1] * len(starts)
    return starts, ends, [a % rank if a < 0 else a for a in axes], steps


@converter("Slice", targets=("Slice",))
def slice_(node: OnnxNode) -> Emission:
    x = node.inputs[0]
    starts, ends, axes, steps = _slice_args(node)
    shapes = both(x, node)
    b = Build(node)
    src: Source = x.name  # type: ignore[union-attr]
    for start, end, a, step in sorted(zip(starts, ends, axes, steps, strict=True), key=lambda t: t[2]):
        if step < 1:
            raise Unsupported(f"a step of {step}")
        start, end = clamp_index(start), clamp_index(end)
        whole = start in (0, -MAX_SIZE) and step == 1 and (end >= MAX_SIZE or (
            shapes is not None and end >= max(shapes[0][a], shapes[1][a])))
        if whole:
            continue
        if a == 0:
            raise Unsupported("slicing the batch dimension")
        src = b.add("Slice", {"dim": a, "start": start, "end": end, "step": step}, (src,))
    return b.output(src, first_out(node))


@converter("Gather", targets=("Select", "Embedding", "SequencePool", "Slice"))
def gather(node: OnnxNode) -> Emission:
    data, idx = node.inputs[0], node.inputs[1]
    assert data is not None and idx is not None
    if data.kind == CONST and idx.kind == DATA:
        table = data.const
        if table is None or table.ndim != 2 or int(node.attr("axis", 0)) != 0:
            raise Unsupported("a lookup in a constant table that is not an embedding matrix")
        if idx.elem not in (onnx.TensorProto.INT64, onnx.TensorProto.INT32):
            raise Unsupported("embedding ids that are not integers")
        return one("Embedding", node, {"num_embeddings": int(table.shape[0]), "embedding_dim": int(table.shape[1])},
                   inputs=(idx.name,), weights={"weight": table}, name=node.hint(0))
    if data.kind != DATA:
        raise Unsupported("indexing a value that is not data")
    rank = rank_of(data)
    dim = axis(int(node.attr("axis", 0)), rank)
    index = idx.fixed()
    if index is None:
        raise Unsupported("indices that are data (only constant positions map onto a layer)")
    if index.ndim == 0:
        i = int(index)
        if rank == 3 and dim == 1 and i in (0, -1):
            return one("SequencePool", node, {"mode": "first" if i == 0 else "last"})
        return one("Select", node, {"dim": dim, "index": i})
    flat = ints(index)
    if index.ndim == 1 and flat:
        step = flat[1] - flat[0] if len(flat) > 1 else 1
        if step >= 1 and flat == list(range(flat[0], flat[0] + step * len(flat), step)) and flat[0] >= 0:
            return one("Slice", node, {"dim": dim, "start": flat[0], "end": flat[-1] + 1, "step": step})
    raise Unsupported(f"gathering positions {flat[:8]} (not one position nor an increasing range)")


_PAD_MODES = {"constant": "constant", "reflect": "reflect", "edge": "replicate", "wrap": "circular"}


@converter("Pad", targets=("Pad",))
def pad(node: OnnxNode) -> Emission:
    x = node.inputs[0]
    rank = rank_of(x)
    mode = node.attr("mode", "constant")
    if mode not in _PAD_MODES:
        raise Unsupported(f"mode {mode}")
    value = 0.0
    if node.opset < 11:
        pads = [int(p) for p in node.attr("pads", node.attr("paddings", []))]
        value = float(node.attr("value", 0.0))
        axes = list(range(rank))
    else:
        given = node.input(1).fixed() if node.input(1) is not None else None  # type: ignore[union-attr]
        if given is None:
            raise Unsupported("pads computed at run time")
        pads = ints(given)
        if node.input(2) is not None:
            c = node.input(2).fixed()  # type: ignore[union-attr]
            if c is None:
                raise Unsupported("a fill value computed at run time")
            value = float(np.asarray(c).reshape(-1)[0]) if np.asarray(c).size else 0.0
        axes_v = node.input(3).fixed() if node.input(3) is not None else None  # type: ignore[union-attr]
        axes = [a % rank for a in ints(axes_v)] if axes_v is not None else list(range(rank))
    k = len(axes)
    if len(pads) != 2 * k:
        raise Unsupported(f"pads {pads} for {k} axes")
    per = {a: (pads[i], pads[k + i]) for i, a in enumerate(axes)}
    if any(p < 0 for p in pads):
        raise Unsupported("negative pads (cropping)")
    if per.get(0, (0, 0)) != (0, 0):
        raise Unsupported("padding the batch dimension")
    last = max((a for a, p in per.items() if p != (0, 0)), default=None)
    if last is None:
        return Emission(aliases={first_out(node): x.name})  # type: ignore[union-attr]
    first = min(a for a, p in per.items() if p != (0, 0))
    torch_order: list[int] = []
    for a in range(rank - 1, first - 1, -1):
        torch_order += list(per.get(a, (0, 0)))
    params: dict[str, Any] = {"mode": _PAD_MODES[mode], "pads": torch_order}
    if mode == "constant":
        params["value"] = value
    return one("Pad", node, params)


@converter("DepthToSpace", targets=("PixelShuffle",))
def depth_to_space(node: OnnxNode) -> Emission:
    r = int(node.attr("blocksize"))
    x = node.inputs[0]
    channels = x.shape[1] if x is not None and x.shape is not None and len(x.shape) == 4 else None
    if node.attr("mode", "DCR") != "CRD" and channels != r * r:
        raise Unsupported("mode DCR (torch's pixel shuffle orders the channels as CRD)")
    return one("PixelShuffle", node, {"upscale_factor": r})


@converter("SpaceToDepth", targets=("PixelUnshuffle",))
def space_to_depth(node: OnnxNode) -> Emission:
    x = node.inputs[0]
    if x is None or x.shape is None or len(x.shape) != 4 or x.shape[1] != 1:
        raise Unsupported("SpaceToDepth orders the channels otherwise than torch's pixel unshuffle (unless there "
                          "is one channel)")
    return one("PixelUnshuffle", node, {"downscale_factor": int(node.attr("blocksize"))})


_LINEAR = {3: "linear", 4: "bilinear", 5: "trilinear"}


def _resize_mode(node: OnnxNode, rank: int) -> tuple[str, bool]:
    mode = node.attr("mode", "nearest")
    coord = node.attr("coordinate_transformation_mode", "half_pixel" if node.op == "Resize" else "asymmetric")
    if node.op == "Upsample" or node.opset < 11:
        coord = "asymmetric" if mode == "nearest" else "align_corners" if node.attr("align_corners") else "asymmetric"
    if mode == "nearest":
        nearest = node.attr("nearest_mode", "round_prefer_floor")
        if coord != "asymmetric" or (node.op == "Resize" and node.opset >= 11 and nearest != "floor"):
            raise Unsupported(f"nearest resizing with {coord} coordinates and {nearest} rounding (torch's nearest "
                              "is asymmetric with floor)")
        return "nearest", False
    if node.op == "Upsample" or node.opset < 11:
        raise Unsupported(f"{mode} upsampling as opset {node.opset} defines it (asymmetric coordinates)")
    if coord not in ("half_pixel", "pytorch_half_pixel", "align_corners"):
        raise Unsupported(f"{mode} resizing with {coord} coordinates")
    if mode == "linear":
        if rank not in _LINEAR:
            raise Unsupported(f"linear resizing of a rank-{rank} input")
        return _LINEAR[rank], coord == "align_corners"
    if mode == "cubic" and rank == 4:
        if abs(float(node.attr("cubic_coeff_a", -0.75)) + 0.75) > 1e-6 or int(node.attr("exclude_outside", 0)):
            raise Unsupported("a cubic kernel other than torch's (a = -0.75)")
        return "bicubic", coord == "align_corners"
    raise Unsupported(f"mode {mode} on a rank-{rank} input")


@converter("Resize", targets=("Upsample",))
@converter("Upsample", targets=("Upsample",))
def resize(node: OnnxNode) -> Emission:
    x = node.inputs[0]
    rank = rank_of(x)
    if int(node.attr("antialias", 0)) or node.attr("axes") is not None:
        raise Unsupported("antialiasing or axes")
    mode, corners = _resize_mode(node, rank)
    nd = rank - 2
    if node.op == "Upsample" and node.opset < 9:
        scales_v: np.ndarray | None = np.asarray(node.attr("scales"), np.float32)
        sizes_v = None
    else:
        scale_index, size_index = (1, None) if node.op == "Upsample" or node.opset < 11 else (2, 3)
        scales_in, sizes_in = node.input(scale_index), node.input(size_index) if size_index else None
        scales_v = scales_in.fixed() if scales_in is not None else None
        if scales_v is not None and scales_v.size == 0:
            scales_v = None
        sizes_v = None
        if sizes_in is not None:
            fixed = sizes_in.fixed()
            if fixed is not None:
                sizes_v = fixed
            elif sizes_in.probes is not None and np.array_equal(sizes_in.probes[0][2:], sizes_in.probes[1][2:]):
                sizes_v = sizes_in.probes[0]
    params: dict[str, Any] = {"mode": mode, "align_corners": corners}
    if scales_v is not None:
        s = [float(v) for v in np.asarray(scales_v).reshape(-1)]
        if len(s) != rank or s[0] != 1.0 or s[1] != 1.0:
            raise Unsupported(f"scales {s} that resize the batch or the channels")
        params |= {"resize_by": "scale_factor", "scale_factor": s[2:] if len(set(s[2:])) > 1 else s[2:3]}
    elif sizes_v is not None:
        size = ints(sizes_v)
        if len(size) != rank:
            raise Unsupported(f"sizes {size} for a rank-{rank} input")
        params |= {"resize_by": "size", "size": size[2:]}
    else:
        raise Unsupported("scales and sizes computed at run time")
    if nd not in (1, 2, 3):
        raise Unsupported(f"resizing a rank-{rank} input")
    return one("Upsample", node, params)


@recogniser("SplitToSequence", targets=("Split",))
def split_to_sequence(node: OnnxNode, view: ModelView) -> Emission | None:
    """``torch.split`` as torch.export writes it: SplitToSequence, then one SequenceAt per piece."""
    x = node.inputs[0]
    if x is None or x.kind != DATA or int(node.attr("keepdims", 1)) == 0:
        return None
    rank = rank_of(x)
    dim = axis(int(node.attr("axis", 0)), rank)
    size = x.shape[dim] if x.shape is not None else None
    split = node.input(1).fixed() if node.input(1) is not None else None  # type: ignore[union-attr]
    if split is None or not isinstance(size, int):
        return None
    sizes = ints(split)
    if len(sizes) == 1:  # one size: pieces of it, the last one smaller
        sizes = [sizes[0]] * (-(-size // sizes[0]))
        sizes[-1] = size - sizes[0] * (len(sizes) - 1)
    users = view.consumers(first_out(node))
    picks: dict[str, int] = {}
    for u in users:
        index = u.inputs[1].fixed() if u.op == "SequenceAt" and u.inputs[1] is not None else None
        if index is None:
            return None
        picks[first_out(u)] = int(index) % len(sizes)
    b = Build(node)
    if len(sizes) == 1:
        return b.emission(dict.fromkeys(picks, x.name), claims=[u.index for u in users])
    y = b.add("Split", {"sizes": sizes, "dim": dim}, (x.name,))
    return b.emission({t: Out(y.layer, f"y{i + 1}") for t, i in picks.items()}, claims=[u.index for u in users])
