"""Post-training quantization of the verified ONNX export with onnxruntime's tools.

- ``int8``: static int8 (QDQ, per-channel weights) calibrated on the project's own training split;
  models with recurrent or attention layers get dynamic int8 instead (their activations' ranges
  change with the sequence; onnxruntime quantizes their weights and the activations on the fly);
- ``dynamic``: dynamic int8 for any model;
- ``fp16``: half-precision weights and arithmetic (onnxruntime's converter), inputs and outputs
  kept float32 with Casts.

The export is checked, then its constants folded and its graph optimised (each step verified
against the export), then quantized; the result is measured on the validation split against the
float32 export (accuracy, size, onnxruntime latency at batch 1 and 64) and written atomically only
when it keeps within the user's limit on the accuracy drop.
"""

from __future__ import annotations

import contextlib
import json
import logging
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import onnx

from ..compiler import compile_graph
from ..export.onnx_export import PROJECT_KEY, export_inputs, export_onnx
from ..fileio import atomic_write_bytes, check_output_target, refuse_overwriting_inputs
from ..project import Project
from .evaluate import (
    EvalData,
    Latency,
    accuracy_drop,
    check_max_drop,
    evaluate,
    interleaved,
    latency_rows,
    load_eval_data,
    metric_rows,
    onnx_runner,
    ort_session,
    speed_note,
)
from .report import (
    Cancelled,
    CompressError,
    CompressReport,
    Measure,
    Progress,
    ProgressFn,
    ResultRefused,
    StopFn,
    never_stop,
    no_progress,
)

MODES = ("int8", "dynamic", "fp16")

#: layers whose activations are best quantized dynamically (recurrent, attention)
SEQUENCE_LAYERS = frozenset({"RNN", "LSTM", "GRU", "MultiheadAttention", "TransformerEncoderLayer",
                             "TransformerDecoderLayer", "CrossAttention"})

#: what dynamic quantization rewrites; the ONNX-standard Attention op (opset 23) is left out:
#: onnxruntime's quantizer mistakes it for its own contrib op and writes a model it cannot load
DYNAMIC_OPS = ["Conv", "MatMul", "Gemm", "LSTM", "Gather"]

#: metadata of the export that does not describe the compressed model (the embedded project would
#: make a re-import rebuild float32 layers from int8 tensors)
_DROPPED_META = {PROJECT_KEY, "onnx.infer", "onnx.quant.pre_process"}


def sequence_layers(project: Project) -> list[str]:
    """Nodes of recurrent or attention types, blocks included (``block1/lstm``)."""
    found: list[str] = []

    def walk(graph: Any, prefix: str, seen: frozenset[str]) -> None:
        for node in graph:
            if node.type in SEQUENCE_LAYERS:
                found.append(prefix + node.name)
            elif node.is_block and node.type in project.blocks.defs and node.type not in seen:
                walk(project.blocks.defs[node.type].graph, f"{prefix}{node.name}/", seen | {node.type})

    walk(project.graph, "", frozenset())
    return found


@contextlib.contextmanager
def _quiet() -> Iterator[None]:
    """onnxruntime's quantizer logs a warning for every shape tensor it leaves alone."""
    root = logging.getLogger()
    level = root.level
    root.setLevel(logging.ERROR)
    try:
        yield
    finally:
        root.setLevel(level)


class _Calibration:
    """onnxruntime's CalibrationDataReader over the training split (raw values, as the export reads)."""

    def __init__(self, data: EvalData, names: list[str], limit: int, batch: int = 64) -> None:
        self.batches = [dict(zip(names, data.onnx_inputs(inputs), strict=True))
                        for inputs, _ in data.batches("train", batch, limit)]
        self.count = sum(len(next(iter(b.values()))) for b in self.batches)
        self._it = iter(self.batches)

    def get_next(self) -> dict[str, np.ndarray] | None:
        return next(self._it, None)

    def rewind(self) -> None:
        self._it = iter(self.batches)


