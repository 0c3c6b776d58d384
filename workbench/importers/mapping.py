"""The mapper: recognisers and converters turn the analysed model into catalogue layers.

Every data node that reaches a model output becomes a *unit*: a recogniser's pattern (several
ONNX nodes) or one converted node, each with the emission it returned.  Recognisers run
first, one pass per priority over the whole model; the rest go to the converter registered for
their op and opset.  Units are then applied in dependency order (through the ONNX tensors they
read and produce), each adding its layers to a fresh graph.  Nothing here knows an op: that is
the registry's (``ops/``).
"""

from __future__ import annotations

import heapq
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import onnx
import torch

from ..errors import GraphError
from ..graph import Graph
from . import ops  # noqa: F401  (registers the converters)
from .model import Model
from .registry import DATA, SHAPE, Emission, Out, Unsupported, converter_for, priorities, recognisers_for


class MappingError(Exception):
    """The model's interface cannot be represented (an input's type or rank); the message says why."""


@dataclass
class Unit:
    """One recogniser's pattern or one converted node, and what it returned (or why it could not)."""

    anchor: int
    nodes: frozenset[int]
    emission: Emission | None = None
    error: str | None = None  # "Op (reason)"
    outs: frozenset[str] = frozenset()  # a failed unit's tensors (those reading them wait for it, then fail)

    def produces(self) -> set[str]:
        if self.emission is None:
            return set(self.outs)
        names = {t for layer in self.emission.layers for _, t in layer.outputs}
        return names | set(self.emission.aliases)

    def reads(self) -> set[str]:
        if self.emission is None:
            return set()
        names = {s for layer in self.emission.layers for s in layer.inputs if isinstance(s, str)}
        names |= {s for s in self.emission.aliases.values() if isinstance(s, str)}
        return names - self.produces()


@dataclass
class Mapped:
    """The graph a model maps to, before layout.

    Attributes:
        graph: the layers.
        tensors: initial weights, keyed ``"<node id>:<state_dict key in the layer>"``.
        tensor_map: ONNX tensor -> the (node id, port) that computes it (what the self-check compares).
        origin: node id -> the ONNX node(s) it came from (for messages).
        unsupported: "Op (reason)" -> the nodes it applies to.
        notes: remarks for the report.
    """

    graph: Graph
    tensors: dict[str, torch.Tensor] = field(default_factory=dict)
    tensor_map: dict[str, tuple[str, str]] = field(default_factory=dict)
    origin: dict[str, str] = field(default_factory=dict)
    unsupported: dict[str, list[str]] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)


def node_name(hint: str, type_id: str, graph: Graph) -> str:
    """A valid, unused node name from an ONNX name (``/layer1/conv/Conv`` -> ``layer1_conv_Conv``)."""
    base = re.sub(r"^(node_|/)", "", hint or "").replace("/", "_").strip("_") or type_id.lower()
    base = re.sub(r"[^A-Za-z0-9_.]", "_", base)[:40]
    return base if not graph.has_name(base) else graph.unique_name(f"{base}_")


def _symbol(d: Any, i: int) -> str:
    s = re.sub(r"\W", "_", str(d)) if d not in ("?", "") else f"L{i}"
    return s if s[0].isalpha() and s not in ("N", "batch") else f"T{s}"


# --------------------------------------------------------------------------- inputs


_INPUT_TYPES = {onnx.TensorProto.FLOAT: "float32", onnx.TensorProto.DOUBLE: "float64", onnx.TensorProto.INT64: "int64"}


