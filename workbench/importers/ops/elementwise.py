"""Element-wise arithmetic: two data operands, one constant operand (a scalar -> ScalarOp, one value
per channel -> Scale/Bias, anything else -> a Parameter), unary math, and the data MatMul."""

from __future__ import annotations

import numpy as np
import onnx

from ..registry import CONST, DATA, Emission, OnnxNode, Source, Unsupported, Value, converter, one
from .common import Build, channel_axis, first_out, fits_float, materialise, rank_of

#: ONNX op -> (catalogue layer for two data operands, ScalarOp op, ScalarOp op with the constant first)
_BINARY = {
    "Add": ("Add", "add", "add"), "Sum": ("Add", "add", "add"), "Mul": ("Multiply", "multiply", "multiply"),
    "Sub": ("Subtract", "subtract", "reverse_subtract"), "Div": ("Divide", "divide", "reverse_divide"),
    "Pow": ("Power", "power", "reverse_power"), "Max": ("Maximum", "maximum", "maximum"),
    "Min": ("Minimum", "minimum", "minimum"),
}
_INTS = {onnx.TensorProto.INT64, onnx.TensorProto.INT32, onnx.TensorProto.INT16, onnx.TensorProto.INT8,
         onnx.TensorProto.UINT8, onnx.TensorProto.BOOL}


def _params(type_id: str, a: Value, b: Value) -> dict[str, object]:
    broadcast = a.shape is None or b.shape is None or tuple(a.shape) != tuple(b.shape)
    return {"broadcast": broadcast} | ({"num_inputs": 2} if type_id in ("Add", "Multiply") else {})


def _data_pair(node: OnnxNode, b: Build, a: Source, c: Source, va: Value, vc: Value) -> Source:
    type_id = _BINARY[node.op][0]
    return b.add(type_id, _params(type_id, va, vc), (a, c))


def _binary(node: OnnxNode) -> Emission:
    ins = [v for v in node.inputs if v is not None]
    if not any(v.kind == DATA for v in ins):
        raise Unsupported("no operand is data")
    if len(ins) > 2:
        return _variadic(node, ins)
    if len(ins) == 1:
        return Emission(aliases={first_out(node): ins[0].name})
    x, other = ins
    if x.kind == DATA and other.kind == DATA:
        type_id = _BINARY[node.op][0]
        return one(type_id, node, _params(type_id, x, other), inputs=(x.name, other.name))
    return _constant_operand(node, x, other)


def _variadic(node: OnnxNode, ins: list[Value]) -> Emission:
    if any(v.kind != DATA for v in ins):
        raise Unsupported("more than two operands, some constant")
    type_id = _BINARY[node.op][0]
    shapes = {tuple(v.shape) if v.shape is not None else None for v in ins}
    if type_id in ("Add", "Multiply") and len(ins) <= 16:
        return one(type_id, node, {"num_inputs": len(ins), "broadcast": len(shapes) != 1 or None in shapes},
                   inputs=[v.name for v in ins])
    b = Build(node)
    acc: Source = ins[0].name
    for v in ins[1:]:
        acc = _data_pair(node, b, acc, v.name, ins[0], v)
    return b.output(acc, first_out(node))


def _constant_operand(node: OnnxNode, a: Value, c: Value) -> Emission:
    """``a op c`` where one side is not data (``x - 1``, ``2 / x``, ``x * gamma``, ``x + position_table``)."""
    const_first = a.kind != DATA
    x, k = (c, a) if const_first else (a, c)
    if x.elem in _INTS:
        raise Unsupported("arithmetic on integer data with a constant (its result type would change)")
    value = k.fixed()
    rank = rank_of(x)
    _, scalar_op, reverse_op = _BINARY[node.op]
    if value is not None and value.size == 1 and value.ndim <= rank:
        return one("ScalarOp", node, {"op": reverse_op if const_first else scalar_op, "constant": fits_float(value)},
                   inputs=(x.name,))
    if value is not None and node.op in ("Mul", "Add", "Sub", "Div") and not (const_first and node.op in ("Sub", "Div")):
        dim = channel_axis(value, rank)
        if dim is not None and np.all(np.isfinite(value)) and (node.op != "Div" or np.all(value != 0)):
            shape = (int(np.asarray(value).size),) + (1,) * (rank - 1 - dim)
            v = np.asarray(value, np.float32).reshape(shape)
            scale = node.op in ("Mul", "Div")
            tensor = (1.0 / v if node.op == "Div" else v) if scale else (-v if node.op == "Sub" else v)
            return one("ScaleBias", node, {"dim": dim, "scale": scale, "bias": not scale}, inputs=(x.name,),
                       weights={"weight" if scale else "bias": tensor})
    b = Build(node)
    if value is not None and value.ndim > 0 and not x.shared:  # a shared x has no batch: any constant broadcasts
        aligned = (1,) * max(0, rank - value.ndim) + tuple(value.shape)
        if len(aligned) >= rank and aligned[len(aligned) - rank] != 1:
            raise Unsupported(f"a constant operand of shape {list(value.shape)} that varies along the batch")
    p = materialise(b, k, x.name)
    type_id = _BINARY[node.op][0]
    ins = (p, x.name) if const_first else (x.name, p)
    params = {"broadcast": True} | ({"num_inputs": 2} if type_id in ("Add", "Multiply") else {})
    return b.output(b.add(type_id, params, ins), first_out(node))


for _op in _BINARY:
    converter(_op, targets=(_BINARY[_op][0], "ScalarOp", "ScaleBias", "Parameter", "Expand"))(_binary)


@converter("Mean", targets=("Add", "ScalarOp"))
def mean(node: OnnxNode) -> Emission:
    ins = [v for v in node.inputs if v is not None]
    if any(v.kind != DATA for v in ins):
        raise Unsupported("an operand that is not data")
    if len(ins) == 1:
        return Emission(aliases={first_out(node): ins[0].name})
    b = Build(node)
    total = b.add("Add", {"num_inputs": len(ins), "broadcast": len({v.shape for v in ins}) != 1},
                  [v.name for v in ins])
    return b.output(b.add("ScalarOp", {"op": "divide", "constant": float(len(ins))}, (total,)), first_out(node))


_UNARY = {"Neg": "Negate", "Abs": "Abs", "Sqrt": "Sqrt", "Exp": "Exp", "Log": "Log", "Reciprocal": "Reciprocal"}
for _op in _UNARY:
    converter(_op, targets=(_UNARY[_op],))(lambda node, _t=_UNARY[_op]: one(_t, node))


@converter("MatMul", targets=("Linear", "MatMul", "Parameter"))
def matmul(node: OnnxNode) -> Emission:
    """``x @ W`` with a constant 2-D W is a Linear layer (bias-free; with the Add that follows, see
    ``dense.py``); two data operands are the batched MatMul layer."""
    a, w = node.inputs[0], node.inputs[1]
    assert a is not None and w is not None
    if a.kind == DATA and w.kind == CONST and w.const is not None and w.const.ndim == 2 and rank_of(a) >= 2:
        return one("Linear", node, {"out_features": int(w.const.shape[1]), "bias": False},
                   weights={"weight": np.ascontiguousarray(w.const.T)}, name=node.hint(1))
    if a.kind == DATA and w.kind == DATA:
        return one("MatMul", node, inputs=(a.name, w.name))
    b = Build(node)
    left = materialise(b, a, w.name if w.kind == DATA else None)
    right = materialise(b, w, a.name if a.kind == DATA else None)
    return b.output(b.add("MatMul", {}, (left, right)), first_out(node))
