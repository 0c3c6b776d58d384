"""torch modules torch.export writes as unrolled steps (an Elman ``nn.RNN`` has no ONNX op in its
library): read from the module scope the exporter recorded, with the parameters under their
``state_dict`` names (``rnn.weight_ih_l0``...)."""

from __future__ import annotations

import re

import numpy as np

from ..registry import DATA, Emission, ModelView, OnnxNode, Out, Unsupported, recogniser
from .common import Build, data_users, first_out
from .scopes import Group

_PARAM = re.compile(r"(weight_ih|weight_hh|bias_ih|bias_hh)_l(\d+)(_reverse)?$")


def _rnn_scope(node: OnnxNode) -> str | None:
    classes = dict(zip(node.scope, node.classes, strict=False))
    return next((s for s in reversed(node.scope) if classes.get(s, "").endswith("modules.rnn.RNN")), None)


@recogniser("Tanh", priority=15, targets=("RNN",))
@recogniser("Relu", priority=15, targets=("RNN",))
def unrolled_rnn(node: OnnxNode, view: ModelView) -> Emission | None:
    scope = _rnn_scope(node)
    if scope is None:
        return None
    group = Group(view, scope)
    params = view.constants(scope + ".")
    found: dict[str, np.ndarray] = {}
    for name, value in params.items():
        m = _PARAM.search(name)
        if m is not None and name == f"{scope}.{m.group(0)}":
            found[m.group(0)] = value
    layers = 1 + max((int(_PARAM.search(k).group(2)) for k in found), default=-1)  # type: ignore[union-attr]
    if not layers or "weight_hh_l0" not in found:
        raise Unsupported("an RNN module whose parameters are not under their state_dict names")
    dirs = 2 if any(k.endswith("_reverse") for k in found) else 1
    hidden = int(found["weight_hh_l0"].shape[1])
    ops = {n.op for n in group.nodes}
    nonlinearity = "relu" if "Relu" in ops and "Tanh" not in ops else "tanh"
    inputs = group.inputs()
    if len(inputs) != 1:
        raise Unsupported(f"an RNN module reading {len(inputs)} data tensors (initial states that are data?)")
    x = view.value(inputs[0])
    b = Build(node)
    y = b.add("RNN", {"hidden_size": hidden, "num_layers": layers, "nonlinearity": nonlinearity,
                      "bidirectional": dirs == 2, "bias": "bias_ih_l0" in found}, (x.name,), found, name=scope)
    produces: dict[str, object] = {}
    claims: set[int] = {n.index for n in group.nodes}
    for out in group.outputs():
        shape = view.value(out).shape
        if shape is not None and x.shape is not None and len(shape) == 3 and shape[:2] == x.shape[:2]:
            produces[out] = y  # the sequence, batch-first as the module gave it
            continue
        for user in data_users(view, out):  # h_n [layers * dirs, N, H]: only the last layer's states have a port
            index = user.inputs[1].fixed() if user.op == "Gather" and user.inputs[1] is not None else None
            if index is None or index.ndim != 0 or int(user.attr("axis", 0)) != 0:
                raise Unsupported(f"the final states are read by {user.label} ({user.op})")
            d = int(index) % (layers * dirs) - (layers - 1) * dirs
            if not 0 <= d < dirs:
                raise Unsupported("the final state of a layer below the last is read")
            h = Out(y.layer, "h")
            produces[first_out(user)] = h if dirs == 1 else b.add(
                "Slice", {"dim": 1, "start": d * hidden, "end": (d + 1) * hidden}, (h,), name=f"{scope}_h{d}")
            claims.add(user.index)
        if view.is_output(out):
            raise Unsupported("the final states [layers * directions, N, H] are a model output")
    if not produces or x.kind != DATA:
        return None
    return b.emission(produces, claims=claims - {node.index})  # type: ignore[arg-type]
