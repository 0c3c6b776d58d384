"""Input element types and ranks beyond float32 images: a float64 Input makes the whole model
compute in float64 (compile, export, source, training agree); an empty shape is one value per
sample (the model takes ``[N]``)."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import onnxruntime as ort
import pytest
import torch
from torch import nn

from workbench.builder import GraphBuilder
from workbench.compiler import compile_graph
from workbench.errors import CompileError
from workbench.export.onnx_export import export_onnx
from workbench.export.python_source import export_python
from workbench.project import Project, load_project
from workbench.training import Trainer
from workbench.training.preflight import PreflightError
from workbench.weights import load_weights, read_checkpoint

SAMPLES = Path(__file__).resolve().parents[2] / "samples"


def linear_project(dtype: str) -> Project:
    b = GraphBuilder()
    x = b.input((4,), name="x", dtype=dtype)
    b.output(b.layer("Linear", x, name="fc", out_features=3), name="y")
    return Project(b.auto_layout(), "p")


def test_a_float64_input_makes_the_model_compute_in_float64_like_a_hand_written_double_model() -> None:
    compiled = compile_graph(linear_project("float64").graph)
    assert {p.dtype for p in compiled.module.parameters()} == {torch.float64}
    torch.manual_seed(0)
    reference = nn.Linear(4, 3).double()
    compiled.module.fc.load_state_dict(reference.state_dict())
    x = torch.randn(5, 4, dtype=torch.float64) * 1e3 + 1e-9
    y = compiled.module(x)
    assert y.dtype == torch.float64
    assert torch.equal(y, reference(x))
    # the same graph in float32 computes something else (the setting changes behaviour)
    single = compile_graph(linear_project("float32").graph).module
    single.fc.load_state_dict(reference.float().state_dict())
    assert single(x.float()).dtype == torch.float32
    assert not torch.equal(single(x.float()).double(), y)


def test_a_float64_model_exports_as_double_and_as_python_source_that_agree(tmp_path: Path) -> None:
    project = linear_project("float64")
    report = export_onnx(project, tmp_path / "m.onnx")
    assert report.checks and all(c["max_abs"] < 1e-12 for c in report.checks)  # verified against onnxruntime
    session = ort.InferenceSession(str(tmp_path / "m.onnx"), providers=["CPUExecutionProvider"])
    assert session.get_inputs()[0].type == "tensor(double)"
    x = np.random.default_rng(0).standard_normal((2, 4))
    (onnx_y,) = session.run(None, {session.get_inputs()[0].name: x})
    assert onnx_y.dtype == np.float64

    source = export_python(project, tmp_path / "model.py")
    spec = importlib.util.spec_from_file_location("exported_float64", source.source)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    model = getattr(module, source.class_name)().load_weights(source.weights).eval()
    assert {p.dtype for p in model.parameters()} == {torch.float64}
    compiled = compile_graph(project.graph).module
    load_weights(compiled, source.weights)
    with torch.no_grad():
        assert torch.equal(model(torch.from_numpy(x)), compiled(torch.from_numpy(x)))


def _digits_mlp(dtype: str) -> Project:
    project = load_project(SAMPLES / "digits_mlp.json")
    (node,) = project.graph.inputs()
    project.graph.set_param(node.id, "dtype", dtype)
    return project


def test_a_float64_model_trains_in_float64(tmp_path: Path) -> None:
    runs = {}
    for dtype in ("float32", "float64"):
        trainer = Trainer(_digits_mlp(dtype), {"epochs": 1, "seed": 0}, run_dir=tmp_path / dtype)
        runs[dtype] = trainer.run()
        assert runs[dtype]["status"] == "finished"
        state, _, _ = read_checkpoint(tmp_path / dtype / "checkpoints" / "last.safetensors")
        assert {t.dtype for t in state.values() if t.is_floating_point()} == {
            torch.float64 if dtype == "float64" else torch.float32}
    # the same seed in float64 is a different computation (rounding), with the same outcome to 1e-6
    assert runs["float64"]["final"]["loss"] != runs["float32"]["final"]["loss"]
    assert runs["float64"]["final"]["loss"] == pytest.approx(runs["float32"]["final"]["loss"], rel=1e-6)


def test_mixed_precision_on_a_float64_model_is_refused_at_the_input(tmp_path: Path) -> None:
    with pytest.raises(PreflightError, match=r'training\.precision: Input "[^"]+" is float64.*bf16'):
        Trainer(_digits_mlp("float64"), {"epochs": 1, "precision": "bf16"}, run_dir=tmp_path / "r").run()


def test_an_empty_shape_is_one_value_per_sample() -> None:
    b = GraphBuilder()
    x = b.input((), name="x")
    b.output(b.layer("Tanh", x), name="y")
    compiled = compile_graph(b.graph)
    assert compiled.inputs[0].shape == ("N",)
    x = torch.linspace(-2, 2, 7)
    assert torch.equal(compiled.module(x), torch.tanh(x))


def test_a_layer_that_needs_features_refuses_one_value_per_sample_with_its_name() -> None:
    b = GraphBuilder()
    x = b.input((), name="x")
    b.output(b.layer("Linear", x, name="fc", out_features=2), name="y")
    with pytest.raises(CompileError, match=r'Linear "fc".*\[N\]'):
        compile_graph(b.graph)


def shared_row_project() -> Project:
    b = GraphBuilder()
    x = b.input((3,), name="x")
    row = b.input((3,), name="row")
    b.graph.set_param(row.node, "batched", False)
    b.output(b.layer("Add", x, row, name="plus", broadcast=True), name="y")
    return Project(b.auto_layout(), "p")


def test_a_shared_input_is_one_tensor_for_every_sample_through_compile_export_and_source(tmp_path: Path) -> None:
    project = shared_row_project()
    compiled = compile_graph(project.graph)
    assert [s.shape for s in compiled.inputs] == [("N", 3), (3,)]
    x, row = torch.randn(5, 3), torch.tensor([1.0, 2.0, 3.0])
    assert torch.equal(compiled.module(x, row), x + row)
    export_onnx(project, tmp_path / "m.onnx")
    session = ort.InferenceSession(str(tmp_path / "m.onnx"), providers=["CPUExecutionProvider"])
    assert [[d if isinstance(d, int) else "sym" for d in i.shape] for i in session.get_inputs()] == [["sym", 3], [3]]
    (y,) = session.run(None, {"x": x.numpy(), "row": row.numpy()})
    np.testing.assert_allclose(y, (x + row).numpy(), atol=1e-6)
    # batched (the default), the same graph needs a row per sample
    project.graph.set_param(project.graph.by_name("row").id, "batched", True)
    assert [s.shape for s in compile_graph(project.graph).inputs] == [("N", 3), ("N", 3)]


def test_training_refuses_a_shared_input_naming_it(tmp_path: Path) -> None:
    project = _digits_mlp("float32")
    (node,) = project.graph.inputs()
    project.graph.set_params(node.id, {"shape": [1, 64], "batched": False})  # a graph that checks
    with pytest.raises(PreflightError, match=r'Input "[^"]+" is not batched.*turn its batched setting on'):
        Trainer(project, {"epochs": 1}, run_dir=tmp_path / "r").run()


def test_a_shared_input_needs_a_shape() -> None:
    b = GraphBuilder()
    x = b.input((), name="x")
    b.graph.set_param(x.node, "batched", False)
    b.output(b.layer("Tanh", x), name="y")
    with pytest.raises(CompileError, match=r'Input "x".*shared.*at least one'):
        compile_graph(b.graph)


def test_check_refuses_a_shared_input_as_training_does_when_there_is_data(tmp_path: Path) -> None:
    from workbench.cli import check_report

    project = _digits_mlp("float32")
    (node,) = project.graph.inputs()
    project.graph.set_params(node.id, {"shape": [1, 64], "batched": False})
    errors = check_report(project)["errors"]
    assert any('is not batched' in e["message"] and e["node"] == node.name for e in errors), errors
    project.data["dataset"] = "none"  # an imported model's: nothing to feed yet, so nothing refused
    assert not check_report(project)["errors"]
