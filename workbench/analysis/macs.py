"""Multiply-accumulates (MACs) and FLOPs of one node, from its inferred shapes: no model run.

Definitions (also in ``docs/cost.md``):

- **MAC**: one product added into a sum inside a matrix product or a convolution (Linear, Conv,
  ConvTranspose, MatMul, the projections and scores of attention, the gate products of recurrent
  cells).  ``torch.utils.flop_counter`` counts exactly this work, at 2 FLOPs per MAC, and nothing
  else: so ``2 x MACs`` is our *flop_counter-comparable* figure.
- **FLOPs**: 2 per MAC plus every other arithmetic operation on a tensor element during one forward
  pass at inference: bias adds, activations (1 per element whatever the function), normalisations,
  pooling (1 per window element read), softmax, residual adds, gate arithmetic.  Moving data
  (reshapes, slices, concatenation, padding, lookups, dropout at inference) costs none.

Each layer declares its rule (:attr:`~workbench.layers.spec.LayerSpec.ops`) where it matters; the
**fallback** for the rest is: no MACs; no FLOPs for the layers that only move data (the categories
in :data:`DATA_MOVEMENT` and the graph's Inputs and Outputs), else one FLOP per output element (an
element-wise layer).  Rules see concrete shapes: the batch ``N`` takes the table's batch size and
every other symbol (a length ``T``) its symbol size; symbolic expressions (``T*2-1``,
``(T+1)//2``) are evaluated with those values.
"""

from __future__ import annotations

import ast
import math
import operator
from collections.abc import Sequence
from functools import lru_cache
from typing import Any

from ..layers import LayerSpec, Shape
from ..layers.costs import numel

#: categories whose layers only move or select data: no FLOPs unless they declare a rule
DATA_MOVEMENT = frozenset({"Input/Output", "Reshape", "Tensor"})

_BINARY = {ast.Add: operator.add, ast.Sub: operator.sub, ast.Mult: operator.mul, ast.FloorDiv: operator.floordiv,
           ast.Div: operator.truediv, ast.Mod: operator.mod}
_CALLS = {"floor": math.floor, "ceil": math.ceil}


@lru_cache(maxsize=4096)
def symbol_value(expr: str, batch: int, symbol_size: int) -> int:
    """The size a symbolic dimension takes: ``N`` is the batch, any other name the symbol size.

    Only arithmetic is evaluated (names, numbers, ``+ - * / // %``, ``floor``, ``ceil``): the
    expression comes from shape inference, never code.  Anything else takes the symbol size.
    """

    def ev(node: ast.AST) -> float:
        if isinstance(node, ast.Expression):
            return ev(node.body)
        if isinstance(node, ast.Constant) and isinstance(node.value, (int, float)) and not isinstance(node.value, bool):
            return node.value
        if isinstance(node, ast.Name):
            return batch if node.id == "N" else symbol_size
        if isinstance(node, ast.BinOp) and type(node.op) in _BINARY:
            return _BINARY[type(node.op)](ev(node.left), ev(node.right))
        if isinstance(node, ast.UnaryOp) and isinstance(node.op, (ast.USub, ast.UAdd)):
            value = ev(node.operand)
            return -value if isinstance(node.op, ast.USub) else value
        if (isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id in _CALLS
                and len(node.args) == 1 and not node.keywords):
            return _CALLS[node.func.id](ev(node.args[0]))
        raise ValueError(expr)

    try:
        value = ev(ast.parse(expr, mode="eval"))
    except (SyntaxError, ValueError, ZeroDivisionError, RecursionError):
        return symbol_size
    return max(1, math.floor(value))


def concrete(shape: Sequence[Any], batch: int, symbol_size: int) -> tuple[int, ...]:
    """``("N", 3, "T*2")`` -> ``(batch, 3, 2 * symbol_size)``."""
    return tuple(d if isinstance(d, int) else symbol_value(str(d), batch, symbol_size) for d in shape)


def node_ops(spec: LayerSpec, params: dict[str, Any], ins: list[tuple[int, ...]],
             outs: list[tuple[int, ...]]) -> tuple[int, int]:
    """``(MACs, FLOPs)`` of one forward pass of a layer with concrete input and output shapes:
    its declared rule, else the fallback described in this module's docstring."""
    if spec.ops is not None:
        macs, flops = spec.ops(params, ins, outs)
        return int(macs), int(flops)
    if spec.role != "layer" or spec.category in DATA_MOVEMENT:
        return 0, 0
    return 0, sum(numel(o) for o in outs)


def shape_ops(spec: LayerSpec, params: dict[str, Any], ins: Sequence[Shape], outs: Sequence[Shape],
              batch: int = 1, symbol_size: int = 1) -> tuple[int, int]:
    """:func:`node_ops` on symbolic shapes (as inference gives them), made concrete first."""
    return node_ops(spec, params, [concrete(s, batch, symbol_size) for s in ins],
                    [concrete(s, batch, symbol_size) for s in outs])


def format_count(n: float, unit: str = "") -> str:
    """``4.11 G``, ``15.5 M``, ``812 k``, ``96`` (decimal multiples, as MACs and FLOPs are quoted)."""
    for factor, prefix in ((1e15, "P"), (1e12, "T"), (1e9, "G"), (1e6, "M"), (1e3, "k")):
        if abs(n) >= factor:
            value = n / factor
            return f"{value:.3g} {prefix}{unit}" if value < 100 else f"{value:.0f} {prefix}{unit}"
    return f"{n:.0f} {unit}".rstrip() if float(n).is_integer() else f"{n:.3g} {unit}".rstrip()


def flop_counter_mapping() -> dict[Any, Any]:
    """Formulas ``torch.utils.flop_counter.FlopCounterMode(custom_mapping=...)`` lacks for two CPU
    kernels, in torch's own convention (2 FLOPs per MAC, biases ignored): the fused attention of
    ``scaled_dot_product_attention`` (``_scaled_dot_product_flash_attention_for_cpu``) and the
    oneDNN LSTM layer (``mkldnn_rnn_layer``).  Without them torch counts 0 for attention scores in
    evaluation mode and for every LSTM on the CPU; with them its counts equal ``2 x MACs`` here.
    """
    import torch
    from torch.utils.flop_counter import sdpa_flop_count

    aten = torch.ops.aten

    def sdpa_cpu(query: Any, key: Any, value: Any, *args: Any, out_shape: Any = None, **kwargs: Any) -> int:
        return int(sdpa_flop_count(query, key, value))

    def lstm_layer(x: Any, w_ih: Any, w_hh: Any, *args: Any, out_shape: Any = None, **kwargs: Any) -> int:
        # one call per layer and direction: every step multiplies its input and the previous state
        return 2 * math.prod(x[:-1]) * (w_ih[0] * w_ih[1] + w_hh[0] * w_hh[1])

    return {aten._scaled_dot_product_flash_attention_for_cpu: sdpa_cpu, aten.mkldnn_rnn_layer: lstm_layer}