def _outputs(blob: bytes | str, data: EvalData, threads: int | None) -> list[np.ndarray]:
    session = ort_session(blob, threads)
    names = [i.name for i in session.get_inputs()]
    inputs, _ = data.batches("val", 64)[0]
    return session.run(None, dict(zip(names, data.onnx_inputs(inputs), strict=True)))


def _same_outputs(a: list[np.ndarray], b: list[np.ndarray]) -> bool:
    return len(a) == len(b) and all(x.shape == y.shape and np.allclose(x, y, atol=1e-4, rtol=1e-3)
                                    for x, y in zip(a, b, strict=True))


def _prepare(fp32: Path, tmp: Path, data: EvalData, threads: int | None, notes: list[str]) -> Path:
    """Fold constants (an LSTM's reordered gate weights become initializers the quantizer can see)
    and let onnxruntime optimise the graph (BatchNorm folded into the convolution before it); each
    step is kept only when its outputs equal the export's."""
    reference = _outputs(str(fp32), data, threads)
    current = fp32
    try:
        import onnxscript.optimizer

        folded = onnxscript.optimizer.optimize(onnx.load(str(fp32)), input_size_limit=1 << 28,
                                               output_size_limit=1 << 28)
        path = tmp / "folded.onnx"
        onnx.save(folded, str(path))
        if _same_outputs(reference, _outputs(str(path), data, threads)):
            current = path
        else:
            notes.append("constant folding changed the outputs; the export was quantized as it is")
    except Exception as exc:  # an optimiser failure only costs what it would have gained
        notes.append(f"constant folding failed ({type(exc).__name__}); the export was quantized as it is")
    from onnxruntime.quantization.shape_inference import quant_pre_process

    path = tmp / "optimized.onnx"
    try:
        with _quiet():
            # onnxruntime's symbolic shape inference fails on torch.export's Constant nodes; ONNX's own runs
            quant_pre_process(str(current), str(path), skip_symbolic_shape=True)
        if _same_outputs(reference, _outputs(str(path), data, threads)):
            return path
        notes.append("onnxruntime's graph optimisation changed the outputs; it was not used")
    except Exception as exc:
        notes.append(f"onnxruntime's pre-processing failed ({type(exc).__name__}); the graph was quantized "
                     "without it")
    return current


def _finish(model: onnx.ModelProto, meta: dict[str, Any]) -> bytes:
    """Drop what the tools left (inferred shapes, the embedded project, the exporter's per-node
    records of the PyTorch modules, which no longer describe the quantized nodes); say what was done."""
    del model.graph.value_info[:]
    for node in model.graph.node:
        del node.metadata_props[:]
        node.doc_string = ""
    used = {n.domain for n in model.graph.node} | {""}  # onnxruntime's pre-processing declares nine domains
    opsets = [o for o in model.opset_import if o.domain in used or o.domain == "ai.onnx"]
    del model.opset_import[:]
    model.opset_import.extend(opsets)
    keep = [p for p in model.metadata_props if p.key not in _DROPPED_META]
    del model.metadata_props[:]
    model.metadata_props.extend(keep)
    onnx.helper.set_model_props(model, {**{p.key: p.value for p in keep},
                                        "neural_workbench.compression": json.dumps(meta)})
    model.producer_name = "Neural Workbench"
    return model.SerializeToString()


def _fp16(src: Path) -> onnx.ModelProto:
    try:
        from onnxruntime.transformers.float16 import convert_float_to_float16
    except ImportError as exc:
        raise CompressError(f"fp16 needs onnxruntime's converter (onnxruntime.transformers.float16), which "
                            f"does not load here ({exc}); install onnxruntime with its transformers tools") from None
    with _quiet():
        return convert_float_to_float16(onnx.load(str(src)), keep_io_types=True)


