"""Sequence layers: Embedding, Elman RNN, LSTM, GRU, self- and cross-attention, Transformer encoder and
decoder layers.

All sequence layers are batch-first: [N, T, features]; a second sequence (the memory a decoder or a
cross-attention reads) is [N, S, features], its length S independent of T.
"""

from __future__ import annotations

import operator
from typing import Any

import torch

from .costs import AFFINE, NORMALISE, STATS, attention, feed_forward, recurrent, zero
from .dims import expect_rank, fixed
from .spec import (
    MAX_SIZE,
    BoolParam,
    ChoiceParam,
    Emitter,
    Example,
    FloatParam,
    IntParam,
    LayerShapeError,
    LayerSpec,
    ModuleCall,
    OpsRule,
    Shape,
    register,
)

# --------------------------------------------------------------------------- Embedding


register(
    LayerSpec(
        id="Embedding",
        name="Embedding",
        category="Embedding",
        dtype="index",
        doc="Looks up a vector per token id. Input: int64 [N, *]. Output: [N, *, embedding_dim].",
        params=(
            IntParam("num_embeddings", 1000, "vocabulary size", minimum=1, maximum=MAX_SIZE),
            IntParam("embedding_dim", 64, "vector size", minimum=1, maximum=MAX_SIZE),
        ),
        infer=lambda p, ins: [(*ins[0], p["embedding_dim"])],
        count=lambda p, ins: p["num_embeddings"] * p["embedding_dim"],
        build=lambda p, ins: ModuleCall("Embedding", (p["num_embeddings"], p["embedding_dim"])),
        ops=zero,  # a lookup
        key_params=("num_embeddings", "embedding_dim"),
        examples=(Example({"num_embeddings": 11, "embedding_dim": 4}, ((2, 7),), int_input=True),),
    )
)

# --------------------------------------------------------------------------- recurrent


def _rnn_shape(p: dict[str, Any], ins: list[Shape]) -> list[Shape]:
    x = ins[0]
    expect_rank(x, 3, "[N, T, features]")
    fixed(x[2], "number of input features (last dimension)")
    width = p["hidden_size"] * (2 if p["bidirectional"] else 1)
    return [(x[0], x[1], width), (x[0], width)]


def _rnn_count(gates: int):
    def count(p: dict[str, Any], ins: list[Shape]) -> int:
        h, dirs = p["hidden_size"], 2 if p["bidirectional"] else 1
        total = 0
        for layer in range(p["num_layers"]):
            width_in = ins[0][2] if layer == 0 else h * dirs
            total += dirs * gates * (h * width_in + h * h + (2 * h if p["bias"] else 0))
        return total

    return count


def _rnn_ops(gates: int) -> OpsRule:
    def ops(p: dict[str, Any], ins: list[tuple[int, ...]], outs: list[tuple[int, ...]]) -> tuple[int, int]:
        n, t, f = ins[0]
        return recurrent(gates, n, t, f, p["hidden_size"], p["num_layers"], 2 if p["bidirectional"] else 1, p["bias"])

    return ops


def _rnn_build(cls: str):
    def build(p: dict[str, Any], ins: list[Shape]) -> ModuleCall:
        extra = {"nonlinearity": p["nonlinearity"]} if "nonlinearity" in p else {}
        return ModuleCall(
            cls,
            (ins[0][2], p["hidden_size"]),
            {
                "num_layers": p["num_layers"],
                **extra,
                "bias": p["bias"],
                "batch_first": True,
                "dropout": p["dropout"] if p["num_layers"] > 1 else 0.0,
                "bidirectional": p["bidirectional"],
            },
        )

    return build


