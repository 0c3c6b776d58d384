"""compress_job, the entry point the Compress dialog runs in a worker process: plain results for
each way a job ends (ok, refused, cancelled), progress as (done, total, sentence), and the thread
count it is given applied to its process."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import torch

from workbench.compress.jobs import compress_job
from workbench.compress.report import CompressReport
from workbench.project import load_project, save_project
from workbench.training import Trainer

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> tuple[str, str, str]:
    folder = tmp_path_factory.mktemp("job")
    project = load_project(ROOT / "samples" / "digits_cnn.json")
    project.training["epochs"] = 2
    path = save_project(project, folder / "cnn.json")
    torch.manual_seed(0)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # a shared machine: more threads only contend
    try:
        Trainer(project, run_dir=folder / "run").run()
    finally:
        torch.set_num_threads(threads)
    return project.to_json(), str(path), str(folder / "run" / "checkpoints" / "last.safetensors")


def test_a_job_ends_ok_refused_or_cancelled(trained: tuple[str, str, str], tmp_path: Path) -> None:
    text, path, ckpt = trained
    seen: list[tuple[Any, ...]] = []
    threads = torch.get_num_threads()
    try:
        result = compress_job("prune_structured", text, path, str(tmp_path / "a.json"),
                              {"checkpoint": ckpt, "amount": 0.5, "threads": 1}, lambda *a: seen.append(a))
        assert torch.get_num_threads() == 1  # the worker's torch follows the dialog's Threads
    finally:
        torch.set_num_threads(threads)
    assert result["status"] == "ok" and (tmp_path / "a.json").is_file()
    report = CompressReport.from_dict(result["report"])
    assert report.outputs == [str(tmp_path / "a.json"), str(tmp_path / "a.safetensors")]
    assert all(len(a) == 3 and 0 <= a[0] <= a[1] == 1000 and isinstance(a[2], str) for a in seen)
    assert seen[-1][0] == 1000 and any(a[2].startswith("writing") for a in seen)  # the dialog waits on "writing"

    result = compress_job("prune_unstructured", text, path, str(tmp_path / "b.json"),
                          {"checkpoint": ckpt, "amount": 0.97, "max_drop": 0.5, "threads": 1})
    assert result["status"] == "refused" and "nothing was written" in result["message"]
    assert CompressReport.from_dict(result["report"]).refused == result["message"]
    assert not (tmp_path / "b.json").exists()

    result = compress_job("quantize", text, path, str(tmp_path / "c.onnx"), {"checkpoint": ckpt, "mode": "fp16"},
                          stop=lambda: True)
    assert result == {"status": "cancelled", "report": None, "message": "cancelled by the user; nothing was written"}
    assert not (tmp_path / "c.onnx").exists()
