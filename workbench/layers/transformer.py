"""Layers for sequence families: positional encodings, token + position embedding,
sequence pooling, and Unflatten.  All are batch-first: [N, T, E]."""

from __future__ import annotations

import math
import operator
from typing import Any

import torch

from .costs import numel, per_input, zero
from .dims import expect_rank, fixed, fmt_shape, product
from .spec import (
    MAX_SIZE,
    ChoiceParam,
    Emitter,
    Example,
    IntParam,
    IntTupleParam,
    LayerShapeError,
    LayerSpec,
    ModuleCall,
    Shape,
    register,
)


def _check_length(t: Any, max_len: int) -> None:
    if isinstance(t, int) and t > max_len:
        raise LayerShapeError(f"max_len={max_len} is shorter than the sequence length {t}", param="max_len")


def _positions(e: Emitter, x: Any, dtype: Any = None) -> Any:
    steps = e.call_method("size", x, 1)
    device = e.call_function(getattr, x, "device")
    kwargs = {"device": device} | ({"dtype": dtype} if dtype is not None else {})
    return e.call_function(torch.arange, steps, **kwargs)


# --------------------------------------------------------------------------- positional encoding


def _pe_shape(p: dict[str, Any], ins: list[Shape]) -> list[Shape]:
    x = ins[0]
    expect_rank(x, 3, "[N, T, E]")
    e = fixed(x[2], "embedding size (last dimension)")
    if p["kind"] == "sinusoidal" and e % 2:
        raise LayerShapeError(f"sinusoidal encoding needs an even embedding size, got {e}", param="kind")
    if p["kind"] == "learned":
        _check_length(x[1], p["max_len"])
    return [x]


def _pe_emit(e: Emitter, p: dict[str, Any], ins: list[Shape], xs: list[Any]) -> list[Any]:
    x = xs[0]
    if p["kind"] == "learned":
        return [e.call_function(operator.add, x, e.call_module(_positions(e, x)))]
    dim = ins[0][2]
    dtype = e.call_function(getattr, x, "dtype")
    pos = e.call_method("unsqueeze", _positions(e, x, dtype), 1)
    device = e.call_function(getattr, x, "device")
    idx = e.call_function(torch.arange, 0, dim, 2, device=device, dtype=dtype)
    freq = e.call_function(torch.exp, e.call_function(operator.mul, idx, -math.log(10000.0) / dim))
    angle = e.call_function(operator.mul, pos, freq)
    table = e.call_method("flatten", e.call_function(torch.stack, [e.call_method("sin", angle),
                                                                   e.call_method("cos", angle)], -1), -2)
    return [e.call_function(operator.add, x, table)]


register(
    LayerSpec(
        id="PositionalEncoding",
        name="Positional Encoding",
        category="Embedding",
        doc="Adds position information: fixed sinusoids or a learned table. Input: [N, T, E]. Output: [N, T, E].",
        params=(
            ChoiceParam("kind", "sinusoidal", "fixed sinusoids or learned vectors", choices=("sinusoidal", "learned")),
            IntParam("max_len", 512, "longest sequence (learned only)", minimum=1, maximum=MAX_SIZE),
        ),
        infer=_pe_shape,
        count=lambda p, ins: p["max_len"] * ins[0][2] if p["kind"] == "learned" else 0,
        build=lambda p, ins: ModuleCall("Embedding", (p["max_len"], ins[0][2])) if p["kind"] == "learned" else None,
        emit=_pe_emit,
        key_params=("kind",),
        examples=(Example({}, ((2, 5, 8),)), Example({"kind": "learned", "max_len": 7}, ((2, 5, 6),))),
    )
)

# --------------------------------------------------------------------------- token + position embedding


def _tpe_shape(p: dict[str, Any], ins: list[Shape]) -> list[Shape]:
    x = ins[0]
    expect_rank(x, 2, "[N, T] token ids")
    _check_length(x[1], p["max_len"])
    return [(x[0], x[1], p["embedding_dim"])]


def _tpe_build(p: dict[str, Any], ins: list[Shape]) -> ModuleCall:
    parts = {"token": ModuleCall("Embedding", (p["vocab_size"], p["embedding_dim"])),
             "position": ModuleCall("Embedding", (p["max_len"], p["embedding_dim"]))}
    if p["type_vocab_size"]:
        parts["segment"] = ModuleCall("Embedding", (p["type_vocab_size"], p["embedding_dim"]))
    return ModuleCall("ModuleDict", (parts,))


def _tpe_emit(e: Emitter, p: dict[str, Any], ins: list[Shape], xs: list[Any]) -> list[Any]:
    x = xs[0]
    out = e.call_function(operator.add, e.call_submodule("token", x), e.call_submodule("position", _positions(e, x)))
    if p["type_vocab_size"]:  # one segment (type 0), as for single-sentence inputs
        out = e.call_function(operator.add, out, e.call_submodule("segment", e.call_function(torch.zeros_like, x)))
    return [out]


