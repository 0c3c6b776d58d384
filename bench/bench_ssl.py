"""Issue 14 benchmarks (self-supervised and transfer): the contrastive digits encoder's linear probe and k-NN
accuracy against the same encoder untrained; fine-tuning it with 10% of the labels against training the same
classifier from scratch on those labels (three data seeds); the masked autoencoder's masked-patch error
against filling the patches with the mean.

Run: ``nice python -m bench.bench_ssl`` (about 10-15 minutes on 2 cores).
"""

from __future__ import annotations

import statistics
import sys
import tempfile
from pathlib import Path

from bench.common import Row

ISSUE = "14"
ROOT = Path(__file__).resolve().parent.parent
SEEDS = (0, 1, 2)


def _train(project_path: Path, **overrides: object) -> tuple[dict, list[dict]]:
    from workbench.project import load_project
    from workbench.training import Trainer

    events: list[dict] = []
    summary = Trainer(load_project(project_path), dict(overrides), listeners=[events.append]).run()
    return summary, [e for e in events if e["type"] == "epoch"]


def run() -> list[Row]:
    import torch

    from workbench.project import save_project
    from workbench.samples_ssl import digits_contrastive, digits_finetune, digits_masked_autoencoder

    torch.set_num_threads(2)
    rows: list[Row] = []
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        save_project(digits_contrastive(), folder / "digits_contrastive.json")
        summary, epochs = _train(folder / "digits_contrastive.json")
        best = max(epochs, key=lambda e: e["val_probe_accuracy"])
        last = epochs[-1]
        rows.append(Row(ISSUE, "contrastive digits: linear probe on the encoder (val, last epoch)",
                        last["val_probe_accuracy"], "acc", 0.90, lower_is_better=False,
                        note=f"random-init encoder: {last['val_probe_accuracy_random']:.3f}; best epoch "
                        f"{best['epoch']}: {best['val_probe_accuracy']:.3f}; {summary['time_s']:.0f} s"))
        rows.append(Row(ISSUE, "contrastive digits: k-NN (k=20) on the encoder (val, last epoch)",
                        last["val_knn_accuracy"], "acc", note=f"random-init encoder: "
                        f"{last['val_knn_accuracy_random']:.3f}"))
        save_project(digits_finetune(), folder / "digits_finetune.json")
        gains, tuned, scratch = [], [], []
        for seed in SEEDS:
            a, _ = _train(folder / "digits_finetune.json", seed=seed)
            b, _ = _train(folder / "digits_finetune.json", seed=seed, init_from="")
            tuned.append(a["best_accuracy"])
            scratch.append(b["best_accuracy"])
            gains.append(100 * (a["best_accuracy"] - b["best_accuracy"]))
        rows.append(Row(ISSUE, "fine-tuning with 10% of the labels minus scratch (best val accuracy, points)",
                        statistics.mean(gains), "points", 3.0, lower_is_better=False,
                        note=f"fine-tuned {', '.join(f'{v:.3f}' for v in tuned)} vs scratch "
                        f"{', '.join(f'{v:.3f}' for v in scratch)} (seeds {SEEDS})"))
        save_project(digits_masked_autoencoder(), folder / "digits_mae.json")
        summary, epochs = _train(folder / "digits_mae.json")
        rows.append(Row(ISSUE, "masked autoencoder on digits: masked-patch MSE (val)", epochs[-1]["val_loss"], "mse",
                        note=f"{summary['time_s']:.0f} s; mean-fill baseline {_mean_fill_mse():.4f}"))
    return rows


def _mean_fill_mse() -> float:
    """The masked-patch error of predicting every masked pixel as the training split's mean pixel."""
    import torch

    from workbench.config import DATA_FIELDS, validate_section
    from workbench.data import load_data
    from workbench.training.ssl_ops import masked_mse, patch_mask

    data = load_data(validate_section(DATA_FIELDS, {"dataset": "digits"}), (1, 8, 8))
    x = data.val.tensors[0]
    mask = patch_mask(x.shape, 2, 0.5, torch.Generator().manual_seed(12345))
    return float(masked_mse(torch.full_like(x, float(data.train.tensors[0].mean())), x, mask))


if __name__ == "__main__":
    for r in run():
        print(f"{r.name}: {r.value:.4f} {r.unit} (target {r.target}, ok {r.ok}) {r.note}", flush=True)
    sys.exit(0)
