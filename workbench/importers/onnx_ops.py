"""Converters from ONNX operators to catalogue layers, registered by op type.

Each converter reads attributes, constants (weights) and inferred shapes from
the context and adds one layer (or passes a tensor through).  A converter that
meets a form it cannot represent raises :class:`Unsupported` with the reason.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import onnx

from .onnx_import import Ctx


class Unsupported(Exception):
    """This node's form has no catalogue equivalent (the message says which part)."""


Converter = Callable[[Ctx, onnx.NodeProto], None]
CONVERTERS: dict[str, Converter] = {}
#: layer types the converters produce (a test checks they exist in the catalogue)
TARGETS: set[str] = set()


def converter(*ops: str, targets: tuple[str, ...] = ()) -> Callable[[Converter], Converter]:
    def deco(fn: Converter) -> Converter:
        for op in ops:
            if op in CONVERTERS:
                raise ValueError(f"ONNX op {op} has two converters")
            CONVERTERS[op] = fn
        TARGETS.update(targets)
        return fn

    return deco


def attrs(node: onnx.NodeProto) -> dict[str, Any]:
    return {a.name: onnx.helper.get_attribute_value(a) for a in node.attribute}


def _hint(node: onnx.NodeProto, weight: str | None = None) -> str:
    """A readable name: the weight's module name (``conv1.weight`` -> ``conv1``) or the node's."""
    if weight and weight.endswith((".weight", ".bias")):
        return weight.rsplit(".", 1)[0]
    return node.name or node.output[0]


def _need_const(ctx: Ctx, name: str, what: str) -> np.ndarray:
    value = ctx.const(name)
    if value is None:
        raise Unsupported(f"{what} is computed at run time, not a constant")
    return value


def _symmetric_pads(pads: list[int], rank: int) -> list[int]:
    if not pads:
        return [0] * rank
    begin, end = pads[:rank], pads[rank:]
    if begin != end:
        raise Unsupported(f"asymmetric padding {pads}")
    return list(begin)


def _data_inputs(ctx: Ctx, node: onnx.NodeProto) -> list[str]:
    return [i for i in node.input if i and i not in ctx.consts]


# --------------------------------------------------------------------------- convolutions


@converter("Conv", targets=("Conv1d", "Conv2d"))
def conv(ctx: Ctx, node: onnx.NodeProto) -> None:
    a = attrs(node)
    if a.get("auto_pad", b"NOTSET") not in (b"NOTSET", "NOTSET"):
        raise Unsupported("auto_pad")
    w = _need_const(ctx, node.input[1], "the weight")
    bias = ctx.const(node.input[2]) if len(node.input) > 2 and node.input[2] else None
    rank = w.ndim - 2
    if rank not in (1, 2):
        raise Unsupported(f"{rank}-D convolution")
    pads = _symmetric_pads(list(a.get("pads", [])), rank)
    strides = list(a.get("strides", [1] * rank))
    dil = list(a.get("dilations", [1] * rank))
    params: dict[str, Any] = {"out_channels": int(w.shape[0]), "groups": int(a.get("group", 1)),
                              "bias": bias is not None}
    if rank == 1:
        params.update(kernel_size=int(w.shape[2]), stride=strides[0], padding=pads[0], dilation=dil[0])
    else:
        params.update(kernel_size=list(w.shape[2:]), stride=strides, padding=pads, dilation=dil)
    weights = {"weight": w} | ({"bias": bias} if bias is not None else {})
    ctx.add("Conv1d" if rank == 1 else "Conv2d", _hint(node, node.input[1]), params, [node.input[0]], weights,
            (node.output[0],))


@converter("ConvTranspose", targets=("ConvTranspose2d",))
def conv_transpose(ctx: Ctx, node: onnx.NodeProto) -> None:
    a = attrs(node)
    w = _need_const(ctx, node.input[1], "the weight")
    if w.ndim != 4 or int(a.get("group", 1)) != 1 or list(a.get("dilations", [1, 1])) != [1, 1]:
        raise Unsupported("only 2-D, ungrouped, undilated transposed convolutions")
    if "output_shape" in a:
        raise Unsupported("output_shape attribute")
    bias = ctx.const(node.input[2]) if len(node.input) > 2 and node.input[2] else None
    params = {"out_channels": int(w.shape[1]), "kernel_size": list(w.shape[2:]),
              "stride": list(a.get("strides", [1, 1])), "padding": _symmetric_pads(list(a.get("pads", [])), 2),
              "output_padding": list(a.get("output_padding", [0, 0])), "bias": bias is not None}
    weights = {"weight": w} | ({"bias": bias} if bias is not None else {})
    ctx.add("ConvTranspose2d", _hint(node, node.input[1]), params, [node.input[0]], weights, (node.output[0],))


