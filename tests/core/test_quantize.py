"""Post-training quantization of the verified ONNX export (workbench.compress.quantize): the int8,
dynamic and fp16 models are written only when measured and within the user's limit, and the report's
numbers are what onnxruntime gives on the validation split."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch

from workbench.builder import GraphBuilder
from workbench.cli import main
from workbench.compiler import compile_graph
from workbench.compress.evaluate import load_eval_data
from workbench.compress.quantize import quantize, sequence_layers
from workbench.compress.report import Cancelled, CompressError, ResultRefused
from workbench.config import DATA_FIELDS, TRAINING_FIELDS, validate_section
from workbench.errors import OutputError
from workbench.project import Project, save_project
from workbench.ready_blocks import add_ready
from workbench.training import Trainer

DIGITS = {"dataset": "digits", "batch_size": 64}


def _trained(folder: Path, graph: Any, name: str, data: dict[str, Any] | None = None, epochs: int = 3,
             task: str = "classification") -> tuple[Project, Path]:
    folder.mkdir(parents=True, exist_ok=True)
    p = Project(graph, name, data=validate_section(DATA_FIELDS, {**DIGITS, **(data or {})}),
                training=validate_section(TRAINING_FIELDS, {"epochs": epochs, "lr": 0.01, "task": task}))
    save_project(p, folder / f"{name}.json")
    Trainer(p, run_dir=folder / "run").run()
    return p, folder / "run" / "checkpoints" / "last.safetensors"


def cnn() -> Any:
    b = GraphBuilder()
    x = b.input((1, 8, 8), name="image")
    x = b.layer("ReLU", b.layer("BatchNorm2d", b.layer("Conv2d", x, out_channels=8, padding=[1, 1], name="conv1")))
    x = b.layer("MaxPool2d", x, kernel_size=[2, 2])
    x = b.layer("Flatten", x)
    b.output(b.layer("Linear", x, out_features=10, name="classifier"), name="logits")
    return b.graph


@pytest.fixture(scope="module")
def trained_cnn(tmp_path_factory: pytest.TempPathFactory) -> tuple[Project, Path]:
    torch.manual_seed(0)
    return _trained(tmp_path_factory.mktemp("cnn"), cnn(), "cnn")


def _onnx_accuracy(path: Path, project: Project) -> float:
    """Validation accuracy of an ONNX file, computed here independently of the report."""
    data = load_eval_data(project, compile_graph(project.graph))
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    x, y = data.val
    out = session.run(None, {session.get_inputs()[0].name: x.numpy()})[0]
    return 100.0 * float((out.argmax(1) == y.numpy()).mean())


def test_static_int8_is_calibrated_measured_and_written(trained_cnn: tuple[Project, Path], tmp_path: Path) -> None:
    project, ckpt = trained_cnn
    out = tmp_path / "int8.onnx"
    events: list[Any] = []
    report = quantize(project, out, ckpt, "int8", max_drop=2.0, threads=1, progress=events.append)
    assert report.job == "static int8 quantization" and report.outputs == [str(out)]
    model = onnx.load(str(out))
    kinds = {n.op_type for n in model.graph.node}
    assert {"QuantizeLinear", "DequantizeLinear", "Conv"} <= kinds
    int8 = [t for t in model.graph.initializer if t.data_type == onnx.TensorProto.INT8]
    assert sum(int(np.prod(t.dims)) for t in int8) >= 8 * 9 + 10 * 128  # conv and classifier weights
    meta = {p.key: p.value for p in model.metadata_props}
    assert "neural_workbench.project" not in meta  # a re-import must not rebuild float layers from int8 tensors
    assert json.loads(meta["neural_workbench.compression"])["calibration_samples"] == 1024
    # the report's numbers are the files' and onnxruntime's
    assert report.row("file size").after == out.stat().st_size
    assert report.row("validation accuracy").after == pytest.approx(_onnx_accuracy(out, project), abs=1e-9)
    assert report.row("file size").change < 0.5 and report.row("weights").change < 0.35
    for batch in (1, 64):
        row = report.row(f"latency, batch {batch}")
        assert row.before > 0 and row.after > 0 and row.change is not None
    assert [e.phase for e in events][-1] == "done" and "calibrate" in [e.phase for e in events]


def test_calibration_samples_change_the_ranges(trained_cnn: tuple[Project, Path], tmp_path: Path) -> None:
    project, ckpt = trained_cnn
    scales = []
    for n in (2, 512):
        out = tmp_path / f"q{n}.onnx"
        report = quantize(project, out, ckpt, "int8", calibration_samples=n, threads=1)
        assert f"calibrated on {n} samples" in " ".join(report.notes)
        model = onnx.load(str(out))
        scales.append({t.name: onnx.numpy_helper.to_array(t) for t in model.graph.initializer
                       if t.name.endswith("_scale") and not t.dims})
    assert scales[0].keys() == scales[1].keys()
    assert any(not np.allclose(scales[0][k], scales[1][k]) for k in scales[0])
    with pytest.raises(CompressError, match="calibration_samples"):
        quantize(project, tmp_path / "x.onnx", ckpt, calibration_samples=0)


def _fragile_mlp(folder: Path) -> tuple[Project, Path]:
    """A trained MLP whose float32 predictions do not need int8's precision to break: a dead hidden
    unit (its ReLU is always 0) gets a classifier weight of 1000 in every row, which changes nothing
    in float32 but sets each row's int8 scale to 1000/127, rounding every other weight to 0."""
    from workbench.weights import apply_state, read_checkpoint, save_weights

    b = GraphBuilder()
    h = b.layer("ReLU", b.layer("Linear", b.input((64,), name="pixels"), out_features=32, name="hidden"))
    b.output(b.layer("Linear", h, out_features=10, name="classifier"), name="logits")
    torch.manual_seed(0)
    project, ckpt = _trained(folder, b.graph, "mlp")
    compiled = compile_graph(project.graph)
    apply_state(compiled.module, read_checkpoint(ckpt)[0], "ckpt")
    with torch.no_grad():
        compiled.module.hidden.weight[0] = 0
        compiled.module.hidden.bias[0] = -1
        compiled.module.classifier.weight[:, 0] = 1000
    return project, save_weights(compiled.module, folder / "fragile.safetensors")


