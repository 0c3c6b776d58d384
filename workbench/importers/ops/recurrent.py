"""Recurrent layers: ONNX LSTM, GRU and RNN with the transposes exporters put around them.

ONNX recurrent ops are time-major (``[T, N, F]`` in, ``Y [T, dirs, N, H]`` and ``Y_h [dirs, N, H]``
out); the catalogue's are batch-first with ``y [N, T, dirs*H]`` and ``h [N, dirs*H]`` (the last
layer's final state).  One recogniser per ONNX layer claims the ``Transpose`` that makes its input
time-major, the ``Transpose``/``Reshape``/``Squeeze`` that unpack ``Y`` and turn it back
batch-first, and the ``Gather``/``Concat`` that pick final states; a stacked layer reads the
previous one's output through the name ``<Y>@batch_first`` that the previous recogniser gives it.
"""

from __future__ import annotations

import numpy as np

from ..registry import CONST, DATA, SHAPE, Emission, ModelView, OnnxNode, Out, Unsupported, Value, recogniser
from .common import Build, data_users, first_out, ints

# ONNX gate order -> PyTorch's (LSTM: i o f c -> i f g o; GRU: z r h -> r z n)
_GATES = {"LSTM": [0, 2, 3, 1], "GRU": [1, 0, 2], "RNN": [0]}
_DEFAULT_ACTIVATIONS = {"LSTM": ["Sigmoid", "Tanh", "Tanh"], "GRU": ["Sigmoid", "Tanh"], "RNN": ["Tanh"]}


def batch_first_name(y: str) -> str:
    """The name under which a recurrent layer's batch-first output ``y`` is known."""
    return f"{y}@batch_first"


def _is_zero(v: Value | None) -> bool:
    if v is None:
        return True
    if v.kind == CONST and v.const is not None:
        return not np.any(v.const)
    if v.kind == SHAPE and v.probes is not None:
        return not np.any(v.probes[0]) and not np.any(v.probes[1])
    return False


def _only(view: ModelView, tensor: str, op: str | tuple[str, ...]) -> OnnxNode | None:
    users = data_users(view, tensor)
    ops = (op,) if isinstance(op, str) else op
    if len(users) == 1 and users[0].op in ops and not view.is_output(tensor):
        return users[0]
    return None


def _perm(node: OnnxNode | None, perm: list[int]) -> bool:
    return node is not None and node.op == "Transpose" and [int(p) for p in node.attr("perm", [])] == perm


def _source(node: OnnxNode, view: ModelView) -> tuple[str, list[int]]:
    """The batch-first tensor the layer reads, and the nodes that made it time-major."""
    x = node.inputs[0]
    assert x is not None
    if int(node.attr("layout", 0)) == 1:
        return x.name, []
    p = view.producer(x.name)
    if _perm(p, [1, 0, 2]) and p is not None and p.inputs[0] is not None and p.inputs[0].kind == DATA:
        claims = [p.index] if all(u.op in ("LSTM", "GRU", "RNN") for u in data_users(view, x.name)) else []
        return p.inputs[0].name, claims
    return _source_of_time_major(x.name, view), []


def _source_of_time_major(tensor: str, view: ModelView) -> str:
    """A time-major tensor that is the unpacked output of an earlier recurrent layer."""
    p = view.producer(tensor)
    if p is not None and p.op == "Squeeze":
        y = p.inputs[0]
        src = view.producer(y.name) if y is not None else None
        if src is not None and src.op in ("LSTM", "GRU", "RNN"):
            return batch_first_name(y.name)  # type: ignore[union-attr]
    if p is not None and p.op == "Reshape":
        t = view.producer(p.inputs[0].name) if p.inputs[0] is not None else None
        if _perm(t, [0, 2, 1, 3]) and t is not None and t.inputs[0] is not None:
            src = view.producer(t.inputs[0].name)
            if src is not None and src.op in ("LSTM", "GRU", "RNN"):
                return batch_first_name(t.inputs[0].name)
    raise Unsupported("a time-major input that is neither a transposed batch-first tensor nor an earlier "
                      "recurrent layer's output")


def _unpack_y(y: str, dirs: int, layout: int, view: ModelView) -> tuple[list[int], list[str]]:
    """The nodes that turn ``Y`` into ``[T, N, dirs*H]`` (or ``[N, T, dirs*H]``), and the batch-first
    tensors they lead to (the layer's ``y`` port computes those)."""
    claims: list[int] = []
    if layout == 1:
        r = _only(view, y, "Reshape")
        return ([r.index], [first_out(r)]) if r is not None else ([], [])
    t = _only(view, y, ("Transpose", "Squeeze"))
    if t is None:
        return [], []
    if t.op == "Squeeze":
        axes = t.attr("axes") if t.opset < 13 else (t.input(1).fixed() if t.input(1) is not None else None)
        if dirs != 1 or axes is None or ints(axes) != [1]:
            return [], []
        claims, time_major = [t.index], first_out(t)
    elif _perm(t, [0, 2, 1, 3]):
        r = _only(view, first_out(t), "Reshape")
        if r is None:
            return [], []
        claims, time_major = [t.index, r.index], first_out(r)
    else:
        return [], []
    outs = []
    for user in data_users(view, time_major):
        if _perm(user, [1, 0, 2]):
            claims.append(user.index)
            outs.append(first_out(user))
        elif user.op not in ("LSTM", "GRU", "RNN"):
            return [], []  # something reads the time-major tensor that the catalogue cannot hold
    if view.is_output(time_major):
        return [], []
    return claims, outs


