"""Tensor operations: padding, pixel shuffles, splitting, slicing, selecting, squeezing, transposing,
expanding and repeating (reductions are in reductions.py).

Dims are numbered as torch numbers them, the batch being dim 0 (negative dims count from the
end).  No op here may remove, resize or reorder the batch: that would mix or drop samples, so
such a dim is refused with the parameter named (:func:`~workbench.layers.dims.non_batch_dim`).
"""

from __future__ import annotations

import operator
from typing import Any

import torch
import torch.nn.functional as F

from .dims import distinct_dims, expect_rank, fixed, fmt_shape, non_batch_dim, product
from .spec import (
    MAX_SIZE,
    BoolParam,
    ChoiceParam,
    Dim,
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


def _dim_param(name: str = "dim", default: int = 1, doc: str = "dimension (1 = channels/steps; negative counts "
               "from the end; 0, the batch, is refused)") -> IntParam:
    return IntParam(name, default, doc, minimum=-8, maximum=8)


def _plus(size: Dim, n: int) -> Dim:
    """``size + n`` for a concrete or symbolic size."""
    if isinstance(size, int):
        return size + n
    return size if n == 0 else f"{size}{n:+d}"


# --------------------------------------------------------------------------- padding


_PAD_MODES = ("constant", "reflect", "replicate", "circular")


def _pad_shape(p: dict[str, Any], ins: list[Shape]) -> list[Shape]:
    x, pads, mode = ins[0], p["pads"], p["mode"]
    if len(pads) % 2:
        raise LayerShapeError(
            f"pads={list(pads)} needs two values (before, after) per padded dim, last dim first", param="pads"
        )
    k = len(pads) // 2
    if k > len(x) - 1:
        raise LayerShapeError(
            f"pads={list(pads)} pads {k} dims, but {fmt_shape(x)} has {len(x) - 1} besides the batch", param="pads"
        )
    if mode != "constant":
        if p["value"] != 0:
            raise LayerShapeError(f"value={p['value']} applies only to mode constant (mode is {mode})", param="value")
        if k > 3:
            raise LayerShapeError(f"mode {mode} pads at most the last 3 dims, pads={list(pads)} pads {k}",
                                  param="pads")
        if len(x) not in (k + 1, k + 2):  # torch pads [C, *k] or [N, C, *k] in these modes
            raise LayerShapeError(
                f"mode {mode} with {k} padded dim(s) needs an input of rank {k + 1} or {k + 2}, got "
                f"{fmt_shape(x)} (rank {len(x)}): pad {len(x) - 2} dims or use mode constant",
                param="pads",
            )
    out = list(x)
    for i in range(k):
        d = len(x) - 1 - i
        before, after = pads[2 * i], pads[2 * i + 1]
        if isinstance(x[d], int) and (
            (mode == "reflect" and max(before, after) >= x[d]) or (mode == "circular" and max(before, after) > x[d])
        ):
            limit = "smaller than" if mode == "reflect" else "at most"
            raise LayerShapeError(
                f"mode {mode} needs pads {limit} the size {x[d]} of dim {d} in {fmt_shape(x)}, got {before}, {after}",
                param="pads",
            )
        out[d] = _plus(x[d], before + after)
    return [tuple(out)]


def _pad_emit(e: Emitter, p: dict[str, Any], ins: list[Shape], xs: list[Any]) -> list[Any]:
    extra = {"value": p["value"]} if p["mode"] == "constant" else {}
    return [e.call_function(F.pad, xs[0], list(p["pads"]), mode=p["mode"], **extra)]


register(
    LayerSpec(
        id="Pad",
        name="Pad",
        category="Tensor",
        dtype="same",
        doc="Pads the last dims: pads = (before, after) per dim, last dim first, as torch's F.pad. "
        "Input: [N, *, L]. Output: [N, *, before + L + after].",
        params=(
            ChoiceParam("mode", "constant", "what fills the border", choices=_PAD_MODES),
            IntTupleParam("pads", (1, 1), "(before, after) for the last dim, then the one before it...",
                          minimum=0, min_length=2),
            FloatParam("value", 0.0, "fill value (mode constant only; integer inputs take its integer part)"),
        ),
        infer=_pad_shape,
        emit=_pad_emit,
        key_params=("mode", "pads"),
        examples=(
            Example({"pads": (1, 2)}, ((2, 3, 5),)),
            Example({"mode": "reflect", "pads": (1, 2, 2, 1)}, ((2, 3, 4, 5),)),
            Example({"mode": "replicate", "pads": (2, 0)}, ((2, 3, 4),)),
            Example({"mode": "circular", "pads": (1, 1, 0, 2)}, ((2, 2, 4, 4),)),
            Example({"pads": (0, 1, 1, 0, 2, 2), "value": -1.5}, ((2, 3, 2, 2),)),
        ),
    )
)

# --------------------------------------------------------------------------- pixel shuffles


def _pixel_shuffle_shape(p: dict[str, Any], ins: list[Shape]) -> list[Shape]:
    x, r = ins[0], p["upscale_factor"]
    expect_rank(x, 4, "[N, C*r*r, H, W]")
    c = fixed(x[1], "number of channels (dimension 1)")
    if c % (r * r):
        raise LayerShapeError(
            f"upscale_factor={r} needs the channels ({c}) to be a multiple of {r * r}", param="upscale_factor"
        )
    return [(x[0], c // (r * r), product([r, x[2]]), product([r, x[3]]))]


def _pixel_unshuffle_shape(p: dict[str, Any], ins: list[Shape]) -> list[Shape]:
    x, r = ins[0], p["downscale_factor"]
    expect_rank(x, 4, "[N, C, H*r, W*r]")
    out: list[Dim] = [x[0], product([r * r, x[1]])]
    for d, what in ((2, "height (dimension 2)"), (3, "width (dimension 3)")):
        size = fixed(x[d], what)
        if size % r:
            raise LayerShapeError(f"downscale_factor={r} must divide the {what.split()[0]} {size}",
                                  param="downscale_factor")
        out.append(size // r)
    return [tuple(out)]


register(
    LayerSpec(
        id="PixelShuffle",
        name="PixelShuffle",
        category="Reshape",
        dtype="same",
        doc="Moves channels into space (sub-pixel upsampling). Input: [N, C*r*r, H, W]. Output: [N, C, H*r, W*r].",
        params=(IntParam("upscale_factor", 2, "r: the spatial factor", minimum=1, maximum=MAX_SIZE),),
        infer=_pixel_shuffle_shape,
        build=lambda p, ins: ModuleCall("PixelShuffle", (p["upscale_factor"],)),
        key_params=("upscale_factor",),
        examples=(Example({}, ((2, 8, 3, 3),)), Example({"upscale_factor": 3}, ((2, 9, 2, 4),))),
    )
)

register(
    LayerSpec(
        id="PixelUnshuffle",
        name="PixelUnshuffle",
        category="Reshape",
        dtype="same",
        doc="Moves space into channels (inverse of PixelShuffle). Input: [N, C, H*r, W*r]. Output: [N, C*r*r, H, W].",
        params=(IntParam("downscale_factor", 2, "r: the spatial factor", minimum=1, maximum=MAX_SIZE),),
        infer=_pixel_unshuffle_shape,
        build=lambda p, ins: ModuleCall("PixelUnshuffle", (p["downscale_factor"],)),
        key_params=("downscale_factor",),
        examples=(Example({}, ((2, 3, 4, 6),)), Example({"downscale_factor": 3}, ((2, 1, 6, 3),))),
    )
)

# --------------------------------------------------------------------------- split and chunk


def _split_sizes(p: dict[str, Any], x: Shape) -> tuple[int, list[Dim]]:
    """The dim and each piece's size; a -1 piece takes the rest (``T-5`` on a variable length)."""
    d = non_batch_dim(p["dim"], x)
    sizes: list[Dim] = list(p["sizes"])
    known = sum(s for s in p["sizes"] if s != -1)
    size = x[d]
    if isinstance(size, int):
        if -1 in sizes:
            if size - known < 1:
                raise LayerShapeError(
                    f"sizes={list(p['sizes'])} leave nothing for the -1 piece: dim {d} of {fmt_shape(x)} "
                    f"has size {size}",
                    param="sizes",
                )
            sizes[sizes.index(-1)] = size - known
        elif known != size:
            raise LayerShapeError(
                f"sizes={list(p['sizes'])} add up to {known}, but dim {d} of {fmt_shape(x)} has size {size}",
                param="sizes",
            )
    elif -1 in sizes:
        sizes[sizes.index(-1)] = _plus(size, -known)
    else:
        raise LayerShapeError(
            f"dim {d} has the variable size {size}: give one piece the size -1 (the rest)", param="sizes"
        )
    return d, sizes


def _split_emit(e: Emitter, p: dict[str, Any], ins: list[Shape], xs: list[Any]) -> list[Any]:
    d, sizes = _split_sizes(p, ins[0])
    pieces: list[Any] = list(sizes)
    if not all(isinstance(s, int) for s in sizes):  # the rest of a variable length, at run time
        known = sum(s for s in p["sizes"] if s != -1)
        rest = e.call_method("size", xs[0], d)
        pieces[p["sizes"].index(-1)] = e.call_function(operator.sub, rest, known)
    parts = e.call_function(torch.split, xs[0], pieces, d)
    return [e.call_function(operator.getitem, parts, i) for i in range(len(sizes))]


def _numbered_outputs(n: int) -> tuple[str, ...]:
    return tuple(f"y{i + 1}" for i in range(n))


register(
    LayerSpec(
        id="Split",
        name="Split",
        category="Tensor",
        dtype="same",
        doc="Splits dim into pieces of the given sizes, one output per piece (y1, y2, ...); one size may be -1 "
        "(the rest). Input: [N, ..., a+b+..., ...]. Outputs: [N, ..., a, ...], [N, ..., b, ...], ...",
        params=(
            IntTupleParam("sizes", (1, 1), "size of each piece (one output each); one -1 takes the rest",
                          minimum=1, min_length=2, max_length=16, allow_minus_one=True),
            _dim_param(),
        ),
        outputs=lambda p: _numbered_outputs(len(p["sizes"])),
        infer=lambda p, ins: [
            (*ins[0][:d], s, *ins[0][d + 1 :]) for d, sizes in [_split_sizes(p, ins[0])] for s in sizes
        ],
        emit=_split_emit,
        key_params=("sizes", "dim"),
        examples=(
            Example({"sizes": (2, 3)}, ((2, 5, 4),)),
            Example({"sizes": (1, -1, 2), "dim": -1}, ((2, 3, 7),)),
            Example({"sizes": (2, 2, 2, 2), "dim": 2}, ((2, 3, 8, 2),)),
        ),
    )
)


def _chunk_sizes(p: dict[str, Any], x: Shape) -> tuple[int, list[int]]:
    d, k = non_batch_dim(p["dim"], x), p["chunks"]
    if not isinstance(x[d], int):
        raise LayerShapeError(
            f"dim {d} has the variable size {x[d]}: Chunk needs a fixed size (Split with a -1 piece does not)",
            param="dim",
        )
    size = x[d]
    step = -(-size // k)  # torch.chunk: pieces of ceil(size / chunks), the last one smaller
    if -(-size // step) != k:  # ...and never an empty piece, so fewer pieces than asked
        raise LayerShapeError(
            f"chunks={k} cannot cut size {size} (dim {d} of {fmt_shape(x)}): torch.chunk would make "
            f"{-(-size // step)} pieces of {step}; choose chunks that divide {size}",
            param="chunks",
        )
    return d, [step] * (k - 1) + [size - step * (k - 1)]


def _chunk_emit(e: Emitter, p: dict[str, Any], ins: list[Shape], xs: list[Any]) -> list[Any]:
    d, _ = _chunk_sizes(p, ins[0])
    parts = e.call_function(torch.chunk, xs[0], p["chunks"], d)
    return [e.call_function(operator.getitem, parts, i) for i in range(p["chunks"])]


register(
    LayerSpec(
        id="Chunk",
        name="Chunk",
        category="Tensor",
        dtype="same",
        doc="Cuts dim into `chunks` pieces of ceil(size / chunks) (the last may be smaller), one output each. "
        "Input: [N, ..., C, ...]. Outputs: chunks x [N, ..., C/chunks, ...].",
        params=(IntParam("chunks", 2, "number of pieces (one output each)", minimum=2, maximum=16), _dim_param()),
        outputs=lambda p: _numbered_outputs(p["chunks"]),
        infer=lambda p, ins: [
            (*ins[0][:d], s, *ins[0][d + 1 :]) for d, sizes in [_chunk_sizes(p, ins[0])] for s in sizes
        ],
        emit=_chunk_emit,
        key_params=("chunks", "dim"),
        examples=(
            Example({}, ((2, 6, 3),)),
            Example({"chunks": 3, "dim": -1}, ((2, 4, 8),)),
        ),
    )
)

# --------------------------------------------------------------------------- slicing and selecting


def _slice_length(p: dict[str, Any], size: Dim) -> Dim:
    """Length of ``[start:end:step]`` along a dim of ``size``, as Python slices count.

    On a variable size ``T`` a bound counted from the start assumes ``T`` reaches it
    (``[2:]`` -> ``T-2``, ``[:4]`` -> 4, ``[-3:]`` -> 3).
    """
    start, end, step = p["start"], p["end"], p["step"]
    if isinstance(size, int):
        n = len(range(*slice(start, end, step).indices(size)))
        if n == 0:
            raise LayerShapeError(f"start={start}, end={end}, step={step} select nothing from a dim of size {size}",
                                  param="start")
        return n
    start_from_end = start < 0
    end_from_end = end < 0 or end >= MAX_SIZE
    a = start
    b = 0 if end >= MAX_SIZE else end
    if start_from_end and not end_from_end:
        raise LayerShapeError(
            f"start={start} counts from the end and end={end} from the start of the variable size {size}: "
            "the length would change with it the wrong way; count both from one side",
            param="end",
        )
    if start_from_end == end_from_end:  # both from one side: a fixed length
        if b <= a:
            raise LayerShapeError(f"start={start}, end={end} select nothing", param="start")
        return -(-(b - a) // step)
    c = b - a  # from start to end: size + c
    if step == 1:
        return _plus(size, c)
    return f"({size}{c + step - 1:+d})//{step}" if c + step - 1 else f"{size}//{step}"


def _slice_shape(p: dict[str, Any], ins: list[Shape]) -> list[Shape]:
    x = ins[0]
    d = non_batch_dim(p["dim"], x)
    return [(*x[:d], _slice_length(p, x[d]), *x[d + 1 :])]


def _slice_emit(e: Emitter, p: dict[str, Any], ins: list[Shape], xs: list[Any]) -> list[Any]:
    d = non_batch_dim(p["dim"], ins[0])
    end = None if p["end"] >= MAX_SIZE else p["end"]
    index = (slice(None),) * d + (slice(p["start"], end, p["step"]),)
    return [e.call_function(operator.getitem, xs[0], index)]


register(
    LayerSpec(
        id="Slice",
        name="Slice",
        category="Tensor",
        dtype="same",
        doc="Keeps x[start:end:step] along dim, negative indices counting from the end as in Python "
        "(end 16777216 = to the end). Input: [N, ..., L, ...]. Output: [N, ..., len(range(start, end, step)), ...].",
        params=(
            _dim_param(),
            IntParam("start", 0, "first index (negative counts from the end)", minimum=-MAX_SIZE, maximum=MAX_SIZE),
            IntParam("end", MAX_SIZE, "index after the last (negative counts from the end; the default runs to "
                     "the end)", minimum=-MAX_SIZE, maximum=MAX_SIZE),
            IntParam("step", 1, "take every step-th element", minimum=1, maximum=MAX_SIZE),
        ),
        infer=_slice_shape,
        emit=_slice_emit,
        key_params=("dim", "start", "end"),
        examples=(
            Example({"start": 1, "end": 4}, ((2, 6, 3),)),
            Example({"dim": -1, "start": -4, "end": -1, "step": 2}, ((2, 3, 7),)),
            Example({"dim": 2, "start": 1, "step": 3}, ((2, 3, 8, 2),)),
        ),
    )
)


def _select_shape(p: dict[str, Any], ins: list[Shape]) -> list[Shape]:
    x, i = ins[0], p["index"]
    d = non_batch_dim(p["dim"], x)
    if isinstance(x[d], int) and not -x[d] <= i < x[d]:
        raise LayerShapeError(f"index={i} is out of range for dim {d} of size {x[d]} in {fmt_shape(x)}",
                              param="index")
    return [(*x[:d], *x[d + 1 :])]


register(
    LayerSpec(
        id="Select",
        name="Select",
        category="Tensor",
        dtype="same",
        doc="Takes one position along dim and removes that dim (index -1: the last step of a sequence). "
        "Input: [N, ..., L, ...]. Output: [N, ..., ...].",
        params=(
            _dim_param(),
            IntParam("index", -1, "position (negative counts from the end)", minimum=-MAX_SIZE, maximum=MAX_SIZE),
        ),
        infer=_select_shape,
        emit=lambda e, p, ins, xs: [e.call_method("select", xs[0], non_batch_dim(p["dim"], ins[0]), p["index"])],
        key_params=("dim", "index"),
        examples=(Example({}, ((2, 5, 3),)), Example({"dim": 2, "index": 1}, ((2, 3, 4, 5),))),
    )
)

# --------------------------------------------------------------------------- squeeze, unsqueeze, transpose


def _squeeze_shape(p: dict[str, Any], ins: list[Shape]) -> list[Shape]:
    x = ins[0]
    dims = distinct_dims(p["dims"], x)
    for d in dims:
        if x[d] != 1:  # torch would keep such a dim silently
            raise LayerShapeError(f"dim {d} of {fmt_shape(x)} has size {x[d]}, not 1: it cannot be squeezed",
                                  param="dims")
    return [tuple(s for i, s in enumerate(x) if i not in dims)]


register(
    LayerSpec(
        id="Squeeze",
        name="Squeeze",
        category="Reshape",
        dtype="same",
        doc="Removes the given dims of size 1. Input: [N, ..., 1, ...]. Output: [N, ..., ...].",
        params=(IntTupleParam("dims", (-1,), "dims of size 1 to remove (negative counts from the end)", minimum=-8,
                              maximum=8),),
        infer=_squeeze_shape,
        emit=lambda e, p, ins, xs: [e.call_method("squeeze", xs[0], tuple(distinct_dims(p["dims"], ins[0])))],
        key_params=("dims",),
        examples=(Example({"dims": (1,)}, ((2, 1, 5),)), Example({"dims": (-1, 2)}, ((2, 3, 1, 1),))),
    )
)


def _unsqueeze_dim(p: dict[str, Any], x: Shape) -> int:
    rank = len(x) + 1
    d = p["dim"]
    if not -rank <= d < rank or d in (0, -rank):
        raise LayerShapeError(
            f"dim={d} must be a position after the batch in the result of rank {rank} "
            f"(1..{rank - 1} or -1..-{rank - 1})",
            param="dim",
        )
    return d % rank


register(
    LayerSpec(
        id="Unsqueeze",
        name="Unsqueeze",
        category="Reshape",
        dtype="same",
        doc="Inserts a dim of size 1 at position dim of the result. Input: [N, ...]. Output: [N, ..., 1, ...].",
        params=(_dim_param(doc="position of the new dim in the result (negative counts from the end)"),),
        infer=lambda p, ins: [(*ins[0][: _unsqueeze_dim(p, ins[0])], 1, *ins[0][_unsqueeze_dim(p, ins[0]) :])],
        emit=lambda e, p, ins, xs: [e.call_method("unsqueeze", xs[0], _unsqueeze_dim(p, ins[0]))],
        key_params=("dim",),
        examples=(Example({}, ((2, 5),)), Example({"dim": -1}, ((2, 3, 4),))),
    )
)


def _transpose_dims(p: dict[str, Any], x: Shape) -> tuple[int, int]:
    a, b = non_batch_dim(p["dim0"], x, "dim0"), non_batch_dim(p["dim1"], x, "dim1")
    if a == b:
        raise LayerShapeError(f"dim0={p['dim0']} and dim1={p['dim1']} name the same dim of {fmt_shape(x)}",
                              param="dim1")
    return a, b


def _transpose_shape(p: dict[str, Any], ins: list[Shape]) -> list[Shape]:
    a, b = _transpose_dims(p, ins[0])
    out = list(ins[0])
    out[a], out[b] = out[b], out[a]
    return [tuple(out)]


register(
    LayerSpec(
        id="Transpose",
        name="Transpose",
        category="Reshape",
        dtype="same",
        doc="Swaps two non-batch dims. [N, T, E] with dims 1, 2 -> [N, E, T]; -2, -1 swaps the last two.",
        params=(_dim_param("dim0", 1, "first dim to swap"), _dim_param("dim1", 2, "second dim to swap")),
        infer=_transpose_shape,
        emit=lambda e, p, ins, xs: [e.call_method("transpose", xs[0], *_transpose_dims(p, ins[0]))],
        key_params=("dim0", "dim1"),
        examples=(Example({}, ((2, 3, 5),)), Example({"dim0": -1, "dim1": -2}, ((2, 3, 4, 5),))),
    )
)

# --------------------------------------------------------------------------- expand and repeat


def _expand_shape(p: dict[str, Any], ins: list[Shape]) -> list[Shape]:
    x, sizes = ins[0], p["sizes"]
    if len(sizes) > len(x) - 1:
        raise LayerShapeError(
            f"sizes={list(sizes)} has {len(sizes)} values but {fmt_shape(x)} has {len(x) - 1} dims after dim 0",
            param="sizes",
        )
    out: list[Dim] = list(x)
    for d, s in enumerate(sizes, start=1):
        if s == 0:
            raise LayerShapeError(f"sizes={list(sizes)}: a size must be positive, or -1 to keep the dim",
                                  param="sizes")
        if s != -1 and x[d] != s:
            if x[d] != 1:
                raise LayerShapeError(
                    f"dim {d} of {fmt_shape(x)} has size {x[d]}: only a dim of size 1 can be expanded "
                    f"(to {s}); use -1 to keep it, or Repeat",
                    param="sizes",
                )
            out[d] = s
    if p["match_batch"]:
        like = ins[1]
        if x[0] != like[0]:
            if x[0] != 1:
                raise LayerShapeError(
                    f"dim 0 of x is {x[0]}: only a tensor of batch size 1 (such as a learned Parameter "
                    f"[1, ...]) can take the batch {like[0]} of the input `like`",
                    port=0,
                )
            out[0] = like[0]
    return [tuple(out)]


def _expand_emit(e: Emitter, p: dict[str, Any], ins: list[Shape], xs: list[Any]) -> list[Any]:
    batch = e.call_method("size", xs[1], 0) if p["match_batch"] else -1
    rest = [-1] * (len(ins[0]) - 1 - len(p["sizes"]))
    return [e.call_method("expand", xs[0], batch, *p["sizes"], *rest)]


register(
    LayerSpec(
        id="Expand",
        name="Expand",
        category="Tensor",
        dtype="same",
        doc="Repeats size-1 dims without copying (torch's expand): sizes for dims 1, 2, ... (-1 or a missing value "
        "keeps a dim); match_batch gives a batch-size-1 tensor (a class token [1, 1, E]) the batch of input `like`. "
        "Input: [1 or N, ..., 1, ...]. Output: [N, ..., size, ...].",
        params=(
            IntTupleParam("sizes", (), "new sizes of dims 1, 2, ... (-1 keeps a dim; missing ones are kept)",
                          minimum=-1, min_length=0, max_length=7),
            BoolParam("match_batch", False, "expand dim 0 to the batch size of a second input `like`"),
        ),
        inputs=lambda p: ("x", "like") if p["match_batch"] else ("x",),
        infer=_expand_shape,
        emit=_expand_emit,
        key_params=("sizes", "match_batch"),
        examples=(
            Example({"sizes": (-1, 4)}, ((2, 3, 1),)),
            Example({"match_batch": True}, ((2, 1, 4), (2, 5, 4))),
            Example({"match_batch": True, "sizes": (3,)}, ((2, 1, 4), (2, 6))),
        ),
    )
)


def _repeat_shape(p: dict[str, Any], ins: list[Shape]) -> list[Shape]:
    x, reps = ins[0], p["repeats"]
    if len(reps) > len(x) - 1:
        raise LayerShapeError(
            f"repeats={list(reps)} has {len(reps)} values but {fmt_shape(x)} has {len(x) - 1} dims after the batch",
            param="repeats",
        )
    return [(x[0], *(product([r, s]) for r, s in zip(reps, x[1:], strict=False)), *x[1 + len(reps) :])]


register(
    LayerSpec(
        id="Repeat",
        name="Repeat",
        category="Tensor",
        dtype="same",
        doc="Tiles the tensor: repeats for dims 1, 2, ... (missing ones stay 1; the batch is never repeated). "
        "Input: [N, a, b, ...]. Output: [N, a*r1, b*r2, ...].",
        params=(IntTupleParam("repeats", (2,), "copies along dims 1, 2, ...", minimum=1, max_length=7),),
        infer=_repeat_shape,
        emit=lambda e, p, ins, xs: [
            e.call_method("repeat", xs[0], 1, *p["repeats"], *[1] * (len(ins[0]) - 1 - len(p["repeats"])))
        ],
        key_params=("repeats",),
        examples=(Example({}, ((2, 3),)), Example({"repeats": (1, 3)}, ((2, 2, 4, 5),))),
    )
)