def quantize(project: Project, out: str | Path, checkpoint: Path | None = None, mode: str = "int8",
             max_drop: float | None = None, calibration_samples: int = 1024, threads: int | None = None,
             progress: ProgressFn = no_progress, stop: StopFn = never_stop) -> CompressReport:
    """Quantize the project's verified ONNX export and write it to ``out`` (atomically).

    Args:
        checkpoint: the trained weights (default: the project's weights file).
        mode: ``int8`` (static, dynamic for recurrent and attention models), ``dynamic`` or ``fp16``.
        max_drop: refuse the result when validation accuracy falls by more than this many points.
        calibration_samples: training samples the static int8 ranges are calibrated on.
        threads: onnxruntime threads for the measurements (default: onnxruntime's, all cores;
            latency depends on it, and 1 measures steadily on a shared machine).
        stop: asked between steps; True cancels (nothing is written).

    Returns:
        The report (accuracy, sizes, latency before and after, notes).

    Raises:
        ResultRefused: the accuracy fell by more than ``max_drop`` (nothing written).
        Cancelled: ``stop`` said so (nothing written).
        CompressError, ExportError, DataError, WeightsError: with the reason.
    """
    if mode not in MODES:
        raise CompressError(f"mode: expected one of {', '.join(MODES)}, got {mode!r}")
    if threads is not None and threads < 1:
        raise CompressError(f"threads: expected a positive int, got {threads}")
    if calibration_samples < 1:
        raise CompressError(f"calibration_samples: expected a positive int, got {calibration_samples}")
    refuse_overwriting_inputs([("the quantized model", out)], export_inputs(project, checkpoint))
    check_output_target(Path(out))
    check_max_drop(project.training["task"], max_drop)
    notes: list[str] = []
    effective = mode
    seq = sequence_layers(project)
    if mode == "int8" and seq:
        effective = "dynamic"
        notes.append(f"recurrent or attention layers ({', '.join(seq[:4])}{'...' if len(seq) > 4 else ''}): dynamic "
                     "int8 used (weights int8, activations quantized at run time)")
    job = {"int8": "static int8 quantization", "dynamic": "dynamic int8 quantization",
           "fp16": "fp16 conversion"}[effective]

    def step(phase: str, message: str, fraction: float) -> None:
        if stop():
            raise Cancelled("cancelled by the user; nothing was written")
        progress(Progress(phase, message, fraction))

    step("data", "loading the project's data", 0.0)
    data = load_eval_data(project, compile_graph(project.graph))
    with tempfile.TemporaryDirectory(prefix="workbench-quantize-") as tmpdir:
        tmp = Path(tmpdir)
        step("export", "exporting to ONNX and verifying with onnxruntime", 0.05)
        fp32_path = tmp / "fp32.onnx"
        export = export_onnx(project, fp32_path, checkpoint=checkpoint)
        notes += [f"export: {n}" for n in export.notes]
        fp32_blob = fp32_path.read_bytes()
        step("prepare", "folding constants and optimising the graph", 0.3)
        prepared = _prepare(fp32_path, tmp, data, threads, notes)
        q_path = tmp / "quantized.onnx"
        meta: dict[str, Any] = {"mode": effective, "project": project.name, "weights": export.weights}
        if effective == "int8":
            from onnxruntime.quantization import CalibrationMethod, QuantFormat, QuantType, quantize_static

            names = [i.name for i in ort_session(str(prepared), threads).get_inputs()]
            reader = _Calibration(data, names, calibration_samples)
            step("calibrate", f"calibrating int8 ranges on {reader.count} training samples", 0.4)
            with _quiet():
                quantize_static(str(prepared), str(q_path), reader, quant_format=QuantFormat.QDQ, per_channel=True,
                                activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8,
                                calibrate_method=CalibrationMethod.MinMax)
            meta["calibration_samples"] = reader.count
            notes.append(f"calibrated on {reader.count} samples of the training split (min-max ranges); "
                         "QDQ format, weights int8 per channel, activations uint8")
            model = onnx.load(str(q_path))
        elif effective == "dynamic":
            from onnxruntime.quantization import QuantType, quantize_dynamic

            step("quantize", "quantizing weights to int8", 0.4)
            with _quiet():
                quantize_dynamic(str(prepared), str(q_path), weight_type=QuantType.QInt8,
                                 op_types_to_quantize=DYNAMIC_OPS)
            model = onnx.load(str(q_path))
        else:
            step("quantize", "converting to fp16", 0.4)
            model = _fp16(prepared)
        blob = _finish(model, meta)
        if effective != "fp16" and not any(n.op_type in ("QuantizeLinear", "DynamicQuantizeLinear", "ConvInteger",
                                                        "MatMulInteger", "DynamicQuantizeLSTM")
                                           for n in model.graph.node):
            raise CompressError(f"{job}: onnxruntime's quantizer found nothing to quantize in this model (no "
                                "convolution, matrix product or LSTM with constant weights)")
        step("evaluate", "measuring validation metrics before and after", 0.55)
        before_session, after_session = ort_session(fp32_blob, threads), ort_session(blob, threads)
        middle_session = ort_session(str(prepared), threads) if prepared != fp32_path else None
        before = evaluate(onnx_runner(before_session, data), data)
        after = evaluate(onnx_runner(after_session, data), data)
        report = CompressReport(job, notes=notes)
        report.rows += metric_rows(before, after, data.task)
        agree = _agreement(before_session, after_session, data)
        if agree is not None:
            report.rows.append(Measure("predictions equal to float32", "%", None, agree, "diff",
                                       "share of validation samples whose predicted class is unchanged"))
        report.rows.append(Measure("file size", "bytes", len(fp32_blob), len(blob), "ratio",
                                   "the verified float32 export vs the written file"))
        report.rows.append(Measure("weights", "bytes", _initializer_bytes(onnx.load_from_string(fp32_blob)),
                                   _initializer_bytes(model), "ratio", "tensors stored in the model"))
        if max_drop is not None and accuracy_drop(before, after) > max_drop:
            report.refused = (f"validation accuracy fell by {accuracy_drop(before, after):.2f} points "
                              f"({100 * before['accuracy']:.2f} % -> {100 * after['accuracy']:.2f} %), more than the "
                              f"limit of {max_drop:g}; nothing was written")
            raise ResultRefused(report)
        step("measure", "measuring onnxruntime latency at batch 1 and 64", 0.7)
        sessions = [s for s in (before_session, middle_session, after_session) if s is not None]
        report.rows += latency_rows(lambda b: _latency(sessions, data, b),
                                    what=f"onnxruntime CPU, {_threads(threads)}",
                                    middle="float32 after graph optimisation")
        report.notes.append(speed_note([r for r in report.rows if r.name.startswith("latency")]))
        if middle_session is not None:
            parts = [f"{a.after / b.after:.2f}x at {a.name.removeprefix('latency, ')}"  # type: ignore[operator]
                     for a, b in zip(report.rows, report.rows[1:], strict=False)
                     if a.name.startswith("latency") and b.name.startswith(a.name + ",")]
            report.notes.append(f"{effective} latency against the optimised float32 graph: {', '.join(parts)}")
        step("write", f"writing {out}", 0.95)
        atomic_write_bytes(out, blob)
        report.outputs.append(str(out))
    progress(Progress("done", "done", 1.0))
    return report


def _threads(threads: int | None) -> str:
    if threads is None:
        return "onnxruntime's default threads"
    return f"{threads} thread{'s' if threads > 1 else ''}"


def _agreement(a: Any, b: Any, data: EvalData) -> float | None:
    """Share of validation samples (in %) on which both models predict the same class."""
    if data.task not in ("classification", "distillation"):
        return None
    same = total = 0
    for inputs, _ in data.batches("val", 256):
        pa, pb = onnx_runner(a, data)(inputs).argmax(-1), onnx_runner(b, data)(inputs).argmax(-1)
        same += int((pa == pb).sum())
        total += pa.numel()
    return 100.0 * same / max(total, 1)


def _latency(sessions: list[Any], data: EvalData, batch: int) -> Latency:
    arrays = data.onnx_inputs(data.example(batch))
    runs = []
    for s in sessions:
        feed = dict(zip([i.name for i in s.get_inputs()], arrays, strict=True))
        runs.append(lambda s=s, feed=feed: s.run(None, feed))
    return interleaved(*runs)


def _initializer_bytes(model: onnx.ModelProto) -> int:
    total = 0
    for t in model.graph.initializer:
        total += len(t.raw_data) if t.raw_data else onnx.numpy_helper.to_array(t).nbytes
    return total
