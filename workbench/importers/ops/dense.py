"""Dense layers: Gemm, and MatMul with a constant weight followed by the Add of a bias."""

from __future__ import annotations

import numpy as np

from ..registry import CONST, DATA, Emission, ModelView, OnnxNode, Unsupported, converter, one, recogniser
from .common import Build, data_users, first_out, rank_of


@converter("Gemm", targets=("Linear", "MatMul", "Unsqueeze", "Squeeze", "Add"))
def gemm(node: OnnxNode) -> Emission:
    a, bw = node.inputs[0], node.inputs[1]
    assert a is not None and bw is not None
    if int(node.attr("transA", 0)):
        raise Unsupported("transA=1 (the batch would become a matrix dimension)")
    alpha, beta = float(node.attr("alpha", 1.0)), float(node.attr("beta", 1.0))
    if bw.const is None:
        if bw.shared and not a.shared:
            return _times_shared(node, alpha, beta)
        raise Unsupported("a weight B computed at run time (multiplying two data matrices of rank 2 would mix "
                          "the samples of a batch)")
    w = bw.const if int(node.attr("transB", 0)) else bw.const.T
    w = np.asarray(w, np.float32) * np.float32(alpha) if alpha != 1.0 else w
    c = node.optional_const(2)
    bias = None
    if c is not None and beta != 0.0:
        c = np.asarray(c, np.float32) * np.float32(beta) if beta != 1.0 else np.asarray(c)
        if c.size == 1:
            bias = np.full(w.shape[0], float(c.reshape(-1)[0]), np.float32)
        elif c.ndim == 1 or (c.ndim == 2 and c.shape[0] == 1):
            bias = c.reshape(-1)
        else:
            raise Unsupported(f"a bias C of shape {list(c.shape)} that differs between the samples")
        if bias.size != w.shape[0]:
            raise Unsupported(f"a bias of {bias.size} values for {w.shape[0]} outputs")
    weights = {"weight": np.ascontiguousarray(w)} | ({"bias": bias} if bias is not None else {})
    return one("Linear", node, {"out_features": int(w.shape[0]), "bias": bias is not None}, weights=weights,
               name=node.hint(1))


def _times_shared(node: OnnxNode, alpha: float, beta: float) -> Emission:
    """``A @ B (+ C)`` with B a shared input (one matrix for every sample): each sample's row times B,
    as ``[N, 1, k] @ [k, m]``; C, when given at run time, is added (broadcast like ONNX's)."""
    a, bw, c = node.inputs[0], node.inputs[1], node.input(2)
    assert a is not None and bw is not None
    if int(node.attr("transB", 0)) or alpha != 1.0:
        raise Unsupported("a shared B that is transposed or scaled (transB=1 or alpha != 1)")
    b = Build(node)
    row = b.add("Unsqueeze", {"dim": 1}, (a.name,))
    y = b.add("Squeeze", {"dims": [1]}, (b.add("MatMul", {}, (row, bw.name)),))
    if c is not None and beta != 0.0:
        if c.kind != DATA or beta != 1.0:
            raise Unsupported("a bias C that is a constant or scaled (beta != 1) beside a shared B")
        y = b.add("Add", {"broadcast": True}, (y, c.name))
    return b.output(y, first_out(node))


@recogniser("MatMul", priority=-5, targets=("Linear",))
def linear_with_bias(node: OnnxNode, view: ModelView) -> Emission | None:
    """``x @ W + b`` (how exporters write a Linear on inputs of rank 3 and more) is one Linear."""
    a, w = node.inputs[0], node.inputs[1]
    if a is None or w is None or a.kind != DATA or w.kind != CONST or w.const is None or w.const.ndim != 2:
        return None
    if rank_of(a) < 2:
        return None
    out = first_out(node)
    users = data_users(view, out)
    if len(users) != 1 or view.is_output(out) or users[0].op != "Add":
        return None
    add = users[0]
    other = [v for v in add.inputs if v is not None and v.name != out]
    if len(other) != 1 or other[0].const is None or other[0].const.size != w.const.shape[1]:
        return None
    if other[0].const.ndim > 1 and other[0].const.shape[:-1] != (1,) * (other[0].const.ndim - 1):
        return None
    b = Build(node)
    y = b.add("Linear", {"out_features": int(w.const.shape[1]), "bias": True}, (a.name,),
              {"weight": np.ascontiguousarray(w.const.T), "bias": other[0].const.reshape(-1)},
              name=_linear_name(node, add))
    return b.emission({first_out(add): y}, claims=(add.index,))


def _linear_name(node: OnnxNode, add: OnnxNode) -> str:
    bias = add.inputs[0] if add.inputs[0] is not None and add.inputs[0].kind == CONST else add.inputs[1]
    if bias is not None and bias.name.endswith(".bias"):
        return bias.name[: -len(".bias")]
    return node.hint(1)
