"""Pre-flight: what training would refuse after its first batch, check reports first (located)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from workbench.builder import GraphBuilder
from workbench.cli import check_report
from workbench.compiler import compile_graph
from workbench.config import DATA_FIELDS, TRAINING_FIELDS, validate_section
from workbench.errors import CompileError, WorkbenchError
from workbench.project import Project, load_project, save_project
from workbench.training import Control, Trainer
from workbench.training.preflight import DataInfo, PreflightError, preflight

SAMPLES = Path(__file__).resolve().parents[2] / "samples"


def project_of(b: GraphBuilder, data: dict | None = None, training: dict | None = None) -> Project:
    return Project(b.graph, "p", "", validate_section(DATA_FIELDS, data or {}),
                   validate_section(TRAINING_FIELDS, training or {}))


def one_step(project: Project, tmp: Path) -> dict:
    control = Control()
    control.stop.set()
    return Trainer(project, {"epochs": 1}, run_dir=tmp / "run", control=control).run()


def conv_net(out: int = 16) -> GraphBuilder:
    """The issue's case: an Output of [N, out, 6, 64] where 10 classes are expected."""
    b = GraphBuilder()
    x = b.input((1, 8, 8), name="image")
    x = b.layer("Conv2d", x, out_channels=out, kernel_size=[3, 1], name="conv")
    b.output(b.layer("Upsample", x, scale_factor=8, name="up"), name="logits")
    return b


def test_classification_output_that_does_not_fit_the_classes_is_refused_before_training(tmp_path: Path) -> None:
    project = project_of(conv_net())
    errors = check_report(project)["errors"]
    assert len(errors) == 1 and errors[0]["node"] == "logits"
    assert "classification needs the Output to be [N, 10], got [N, 16, 48, 64]" in errors[0]["message"]
    with pytest.raises(PreflightError) as info:
        one_step(project, tmp_path)
    assert info.value.node == "logits"
    assert not (tmp_path / "run").exists()


def test_classes_count_and_the_fix() -> None:
    b = GraphBuilder()
    b.output(b.layer("Linear", b.layer("Flatten", b.input((1, 8, 8))), out_features=16, name="head"), name="out")
    [err] = check_report(project_of(b))["errors"]
    assert "has 10 classes but the Output gives 16 values per sample" in err["message"]
    assert "out_features to 10" in err["message"] and err["node"] == "out"


def test_input_that_does_not_fit_the_samples() -> None:
    b = GraphBuilder()
    b.output(b.layer("Linear", b.input((65,), name="pixels"), out_features=10))
    [err] = check_report(project_of(b))["errors"]
    assert err["node"] == "pixels" and err["param"] == "shape"
    assert "gives samples of shape [1, 8, 8] (64 values), but the Input expects [65]" in err["message"]


def test_language_model_output_needs_steps_and_vocabulary() -> None:
    project = load_project(SAMPLES / "char_language_model.json")
    head = next(n for n in project.graph if n.type == "Linear")
    project.graph.set_param(head.id, "out_features", 7)
    [err] = check_report(project)["errors"]
    steps = project.data["seq_len"]
    assert f"a language model needs the Output to be [N, {steps}, " in err["message"]
    assert f"got [N, {steps}, 7]" in err["message"] and err["node"] == "logits"


def test_regression_target_shape() -> None:
    b = GraphBuilder()
    b.output(b.layer("Linear", b.input((8,)), out_features=3), name="y")
    project = project_of(b, {"dataset": "synthetic_regression"}, {"task": "regression"})
    [err] = check_report(project)["errors"]
    assert err["node"] == "y" and "[1] per sample (1 values), got [N, 3] (3 values)" in err["message"]


def test_symbolic_length_bound_to_the_data_checks_max_len() -> None:
    """A learned position table shorter than the text windows: an index error on the first batch."""
    b = GraphBuilder()
    x = b.input(("T",), dtype="int64", name="chars")
    x = b.layer("TokenPositionEmbedding", x, vocab_size=100, max_len=8, embedding_dim=8, name="embed")
    b.output(b.layer("Linear", x, out_features=41, name="head"))
    project = project_of(b, {"dataset": "text"}, {"task": "language_model"})
    errors = check_report(project)["errors"]
    assert any(e["node"] == "embed" and "max_len=8 is shorter than the sequence length 32" in e["message"]
               for e in errors), errors


def test_token_ids_beyond_the_vocabulary() -> None:
    project = load_project(SAMPLES / "char_language_model.json")
    embed = next(n for n in project.graph if n.type in ("Embedding", "TokenPositionEmbedding"))
    key = "num_embeddings" if embed.type == "Embedding" else "vocab_size"
    project.graph.set_param(embed.id, key, 5)
    errors = check_report(project)["errors"]
    assert any(e["node"] == embed.name and e["param"] == key and "holds ids from 0 to" in e["message"]
               for e in errors), errors


