"""ONNX -> an editable project.

Our own exports carry the project graph in their metadata and their weights
under the node names, so re-importing them is lossless.  Other models are read
op by op: constant subgraphs (initializers, Constant, shape arithmetic) are
folded, operators are mapped onto catalogue layers by the converters in
``onnx_ops`` (one registry keyed by op type), weights go to a safetensors file
beside the project, and the graph is laid out automatically.  Nothing in the
file is executed; unsupported operators are listed with their names and counts.
"""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import onnx
import torch
from onnx import numpy_helper

from ..bulk import gc_paused
from ..compiler import compile_graph
from ..errors import InputError, WorkbenchError
from ..fileio import refuse_overwriting_inputs
from ..graph import Graph
from ..layout import auto_layout
from ..project import Project, project_from_dict, save_project
from ..weights import save_weights

PROJECT_KEY = "neural_workbench.project"


class OnnxImportError(WorkbenchError):
    """The model cannot be imported; nothing was written."""


class OnnxImportFileError(OnnxImportError, InputError):
    """The file is not a readable, valid ONNX model (exit status 2); nothing was written."""

    def __init__(self, message: str, file: str | None = None) -> None:
        InputError.__init__(self, message, file)


@dataclass
class ImportResult:
    project: Project
    tensors: dict[str, torch.Tensor]
    lossless: bool
    unsupported: dict[str, list[str]] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    source: Path | None = None
    """The model file it came from (``write_import`` never writes over it)."""


@dataclass
class Ctx:
    """What converters see: constants, inferred shapes, and how to add layers."""

    graph: Graph
    consts: dict[str, np.ndarray]
    shapes: dict[str, list[Any]]
    env: dict[str, tuple[str, str]]  # onnx tensor -> (node id, port)
    tensors: dict[str, torch.Tensor]
    uses: Counter
    consumers: dict[str, list[Any]] = field(default_factory=dict)  # tensor -> onnx nodes reading it
    fused: set[str] = field(default_factory=set)  # onnx nodes consumed by a pattern
    # recurrent patterns: a time-major view of a batch-first tensor; per-direction final states
    time_major: dict[str, tuple[str, str]] = field(default_factory=dict)
    seq4: dict[str, tuple[str, str, bool]] = field(default_factory=dict)  # Y [T, dirs, N, H] (transposed?)
    states: dict[str, list[tuple[str, int, int]]] = field(default_factory=dict)  # Y_h -> [(node, dir, dirs)]
    state_part: dict[str, tuple[str, int, int]] = field(default_factory=dict)

    def add(self, type_id: str, onnx_name: str, params: dict[str, Any], inputs: list[str],
            weights: dict[str, np.ndarray] | None = None, outputs: tuple[str, ...] = ()) -> str:
        name = _node_name(onnx_name, type_id, self.graph)
        node = self.graph.add_node(type_id, params, name)
        for port, tensor in zip(node.input_ports, inputs, strict=True):
            src, sport = self.env[tensor]
            self.graph.connect(src, sport, node.id, port)
        for key, value in (weights or {}).items():
            self.tensors[f"{node.id}:{key}"] = torch.from_numpy(np.array(value, copy=True))
        for port, tensor in zip(node.output_ports, outputs, strict=False):
            self.env[tensor] = (node.id, port)
        return node.id

    def const(self, name: str) -> np.ndarray | None:
        return self.consts.get(name)

    def shape(self, name: str) -> list[Any] | None:
        return self.shapes.get(name)


def _node_name(onnx_name: str, type_id: str, graph: Graph) -> str:
    import re

    base = re.sub(r"^(node_|/)", "", onnx_name or "").replace("/", "_").strip("_") or type_id.lower()
    base = re.sub(r"[^A-Za-z0-9_.]", "_", base)[:40]
    return base if not graph.has_name(base) else graph.unique_name(f"{base}_")


def _load(path: Path) -> onnx.ModelProto:
    """Read the file (bounded; external data confined to its folder: see ``onnx_files``) and check it."""
    from .onnx_files import OnnxFileError, read_onnx

    try:
        model = read_onnx(path)
    except OnnxFileError as exc:
        raise OnnxImportFileError(str(exc), exc.file) from None
    initialized = {i.name for i in model.graph.initializer}
    for vi in model.graph.input:
        if vi.name not in initialized and not vi.type.tensor_type.HasField("shape"):
            raise OnnxImportError(f"{path}: input {vi.name!r} has no shape; the importer needs input shapes "
                                  "(re-export with shapes, or set them with onnx.tools.update_model_dims)")
    try:
        onnx.checker.check_model(model)
    except onnx.checker.ValidationError as exc:
        raise OnnxImportFileError(f"{path}: the model does not pass onnx.checker: {str(exc).splitlines()[0]}",
                                  str(path)) from None
    return model