def _rnn_emit(has_cell: bool):
    def emit(e: Emitter, p: dict[str, Any], ins: list[Shape], xs: list[Any]) -> list[Any]:
        result = e.call_module(xs[0])
        seq = e.call_function(operator.getitem, result, 0)
        h_n = e.call_function(operator.getitem, result, 1)
        if has_cell:
            h_n = e.call_function(operator.getitem, h_n, 0)
        if p["bidirectional"]:
            fwd = e.call_function(operator.getitem, h_n, -2)
            bwd = e.call_function(operator.getitem, h_n, -1)
            last = e.call_function(torch.cat, [fwd, bwd], 1)
        else:
            last = e.call_function(operator.getitem, h_n, -1)
        return [seq, last]

    return emit


_NONLINEARITY = ChoiceParam("nonlinearity", "tanh", "the state's activation", choices=("tanh", "relu"))

for _rnn, _name, _gates, _cell in (("RNN", "Elman RNN", 1, False), ("LSTM", "LSTM", 4, True),
                                   ("GRU", "GRU", 3, False)):
    register(
        LayerSpec(
            id=_rnn,
            name=_name,
            category="Recurrent",
            doc=f"{_name} over a batch-first sequence. Input: [N, T, F]. Outputs: y [N, T, H*dirs] "
            "(every step) and h [N, H*dirs] (last layer's final state).",
            params=(
                IntParam("hidden_size", 64, "state size", minimum=1, maximum=MAX_SIZE),
                IntParam("num_layers", 1, "stacked layers", minimum=1, maximum=16),
                *((_NONLINEARITY,) if _rnn == "RNN" else ()),
                BoolParam("bidirectional", False, "also read the sequence backwards"),
                FloatParam("dropout", 0.0, "dropout between stacked layers", minimum=0.0, maximum=0.99),
                BoolParam("bias", True, "learn biases"),
            ),
            outputs=("y", "h"),
            infer=_rnn_shape,
            count=_rnn_count(_gates),
            build=_rnn_build(_rnn),
            ops=_rnn_ops(_gates),
            emit=_rnn_emit(_cell),
            key_params=("hidden_size", "num_layers"),
            examples=(
                Example({"hidden_size": 5}, ((2, 4, 3),)),
                Example({"hidden_size": 4, "num_layers": 2, "bidirectional": True}, ((2, 6, 3),)),
                *((Example({"hidden_size": 3, "num_layers": 2, "nonlinearity": "relu", "bias": False}, ((2, 5, 4),)),)
                  if _rnn == "RNN" else ()),
            ),
        )
    )

# --------------------------------------------------------------------------- attention


def _attention_shape(p: dict[str, Any], ins: list[Shape]) -> list[Shape]:
    x = ins[0]
    expect_rank(x, 3, "[N, T, E]")
    e = fixed(x[2], "embedding size (last dimension)")
    heads = p["num_heads"] if "num_heads" in p else p["nhead"]
    if e % heads:
        key = "num_heads" if "num_heads" in p else "nhead"
        raise LayerShapeError(f"{key}={heads} must divide the embedding size {e}", param=key)
    return [x]


#: the FLOPs per element of a post- or pre-norm Transformer layer's residual add and LayerNorm
_ADD_NORM = 1 + STATS + NORMALISE + AFFINE


def _self_attention_ops(p: dict[str, Any], ins: list[tuple[int, ...]], outs: list[tuple[int, ...]]) -> tuple[int, int]:
    n, t, e = ins[0]
    return attention(n, t, t, e, e, e, p["num_heads"], p["bias"])


def _encoder_ops(p: dict[str, Any], ins: list[tuple[int, ...]], outs: list[tuple[int, ...]]) -> tuple[int, int]:
    n, t, e = ins[0]
    attn, ff = attention(n, t, t, e, e, e, p["nhead"], True), feed_forward(n * t, e, p["dim_feedforward"])
    return attn[0] + ff[0], attn[1] + ff[1] + 2 * _ADD_NORM * n * t * e


def _decoder_ops(p: dict[str, Any], ins: list[tuple[int, ...]], outs: list[tuple[int, ...]]) -> tuple[int, int]:
    (n, t, e), s = ins[0], ins[1][1]
    parts = (attention(n, t, t, e, e, e, p["nhead"], True), attention(n, t, s, e, e, e, p["nhead"], True),
             feed_forward(n * t, e, p["dim_feedforward"]))
    return sum(m for m, _ in parts), sum(f for _, f in parts) + 3 * _ADD_NORM * n * t * e


