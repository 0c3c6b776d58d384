"""Issue 6 benchmarks: every sample trained headless on CPU with its own settings:
the metric it reaches and the time; the language model against the unigram baseline."""

from __future__ import annotations

import math
import tempfile
from pathlib import Path

import torch

from bench.common import Row

ROOT = Path(__file__).resolve().parent.parent
TARGETS = {  # sample -> (metric, target, higher is better)
    "digits_mlp": ("accuracy", 0.95, True),
    "digits_cnn": ("accuracy", 0.97, True),
    "digits_resnet": ("accuracy", 0.97, True),
    "digits_lstm": ("accuracy", 0.90, True),
    "digits_gru": ("accuracy", 0.90, True),
    "digits_transformer": ("accuracy", 0.90, True),
    "digits_autoencoder": ("mse", 0.08, False),
}


def unigram_perplexity(project) -> float:
    from workbench.data import load_samples

    samples = load_samples(project.data)
    counts = torch.bincount(samples.y.reshape(-1), minlength=len(samples.class_names)).float()
    p = counts[counts > 0] / counts.sum()
    return float(torch.exp(-(p * p.log()).sum()))


def run() -> list[Row]:
    from workbench.project import load_project
    from workbench.training import Trainer

    tmp = Path(tempfile.mkdtemp())
    rows = []
    for sample in sorted((ROOT / "samples").glob("*.json")):
        project = load_project(sample)
        summary = Trainer(project, {}, run_dir=tmp / sample.stem).run()
        final = summary["final"]
        note = f"{summary['epochs_done']} epochs in {summary['time_s']:.1f} s"
        if sample.stem in TARGETS:
            metric, target, higher = TARGETS[sample.stem]
            value = summary.get("best_accuracy") if metric == "accuracy" else final[metric]
            rows.append(Row("6", f"{sample.stem}: validation {metric}", float(value), "", target,
                            lower_is_better=not higher, note=note))
        elif project.training["task"] == "adversarial":
            from workbench.compiler import compile_graph
            from workbench.imaging import grid, save_png
            from workbench.weights import apply_state, read_checkpoint

            generator = compile_graph(project.graph).module
            apply_state(generator, read_checkpoint(tmp / sample.stem / "checkpoints" / "last.safetensors")[0], "gan")
            with torch.no_grad():
                torch.manual_seed(0)
                images = generator.eval()(torch.randn(64, *project.graph.inputs()[0].params["shape"])).numpy()
            png = save_png(grid(images, 8), ROOT / "bench" / "gan_samples.png")
            rows.append(Row("6", f"{sample.stem}: discriminator accuracy on generated digits (0.5 = fooled half "
                            "the time)", final["d_accuracy_generated"], "", note=note + f"; real "
                            f"{final['d_accuracy_real']:.2f}; grid: bench/{png.name}"))
        elif project.training["task"] == "language_model":
            base = unigram_perplexity(project)
            rows.append(Row("6", f"{sample.stem}: validation perplexity (unigram baseline {base:.1f})",
                            final["perplexity"], "", base * 0.6,
                            note=note + f"; {final['perplexity'] / base:.2f} x the unigram baseline"))
        else:
            rows.append(Row("6", f"{sample.stem}: validation loss", final["loss"], "", note=note))
        if not math.isfinite(final.get("loss", 0.0)):
            raise RuntimeError(f"{sample.stem} diverged")
    return rows
