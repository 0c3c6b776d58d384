"""Differentially private training with Opacus: every setting changes what happens, the spent
epsilon is Opacus' accountant's, layers Opacus refuses are found on their nodes and fixed."""

from __future__ import annotations

import math
import sys
import warnings
from pathlib import Path

import pytest
import torch

from workbench.builder import GraphBuilder
from workbench.compiler import compile_graph
from workbench.config import DATA_FIELDS, TRAINING_FIELDS, validate_section
from workbench.project import Project, load_project, save_project
from workbench.samples import digits_cnn, digits_resnet
from workbench.training import Trainer, TrainingError
from workbench.training.preflight import PreflightError, check_issues
from workbench.training.tasks import loss_fn

pytest.importorskip("opacus", reason="the privacy extra (opacus) is not installed")
from opacus.accountants import PRVAccountant, RDPAccountant

from workbench.training.privacy import BatchNormToGroupNorm, MissingOpacusError, opacus, privacy_issues

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning")  # Opacus warns about its secure RNG being off


def blobs_mlp() -> Project:
    """A small MLP on 400 synthetic samples: private runs of a few epochs take a second."""
    b = GraphBuilder()
    x = b.input((8,), name="features")
    x = b.layer("Linear", x, out_features=16, name="fc1")
    x = b.layer("ReLU", x, name="relu1")
    x = b.layer("Linear", x, out_features=4, name="classifier")
    b.output(x, name="logits")
    return Project(b.auto_layout(), "blobs", "", validate_section(DATA_FIELDS, {
        "dataset": "synthetic_blobs", "num_samples": 400, "batch_size": 32}), validate_section(TRAINING_FIELDS, {}))


def private(project: Project | None = None, **training: object) -> Project:
    project = project or blobs_mlp()
    project.training.update({"privacy": True, "epochs": 1, **training})
    return project


def run(project: Project, tmp: Path, name: str, **overrides: object) -> tuple[Trainer, dict]:
    trainer = Trainer(project, overrides, run_dir=tmp / name)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return trainer, trainer.run()


def accountant_epsilon(kind: str, sigma: float, rate: float, steps: int, delta: float) -> float:
    """Opacus' accountant called directly, for the same steps."""
    acc = RDPAccountant() if kind == "rdp" else PRVAccountant()
    acc.history = [(sigma, rate, steps)]
    return float(acc.get_epsilon(delta))


@pytest.mark.parametrize("accountant", ["rdp", "prv"])
def test_spent_epsilon_is_the_accountants_and_falls_with_more_noise(tmp_path: Path, accountant: str) -> None:
    eps = {}
    for sigma in (0.8, 2.0):
        trainer, summary = run(private(noise_multiplier=sigma, accountant=accountant), tmp_path, f"s{sigma}")
        rate = trainer.privacy.sample_rate
        want = accountant_epsilon(accountant, sigma, rate, summary["steps"], 1e-5)
        assert math.isclose(summary["epsilon"], want, rel_tol=1e-6)
        eps[sigma] = summary["epsilon"]
        epochs = [e for e in _metrics(tmp_path / f"s{sigma}") if e["type"] == "epoch"]
        assert epochs[-1]["epsilon"] == pytest.approx(want, rel=1e-6)  # the curve the dashboard plots
    assert eps[0.8] > 2 * eps[2.0]


def test_the_accountant_setting_changes_the_epsilon(tmp_path: Path) -> None:
    _, rdp = run(private(noise_multiplier=1.0, accountant="rdp"), tmp_path, "rdp")
    _, prv = run(private(noise_multiplier=1.0, accountant="prv"), tmp_path, "prv")
    assert prv["epsilon"] < rdp["epsilon"]  # PRV's accounting is tighter


def test_target_epsilon_is_reached_by_the_noise_opacus_chooses(tmp_path: Path) -> None:
    spent = {}
    for target in (1.0, 4.0):
        trainer, summary = run(private(target_epsilon=target, epochs=2), tmp_path, f"t{target}")
        assert target - 0.05 <= summary["epsilon"] <= target + 1e-6
        spent[target] = trainer.privacy.noise_multiplier
    assert spent[1.0] > spent[4.0]  # a smaller budget needs more noise


def test_target_delta_changes_the_epsilon(tmp_path: Path) -> None:
    _, small = run(private(noise_multiplier=1.0, target_delta=1e-7), tmp_path, "d7")
    _, large = run(private(noise_multiplier=1.0, target_delta=1e-3), tmp_path, "d3")
    assert small["epsilon"] > large["epsilon"] > 0


def _metrics(run_dir: Path) -> list[dict]:
    from workbench.training.runs import read_metrics

    return read_metrics(run_dir)


@pytest.mark.parametrize("clip", [0.01, 0.1])
def test_each_samples_gradient_is_clipped_to_max_grad_norm(tmp_path: Path, clip: float) -> None:
    """One step with (almost) no noise equals the clipped per-sample gradients, computed here with
    torch.func, summed and divided by the expected batch size."""
    project = private(noise_multiplier=1e-9, max_grad_norm=clip, optimizer="sgd", momentum=0.0, lr=1.0)
    trainer = Trainer(project, run_dir=tmp_path / "clip")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        trainer.prepare()
    model = trainer.model
    torch.manual_seed(0)
    x, y = next(iter(trainer.privacy.loader))
    before = {k: v.detach().clone() for k, v in model.named_parameters()}

    reference = compile_graph(project.graph).module  # a copy without Opacus' hooks
    reference.load_state_dict(model.state_dict())

    def one(params: dict, xi: torch.Tensor, yi: torch.Tensor) -> torch.Tensor:
        out = torch.func.functional_call(reference, params, (xi[None],))
        return loss_fn("classification", out, yi[None], 4)

    grads = torch.func.vmap(torch.func.grad(one), in_dims=(None, 0, 0))(before, x, y)
    norms = torch.sqrt(sum(g.flatten(1).pow(2).sum(1) for g in grads.values()))
    assert (norms > clip).all()  # every sample's gradient is longer than the bound: clipping must act
    scale = (clip / norms).clamp(max=1.0)
    expected = {k: before[k] - (g * scale.view(-1, *[1] * (g.ndim - 1))).sum(0) / trainer.optimizer.expected_batch_size
                for k, g in grads.items()}
    trainer.optimizer.zero_grad()
    loss_fn("classification", model(x), y, 4).backward()
    trainer.optimizer.step()
    for k, p in model.named_parameters():
        torch.testing.assert_close(p.detach(), expected[k], rtol=1e-4, atol=1e-6)


