"""Attention: the ops both of torch's exporters write for ``nn.MultiheadAttention``,
``nn.TransformerEncoderLayer`` and ``nn.TransformerDecoderLayer``, recognised as those layers.

Anchored at the Softmax, a recogniser finds the module the exporter recorded it in (torch.export:
the ``name_scopes`` / ``class_hierarchy`` metadata; TorchScript: node names such as
``/encoder/layers.0/self_attn/Softmax``) and reads the whole module's nodes as one pattern:

- projections are the MatMul/Gemm nodes with a constant weight; one whose input comes from
  outside the module is an input projection, and where its result goes (the left or right side of
  the scores' MatMul, or the right side of the weights-times-values MatMul) says whether it makes
  queries, keys or values (packed ones make several, in torch's order q, k, v);
- the number of heads comes from the scores' shape ``[N, heads, T, S]`` (or the head size in a
  reshape); a mask added to the scores (or chosen by Where) must be the causal one, checked at
  two sequence lengths;
- a layer's feed-forward Linears and LayerNorms are found by their module names (``linear1``,
  ``norm2``...), pre-norm by the layer ending in an Add rather than a LayerNorm.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..registry import CONST, DATA, Emission, ModelView, OnnxNode, Unsupported, Value, recogniser
from .common import Build, data_users, first_out
from .scopes import Group, forward, origin, projections

_ENCODER = {"self_attn", "linear1", "linear2", "norm1", "norm2"}
_DECODER = _ENCODER | {"multihead_attn", "norm3"}


@dataclass
class _Attention:
    query: str
    key: str
    value: str
    heads: int
    weights: dict[str, np.ndarray]
    causal: bool
    bias: bool
    claims: set[int]
    output: str


@dataclass(frozen=True)
class _Core:
    """Where queries, keys and values go in: (node index, operand) each; heads; the causal mask."""

    q: tuple[int, int]
    k: tuple[int, int]
    v: tuple[int, int]
    heads: int
    causal: bool


def _core(view: ModelView, group: Group, e_hint: int) -> _Core:
    ops = [n for n in group.nodes if n.op == "Attention"]
    if ops:  # opset 23's Attention op
        if len(ops) != 1:
            raise Unsupported(f"{len(ops)} Attention ops in one module")
        a = ops[0]
        if float(a.attr("softcap", 0.0)) or int(a.attr("qk_matmul_output_mode", 0)) or a.attr("scale") is not None:
            raise Unsupported("an Attention op with a scale, softcap or output mode of its own")
        q = a.inputs[0]
        if q is not None and q.shape is not None and len(q.shape) == 4 and isinstance(q.shape[1], int):
            heads = int(q.shape[1])
        else:
            heads = int(a.attr("q_num_heads", 0)) or 1
        causal = bool(int(a.attr("is_causal", 0)))
        if a.input(3) is not None:
            values = _values(a.input(3))
            if values is None or not all(_additive_causal(m) for m in values):
                raise Unsupported("an attention mask other than the causal one")
            causal = True
        return _Core((a.index, 0), (a.index, 1), (a.index, 2), heads, causal)
    softmaxes = [n for n in group.nodes if n.op == "Softmax"]
    if len(softmaxes) != 1:
        raise Unsupported(f"{len(softmaxes)} softmaxes in one attention module")
    sm = softmaxes[0]
    scores = _scores_matmul(view, group, sm)
    av = next((u for u in _descendants_matmuls(group, first_out(sm))), None)
    if scores is None or av is None:
        raise Unsupported("no scores and values matmuls around the softmax")
    return _Core((scores.index, 0), (scores.index, 1), (av.index, 1), _heads(view, group, sm, e_hint),
                 _causal(view, group, scores, sm))


def _attention(view: ModelView, scope: str) -> _Attention:
    group = Group(view, scope)
    found = projections(group)
    inputs = [p for p in found if origin(group, p.src) is not None]
    outs = [p for p in found if origin(group, p.src) is None]
    if len(outs) != 1:
        raise Unsupported(f"{len(outs)} output projections")
    e = outs[0].weight.shape[0]
    core = _core(view, group, e)
    roles: dict[str, tuple[np.ndarray, np.ndarray | None, str]] = {}
    for p in inputs:
        reach = forward(group, p.out)
        parts = [r for r, hit in (("q", core.q), ("k", core.k), ("v", core.v)) if hit in reach]
        if not parts or p.weight.shape[0] != e * len(parts):
            raise Unsupported(f"a projection of width {p.weight.shape[0]} that reaches {parts or 'nothing'}")
        for i, role in enumerate(parts):
            bias = p.bias[i * e:(i + 1) * e] if p.bias is not None else None
            roles[role] = (p.weight[i * e:(i + 1) * e], bias, origin(group, p.src))  # type: ignore[assignment]
    if set(roles) != {"q", "k", "v"}:
        raise Unsupported(f"projections found for {sorted(roles)} only")
    has_bias = any(r[1] is not None for r in roles.values()) or outs[0].bias is not None
    zeros = np.zeros(e, np.float32)
    weights = {"out_proj.weight": outs[0].weight}
    if has_bias:
        weights["out_proj.bias"] = outs[0].bias if outs[0].bias is not None else zeros
        weights["in_proj_bias"] = np.concatenate([roles[r][1] if roles[r][1] is not None else zeros for r in "qkv"])
    if all(roles[r][0].shape[1] == e for r in "qkv"):
        weights["in_proj_weight"] = np.concatenate([roles[r][0] for r in "qkv"])
    else:
        weights |= {f"{r}_proj_weight": roles[r][0] for r in "qkv"}
    output = group.outputs()
    if len(output) != 1:
        raise Unsupported(f"the attention module gives {len(output)} outputs")
    return _Attention(roles["q"][2], roles["k"][2], roles["v"][2], core.heads, weights, core.causal, has_bias,
                      {n.index for n in group.nodes}, output[0])


def _scores_matmul(view: ModelView, group: Group, sm: OnnxNode) -> OnnxNode | None:
    t = sm.inputs[0].name if sm.inputs[0] is not None else ""
    for _ in range(8):
        p = view.producer(t)
        if p is None or p.index not in group.index:
            return None
        if p.op == "MatMul" and all(v is not None and v.kind == DATA for v in p.inputs[:2]):
            return p
        data = [v for v in p.inputs if v is not None and v.kind == DATA]
        if not data:
            return None
        t = data[0].name if p.op != "Where" else next((v.name for v in p.inputs[1:] if v is not None and v.kind == DATA),
                                                      data[0].name)
    return None


def _descendants_matmuls(group: Group, tensor: str) -> list[OnnxNode]:
    return [group.view.node(i) for i, slot in sorted(forward(group, tensor)) if slot == 0]


def _heads(view: ModelView, group: Group, sm: OnnxNode, e: int) -> int:
    shape = sm.inputs[0].shape if sm.inputs[0] is not None else None
    if shape is not None and len(shape) == 4 and isinstance(shape[1], int) and shape[1] > 0 and e % shape[1] == 0:
        return int(shape[1])
    sizes = set()
    for n in group.nodes:
        if n.op != "Reshape" or n.outputs[0] is None:
            continue
        last = n.outputs[0].shape[-1] if n.outputs[0].shape else None
        if not isinstance(last, int) and n.input(1) is not None:
            target = n.input(1).fixed()  # type: ignore[union-attr]
            last = int(target.reshape(-1)[-1]) if target is not None and target.size else None
        if isinstance(last, int) and 0 < last < e and e % last == 0:
            sizes.add(last)
    return e // min(sizes) if sizes else 1


def _causal(view: ModelView, group: Group, scores: OnnxNode, sm: OnnxNode) -> bool:
    """Whether the scores are masked, and then that the mask is the causal one."""
    t, mask = first_out(scores), None
    while t != (sm.inputs[0].name if sm.inputs[0] is not None else ""):
        users = [u for u in data_users(view, t) if u.index in group.index]
        if len(users) != 1:
            raise Unsupported("the scores branch before the softmax")
        u = users[0]
        others = [v for v in u.inputs if v is not None and v.name != t]
        if u.op == "Add":
            mask = ("add", others[0])
        elif u.op == "Where":
            mask = ("where", u)
        elif u.op not in ("Mul", "Div", "Cast"):
            raise Unsupported(f"{u.op} between the scores and the softmax")
        t = first_out(u)
    if mask is None:
        return False
    if mask[0] == "add":
        values = _values(mask[1])  # type: ignore[arg-type]
        if values is None or not all(_additive_causal(m) for m in values):
            raise Unsupported("an attention mask other than the causal one")
        return True
    where: OnnxNode = mask[1]  # type: ignore[assignment]
    cond = _values(where.inputs[0])
    fill = where.inputs[2].fixed() if where.inputs[2] is not None else None
    keep = where.inputs[1].fixed() if where.inputs[1] is not None else None
    if cond is None or (fill is None) == (keep is None):
        raise Unsupported("a Where mask on the scores that is not the causal one")
    blocked = [~c.astype(bool) if fill is not None else c.astype(bool) for c in cond]
    value = fill if fill is not None else keep
    if not np.all(np.asarray(value) < -1e4) or not all(_blocked_causal(b) for b in blocked):
        raise Unsupported("a Where mask on the scores that is not the causal one")
    return True


def _values(v: Value | None) -> list[np.ndarray] | None:
    if v is None:
        return None
    if v.kind == CONST and v.const is not None:
        return [v.const]
    if v.probes is not None:
        return list(v.probes)
    return None


def _square(m: np.ndarray) -> np.ndarray | None:
    m = np.asarray(m)
    while m.ndim > 2 and m.shape[0] == 1:
        m = m[0]
    return m if m.ndim == 2 and m.shape[0] == m.shape[1] else None


def _additive_causal(m: np.ndarray) -> bool:
    sq = _square(m)
    if sq is None:
        return False
    upper = np.triu(np.ones(sq.shape, bool), 1)
    return bool(np.all(sq[~upper] == 0) and np.all(sq[upper] < -1e4)) if sq.dtype.kind == "f" else \
        bool(np.array_equal(sq.astype(bool), upper))


def _blocked_causal(b: np.ndarray) -> bool:
    sq = _square(b)
    return sq is not None and bool(np.array_equal(sq, np.triu(np.ones(sq.shape, bool), 1)))


# --------------------------------------------------------------------------- the layers


def _layer_kind(group: Group, classes: dict[str, str]) -> str | None:
    cls = classes.get(group.scope, "")
    if cls.endswith("TransformerEncoderLayer"):
        return "encoder"
    if cls.endswith("TransformerDecoderLayer"):
        return "decoder"
    if cls:
        return None
    children = group.children()
    if _DECODER <= children:
        return "decoder"
    if _ENCODER <= children and "multihead_attn" not in children:
        return "encoder"
    return None


def _linear(group: Group, name: str) -> tuple[np.ndarray, np.ndarray]:
    found = [p for p in projections(group) if group.child(name) in p.node.scope]
    if len(found) != 1:
        raise Unsupported(f"{name}: {len(found)} matrix products")
    p = found[0]
    return p.weight, p.bias if p.bias is not None else np.zeros(p.weight.shape[0], np.float32)


def _norm(group: Group, name: str) -> tuple[np.ndarray, np.ndarray, OnnxNode]:
    norms = [n for n in group.in_child(name) if n.op == "LayerNormalization"]
    if len(norms) != 1:
        raise Unsupported(f"{name}: {len(norms)} LayerNormalization nodes")
    n = norms[0]
    if abs(float(n.attr("epsilon", 1e-5)) - 1e-5) > 1e-9:
        raise Unsupported(f"layer_norm_eps={n.attr('epsilon')} (the catalogue's layers use 1e-5)")
    w = n.const_input(1, "the LayerNorm scale").reshape(-1)
    b = n.optional_const(2)
    return w, (b.reshape(-1) if b is not None else np.zeros_like(w)), n


def _activation(group: Group) -> str:
    ops = {n.op for n in group.nodes if not any(group.child(c) in n.scope for c in ("self_attn", "multihead_attn"))}
    if "Relu" in ops:
        return "relu"
    if "Gelu" in ops or "Erf" in ops:
        return "gelu"
    raise Unsupported("a feed-forward activation other than relu or gelu")


def _layer(view: ModelView, scope: str, kind: str, node: OnnxNode) -> Emission:
    group = Group(view, scope)
    self_attn = _attention(view, group.child("self_attn"))
    weights = {f"self_attn.{k}": v for k, v in self_attn.weights.items()}
    if not self_attn.bias:
        raise Unsupported("attention without biases (the catalogue's layers have them)")
    if self_attn.key != self_attn.query or self_attn.value != self_attn.query:
        raise Unsupported("a self-attention whose keys or values are not its queries")
    outside = group.inputs()
    norms = ("norm1", "norm2") + (("norm3",) if kind == "decoder" else ())
    if kind == "decoder":
        cross = _attention(view, group.child("multihead_attn"))
        if cross.causal or cross.key != cross.value or "in_proj_weight" not in cross.weights:
            raise Unsupported("a cross-attention with a mask, or keys and values from different inputs")
        weights |= {f"multihead_attn.{k}": v for k, v in cross.weights.items()}
        if cross.key not in outside or len(outside) != 2:
            raise Unsupported(f"a decoder layer reading {len(outside)} tensors, not a target and a memory")
        inputs = [next(t for t in outside if t != cross.key), cross.key]
    elif len(outside) != 1:
        raise Unsupported(f"an encoder layer reading {len(outside)} tensors")
    else:
        inputs = outside
    for name in ("linear1", "linear2"):
        w, b = _linear(group, name)
        weights |= {f"{name}.weight": w, f"{name}.bias": b}
    for name in norms:
        w, b, _ = _norm(group, name)
        weights |= {f"{name}.weight": w, f"{name}.bias": b}
    outputs = group.outputs()
    if len(outputs) != 1:
        raise Unsupported(f"the layer gives {len(outputs)} outputs")
    last = view.producer(outputs[0])
    norm_first = last is not None and last.op == "Add"
    params = {"nhead": self_attn.heads, "dim_feedforward": int(weights["linear1.weight"].shape[0]),
              "activation": _activation(group), "norm_first": norm_first, "causal": self_attn.causal}
    b = Build(node)
    y = b.add("TransformerEncoderLayer" if kind == "encoder" else "TransformerDecoderLayer", params, inputs, weights,
              name=scope)
    return b.emission({outputs[0]: y}, claims={n.index for n in group.nodes} - {node.index})


@recogniser("Attention", priority=20)
@recogniser("Softmax", priority=20, targets=("MultiheadAttention", "CrossAttention", "TransformerEncoderLayer",
                                             "TransformerDecoderLayer"))
def attention(node: OnnxNode, view: ModelView) -> Emission | None:
    """A Softmax inside an attention module: the module (or the Transformer layer around it) as one layer."""
    classes = dict(zip(node.scope, node.classes, strict=False))
    attn = next((s for s in reversed(node.scope) if classes.get(s, "").endswith("MultiheadAttention")
                 or (not classes and s.rsplit(".", 1)[-1] in ("self_attn", "multihead_attn", "attn", "attention"))),
                None)
    if attn is None:
        return None
    parent = attn.rsplit(".", 1)[0] if "." in attn else None
    if parent is not None and parent in node.scope:
        kind = _layer_kind(Group(view, parent), classes)
        if kind is not None:
            return _layer(view, parent, kind, node)
    found = _attention(view, attn)
    b = Build(node)
    params: dict[str, object]
    if found.key == found.query and found.value == found.query:
        params = {"num_heads": found.heads, "bias": found.bias, "causal": found.causal}
        y = b.add("MultiheadAttention", params, (found.query,), found.weights, name=attn)
    else:
        if found.causal:
            raise Unsupported("a masked cross-attention")
        separate = found.key != found.value
        params = {"num_heads": found.heads, "bias": found.bias, "separate_value": separate}
        ins = (found.query, found.key, found.value) if separate else (found.query, found.key)
        y = b.add("CrossAttention", params, ins, found.weights, name=attn)
    return b.emission({found.output: y}, claims=found.claims - {node.index})
