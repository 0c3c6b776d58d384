"""The runs of a project as one table: settings and final metrics per run, sweep trials included.

The runs panel shows it (sortable) and exports it as CSV; ``table_csv`` is that CSV, written
atomically by :func:`write_csv`.  A run folder is read, never changed: ``config.json`` gives the
settings, ``summary.json`` the final metrics, and a sweep trial's ``trial.json`` its study, number,
sampled values and state (a pruned trial's run reads "stopped" in its summary, "pruned" here).
"""

from __future__ import annotations

import csv
import io
import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .fileio import atomic_write_text
from .training.runs import RunInfo, list_runs

#: settings always shown (when any run has them); others appear when they differ between runs
CORE_SETTINGS = ("lr", "optimizer", "epochs", "batch_size")
#: summary values shown beside the final validation metrics
SUMMARY_KEYS = ("epochs_done", "params", "time_s")


@dataclass
class RunRow:
    """One run: ``settings`` (setting or node.parameter -> value) and ``metrics`` (name -> number)."""

    path: Path
    name: str
    status: str
    study: str = ""
    trial: int | None = None
    settings: dict[str, Any] = field(default_factory=dict)
    metrics: dict[str, float | int] = field(default_factory=dict)
    swept: tuple[str, ...] = ()
    """The names a sweep sampled for this run (its trial's parameters)."""

    def cell(self, column: str) -> Any:
        """The value in ``column`` (None when this run has none)."""
        fixed = {"run": self.name, "status": self.status, "study": self.study, "trial": self.trial}
        if column in fixed:
            return fixed[column]
        return self.settings.get(column, self.metrics.get(column))


def _json(path: Path) -> dict[str, Any]:
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return doc if isinstance(doc, dict) else {}


def run_row(run: RunInfo) -> RunRow:
    """The row of one run folder (missing or damaged files give empty cells, not errors)."""
    config = _json(run.path / "config.json")
    trial = _json(run.path / "trial.json")
    settings: dict[str, Any] = {}
    training, data = config.get("training"), config.get("data")
    if isinstance(training, dict):
        settings.update({k: v for k, v in training.items() if isinstance(v, (int, float, str, bool))})
    if isinstance(data, dict) and "batch_size" in data:
        settings["batch_size"] = data["batch_size"]
    params = trial.get("params")
    params = params if isinstance(params, dict) else {}
    if params:
        settings.update({k: v for k, v in params.items() if isinstance(v, (int, float, str, bool))})
    s = run.summary
    metrics: dict[str, float | int] = {}
    final = s.get("final")
    if isinstance(final, dict):
        metrics.update({f"val_{k}": float(v) for k, v in final.items() if isinstance(v, (int, float))})
    metrics.update({k: v for k, v in s.items()
                    if (k.startswith("best_") or k in SUMMARY_KEYS) and isinstance(v, (int, float))
                    and not isinstance(v, bool)})
    number = trial.get("trial")
    return RunRow(run.path, run.name, str(trial.get("state") or run.status),
                  str(trial.get("study", "")), number if isinstance(number, int) else None, settings, metrics,
                  tuple(params))


def runs_table(root: Path) -> tuple[list[str], list[RunRow]]:
    """The columns and the rows (newest run first) of the runs under ``root``."""
    rows = [run_row(r) for r in list_runs(root)]
    setting_keys: list[str] = []
    for key in [k for r in rows for k in r.settings]:
        if key in setting_keys:
            continue
        values = {json.dumps(r.settings.get(key), sort_keys=True) for r in rows}
        swept = any(key in r.swept for r in rows)
        if key in CORE_SETTINGS or swept or len(values) > 1:
            setting_keys.append(key)
    setting_keys.sort(key=lambda k: (k not in CORE_SETTINGS, CORE_SETTINGS.index(k) if k in CORE_SETTINGS else 0))
    metric_keys: list[str] = []
    for key in [k for r in rows for k in r.metrics]:
        if key not in metric_keys:
            metric_keys.append(key)
    metric_keys.sort(key=lambda k: (k in SUMMARY_KEYS, not k.startswith("val_"), k))
    fixed = ["run", "status"] + (["study", "trial"] if any(r.trial is not None for r in rows) else [])
    return fixed + setting_keys + metric_keys, rows


def table_csv(columns: list[str], rows: list[RunRow]) -> str:
    """The table as CSV text (a header, then one line per run; empty cells where a run has no value)."""
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(columns)
    for r in rows:
        writer.writerow(["" if (v := r.cell(c)) is None else repr(v) if isinstance(v, float) else v for c in columns])
    return buf.getvalue()


def write_csv(path: str | os.PathLike[str], columns: list[str], rows: list[RunRow]) -> None:
    """Write :func:`table_csv` atomically (an existing file is replaced whole or not at all)."""
    atomic_write_text(path, table_csv(columns, rows))
