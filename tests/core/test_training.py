"""The training engine: learning, determinism, resume, stop, NaN and shape checks."""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from workbench.builder import GraphBuilder
from workbench.compiler import compile_graph
from workbench.config import DATA_FIELDS, TRAINING_FIELDS, validate_section
from workbench.project import Project, load_project, save_project
from workbench.training import Control, Trainer, TrainingError
from workbench.training.preflight import PreflightError
from workbench.weights import apply_state, read_checkpoint

SAMPLES = Path(__file__).resolve().parents[2] / "samples"


def epochs_of(events: list[dict]) -> list[dict]:
    return [{k: v for k, v in e.items() if k != "time"} for e in events if e["type"] == "epoch"]


def train(project: Project, tmp: Path, name: str, **overrides):
    events: list[dict] = []
    trainer = Trainer(project, overrides, run_dir=tmp / name, listeners=[events.append])
    return trainer, trainer.run(), events


def test_digits_cnn_learns_well_above_chance(tmp_path: Path) -> None:
    _, summary, events = train(load_project(SAMPLES / "digits_cnn.json"), tmp_path, "cnn", epochs=4)
    assert summary["status"] == "finished"
    assert summary["final"]["accuracy"] > 0.9  # chance is 0.1
    losses = [e["val_loss"] for e in epochs_of(events)]
    assert losses[-1] < losses[0] / 3
    run = tmp_path / "cnn"
    assert {p.name for p in run.iterdir()} >= {"config.json", "metrics.jsonl", "summary.json", "checkpoints"}
    assert json.loads((run / "summary.json").read_text())["final"] == summary["final"]
    lines = (run / "metrics.jsonl").read_text().splitlines()
    assert sum(1 for ln in lines if json.loads(ln)["type"] == "epoch") == 4


def test_same_seed_same_curve(tmp_path: Path) -> None:
    project = load_project(SAMPLES / "digits_mlp.json")
    _, _, a = train(project, tmp_path, "a", epochs=2, seed=3)
    _, _, b = train(project, tmp_path, "b", epochs=2, seed=3)
    _, _, c = train(project, tmp_path, "c", epochs=2, seed=4)
    assert epochs_of(a) == epochs_of(b)
    assert epochs_of(a) != epochs_of(c)


def test_resume_continues_the_curve(tmp_path: Path) -> None:
    project = load_project(SAMPLES / "digits_mlp.json")
    _, _, full = train(project, tmp_path, "full", epochs=4)
    _, _, first = train(project, tmp_path, "part", epochs=2)
    events: list[dict] = []
    resumed = Trainer(project, {"epochs": 4}, resume=tmp_path / "part" / "checkpoints" / "last.safetensors",
                      listeners=[events.append])
    summary = resumed.run()
    assert resumed.run_dir == tmp_path / "part"  # the same run folder continues
    assert summary["epochs_done"] == 4
    got = epochs_of(first) + epochs_of(events)
    want = epochs_of(full)
    assert [e["epoch"] for e in got] == [1, 2, 3, 4]
    for g, w in zip(got, want, strict=True):
        for key in ("train_loss", "val_loss", "val_accuracy"):
            assert math.isclose(g[key], w[key], rel_tol=1e-5, abs_tol=1e-6), (key, g, w)
    metrics = [json.loads(ln) for ln in (tmp_path / "part" / "metrics.jsonl").read_text().splitlines()]
    assert [m["epoch"] for m in metrics if m["type"] == "epoch"] == [1, 2, 3, 4]


def test_stop_finishes_the_step_and_writes_a_loadable_checkpoint(tmp_path: Path) -> None:
    project = load_project(SAMPLES / "digits_cnn.json")
    control = Control()
    seen: list[dict] = []

    def listener(e: dict) -> None:
        seen.append(e)
        if e["type"] == "batch" and e["step"] == 5:
            control.stop.set()

    trainer = Trainer(project, {"epochs": 3}, run_dir=tmp_path / "run", listeners=[listener], control=control)
    summary = trainer.run()
    assert summary["status"] == "stopped" and summary["steps"] == 5
    model, optim, meta = read_checkpoint(tmp_path / "run" / "checkpoints" / "last.safetensors")
    assert meta["step"] == 5 and optim  # optimizer state is saved for resuming
    fresh = compile_graph(project.graph).module
    apply_state(fresh, model, "checkpoint")
    torch.testing.assert_close(fresh.state_dict()["conv1.weight"], trainer.model.state_dict()["conv1.weight"])


def test_nan_stops_the_run_naming_the_node(tmp_path: Path) -> None:
    project = load_project(SAMPLES / "digits_mlp.json")
    holder: dict = {}

    def poison(e: dict) -> None:
        if e["type"] == "start":
            with torch.no_grad():
                holder["t"].model.fc2.weight.fill_(float("inf"))

    trainer = Trainer(project, {"epochs": 1}, run_dir=tmp_path / "run", listeners=[poison])
    holder["t"] = trainer
    with pytest.raises(TrainingError, match=r'epoch 1, step 1; the first non-finite values come from node "fc2"'):
        trainer.run()
    assert json.loads((tmp_path / "run" / "summary.json").read_text())["status"] == "failed"