def test_floats_into_an_embedding_and_ids_into_a_linear_are_compile_errors() -> None:
    b = GraphBuilder()
    x = b.layer("Embedding", b.input((8,), name="pixels"), num_embeddings=10, embedding_dim=4, name="embed")
    b.output(b.layer("Flatten", x))
    with pytest.raises(CompileError) as info:
        compile_graph(b.graph)
    assert info.value.errors[0].node == "embed" and "expects integer token ids" in str(info.value)
    b = GraphBuilder()
    b.output(b.layer("Linear", b.input((8,), dtype="int64"), out_features=3, name="fc"))
    with pytest.raises(CompileError) as info:
        compile_graph(b.graph)
    assert info.value.errors[0].node == "fc" and "fed integer token ids" in str(info.value)
    assert check_report(project_of(b))["errors"][0]["node"] == "fc"


def test_batchnorm_with_a_last_batch_of_one(tmp_path: Path) -> None:
    b = GraphBuilder()
    x = b.layer("BatchNorm1d", b.layer("Linear", b.input((64,)), out_features=8), name="bn")
    b.output(b.layer("Linear", x, out_features=10))
    # 1797 digits, 20 % held out: 1438 training samples; batches of 479 leave one sample last
    project = project_of(b, {"batch_size": 479})
    [err] = check_report(project)["errors"]
    assert err["node"] == "bn" and err["path"] == "data.batch_size"
    assert check_report(project_of(b, {"batch_size": 478}))["errors"] == []


def test_adversarial_checks_the_discriminator() -> None:
    project = load_project(SAMPLES / "digits_gan.json")
    disc = project.graphs["discriminator"]
    disc.set_param(disc.by_name("real_or_fake").id, "out_features", 7)
    [err] = check_report(project)["errors"]
    assert err["node"] == "logit" and "one score per sample, got [N, 7]" in err["message"]
    disc.set_param(disc.by_name("real_or_fake").id, "out_features", 1)
    disc.set_param(disc.by_name("down1").id, "kernel_size", [20, 20])
    errors = check_report(project)["errors"]
    assert errors and errors[0]["node"] == "down1" and errors[0]["message"].startswith("the discriminator: ")
    disc.set_param(disc.by_name("down1").id, "kernel_size", [3, 3])
    project.data["test_fraction"] = 0.2
    [err] = check_report(project)["errors"]
    assert err["path"] == "data.test_fraction"


def test_unknown_device_is_a_located_check_error() -> None:
    b = GraphBuilder()
    b.output(b.layer("Linear", b.layer("Flatten", b.input((1, 8, 8))), out_features=10))
    [err] = check_report(project_of(b, training={"device": "cuda:7"}))["errors"]
    assert err["path"] == "training.device"


def test_missing_csv_is_a_warning_in_check_not_a_crash(tmp_path: Path) -> None:
    b = GraphBuilder()
    b.output(b.layer("Linear", b.input((4,)), out_features=2))
    project = project_of(b, {"dataset": "csv", "path": str(tmp_path / "absent.csv")})
    path = save_project(project, tmp_path / "p.json")
    r = subprocess.run([sys.executable, "-m", "workbench", "check", str(path)], capture_output=True, text=True,
                       timeout=120)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "warning: data: the dataset cannot be loaded here (CSV file not found" in r.stdout
    assert "Traceback" not in r.stderr
    with pytest.raises(WorkbenchError, match="CSV file not found"):
        one_step(project, tmp_path)


def test_preflight_is_pure_over_a_description() -> None:
    """No dataset is loaded: the description alone decides."""
    b = GraphBuilder()
    b.output(b.layer("Linear", b.input((12,)), out_features=5, name="fc"), name="out")
    project = project_of(b)
    info = DataInfo("made up", "classification", (3, 4), (), 5, 100)  # 12 values a sample: reshaped
    assert preflight(project, info) == []
    wrong = DataInfo("made up", "classification", (3, 4), (), 7, 100)
    [issue] = preflight(project, wrong)
    assert issue.node == "out" and "has 7 classes but the Output gives 5 values" in issue.message
    regression = DataInfo("made up", "regression", (3, 4), (5,), 0, 100)
    assert preflight(project, regression, {**project.training, "task": "regression"}) == []


@pytest.mark.parametrize("sample", sorted(SAMPLES.glob("*.json")), ids=lambda p: p.name)
def test_every_sample_passes_preflight(sample: Path) -> None:
    assert check_report(load_project(sample))["errors"] == []


def test_rows_layout_of_colour_images() -> None:
    """Rows of an RGB image are read as [H, W*C]; an empty probe tensor could not be reshaped so."""
    b = GraphBuilder()
    x = b.layer("GRU", b.input((4, 15), name="rows"), hidden_size=3, name="gru")
    b.output(b.layer("Linear", b.port(x, "h"), out_features=5, name="head"))
    project = project_of(b, {"layout": "rows"})
    assert preflight(project, DataInfo("rgb", "classification", (3, 4, 5), (), 5, 100), data_cfg=project.data) == []


def test_a_broken_discriminator_is_reported_even_without_the_data(tmp_path: Path) -> None:
    project = load_project(SAMPLES / "digits_gan.json")
    disc = project.graphs["discriminator"]
    disc.set_param(disc.by_name("down1").id, "kernel_size", [20, 20])
    project.data.update(dataset="csv", path=str(tmp_path / "absent.csv"))
    report = check_report(project)
    assert report["errors"] and report["errors"][0]["node"] == "down1"
