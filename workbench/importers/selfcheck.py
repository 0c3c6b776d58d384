"""The import checks itself: the imported project, compiled, against the original model.

Both run on the same seeded inputs at two batch sizes (and two lengths for symbolic sequence
dims): onnxruntime runs the original; a model onnxruntime cannot run (an old opset) is first
upgraded with ``onnx.version_converter``, and when that fails too it runs on ``onnx.reference``.
A difference above the tolerance is located: the ONNX tensors the importer mapped onto layers
become extra outputs of the original, every layer's output an extra output of the project, and
the first ONNX node (in the model's order) whose output differs is named with the layer it became
and the size of the difference.
"""

from __future__ import annotations

import contextlib
import io
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import numpy as np
import onnx
import torch

from ..compiler import compile_graph
from ..onnxrt import cpu_session
from .onnx_import import ImportResult, _load_state
from .report import ATOL, RTOL, CheckReport, Divergence, Probe

# --------------------------------------------------------------------------- running the original


class _Reference:
    """Runs the original model: onnxruntime, upgraded when its opset is too old, else onnx.reference."""

    def __init__(self, model: onnx.ModelProto, quiet: int = 3) -> None:
        """``quiet``: onnxruntime's lowest severity logged (4: not even the errors of a failing run)."""
        self.model = model
        self.quiet = quiet
        self.label, self._run = self._runner(model)

    def _session(self, model: onnx.ModelProto) -> Any:
        # quiet: old opsets draw warnings on every session.  One thread (see _one_thread): with a pool,
        # onnxruntime's threads spin after each run and take the core our own forward then needs
        return cpu_session(model.SerializeToString(), threads=1, quiet=self.quiet)

    def _runner(self, model: onnx.ModelProto) -> tuple[str, Any]:
        errors = []
        try:
            session = self._session(model)
            return "onnxruntime", lambda feeds, outs=None: session.run(outs, feeds)
        except Exception as exc:
            errors.append(str(exc).splitlines()[0] if str(exc) else type(exc).__name__)
        opset = next((o.version for o in model.opset_import if o.domain in ("", "ai.onnx")), 0)
        for target in (13, 11):
            if opset >= target:
                continue
            try:
                upgraded = onnx.version_converter.convert_version(model, target)
                if opset < 7:
                    _per_channel_slopes(upgraded)
                upgraded_session = self._session(upgraded)
                self.model = upgraded
                return (f"onnxruntime, on the model upgraded from opset {opset} to {target} by onnx.version_converter",
                        lambda feeds, outs=None, s=upgraded_session: s.run(outs, feeds))
            except Exception as exc:
                errors.append(str(exc).splitlines()[0] if str(exc) else type(exc).__name__)
        from onnx.reference import ReferenceEvaluator

        evaluator = ReferenceEvaluator(model)
        return ("onnx.reference (onnxruntime cannot run this model: " + "; ".join(errors)[:200] + ")",
                lambda feeds, outs=None: evaluator.run(outs, feeds))

    def run(self, feeds: dict[str, np.ndarray], outputs: list[str] | None = None) -> list[np.ndarray]:
        with contextlib.redirect_stderr(io.StringIO()):
            return [np.asarray(v) for v in self._run(feeds, outputs)]

    def with_outputs(self, names: list[str]) -> _Reference:
        """The original with extra outputs (the intermediate tensors to compare)."""
        model = onnx.ModelProto()
        model.CopyFrom(self.model)
        try:
            inferred = onnx.shape_inference.infer_shapes(model)
            elems = {vi.name: vi.type.tensor_type.elem_type for vi in inferred.graph.value_info}
        except Exception:
            elems = {}
        have = {o.name for o in model.graph.output}
        model.graph.output.extend(onnx.helper.make_tensor_value_info(n, elems.get(n) or onnx.TensorProto.FLOAT, None)
                                  for n in names if n not in have)
        return _Reference(model, self.quiet)


