"""Data-parallel training under torchrun (gloo, 2 local processes) against the one-process engine."""

from __future__ import annotations

import importlib.util
import json
import os
import shlex
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from workbench.builder import GraphBuilder
from workbench.config import DATA_FIELDS, TRAINING_FIELDS, validate_section
from workbench.project import Project, save_project
from workbench.training import Trainer
from workbench.training.distributed import GlobalBatchSampler, epoch_seeds, refuse, share_size

ROOT = Path(__file__).resolve().parents[2]
ENV = {**os.environ, "PYTHONPATH": str(ROOT)}


def mlp_project(path: Path, batch_size: int = 64, augment: str = "shift", aux_head: bool = False) -> Path:
    """No dropout or BatchNorm (both are per process under DDP): the two runs must compute the same.
    ``aux_head``: a second output the loss does not read (its parameters get no gradient)."""
    b = GraphBuilder()
    x = b.input((64,), name="pixels")
    x = b.layer("ReLU", b.layer("Linear", x, out_features=32, name="fc1"), name="relu1")
    b.output(b.layer("Linear", x, out_features=10, name="classifier"), name="logits")
    if aux_head:
        b.output(b.layer("Linear", x, out_features=2, name="aux"), name="aux_out")
    project = Project(b.auto_layout(), "ddp", "",
                      validate_section(DATA_FIELDS, {"dataset": "digits", "batch_size": batch_size, "augment": augment}),
                      validate_section(TRAINING_FIELDS, {"epochs": 2, "lr": 0.01, "device": "cpu", "seed": 5}))
    return save_project(project, path)