# --------------------------------------------------------------------------- dense


@converter("Gemm", targets=("Linear",))
def gemm(ctx: Ctx, node: onnx.NodeProto) -> None:
    a = attrs(node)
    if a.get("transA", 0) or a.get("alpha", 1.0) != 1.0 or a.get("beta", 1.0) != 1.0:
        raise Unsupported("transA, alpha or beta other than the defaults")
    b = _need_const(ctx, node.input[1], "B")
    w = b if a.get("transB", 0) else b.T
    c = ctx.const(node.input[2]) if len(node.input) > 2 and node.input[2] else None
    if c is not None and c.size != w.shape[0]:
        c = np.broadcast_to(c, (w.shape[0],)).copy()
    weights = {"weight": w} | ({"bias": c.reshape(-1)} if c is not None else {})
    ctx.add("Linear", _hint(node, node.input[1]), {"out_features": int(w.shape[0]), "bias": c is not None},
            [node.input[0]], weights, (node.output[0],))


@converter("MatMul", targets=("Linear",))
def matmul(ctx: Ctx, node: onnx.NodeProto) -> None:
    b = _need_const(ctx, node.input[1], "the right operand")
    if b.ndim != 2:
        raise Unsupported("a batched right operand")
    w = b.T
    out = node.output[0]
    bias = None
    consumers = ctx.consumers.get(out, [])
    if len(consumers) == 1 and consumers[0].op_type == "Add":  # MatMul + Add = Linear with bias
        add = consumers[0]
        other = add.input[1] if add.input[0] == out else add.input[0]
        c = ctx.const(other)
        if c is not None and c.size == w.shape[0]:
            bias = c.reshape(-1)
            ctx.fused.add(add.name)
            out = add.output[0]
    weights = {"weight": w} | ({"bias": bias} if bias is not None else {})
    ctx.add("Linear", _hint(node, node.input[1]), {"out_features": int(w.shape[0]), "bias": bias is not None},
            [node.input[0]], weights, (out,))


# --------------------------------------------------------------------------- activations


def _simple(type_id: str, params: Callable[[dict[str, Any], Ctx, onnx.NodeProto], dict[str, Any]] | None = None
            ) -> Converter:
    def convert(ctx: Ctx, node: onnx.NodeProto) -> None:
        p = params(attrs(node), ctx, node) if params else {}
        ctx.add(type_id, _hint(node), p, [node.input[0]], None, (node.output[0],))

    return convert


for _op, _target in (("Relu", "ReLU"), ("Sigmoid", "Sigmoid"), ("Tanh", "Tanh")):
    converter(_op, targets=(_target,))(_simple(_target))
converter("LeakyRelu", targets=("LeakyReLU",))(_simple("LeakyReLU", lambda a, c, n: {"negative_slope": a.get("alpha", 0.01)}))
converter("Gelu", targets=("GELU",))(
    _simple("GELU", lambda a, c, n: {"approximate": a.get("approximate", b"none").decode()
                                      if isinstance(a.get("approximate", b"none"), bytes) else a.get("approximate", "none")}))


def _axis_param(a: dict[str, Any], ctx: Ctx, node: onnx.NodeProto) -> dict[str, Any]:
    axis = int(a.get("axis", -1))
    if axis == 0:
        raise Unsupported("softmax over the batch dimension")
    return {"dim": axis}


converter("Softmax", targets=("Softmax",))(_simple("Softmax", _axis_param))
converter("LogSoftmax", targets=("LogSoftmax",))(_simple("LogSoftmax", _axis_param))


@converter("Identity", "Dropout")
def passthrough(ctx: Ctx, node: onnx.NodeProto) -> None:
    """Inference graphs keep Dropout as identity: pass the tensor through."""
    ctx.env[node.output[0]] = ctx.env[node.input[0]]


# --------------------------------------------------------------------------- pooling and normalisation