def test_a_limit_on_the_accuracy_drop_refuses_and_writes_nothing(tmp_path: Path) -> None:
    project, ckpt = _fragile_mlp(tmp_path / "mlp")
    out = tmp_path / "int8.onnx"
    out.write_bytes(b"keep me")
    with pytest.raises(ResultRefused) as info:
        quantize(project, out, ckpt, "int8", max_drop=0.5, threads=1)
    report = info.value.report
    drop = report.row("validation accuracy").change
    assert drop is not None and drop < -0.5
    assert report.row("validation accuracy").before > 80  # the float32 model works
    assert "more than the limit of 0.5" in report.refused and "nothing was written" in report.refused
    assert out.read_bytes() == b"keep me" and report.outputs == []
    assert sorted(p.name for p in tmp_path.iterdir()) == ["int8.onnx", "mlp"]  # no temporary left beside it
    # without a limit the same result is written, and the report shows the drop
    written = quantize(project, tmp_path / "written.onnx", ckpt, "int8", threads=1)
    assert written.row("validation accuracy").change == pytest.approx(drop)
    assert _onnx_accuracy(tmp_path / "written.onnx", project) == pytest.approx(written.row("validation accuracy").after)


def test_fp16_keeps_float32_inputs_and_outputs(trained_cnn: tuple[Project, Path], tmp_path: Path) -> None:
    project, ckpt = trained_cnn
    out = tmp_path / "half.onnx"
    report = quantize(project, out, ckpt, "fp16", max_drop=0.5, threads=1)
    model = onnx.load(str(out))
    assert [i.type.tensor_type.elem_type for i in model.graph.input] == [onnx.TensorProto.FLOAT]
    assert [o.type.tensor_type.elem_type for o in model.graph.output] == [onnx.TensorProto.FLOAT]
    weights = [t for t in model.graph.initializer if len(t.dims) > 1]
    assert weights and all(t.data_type == onnx.TensorProto.FLOAT16 for t in weights)
    # against the model in float32: half precision keeps three decimal digits
    compiled = compile_graph(project.graph)
    from workbench.weights import apply_state, read_checkpoint

    apply_state(compiled.module, read_checkpoint(ckpt)[0], "ckpt")
    x = load_eval_data(project, compiled).val[0][:64]
    with torch.no_grad():
        ref = compiled.module.eval()(x).numpy()
    got = ort.InferenceSession(str(out), providers=["CPUExecutionProvider"]).run(None, {"image": x.numpy()})[0]
    assert np.allclose(got, ref, atol=0.02 * (1 + np.abs(ref).max()))
    assert report.row("weights").change == pytest.approx(0.5, abs=0.05)