@gc_paused()
def import_onnx(path: str | Path, allow_partial: bool = False) -> ImportResult:
    """Read ``path`` into a project (not yet saved; see :func:`write_import`)."""
    path = Path(path)
    model = _load(path)
    meta = {p.key: p.value for p in model.metadata_props}
    inits = {i.name: numpy_helper.to_array(i) for i in model.graph.initializer}
    result = _import_own(meta[PROJECT_KEY], inits, path) if PROJECT_KEY in meta else None
    if result is None:
        result = _import_ops(model, inits, path, allow_partial)
    result.source = path
    return result


def _import_own(doc: str, inits: dict[str, np.ndarray], path: Path) -> ImportResult | None:
    """A workbench export: the graph from metadata, weights by their state_dict names."""
    try:
        project = project_from_dict(json.loads(doc), str(path))
    except (WorkbenchError, ValueError):
        return None
    module = compile_graph(project.graph).module
    state = module.state_dict()
    tensors = {}
    for key, value in state.items():
        if key in inits and tuple(inits[key].shape) == tuple(value.shape):
            tensors[key] = torch.from_numpy(np.array(inits[key], copy=True)).to(value.dtype)
        elif key.endswith("num_batches_tracked"):
            tensors[key] = torch.zeros((), dtype=torch.long)
        else:
            return None  # weights not recoverable by name: read it op by op instead
    return ImportResult(project, tensors, lossless=True, notes=["lossless: a Neural Workbench export"])


def _infer_shapes(model: onnx.ModelProto, path: Path) -> dict[str, list[Any]]:
    try:
        inferred = onnx.shape_inference.infer_shapes(model, strict_mode=True, data_prop=True)
    except Exception as exc:
        raise OnnxImportError(f"{path}: shape inference failed: {str(exc).splitlines()[0]}") from None
    shapes: dict[str, list[Any]] = {}
    for vi in [*inferred.graph.input, *inferred.graph.value_info, *inferred.graph.output]:
        t = vi.type.tensor_type
        if t.HasField("shape"):
            shapes[vi.name] = [d.dim_value if d.HasField("dim_value") else (d.dim_param or "?") for d in t.shape.dim]
    return shapes


#: element types a Constant's tensor reads the same through numpy_helper as through the reference evaluator
_PLAIN_TYPES = {onnx.TensorProto.FLOAT, onnx.TensorProto.DOUBLE, onnx.TensorProto.FLOAT16, onnx.TensorProto.BOOL,
                onnx.TensorProto.INT8, onnx.TensorProto.INT16, onnx.TensorProto.INT32, onnx.TensorProto.INT64,
                onnx.TensorProto.UINT8, onnx.TensorProto.UINT16, onnx.TensorProto.UINT32, onnx.TensorProto.UINT64}


def _fold(node: onnx.NodeProto, consts: dict[str, np.ndarray], opset: list[Any]) -> list[np.ndarray]:
    """Evaluate a node whose inputs are all constants (shape arithmetic, Constant...)."""
    from onnx.reference import ReferenceEvaluator

    if (node.op_type == "Constant" and node.domain in ("", "ai.onnx") and len(node.attribute) == 1
            and node.attribute[0].name == "value" and node.attribute[0].t.data_type in _PLAIN_TYPES
            and node.attribute[0].t.data_location != onnx.TensorProto.EXTERNAL):
        # the commonest constant, read directly: a reference evaluator per node costs ~1 ms
        return [numpy_helper.to_array(node.attribute[0].t)]
    inputs = [i for i in node.input if i]
    graph = onnx.helper.make_graph(
        [node], "fold",
        [onnx.helper.make_tensor_value_info(i, onnx.helper.np_dtype_to_tensor_dtype(consts[i].dtype), consts[i].shape)
         for i in inputs],
        [onnx.helper.make_tensor_value_info(o, onnx.TensorProto.UNDEFINED, None) for o in node.output if o],
    )
    ref = ReferenceEvaluator(onnx.helper.make_model(graph, opset_imports=opset))
    return ref.run(None, {i: consts[i] for i in inputs})