@converter("MaxPool", "AveragePool", targets=("MaxPool2d", "AvgPool2d"))
def pool(ctx: Ctx, node: onnx.NodeProto) -> None:
    a = attrs(node)
    k = list(a["kernel_shape"])
    if len(k) != 2:
        raise Unsupported(f"{len(k)}-D pooling")
    if a.get("ceil_mode", 0) or any(d != 1 for d in a.get("dilations", [1, 1])):
        raise Unsupported("ceil_mode or dilation")
    pads = _symmetric_pads(list(a.get("pads", [])), 2)
    if node.op_type == "AveragePool" and any(pads) and not a.get("count_include_pad", 0):
        raise Unsupported("average pooling that excludes padding")
    if len(node.output) > 1 and node.output[1]:
        raise Unsupported("MaxPool indices output")
    ctx.add("MaxPool2d" if node.op_type == "MaxPool" else "AvgPool2d", _hint(node),
            {"kernel_size": k, "stride": list(a.get("strides", [1, 1])), "padding": pads},
            [node.input[0]], None, (node.output[0],))


@converter("GlobalAveragePool", targets=("AdaptiveAvgPool2d",))
def global_pool(ctx: Ctx, node: onnx.NodeProto) -> None:
    ctx.add("AdaptiveAvgPool2d", _hint(node), {"output_size": [1, 1]}, [node.input[0]], None, (node.output[0],))


@converter("BatchNormalization", targets=("BatchNorm1d", "BatchNorm2d"))
def batchnorm(ctx: Ctx, node: onnx.NodeProto) -> None:
    a = attrs(node)
    scale, bias, mean, var = (_need_const(ctx, node.input[i], "statistics") for i in range(1, 5))
    rank = len(ctx.shape(node.input[0]) or [0, 0, 0, 0])
    type_id = "BatchNorm2d" if rank == 4 else "BatchNorm1d"
    params = {"eps": float(a.get("epsilon", 1e-5)), "momentum": round(1.0 - float(a.get("momentum", 0.9)), 6),
              "affine": True}
    weights = {"weight": scale, "bias": bias, "running_mean": mean, "running_var": var}
    ctx.add(type_id, _hint(node, node.input[1]), params, [node.input[0]], weights, (node.output[0],))


@converter("LayerNormalization", targets=("LayerNorm",))
def layernorm(ctx: Ctx, node: onnx.NodeProto) -> None:
    a = attrs(node)
    rank = len(ctx.shape(node.input[0]) or [])
    if int(a.get("axis", -1)) not in (-1, rank - 1):
        raise Unsupported("normalisation over more than the last dimension")
    scale = _need_const(ctx, node.input[1], "scale")
    bias = ctx.const(node.input[2]) if len(node.input) > 2 and node.input[2] else np.zeros_like(scale)
    ctx.add("LayerNorm", _hint(node, node.input[1]), {"eps": float(a.get("epsilon", 1e-5))}, [node.input[0]],
            {"weight": scale, "bias": bias}, (node.output[0],))


# --------------------------------------------------------------------------- shape ops


@converter("Flatten", targets=("Flatten",))
def flatten(ctx: Ctx, node: onnx.NodeProto) -> None:
    axis = int(attrs(node).get("axis", 1))
    rank = len(ctx.shape(node.input[0]) or [])
    if axis < 0:
        axis += rank
    if axis < 1:
        raise Unsupported("flattening the batch dimension")
    if axis != rank - 1 and axis != 1 and rank:
        raise Unsupported(f"Flatten to 2-D at axis {axis}")
    ctx.add("Flatten", _hint(node), {"start_dim": axis}, [node.input[0]], None, (node.output[0],))


@converter("Reshape", targets=("Reshape", "Flatten"))
def reshape(ctx: Ctx, node: onnx.NodeProto) -> None:
    if node.input[0] in ctx.seq4 and ctx.seq4[node.input[0]][2]:  # [T, N, dirs, H] -> [T, N, dirs*H]
        nid, port, _ = ctx.seq4[node.input[0]]
        ctx.time_major[node.output[0]] = (nid, port)
        return
    src, out = ctx.shape(node.input[0]), ctx.shape(node.output[0])
    if not src or not out or len(out) < 2 or not all(isinstance(d, int) and d > 0 for d in out[1:]):
        raise Unsupported(f"a target shape that is not known per sample ({src} -> {out})")
    if isinstance(src[0], int) and isinstance(out[0], int) and src[0] != out[0]:
        raise Unsupported("a reshape that changes the batch dimension")
    if len(out) == 2 and all(isinstance(d, int) for d in src[1:]) and int(np.prod(src[1:])) == out[1]:
        ctx.add("Flatten", _hint(node), {"start_dim": 1}, [node.input[0]], None, (node.output[0],))
    else:
        ctx.add("Reshape", _hint(node), {"shape": [int(d) for d in out[1:]]}, [node.input[0]], None,
                (node.output[0],))