def test_recurrent_models_get_dynamic_int8(tmp_path: Path) -> None:
    b = GraphBuilder()
    h = b.port(b.layer("LSTM", b.input((8, 8), name="rows"), hidden_size=16, name="lstm"), "h")
    b.output(b.layer("Linear", h, out_features=10, name="classifier"), name="logits")
    torch.manual_seed(0)
    project, ckpt = _trained(tmp_path / "lstm", b.graph, "lstm", {"layout": "rows"}, epochs=2)
    assert sequence_layers(project) == ["lstm"]
    out = tmp_path / "lstm8.onnx"
    report = quantize(project, out, ckpt, "int8", threads=1)
    assert report.job == "dynamic int8 quantization" and "dynamic int8 used" in report.notes[0]
    kinds = {n.op_type for n in onnx.load(str(out)).graph.node}
    assert "DynamicQuantizeLSTM" in kinds  # the LSTM's own weights are int8, not only the classifier's
    assert report.row("validation accuracy").after == pytest.approx(_onnx_accuracy(out, project), abs=1e-9)


def test_sequence_layers_are_found_inside_blocks() -> None:
    p = Project()
    ids = add_ready(p.blocks, ["EncoderBlock"])
    b = GraphBuilder(p.graph)
    x = b.layer("Linear", b.input((8, 8)), out_features=16)
    b.output(b.layer(ids["EncoderBlock"], x, name="enc"))
    found = sequence_layers(p)
    assert found and all(s.startswith("enc/") for s in found)


def test_refusals_name_the_problem_and_write_nothing(trained_cnn: tuple[Project, Path], tmp_path: Path) -> None:
    project, ckpt = trained_cnn
    with pytest.raises(OutputError, match="would overwrite the checkpoint"):
        quantize(project, ckpt, ckpt)
    with pytest.raises(CompressError, match="mode: expected one of int8, dynamic, fp16"):
        quantize(project, tmp_path / "a.onnx", ckpt, "int4")
    regression = Project(project.graph, "r", data=project.data,
                         training=validate_section(TRAINING_FIELDS, {"task": "regression"}))
    with pytest.raises(CompressError, match=r"max_drop: .* the regression task has no accuracy"):
        quantize(regression, tmp_path / "a.onnx", ckpt, max_drop=1.0)
    with pytest.raises(Cancelled):
        quantize(project, tmp_path / "a.onnx", ckpt, stop=lambda: True)
    assert not (tmp_path / "a.onnx").exists()


def test_cli_quantize(trained_cnn: tuple[Project, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    project, ckpt = trained_cnn
    out = tmp_path / "cli.onnx"
    code = main(["quantize", str(project.path), "--checkpoint", str(ckpt), "--mode", "dynamic", "-o", str(out),
                 "--threads", "1", "--json", "--quiet"])
    doc = json.loads(capsys.readouterr().out)
    assert code == 0 and out.is_file() and doc["job"] == "dynamic int8 quantization"
    assert {r["name"] for r in doc["rows"]} >= {"validation accuracy", "file size", "latency, batch 1",
                                                 "latency, batch 64"}
    refused = tmp_path / "refused.onnx"
    fragile, fragile_ckpt = _fragile_mlp(tmp_path / "mlp")
    code = main(["quantize", str(fragile.path), "--checkpoint", str(fragile_ckpt), "-o", str(refused), "--max-drop",
                 "0.5", "--threads", "1", "--quiet"])
    captured = capsys.readouterr()
    assert code == 1 and not refused.exists()
    assert "validation accuracy" in captured.out and "more than the limit" in captured.err
    with pytest.raises(SystemExit) as exit_info:
        main(["quantize", str(project.path), "-o", str(out), "--max-drop", "-1"])
    assert exit_info.value.code == 2 and "accuracy points >= 0" in capsys.readouterr().err
