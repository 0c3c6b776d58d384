"""Issue 13 benchmarks for compression, on the digits samples, every model trained here first.

- int8 (static, calibrated on 1024 training samples) of the digits CNN and ResNet: validation
  accuracy drop (target <= 0.5 points), file size against the verified float32 export (<= 0.3x),
  onnxruntime latency int8 / float32 at batch 1 and 64 (medians of per-round ratios of interleaved
  runs, one thread; reported, no target);
- structured pruning of 50 % of the CNN's channels: MACs after / before (<= 0.55x) and the
  accuracy drop after fine-tuning (<= 1 point);
- distillation: a small student (a one-hidden-layer perceptron) taught by the ResNet sample
  against the same student trained alone, same settings, mean final validation accuracy over 3
  seeds (taught - alone >= 0 points, and it should be above); with the task's default temperature
  and alpha, on the plain training images and again on shifted ones (``augment: shift``, where
  the student alone does worse).

Each measurement is the job users run (``workbench.compress`` / the ``distillation`` task); the
numbers are read from its report.  Everything runs on one torch thread; about four minutes here.
Run alone: ``nice python bench/bench_compress.py``.
"""

from __future__ import annotations

import os
import statistics
import sys
import tempfile
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parent.parent
if __name__ == "__main__":
    sys.path.insert(0, str(ROOT))

from bench.common import Row  # noqa: E402
from workbench.builder import GraphBuilder  # noqa: E402
from workbench.compress.prune import prune_structured  # noqa: E402
from workbench.compress.quantize import quantize  # noqa: E402
from workbench.compress.report import CompressReport  # noqa: E402
from workbench.graph import Graph  # noqa: E402
from workbench.project import Project, load_project, save_project  # noqa: E402
from workbench.training import Trainer  # noqa: E402
from workbench.weights import save_weights  # noqa: E402

ISSUE = "13"
SEEDS = (0, 1, 2)
#: the structured pruning's fine-tuning (the project's own optimiser, learning rate and schedule)
FINETUNE_EPOCHS = 15
#: the student: its training, alone or taught (the teacher's settings on top of the same ones)
STUDENT = {"epochs": 40, "lr": 0.01}
#: the distillation task's own defaults (config.TRAINING_FIELDS), not settings tuned to win here
TEACHING = {"temperature": 4.0, "alpha": 0.5}


def _train(sample: str, folder: Path) -> tuple[Project, Path]:
    """The sample trained with its own settings; the project gets the weights as its weights file."""
    project = load_project(ROOT / "samples" / f"{sample}.json")
    path = save_project(project, folder / f"{sample}.json")
    trainer = Trainer(project, run_dir=folder / f"{sample}_run")
    trainer.run()
    project.weights = f"{sample}.safetensors"
    save_weights(trainer.model, folder / project.weights)
    save_project(project, path)
    return project, path


def student() -> Graph:
    """A perceptron with one hidden layer of 64 units (about 4,800 parameters)."""
    b = GraphBuilder()
    x = b.layer("Flatten", b.input((1, 8, 8), name="image"))
    x = b.layer("ReLU", b.layer("Linear", x, out_features=64, name="hidden"))
    b.output(b.layer("Linear", x, out_features=10, name="classifier"), name="logits")
    return b.graph


def _quantized_rows(name: str, report: CompressReport) -> list[Row]:
    acc = report.row("validation accuracy")
    rows = [Row(ISSUE, f"int8 {name}: validation accuracy drop", 0.0 - acc.change, "points", 0.5,  # 0.0 - x: no "-0"
                note=f"{acc.before:.2f} % -> {acc.after:.2f} % (val split)"),
            Row(ISSUE, f"int8 {name}: file size int8 / float32 export", report.row("file size").change, "x", 0.3,
                note=f"{report.row('file size').before:,.0f} -> {report.row('file size').after:,.0f} bytes")]
    for batch in (1, 64):
        r = report.row(f"latency, batch {batch}")
        opt = report.row(f"latency, batch {batch}, float32 after graph optimisation")
        lo, hi = r.spread or [r.change, r.change]
        rows.append(Row(ISSUE, f"int8 {name}: onnxruntime latency int8 / float32, batch {batch}", r.change, "x",
                        note=f"{r.before:.3f} -> {r.after:.3f} ms, per-round IQR {lo:.2f}-{hi:.2f}x; the optimised "
                        f"float32 graph alone: {opt.change:.2f}x; 1 thread"))
    return rows