def _final_states(node: OnnxNode, dirs: int, hidden: int, view: ModelView, b: Build, h: Out
                  ) -> tuple[list[int], dict[str, object]]:
    """Claims and outputs for the ``Gather``s (and the ``Concat``) that read ``Y_h``."""
    y_h = node.outputs[1] if len(node.outputs) > 1 else None
    if y_h is None:
        return [], {}
    if view.is_output(y_h.name):
        raise Unsupported("the final states [directions, N, H] are a model output")
    claims: list[int] = []
    produces: dict[str, object] = {}
    stack = [(y_h.name, 0)]
    while stack:
        tensor, offset = stack.pop()
        for user in data_users(view, tensor):
            if user.op == "Concat" and int(user.attr("axis")) == 0:
                names = [v.name for v in user.inputs if v is not None]
                if names[-1] != tensor:
                    continue  # an earlier layer's states: only the last layer's final states have a port
                total = sum(int(v.shape[0]) for v in user.inputs if v is not None and v.shape is not None)
                claims.append(user.index)
                stack.append((first_out(user), total - dirs))
                continue
            if user.op != "Gather" or int(user.attr("axis", 0)) != 0:
                raise Unsupported(f"its final states are read by {user.label} ({user.op})")
            index = user.inputs[1].fixed() if user.inputs[1] is not None else None
            if index is None or index.ndim != 0:
                raise Unsupported("its final states are indexed by something other than one position")
            size = (offset + dirs) if offset else dirs
            d = int(index) % size - offset
            if not 0 <= d < dirs:
                continue  # another layer's state
            claims.append(user.index)
            produces[first_out(user)] = (h if dirs == 1 else
                                         b.add("Slice", {"dim": 1, "start": d * hidden, "end": (d + 1) * hidden},
                                               (h,), name=f"{b.node.hint()}_h{d}"))
    return claims, produces


def _weights(node: OnnxNode, dirs: int, hidden: int) -> dict[str, np.ndarray]:
    w = node.const_input(1, "W")
    r = node.const_input(2, "R")
    b = node.optional_const(3)
    order = _GATES[node.op]
    out: dict[str, np.ndarray] = {}

    def reorder(m: np.ndarray) -> np.ndarray:
        return np.concatenate([m[g * hidden:(g + 1) * hidden] for g in order], axis=0)

    gates = len(order)
    for d in range(dirs):
        sfx = "_reverse" if d == 1 else ""
        out[f"weight_ih_l0{sfx}"] = reorder(w[d])
        out[f"weight_hh_l0{sfx}"] = reorder(r[d])
        if b is not None:
            out[f"bias_ih_l0{sfx}"] = reorder(b[d][: gates * hidden])
            out[f"bias_hh_l0{sfx}"] = reorder(b[d][gates * hidden:])
    return out


def _recurrent(node: OnnxNode, view: ModelView) -> Emission:
    op = node.op
    hidden = int(node.attr("hidden_size"))
    direction = node.attr("direction", "forward")
    if direction == "reverse":
        raise Unsupported("a reverse-only recurrent layer")
    dirs = 2 if direction == "bidirectional" else 1
    acts = list(node.attr("activations", []))
    nonlinearity = "tanh"
    if op == "RNN" and acts in (["Relu"], ["Relu", "Relu"]):
        nonlinearity = "relu"
    elif acts and [a.lower() for a in acts] != [a.lower() for a in _DEFAULT_ACTIVATIONS[op] * dirs][: len(acts)]:
        raise Unsupported(f"activations {acts}")
    if node.attr("clip") is not None or int(node.attr("input_forget", 0)):
        raise Unsupported("clipping or coupled input and forget gates")
    if op == "GRU" and int(node.attr("linear_before_reset", 0)) != 1:
        raise Unsupported("GRU without linear_before_reset=1 (PyTorch's GRU needs it)")
    if node.input(4) is not None:
        raise Unsupported("sequence lengths")
    if node.input(7) is not None:
        raise Unsupported("peephole connections")
    for i in (5, 6):
        if not _is_zero(node.input(i)):
            raise Unsupported("initial states that are not zeros")
    if len(node.outputs) > 2 and node.outputs[2] is not None and (data_users(view, node.outputs[2].name)
                                                                  or view.is_output(node.outputs[2].name)):
        raise Unsupported("its final cell state is read (the catalogue's LSTM gives the hidden state only)")
    source, claims = _source(node, view)
    layout = int(node.attr("layout", 0))
    params: dict[str, object] = {"hidden_size": hidden, "bidirectional": dirs == 2, "num_layers": 1,
                                 "bias": node.input(3) is not None}
    if op == "RNN":
        params["nonlinearity"] = nonlinearity
    b = Build(node)
    y = b.add(op, params, (source,), _weights(node, dirs, hidden), name=node.hint())
    h = Out(y.layer, "h")
    produces: dict[str, object] = {}
    if node.outputs[0] is not None:
        y_name = node.outputs[0].name
        unpack, outs = _unpack_y(y_name, dirs, layout, view)
        if not unpack and (data_users(view, y_name) or view.is_output(y_name)):
            raise Unsupported("its output is used in a time-major form the catalogue cannot hold")
        claims += unpack
        produces[batch_first_name(y_name)] = y
        produces.update({o: y for o in outs})
    state_claims, states = _final_states(node, dirs, hidden, view, b, h)
    produces.update(states)
    return b.emission(produces, claims=claims + state_claims)  # type: ignore[arg-type]


for _op in ("LSTM", "GRU", "RNN"):
    recogniser(_op, priority=10, targets=(_op, "Slice"))(_recurrent)
