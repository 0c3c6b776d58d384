"""Building blocks of the layers' ``ops`` rules: multiply-accumulates (MACs) and FLOPs.

The definitions (``docs/cost.md``): a MAC is one product accumulated into a sum inside a matrix
product or a convolution, the work ``torch.utils.flop_counter`` counts as 2 FLOPs.  Our FLOPs are
2 per MAC plus every other arithmetic operation on a tensor element (a bias add, an activation,
a normalisation, a window read by pooling, a softmax), at inference; moving data costs none.

Every rule takes concrete shapes (the batch and every symbol replaced by a size) and returns
``(macs, flops)``.  The formulas for the larger layers (attention, recurrent cells) live here so
the declarations stay one line each.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

from .spec import OpsRule

Dims = tuple[int, ...]

#: per-element work of normalisations (FLOPs per element): statistics of each sample computed at
#: inference (mean 1, variance 2), normalising (subtract, scale: 2), a learned scale and shift (2)
STATS, NORMALISE, AFFINE = 3, 2, 2
#: softmax per score: max, subtract, exp, sum, divide
SOFTMAX = 5
#: element-wise operations per hidden unit and step of a recurrent cell, after its matrix products:
#: Elman RNN (add the two products, nonlinearity), GRU (3 gate sums / products, 3 activations,
#: n = tanh(.. + r * ..), h = (1 - z) * n + z * h), LSTM (4 sums, 4 activations, c = f*c + i*g, h = o * tanh(c))
CELL_OPS = {1: 2, 3: 11, 4: 13}


def numel(shape: Sequence[int]) -> int:
    """Elements of a concrete shape."""
    return math.prod(shape)


def zero(p: dict[str, Any], ins: list[Dims], outs: list[Dims]) -> tuple[int, int]:
    """Data movement (a lookup, a copy, an identity at inference): no arithmetic."""
    return 0, 0


def per_output(k: int) -> OpsRule:
    """``k`` FLOPs per output element (element-wise work), no MACs."""
    return lambda p, ins, outs: (0, k * sum(numel(o) for o in outs))


def per_input(k: int = 1, per_out: int = 0) -> OpsRule:
    """``k`` FLOPs per input element read (a reduction), plus ``per_out`` per output element."""
    return lambda p, ins, outs: (0, k * sum(numel(i) for i in ins) + per_out * sum(numel(o) for o in outs))


def dense(rows: int, inner: int, cols: int, bias: bool) -> tuple[int, int]:
    """A ``[rows, inner] @ [inner, cols]`` product, plus a bias per output when ``bias``."""
    macs = rows * inner * cols
    return macs, 2 * macs + (rows * cols if bias else 0)


def norm(per_element: int) -> OpsRule:
    """A normalisation costing ``per_element`` FLOPs on each element (output = input shape)."""
    return lambda p, ins, outs: (0, per_element * numel(outs[0]))


def attention(n: int, t: int, s: int, e: int, kdim: int, vdim: int, heads: int, bias: bool) -> tuple[int, int]:
    """Multi-head attention of ``t`` queries of size ``e`` over ``s`` keys (``kdim``) and values
    (``vdim``): the four projections, the scores and the weighted sum (as torch's
    ``nn.MultiheadAttention``; a causal mask saves nothing, the kernels compute every score)."""
    q_rows, kv_rows = n * t, n * s
    projections = [dense(q_rows, e, e, bias), dense(kv_rows, kdim, e, bias), dense(kv_rows, vdim, e, bias),
                   dense(q_rows, e, e, bias)]
    scores = n * t * s * e  # per head t x s x (e / heads), over all heads
    macs = sum(m for m, _ in projections) + 2 * scores
    scale = q_rows * e  # the queries are scaled by 1/sqrt(head size)
    flops = sum(f for _, f in projections) + 4 * scores + scale + SOFTMAX * n * heads * t * s
    return macs, flops


def feed_forward(rows: int, e: int, hidden: int) -> tuple[int, int]:
    """Linear(e, hidden), activation, Linear(hidden, e), all with biases."""
    up, down = dense(rows, e, hidden, True), dense(rows, hidden, e, True)
    return up[0] + down[0], up[1] + down[1] + rows * hidden


def recurrent(gates: int, n: int, t: int, features: int, hidden: int, layers: int, directions: int,
              bias: bool) -> tuple[int, int]:
    """A stacked (bi)directional recurrent layer: each step multiplies its input and the previous
    state by ``gates`` weight blocks of ``hidden`` rows, then combines the gates element-wise."""
    macs = flops = 0
    width = features
    for _ in range(layers):
        steps = n * t * directions
        m = steps * gates * hidden * (width + hidden)
        macs += m
        flops += 2 * m + steps * hidden * (CELL_OPS[gates] + (2 * gates if bias else 0))
        width = hidden * directions
    return macs, flops


def adaptive_reads(size: int, out: int) -> int:
    """Input elements read along one dimension by adaptive pooling to ``out`` windows (torch's
    windows: ``[floor(i * size / out), ceil((i + 1) * size / out))``)."""
    return sum(-(-(i + 1) * size // out) - (i * size // out) for i in range(out))