def _import_ops(model: onnx.ModelProto, inits: dict[str, np.ndarray], path: Path, allow_partial: bool) -> ImportResult:
    from .onnx_ops import CONVERTERS, Unsupported

    shapes = _infer_shapes(model, path)
    graph = Graph()
    consts = dict(inits)
    uses: Counter = Counter(i for n in model.graph.node for i in n.input)
    consumers: dict[str, list[Any]] = {}
    for n in model.graph.node:
        for i in n.input:
            consumers.setdefault(i, []).append(n)
    ctx = Ctx(graph, consts, shapes, {}, {}, uses, consumers)
    init_names = set(inits)
    for vi in model.graph.input:
        if vi.name in init_names:
            continue
        dims = shapes.get(vi.name)
        if dims is None or not dims:
            raise OnnxImportError(f"{path}: input {vi.name!r} has no shape; the importer needs input shapes "
                                  "(re-export with shapes, or set them with onnx.tools.update_model_dims)")
        elem = vi.type.tensor_type.elem_type
        dtype = "int64" if elem in (onnx.TensorProto.INT64, onnx.TensorProto.INT32) else "float32"
        rest = [d if isinstance(d, int) and d > 0 else _symbol(d) for d in dims[1:]]
        node = graph.add_node("Input", {"shape": rest or [1], "dtype": dtype}, _node_name(vi.name, "Input", graph))
        ctx.env[vi.name] = (node.id, "y")
    unsupported: dict[str, list[str]] = {}
    stopped = False
    nodes = list(model.graph.node)
    shape_only = _shape_only_nodes(nodes, {o.name for o in model.graph.output})
    for k, n in enumerate(nodes):
        if n.name in ctx.fused:
            continue
        # constants first: a shape-only node may still produce a constant that a layer needs
        data_inputs = [i for i in n.input if i]
        if all(i in consts for i in data_inputs) and n.op_type not in ("RandomNormal", "RandomUniform"):
            try:
                for out, value in zip(n.output, _fold(n, consts, list(model.opset_import)), strict=False):
                    consts[out] = np.asarray(value)
                continue
            except Exception as exc:
                unsupported.setdefault(f"{n.op_type} (constant folding: {exc})", []).append(n.name)
                continue
        if k in shape_only:
            continue
        if n.op_type == "Shape" and n.input[0] in shapes and all(isinstance(d, int) for d in shapes[n.input[0]][1:]):
            continue  # only feeds shape arithmetic, which converters read from inferred shapes
        conv = CONVERTERS.get(n.op_type)
        if conv is None:
            unsupported.setdefault(n.op_type, []).append(n.name or n.output[0])
            if allow_partial:
                stopped = True
                break
            continue
        try:
            conv(ctx, n)
        except Unsupported as exc:
            unsupported.setdefault(f"{n.op_type} ({exc})", []).append(n.name or n.output[0])
            if allow_partial:
                stopped = True
                break
        except KeyError:
            # an input came from something we could not map (already listed), or a shape-only branch
            if any(i not in ctx.env and i not in consts for i in n.input if i):
                continue
            raise
    if unsupported and not allow_partial:
        listing = "; ".join(f"{op} x{len(names)} ({', '.join(names[:4])}{'...' if len(names) > 4 else ''})"
                            for op, names in sorted(unsupported.items()))
        raise OnnxImportError(f"{path}: {sum(len(v) for v in unsupported.values())} node(s) cannot be mapped onto "
                              f"catalogue layers: {listing}. Nothing was written (use --allow-partial to import "
                              "up to the first unsupported node)")
    notes = []
    for out in model.graph.output:
        if out.name in ctx.env:
            src, port = ctx.env[out.name]
            o = graph.add_node("Output", {}, _node_name(out.name, "Output", graph))
            graph.connect(src, port, o.id, "x")
    if stopped:
        notes.append("partial import: stopped at the first unsupported node; add Outputs where you need them")
    if not graph.outputs() and not stopped:
        raise OnnxImportError(f"{path}: no output of the model could be reached")
    for nid, pos in auto_layout(graph).items():
        graph.move(nid, pos)
    project = Project(graph, path.stem)
    tensors = _state_dict(graph, ctx.tensors)
    return ImportResult(project, tensors, lossless=False, unsupported=unsupported, notes=notes)


