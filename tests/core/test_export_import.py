"""Export (ONNX verified by onnxruntime, PyTorch source, weights) and ONNX import round trips."""

from __future__ import annotations

import logging
import warnings
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch
from torch import nn

from workbench.builder import GraphBuilder
from workbench.compiler import compile_graph
from workbench.export.onnx_export import ExportError, export_onnx
from workbench.export.python_source import export_python
from workbench.importers.onnx_import import OnnxImportError, import_onnx, write_import
from workbench.importers.ops import TARGETS
from workbench.layers import REGISTRY
from workbench.project import Project, load_project
from workbench.shapes import infer
from workbench.weights import load_weights

SAMPLES = sorted((Path(__file__).resolve().parents[2] / "samples").glob("*.json"))
CNN_SAMPLE = Path(__file__).resolve().parents[2] / "samples" / "digits_cnn.json"
logging.getLogger("torch.onnx").setLevel(logging.ERROR)


def run(path: Path, *xs: np.ndarray) -> list[np.ndarray]:
    s = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    return s.run(None, {i.name: x for i, x in zip(s.get_inputs(), xs, strict=True)})


@pytest.mark.parametrize("sample", SAMPLES, ids=lambda p: p.stem)
def test_every_sample_exports_and_verifies(sample: Path, tmp_path: Path) -> None:
    project = load_project(sample)
    report = export_onnx(project, tmp_path / "m.onnx")
    assert report.checks and report.max_abs < 1e-4
    assert {c["batch"] for c in report.checks} >= {2, 7}
    model = onnx.load(str(tmp_path / "m.onnx"))
    onnx.checker.check_model(model)
    # names from the graph, a symbolic batch, metadata, no local paths
    compiled = compile_graph(project.graph)
    assert [i.name for i in model.graph.input] == [s.arg for s in compiled.inputs]
    assert model.graph.input[0].type.tensor_type.shape.dim[0].dim_param
    meta = {p.key: p.value for p in model.metadata_props}
    assert meta["project_name"] == project.name and "neural_workbench.project" in meta
    if project.training["task"] == "classification" and project.data["dataset"] == "digits":
        assert meta["classes"] == '["0", "1", "2", "3", "4", "5", "6", "7", "8", "9"]'
    blob = (tmp_path / "m.onnx").read_bytes()
    for local in (str(Path.home()), str(Path(__file__).resolve().parents[2]), "/tmp/"):
        assert local.encode() not in blob
    # loads with a batch size the exporter never saw
    x = compiled.example_inputs(batch=13)[0].numpy()
    outs = run(tmp_path / "m.onnx", x)
    assert len(outs) == len(compiled.outputs) and all(y.shape[0] == 13 for y in outs)
    assert not list(tmp_path.glob("*.data"))  # self-contained


def test_sequence_length_stays_dynamic(tmp_path: Path) -> None:
    b = GraphBuilder()
    x = b.input(("T", 6), name="seq")
    r = b.layer("LSTM", x, hidden_size=8)
    b.output(b.layer("Linear", b.port(r, "h"), out_features=3), name="logits")
    report = export_onnx(Project(b.graph, "seq"), tmp_path / "s.onnx")
    assert any(c["inputs"].endswith("(length 9)") for c in report.checks)
    dims = onnx.load(str(tmp_path / "s.onnx")).graph.input[0].type.tensor_type.shape.dim
    assert dims[0].dim_param and dims[1].dim_param
    for steps in (3, 11):
        (y,) = run(tmp_path / "s.onnx", np.random.randn(2, steps, 6).astype(np.float32))
        assert y.shape == (2, 3)


def test_trained_weights_are_exported(tmp_path: Path) -> None:
    project = load_project(CNN_SAMPLE)
    compiled = compile_graph(project.graph)
    with torch.no_grad():
        for p in compiled.module.parameters():
            p.fill_(0.01)
    from workbench.weights import save_weights

    project.path = tmp_path / "p.json"
    save_weights(compiled.module, tmp_path / "w.safetensors")
    project.weights = "w.safetensors"
    report = export_onnx(project, tmp_path / "m.onnx")
    assert "w.safetensors" in report.weights
    x = compiled.example_inputs(batch=3)[0]
    compiled.module.eval()
    with torch.no_grad():
        want = compiled.module(x).numpy()
    np.testing.assert_allclose(run(tmp_path / "m.onnx", x.numpy())[0], want, atol=1e-5)


def test_an_export_that_does_not_verify_writes_nothing(tmp_path: Path, monkeypatch) -> None:
    import workbench.export.onnx_export as ex

    monkeypatch.setattr(ex, "ATOL", -1.0)  # nothing can be within a negative tolerance
    with pytest.raises(ExportError, match="onnxruntime disagrees with PyTorch"):
        export_onnx(load_project(CNN_SAMPLE), tmp_path / "m.onnx")
    assert not list(tmp_path.iterdir())


