"""The runs table: one row per run folder (sweep trials with their study, number, values and state),
its CSV read back with the csv module, and what a damaged folder gives."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

import pytest

from workbench.project import load_project
from workbench.runs_table import runs_table, table_csv, write_csv
from workbench.training import Trainer
from workbench.training.runs import runs_root

optuna = pytest.importorskip("optuna", reason="the sweep extra (optuna) is not installed")

from tests.core.test_sweep import one_thread, space, sweep, tiny  # noqa: E402,F401


def test_runs_and_trials_in_one_table_and_its_csv(tmp_path: Path) -> None:
    path = tiny(tmp_path)
    plain = Trainer(load_project(path)).run()
    study = sweep(path, space("fc1.out_features=8,12", sampler="grid"))
    columns, rows = runs_table(runs_root(path))
    assert len(rows) == 3
    assert columns[:4] == ["run", "status", "study", "trial"]
    assert {"lr", "optimizer", "epochs", "batch_size", "fc1.out_features", "val_accuracy", "params"} <= set(columns)
    trials = {r.trial: r for r in rows if r.trial is not None}
    assert set(trials) == {0, 1}
    for t in study.get_trials():
        row = trials[t.number]
        assert row.study == "p" and row.status == "complete"
        assert row.cell("fc1.out_features") == t.params["fc1.out_features"]
        assert row.cell("val_accuracy") == t.value and row.cell("params") == t.user_attrs["params"]
    other = next(r for r in rows if r.trial is None)
    assert other.status == "finished" and other.cell("val_accuracy") == plain["final"]["accuracy"]
    assert other.cell("fc1.out_features") is None
    target = tmp_path / "runs.csv"
    write_csv(target, columns, rows)
    read = list(csv.DictReader(io.StringIO(target.read_text())))
    assert [r["run"] for r in read] == [r.name for r in rows]
    for line, row in zip(read, rows, strict=True):
        assert float(line["val_accuracy"]) == row.cell("val_accuracy")  # full precision, not a rounded text
        assert line["fc1.out_features"] == ("" if row.trial is None else str(row.cell("fc1.out_features")))
    assert target.read_text() == table_csv(columns, rows)


def test_a_damaged_run_folder_gives_empty_cells(tmp_path: Path) -> None:
    root = tmp_path / "runs" / "p"
    for name, config, summary in (("a", "{not json", None), ("b", json.dumps({"training": {"lr": 0.5}}), "[1]")):
        (root / name).mkdir(parents=True)
        (root / name / "config.json").write_text(config)
        if summary is not None:
            (root / name / "summary.json").write_text(summary)
    columns, rows = runs_table(root)
    assert [r.name for r in rows] == ["b", "a"] and [r.status for r in rows] == ["incomplete", "incomplete"]
    assert rows[0].cell("lr") == 0.5 and rows[1].cell("lr") is None and "trial" not in columns
