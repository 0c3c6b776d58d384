"""Nothing lost: atomic writes that refuse what is not a regular file, leave no temporary behind
and follow the umask; one-file checkpoints that stay consistent under SIGKILL; hostile
checkpoints refused by type, range and depth."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
import torch
from safetensors.torch import save_file
from torch import nn

from workbench.errors import OutputError
from workbench.fileio import atomic_path, atomic_write_text, read_input, refuse_overwriting_inputs
from workbench.weights import (
    WeightsError,
    WeightsFileError,
    apply_state,
    load_checkpoint,
    restore_optimizer,
    save_checkpoint,
    save_weights,
)

ROOT = Path(__file__).resolve().parents[2]


def _leftovers(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if p.name.endswith(".tmp"))


# --------------------------------------------------------------------------- the atomic writer


def test_a_directory_is_never_replaced(tmp_path: Path) -> None:
    target = tmp_path / "out.onnx"
    target.mkdir()
    (target / "keep.txt").write_text("precious")
    with pytest.raises(OutputError, match="is a directory"):
        atomic_write_text(target, "x")
    assert (target / "keep.txt").read_text() == "precious"
    assert _leftovers(tmp_path) == []


def test_a_pipe_or_device_is_never_replaced(tmp_path: Path) -> None:
    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)
    with pytest.raises(OutputError, match="pipe"):
        atomic_write_text(fifo, "x")
    assert fifo.is_fifo()
    calls = []
    real_replace = os.replace
    try:
        os.replace = lambda *a: calls.append(a)  # type: ignore[assignment]
        with pytest.raises(OutputError, match="device"):
            atomic_write_text("/dev/null", "x")
    finally:
        os.replace = real_replace
    assert calls == [] and Path("/dev/null").is_char_device()


def test_a_symlink_is_replaced_not_written_through(tmp_path: Path) -> None:
    victim = tmp_path / "victim.txt"
    victim.write_text("keep me")
    link = tmp_path / "link.json"
    link.symlink_to(victim)
    atomic_write_text(link, "new")
    assert victim.read_text() == "keep me"
    assert not link.is_symlink() and link.read_text() == "new"


def test_an_unwritable_output_is_one_clear_error_naming_it(tmp_path: Path) -> None:
    blocker = tmp_path / "file.txt"
    blocker.write_text("a file, not a folder")
    target = blocker / "sub" / "model.onnx"
    with pytest.raises(OutputError) as info:
        atomic_write_text(target, "x")
    assert str(target) in str(info.value) and ".tmp" not in str(info.value)


def test_no_temporary_file_survives_a_failing_writer(tmp_path: Path) -> None:
    target = tmp_path / "w.safetensors"
    target.write_text("old")
    with pytest.raises(RuntimeError), atomic_path(target) as tmp:
        tmp.write_bytes(b"half")
        raise RuntimeError("boom")
    assert target.read_text() == "old"
    assert _leftovers(tmp_path) == []

def test_weights_leave_nothing_behind_when_the_disk_fills_or_the_rename_fails(tmp_path: Path, monkeypatch) -> None:
    import errno

    target = tmp_path / "w.safetensors"
    target.write_text("old")
    real_write = Path.write_bytes

    def disk_full(self: Path, data: bytes) -> int:
        real_write(self, data[: len(data) // 2])
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(Path, "write_bytes", disk_full)
    with pytest.raises(OutputError, match=f"cannot write {target}: No space left"):
        save_weights(nn.Linear(2, 2), target)
    monkeypatch.setattr(Path, "write_bytes", real_write)

    def no_rename(a: object, b: object) -> None:
        raise OSError(errno.EXDEV, "Invalid cross-device link")

    monkeypatch.setattr(os, "replace", no_rename)
    with pytest.raises(OutputError):
        save_checkpoint(target, nn.Linear(2, 2), None, {"epoch": 1})
    monkeypatch.undo()
    # every file in the folder is one we named: no temporary of ours or of the safetensors library
    assert target.read_text() == "old"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["w.safetensors"]


@pytest.mark.parametrize("umask", [0o022, 0o077, 0o002])
def test_written_files_follow_the_umask(tmp_path: Path, umask: int) -> None:
    old = os.umask(umask)
    try:
        save_weights(nn.Linear(2, 2), tmp_path / "w.safetensors")
        save_checkpoint(tmp_path / "c.safetensors", nn.Linear(2, 2), None, {"epoch": 1})
        atomic_write_text(tmp_path / "p.json", "{}")
    finally:
        os.umask(old)
    for name in ("w.safetensors", "c.safetensors", "p.json"):
        assert (tmp_path / name).stat().st_mode & 0o777 == 0o666 & ~umask, name


def test_outputs_that_are_inputs_are_refused(tmp_path: Path) -> None:
    project = tmp_path / "p.json"
    project.write_text("{}")
    (tmp_path / "alias.json").symlink_to(project)
    with pytest.raises(OutputError, match="would overwrite the project"):
        refuse_overwriting_inputs([("the ONNX file", tmp_path / "alias.json")], [("the project", project)])
    with pytest.raises(OutputError, match="same file"):
        refuse_overwriting_inputs([("a", tmp_path / "x"), ("b", tmp_path / "." / "x")], [])
    refuse_overwriting_inputs([("a", tmp_path / "x")], [("the project", project)])


def test_reading_an_endless_input_stops_at_the_limit() -> None:
    from workbench.errors import InputError

    with pytest.raises(InputError, match="larger than"):
        read_input("/dev/zero", 1 << 20, "project")


# --------------------------------------------------------------------------- checkpoints


def _model() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 2))


def test_a_checkpoint_is_one_file_with_its_metadata(tmp_path: Path) -> None:
    model = _model()
    opt = torch.optim.Adam(model.parameters(), lr=0.01)
    model(torch.randn(3, 4)).sum().backward()
    opt.step()
    d = nn.Linear(2, 1)
    d_opt = torch.optim.SGD(d.parameters(), lr=0.1, momentum=0.9)
    d(torch.randn(3, 2)).sum().backward()
    d_opt.step()
    path = save_checkpoint(tmp_path / "last.safetensors", model, opt, {"epoch": 3, "step": 30, "metrics": {"a": 1.0}},
                           {"discriminator": (d, d_opt)})
    assert sorted(p.name for p in tmp_path.iterdir()) == ["last.safetensors"]
    ckpt = load_checkpoint(path)
    assert ckpt.meta["epoch"] == 3 and ckpt.meta["metrics"] == {"a": 1.0}
    fresh, fresh_opt = _model(), None
    apply_state(fresh, ckpt.state(), "ckpt")
    fresh_opt = torch.optim.Adam(fresh.parameters(), lr=0.01)
    restore_optimizer(fresh_opt, ckpt.optimizer_tensors(), ckpt.optimizer_meta())
    for a, b in zip(opt.state.values(), fresh_opt.state.values(), strict=True):
        torch.testing.assert_close(a["exp_avg"], b["exp_avg"])
    d2 = nn.Linear(2, 1)
    apply_state(d2, ckpt.state("discriminator"), "ckpt")
    torch.testing.assert_close(d2.weight, d.weight)
    assert ckpt.optimizer_meta("discriminator")["class"] == "SGD"


KILL_SCRIPT = """
import sys, torch
sys.path.insert(0, {root!r})
from torch import nn
from workbench.weights import save_checkpoint
model = nn.Linear(256, 256)
epoch = 0
while True:
    epoch += 1
    with torch.no_grad():
        for p in model.parameters():
            p.fill_(float(epoch))
    save_checkpoint({path!r}, model, None, {{"epoch": epoch, "step": epoch * 10}})
    if epoch == 1:
        print("ready", flush=True)