def _per_channel_slopes(model: onnx.ModelProto) -> None:
    """Before opset 7 a PRelu slope of C values is per channel (dimension 1); from 7 on it broadcasts
    from the right.  The version converter leaves the slope as it was: give it its trailing 1s."""
    from onnx import numpy_helper

    ranks = {vi.name: len(vi.type.tensor_type.shape.dim)
             for vi in [*onnx.shape_inference.infer_shapes(model).graph.value_info, *model.graph.input]
             if vi.type.tensor_type.HasField("shape")}
    inits = {i.name: i for i in model.graph.initializer}
    for node in model.graph.node:
        if node.op_type != "PRelu" or node.input[1] not in inits or ranks.get(node.input[0], 0) < 3:
            continue
        slope = numpy_helper.to_array(inits[node.input[1]])
        if slope.ndim == 1 and slope.size > 1:
            shaped = slope.reshape((slope.size,) + (1,) * (ranks[node.input[0]] - 2))
            inits[node.input[1]].CopyFrom(numpy_helper.from_array(shaped, node.input[1]))
            for vi in model.graph.input:  # an old model lists its initializers as inputs too
                if vi.name == node.input[1]:
                    vi.type.tensor_type.shape.CopyFrom(onnx.helper.make_tensor_type_proto(
                        vi.type.tensor_type.elem_type, shaped.shape).tensor_type.shape)


def _free_batch(model: onnx.ModelProto, shared: frozenset[str] = frozenset()) -> onnx.ModelProto:
    """A copy whose inputs' first dimension is symbolic (a model exported at a fixed batch size).

    Its runner is quiet: a model that fixes its batch inside fails to run at another, which the
    report notes; onnxruntime would log that failure on the user's terminal too.
    """
    free = onnx.ModelProto()
    free.CopyFrom(model)
    initialized = {i.name for i in free.graph.initializer}
    for vi in free.graph.input:
        if vi.name not in initialized and vi.name not in shared and vi.type.tensor_type.shape.dim:
            vi.type.tensor_type.shape.dim[0].dim_param = "batch"
    del free.graph.value_info[:]
    for vi in free.graph.output:
        vi.type.tensor_type.ClearField("shape")
    return free


# --------------------------------------------------------------------------- comparing


def _difference(ours: np.ndarray, ref: np.ndarray) -> tuple[float, float, bool, str]:
    if ours.shape != ref.shape:
        return float("inf"), float("inf"), False, f"shape {list(ours.shape)} instead of {list(ref.shape)}"
    if ref.dtype.kind not in "fc" or ours.dtype.kind not in "fc":
        same = bool(np.array_equal(ours, ref))
        diff = 0.0 if same else float(np.abs(ours.astype(np.float64) - ref.astype(np.float64)).max())
        return diff, diff, same, "" if same else "integers differ"
    a, b = ours.astype(np.float64), ref.astype(np.float64)
    lone_nan = np.isnan(a) != np.isnan(b)
    if lone_nan.any():
        return float("inf"), float("inf"), False, f"NaN in one but not the other at {int(lone_nan.sum())} values"
    with np.errstate(invalid="ignore", over="ignore"):
        diff = np.where(np.isnan(a) | (a == b), 0.0, np.abs(a - b))
    finite = np.abs(b[np.isfinite(b)])
    scale = max(1.0, float(finite.max(initial=0.0)))
    max_abs = float(diff.max(initial=0.0))
    max_rel = float((diff / np.maximum(np.abs(b), 1e-6)).max(initial=0.0))
    ok = bool(np.all(diff <= ATOL * scale + RTOL * np.abs(np.nan_to_num(b, posinf=0, neginf=0))))
    return max_abs, max_rel, ok, ""


def _inputs(model: onnx.ModelProto, batch: int | None, lengths: dict[str, int], vocab: int,
            rng: np.random.Generator, shared: frozenset[str] = frozenset()) -> tuple[dict[str, np.ndarray], bool]:
    """Seeded inputs; the second value says whether a fixed batch size was overridden.  A shared
    input (read without a batch) keeps every dimension it has."""
    initialized = {i.name for i in model.graph.initializer}
    feeds: dict[str, np.ndarray] = {}
    overridden = False
    for vi in model.graph.input:
        if vi.name in initialized:
            continue
        t = vi.type.tensor_type
        dims = []
        for i, d in enumerate(t.shape.dim):
            if i == 0 and batch is not None and vi.name not in shared:
                overridden |= d.HasField("dim_value") and d.dim_value != batch
                dims.append(batch)
            elif d.HasField("dim_value") and d.dim_value > 0:
                dims.append(d.dim_value)
            else:
                dims.append(lengths.get(d.dim_param, 4) if i else 2)
        dtype = onnx.helper.tensor_dtype_to_np_dtype(t.elem_type)
        if dtype.kind == "f":
            feeds[vi.name] = rng.standard_normal(dims).astype(dtype)
        else:
            feeds[vi.name] = rng.integers(0, vocab, dims).astype(dtype)
    return feeds, overridden