def _causal_mask(e: Emitter, x: Any) -> Any:
    """``torch.ones(T, T, dtype=bool).triu(1)``: True where a step may not look."""
    steps = e.call_method("size", x, 1)
    device = e.call_function(getattr, x, "device")
    ones = e.call_function(torch.ones, steps, steps, dtype=torch.bool, device=device)
    return e.call_method("triu", ones, 1)


def _attention_emit(e: Emitter, p: dict[str, Any], ins: list[Shape], xs: list[Any]) -> list[Any]:
    x = xs[0]
    kwargs: dict[str, Any] = {"need_weights": False}
    if p["causal"]:
        kwargs["attn_mask"] = _causal_mask(e, x)
    result = e.call_module(x, x, x, **kwargs)
    return [e.call_function(operator.getitem, result, 0)]


register(
    LayerSpec(
        id="MultiheadAttention",
        name="Self-Attention",
        category="Attention",
        doc="Multi-head self-attention (query = key = value = x). Input: [N, T, E]. Output: [N, T, E].",
        params=(
            IntParam("num_heads", 4, "attention heads (must divide E)", minimum=1, maximum=MAX_SIZE),
            FloatParam("dropout", 0.0, "dropout on attention weights", minimum=0.0, maximum=0.99),
            BoolParam("bias", True, "learn projection biases"),
            BoolParam("causal", False, "each step attends only to itself and earlier steps"),
        ),
        infer=_attention_shape,
        count=lambda p, ins: 4 * ins[0][2] ** 2 + (4 * ins[0][2] if p["bias"] else 0),
        build=lambda p, ins: ModuleCall(
            "MultiheadAttention",
            (ins[0][2], p["num_heads"]),
            {"dropout": p["dropout"], "bias": p["bias"], "batch_first": True},
        ),
        emit=_attention_emit,
        ops=_self_attention_ops,
        key_params=("num_heads",),
        examples=(
            Example({"num_heads": 2}, ((2, 5, 8),)),
            Example({"num_heads": 1, "bias": False, "causal": True}, ((2, 3, 4),)),
        ),
    )
)


def _encoder_count(p: dict[str, Any], ins: list[Shape]) -> int:
    e, f = ins[0][2], p["dim_feedforward"]
    return (4 * e * e + 4 * e) + (e * f + f) + (f * e + e) + 4 * e


register(
    LayerSpec(
        id="TransformerEncoderLayer",
        name="Transformer Encoder Layer",
        category="Attention",
        doc="Self-attention + feed-forward with residuals and LayerNorm (pre- or post-norm). "
        "Input: [N, T, E]. Output: [N, T, E].",
        params=(
            IntParam("nhead", 4, "attention heads (must divide E)", minimum=1, maximum=MAX_SIZE),
            IntParam("dim_feedforward", 256, "hidden size of the feed-forward part", minimum=1, maximum=MAX_SIZE),
            FloatParam("dropout", 0.1, "dropout probability", minimum=0.0, maximum=0.99),
            ChoiceParam("activation", "relu", "feed-forward activation", choices=("relu", "gelu")),
            BoolParam("norm_first", False, "pre-norm (LayerNorm before each sub-block)"),
            BoolParam("causal", False, "each step attends only to itself and earlier steps (language models)"),
        ),
        infer=_attention_shape,
        count=_encoder_count,
        ops=_encoder_ops,
        emit=lambda e, p, ins, xs: [e.call_module(xs[0], src_mask=_causal_mask(e, xs[0]), is_causal=True)
                                    if p["causal"] else e.call_module(xs[0])],
        build=lambda p, ins: ModuleCall(
            "TransformerEncoderLayer",
            (ins[0][2], p["nhead"]),
            {
                "dim_feedforward": p["dim_feedforward"],
                "dropout": p["dropout"],
                "activation": p["activation"],
                "batch_first": True,
                "norm_first": p["norm_first"],
            },
        ),
        key_params=("nhead", "dim_feedforward"),
        examples=(
            Example({"nhead": 2, "dim_feedforward": 16}, ((2, 5, 8),)),
            Example({"nhead": 1, "dim_feedforward": 8, "activation": "gelu", "norm_first": True}, ((2, 3, 4),)),
            Example({"nhead": 2, "dim_feedforward": 8, "causal": True}, ((2, 4, 4),)),
        ),
    )
)

