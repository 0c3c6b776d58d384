"""Knowledge distillation as a training task (workbench.training.distill): the loss is the
published one, the teacher teaches and is never trained, and every way a teacher cannot be used is
refused before training, located, by ``workbench check`` as by training."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import torch
import torch.nn.functional as F

from workbench.builder import GraphBuilder
from workbench.cli import check_report
from workbench.compiler import compile_graph
from workbench.config import DATA_FIELDS, TRAINING_FIELDS, validate_section
from workbench.graph import Graph
from workbench.project import Project, load_project, save_project
from workbench.training import Trainer
from workbench.training.distill import distillation_loss
from workbench.training.preflight import PreflightError
from workbench.weights import read_tensors, save_weights

BLOBS = {"dataset": "synthetic_blobs", "num_samples": 80, "batch_size": 16, "val_fraction": 0.25}


def mlp(inputs: tuple[int, ...] = (8,), hidden: int = 8, classes: int = 4) -> Graph:
    b = GraphBuilder()
    x = b.input(inputs, name="x")
    if len(inputs) > 1:
        x = b.layer("Flatten", x)
    h = b.layer("ReLU", b.layer("Linear", x, out_features=hidden, name="fc1"))
    b.output(b.layer("Linear", h, out_features=classes, name="fc2"), name="scores")
    return b.graph


def project(graph: Graph, training: dict[str, Any] | None = None, data: dict[str, Any] | None = None) -> Project:
    return Project(graph, "p", data=validate_section(DATA_FIELDS, {**BLOBS, **(data or {})}),
                   training=validate_section(TRAINING_FIELDS, {"epochs": 2, "lr": 0.02, **(training or {})}))


@pytest.fixture
def teacher(tmp_path: Path) -> Path:
    """A trained teacher project with its weights file beside it."""
    t = project(mlp(hidden=16))
    save_project(t, tmp_path / "teacher.json")
    trainer = Trainer(t, run_dir=tmp_path / "teacher_run")
    trainer.run()
    t.weights = "teacher.safetensors"
    save_weights(trainer.model, tmp_path / "teacher.safetensors")
    save_project(t, tmp_path / "teacher.json")
    return tmp_path / "teacher.json"


def student(tmp_path: Path, **training: Any) -> Project:
    p = project(mlp(), {"task": "distillation", "teacher": "teacher.json", **training})
    save_project(p, tmp_path / "student.json")  # the teacher path is relative to the student's folder
    return p


def test_the_loss_is_softened_kl_times_t_squared_plus_cross_entropy() -> None:
    torch.manual_seed(0)
    s, t, y = torch.randn(6, 5), torch.randn(6, 5) * 3, torch.randint(0, 5, (6,))
    for temperature, alpha in ((1.0, 0.5), (4.0, 0.9), (2.5, 0.0), (3.0, 1.0)):
        p_t = torch.softmax(t / temperature, 1)
        kl = (p_t * (p_t.log() - torch.log_softmax(s / temperature, 1))).sum(1).mean()
        expected = alpha * kl * temperature**2 + (1 - alpha) * F.cross_entropy(s, y)
        assert distillation_loss(s, t, y, temperature, alpha) == pytest.approx(float(expected), rel=1e-5)
    assert distillation_loss(s, s, y, 4.0, 1.0) == pytest.approx(0.0, abs=1e-6)  # nothing left to learn


def test_the_teacher_teaches_and_is_not_trained(tmp_path: Path, teacher: Path) -> None:
    before = read_tensors(teacher.with_suffix(".safetensors"))
    alone = Trainer(project(mlp()), run_dir=tmp_path / "alone")
    alone.run()
    taught = Trainer(student(tmp_path), run_dir=tmp_path / "taught")
    seen: list[torch.Tensor] = []
    taught.prepare()
    taught.teacher.module.register_forward_pre_hook(lambda m, a: seen.append(a[0]))
    taught.prepare = lambda: None  # type: ignore[method-assign]
    summary = taught.run()
    assert summary["status"] == "finished" and "accuracy" in summary["final"]
    assert not torch.equal(alone.model.fc1.weight, taught.model.fc1.weight)
    assert len(seen) == 2 * 4  # one teacher pass per training batch: 60 samples in batches of 16, 2 epochs
    assert all(not t.requires_grad for t in taught.teacher.module.parameters())
    after = {k: v for k, v in taught.teacher.module.state_dict().items()}
    assert all(torch.equal(before[k], after[k]) for k in before)


def test_a_teacher_with_another_input_shape_reads_the_same_samples(tmp_path: Path) -> None:
    t = project(mlp(inputs=(2, 4), hidden=8))  # reads each 8-feature sample as 2 x 4
    save_project(t, tmp_path / "teacher.json")
    trainer = Trainer(t, run_dir=tmp_path / "t")
    trainer.run()
    save_weights(trainer.model, tmp_path / "t.safetensors")
    s = student(tmp_path, teacher_checkpoint="t.safetensors")
    taught = Trainer(s, run_dir=tmp_path / "s")
    taught.prepare()
    x = taught.data.train.tensors[0][:5]
    with torch.no_grad():
        assert torch.equal(taught.teacher.logits(x), trainer.model.eval()(x.reshape(5, 2, 4)))


def _issues(p: Project) -> list[dict[str, Any]]:
    return check_report(p)["errors"]


def test_what_keeps_a_teacher_from_teaching_is_refused_and_located(tmp_path: Path, teacher: Path) -> None:
    cases: list[tuple[dict[str, Any], str, str]] = [
        ({"teacher": ""}, "training.teacher", "the distillation task needs a teacher"),
        ({"teacher": "missing.json"}, "training.teacher", "missing.json"),
        ({"teacher_checkpoint": "nope.safetensors"}, "training.teacher_checkpoint", "nope.safetensors"),
    ]
    wrong = project(mlp(hidden=5))
    save_weights(compile_graph(wrong.graph).module, tmp_path / "wrong.safetensors")
    cases.append(({"teacher_checkpoint": "wrong.safetensors"}, "training.teacher_checkpoint", "does not fit the model"))
    five = project(mlp(classes=5))
    five.weights = None
    save_project(five, tmp_path / "five.json")
    cases.append(({"teacher": "five.json"}, "training.teacher_checkpoint", "has no weights file"))
    save_weights(compile_graph(five.graph).module,
                 tmp_path / "five.safetensors")
    cases.append(({"teacher": "five.json", "teacher_checkpoint": "five.safetensors"}, "training.teacher",
                  'the teacher \'p\' gives [N, 5] but the student gives [N, 4]'))
    regression = project(mlp(), {"task": "regression"})
    save_project(regression, tmp_path / "regression.json")
    cases.append(({"teacher": "regression.json", "teacher_checkpoint": "teacher.safetensors"}, "training.teacher",
                  "a teacher must be a classifier"))
    odd = project(mlp(inputs=(3, 3)))
    save_project(odd, tmp_path / "odd.json")
    save_weights(compile_graph(odd.graph).module,
                 tmp_path / "odd.safetensors")
    cases.append(({"teacher": "odd.json", "teacher_checkpoint": "odd.safetensors"}, "training.teacher",
                  'the teacher\'s Input "x"'))
    for change, path, words in cases:
        p = student(tmp_path, **change)
        issues = _issues(p)
        assert [i["path"] for i in issues] == [path] and words in issues[0]["message"], (change, issues)
        with pytest.raises(PreflightError) as info:  # what check refuses, training refuses, before any step
            Trainer(p, run_dir=tmp_path / "never").run()
        assert info.value.path == path and not (tmp_path / "never").exists()
    assert _issues(student(tmp_path)) == []
    assert _issues(load_project(tmp_path / "student.json")) == []


def test_distillation_needs_class_labels(tmp_path: Path, teacher: Path) -> None:
    p = student(tmp_path)
    p.data = validate_section(DATA_FIELDS, {"dataset": "synthetic_regression", "num_samples": 40})
    messages = [i["message"] for i in _issues(p)]
    assert any("the task is distillation but the dataset" in m for m in messages), messages
