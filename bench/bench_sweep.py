"""Issue 12 benchmarks: a sweep on the digits CNN sample (Optuna, median pruner, worker processes).

- sweep overhead per trial beyond its training: a trial's wall time in the study (Optuna's start
  to its end: sampling, applying the values, pre-flight, data and model set-up, run folder, storage
  writes) minus the engine's training time (``summary.json``'s ``time_s``); the same difference for
  a plain ``Trainer.run()`` (data and model set-up alone) is reported beside it;
- trials per hour and the share of trials pruned.

    python -m bench.bench_sweep [--trials 12] [--jobs 2] [--epochs 3]
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from pathlib import Path

from bench.common import Row

ROOT = Path(__file__).resolve().parent.parent
CNN = ROOT / "samples" / "digits_cnn.json"


def plain_setup_s(project_path: Path, epochs: int) -> float:
    """Wall time of a plain training run minus its training loop (data and model set-up, summary)."""
    from workbench.project import load_project
    from workbench.training import Trainer

    t0 = time.perf_counter()
    summary = Trainer(load_project(project_path), {"epochs": epochs, "device": "cpu"}).run()
    return time.perf_counter() - t0 - summary["time_s"]


def run(trials: int = 12, jobs: int = 2, epochs: int = 3) -> list[Row]:
    import optuna

    from workbench.project import load_project, save_project
    from workbench.sweep.spec import SweepSpec, parse_param
    from workbench.sweep.study import SweepOptions, run_sweep

    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "cnn.json"
        save_project(load_project(CNN), path)
        plain = statistics.median(plain_setup_s(path, 1) for _ in range(2))
        spec = SweepSpec(tuple(parse_param(t) for t in ("lr=float:1e-4:3e-2:log", "conv1.out_channels=int:4:32:log",
                                                        "fc.out_features=int:16:128:log")), pruner="median", seed=0)
        t0 = time.perf_counter()
        study = run_sweep(load_project(path), spec, SweepOptions(trials=trials, jobs=jobs, threads=1,
                                                                 overrides={"epochs": epochs, "device": "cpu"}))
        wall = time.perf_counter() - t0
        done = [t for t in study.get_trials() if t.state in (optuna.trial.TrialState.COMPLETE,
                                                              optuna.trial.TrialState.PRUNED)]
        overheads = []
        for t in done:
            summary = json.loads((Path(t.user_attrs["run_dir"]) / "summary.json").read_text())
            overheads.append((t.datetime_complete - t.datetime_start).total_seconds() - summary["time_s"])
        pruned = sum(t.state == optuna.trial.TrialState.PRUNED for t in done)
        best = study.best_value
    overhead = statistics.median(overheads)
    return [
        Row("12", f"sweep overhead per trial beyond its training (digits CNN, {jobs} workers), median", overhead, "s",
            1.0, note=f"max {max(overheads):.2f} s; a plain run's own set-up: {plain:.2f} s"),
        Row("12", f"sweep trials per hour (digits CNN, {epochs} epochs, median pruner, {jobs} workers x 1 thread)",
            len(done) / wall * 3600, "trials/h", note=f"{len(done)} trials in {wall:.0f} s; best val_accuracy "
            f"{best:.3f}"),
        Row("12", "share of sweep trials pruned (median pruner, 3 start-up trials)", pruned / max(1, len(done)), "",
            note=f"{pruned} of {len(done)}"),
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=12)
    parser.add_argument("--jobs", type=int, default=2)
    parser.add_argument("--epochs", type=int, default=3)
    args = parser.parse_args()
    for r in run(args.trials, args.jobs, args.epochs):
        target = "" if r.target is None else f" (target <= {r.target:g} {r.unit}: {'ok' if r.ok else 'MISSED'})"
        print(f"{r.name}: {r.value:.4g} {r.unit}{target}  {r.note}")


if __name__ == "__main__":
    main()