@converter("Transpose", targets=("Permute",))
def transpose(ctx: Ctx, node: onnx.NodeProto) -> None:
    perm = list(attrs(node).get("perm", []))
    src, out = node.input[0], node.output[0]
    if perm == [1, 0, 2] and src in ctx.env:  # batch-first -> time-major, as exporters feed an RNN
        ctx.time_major[out] = ctx.env[src]
        return
    if perm == [1, 0, 2] and src in ctx.time_major:  # and back
        ctx.env[out] = ctx.time_major[src]
        return
    if perm == [0, 2, 1, 3] and src in ctx.seq4:  # Y [T, dirs, N, H] -> [T, N, dirs, H]
        nid, port, _ = ctx.seq4[src]
        ctx.seq4[out] = (nid, port, True)
        return
    if not perm or perm[0] != 0:
        raise Unsupported(f"a permutation {perm} that moves the batch dimension")
    ctx.add("Permute", _hint(node), {"dims": perm[1:]}, [node.input[0]], None, (node.output[0],))


@converter("Concat", targets=("Concat",))
def concat(ctx: Ctx, node: onnx.NodeProto) -> None:
    axis = int(attrs(node)["axis"])
    if axis == 0 and all(i in ctx.states for i in node.input):  # h_n of stacked recurrent layers
        ctx.states[node.output[0]] = [s for i in node.input for s in ctx.states[i]]
        return
    parts = [ctx.state_part.get(i) for i in node.input]
    if axis in (1, -1) and len(parts) == 2 and all(parts):  # torch.cat([h[-2], h[-1]], 1)
        (n0, d0, _), (n1, d1, _) = parts  # type: ignore[misc]
        if n0 == n1 and (d0, d1) == (0, 1):
            ctx.env[node.output[0]] = (n0, "h")
            return
    inputs = _data_inputs(ctx, node)
    if axis == 0 or len(inputs) != len([i for i in node.input if i]) or len(inputs) < 2:
        raise Unsupported("concatenation along the batch or with constants")
    ctx.add("Concat", _hint(node), {"num_inputs": len(inputs), "dim": axis}, inputs, None, (node.output[0],))


@converter("Add", "Sum", "Mul", targets=("Add", "Multiply"))
def elementwise(ctx: Ctx, node: onnx.NodeProto) -> None:
    inputs = _data_inputs(ctx, node)
    if len(inputs) != len([i for i in node.input if i]):
        raise Unsupported("an operand that is a constant (a learned bias or scale with no layer to hold it)")
    type_id = "Multiply" if node.op_type == "Mul" else "Add"
    ctx.add(type_id, _hint(node), {"num_inputs": len(inputs)}, inputs, None, (node.output[0],))


# --------------------------------------------------------------------------- recurrent

# ONNX gate order -> PyTorch gate order (LSTM: iofc -> ifgo; GRU: zrh -> rzn)
_GATES = {"LSTM": [0, 2, 3, 1], "GRU": [1, 0, 2]}


def _reorder(w: np.ndarray, order: list[int], hidden: int) -> np.ndarray:
    return np.concatenate([w[g * hidden:(g + 1) * hidden] for g in order], axis=0)


