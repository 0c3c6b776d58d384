"""ONNX export, verified against onnxruntime before anything is written.

The torch.export-based exporter is used first; the TorchScript exporter only
when it fails (the report says which).  The file is self-contained (no
external-data sidecar), written atomically, carries the project graph in its
metadata (so re-importing our own export is lossless) and no local paths.
"""

from __future__ import annotations

import contextlib
import io
import json
import logging
import re
import time
import warnings
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any

import numpy as np
import onnx
import torch

from .. import __version__
from ..compiler import Compiled, compile_graph
from ..fileio import atomic_write_bytes, refuse_overwriting_inputs
from ..layers.dims import INPUT_DTYPES
from ..onnxrt import cpu_session
from ..project import Project
from ..weights import apply_state, load_weights, read_checkpoint
from .errors import ExportError

PROJECT_KEY = "neural_workbench.project"
ATOL, RTOL = 1e-4, 1e-3


@dataclass
class ExportReport:
    path: Path
    exporter: str
    opset: int
    seconds: float
    checks: list[dict[str, Any]] = field(default_factory=list)
    weights: str = ""
    notes: list[str] = field(default_factory=list)

    @property
    def max_abs(self) -> float:
        return max((c["max_abs"] for c in self.checks), default=0.0)

    @property
    def max_rel(self) -> float:
        return max((c["max_rel"] for c in self.checks), default=0.0)

    def text(self) -> str:
        lines = [f"wrote {self.path} ({self.exporter} exporter, opset {self.opset}, {self.seconds:.1f} s)",
                 f"weights: {self.weights}"]
        for c in self.checks:
            lines.append(f"  onnxruntime vs PyTorch on {c['inputs']} (batch {c['batch']}): "
                         f"max abs diff {c['max_abs']:.2e}, max rel diff {c['max_rel']:.2e}")
        lines += [f"note: {n}" for n in self.notes]
        return "\n".join(lines)


@cache
def onnxruntime_max_opset() -> int:
    """The newest default-domain opset the installed onnxruntime loads (probed once)."""

    for opset in range(onnx.defs.onnx_opset_version(), 6, -1):
        node = onnx.helper.make_node("Identity", ["x"], ["y"])
        vi = onnx.helper.make_tensor_value_info
        graph = onnx.helper.make_graph([node], "probe", [vi("x", onnx.TensorProto.FLOAT, [1])],
                                       [vi("y", onnx.TensorProto.FLOAT, [1])])
        model = onnx.helper.make_model(graph, opset_imports=[onnx.helper.make_opsetid("", opset)])
        model.ir_version = min(model.ir_version, 10)
        try:
            cpu_session(model.SerializeToString(), quiet=4)
        except Exception:
            continue
        return opset
    return 7


def default_opset() -> int:
    from torch.onnx import _constants

    return min(_constants.ONNX_MAX_OPSET, onnxruntime_max_opset())


def export_inputs(project: Project, checkpoint: Path | None = None) -> list[tuple[str, Path | None]]:
    """The files an export reads: no output may be one of them (an export never destroys its source)."""
    return [("the project", project.path), ("the project's weights", project.weights_path()),
            ("the checkpoint", checkpoint)]


def model_with_weights(project: Project, checkpoint: Path | None = None) -> tuple[Compiled, str]:
    """Compile the project and load its weights (checkpoint, else the project's weights file)."""
    compiled = compile_graph(project.graph)
    if checkpoint is not None:
        tensors, _, _ = read_checkpoint(checkpoint)
        apply_state(compiled.module, tensors, str(checkpoint))
        return compiled, f"checkpoint {Path(checkpoint).name}"
    wp = project.weights_path()
    if wp is not None:
        load_weights(compiled.module, wp)
        return compiled, f"weights file {wp.name}"
    return compiled, "none (initial random weights: train the model or load weights first)"


def _dynamic_shapes(compiled: Compiled) -> tuple[dict[int, Any], ...]:
    dims: dict[str, Any] = {}
    out = []
    for spec in compiled.inputs:
        axes = {}
        for i, d in enumerate(spec.shape):
            if isinstance(d, str):
                if d not in dims:
                    dims[d] = torch.export.Dim(d if d != "N" else "batch", min=1, max=1 << 20)
                axes[i] = dims[d]
        out.append(axes)
    return tuple(out)


def _strip_local_info(model: onnx.ModelProto) -> None:
    """Remove stack traces and anything that could carry a local file path."""

    def clean(props: Any) -> None:
        keep = [p for p in props if "stack_trace" not in p.key and not re.search(r"(^|[\s'\"(])/[A-Za-z]", p.value)]
        del props[:]
        props.extend(keep)

    for node in model.graph.node:
        clean(node.metadata_props)
    for vi in [*model.graph.value_info, *model.graph.input, *model.graph.output]:
        clean(vi.metadata_props)
    clean(model.graph.metadata_props)
    model.doc_string = ""
    model.graph.doc_string = ""


