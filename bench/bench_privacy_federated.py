"""Issue 14 benchmarks for private and federated training, on the digits samples.

- ``samples/dp_digits.json`` trained as it is (DP-SGD with Opacus, the noise chosen by Opacus for
  epsilon = 3 at delta = 1e-5 over its 40 epochs): target >= 0.90 validation accuracy at a spent
  epsilon <= 3 (Opacus' RDP accountant);
- ``samples/federated_digits.json`` federated with Flower's simulation, 10 clients, Dirichlet
  alpha = 0.5 label skew, FedAvg, 20 rounds (2 local epochs each): target >= 0.95 of the same
  project's accuracy trained centrally (its own training settings).

Run: ``nice python -m bench.run_all --only privacy_federated`` or ``nice python bench/bench_privacy_federated.py``.
"""

from __future__ import annotations

import sys
import tempfile
import time
import warnings
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.common import Row  # noqa: E402
from workbench.project import load_project  # noqa: E402
from workbench.training import Trainer  # noqa: E402

ISSUE = "14"


def _train(project_file: Path, run_dir: Path) -> tuple[dict, float]:
    t = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        summary = Trainer(load_project(project_file), run_dir=run_dir).run()
    return summary, time.perf_counter() - t


def run() -> list[Row]:
    from workbench.federated import FederatedSettings, simulate

    rows: list[Row] = []
    with tempfile.TemporaryDirectory() as tmp:
        dp, seconds = _train(ROOT / "samples" / "dp_digits.json", Path(tmp) / "dp")
        note = f"{dp['epochs_done']} epochs in {seconds:.0f} s; delta {dp['delta']:g}; Opacus RDP accountant"
        rows.append(Row(ISSUE, "dp_digits: validation accuracy (DP-SGD)", dp["final"]["accuracy"], "",
                        0.90, lower_is_better=False, note=note))
        rows.append(Row(ISSUE, "dp_digits: epsilon spent", dp["epsilon"], "", 3.0, note="target_epsilon 3"))

        fed_file = ROOT / "samples" / "federated_digits.json"
        central, seconds_c = _train(fed_file, Path(tmp) / "central")
        settings = FederatedSettings(str(fed_file), clients=10, rounds=20, partition="dirichlet:0.5")
        t = time.perf_counter()
        fed = simulate(settings, Path(tmp) / "federated")
        seconds_f = time.perf_counter() - t
        ratio = fed["final"]["accuracy"] / central["final"]["accuracy"]
        rows.append(Row(ISSUE, "federated_digits: 10 clients, dirichlet 0.5, FedAvg, 20 rounds / centralised accuracy",
                        ratio, "x", 0.95, lower_is_better=False,
                        note=f"{fed['final']['accuracy']:.4f} vs {central['final']['accuracy']:.4f}; "
                             f"{seconds_f:.0f} s simulated (Flower + Ray) vs {seconds_c:.0f} s centrally; "
                             f"client sizes {fed['client_samples']}"))
    return rows


if __name__ == "__main__":
    for row in run():
        verdict = "" if row.ok is None else (" ok" if row.ok else " MISSED")
        print(f"{row.name}: {row.value:.4g} {row.unit} (target {row.target}){verdict}  {row.note}")