def _add_inputs(model: Model, graph: Graph, env: dict[str, tuple[str, str]]) -> None:
    for vi in model.inputs:
        dims = model.shapes.get(vi.name)
        if not vi.type.tensor_type.HasField("shape") or dims is None:
            raise MappingError(f"input {vi.name!r} has no shape; the importer needs input shapes (re-export with "
                               "shapes, or set them with onnx.tools.update_model_dims)")
        elem = vi.type.tensor_type.elem_type
        if elem not in _INPUT_TYPES:
            name = onnx.TensorProto.DataType.Name(elem).lower() if elem else "of no declared type"
            raise MappingError(f"input {vi.name!r} is {name}: a model Input holds float32, float64 or int64, and "
                               f"reading it as another type would change what the model computes")
        if not dims:
            raise MappingError(f"input {vi.name!r} is a scalar (rank 0): every model Input has a batch dimension "
                               "first, and a scalar has none to give")
        if vi.name in model.shared:  # one tensor for every sample: every dimension is its own
            params = {"shape": [int(d) for d in dims], "dtype": _INPUT_TYPES[elem], "batched": False}
        else:
            rest = [d if isinstance(d, int) and d > 0 else _symbol(d, i + 1) for i, d in enumerate(dims[1:])]
            params = {"shape": rest, "dtype": _INPUT_TYPES[elem]}
        node = graph.add_node("Input", params, node_name(vi.name, "Input", graph))
        env[vi.name] = (node.id, "y")


# --------------------------------------------------------------------------- shared inputs

#: op -> the input positions that may be a shared tensor (no batch dimension): element-wise
#: arithmetic broadcasts it against each sample, a matrix product multiplies each sample by it
_SHARED_READERS = {"Add": (0, 1), "Sub": (0, 1), "Mul": (0, 1), "Div": (0, 1), "Gemm": (1, 2), "MatMul": (1,),
                   **{op: (0,) for op in ("Relu", "Tanh", "Sigmoid", "Neg", "Abs", "Sqrt", "Exp", "Log", "Reciprocal",
                                          "Softplus", "Softsign", "Elu", "Selu", "LeakyRelu", "HardSigmoid",
                                          "HardSwish", "Identity")}}


def shared_reading(proto: onnx.ModelProto) -> frozenset[str]:
    """The inputs to read as shared when the batch-first reading fails, in a model of fixed input
    shapes: its only input, or those whose leading dimension is not the first input's (or whose rank
    is lower), which cannot hold the same samples.  Empty when there is no such reading."""
    initialized = {i.name for i in proto.graph.initializer}
    inputs = [vi for vi in proto.graph.input if vi.name not in initialized]
    dims = [[d.dim_value if d.HasField("dim_value") else None for d in vi.type.tensor_type.shape.dim]
            for vi in inputs]
    if not inputs or any(not d or None in d for d in dims):
        return frozenset()
    if len(inputs) == 1:
        return frozenset({inputs[0].name})
    first = dims[0]
    return frozenset(vi.name for vi, d in zip(inputs[1:], dims[1:], strict=True)
                     if len(d) < len(first) or d[0] != first[0])


def _reads_shared(model: Model, k: int) -> str | None:
    """Why node ``k`` cannot read the shared tensors it reads (None when it reads none, or may)."""
    node = model.nodes[k]
    allowed = _SHARED_READERS.get(node.op_type, ())
    for j, name in enumerate(node.input):
        if name and name in model.shared and j not in allowed:
            return (f"{node.op_type} (it reads {name!r}, an input shared by every sample (no batch dimension): only "
                    "element-wise operations and a matrix product's right operand read one)")
    return None


# --------------------------------------------------------------------------- units


