"""The set-up scripts: Qt's system libraries are installed or named, a plain (non-editable)
install keeps the samples and templates."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def _fake_bin(tmp: Path, uid: int, missing: list[str]) -> Path:
    bin_dir = tmp / "bin"
    bin_dir.mkdir()
    lines = "\n".join(f'echo "\t{lib} => not found"' for lib in missing)
    scripts = {
        "ldd": f"#!/bin/sh\necho '\tlibc.so.6 => /lib/libc.so.6'\n{lines}\n",
        "id": f"#!/bin/sh\necho {uid}\n",
        "apt-get": f"#!/bin/sh\necho \"$@\" >> {tmp / 'apt.log'}\n",
    }
    for name, text in scripts.items():
        (bin_dir / name).write_text(text)
        (bin_dir / name).chmod(0o755)
    return bin_dir


def _run(tmp: Path, uid: int, missing: list[str]) -> subprocess.CompletedProcess[str]:
    bin_dir = _fake_bin(tmp, uid, missing)
    env = {**os.environ, "PATH": f"{bin_dir}:{os.environ['PATH']}", "VENV": str(Path(os.sys.executable).parents[1])}
    env.pop("QT_QPA_PLATFORM", None)
    return subprocess.run(["bash", str(ROOT / "scripts" / "qt-deps.sh")], capture_output=True, text=True, env=env,
                          timeout=60)


def test_missing_qt_libraries_are_named_with_the_command_that_installs_them(tmp_path: Path) -> None:
    r = _run(tmp_path, 1000, ["libxcb-cursor.so.0", "libxcb-icccm.so.4", "libxcb-keysyms.so.1", "libweird.so.3"])
    assert r.returncode == 1
    assert "sudo apt-get install libxcb-cursor0 libxcb-icccm4 libxcb-keysyms1" in r.stderr
    assert "libweird.so.3" in r.stderr
    assert not (tmp_path / "apt.log").exists()


def test_as_root_they_are_installed(tmp_path: Path) -> None:
    r = _run(tmp_path, 0, ["libxcb-cursor.so.0", "libxcb-keysyms.so.1"])
    assert r.returncode == 0, r.stderr
    assert "libxcb-cursor0 libxcb-keysyms1" in (tmp_path / "apt.log").read_text()


def test_nothing_missing_is_silent(tmp_path: Path) -> None:
    r = _run(tmp_path, 1000, [])
    assert r.returncode == 0 and r.stderr == ""


def test_a_plain_install_keeps_samples_templates_data_and_icons(tmp_path: Path) -> None:
    """``pip install .`` (not editable): nothing may depend on the source checkout."""
    import sys

    target = tmp_path / "site"
    r = subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--no-build-isolation",
                        "--target", str(target), str(ROOT)], capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stderr
    work = tmp_path / "elsewhere"
    work.mkdir()
    env = {**os.environ, "PYTHONPATH": str(target), "QT_QPA_PLATFORM": "offscreen"}
    script = """
import sys, pathlib
import workbench, ui.style
assert pathlib.Path(workbench.__file__).is_relative_to(pathlib.Path(sys.argv[1])), workbench.__file__
from workbench.cli import main
from workbench.templates import starting_points
for name in starting_points():
    assert main(["new", "--template", name, "-o", f"{name}.json"]) == 0
assert main(["check", "digits_cnn.json"]) == 0
assert main(["train", "digits_mlp.json", "--epochs", "1", "--quiet", "--out", "run"]) == 0
assert (ui.style.RESOURCES / "icons" / "app.svg").is_file(), ui.style.RESOURCES
from workbench.data import load_samples
from workbench.config import default_data
assert len(load_samples({**default_data(), "dataset": "text"})) > 100
"""
    r = subprocess.run([sys.executable, "-c", script, str(target)], cwd=work, env=env, capture_output=True,
                       text=True, timeout=600)
    assert r.returncode == 0, r.stderr[-3000:]