def _export_bytes(compiled: Compiled, opset: int, example: tuple[torch.Tensor, ...],
                  output_names: list[str], legacy: bool = False) -> tuple[bytes, str, list[str]]:
    module = compiled.module.eval()
    names = [s.arg for s in compiled.inputs]
    notes: list[str] = []
    if legacy:
        return _export_legacy(compiled, module, opset, example, names, output_names), "TorchScript (legacy)", notes
    quiet = logging.getLogger("torch.onnx")
    level = quiet.level
    quiet.setLevel(logging.ERROR)  # it warns about every torchvision op it cannot find
    try:
        with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()):
            warnings.simplefilter("ignore")
            program = torch.onnx.export(module, example, dynamo=True, opset_version=opset, input_names=names,
                                        output_names=output_names, dynamic_shapes=_dynamic_shapes(compiled),
                                        external_data=False, verbose=False,
                                        optimize=False)  # keep BatchNorm and names: re-import recovers every weight
        return program.model_proto.SerializeToString(), "torch.export (dynamo)", notes
    except Exception as exc:
        first_line = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        notes.append(f"the torch.export-based exporter failed ({first_line[:200]}); used the TorchScript exporter")
    finally:
        quiet.setLevel(level)
    return _export_legacy(compiled, module, opset, example, names, output_names), "TorchScript (legacy)", notes


def _export_legacy(compiled: Compiled, module: torch.nn.Module, opset: int, example: tuple[torch.Tensor, ...],
                   names: list[str], output_names: list[str]) -> bytes:
    axes = {s.arg: {i: str(d) for i, d in enumerate(s.shape) if isinstance(d, str)} for s in compiled.inputs}
    axes.update({n: {0: "N"} for n, shape in zip(output_names, compiled.output_shapes, strict=True)
                 if shape and shape[0] == "N"})  # an output of shared inputs only has no batch
    buf = io.BytesIO()
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            torch.onnx.export(module, example, buf, dynamo=False, opset_version=min(opset, 20), input_names=names,
                              output_names=output_names, dynamic_axes=axes)
    except Exception as exc:
        raise ExportError(_locate(compiled, f"both ONNX exporters failed: {exc}")) from None
    return buf.getvalue()


def _locate(compiled: Compiled, message: str) -> str:
    """Name the node when the exporter's message mentions one of our submodules."""
    for attr, node in compiled.node_name_of_attr().items():
        if re.search(rf"\b{re.escape(attr)}\b", message):
            return f'node "{node}": {message}'
    return message


def _check_symbolic(model: onnx.ModelProto, compiled: Compiled) -> None:
    """A dimension meant to be dynamic that the exporter fixed is an error."""
    for vi, spec in zip(model.graph.input, compiled.inputs, strict=False):
        dims = vi.type.tensor_type.shape.dim
        for i, d in enumerate(spec.shape):
            if isinstance(d, str) and i < len(dims) and not dims[i].dim_param:
                raise ExportError(f'input "{spec.node}" dimension {i} ({d}) should be dynamic but the exporter '
                                  f"fixed it to {dims[i].dim_value}")


def _compare(session: Any, module: torch.nn.Module, inputs: tuple[torch.Tensor, ...], label: str) -> dict[str, Any]:
    with torch.no_grad():
        ref = module(*inputs)
    refs = [r.detach().numpy() for r in (ref if isinstance(ref, tuple) else (ref,))]  # a Parameter output keeps requires_grad
    feed = {i.name: x.numpy() for i, x in zip(session.get_inputs(), inputs, strict=True)}
    try:
        outs = session.run(None, feed)
    except Exception as exc:  # onnxruntime cannot run what the exporter wrote
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0][:300]
        raise ExportError(f"onnxruntime cannot run the exported model on {label}: {first}") from None
    max_abs = max_rel = 0.0
    for a, b in zip(outs, refs, strict=True):
        if a.shape != b.shape:
            raise ExportError(f"onnxruntime output shape {list(a.shape)} != PyTorch {list(b.shape)} on {label}")
        a64, b64 = a.astype(np.float64), b.astype(np.float64)
        # NaN in both (the log or sqrt of a negative) and equal infinities agree; a NaN on one side does not
        lone_nan = np.isnan(a64) != np.isnan(b64)
        if lone_nan.any():
            raise ExportError(f"onnxruntime disagrees with PyTorch on {label}: NaN in one but not the other "
                              f"at {int(lone_nan.sum())} of {a.size} values")
        with np.errstate(invalid="ignore"):  # inf - inf
            diff = np.where(np.isnan(a64) | (a64 == b64), 0.0, np.abs(a64 - b64))
        max_abs = max(max_abs, float(diff.max(initial=0)))
        max_rel = max(max_rel, float((diff / np.maximum(np.abs(b64), 1e-6)).max(initial=0)))
        if not np.allclose(a, b, atol=ATOL, rtol=RTOL, equal_nan=True):
            raise ExportError(f"onnxruntime disagrees with PyTorch on {label}: max abs diff {max_abs:.3e} "
                              f"(tolerance {ATOL} + {RTOL} x |value|)")
    return {"inputs": label, "batch": int(inputs[0].shape[0]), "max_abs": max_abs, "max_rel": max_rel}