"""


def _kill_trials(tmp_path: Path, trials: int) -> None:
    path = tmp_path / "last.safetensors"
    script = KILL_SCRIPT.format(root=str(ROOT), path=str(path))
    import random

    rng = random.Random(1234)
    for _ in range(trials):
        proc = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True)
        assert proc.stdout is not None and proc.stdout.readline().strip() == "ready"
        time.sleep(rng.uniform(0.0, 0.25))
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        ckpt = load_checkpoint(path)  # never unreadable, never mixed
        epoch = ckpt.meta["epoch"]
        assert ckpt.meta["step"] == epoch * 10
        assert torch.all(ckpt.state()["weight"] == float(epoch)), "weights from one save, metadata from another"


def test_a_checkpoint_survives_sigkill_at_any_moment(tmp_path: Path) -> None:
    _kill_trials(tmp_path, 12)


@pytest.mark.slow
def test_a_checkpoint_survives_sigkill_at_any_moment_many_times(tmp_path: Path) -> None:
    _kill_trials(tmp_path, 400)


def _hostile(tmp_path: Path, meta: object, tensors: dict[str, torch.Tensor] | None = None) -> Path:
    path = tmp_path / "h.safetensors"
    tensors = tensors if tensors is not None else {f"model.{k}": v.contiguous() for k, v in _model().state_dict().items()}
    text = meta if isinstance(meta, str) else json.dumps(meta)
    save_file(tensors, str(path), metadata={"format": "neural-workbench-checkpoint", "version": "2", "meta": text})
    return path


@pytest.mark.parametrize(("meta", "where"), [
    ("[" * 100_000 + "]" * 100_000, "nested too deeply"),
    ({"a": [[[[[[[[[[1]]]]]]]]]]}, "nested deeper"),
    ({"epoch": -1}, "epoch"),
    ({"epoch": 10**30}, "epoch"),
    ({"epoch": "3"}, "epoch"),
    ({"epoch": 2.5}, "epoch"),
    ({"step": -5}, "step"),
    ({"metrics": {"accuracy": "high"}}, "metrics.accuracy"),
    ({"metrics": [1, 2]}, "metrics"),
    ({"best": "x"}, "best"),
    ({"schedule": [1]}, "schedule"),
    ({"schedule": {"plateau_factor": "abc"}}, "schedule.plateau_factor"),
    ({"schedule": {"plateau_factor": 0}}, "schedule.plateau_factor"),
    ({"schedule": {"plateau_bad": -1}}, "schedule.plateau_bad"),
    ({"optimizer": {"class": "Adam", "param_groups": [{"lr": {"x": 1}}]}}, r"param_groups\[0\]\.lr"),
    ({"optimizer": {"class": "Adam", "scalars": {"abc": {}}}}, "scalars"),
    ('{"epoch": NaN}', "NaN"),
    ("not json", "unreadable"),
])
def test_hostile_checkpoint_metadata_is_refused_by_name(tmp_path: Path, meta: object, where: str) -> None:
    with pytest.raises(WeightsFileError, match=where):
        load_checkpoint(_hostile(tmp_path, meta))


def test_tensor_dtype_is_checked_as_well_as_shape(tmp_path: Path) -> None:
    tensors = {f"model.{k}": v.double().contiguous() for k, v in _model().state_dict().items()}
    ckpt = load_checkpoint(_hostile(tmp_path, {"epoch": 1}, tensors))
    with pytest.raises(WeightsError, match="float64 vs model float32"):
        apply_state(_model(), ckpt.state(), "h")


def test_hostile_optimizer_tensors_are_refused(tmp_path: Path) -> None:
    model = _model()
    opt = torch.optim.Adam(model.parameters())
    meta = {"class": "Adam", "param_groups": [], "scalars": {}}
    for key, value in [("x.exp_avg", torch.zeros(1)), ("99.exp_avg", torch.zeros(1)), ("0.exp_avg", torch.zeros(3))]:
        with pytest.raises(WeightsError):
            restore_optimizer(opt, {key: value}, meta)


def test_a_version_1_checkpoint_still_loads(tmp_path: Path) -> None:
    model = _model()
    path = tmp_path / "old.safetensors"
    save_file({f"model.{k}": v.contiguous() for k, v in model.state_dict().items()}, str(path),
              metadata={"format": "neural-workbench-checkpoint"})
    path.with_suffix(".json").write_text(json.dumps({"epoch": 4, "step": 8, "optimizer": {}}))
    ckpt = load_checkpoint(path)
    assert ckpt.meta["epoch"] == 4
    apply_state(_model(), ckpt.state(), "old")


def test_resume_refuses_a_hostile_checkpoint_before_training(tmp_path: Path) -> None:
    from workbench.project import load_project
    from workbench.training import Trainer

    project = load_project(ROOT / "samples" / "digits_mlp.json")
    path = _hostile(tmp_path, {"epoch": -3}, {})
    with pytest.raises(WeightsFileError, match="epoch"):
        Trainer(project, {"epochs": 1}, run_dir=tmp_path / "run", resume=path).run()


def test_run_logs_never_follow_a_planted_symlink(tmp_path: Path) -> None:
    from workbench.training.runs import RunWriter

    victim = tmp_path / "bashrc"
    victim.write_text("safe\n")
    run = tmp_path / "run"
    run.mkdir()
    (run / "metrics.jsonl").symlink_to(victim)
    with pytest.raises(OutputError, match="symlink"):
        RunWriter(run, {})
    assert victim.read_text() == "safe\n"


def test_kill_script_is_valid_python() -> None:
    compile(textwrap.dedent(KILL_SCRIPT.format(root="/x", path="/y")), "k", "exec")


def test_loading_weights_is_linear_in_the_number_of_layers() -> None:
    """torch's load_state_dict filters the whole dict per child: quadratic on a compiled graph."""
    import sys

    from workbench.weights import load_state

    def lines(n: int) -> int:
        model = nn.Sequential(*[nn.Linear(2, 2) for _ in range(n)])
        state = {k: v.clone() for k, v in model.state_dict().items()}
        count = 0

        def tracer(frame, event, arg):  # type: ignore[no-untyped-def]
            nonlocal count
            if event == "line":
                count += 1
            return tracer

        sys.settrace(tracer)
        try:
            apply_state(model, state, "w")
        finally:
            sys.settrace(None)
        torch.testing.assert_close(model.state_dict(), state)
        return count

    small, big = lines(200), lines(800)
    assert big < 5 * small, (small, big)
    model = nn.Sequential(nn.Linear(2, 2))
    with pytest.raises(RuntimeError):
        load_state(model, {"0.weight": torch.zeros(2, 2)})  # a missing key: torch's own error