def _distillation(teacher: Project, teacher_path: Path, folder: Path, augment: str) -> list[Row]:
    """The student trained alone and taught by ``teacher``, 3 seeds each, on the teacher's data
    with ``augment``; rows of the mean final validation accuracies and their difference."""
    finals: dict[str, list[float]] = {"classification": [], "distillation": []}
    for task in finals:
        for seed in SEEDS:
            training = {**teacher.training, **STUDENT, "seed": seed, "task": task}
            if task == "distillation":
                training.update(TEACHING, teacher=teacher_path.name)
            p = Project(student(), "student", data={**teacher.data, "augment": augment}, training=training)
            save_project(p, folder / "student.json")  # the teacher's path is read beside it
            summary = Trainer(p, run_dir=folder / f"student_{augment}_{task}_{seed}").run()
            finals[task].append(100 * summary["final"]["accuracy"])
    alone, taught = (statistics.mean(finals[t]) for t in ("classification", "distillation"))
    each = ", ".join(f"{a:.2f}/{b:.2f}" for a, b in zip(finals["classification"], finals["distillation"], strict=True))
    what = "" if augment == "none" else f", training images augmented ({augment})"
    return [Row(ISSUE, f"student alone{what}: validation accuracy, mean of 3 seeds", alone, "%",
                note=f"perceptron 64 -> 64 -> 10, {STUDENT['epochs']} epochs, lr {STUDENT['lr']}"),
            Row(ISSUE, f"student taught by the ResNet{what}: validation accuracy, mean of 3 seeds", taught, "%",
                note=f"T {TEACHING['temperature']}, alpha {TEACHING['alpha']}"),
            Row(ISSUE, f"distillation{what}: taught - alone (mean of 3 seeds)", taught - alone, "points", 0.0,
                lower_is_better=False, note=f"per seed alone/taught: {each}")]


def run() -> list[Row]:
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # steady latency on a shared machine, and the models are small
    try:
        return _run()
    finally:
        torch.set_num_threads(threads)


def _run() -> list[Row]:
    rows: list[Row] = []
    with tempfile.TemporaryDirectory(prefix="bench-compress-") as tmp:
        folder = Path(tmp)
        torch.manual_seed(0)
        cnn, _ = _train("digits_cnn", folder)
        torch.manual_seed(0)
        resnet, resnet_path = _train("digits_resnet", folder)

        for name, project in (("digits CNN", cnn), ("digits ResNet", resnet)):
            report = quantize(project, folder / f"{project.path.stem}_int8.onnx", mode="int8", threads=1)
            rows += _quantized_rows(name, report)

        report = prune_structured(cnn, folder / "cnn_pruned.json", amount=0.5, finetune_epochs=FINETUNE_EPOCHS,
                                  threads=1)
        macs = report.row("MACs per sample")
        rows.append(Row(ISSUE, "prune 50 % of the CNN's channels: MACs after / before", macs.change, "x", 0.55,
                        note=f"{macs.before:,.0f} -> {macs.after:,.0f} (torch.utils.flop_counter)"))
        raw, tuned = report.row("validation accuracy (pruned, before fine-tuning)"), report.row("validation accuracy")
        rows.append(Row(ISSUE, f"prune 50 % of the CNN's channels: accuracy drop after {FINETUNE_EPOCHS} epochs of "
                        "fine-tuning", 0.0 - tuned.change, "points", 1.0,
                        note=f"{tuned.before:.2f} % -> {tuned.after:.2f} % (before fine-tuning {raw.after:.2f} %)"))
        lat = report.row("latency, batch 64")
        rows.append(Row(ISSUE, "pruned CNN: PyTorch latency after / before, batch 64", lat.change, "x",
                        note=f"{lat.before:.3f} -> {lat.after:.3f} ms, 1 thread"))

        for augment in ("none", "shift"):
            rows += _distillation(resnet, resnet_path, folder, augment)
    return rows


if __name__ == "__main__":
    os.nice(10)
    from bench.run_all import table

    print(table(run()))