def workbench(cap: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    """The command line in this process (torch is imported already); the ranks are new processes."""
    from workbench.cli import main

    code = main(list(args))
    out, err = cap.readouterr()
    return code, out, err


def batch_losses(run: Path) -> list[float]:
    lines = [json.loads(ln) for ln in (run / "metrics.jsonl").read_text().splitlines()]
    return [e["loss"] for e in lines if e["type"] == "batch"]


def one_process(project: Path, out: Path, epochs: int, resume: Path | None = None) -> list[float]:
    from workbench.project import load_project

    summary = Trainer(load_project(project), {"epochs": epochs}, run_dir=out, resume=resume).run()
    assert summary["status"] == "finished"
    return batch_losses(out)


def test_the_ranks_shares_are_the_one_process_batches() -> None:
    """Every global batch, split over 3 ranks, is the batch of the one-process loader (same seed)."""
    data = torch.utils.data.TensorDataset(torch.arange(50.0))
    seed, epoch, bs = 7, 3, 12
    single = list(torch.utils.data.DataLoader(
        data, batch_size=bs, shuffle=True, generator=torch.Generator().manual_seed(epoch_seeds(seed, epoch)[0])))
    samplers = [GlobalBatchSampler(data, bs, r, 3, True, seed) for r in range(3)]
    for s in samplers:
        s.set_epoch(epoch)
    shares = [list(s) for s in samplers]
    assert len(shares[0]) == len(single) == 5
    for i, (batch,) in enumerate(single):  # a rank with an empty share trains on one sample with weight 0
        union = sorted(j for r in range(3) if share_size(len(batch), 3, r) for j in shares[r][i])
        assert union == sorted(int(v) for v in batch)
    assert [len(shares[r][-1]) for r in range(3)] == [1, 1, 1]  # the last batch holds 50 - 48 = 2
    samplers[0].set_epoch(epoch + 1)
    assert list(samplers[0]) != shares[0]  # set_epoch picks another order
    assert [share_size(2, 3, r) for r in range(3)] == [1, 1, 0]  # a rank with no sample gets weight 0


def test_print_command_is_torchrun_and_runs_two_processes_like_one(tmp_path: Path,
                                                                  capfd: pytest.CaptureFixture[str]) -> None:
    project = mlp_project(tmp_path / "p.json")
    code, out, err = workbench(capfd, "train", str(project), "--nproc-per-node", "2", "--epochs", "1", "--threads", "1", "--quiet",
                  "--out", str(tmp_path / "two"), "--print-command")
    assert code == 0, err
    cmd = shlex.split(out.strip())
    assert cmd[:3] == [sys.executable, "-m", "torch.distributed.run"]
    assert "--nproc-per-node=2" in cmd and "--standalone" in cmd
    assert cmd[cmd.index("-m", 3):] == ["-m", "workbench", "train", str(project), "--epochs", "1", "--threads", "1",
                                        "--quiet", "--out", str(tmp_path / "two")]
    assert not (tmp_path / "two").exists()  # printed, not run

    ran = subprocess.run(cmd, capture_output=True, text=True, env=ENV, cwd=ROOT, timeout=120)
    assert ran.returncode == 0, ran.stderr
    one = one_process(project, tmp_path / "one", epochs=2)
    two = batch_losses(tmp_path / "two")
    assert len(two) == 23  # 1438 samples in batches of 64: 22 full and one of 30 (15 per rank)
    assert max(abs(a - b) for a, b in zip(one, two, strict=False)) < 1e-5
    summary = json.loads((tmp_path / "two" / "summary.json").read_text())
    assert summary["distributed"] == {"world_size": 2, "backend": "gloo", "global_batch": 64, "batch_per_rank": 32}
    if importlib.util.find_spec("tensorboard"):  # rank 0 alone writes TensorBoard's file, with the global losses
        from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

        assert len(list((tmp_path / "two").glob("events.out.tfevents*"))) == 1
        board = EventAccumulator(str(tmp_path / "two"), size_guidance={"scalars": 0}).Reload()
        assert [v.value for v in board.Scalars("train/loss")] == pytest.approx(two, rel=1e-6)

    # a checkpoint of 2 processes resumes in 1 ...
    resumed_one = one_process(project, tmp_path / "two-then-one", epochs=2,
                              resume=tmp_path / "two" / "checkpoints" / "last.safetensors")
    assert max(abs(a - b) for a, b in zip(one[23:], resumed_one, strict=True)) < 1e-5
    # ... and one of 1 process in 2
    one_process(project, tmp_path / "one-epoch", epochs=1)
    code, out, err = workbench(capfd, "train", str(project), "--nproc-per-node", "2", "--epochs", "2", "--threads",
                               "1", "--resume", str(tmp_path / "one-epoch" / "checkpoints" / "last.safetensors"),
                               "--out", str(tmp_path / "one-then-two"))
    assert code == 0, err
    assert out.count("run folder:") == 1 and err.count("training on cpu x 2 processes") == 1  # rank 0 alone reports
    resumed_two = batch_losses(tmp_path / "one-then-two")
    assert len(resumed_two) == 23
    assert max(abs(a - b) for a, b in zip(one[23:], resumed_two, strict=True)) < 1e-5


def test_a_batch_that_does_not_split_over_the_processes_is_refused(tmp_path: Path,
                                                                   capsys: pytest.CaptureFixture[str]) -> None:
    project = mlp_project(tmp_path / "p.json", batch_size=63)
    code, _, err = workbench(capsys, "train", str(project), "--nproc-per-node", "2", "--print-command")
    assert code == 1
    assert "data.batch_size: 63 does not split evenly over 2 processes" in err
    code, _, err = workbench(capsys, "train", str(project), "--nproc-per-node", "3", "--batch-size", "64")
    assert code == 1 and "64 does not split evenly over 3" in err
    code, _, err = workbench(capsys, "train", str(project), "--nproc-per-node", "2", "--nnodes", "2", "--print-command")
    assert code == 1 and "--rdzv-endpoint" in err
    # and a rank started by torchrun directly refuses it too, before joining the others
    from workbench.training.distributed import DistributedError

    env = {"RANK": "0", "WORLD_SIZE": "2", "LOCAL_RANK": "0"}
    with pytest.MonkeyPatch.context() as mp:
        for k, v in env.items():
            mp.setenv(k, v)
        from workbench.project import load_project

        with pytest.raises(DistributedError, match=r"data\.batch_size: 63 does not split evenly over 2 processes"):
            Trainer(load_project(project), run_dir=tmp_path / "r", distributed=True).run()
        with pytest.raises(DistributedError, match=r"training\.task: the adversarial task"):
            refuse("adversarial", 64)
    assert not (tmp_path / "r").exists()
    with pytest.raises(DistributedError, match="needs torchrun's environment"):  # no RANK... here
        Trainer(load_project(project), run_dir=tmp_path / "r", distributed=True).run()


def test_several_machines_pass_the_rendezvous_through(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    project = mlp_project(tmp_path / "p.json")
    code, out, err = workbench(capsys, "train", str(project), "--nproc-per-node", "4", "--nnodes", "2", "--node-rank", "1",
                  "--rdzv-endpoint", "head:29400", "--rdzv-backend", "c10d", "--rdzv-id", "job 7", "--print-command")
    assert code == 0, err
    cmd = shlex.split(out.strip())
    assert cmd[3:10] == ["--nproc-per-node=4", "--nnodes=2", "--node-rank=1", "--rdzv-endpoint=head:29400",
                         "--rdzv-backend=c10d", "--rdzv-id=job 7", "--max-restarts=0"]
    assert cmd[10:] == ["-m", "workbench", "train", str(project)]


def _wait_for_steps(run: Path, steps: int, proc: subprocess.Popen, timeout: float = 60) -> None:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if (run / "metrics.jsonl").exists() and len(batch_losses(run)) >= steps:
            return
        assert proc.poll() is None, proc.communicate()
        time.sleep(0.1)
    raise AssertionError("the run made no progress")


def _rank_pid(marker: str, rank: int) -> int:
    """The pid of the rank whose environment holds ``marker`` (our stop file)."""
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            env = (entry / "environ").read_bytes().split(b"\0")
        except OSError:
            continue
        if f"WORKBENCH_STOP_FILE={marker}".encode() in env and f"RANK={rank}".encode() in env:
            return int(entry.name)
    raise AssertionError(f"rank {rank} not found")


@pytest.mark.slow  # about 50 s on 2 busy cores: two runs of 2 processes
@pytest.mark.skipif(not Path("/proc/self/environ").exists(), reason="needs /proc to find a rank")
def test_pause_and_stop_reach_every_rank_and_a_dead_rank_ends_the_run(tmp_path: Path) -> None:
    project = mlp_project(tmp_path / "p.json", aux_head=True)  # DDP must look for parameters without gradients
    stop, pause = tmp_path / "stop", tmp_path / "pause"
    env = {**ENV, "WORKBENCH_STOP_FILE": str(stop), "WORKBENCH_PAUSE_FILE": str(pause)}
    args = [sys.executable, "-m", "workbench", "train", str(project), "--nproc-per-node", "2", "--epochs", "200",
            "--threads", "1", "--quiet", "--dist-timeout", "20"]
    proc = subprocess.Popen([*args, "--out", str(tmp_path / "a")], env=env, cwd=ROOT, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    _wait_for_steps(tmp_path / "a", 5, proc)
    pause.touch()
    time.sleep(1.0)
    paused_at = len(batch_losses(tmp_path / "a"))
    time.sleep(1.5)
    assert len(batch_losses(tmp_path / "a")) == paused_at  # both ranks wait (no collective timed out)
    pause.unlink()
    _wait_for_steps(tmp_path / "a", paused_at + 5, proc)
    stop.touch()
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err
    summary = json.loads((tmp_path / "a" / "summary.json").read_text())
    assert summary["status"] == "stopped" and summary["epochs_done"] < 200
    assert (tmp_path / "a" / "checkpoints" / "last.safetensors").exists()

    stop.unlink()
    proc = subprocess.Popen([*args, "--out", str(tmp_path / "b")], env=env, cwd=ROOT, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        _wait_for_steps(tmp_path / "b", 5, proc)
        os.kill(_rank_pid(str(stop), 1), 9)
        t0 = time.monotonic()
        _, err = proc.communicate(timeout=90)
        assert time.monotonic() - t0 < 60  # no hang
    finally:
        proc.kill()  # should the test fail: torchrun dies with its launcher, and the ranks with it
    assert proc.returncode == 1
    assert "the distributed run failed" in err
    assert "Signal 9" in err or "SIGKILL" in err or "exitcode" in err  # torchrun names the rank and how it died
    summary = json.loads((tmp_path / "b" / "summary.json").read_text())
    assert summary["status"] == "failed"


def test_the_editors_worker_refuses_a_batch_that_does_not_split(tmp_path: Path) -> None:
    from workbench.project import load_project
    from workbench.training.worker import TrainingProcess

    project = load_project(mlp_project(tmp_path / "p.json", batch_size=63))
    proc = TrainingProcess(project.to_json(), project.path, {"device": "cpu"}, processes=2)
    proc.start()
    events: list[dict] = []
    end = time.monotonic() + 120
    while not proc.finished and time.monotonic() < end:
        events += proc.poll()
        time.sleep(0.05)
    errors = [e["message"] for e in events if e["type"] == "error"]
    assert errors and "data.batch_size: 63 does not split evenly over 2 processes" in errors[0]
    assert not (tmp_path / "runs").exists()


@pytest.mark.slow  # about 30 s on 2 busy cores
@pytest.mark.skipif(not Path("/proc/self/environ").exists(), reason="needs /proc to find the ranks")
def test_the_ranks_end_when_the_editors_worker_is_killed(tmp_path: Path) -> None:
    from workbench.project import load_project
    from workbench.training.worker import TrainingProcess

    project = load_project(mlp_project(tmp_path / "p.json"))
    proc = TrainingProcess(project.to_json(), project.path, {"device": "cpu", "epochs": 500}, processes=2)
    proc.start()
    events: list[dict] = []
    end = time.monotonic() + 120
    while sum(e["type"] == "batch" for e in events) < 3 and time.monotonic() < end:
        events += proc.poll()
        assert not any(e["type"] in ("error", "died") for e in events), events
        time.sleep(0.05)
    start = next(e for e in events if e["type"] == "start")
    assert start["processes"] == 2

    def ranks() -> list[int]:
        found = []
        for entry in Path("/proc").iterdir():
            try:
                env = (entry / "environ").read_bytes().split(b"\0")
            except OSError:
                continue
            if f"WORKBENCH_PROJECT_PATH={project.path}".encode() in env and any(e.startswith(b"RANK=") for e in env):
                found.append(int(entry.name))
        return found

    assert len(ranks()) == 2
    proc.pause()  # a paused rank 0 sends no events: only the launcher's own end can reach the ranks
    end = time.monotonic() + 60
    while not any(e["type"] == "status" and e["status"] == "paused" for e in events) and time.monotonic() < end:
        events += proc.poll()
        time.sleep(0.05)
    proc.kill()
    end = time.monotonic() + 60
    try:
        while ranks() and time.monotonic() < end:
            time.sleep(0.2)
        assert ranks() == []  # no orphan trains on
    finally:
        for pid in ranks():  # what this test started, should it fail
            os.kill(pid, 9)


def test_each_rank_gets_its_device_and_backend_in_one_place() -> None:
    from workbench.training.devices import DeviceError, rank_device

    assert rank_device("cpu", 1) == (torch.device("cpu"), "gloo")
    if not torch.cuda.is_available():
        assert rank_device("auto", 0) == (torch.device("cpu"), "gloo")
        with pytest.raises(DeviceError, match="cuda:1"):
            rank_device("cuda:1", 0)


@pytest.mark.slow  # about 20 s: the ranks start and refuse
def test_the_editor_shows_a_ranks_refusal_and_keeps_no_empty_run_folder(tmp_path: Path) -> None:
    from workbench.project import load_project
    from workbench.training.worker import TrainingProcess

    project = load_project(mlp_project(tmp_path / "p.json"))
    project.training["task"] = "adversarial"  # each rank refuses it before joining the others
    proc = TrainingProcess(project.to_json(), project.path, {"device": "cpu"}, processes=2)
    proc.start()
    events: list[dict] = []
    end = time.monotonic() + 120
    while not proc.finished and time.monotonic() < end:
        events += proc.poll()
        time.sleep(0.05)
    errors = [e["message"] for e in events if e["type"] == "error"]
    assert errors and errors[0].startswith("training.task: the adversarial task trains two models"), errors
    assert list((tmp_path / "runs" / "p").iterdir()) == []
