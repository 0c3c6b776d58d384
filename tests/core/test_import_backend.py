"""onnx's own backend test models (pytorch-converted, pytorch-operator, light) through the importer.

Each either imports equal, or is refused with the reason expected for it below (a regression in
either direction fails).  Equal means: the import's self-check passes (onnxruntime, on the model
upgraded by onnx.version_converter where its opset is too old), the imported module reproduces the
outputs shipped with the model (test_data_set_0), and, in the slow set, the product's own export
of the imported project computes the same under onnxruntime.  The 'light' models ship one constant
as every weight (any network of the right shape matches them), so they are checked as copies with
seeded random weights.
"""

from __future__ import annotations

import glob
import os
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch
from onnx import numpy_helper

from workbench.compiler import compile_graph
from workbench.importers.onnx_import import OnnxImportError, _load_state, import_onnx, write_import
from workbench.importers.selfcheck import check_import
from workbench.project import load_project

DATA = Path(os.path.dirname(onnx.__file__)) / "backend" / "test" / "data"
SHIPPED = sorted(glob.glob(str(DATA / "pytorch-converted" / "*" / "model.onnx"))
                 + glob.glob(str(DATA / "pytorch-operator" / "*" / "model.onnx")))
LIGHT = sorted(glob.glob(str(DATA / "light" / "*.onnx")))

#: models the catalogue cannot represent, and why (the reason must appear in the refusal)
REFUSED = {
    # the leading dimension is not a batch here, and read as one shared tensor the input feeds a layer
    # that has a batch dimension of its own (split and select act on the first dimension)
    "test_operator_chunk": "Split (it works across the batch dimension (axis 0)",
    "test_operator_index": "Squeeze (it works across the batch dimension (axis 0)",
    # integer arithmetic on the input would come out as float
    "test_operator_non_float_params": "Add (arithmetic on integer data with a constant",
}
#: imported since float64 Inputs, one-value-per-sample ([N]) Inputs and shared (not batched) Inputs exist
NEWLY_READ = {f"test_operator_{n}" for n in ("add_size1_broadcast", "add_size1_singleton_broadcast", "addconstant",
                                              "basic", "symbolic_override_nested", "view", "add_broadcast",
                                              "add_size1_right_broadcast", "mm", "addmm", "params")} | {
    "test_PoissonNLLLLoss_no_reduce"}
#: light models quick enough for the default suite; the others (3-17 s each) run with -m slow
_QUICK_LIGHT = {"light_squeezenet"}
_QUICK_ROUND_TRIPS = {"test_Conv2d_depthwise_padded", "test_GLU_dim", "test_operator_repeat", "test_PixelShuffle",
                      "test_operator_addconstant", "test_operator_basic", "test_operator_mm", "test_operator_addmm",
                      "test_operator_add_broadcast", "test_operator_params"}


def _name(path: str) -> str:
    return Path(path).parent.name if path.endswith("model.onnx") else Path(path).stem


def test_the_corpus_is_the_one_counted() -> None:
    names = [_name(p) for p in SHIPPED + LIGHT]
    assert len(names) == 126 and set(REFUSED) <= set(names) and NEWLY_READ <= set(names) - set(REFUSED)
    assert len(names) - len(REFUSED) == 123  # imported equal (all the others)


def _shipped_data(path: str) -> tuple[list[np.ndarray], list[np.ndarray]]:
    folder = Path(path).parent / "test_data_set_0"

    def read(prefix: str) -> list[np.ndarray]:
        tensors = []
        for f in sorted(folder.glob(f"{prefix}_*.pb"), key=lambda p: int(p.stem.split("_")[-1])):
            t = onnx.TensorProto()
            t.ParseFromString(f.read_bytes())
            tensors.append(numpy_helper.to_array(t))
        return tensors

    return read("input"), read("output")


def _run_imported(result, xs: list[np.ndarray]) -> list[np.ndarray]:
    compiled = compile_graph(result.project.graph)
    _load_state(compiled.module, result.tensors)
    with torch.no_grad():
        out = compiled.module.eval()(*[torch.from_numpy(np.ascontiguousarray(x)) for x in xs])
    return [o.numpy() for o in (out if isinstance(out, tuple) else (out,))]


