"""CSV features: standardised with the training split's statistics only, the same standardisation inside
every export, and missing or non-finite values refused at load, naming the line and the column."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch

from workbench.builder import GraphBuilder
from workbench.compiler import compile_graph
from workbench.config import DATA_FIELDS, TRAINING_FIELDS, validate_section
from workbench.data import DataError, load_data, load_samples
from workbench.export.onnx_export import export_onnx
from workbench.export.preprocess import PreprocessingError
from workbench.export.python_source import export_python
from workbench.project import Project
from workbench.training import Trainer
from workbench.weights import apply_state, read_checkpoint

N = 60


def write_csv(path: Path) -> np.ndarray:
    """Features on very different scales, drifting along the file (so all rows and training rows differ)."""
    rng = np.random.default_rng(0)
    i = np.arange(N)
    feats = np.stack([1000 + 10 * i + rng.normal(0, 5, N), 0.001 * rng.normal(0, 1, N), rng.normal(0, 1, N) * i], 1)
    label = np.where(feats[:, 1] > 0, "up", "down")
    lines = ["big,tiny,growing,label"] + [f"{float(a)!r},{float(b)!r},{float(c)!r},{t}"
                                          for (a, b, c), t in zip(feats, label, strict=True)]
    path.write_text("\n".join(lines) + "\n")
    return feats


def train_split(cfg: dict) -> np.ndarray:
    """The training rows' indices, computed as documented: a seeded permutation, validation and test at the end."""
    perm = torch.randperm(N, generator=torch.Generator().manual_seed(cfg["seed"])).numpy()
    n_train = N - round(N * cfg["val_fraction"]) - round(N * cfg["test_fraction"])
    return perm[:n_train]


def csv_project(path: Path, **data: object) -> Project:
    b = GraphBuilder()
    x = b.input((3,), name="features")
    b.output(b.layer("Linear", b.layer("Tanh", b.layer("Linear", x, out_features=8, name="fc1")),
                     out_features=2, name="fc2"), name="scores")
    cfg = validate_section(DATA_FIELDS, {"dataset": "csv", "path": str(path), "val_fraction": 0.3,
                                         "test_fraction": 0.2, "seed": 5, "batch_size": 8, **data})
    return Project(b.graph, "csv model", data=cfg,
                   training=validate_section(TRAINING_FIELDS, {"epochs": 1, "lr": 0.05}))


def test_statistics_come_from_the_training_rows_only(tmp_path: Path) -> None:
    feats = write_csv(tmp_path / "d.csv")
    project = csv_project(tmp_path / "d.csv")
    data = load_data(project.data, (3,))
    rows = train_split(project.data)
    mean, std = feats[rows].mean(0), feats[rows].std(0, ddof=1)
    assert data.preprocess is not None
    np.testing.assert_allclose(data.preprocess.mean.numpy(), mean, rtol=1e-6)
    np.testing.assert_allclose(data.preprocess.std.numpy(), std, rtol=1e-5)
    assert abs(feats.mean(0)[0] - mean[0]) > 1.0  # all rows would have given another mean
    np.testing.assert_allclose(data.train.tensors[0].numpy(), (feats[rows] - mean) / std, rtol=1e-4, atol=1e-5)
    val_rows = torch.randperm(N, generator=torch.Generator().manual_seed(5)).numpy()[len(rows) : len(rows) + 18]
    np.testing.assert_allclose(data.val.tensors[0].numpy(), (feats[val_rows] - mean) / std, rtol=1e-4, atol=1e-5)
    assert abs(float(data.val.tensors[0][:, 0].mean())) > 0.05  # held-out rows are not re-centred on themselves