def _vocab(result: ImportResult) -> int:
    sizes = [n.params.get("num_embeddings") or n.params.get("vocab_size") for n in result.project.graph
             if n.type in ("Embedding", "TokenPositionEmbedding")]
    return min([s for s in sizes if s] or [3])


def _ours(module: torch.nn.Module, feeds: dict[str, np.ndarray]) -> list[np.ndarray]:
    with torch.no_grad():
        out = module(*[torch.from_numpy(np.ascontiguousarray(v)) for v in feeds.values()])
    return [o.detach().numpy() for o in (out if isinstance(out, tuple) else (out,))]


def check_import(result: ImportResult, model: onnx.ModelProto | None = None) -> CheckReport:
    """Compare the imported project with the model it came from (``result.model`` unless given);
    the report is also kept as ``result.check``.

    The report says ``ok`` only when every probe matched; nothing raises for a mismatch (the caller
    decides: ``workbench import`` refuses unless ``--allow-mismatch``).
    """
    with _one_thread():
        report = _check(result, model if model is not None else result.model)
    result.check = report
    return report


@contextlib.contextmanager
def _one_thread() -> Iterator[None]:
    """torch on one thread meanwhile (the check runs in the importing process: CLI, GUI job).

    The probes are batches of 2 and 3: too little work per op to share out, and when the other
    cores are busy (a training run, the editor) threads that wait for one another cost far more:
    a 500-node model's two forwards took 1-3 s instead of 50 ms on a loaded 2-core machine.
    """
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(threads)


def _check(result: ImportResult, model: onnx.ModelProto | None) -> CheckReport:
    report = CheckReport()
    graph = result.project.graph
    if model is None:
        report.skipped = "the original model is not at hand"
        return report
    if result.unsupported:
        report.skipped = "a partial import (unsupported nodes left out) computes something else by design"
        return report
    if not graph.outputs():
        report.skipped = "the imported graph has no Output"
        return report
    initialized = {i.name for i in model.graph.initializer}
    inputs = [vi for vi in model.graph.input if vi.name not in initialized]
    symbols = sorted({d.dim_param for vi in inputs for i, d in enumerate(vi.type.tensor_type.shape.dim)
                      if i and d.dim_param})
    fixed_batch = all(vi.type.tensor_type.shape.dim[0].HasField("dim_value") for vi in inputs)
    vocab = _vocab(result)
    plan = [({s: 4 + 2 * k + i for i, s in enumerate(symbols)}, None if fixed_batch and k == 0 else batch)
            for k, batch in enumerate((2, 3))]  # (lengths, batch asked for) of each probe
    # onnxruntime builds its session (lets go of the GIL) while our side runs on the same inputs:
    # they are made from the model's own inputs, the reference's are checked to be the same below
    with ThreadPoolExecutor(1) as pool:
        pending = pool.submit(_Reference, model)
        module = result.compiled().module.eval()  # the import's own compile while the project is unchanged
        early = []
        for k, (lengths, asked) in enumerate(plan):
            feeds = _inputs(model, asked, lengths, vocab, np.random.default_rng(k), result.shared)[0]
            early.append((feeds, _attempt(_ours, module, feeds)))
        reference = pending.result()
    report.reference = reference.label
    free: _Reference | None = None
    runs: list[tuple[_Reference, int | None, dict[str, int]]] = []
    for k, batch in enumerate((2, 3)):
        lengths, asked = plan[k]
        feeds, overridden = _inputs(reference.model, asked, lengths, vocab, np.random.default_rng(k), result.shared)
        runner = reference
        try:
            if overridden:
                free = free or _Reference(_free_batch(reference.model, result.shared), quiet=4)
                runner = free
            refs = runner.run(feeds)
        except Exception as exc:
            if not overridden:
                report.skipped = f"the original model does not run ({str(exc).splitlines()[0][:200]})"
                return report
            refs = []
        if overridden and (not refs or any(r.ndim == 0 or r.shape[0] != batch for r in refs)):
            report.notes.append(f"the model fixes its batch size ({_batch_of(model)}): checked at that size only")
            continue
        ours = early[k][1] if _same(feeds, early[k][0]) else _attempt(_ours, module, feeds)
        if isinstance(ours, Exception):
            raise ours  # where it was raised: what running the project did before there was a report
        label = f"fixed shapes, draw {k + 1}" if set(feeds) <= result.shared else _label(feeds, lengths)
        report.probes.append(_probe(label, ours, refs))
        runs.append((runner, asked, lengths))
    if not report.ok and report.probes:
        index = next(i for i, p in enumerate(report.probes) if not p.ok)
        runner, batch, lengths = runs[index]
        report.divergence = _locate(result, model, runner, batch, lengths, vocab, index, report.probes[index].label)
    return report