@pytest.mark.parametrize("sample", SAMPLES, ids=lambda p: p.stem)
def test_python_source_round_trip(sample: Path, tmp_path: Path) -> None:
    project = load_project(sample)
    result = export_python(project, tmp_path / "model.py")
    text = result.source.read_text()
    imports = [ln for ln in text.splitlines() if ln.startswith(("import ", "from "))]
    assert imports == ["import torch", "import torch.nn as nn"]
    namespace: dict = {}
    exec(compile(text, str(result.source), "exec"), namespace)
    model = namespace[result.class_name]().load_weights(result.weights).eval()
    compiled = compile_graph(project.graph)
    load_weights(compiled.module, result.weights)
    compiled.module.eval()
    x = compiled.example_inputs(batch=4)
    with torch.no_grad():
        torch.testing.assert_close(model(*x), compiled.module(*x), rtol=0, atol=0)
    assert list(model.state_dict()) == list(compiled.module.state_dict())


# --------------------------------------------------------------------------- import


class CNN(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(3, 8, 3, padding=1)
        self.bn1 = nn.BatchNorm2d(8)
        self.conv2 = nn.Conv2d(8, 8, 3, padding=1)
        self.bn2 = nn.BatchNorm2d(8)
        self.pool = nn.MaxPool2d(2)
        self.gap = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(16, 5)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = torch.relu(self.bn1(self.conv1(x)))
        h = torch.relu(self.bn2(self.conv2(h)) + h)  # skip connection
        h = self.pool(h)
        return self.fc(torch.cat([self.gap(h).flatten(1), self.gap(h * h).flatten(1)], 1))


class RNN(nn.Module):
    def __init__(self, cell: type[nn.Module], bidirectional: bool, layers: int) -> None:
        super().__init__()
        self.rnn = cell(5, 7, num_layers=layers, batch_first=True, bidirectional=bidirectional)
        self.fc = nn.Linear(14 if bidirectional else 7, 3)
        self.bi = bidirectional

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        _, h = self.rnn(x)
        h = h[0] if isinstance(h, tuple) else h
        return self.fc(torch.cat([h[-2], h[-1]], 1) if self.bi else h[-1])


def export_torch(model: nn.Module, x: torch.Tensor, path: Path, optimize: bool = True) -> None:
    model.eval()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        prog = torch.onnx.export(model, (x,), dynamo=True, optimize=optimize, verbose=False,
                                 dynamic_shapes=({0: torch.export.Dim("batch")},))
    prog.save(str(path))


def round_trip(model: nn.Module, x: torch.Tensor, tmp: Path, optimize: bool = True) -> Project:
    with torch.no_grad():  # non-trivial BatchNorm statistics
        for m in model.modules():
            if isinstance(m, nn.BatchNorm2d):
                m.running_mean.uniform_(-1, 1)
                m.running_var.uniform_(0.5, 2)
    export_torch(model, x, tmp / "orig.onnx", optimize)
    result = import_onnx(tmp / "orig.onnx")
    assert not result.lossless
    write_import(result, tmp / "imported.json")
    project = load_project(tmp / "imported.json")
    export_onnx(project, tmp / "again.onnx")
    xs = torch.randn(5, *x.shape[1:]).numpy()
    np.testing.assert_allclose(run(tmp / "again.onnx", xs)[0], run(tmp / "orig.onnx", xs)[0], atol=1e-5, rtol=1e-4)
    return project


def test_cnn_with_batchnorm_and_skips_round_trips(tmp_path: Path) -> None:
    model = CNN()
    project = round_trip(model, torch.randn(2, 3, 8, 8), tmp_path, optimize=False)
    types = [n.type for n in project.graph]
    assert types.count("BatchNorm2d") == 2 and "Add" in types and "Concat" in types and "Multiply" in types
    assert infer(project.graph).total_params() == sum(p.numel() for p in model.parameters())


@pytest.mark.parametrize(("cell", "bi", "layers"), [(nn.LSTM, False, 1), (nn.LSTM, True, 2), (nn.GRU, False, 2),
                                                    (nn.GRU, True, 1)])
def test_recurrent_classifiers_round_trip(tmp_path: Path, cell: type[nn.Module], bi: bool, layers: int) -> None:
    model = RNN(cell, bi, layers)
    project = round_trip(model, torch.randn(2, 6, 5), tmp_path)
    assert [n.type for n in project.graph].count(cell.__name__) == layers
    assert infer(project.graph).total_params() == sum(p.numel() for p in model.parameters())


def test_our_own_export_reimports_losslessly(tmp_path: Path) -> None:
    project = load_project(CNN_SAMPLE)
    export_onnx(project, tmp_path / "m.onnx")
    result = import_onnx(tmp_path / "m.onnx")
    assert result.lossless
    assert result.project.graph.to_dict() == project.graph.to_dict()
    write_import(result, tmp_path / "back.json")
    back = load_project(tmp_path / "back.json")
    compiled = compile_graph(back.graph)
    load_weights(compiled.module, back.weights_path())
    original = compile_graph(project.graph)  # same seed-free init: compare via the ONNX file instead
    del original
    x = compiled.example_inputs(batch=3)[0]
    with torch.no_grad():
        np.testing.assert_allclose(compiled.module.eval()(x).numpy(), run(tmp_path / "m.onnx", x.numpy())[0],
                                   atol=1e-5)


def test_corrupt_and_truncated_files_give_clear_errors(tmp_path: Path) -> None:
    export_onnx(load_project(CNN_SAMPLE), tmp_path / "m.onnx")
    data = (tmp_path / "m.onnx").read_bytes()
    (tmp_path / "cut.onnx").write_bytes(data[: len(data) // 2])
    (tmp_path / "junk.onnx").write_bytes(b"not a model at all")
    for bad in ("cut.onnx", "junk.onnx"):
        with pytest.raises(OnnxImportError, match=r"not a valid ONNX file|does not pass onnx\.checker"):
            import_onnx(tmp_path / bad)
    with pytest.raises(OnnxImportError, match="cannot read the ONNX model: No such file"):
        import_onnx(tmp_path / "missing.onnx")


def _tiny_model(op: str, shape: list | None) -> onnx.ModelProto:
    vi = onnx.helper.make_tensor_value_info
    node = onnx.helper.make_node(op, ["x"], ["y"], name="the_node")
    graph = onnx.helper.make_graph([node], "g", [vi("x", onnx.TensorProto.FLOAT, shape)],
                                   [vi("y", onnx.TensorProto.FLOAT, shape)])
    return onnx.helper.make_model(graph, opset_imports=[onnx.helper.make_opsetid("", 17)])


def test_unsupported_operators_are_listed_and_nothing_is_written(tmp_path: Path) -> None:
    onnx.save(_tiny_model("Erf", ["N", 4]), str(tmp_path / "erf.onnx"))
    with pytest.raises(OnnxImportError, match=r"1 node\(s\) cannot be mapped.*Erf x1 \(the_node\)"):
        import_onnx(tmp_path / "erf.onnx")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["erf.onnx"]
    partial = import_onnx(tmp_path / "erf.onnx", allow_partial=True)
    assert partial.unsupported == {"Erf": ["the_node"]} and "partial import" in partial.notes[0]


def test_a_model_without_shapes_is_refused(tmp_path: Path) -> None:
    onnx.save(_tiny_model("Relu", None), str(tmp_path / "noshape.onnx"))
    with pytest.raises(OnnxImportError, match="input 'x' has no shape"):
        import_onnx(tmp_path / "noshape.onnx")


def test_every_converter_targets_a_catalogue_layer() -> None:
    assert TARGETS and TARGETS <= set(REGISTRY)


def test_cli_export_and_import(tmp_path: Path) -> None:
    import subprocess
    import sys

    def cli(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "workbench", *args], capture_output=True, text=True, timeout=300)

    r = cli("export", str(CNN_SAMPLE), "--onnx", str(tmp_path / "m.onnx"), "--python", str(tmp_path / "m.py"))
    assert r.returncode == 0, r.stderr
    assert "max abs diff" in r.stdout and (tmp_path / "m.py").exists()
    r = cli("import", str(tmp_path / "m.onnx"), "-o", str(tmp_path / "back.json"))
    assert r.returncode == 0 and "lossless" in r.stdout
    (tmp_path / "bad.onnx").write_bytes(b"\x00\x01")
    r = cli("import", str(tmp_path / "bad.onnx"), "-o", str(tmp_path / "nope.json"))
    assert r.returncode == 2 and "not a valid ONNX file" in r.stderr and "Traceback" not in r.stderr
    assert not (tmp_path / "nope.json").exists()


def test_cli_weights_round_trip(tmp_path: Path) -> None:
    import json
    import subprocess
    import sys

    project = tmp_path / "p.json"
    project.write_text(CNN_SAMPLE.read_text())

    def cli(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "workbench", *args], capture_output=True, text=True, timeout=300)

    assert cli("export", str(project), "--weights", str(tmp_path / "w.safetensors")).returncode == 0
    r = cli("weights", str(project), "--load", str(tmp_path / "w.safetensors"))
    assert r.returncode == 0, r.stderr
    assert json.loads(project.read_text())["weights"] == "p.safetensors"
    mlp = tmp_path / "mlp.json"
    mlp.write_text((CNN_SAMPLE.parent / "digits_mlp.json").read_text())
    r = cli("weights", str(mlp), "--load", str(tmp_path / "w.safetensors"))
    assert r.returncode == 1 and "does not fit the model: missing " in r.stderr and "fc1.weight" in r.stderr
    assert json.loads(mlp.read_text())["weights"] is None  # nothing changed on failure


def test_exporter_failures_name_the_node(tmp_path: Path, monkeypatch) -> None:
    """When both exporters refuse an operator, the message names the node it came from."""

    def refuse(*args, **kwargs):
        raise RuntimeError("Unsupported: ONNX export of operator aten::weird in module conv2 at opset 23")

    monkeypatch.setattr(torch.onnx, "export", refuse)
    with pytest.raises(ExportError, match=r'^node "conv2": both ONNX exporters failed: .*aten::weird'):
        export_onnx(load_project(CNN_SAMPLE), tmp_path / "m.onnx")
    assert not list(tmp_path.iterdir())
