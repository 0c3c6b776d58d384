"""Which channels can be removed together, and the weights without them.

A *channel space* is the set of tensors that must keep the same channels: a convolution's output,
what flows from it through per-channel layers (BatchNorm, activations, pooling...), and every tensor
an element-wise merge (a residual ``Add``) joins to it, whose producers are then pruned alike.  A
space ends where its channels are read through weights (the next convolution's input channels, a
``Linear`` after ``Flatten`` reading them in blocks of H x W); anything else that reads them (the
Output, a block, a reshape, a softmax over channels, an input that cannot be pruned joined by a
merge) makes the space unprunable, with a reason that names that node.

Pure functions of the graph, its inferred shapes and a state dict: no training, no files.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import torch

from ..compiler import assign_identifiers
from ..graph import Graph
from ..shapes import ShapeInference
from .report import CompressError

CONVS = {"Conv1d", "Conv2d", "Conv3d"}
TRANSPOSED = {"ConvTranspose1d", "ConvTranspose2d", "ConvTranspose3d"}
#: per-channel layers whose 1-D tensors (gamma, beta, running statistics, slopes) lose the channels too
PER_CHANNEL = {"BatchNorm1d", "BatchNorm2d", "BatchNorm3d", "InstanceNorm1d", "InstanceNorm2d", "InstanceNorm3d",
               "PReLU"}
#: element-wise layers without parameters: every channel (and every flattened feature) stays where it is
ELEMENTWISE = {"ReLU", "LeakyReLU", "GELU", "SiLU", "Sigmoid", "Tanh", "ReLU6", "Hardswish", "Hardsigmoid", "SELU",
               "Mish", "Softsign", "Hardtanh", "ELU", "CELU", "Softplus", "Clamp", "Dropout", "Identity", "Negate",
               "Abs", "Sqrt", "Exp", "Log", "Reciprocal", "ScalarOp"}
#: layers that work on each channel's own values (spatially), keeping the channel axis
SPATIAL = {"MaxPool1d", "MaxPool2d", "MaxPool3d", "AvgPool1d", "AvgPool2d", "AvgPool3d", "AdaptiveAvgPool1d",
           "AdaptiveAvgPool2d", "AdaptiveAvgPool3d", "AdaptiveMaxPool1d", "AdaptiveMaxPool2d", "AdaptiveMaxPool3d",
           "Upsample", "Pad"}
MERGES = {"Add", "Subtract", "Multiply", "Maximum", "Minimum", "Divide"}


@dataclass(frozen=True)
class _Tag:
    """A tensor carries the channels of ``space``: on axis 1 (``block`` None) or flattened, each
    channel being ``block`` consecutive features."""

    space: int
    block: int | None = None


@dataclass
class ChannelGroup:
    """Channels that are removed together.

    Attributes:
        producers: node ids whose output channels these are (pruned alike).
        size: channels now.
        sinks: node ids reading them through weights on their input axis.
        flat_sinks: (Linear node id, features per channel) reading them flattened.
        members: per-channel nodes (BatchNorm...) in between.
        blockers: why they cannot be removed, each naming a node (empty: prunable).
    """

    producers: list[str]
    size: int
    sinks: list[str] = field(default_factory=list)
    flat_sinks: list[tuple[str, int]] = field(default_factory=list)
    members: list[str] = field(default_factory=list)
    blockers: list[str] = field(default_factory=list)

    @property
    def prunable(self) -> bool:
        return not self.blockers


class _Spaces:
    """Union-find over channel spaces."""

    def __init__(self) -> None:
        self.parent: list[int] = []
        self.groups: list[ChannelGroup] = []

    def new(self, producer: str, size: int) -> int:
        self.parent.append(len(self.parent))
        self.groups.append(ChannelGroup([producer], size))
        return len(self.parent) - 1

    def find(self, i: int) -> int:
        while self.parent[i] != i:
            self.parent[i] = self.parent[self.parent[i]]
            i = self.parent[i]
        return i

    def group(self, i: int) -> ChannelGroup:
        return self.groups[self.find(i)]

    def union(self, a: int, b: int) -> int:
        ra, rb = self.find(a), self.find(b)
        if ra == rb:
            return ra
        ga, gb = self.groups[ra], self.groups[rb]
        ga.producers += gb.producers
        ga.sinks += gb.sinks
        ga.flat_sinks += gb.flat_sinks
        ga.members += gb.members
        ga.blockers += gb.blockers
        self.parent[rb] = ra
        return ra

    def roots(self) -> list[ChannelGroup]:
        return [g for i, g in enumerate(self.groups) if self.find(i) == i]


def _label(graph: Graph, nid: str) -> str:
    node = graph.nodes[nid]
    return f'{node.spec.name} "{node.name}"'


def _is_producer(node: Any, out_shape: Any, include_linear: bool) -> bool:
    if node.type in CONVS | TRANSPOSED:
        return int(node.params["groups"]) == 1
    return include_linear and node.type == "Linear" and out_shape is not None and len(out_shape) == 2


def channel_groups(graph: Graph, shapes: ShapeInference | None = None, include_linear: bool = False
                   ) -> list[ChannelGroup]:
    """Every group of output channels of the convolutions (and, with ``include_linear``, of the
    Linear layers on [N, features]) of ``graph``'s top level, with why each cannot be pruned.

    Convolutions inside blocks are not analysed (a block's inside is shared by all its uses).
    """
    si = shapes
    if si is None:
        si = ShapeInference(graph, live=False)
        si.update()
    info = si.all()
    spaces = _Spaces()
    tags: dict[tuple[str, str], _Tag] = {}

    def block(tag: _Tag, why: str) -> None:
        spaces.group(tag.space).blockers.append(why)

    for nid in graph.topological_order():
        node = graph.nodes[nid]
        ni = info[nid]
        ins: list[tuple[str, _Tag | None, Any]] = []
        for port in node.input_ports:
            edge = graph.edge_into(nid, port)
            tag = tags.get((edge.src, edge.src_port)) if edge is not None else None
            ins.append((edge.src if edge is not None else "", tag, ni.inputs.get(port)))
        tagged = [t for _, t, _ in ins if t is not None]
        out_shape = ni.outputs.get("y") if ni.outputs else None
        me = _label(graph, nid)
        result: _Tag | None = None
        if node.type in CONVS | TRANSPOSED | {"Linear"}:
            producer = _is_producer(node, out_shape, include_linear)
            for _src, tag, shape in ins:
                if tag is None:
                    continue
                g = spaces.group(tag.space)
                if node.type == "Linear":
                    if tag.block is not None:
                        g.flat_sinks.append((nid, tag.block))
                    elif shape is not None and len(shape) == 2:
                        g.sinks.append(nid)
                    else:
                        block(tag, f"{me} reads the last dimension, not the channels")
                elif tag.block is not None:
                    block(tag, f"{me} reads flattened channels")
                elif not producer:
                    block(tag, f"{me} has groups={node.params['groups']}: a grouped convolution ties its input "
                               "channels to its output's")
                else:
                    g.sinks.append(nid)
            if producer and out_shape is not None and isinstance(out_shape[1], int):
                result = _Tag(spaces.new(nid, int(out_shape[1])))
        elif not tagged:
            result = None
        elif node.type in MERGES:
            plain = [t for t in tagged if t.block is None]
            if len(plain) != len(tagged):
                for t in tagged:
                    block(t, f"{me} merges flattened channels")
            else:
                root = plain[0].space
                for t in plain[1:]:
                    root = spaces.union(root, t.space)
                for src, tag, _ in ins:
                    if tag is None:
                        block(plain[0], f"{me} joins these channels with {_label(graph, src)}, whose channels "
                                        "cannot be removed")
                shapes_in = {tuple(s) for _, _, s in ins if s is not None}
                if len(shapes_in) > 1:
                    block(plain[0], f"{me} broadcasts its inputs")
                result = _Tag(spaces.find(root))
        elif node.type == "Flatten":
            tag, shape = tagged[0], ins[0][2]
            if shape is not None and len(shape) == 2:
                result = tag
            elif (tag.block is None and int(node.params["start_dim"]) == 1 and shape is not None
                  and all(isinstance(d, int) for d in shape[2:])):
                result = _Tag(tag.space, math.prod(shape[2:]))
            else:
                block(tag, f"{me} flattens the channels with other dimensions")
        elif node.type in ELEMENTWISE:
            result = tagged[0]
        elif node.type in PER_CHANNEL and tagged[0].block is None:
            spaces.group(tagged[0].space).members.append(nid)
            result = tagged[0]
        elif node.type in SPATIAL and tagged[0].block is None and _spatial_only(node, ins[0][2]):
            result = tagged[0]
        else:
            for t in tagged:
                if node.spec.role == "output":
                    block(t, f'Output "{node.name}" reads these channels: the model\'s output would change')
                elif node.is_block:
                    block(t, f'block "{node.name}" ({node.type}) reads these channels: ungroup it (Edit > Ungroup '
                             "Block) to prune through it")
                else:
                    block(t, f"{me} reads these channels; pruning through {node.type} is not supported")
        if result is not None:
            for port in node.output_ports:
                tags[(nid, port)] = result
    return spaces.roots()


def _spatial_only(node: Any, shape: Any) -> bool:
    """A Pad that pads only the spatial dimensions keeps the channels."""
    if node.type != "Pad":
        return True
    return shape is not None and len(node.params["pads"]) <= 2 * (len(shape) - 2)


def importance(graph: Graph, group: ChannelGroup, state: dict[str, torch.Tensor], criterion: str) -> torch.Tensor:
    """A score per channel: the L1 norm of each producer's filters, or the magnitude of the
    BatchNorm scale right after each producer; each producer's scores are divided by their mean
    (so producers of different scales count alike) and summed.

    Raises:
        CompressError: ``bn`` and a producer without a BatchNorm right after it (named).
    """
    attr = assign_identifiers(graph)
    total = torch.zeros(group.size, dtype=torch.float64)
    for nid in group.producers:
        node = graph.nodes[nid]
        if criterion == "l1":
            w = state[f"{attr[nid]}.weight"].detach().double().abs()
            axis = 1 if node.type in TRANSPOSED else 0
            score = w.transpose(0, axis).reshape(w.shape[axis], -1).sum(1)
        elif criterion == "bn":
            bns = [e.dst for e in graph.edges_from(nid)
                   if graph.nodes[e.dst].type.startswith("BatchNorm") and graph.nodes[e.dst].params["affine"]]
            if not bns:
                raise CompressError(f'criterion bn: {_label(graph, nid)} is not followed by a BatchNorm with a '
                                    "learned scale; use criterion l1")
            score = state[f"{attr[bns[0]]}.weight"].detach().double().abs()
        else:
            raise CompressError(f"criterion: expected l1 or bn, got {criterion!r}")
        mean = float(score.mean())
        total += score / mean if mean > 0 else score
    return total


def keep_count(size: int, amount: float) -> int:
    """Channels kept when ``amount`` of ``size`` are removed (at least one)."""
    return max(1, min(size, round(size * (1.0 - amount))))


def _take(t: torch.Tensor, dim: int, idx: torch.Tensor) -> torch.Tensor:
    return t.index_select(dim, idx).contiguous()


def slice_state(graph: Graph, state: dict[str, torch.Tensor], keep: dict[int, tuple[ChannelGroup, torch.Tensor]]
                ) -> dict[str, torch.Tensor]:
    """The state dict without the removed channels.

    Args:
        keep: per group (any key), the group and the channel indices it keeps (ascending).
    """
    attr = assign_identifiers(graph)
    out = dict(state)

    def key(nid: str, name: str) -> str:
        return f"{attr[nid]}.{name}"

    for group, idx in keep.values():
        for nid in group.producers:
            transposed = graph.nodes[nid].type in TRANSPOSED
            out[key(nid, "weight")] = _take(out[key(nid, "weight")], 1 if transposed else 0, idx)
            if key(nid, "bias") in out:
                out[key(nid, "bias")] = _take(out[key(nid, "bias")], 0, idx)
        for nid in group.sinks:
            transposed = graph.nodes[nid].type in TRANSPOSED
            out[key(nid, "weight")] = _take(out[key(nid, "weight")], 0 if transposed else 1, idx)
        for nid, block in group.flat_sinks:
            features = (idx[:, None] * block + torch.arange(block)[None]).reshape(-1)
            out[key(nid, "weight")] = _take(out[key(nid, "weight")], 1, features)
        for nid in group.members:
            prefix = f"{attr[nid]}."
            for k in [k for k in out if k.startswith(prefix)]:
                if out[k].ndim == 1 and out[k].shape[0] == group.size:
                    out[k] = _take(out[k], 0, idx)
    return out


def describe(graph: Graph, group: ChannelGroup) -> str:
    """``Conv2d "conv1"`` or ``Conv2d "a" + Conv2d "b"`` for messages."""
    return " + ".join(_label(graph, p) for p in group.producers)