def _attempt(fn: Callable[..., list[np.ndarray]], *args: Any) -> list[np.ndarray] | Exception:
    """``fn(*args)``, or what it raised (raised again only where the result is used)."""
    try:
        return fn(*args)
    except Exception as exc:
        return exc


def _same(a: dict[str, np.ndarray], b: dict[str, np.ndarray]) -> bool:
    return list(a) == list(b) and all(a[k].dtype == b[k].dtype and np.array_equal(a[k], b[k]) for k in a)


def _label(feeds: dict[str, np.ndarray], lengths: dict[str, int]) -> str:
    first = next(iter(feeds.values()))
    text = f"batch {first.shape[0]}" if first.ndim else "inputs"
    if lengths:
        text += ", " + ", ".join(f"{k}={v}" for k, v in lengths.items())
    return text


def _batch_of(model: onnx.ModelProto) -> int:
    initialized = {i.name for i in model.graph.initializer}
    return next((vi.type.tensor_type.shape.dim[0].dim_value for vi in model.graph.input
                 if vi.name not in initialized and vi.type.tensor_type.shape.dim), 0)


def _probe(label: str, ours: list[np.ndarray], refs: list[np.ndarray]) -> Probe:
    if len(ours) != len(refs):
        return Probe(label, float("inf"), float("inf"), False, f"{len(ours)} outputs instead of {len(refs)}")
    worst_abs = worst_rel = 0.0
    ok, problem = True, ""
    for a, b in zip(ours, refs, strict=True):
        max_abs, max_rel, good, why = _difference(a, b)
        worst_abs, worst_rel = max(worst_abs, max_abs), max(worst_rel, max_rel)
        if not good and ok:
            ok, problem = False, why
    return Probe(label, worst_abs, worst_rel, ok, problem)


def _locate(result: ImportResult, model: onnx.ModelProto, reference: _Reference, batch: int | None,
            lengths: dict[str, int], vocab: int, seed: int, label: str) -> Divergence | None:
    """Run both with every mapped tensor as an output and name the first that differs."""
    graph = result.project.graph
    order = {o: k for k, n in enumerate(model.graph.node) for o in n.output}
    names = sorted((t for t in result.tensor_map if t in order), key=order.__getitem__)
    if not names:
        return None
    probe = graph.copy()
    outputs: dict[tuple[str, str], str] = {}
    for t in names:
        where = result.tensor_map[t]
        if where not in outputs:
            o = probe.add_node("Output", {}, probe.unique_name("selfcheck_out"))
            probe.connect(where[0], where[1], o.id, "x")
            outputs[where] = o.name
    try:
        compiled = compile_graph(probe)
        _load_state(compiled.module, result.tensors)
    except Exception:
        return None
    feeds, _ = _inputs(reference.model, batch, lengths, vocab, np.random.default_rng(seed), result.shared)
    ours = dict(zip(compiled.outputs, _ours(compiled.module.eval(), feeds), strict=True))
    try:
        refs = dict(zip(names, reference.with_outputs(names).run(feeds, names), strict=True))
    except Exception:
        return None
    nodes = model.graph.node
    for t in names:
        a, b = ours[outputs[result.tensor_map[t]]], refs[t]
        max_abs, _, ok, why = _difference(a, b)
        if not ok:
            k = order[t]
            n = nodes[k]
            nid = result.tensor_map[t][0]
            return Divergence(n.name or f"#{k} {n.op_type}", t, graph.nodes[nid].name, label, max_abs, why)
    return None