def _units(model: Model) -> list[Unit]:
    """Recognise patterns (by priority), then convert the remaining data nodes one by one."""
    todo = sorted(model.data_live)
    claimed: set[int] = set()
    units: list[Unit] = []

    def failure(k: int, error: str) -> Unit:
        return Unit(k, frozenset({k}), error=error, outs=frozenset(o for o in model.nodes[k].output if o))
    for k in todo:
        problem = _reads_shared(model, k)
        if problem:
            units.append(failure(k, problem))
            claimed.add(k)
    for priority in priorities():
        for k in todo:
            if k in claimed:
                continue
            node = model.node(k)
            for recognise in recognisers_for(node, priority):
                try:
                    emission = recognise(node, model)
                except Unsupported as exc:
                    units.append(failure(k, f"{node.op} ({exc})"))
                    claimed.add(k)
                    break
                if emission is None:
                    continue
                nodes = frozenset({k, *emission.claims})
                if nodes & claimed:
                    continue
                units.append(Unit(k, nodes, emission))
                claimed |= nodes
                break
    for k in todo:
        if k in claimed:
            continue
        node = model.node(k)
        if k in model.fold_errors:
            units.append(failure(k, f"{node.op} (constant folding: {model.fold_errors[k]})"))
            continue
        convert = converter_for(node)
        if convert is None:
            units.append(failure(k, node.op))
            continue
        try:
            units.append(Unit(k, frozenset({k}), convert(node)))
        except Unsupported as exc:
            units.append(failure(k, f"{node.op} ({exc})"))
    in_patterns = {k for u in units if u.emission is not None and len(u.nodes) > 1 for k in u.nodes}
    return [u if u.emission is None else _checked(model, u, in_patterns) for u in units]


def _checked(model: Model, unit: Unit, in_patterns: set[int]) -> Unit:
    """The unit, or a failure when an output of its nodes that a converted node (or the model) reads
    is not produced (a MaxPool's indices, a Dropout's mask).  A pattern's nodes read what they need
    by name, and fail when they apply if it is missing."""
    made = unit.produces()
    for k in sorted(unit.nodes):
        for out in model.nodes[k].output:
            if not out or out in made or model.kind.get(out) != DATA:
                continue
            readers = [r for r in model.readers.get(out, ()) if r in model.data_live and r not in unit.nodes
                       and r not in in_patterns]
            if readers or out in model.outputs:
                return Unit(unit.anchor, unit.nodes, error=f"{model.nodes[unit.anchor].op} (its output {out!r} is "
                            "used, and no layer computes it)", outs=frozenset(unit.produces()))
    return unit


def _schedule(units: list[Unit], available: Iterable[str]) -> list[Unit]:
    """Units in an order where each comes after those whose tensors it reads (ONNX order on ties)."""
    producer: dict[str, int] = {}
    for i, u in enumerate(units):
        for name in u.produces():
            producer.setdefault(name, i)
    have = set(available)
    deps: list[set[int]] = []
    for i, u in enumerate(units):
        deps.append({producer[n] for n in u.reads() if n in producer and n not in have and producer[n] != i})
    waiting = [len(d) for d in deps]
    dependants: dict[int, list[int]] = {}
    for i, d in enumerate(deps):
        for j in d:
            dependants.setdefault(j, []).append(i)
    ready = [(u.anchor, i) for i, u in enumerate(units) if not waiting[i]]
    heapq.heapify(ready)
    order: list[Unit] = []
    while ready:
        _, i = heapq.heappop(ready)
        order.append(units[i])
        for j in dependants.get(i, ()):
            waiting[j] -= 1
            if not waiting[j]:
                heapq.heappush(ready, (units[j].anchor, j))
    done = {id(u) for u in order}
    order += [u for u in units if id(u) not in done]  # a cycle between patterns: they fail on missing inputs
    return order


# --------------------------------------------------------------------------- applying


class _Missing(Exception):
    def __init__(self, tensor: str, failed: bool) -> None:
        super().__init__(tensor)
        self.tensor = tensor
        self.failed = failed