#: (op, input index) pairs that take a shape, not data
_SHAPE_INPUTS = {("Reshape", 1), ("Expand", 1), ("ConstantOfShape", 0), ("Tile", 1), ("Slice", 1), ("Slice", 2),
                 ("Slice", 3), ("Slice", 4), ("Unsqueeze", 1), ("Squeeze", 1), ("Range", 0), ("Range", 1),
                 ("Range", 2), ("LSTM", 5), ("LSTM", 6), ("GRU", 5)}
# (recurrent initial states are zeros built from the batch size; the LSTM converter checks they are not data)


def _shape_only_nodes(nodes: list[onnx.NodeProto], graph_outputs: set[str]) -> set[int]:
    """Indices of nodes whose results only ever feed shape inputs (Reshape targets, Expand shapes...).

    Converters read shapes from inference, so these computations (Shape -> Gather ->
    Concat on a symbolic batch) are skipped instead of being mapped.  Keyed by index:
    protobuf wrapper objects are recreated on access, so their id() is not stable.
    """
    readers: dict[str, list[tuple[int, int]]] = {}
    for k, n in enumerate(nodes):
        for i, name in enumerate(n.input):
            readers.setdefault(name, []).append((k, i))
    skip: set[int] = set()
    for k in range(len(nodes) - 1, -1, -1):
        outs = [o for o in nodes[k].output if o]
        if not outs or any(o in graph_outputs for o in outs):
            continue
        ok = True
        for o in outs:
            for reader, idx in readers.get(o, []):
                if (nodes[reader].op_type, idx) in _SHAPE_INPUTS or reader in skip:
                    continue
                ok = False
        if ok and any(readers.get(o) for o in outs):
            skip.add(k)
    return skip


def _symbol(d: Any) -> str:
    import re

    s = re.sub(r"\W", "_", str(d)) or "T"
    return s if s[0].isalpha() and s != "N" else f"T{s}"


def _state_dict(graph: Graph, raw: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Converter tensors (keyed by node id) -> the compiled module's state_dict keys."""
    if not graph.outputs():
        return {}
    compiled = compile_graph(graph)
    state = compiled.module.state_dict()
    node_of = {a: n for n, a in compiled.attr_of.items()}  # identifiers are unique
    out = {}
    for key, value in state.items():
        attr, _, pname = key.partition(".")
        nid = node_of[attr]
        t = raw.get(f"{nid}:{pname}")
        if t is None:
            if pname == "num_batches_tracked":
                t = torch.zeros((), dtype=torch.long)
            else:
                raise OnnxImportError(f'internal: no weights for "{graph.nodes[nid].name}" {pname}')
        if tuple(t.shape) != tuple(value.shape):
            raise OnnxImportError(f'weights of "{graph.nodes[nid].name}" {pname} have shape {list(t.shape)}, '
                                  f"the layer needs {list(value.shape)}")
        out[key] = t.to(value.dtype)
    return out


def _load_state(module: torch.nn.Module, tensors: dict[str, torch.Tensor]) -> None:
    """``module.load_state_dict(tensors, strict=True)``, one submodule at a time.

    torch's loader filters the whole dict once per child module; a compiled graph has a
    child per layer, so loading 10,000 layers that way is quadratic (31 s at 10k nodes).
    """
    own = module.state_dict(keep_vars=True)
    if own.keys() != tensors.keys() or any("." not in k or k.split(".", 1)[0] not in module._modules
                                           or v.shape != tensors[k].shape for k, v in own.items()):
        module.load_state_dict(tensors, strict=True)  # something does not fit: torch's error says what
        return
    parts: dict[str, dict[str, torch.Tensor]] = {}
    for key, value in tensors.items():
        attr, _, rest = key.partition(".")
        parts.setdefault(attr, {})[rest] = value
    for attr, part in parts.items():
        module._modules[attr].load_state_dict(part, strict=True)  # type: ignore[union-attr]


@gc_paused()
def write_import(result: ImportResult, project_path: str | Path) -> Path:
    """Save the project and its weights beside it (weights first, both atomic)."""
    project_path = Path(project_path)
    refuse_overwriting_inputs([("the project", project_path), ("its weights", project_path.with_suffix(".safetensors"))],
                              [("the model", result.source)])
    project = result.project
    project.name = project.name or project_path.stem
    if result.tensors:
        weights = project_path.with_suffix(".safetensors")
        holder = torch.nn.Module()
        compiled = compile_graph(project.graph).module
        _load_state(compiled, result.tensors)
        holder = compiled
        save_weights(holder, weights, {"source": "onnx import"})
        project.weights = weights.name
    return save_project(project, project_path)
