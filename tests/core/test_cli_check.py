"""`workbench check` as a user runs it: a real subprocess, exit codes 0/1/2."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from workbench.builder import GraphBuilder
from workbench.project import Project, save_project

SAMPLES = sorted((Path(__file__).resolve().parents[2] / "samples").glob("*.json"))


def run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "workbench", *args], capture_output=True, text=True, timeout=120)


def test_valid_sample_prints_a_table_and_exits_0() -> None:
    r = run("check", str(SAMPLES[0]))
    assert r.returncode == 0, r.stderr
    assert "total parameters:" in r.stdout and "output shape(s)" in r.stdout


def test_json_report(tmp_path: Path) -> None:
    b = GraphBuilder()
    x = b.input((1, 28, 28), name="img")
    x = b.layer("Flatten", x, name="flatten1")
    b.output(b.layer("Conv2d", x, name="conv2"))
    path = save_project(Project(b.graph, "broken"), tmp_path / "broken.json")
    r = run("check", str(path), "--json")
    assert r.returncode == 1
    doc = json.loads(r.stdout)
    assert [n["name"] for n in doc["nodes"]] == ["img", "flatten1", "conv2", "output1"]
    assert doc["nodes"][1]["output_shapes"] == {"y": "[N, 784]"}
    assert doc["errors"] == [
        {"node": "conv2", "param": None,
         "message": 'Conv2d "conv2": expects [N, C, H, W], got [N, 784] from "flatten1"'}
    ]
    assert doc["total_params"] == 0


def test_unreadable_file_exits_2(tmp_path: Path) -> None:
    bad = tmp_path / "bad.json"
    bad.write_text("{")
    r = run("check", str(bad))
    assert r.returncode == 2
    assert "bad.json: not valid JSON" in r.stderr and "Traceback" not in r.stderr
    assert run("check", str(tmp_path / "nope.json")).returncode == 2


@pytest.mark.parametrize("sample", SAMPLES, ids=lambda p: p.name)
def test_every_sample_checks_clean(sample: Path) -> None:
    from workbench.cli import check_report
    from workbench.project import load_project

    project = load_project(sample)
    report = check_report(project)
    # a sample that starts from another sample's weights waits for that one to be trained (a warning, not an error)
    waiting = [w for w in report["warnings"] if project.training["init_from"] and
               w["message"].startswith("training.init_from:") and "has no trained run" in w["message"]]
    assert report["errors"] == [] and report["warnings"] == waiting
    assert report["total_params"] > 0