def _apply(unit: Unit, model: Model, mapped: Mapped, env: dict[str, tuple[str, str]], failed: set[str]) -> None:
    emission = unit.emission
    assert emission is not None
    graph = mapped.graph
    added: list[str] = []
    local: dict[tuple[int, str], tuple[str, str]] = {}

    def resolve(src: Any) -> tuple[str, str]:
        if isinstance(src, Out):
            return local[(src.layer, src.port)]
        if src in env:
            return env[src]
        raise _Missing(src, src in failed)

    try:
        for i, layer in enumerate(emission.layers):
            sources = [resolve(s) for s in layer.inputs]
            node = graph.add_node(layer.type, dict(layer.params), node_name(layer.name, layer.type, graph))
            added.append(node.id)
            ports = node.input_ports
            if len(ports) != len(sources):
                raise GraphError(f"{layer.type} has {len(ports)} inputs, the converter gave {len(sources)}")
            for port, (src, sport) in zip(ports, sources, strict=True):
                graph.connect(src, sport, node.id, port)
            for port in node.output_ports:
                local[(i, port)] = (node.id, port)
            for port, _ in layer.outputs:
                if (i, port) not in local:
                    raise GraphError(f"{layer.type} has no output port {port!r}")
        aliases = {t: resolve(s) for t, s in emission.aliases.items()}
    except (_Missing, GraphError) as exc:
        for nid in reversed(added):
            graph.remove_node(nid)
        failed.update(unit.produces())
        if isinstance(exc, _Missing) and exc.failed:
            return  # it reads what an unsupported node would have computed: that one is listed
        what = (f"reads {exc.tensor!r}, which nothing the importer can map computes" if isinstance(exc, _Missing)
                else f"the layer it maps to refused it: {exc}")
        mapped.unsupported.setdefault(f"{model.node(unit.anchor).op} ({what})", []).append(
            model.label(unit.anchor))
        return
    label = model.label(unit.anchor)
    for i, layer in enumerate(emission.layers):
        nid = added[i]
        mapped.origin[nid] = label
        for key, value in layer.weights.items():
            mapped.tensors[f"{nid}:{key}"] = torch.from_numpy(np.array(value, copy=True))
        for port, tensor in layer.outputs:
            env[tensor] = local[(i, port)]
    env.update(aliases)
    mapped.notes += list(emission.notes)


def _learned(model: Model, tensor: str) -> bool:
    value = model.consts.get(tensor)
    return isinstance(value, np.ndarray) and value.dtype == np.float32 and value.ndim >= 1 and value.size > 0


def map_model(model: Model, allow_partial: bool = False) -> Mapped:
    """Map ``model`` onto catalogue layers.

    Raises:
        MappingError: an input cannot be represented.  Unsupported nodes are listed in the
            result's ``unsupported`` (the caller refuses the model unless ``allow_partial``).
    """
    graph = Graph()
    mapped = Mapped(graph)
    env: dict[str, tuple[str, str]] = {}
    _add_inputs(model, graph, env)
    failed: set[str] = set()
    for unit in _schedule(_units(model), env):
        if unit.error is not None:
            mapped.unsupported.setdefault(unit.error, []).append(model.label(unit.anchor))
            failed.update(o for k in unit.nodes for o in model.nodes[k].output if o)
            continue
        _apply(unit, model, mapped, env, failed)
    for out in model.outputs:
        if out not in env and _learned(model, out):  # a model output that is a constant: a learned tensor
            p = graph.add_node("Parameter", {"shape": list(model.consts[out].shape), "init": "zeros"},
                               node_name(out, "Parameter", graph))
            mapped.tensors[f"{p.id}:weight"] = torch.from_numpy(np.array(model.consts[out], np.float32))
            env[out] = (p.id, "y")
        if out in env:
            o = graph.add_node("Output", {}, node_name(out, "Output", graph))
            graph.connect(*env[out], o.id, "x")
        elif out not in failed:
            kind = model.kind.get(out)
            why = ("a constant" if kind not in (DATA, SHAPE) else "computed from shapes only" if kind == SHAPE
                   else "not computed by any mapped node")
            mapped.unsupported.setdefault(f"output ({why}: the graph has nothing to compute)", []).append(out)
    data = {name for name, kind in model.kind.items() if kind == DATA}
    mapped.tensor_map = {name: where for name, where in env.items() if name in data}
    if mapped.unsupported and allow_partial:
        mapped.notes.append("partial import: the nodes listed as unsupported and the layers that depend on them are "
                            "left out; add Outputs where you need them")
    return mapped
