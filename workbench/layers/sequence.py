"""Sequence layers: Embedding, LSTM, GRU, self-attention, Transformer encoder layer.

All sequence layers are batch-first: [N, T, features].
"""

from __future__ import annotations

import operator
from typing import Any

import torch

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


def _rnn_build(cls: str):
    def build(p: dict[str, Any], ins: list[Shape]) -> ModuleCall:
        return ModuleCall(
            cls,
            (ins[0][2], p["hidden_size"]),
            {
                "num_layers": p["num_layers"],
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


for _rnn, _gates, _cell in (("LSTM", 4, True), ("GRU", 3, False)):
    register(
        LayerSpec(
            id=_rnn,
            name=_rnn,
            category="Recurrent",
            doc=f"{_rnn} over a batch-first sequence. Input: [N, T, F]. Outputs: y [N, T, H*dirs] "
            "(every step) and h [N, H*dirs] (last layer's final state).",
            params=(
                IntParam("hidden_size", 64, "state size", minimum=1, maximum=MAX_SIZE),
                IntParam("num_layers", 1, "stacked layers", minimum=1, maximum=16),
                BoolParam("bidirectional", False, "also read the sequence backwards"),
                FloatParam("dropout", 0.0, "dropout between stacked layers", minimum=0.0, maximum=0.99),
                BoolParam("bias", True, "learn biases"),
            ),
            outputs=("y", "h"),
            infer=_rnn_shape,
            count=_rnn_count(_gates),
            build=_rnn_build(_rnn),
            emit=_rnn_emit(_cell),
            key_params=("hidden_size", "num_layers"),
            examples=(
                Example({"hidden_size": 5}, ((2, 4, 3),)),
                Example({"hidden_size": 4, "num_layers": 2, "bidirectional": True}, ((2, 6, 3),)),
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