def test_shape_mismatch_is_refused_before_any_step(tmp_path: Path) -> None:
    b = GraphBuilder()
    x = b.input((1, 28, 28), name="img")
    b.output(b.layer("Linear", b.layer("Flatten", x), out_features=10))
    events: list[dict] = []
    with pytest.raises(PreflightError, match=r"shape \[1, 8, 8\] \(64 values\), but the Input expects \[1, 28, 28\]"):
        Trainer(Project(b.graph), {}, run_dir=tmp_path / "r", listeners=[events.append]).run()
    assert not any(e["type"] == "batch" for e in events)
    assert not (tmp_path / "r").exists()  # nothing written for a run that never started


def test_wrong_class_count_says_what_to_change(tmp_path: Path) -> None:
    b = GraphBuilder()
    x = b.input((64,))
    b.output(b.layer("Linear", x, out_features=3, name="head"))
    with pytest.raises(PreflightError, match="set the last Linear layer's out_features to 10") as info:
        Trainer(Project(b.graph), {"epochs": 1}, run_dir=tmp_path / "r").run()
    assert info.value.node == "output1"  # found before the first step, at the Output


@pytest.mark.parametrize(("task", "dataset", "out"), [("regression", "synthetic_regression", 1),
                                                      ("reconstruction", "digits", 64)])
def test_regression_and_reconstruction_tasks(tmp_path: Path, task: str, dataset: str, out: int) -> None:
    b = GraphBuilder()
    x = b.input((8,) if dataset.startswith("synthetic") else (64,))
    h = b.layer("ReLU", b.layer("Linear", x, out_features=32))
    b.output(b.layer("Linear", h, out_features=out))
    project = Project(b.graph, data=validate_section(DATA_FIELDS, {"dataset": dataset}),
                      training=validate_section(TRAINING_FIELDS, {"task": task, "epochs": 8, "lr": 0.01}))
    _, summary, events = train(project, tmp_path, task)
    first, last = epochs_of(events)[0], epochs_of(events)[-1]
    assert last["val_loss"] < first["val_loss"]
    assert "mae" in summary["final"]
    if task == "regression":
        assert summary["final"]["r2"] > 0.3


def run_cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "workbench", *args], capture_output=True, text=True, timeout=300)


def test_cli_train_writes_a_run_and_reports(tmp_path: Path) -> None:
    project = tmp_path / "mlp.json"
    project.write_text((SAMPLES / "digits_mlp.json").read_text())
    r = run_cli("train", str(project), "--epochs", "2", "--seed", "1", "--out", str(tmp_path / "run"), "--json",
                "--threads", "1")
    assert r.returncode == 0, r.stderr
    summary = json.loads(r.stdout)
    assert summary["status"] == "finished" and summary["epochs_done"] == 2
    assert summary["threads"] == 1
    assert "epoch 2/2" in r.stderr  # the progress output
    ckpt = tmp_path / "run" / "checkpoints" / "last.safetensors"
    r2 = run_cli("train", str(project), "--epochs", "3", "--resume", str(ckpt), "--json")
    assert r2.returncode == 0, r2.stderr
    assert json.loads(r2.stdout)["epochs_done"] == 3


def test_cli_train_failures_exit_non_zero_with_the_reason(tmp_path: Path) -> None:
    r = run_cli("train", str(SAMPLES / "digits_mlp.json"), "--device", "cuda:3", "--out", str(tmp_path / "x"))
    assert r.returncode == 1
    assert "device cuda:3 is not available" in r.stderr and "Traceback" not in r.stderr
    bad = tmp_path / "bad.json"
    bad.write_text("[]")
    assert run_cli("train", str(bad)).returncode == 2
    r = run_cli("train", str(SAMPLES / "digits_mlp.json"), "--threads", "0")
    assert r.returncode == 2 and "--threads: expected a positive int, got 0" in r.stderr


def test_saved_project_runs_live_beside_it(tmp_path: Path) -> None:
    project = load_project(SAMPLES / "digits_mlp.json")
    save_project(project, tmp_path / "p.json")
    trainer, _, _ = train(project, tmp_path, "ignored", epochs=1)
    t2 = Trainer(project, {"epochs": 1})
    t2.run()
    assert t2.run_dir.parent == tmp_path / "runs" / "p"
    assert trainer.run_dir == tmp_path / "ignored"


def test_a_domain_error_on_the_first_step_is_not_blamed_on_the_learning_rate(tmp_path: Path) -> None:
    b = GraphBuilder()
    x = b.layer("Flatten", b.input((1, 8, 8), name="img"))
    x = b.layer("Log", b.layer("ScalarOp", x, op="subtract", constant=10.0, name="shift"), name="log")
    b.output(b.layer("Linear", x, out_features=10, name="fc"))
    with pytest.raises(TrainingError, match=r'from node "log"; no update has happened yet, so the learning rate is '
                                            r"not the cause"):
        Trainer(Project(b.graph), {"epochs": 1}, run_dir=tmp_path / "r").run()


def test_a_gan_whose_losses_turn_non_finite_names_the_node_that_made_them(tmp_path: Path) -> None:
    project = load_project(SAMPLES / "digits_gan.json")
    g = project.graph
    noise_in, first = g.by_name("noise"), g.by_name("project")
    g.disconnect(g.edge_into(first.id, "x"))
    sqrt = g.add_node("Sqrt", {}, "root")  # of Gaussian noise: NaN for every negative draw
    g.connect(noise_in.id, "y", sqrt.id, "x")
    g.connect(sqrt.id, "y", first.id, "x")
    with pytest.raises(TrainingError, match=r'GAN losses became non-finite.*first non-finite values come from node "root"'):
        Trainer(project, {"epochs": 1}, run_dir=tmp_path / "r").run()
