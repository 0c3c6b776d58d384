"""The training worker process: events stream back; a killed worker is reported, its
last checkpoint still loads."""

from __future__ import annotations

import time
from pathlib import Path

from workbench.compiler import compile_graph
from workbench.project import load_project
from workbench.training.worker import TrainingProcess
from workbench.weights import apply_state, read_checkpoint

SAMPLES = Path(__file__).resolve().parents[2] / "samples"


def drain_until(proc: TrainingProcess, predicate, timeout: float = 90.0) -> list[dict]:
    events: list[dict] = []
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        events += proc.poll()
        if predicate(events):
            return events
        time.sleep(0.02)
    raise AssertionError(f"timed out; got {[e['type'] for e in events][-20:]}")


def test_worker_streams_events_and_finishes(tmp_path: Path) -> None:
    project = load_project(SAMPLES / "digits_mlp.json")
    proc = TrainingProcess(project.to_json(), None, {"epochs": 2}, run_dir=tmp_path / "run")
    proc.start()
    events = drain_until(proc, lambda ev: any(e["type"] in ("done", "error") for e in ev))
    kinds = [e["type"] for e in events]
    assert kinds[0] == "devices" and "start" in kinds and kinds.count("epoch") == 2
    assert kinds.count("batch") >= 2 * 23  # every step arrives, bundled
    done = next(e for e in events if e["type"] == "done")
    assert done["summary"]["status"] == "finished"
    proc.process.join(30)
    assert proc.process.exitcode == 0


def test_killed_worker_is_reported_and_the_last_checkpoint_loads(tmp_path: Path) -> None:
    project = load_project(SAMPLES / "digits_cnn.json")
    proc = TrainingProcess(project.to_json(), None, {"epochs": 200}, run_dir=tmp_path / "run")
    proc.start()
    drain_until(proc, lambda ev: sum(e["type"] == "checkpoint" for e in ev) >= 2)
    proc.kill()
    events = drain_until(proc, lambda ev: any(e["type"] == "died" for e in ev), timeout=30)
    died = next(e for e in events if e["type"] == "died")
    assert "was killed" in died["message"] and died["exitcode"] < 0
    model, _, meta = read_checkpoint(tmp_path / "run" / "checkpoints" / "last.safetensors")
    assert meta["epoch"] >= 1
    apply_state(compile_graph(project.graph).module, model, "last checkpoint")


def test_pause_and_stop(tmp_path: Path) -> None:
    project = load_project(SAMPLES / "digits_mlp.json")
    proc = TrainingProcess(project.to_json(), None, {"epochs": 100}, run_dir=tmp_path / "run")
    proc.start()
    drain_until(proc, lambda ev: any(e["type"] == "batch" for e in ev))
    proc.pause()
    drain_until(proc, lambda ev: any(e["type"] == "status" and e["status"] == "paused" for e in ev))
    proc.stop()
    events = drain_until(proc, lambda ev: any(e["type"] == "done" for e in ev))
    assert next(e for e in events if e["type"] == "done")["summary"]["status"] == "stopped"
    assert (tmp_path / "run" / "checkpoints" / "last.safetensors").exists()