register(
    LayerSpec(
        id="TokenPositionEmbedding",
        name="Token + Position Embedding",
        category="Embedding",
        dtype="index",
        doc="Token vectors plus learned position vectors (and a segment vector, BERT-style). "
        "Input: int64 [N, T]. Output: [N, T, embedding_dim].",
        params=(
            IntParam("vocab_size", 1000, "number of token ids", minimum=1, maximum=MAX_SIZE),
            IntParam("max_len", 512, "longest sequence", minimum=1, maximum=MAX_SIZE),
            IntParam("embedding_dim", 64, "vector size", minimum=1, maximum=MAX_SIZE),
            IntParam("type_vocab_size", 0, "segment types (0: none)", minimum=0, maximum=MAX_SIZE),
        ),
        infer=_tpe_shape,
        count=lambda p, ins: (p["vocab_size"] + p["max_len"] + p["type_vocab_size"]) * p["embedding_dim"],
        build=_tpe_build,
        emit=_tpe_emit,
        ops=lambda p, ins, outs: (0, (2 if p["type_vocab_size"] else 1) * numel(outs[0])),  # lookups, then adds
        key_params=("vocab_size", "embedding_dim"),
        examples=(
            Example({"vocab_size": 11, "max_len": 9, "embedding_dim": 4}, ((2, 7),), int_input=True),
            Example({"vocab_size": 5, "max_len": 6, "embedding_dim": 3, "type_vocab_size": 2}, ((2, 6),),
                    int_input=True),
        ),
    )
)

# --------------------------------------------------------------------------- sequence pooling


def _pool_seq_shape(p: dict[str, Any], ins: list[Shape]) -> list[Shape]:
    x = ins[0]
    expect_rank(x, 3, "[N, T, E]")
    return [(x[0], x[2])]


def _pool_seq_emit(e: Emitter, p: dict[str, Any], ins: list[Shape], xs: list[Any]) -> list[Any]:
    x = xs[0]
    mode = p["mode"]
    if mode == "mean":
        return [e.call_method("mean", x, 1)]
    if mode == "max":
        return [e.call_method("amax", x, 1)]
    index = -1 if mode == "last" else 0
    return [e.call_function(operator.getitem, x, (slice(None), index))]


register(
    LayerSpec(
        id="SequencePool",
        name="Sequence Pooling",
        category="Reshape",
        doc="Reduces a sequence to one vector: last step, mean, max, or the first (CLS) token. "
        "Input: [N, T, E]. Output: [N, E].",
        params=(ChoiceParam("mode", "mean", "how to pool", choices=("mean", "last", "first", "max")),),
        infer=_pool_seq_shape,
        emit=_pool_seq_emit,
        ops=lambda p, ins, outs: {"mean": per_input(1, 1), "max": per_input(1)}.get(p["mode"], zero)(p, ins, outs),
        key_params=("mode",),
        examples=(Example({}, ((2, 5, 3),)), Example({"mode": "last"}, ((2, 4, 3),)),
                  Example({"mode": "first"}, ((2, 4, 3),)), Example({"mode": "max"}, ((2, 4, 3),))),
    )
)

# --------------------------------------------------------------------------- unflatten


def _unflatten_shape(p: dict[str, Any], ins: list[Shape]) -> list[Shape]:
    x = ins[0]
    d = p["dim"]
    if d >= len(x):
        raise LayerShapeError(f"dim={d} is out of range for {fmt_shape(x)}", param="dim")
    size = product(p["sizes"])
    if isinstance(x[d], int) and x[d] != size:
        raise LayerShapeError(f"sizes={list(p['sizes'])} hold {size} values but dimension {d} has {x[d]}",
                              param="sizes")
    return [(*x[:d], *p["sizes"], *x[d + 1:])]


register(
    LayerSpec(
        id="Unflatten",
        name="Unflatten",
        category="Reshape",
        dtype="same",
        doc="Splits one dimension into several. [N, 784] with dim 1, sizes (1, 28, 28) -> [N, 1, 28, 28].",
        params=(
            IntParam("dim", 1, "dimension to split (0 is the batch)", minimum=1),
            IntTupleParam("sizes", (1, 8, 8), "the new sizes", minimum=1),
        ),
        infer=_unflatten_shape,
        emit=lambda e, p, ins, xs: [e.call_method("unflatten", xs[0], p["dim"], tuple(p["sizes"]))],
        key_params=("sizes",),
        examples=(Example({"dim": 1, "sizes": (2, 3, 4)}, ((2, 24),)), Example({"dim": 2, "sizes": (2, 2)}, ((2, 3, 4),))),
    )
)
