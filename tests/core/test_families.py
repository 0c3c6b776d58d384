"""Every sample family trains: each loads, checks, compiles and lowers its task's loss in a
few steps; family-specific behaviour (causal masking, generated text, latent codes)."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch

from workbench.builder import GraphBuilder
from workbench.compiler import compile_graph
from workbench.data import load_samples
from workbench.project import load_project
from workbench.shapes import infer
from workbench.training import Trainer

from .sample_deps import provide_init_from

SAMPLES = sorted((Path(__file__).resolve().parents[2] / "samples").glob("*.json"))


# a GAN's losses need not fall (a duel): test_gan_trains_and_resumes checks it instead
NON_ADVERSARIAL = [s for s in SAMPLES if load_project(s).training["task"] != "adversarial"]


@pytest.mark.parametrize("sample", NON_ADVERSARIAL, ids=lambda p: p.stem)
def test_sample_trains_a_few_steps_with_falling_loss(sample: Path, tmp_path: Path) -> None:
    project = load_project(provide_init_from(sample, tmp_path / "sample"))
    assert infer(project.graph).errors() == []
    project.data["num_samples"] = 400
    losses: list[float] = []
    trainer = Trainer(project, {"epochs": 2, "schedule": "none"}, run_dir=tmp_path / "run",
                      listeners=[lambda e: losses.append(e["loss"]) if e["type"] == "batch" else None])
    trainer.run()
    k = max(3, len(losses) // 5)
    assert sum(losses[-k:]) / k < sum(losses[:k]) / k, f"{sample.stem}: loss did not fall"


def test_causal_attention_does_not_look_ahead() -> None:
    b = GraphBuilder()
    x = b.input(("T", 8))
    b.output(b.layer("TransformerEncoderLayer", x, nhead=2, dim_feedforward=16, dropout=0.0, causal=True))
    module = compile_graph(b.graph).module.eval()
    a = torch.randn(1, 6, 8)
    changed = a.clone()
    changed[0, 4:] += 5.0  # change only the future of step 3
    with torch.no_grad():
        ya, yb = module(a), module(changed)
    torch.testing.assert_close(ya[0, :4], yb[0, :4])
    assert not torch.allclose(ya[0, 4:], yb[0, 4:])


def test_language_model_beats_the_unigram_baseline_and_writes_text(tmp_path: Path) -> None:
    project = load_project(next(s for s in SAMPLES if "language" in s.name))
    samples = load_samples(project.data)
    counts = torch.bincount(samples.y.reshape(-1), minlength=len(samples.class_names)).float()
    probs = counts / counts.sum()
    unigram = float(torch.exp(-(probs[probs > 0] * probs[probs > 0].log()).sum()))
    events: list[dict] = []
    summary = Trainer(project, {"epochs": 8}, run_dir=tmp_path / "lm", listeners=[events.append]).run()
    assert summary["final"]["perplexity"] < 0.75 * unigram
    texts = [e["text"] for e in events if e["type"] == "validation"]
    assert len(texts) == 8 and len(texts[-1]) >= 160 and set(texts[-1]) <= set(samples.class_names)


def test_autoencoder_reports_its_2d_latent_codes(tmp_path: Path) -> None:
    project = load_project(next(s for s in SAMPLES if "autoencoder" in s.name))
    events: list[dict] = []
    Trainer(project, {"epochs": 1}, run_dir=tmp_path / "ae", listeners=[events.append]).run()
    (val,) = [e for e in events if e["type"] == "validation"]
    assert val["latent"].shape[1] == 2 and len(val["latent_labels"]) == len(val["latent"])
    assert val["inputs"].shape[1:] == (1, 8, 8)


def test_gan_trains_and_resumes(tmp_path: Path) -> None:
    project = load_project(next(s for s in SAMPLES if "gan" in s.name))
    events: list[dict] = []
    summary = Trainer(project, {"epochs": 3}, run_dir=tmp_path / "gan", listeners=[events.append]).run()
    assert summary["status"] == "finished"
    batches = [e for e in events if e["type"] == "batch"]
    assert all(math.isfinite(e["loss"]) and math.isfinite(e["d_loss"]) for e in batches)
    val = [e for e in events if e["type"] == "validation"]
    assert len(val) == 3 and val[-1]["generated"].shape == (16, 1, 8, 8)
    assert 0.0 <= val[-1]["metrics"]["d_accuracy_generated"] <= 1.0
    ckpt = tmp_path / "gan" / "checkpoints"
    assert (ckpt / "last.safetensors").exists() and not (ckpt / "last_discriminator.safetensors").exists()
    resumed = Trainer(project, {"epochs": 4}, resume=ckpt / "last.safetensors").run()
    assert resumed["epochs_done"] == 4


def test_gan_shapes_must_agree(tmp_path: Path) -> None:
    from workbench.training import TrainingError

    project = load_project(next(s for s in SAMPLES if "gan" in s.name))
    d = project.graphs["discriminator"]
    d.set_param(d.inputs()[0].id, "shape", [1, 7, 7])
    with pytest.raises(TrainingError, match=r"generator makes samples of shape \[1, 8, 8\] but the discriminator's "
                       r"Input expects \[1, 7, 7\]"):
        Trainer(project, {"epochs": 1}, run_dir=tmp_path / "x").run()
    del project.graphs["discriminator"]
    with pytest.raises(TrainingError, match="needs a discriminator graph"):
        Trainer(project, {"epochs": 1}, run_dir=tmp_path / "y").run()


def test_gan_discriminator_rate_and_steps_per_generator_step(tmp_path: Path) -> None:
    """d_lr_scale sets the discriminator's learning rate apart (0 freezes it); d_steps makes
    several discriminator updates per generator update."""
    import torch

    from workbench.training.adversarial import gan_step

    project = load_project(next(s for s in SAMPLES if "gan" in s.name))
    trainer = Trainer(project, {"epochs": 1}, run_dir=tmp_path / "g")
    trainer.prepare()
    parts = trainer.gan
    assert parts is not None
    real = trainer.data.train.tensors[0][:16]
    d_before = [p.detach().clone() for p in parts.discriminator.parameters()]
    g_before = [p.detach().clone() for p in parts.generator.parameters()]
    gan_step(parts, real, 1e-3, 0.0, d_lr_scale=0.0)
    assert all(torch.equal(a, b) for a, b in zip(d_before, parts.discriminator.parameters(), strict=True))
    assert not all(torch.equal(a, b) for a, b in zip(g_before, parts.generator.parameters(), strict=True))
    assert parts.opt_d.param_groups[0]["lr"] == 0.0 and parts.opt_g.param_groups[0]["lr"] == 1e-3

    def steps(opt: torch.optim.Optimizer) -> int:
        return int(max(float(s["step"]) for s in opt.state.values()))

    d0, g0 = steps(parts.opt_d), steps(parts.opt_g)
    gan_step(parts, real, 1e-3, 0.0, d_lr_scale=4.0, d_steps=3)
    assert (steps(parts.opt_d) - d0, steps(parts.opt_g) - g0) == (3, 1)
    assert parts.opt_d.param_groups[0]["lr"] == 4e-3
    # the settings reach the loop from the project
    project.training.update(d_lr_scale=2.0, d_steps=2)
    summary = Trainer(project, {"epochs": 1}, run_dir=tmp_path / "h").run()
    assert summary["status"] == "finished"
