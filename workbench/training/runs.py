"""Run folders: ``config.json`` (project snapshot), ``metrics.jsonl``, ``summary.json``,
``checkpoints/{last,best}.safetensors`` with JSON sidecars.  One writer, used by
the CLI and the GUI worker alike."""

from __future__ import annotations

import datetime
import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..fileio import atomic_write_text, open_append


def runs_root(project_path: Path | None) -> Path:
    """``<project folder>/runs/<project stem>``; ./runs/untitled for an unsaved project."""
    if project_path is None:
        return Path.cwd() / "runs" / "untitled"
    return project_path.parent / "runs" / project_path.stem


def new_run_dir(root: Path, name: str = "") -> Path:
    stamp = datetime.datetime.now().strftime("%Y%m%d-%H%M%S")
    slug = re.sub(r"[^A-Za-z0-9_-]+", "-", name).strip("-")[:40]
    base = root / (f"{stamp}-{slug}" if slug else stamp)
    path, i = base, 1
    while path.exists():
        i += 1
        path = base.with_name(f"{base.name}-{i}")
    path.mkdir(parents=True)
    return path


class RunWriter:
    """Appends events to ``metrics.jsonl`` and keeps ``summary.json`` current."""

    def __init__(self, run_dir: Path, config: dict[str, Any]) -> None:
        self.dir = run_dir
        self.dir.mkdir(parents=True, exist_ok=True)
        (self.dir / "checkpoints").mkdir(exist_ok=True)
        if not (self.dir / "config.json").exists():
            atomic_write_text(self.dir / "config.json", json.dumps(config, indent=2))
        self._fh = open_append(self.dir / "metrics.jsonl")  # a planted symlink is refused, not followed

    def __call__(self, event: dict[str, Any]) -> None:
        if event["type"] in ("epoch", "batch"):
            rec = {k: v for k, v in event.items() if k not in ("layers", "samples", "confusion")}
            self._fh.write(json.dumps(rec) + "\n")
            self._fh.flush()

    def write_summary(self, summary: dict[str, Any]) -> None:
        atomic_write_text(self.dir / "summary.json", json.dumps(summary, indent=2))

    def close(self) -> None:
        self._fh.close()


@dataclass
class RunInfo:
    path: Path
    name: str
    status: str
    summary: dict[str, Any]

    def epochs(self) -> list[dict[str, Any]]:
        return [m for m in read_metrics(self.path) if m.get("type") == "epoch"]


def read_metrics(run_dir: Path) -> list[dict[str, Any]]:
    out = []
    try:
        with open(run_dir / "metrics.jsonl", encoding="utf-8") as fh:
            for line in fh:
                try:
                    out.append(json.loads(line))
                except ValueError:
                    continue  # a line cut by a crash: skip it, keep the rest
    except OSError:
        pass
    return out


def list_runs(root: Path) -> list[RunInfo]:
    """Runs under ``root``, newest first; unreadable summaries show as 'incomplete'."""
    if not root.is_dir():
        return []
    runs = []
    for d in sorted((p for p in root.iterdir() if (p / "config.json").exists()), reverse=True):
        try:
            summary = json.loads((d / "summary.json").read_text())
        except (OSError, ValueError):
            summary = {}
        if not isinstance(summary, dict):  # a damaged file that is still JSON
            summary = {}
        runs.append(RunInfo(d, d.name, summary.get("status", "incomplete"), summary))
    return runs