# --------------------------------------------------------------------------- cross-attention and decoder


def _same_batch(x: Shape, m: Shape, port: int, pattern: str) -> None:
    if x[0] != m[0] and isinstance(x[0], int) and isinstance(m[0], int):
        raise LayerShapeError(f"has a batch of {m[0]} but the query x has {x[0]}", port=port)
    if x[0] != m[0]:  # two different symbols (N and M): nothing says they agree
        raise LayerShapeError(port=port, expected=pattern.replace("N", str(x[0]), 1))


def _cross_ports(p: dict[str, Any]) -> tuple[str, ...]:
    # turning separate_value on adds a port and keeps the memory's wire (it then gives the keys only)
    return ("x", "memory", "value") if p["separate_value"] else ("x", "memory")


def _cross_shape(p: dict[str, Any], ins: list[Shape]) -> list[Shape]:
    x = ins[0]
    expect_rank(x, 3, "[N, T, E]")
    e = fixed(x[2], "embedding size (last dimension of x)")
    heads = p["num_heads"]
    if e % heads:
        raise LayerShapeError(f"num_heads={heads} must divide the embedding size {e}", param="num_heads")
    for i, s in enumerate(ins[1:], start=1):
        expect_rank(s, 3, "[N, S, features]", port=i)
        _same_batch(x, s, i, "[N, S, features]")
        fixed(s[2], f"number of features of {_cross_ports(p)[i]}", port=i)
    if len(ins) == 3 and ins[1][1] != ins[2][1]:
        raise LayerShapeError(f"value has {ins[2][1]} steps but memory (the keys) has {ins[1][1]}; each key needs "
                              "its value",
                              port=2)
    return [x]


def _cross_dims(ins: list[Shape]) -> tuple[int, int, int]:
    """E (the query's size), kdim and vdim."""
    return int(ins[0][2]), int(ins[1][2]), int(ins[-1][2])


def _cross_count(p: dict[str, Any], ins: list[Shape]) -> int:
    e, k, v = _cross_dims(ins)
    # query, key, value and output projections; with kdim = vdim = E torch packs the first three in one
    return 2 * e * e + e * (k + v) + (4 * e if p["bias"] else 0)


def _cross_build(p: dict[str, Any], ins: list[Shape]) -> ModuleCall:
    e, k, v = _cross_dims(ins)
    kwargs: dict[str, Any] = {"dropout": p["dropout"], "bias": p["bias"], "batch_first": True}
    if (k, v) != (e, e):
        kwargs |= {"kdim": k, "vdim": v}
    return ModuleCall("MultiheadAttention", (e, p["num_heads"]), kwargs)


def _cross_emit(e: Emitter, p: dict[str, Any], ins: list[Shape], xs: list[Any]) -> list[Any]:
    key, value = xs[1], xs[-1]
    result = e.call_module(xs[0], key, value, need_weights=False)
    return [e.call_function(operator.getitem, result, 0)]