def test_exports_standardise_raw_rows_like_training(tmp_path: Path) -> None:
    feats = write_csv(tmp_path / "d.csv")
    project = csv_project(tmp_path / "d.csv")
    Trainer(project, {}, run_dir=tmp_path / "run").run()
    ckpt = tmp_path / "run" / "checkpoints" / "last.safetensors"
    rows = train_split(project.data)
    standardised = ((feats - feats[rows].mean(0)) / feats[rows].std(0, ddof=1)).astype(np.float32)
    raw = feats.astype(np.float32)
    compiled = compile_graph(project.graph)
    apply_state(compiled.module, read_checkpoint(ckpt)[0], "checkpoint")
    with torch.no_grad():
        want = compiled.module.eval()(torch.from_numpy(standardised)).numpy()

    report = export_onnx(project, tmp_path / "m.onnx", checkpoint=ckpt)
    session = ort.InferenceSession(str(tmp_path / "m.onnx"), providers=["CPUExecutionProvider"])
    got = session.run(None, {session.get_inputs()[0].name: raw})[0]
    np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-5)
    assert any("standardises its input" in n for n in report.notes)
    meta = {p.key: p.value for p in onnx.load(str(tmp_path / "m.onnx")).metadata_props}
    described = json.loads(meta["preprocessing"])["standardize"]
    np.testing.assert_allclose(described["mean"], feats[rows].mean(0), rtol=1e-6)

    result = export_python(project, tmp_path / "model.py", checkpoint=ckpt)
    namespace: dict = {}
    exec(compile(result.source.read_text(), str(result.source), "exec"), namespace)
    model = namespace[result.class_name]().load_weights(result.weights).eval()
    with torch.no_grad():
        np.testing.assert_allclose(model(torch.from_numpy(raw)).numpy(), want, rtol=1e-5, atol=1e-6)


def test_export_without_the_data_says_why_and_writes_nothing(tmp_path: Path) -> None:
    write_csv(tmp_path / "d.csv")
    project = csv_project(tmp_path / "d.csv")
    (tmp_path / "d.csv").unlink()
    out = tmp_path / "out"
    out.mkdir()
    with pytest.raises(PreprocessingError, match=r"trained on standardised features.*CSV file not found"):
        export_onnx(project, out / "m.onnx")
    with pytest.raises(PreprocessingError, match="trained on standardised features"):
        export_python(project, out / "m.py")
    assert not list(out.iterdir())


@pytest.mark.parametrize(("cell", "message"), [
    ("nan", r"line 5, column 'b': 'nan' is not a finite number"),
    ("-inf", r"line 5, column 'b': '-inf' is not a finite number"),
    ("", r"line 5, column 'b': '' is empty \(missing values are not supported"),
    ("  ", r"line 5, column 'b': '  ' is empty"),
])
def test_missing_or_non_finite_features_are_refused_at_load(tmp_path: Path, cell: str, message: str) -> None:
    # a blank line (3) must not shift the reported line numbers
    (tmp_path / "bad.csv").write_text(f"a,b,t\n1,2,x\n\n3,4,y\n5,{cell},x\n")
    with pytest.raises(DataError, match=rf"bad.csv, {message}"):
        load_samples(validate_section(DATA_FIELDS, {"dataset": "csv", "path": str(tmp_path / "bad.csv")}))


@pytest.mark.parametrize("cell", ["nan", "", "inf"])
def test_missing_targets_are_refused_at_load(tmp_path: Path, cell: str) -> None:
    rows = ["a,y"] + [f"{i},{i * 0.5}" for i in range(30)]
    rows[7] = f"6,{cell}"
    (tmp_path / "r.csv").write_text("\n".join(rows))
    with pytest.raises(DataError, match=rf"r.csv, line 8, column 'y': the target '{cell}' is missing or not finite"):
        load_samples(validate_section(DATA_FIELDS, {"dataset": "csv", "path": str(tmp_path / "r.csv")}))


def test_training_on_a_csv_with_nan_is_refused_before_the_first_step(tmp_path: Path) -> None:
    write_csv(tmp_path / "d.csv")
    text = (tmp_path / "d.csv").read_text().splitlines()
    text[10] = "nan," + text[10].split(",", 1)[1]
    (tmp_path / "d.csv").write_text("\n".join(text))
    events: list[dict] = []
    with pytest.raises(DataError, match=r"d.csv, line 11, column 'big': 'nan' is not a finite number"):
        Trainer(csv_project(tmp_path / "d.csv"), {}, run_dir=tmp_path / "r", listeners=[events.append]).run()
    assert not events