def _assert_refused(path: str | Path, name: str) -> None:
    with pytest.raises(OnnxImportError) as info:
        import_onnx(path)
    message = str(info.value)
    assert REFUSED[name] in message, message
    assert message.endswith(f"(in {path})")  # the reason first, then the file


def _round_trip(path: str | Path, result, xs: list[np.ndarray], tmp: Path) -> None:
    from workbench.export.onnx_export import export_onnx

    write_import(result, tmp / "imported.json")
    export_onnx(load_project(tmp / "imported.json"), tmp / "again.onnx")
    reference = check_import(result).reference
    again = ort.InferenceSession(str(tmp / "again.onnx"), providers=["CPUExecutionProvider"])
    got = again.run(None, {i.name: x for i, x in zip(again.get_inputs(), xs, strict=True)})
    for a, b in zip(got, _run_imported(result, xs), strict=True):
        np.testing.assert_allclose(a, b, atol=1e-4, rtol=1e-3, err_msg=f"{path} (checked on {reference})")


@pytest.mark.parametrize("path", SHIPPED, ids=_name)
def test_shipped_model_imports_equal_or_is_refused_with_its_reason(path: str, tmp_path: Path) -> None:
    name = _name(path)
    if name in REFUSED:
        _assert_refused(path, name)
        return
    result = import_onnx(path)
    report = check_import(result)
    assert report.ok, report.text()
    xs, expected = _shipped_data(path)
    for got, want in zip(_run_imported(result, xs), expected, strict=True):
        scale = max(1.0, float(np.abs(want).max(initial=0)))
        np.testing.assert_allclose(got, want, atol=1e-4 * scale, rtol=1e-3)
    if name in _QUICK_ROUND_TRIPS:
        _round_trip(path, result, xs, tmp_path)


@pytest.mark.slow
@pytest.mark.parametrize("path", [p for p in SHIPPED if _name(p) not in REFUSED and _name(p) not in _QUICK_ROUND_TRIPS],
                         ids=_name)
def test_shipped_model_round_trips_through_the_products_export(path: str, tmp_path: Path) -> None:
    result = import_onnx(path)
    _round_trip(path, result, _shipped_data(path)[0], tmp_path)


def _random_copy(path: str, tmp: Path) -> Path:
    """The light model with seeded random weights (its shipped ones are all one value)."""
    model = onnx.load(path)
    rng = np.random.default_rng(0)
    for init in model.graph.initializer:
        a = numpy_helper.to_array(init)
        if a.dtype.kind == "f":
            init.CopyFrom(numpy_helper.from_array((rng.standard_normal(a.shape) * 0.1).astype(a.dtype), init.name))
    out = tmp / Path(path).name
    onnx.save(model, str(out))
    return out


@pytest.mark.parametrize("path", [pytest.param(p, id=_name(p), marks=[] if _name(p) in _QUICK_LIGHT else
                                               [pytest.mark.slow]) for p in LIGHT])
def test_light_model_with_random_weights_imports_equal(path: str, tmp_path: Path) -> None:
    copy = _random_copy(path, tmp_path)
    result = import_onnx(copy)
    report = check_import(result)
    assert report.ok, report.text()
    x = np.random.default_rng(1).standard_normal((1, 3, 224, 224)).astype(np.float32)
    session = ort.InferenceSession(str(copy), providers=["CPUExecutionProvider"])
    (want,) = session.run(None, {session.get_inputs()[0].name: x})
    (got,) = _run_imported(result, [x])
    np.testing.assert_allclose(got, want, atol=1e-4 * max(1.0, float(np.abs(want).max())), rtol=1e-3)


@pytest.mark.slow
@pytest.mark.parametrize("path", LIGHT, ids=_name)
def test_light_model_round_trips_through_the_products_export(path: str, tmp_path: Path) -> None:
    copy = _random_copy(path, tmp_path)
    x = np.random.default_rng(1).standard_normal((1, 3, 224, 224)).astype(np.float32)
    _round_trip(copy, import_onnx(copy), [x], tmp_path)