register(
    LayerSpec(
        id="CrossAttention",
        name="Cross-Attention",
        category="Attention",
        doc="Multi-head attention of a query sequence to another (an encoder's memory). Inputs: x [N, T, E], "
        "memory [N, S, K] (keys and values; with separate_value, keys only and value [N, S, V]). Output: [N, T, E].",
        params=(
            IntParam("num_heads", 4, "attention heads (must divide E)", minimum=1, maximum=MAX_SIZE),
            FloatParam("dropout", 0.0, "dropout on attention weights", minimum=0.0, maximum=0.99),
            BoolParam("bias", True, "learn projection biases"),
            BoolParam("separate_value", False, "read keys and values from two inputs (their sizes may differ)"),
        ),
        inputs=_cross_ports,
        infer=_cross_shape,
        count=_cross_count,
        build=_cross_build,
        ops=lambda p, ins, outs: attention(ins[0][0], ins[0][1], ins[1][1], *_cross_dims(ins), p["num_heads"], p["bias"]),
        emit=_cross_emit,
        key_params=("num_heads",),
        examples=(
            Example({"num_heads": 2}, ((2, 5, 8), (2, 3, 8))),
            Example({"num_heads": 2, "bias": False}, ((2, 4, 6), (2, 7, 5))),
            Example({"num_heads": 1, "separate_value": True}, ((2, 3, 4), (2, 6, 5), (2, 6, 7))),
        ),
    )
)


def _decoder_shape(p: dict[str, Any], ins: list[Shape]) -> list[Shape]:
    x, memory = ins
    _attention_shape(p, [x])
    expect_rank(memory, 3, "[N, S, E]", port=1)
    _same_batch(x, memory, 1, "[N, S, E]")
    if memory[2] != x[2]:
        raise LayerShapeError(f"memory has {memory[2]} features but x has {x[2]}; both need the same embedding "
                              "size (put a Linear on one of them)", port=1)
    return [x]


def _decoder_count(p: dict[str, Any], ins: list[Shape]) -> int:
    e, f = ins[0][2], p["dim_feedforward"]
    return 2 * (4 * e * e + 4 * e) + (e * f + f) + (f * e + e) + 6 * e


def _decoder_emit(e: Emitter, p: dict[str, Any], ins: list[Shape], xs: list[Any]) -> list[Any]:
    x, memory = xs
    if p["causal"]:
        return [e.call_module(x, memory, tgt_mask=_causal_mask(e, x), tgt_is_causal=True)]
    return [e.call_module(x, memory)]


register(
    LayerSpec(
        id="TransformerDecoderLayer",
        name="Transformer Decoder Layer",
        category="Attention",
        doc="Causal self-attention, cross-attention to the memory and feed-forward, with residuals and LayerNorm "
        "(pre- or post-norm). Inputs: x [N, T, E], memory [N, S, E]. Output: [N, T, E].",
        params=(
            IntParam("nhead", 4, "attention heads (must divide E)", minimum=1, maximum=MAX_SIZE),
            IntParam("dim_feedforward", 256, "hidden size of the feed-forward part", minimum=1, maximum=MAX_SIZE),
            FloatParam("dropout", 0.1, "dropout probability", minimum=0.0, maximum=0.99),
            ChoiceParam("activation", "relu", "feed-forward activation", choices=("relu", "gelu")),
            BoolParam("norm_first", False, "pre-norm (LayerNorm before each sub-block)"),
            BoolParam("causal", True, "each step attends only to itself and earlier steps of x (off: to all)"),
        ),
        inputs=("x", "memory"),
        infer=_decoder_shape,
        count=_decoder_count,
        ops=_decoder_ops,
        build=lambda p, ins: ModuleCall(
            "TransformerDecoderLayer",
            (ins[0][2], p["nhead"]),
            {
                "dim_feedforward": p["dim_feedforward"],
                "dropout": p["dropout"],
                "activation": p["activation"],
                "batch_first": True,
                "norm_first": p["norm_first"],
            },
        ),
        emit=_decoder_emit,
        key_params=("nhead", "dim_feedforward"),
        examples=(
            Example({"nhead": 2, "dim_feedforward": 16}, ((2, 5, 8), (2, 3, 8))),
            Example({"nhead": 1, "dim_feedforward": 8, "activation": "gelu", "norm_first": True, "causal": False},
                    ((2, 3, 4), (2, 6, 4))),
        ),
    )
)