@converter("LSTM", "GRU", targets=("LSTM", "GRU"))
def recurrent(ctx: Ctx, node: onnx.NodeProto) -> None:
    a = attrs(node)
    op = node.op_type
    hidden = int(a["hidden_size"])
    direction = a.get("direction", b"forward")
    direction = direction.decode() if isinstance(direction, bytes) else direction
    if direction == "reverse":
        raise Unsupported("a reverse-only recurrent layer")
    if op == "GRU" and int(a.get("linear_before_reset", 0)) != 1:
        raise Unsupported("GRU without linear_before_reset=1 (PyTorch's GRU needs it)")
    if a.get("activations") or a.get("clip") or int(a.get("input_forget", 0)):
        raise Unsupported("custom activations, clipping or coupled gates")
    for i in (4, 5, 6):
        if len(node.input) > i and node.input[i] and node.input[i] in ctx.env:
            raise Unsupported("sequence lengths or initial states that are data")
    layout = int(a.get("layout", 0))
    x = node.input[0]
    if layout == 0:
        if x not in ctx.time_major:
            raise Unsupported("a time-major input that is not a transposed batch-first tensor")
        src = ctx.time_major[x]
    else:
        src = ctx.env[x]
    w = _need_const(ctx, node.input[1], "W")
    r = _need_const(ctx, node.input[2], "R")
    dirs = w.shape[0]
    gates = len(_GATES[op])
    b = ctx.const(node.input[3]) if len(node.input) > 3 and node.input[3] else np.zeros((dirs, 2 * gates * hidden),
                                                                                           np.float32)
    if b is None:
        raise Unsupported("biases computed at run time")
    order = _GATES[op]
    weights = {}
    for d in range(dirs):
        sfx = "_reverse" if d == 1 else ""
        weights[f"weight_ih_l0{sfx}"] = _reorder(w[d], order, hidden)
        weights[f"weight_hh_l0{sfx}"] = _reorder(r[d], order, hidden)
        weights[f"bias_ih_l0{sfx}"] = _reorder(b[d][: gates * hidden], order, hidden)
        weights[f"bias_hh_l0{sfx}"] = _reorder(b[d][gates * hidden:], order, hidden)
    name = _hint(node)
    nid = ctx.graph.add_node(op, {"hidden_size": hidden, "bidirectional": dirs == 2},
                             _unique(ctx, name)).id
    ctx.graph.connect(src[0], src[1], nid, "x")
    for key, value in weights.items():
        import torch

        ctx.tensors[f"{nid}:{key}"] = torch.from_numpy(np.array(value, copy=True))
    if node.output[0]:
        ctx.seq4[node.output[0]] = (nid, "y", False)
        if dirs == 1:
            ctx.time_major[node.output[0] + "#squeezed"] = (nid, "y")
    if len(node.output) > 1 and node.output[1]:
        ctx.states[node.output[1]] = [(nid, d, dirs) for d in range(dirs)]


def _unique(ctx: Ctx, base: str) -> str:
    import re

    base = re.sub(r"^(node_|/)", "", base).replace("/", "_") or "rnn"
    base = re.sub(r"[^A-Za-z0-9_.]", "_", base)[:40]
    return base if not ctx.graph.has_name(base) else ctx.graph.unique_name(f"{base}_")


@converter("Gather")
def gather(ctx: Ctx, node: onnx.NodeProto) -> None:
    """``h_n[-1]``: picks a final state of the last recurrent layer."""
    states = ctx.states.get(node.input[0])
    idx = ctx.const(node.input[1])
    if states is None or idx is None or idx.ndim != 0 or int(attrs(node).get("axis", 0)) != 0:
        raise Unsupported("indexing that is not a recurrent layer's final state")
    nid, d, dirs = states[int(idx)]
    last_layer = [s for s in states if s[0] == states[-1][0]]
    if nid != states[-1][0] or len(last_layer) != dirs:
        raise Unsupported("the final state of a recurrent layer that is not the last one")
    if dirs == 1:
        ctx.env[node.output[0]] = (nid, "h")
    else:
        ctx.state_part[node.output[0]] = (nid, d, dirs)


@converter("Squeeze")
def squeeze(ctx: Ctx, node: onnx.NodeProto) -> None:
    """``Y[:, 0]`` of a one-directional recurrent layer (its sequence output, time-major)."""
    src = node.input[0]
    axes = ctx.const(node.input[1]) if len(node.input) > 1 and node.input[1] else attrs(node).get("axes")
    if src in ctx.seq4 and axes is not None and list(np.atleast_1d(axes)) == [1]:
        nid, port, _ = ctx.seq4[src]
        ctx.time_major[node.output[0]] = (nid, port)
        return
    raise Unsupported("squeezing a data tensor")


@converter("ReduceMean", targets=("AdaptiveAvgPool2d",))
def reduce_mean(ctx: Ctx, node: onnx.NodeProto) -> None:
    """Global average pooling as exporters write it: a mean over H and W, dims kept."""
    a = attrs(node)
    axes = ctx.const(node.input[1]) if len(node.input) > 1 and node.input[1] else a.get("axes")
    rank = len(ctx.shape(node.input[0]) or [])
    norm = sorted(int(x) % rank for x in np.atleast_1d(axes)) if axes is not None and rank else []
    if rank != 4 or norm != [2, 3] or not int(a.get("keepdims", 1)):
        raise Unsupported("a mean that is not global average pooling over H and W")
    ctx.add("AdaptiveAvgPool2d", _hint(node), {"output_size": [1, 1]}, [node.input[0]], None, (node.output[0],))