def test_batchnorm_is_reported_on_its_node_and_the_fix_makes_the_model_valid(tmp_path: Path) -> None:
    project = private(digits_cnn())
    issues = privacy_issues(project.graph)
    assert [i.node for i in issues] == ["bn1", "bn2"]
    assert "GroupNorm (num_groups=16)" in issues[0].message and "num_groups=32" in issues[1].message
    with pytest.raises(PreflightError) as info:
        run(project, tmp_path, "refused")
    assert info.value.node == "bn1"
    before = project.graph.to_dict()
    wires = {(e.src, e.dst) for e in project.graph.edges}
    change = BatchNormToGroupNorm(project.graph)
    change.apply()
    assert privacy_issues(project.graph) == []
    gn = project.graph.by_name("bn2")
    assert gn.type == "GroupNorm" and gn.params["num_groups"] == 32
    assert {(e.src, e.dst) for e in project.graph.edges} == wires
    trainer = Trainer(project, run_dir=tmp_path / "fixed")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        trainer.prepare()  # the pre-flight passes and Opacus takes the model
    assert trainer.privacy is not None and trainer.privacy.noise_multiplier == 1.0
    change.revert()
    assert project.graph.to_dict() == before


def test_a_batchnorm_inside_a_block_is_reported_on_the_block_node() -> None:
    issues = privacy_issues(digits_resnet().graph)
    assert {i.node for i in issues} == {"stem_bn", "block1", "block2"}
    assert any("block \"block1\", its layer bn1" in i.message for i in issues)


def test_check_reports_what_opacus_refuses_only_when_privacy_is_on() -> None:
    from workbench.shapes import ShapeInference

    for on in (False, True):
        project = digits_cnn()
        project.training["privacy"] = on
        si = ShapeInference(project.graph, live=False)
        si.update()
        issues, _ = check_issues(project, si)
        assert [i.node for i in issues] == (["bn1", "bn2"] if on else [])


def test_resume_continues_the_accounting(tmp_path: Path) -> None:
    project = private(noise_multiplier=1.2)
    _, full = run(project, tmp_path, "full", epochs=2)
    run(project, tmp_path, "part", epochs=1)
    resumed = Trainer(project, {"epochs": 2}, resume=tmp_path / "part" / "checkpoints" / "last.safetensors")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        summary = resumed.run()
    assert summary["epsilon"] == pytest.approx(full["epsilon"], rel=1e-9)
    first = [e for e in _metrics(tmp_path / "part") if e["type"] == "epoch"]
    assert first[1]["epsilon"] > first[0]["epsilon"]


def test_resuming_a_run_that_was_not_private_is_refused(tmp_path: Path) -> None:
    project = blobs_mlp()
    run(project, tmp_path, "plain", epochs=1)
    with pytest.raises(TrainingError, match="unbounded privacy budget"):
        Trainer(private(project), {"epochs": 2}, resume=tmp_path / "plain" / "checkpoints" / "last.safetensors").run()


@pytest.mark.parametrize(("setting", "key"), [
    ({"task": "adversarial"}, "training.privacy"),
    ({"grad_clip": 1.0}, "training.grad_clip"),
    ({"precision": "bf16"}, "training.precision"),
    ({"noise_multiplier": 0.0}, "training.noise_multiplier"),
])
def test_settings_private_training_cannot_honour_are_refused(setting: dict, key: str) -> None:
    from workbench.config import ConfigError, cross_check

    project = private(**setting)
    with pytest.raises(ConfigError) as info:
        cross_check(project.data, project.training)
    assert info.value.key == key


def test_a_missing_opacus_names_the_extra(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setitem(sys.modules, "opacus", None)
    issues = privacy_issues(blobs_mlp().graph)
    assert issues[0].path == "training.privacy" and "neural-workbench[privacy]" in issues[0].message
    with pytest.raises(TrainingError, match=r"neural-workbench\[privacy\]"):
        run(private(), tmp_path, "missing")
    with pytest.raises(MissingOpacusError):
        opacus()


def test_cli_fix_writes_a_private_ready_project(tmp_path: Path) -> None:
    from workbench.cli import main

    path = tmp_path / "cnn.json"
    save_project(private(digits_cnn()), path)
    assert main(["check", str(path)]) == 1
    assert main(["privacy-fix", str(path), "-o", str(tmp_path / "fixed.json")]) == 0
    fixed = load_project(tmp_path / "fixed.json")
    assert [n.type for n in fixed.graph if "Norm" in n.type] == ["GroupNorm", "GroupNorm"]
    assert load_project(path).graph.by_name("bn1").type == "BatchNorm2d"  # the original is left as it was
    assert main(["check", str(tmp_path / "fixed.json")]) == 0
