"""ONNX -> an editable project.

Our own exports carry the project graph in their metadata and their weights under the node
names, so re-importing them is lossless.  Other models are read op by op: the model is
analysed once (``model.py``: shapes, constants, what is data), mapped onto catalogue layers by
the registered converters and recognisers (``mapping.py``, ``ops/``), its weights go to a
safetensors file beside the project, and the graph is laid out automatically.  Nothing in the
file is executed.  :func:`~workbench.importers.selfcheck.check_import` then compares the result
with the original under onnxruntime; ``workbench import`` and the GUI refuse a mismatch.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import onnx
import torch
from onnx import numpy_helper

from ..bulk import gc_paused
from ..compiler import Compiled, compile_graph
from ..errors import InputError, WorkbenchError
from ..fileio import refuse_overwriting_inputs
from ..graph import Graph
from ..layout import auto_layout
from ..project import Project, project_from_dict, save_project
from ..weights import save_weights
from .model import fold as _fold  # noqa: F401  (kept importable here: tests pin its fast path)
from .report import CheckReport

PROJECT_KEY = "neural_workbench.project"


class OnnxImportError(WorkbenchError):
    """The model cannot be imported; nothing was written."""


class OnnxImportFileError(OnnxImportError, InputError):
    """The file is not a readable, valid ONNX model (exit status 2); nothing was written."""

    def __init__(self, message: str, file: str | None = None) -> None:
        InputError.__init__(self, message, file)


@dataclass
class ImportResult:
    """A model read into a project (nothing written yet; see :func:`write_import`).

    Attributes:
        project: the project (graph laid out, no weights file yet).
        tensors: its weights by ``state_dict`` key.
        lossless: a Neural Workbench export read back from its metadata.
        unsupported: "Op (reason)" -> the nodes that could not be mapped (a partial import).
        notes: remarks for the user.
        source: the model file it came from (``write_import`` never writes over it).
        tensor_map: ONNX tensor -> (node id, port) computing it (what the self-check compares).
        origin: node id -> the ONNX node it came from.
        check: the self-check's report, once :func:`~workbench.importers.selfcheck.check_import` ran.
        model: the model read (what the self-check compares with).
        shared: model inputs read without a batch dimension (one tensor for every sample).
    """

    project: Project
    tensors: dict[str, torch.Tensor]
    lossless: bool
    unsupported: dict[str, list[str]] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    source: Path | None = None
    tensor_map: dict[str, tuple[str, str]] = field(default_factory=dict)
    origin: dict[str, str] = field(default_factory=dict)
    check: CheckReport | None = None
    model: onnx.ModelProto | None = field(default=None, repr=False)
    shared: frozenset[str] = frozenset()
    _compiled: tuple[str, Compiled] | None = field(default=None, repr=False, compare=False)

    def compiled(self) -> Compiled:
        """The project compiled, with :attr:`tensors` loaded (the self-check's and ``write_import``'s module).

        The import compiled the project already (to name and shape its weights); that module is
        reused while the project is unchanged since: on a large graph compiling costs about as
        much as the rest of the import.  Every call loads :attr:`tensors` again, so what a caller
        did to the weights does not reach the next one.
        """
        key = _fingerprint(self.project)
        if self._compiled is None or self._compiled[0] != key:
            self._compiled = (key, compile_graph(self.project.graph))
        compiled = self._compiled[1]
        _load_state(compiled.module, self.tensors)
        return compiled


def _fingerprint(project: Project) -> str:
    """What compiling ``project`` depends on (its graph and block definitions), as text."""
    return json.dumps([project.graph.to_dict(), project.blocks.to_dict()], default=repr)


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
            raise OnnxImportError(f"input {vi.name!r} has no shape; the importer needs input shapes (re-export "
                                  f"with shapes, or set them with onnx.tools.update_model_dims) (in {path})")
    try:
        onnx.checker.check_model(model)
    except onnx.checker.ValidationError as exc:
        raise OnnxImportFileError(f"{path}: the model does not pass onnx.checker: {str(exc).splitlines()[0]}",
                                  str(path)) from None
    return model


@gc_paused()
def import_onnx(path: str | Path, allow_partial: bool = False) -> ImportResult:
    """Read ``path`` into a project (not yet saved; see :func:`write_import`).

    Raises:
        OnnxImportFileError: not a readable, valid ONNX file.
        OnnxImportError: the model cannot be represented: every unsupported op listed by name and
            count, nodes named by their ONNX name or their index and op (``#12 Mul``).
    """
    path = Path(path)
    model = _load(path)
    meta = {p.key: p.value for p in model.metadata_props}
    result = None
    if PROJECT_KEY in meta:
        inits = {i.name: numpy_helper.to_array(i) for i in model.graph.initializer}
        result = _import_own(meta[PROJECT_KEY], inits, path)
    if result is None:
        result = _import_ops(model, path, allow_partial)
    if result._compiled is not None:  # keyed only now: nothing changes the project from here on
        result._compiled = (_fingerprint(result.project), result._compiled[1])
    result.source = path
    result.model = model
    return result


def _import_own(doc: str, inits: dict[str, np.ndarray], path: Path) -> ImportResult | None:
    """A workbench export: the graph from metadata, weights by their state_dict names."""
    try:
        project = project_from_dict(json.loads(doc), str(path))
    except (WorkbenchError, ValueError):
        return None
    compiled = compile_graph(project.graph)
    state = compiled.module.state_dict()
    tensors = {}
    for key, value in state.items():
        if key in inits and tuple(inits[key].shape) == tuple(value.shape):
            tensors[key] = torch.from_numpy(np.array(inits[key], copy=True)).to(value.dtype)
        elif key.endswith("num_batches_tracked"):
            tensors[key] = torch.zeros((), dtype=torch.long)
        else:
            return None  # weights not recoverable by name: read it op by op instead
    return ImportResult(project, tensors, lossless=True, notes=["lossless: a Neural Workbench export"],
                        _compiled=("", compiled))


def _listing(unsupported: dict[str, list[str]]) -> str:
    return "; ".join(f"{op} x{len(names)} ({', '.join(names[:4])}{'...' if len(names) > 4 else ''})"
                     for op, names in sorted(unsupported.items()))


def _import_ops(model: onnx.ModelProto, path: Path, allow_partial: bool) -> ImportResult:
    """Batch-first (every input's first dimension the batch); when that reading fails, once more with
    the inputs that cannot hold the same samples as the first read as shared (see ``shared_reading``)."""
    from .mapping import shared_reading

    try:
        result = _read_ops(model, path, False, frozenset())
    except OnnxImportError as exc:
        shared = shared_reading(model)
        if shared:
            try:
                result = _read_ops(model, path, False, shared)
            except OnnxImportError:
                pass
            else:
                names = ", ".join(repr(n) for n in sorted(shared))
                result.notes.append(f"read with {names} shared by every sample (no batch dimension): the model "
                                    "cannot be read with the batch first in every input")
                return result
        if not allow_partial or isinstance(exc, OnnxImportFileError):
            raise
        return _read_ops(model, path, True, frozenset())
    return result


def _read_ops(model: onnx.ModelProto, path: Path, allow_partial: bool, shared: frozenset[str]) -> ImportResult:
    from .mapping import MappingError, map_model
    from .model import Model, ModelError

    try:
        mapped = map_model(Model(model, path, shared), allow_partial)
    except (ModelError, MappingError) as exc:
        raise OnnxImportError(f"{exc} (in {path})") from None
    if mapped.unsupported and not allow_partial:
        count = sum(len(v) for v in mapped.unsupported.values())
        raise OnnxImportError(f"{count} node(s) cannot be mapped onto catalogue layers: {_listing(mapped.unsupported)}. "
                              f"Nothing was written (use --allow-partial to import what can be mapped) (in {path})")
    graph = mapped.graph
    if not graph.outputs() and not mapped.unsupported:
        raise OnnxImportError(f"no output of the model could be reached (in {path})")
    for nid, pos in auto_layout(graph).items():
        graph.move(nid, pos)
    project = Project(graph, path.stem)
    project.data["dataset"] = "none"  # the model came without its data: checking needs none, training asks
    tensors, compiled = _state_dict(graph, mapped.tensors, path)
    return ImportResult(project, tensors, lossless=False, unsupported=mapped.unsupported, notes=mapped.notes,
                        tensor_map=mapped.tensor_map, origin=mapped.origin, shared=shared,
                        _compiled=("", compiled) if compiled is not None else None)


def _state_dict(graph: Graph, raw: dict[str, torch.Tensor],
                path: Path) -> tuple[dict[str, torch.Tensor], Compiled | None]:
    """Converter tensors (keyed by node id) -> the compiled module's state_dict keys; and that module."""
    if not graph.outputs():
        return {}, None
    from ..errors import CompileError

    try:
        compiled = compile_graph(graph)
    except CompileError as exc:
        raise OnnxImportError(f"the mapped graph does not check: {exc} (in {path})") from None
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
    return out, compiled


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
        save_weights(result.compiled().module, weights, {"source": "onnx import"})
        project.weights = weights.name
    return save_project(project, project_path)