def _dataset_inputs(project: Project, compiled: Compiled) -> torch.Tensor | None:
    if len(compiled.inputs) != 1:
        return None
    from ..data import DataError, fit_to_input, load_samples

    spec = compiled.inputs[0]
    try:
        samples = load_samples(project.data)
        x = fit_to_input(samples.x[:64], spec.shape[1:], project.data.get("layout", "auto"))
    except DataError:
        return None
    return x.to(INPUT_DTYPES[spec.dtype])


def export_onnx(project: Project, out: str | Path, checkpoint: Path | None = None, opset: int | None = None,
                verify: bool = True) -> ExportReport:
    """Export, check, verify against onnxruntime, then write ``out`` atomically.

    Raises:
        ExportError: with the reason (and the node, when the exporter names one); nothing is written.
    """

    from .preprocess import describe, input_standardization, with_input_standardization

    t0 = time.perf_counter()
    refuse_overwriting_inputs([("the ONNX file", out)], export_inputs(project, checkpoint))
    compiled, weights_note = model_with_weights(project, checkpoint)
    pre = input_standardization(project, compiled)
    if pre is not None:  # raw features in, as in the data file: the model repeats training's standardisation
        with_input_standardization(compiled, pre)
    module = compiled.module.eval()
    opset = opset or default_opset()
    if opset > onnxruntime_max_opset():
        raise ExportError(f"opset {opset} is newer than the installed onnxruntime supports "
                          f"({onnxruntime_max_opset()})")
    vocab = min((n.params["num_embeddings"] for n in project.graph if n.type == "Embedding"), default=2)
    torch.manual_seed(0)
    example = compiled.example_inputs(batch=2, seq=5, vocab=vocab)
    output_names = [re.sub(r"\W", "_", n) for n in compiled.outputs]
    pre_notes = [describe(pre)] if pre is not None else []

    def attempt(legacy: bool) -> tuple[bytes, ExportReport]:
        """Export with one exporter, check and verify; ExportError when anything fails."""
        nonlocal opset
        data, exporter, notes = _export_bytes(compiled, opset, example, output_names, legacy=legacy)
        model = onnx.load_from_string(data)
        _check_symbolic(model, compiled)  # torch.export fixes an LSTM/GRU's sequence length (TECH-NOTES 3)
        _strip_local_info(model)
        model.producer_name = "Neural Workbench"
        model.producer_version = __version__
        meta = {"project_name": project.name, PROJECT_KEY: json.dumps({**project.to_dict(), "weights": None})}
        classes = _class_names(project)
        if classes:
            meta["classes"] = json.dumps(classes)
        if pre is not None:
            meta["preprocessing"] = json.dumps(pre.describe())
        onnx.helper.set_model_props(model, meta)
        try:
            onnx.checker.check_model(model, full_check=True)
        except onnx.checker.ValidationError as exc:
            raise ExportError(f"the exported model does not pass onnx.checker: {str(exc).splitlines()[0]}") from None
        report = ExportReport(Path(out), exporter, min(opset, 20) if exporter.startswith("TorchScript") else opset,
                              0.0, weights=weights_note, notes=notes + pre_notes)
        blob = model.SerializeToString()
        if verify:
            try:
                session = cpu_session(blob)
            except Exception as exc:  # onnxruntime refuses what the exporter wrote
                first = (str(exc).strip().splitlines() or [type(exc).__name__])[0][:300]
                raise ExportError(_locate(compiled, f"onnxruntime cannot load the exported model: {first}")) from None
            for batch, seq in ((2, 5), (7, 9)):  # the second batch (and length) differ from the traced ones
                torch.manual_seed(batch)
                report.checks.append(_compare(session, module, compiled.example_inputs(batch, seq, vocab),
                                              f"random inputs{f' (length {seq})' if _has_seq(compiled) else ''}"))
            real = _dataset_inputs(project, compiled)
            if real is not None:
                for batch in (1, min(64, len(real))):
                    report.checks.append(_compare(session, module, (real[:batch],), "dataset samples"))
            else:
                report.notes.append("no dataset samples fit the Input; verified on random inputs only")
        return blob, report

    try:
        blob, report = attempt(legacy=False)
    except ExportError as first_failure:
        # The torch.export-based exporter is preferred; when what it wrote fails a check (a fixed
        # sequence length, a tensor onnxruntime rejects, a verification difference), the TorchScript
        # exporter gets its chance, and the report says why.
        try:
            blob, report = attempt(legacy=True)
        except ExportError:
            raise first_failure from None
        if not any("used the TorchScript exporter" in n for n in report.notes):
            report.notes.insert(0, f"the torch.export-based export failed a check ({first_failure}); "
                                   "used the TorchScript exporter instead")
    atomic_write_bytes(out, blob)
    report.seconds = time.perf_counter() - t0
    return report


def _has_seq(compiled: Compiled) -> bool:
    return any(isinstance(d, str) and d != "N" for s in compiled.inputs for d in s.shape)


def _class_names(project: Project) -> list[str]:
    if project.training.get("task") != "classification":
        return []
    from ..data import DataError, load_samples

    try:
        return list(load_samples(project.data).class_names)
    except DataError:
        return []
