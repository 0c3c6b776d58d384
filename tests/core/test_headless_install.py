"""A cluster node installs the core without Qt: the GUI's packages are the ``gui`` extra, which the
README's commands (``pip install -e ".[test]"`` in scripts/bootstrap.sh) still install."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
GUI_PACKAGES = ("pyside6", "pyside6-essentials", "pyqtgraph", "shiboken6")

tomllib = pytest.importorskip("tomllib", reason="tomllib needs Python 3.11")


def _name(requirement: str) -> str:
    import re

    return re.split(r"[<>=!~;\[ ]", requirement, maxsplit=1)[0].strip().lower()


def test_the_gui_packages_are_an_extra_the_readme_commands_install() -> None:
    meta = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    assert not [r for r in meta["dependencies"] if _name(r) in GUI_PACKAGES]
    gui = meta["optional-dependencies"]["gui"]
    assert {_name(r) for r in gui} == {"pyside6-essentials", "pyqtgraph"}
    # the pin that keeps PySide6 6.12 (which aborts CPython 3.11) away
    assert "PySide6-Essentials>=6.8,<6.12; python_version < '3.12'" in gui
    assert "neural-workbench[gui,engines]" in meta["optional-dependencies"]["test"]
    assert 'pip install -q -e ".[test]"' in (ROOT / "scripts" / "bootstrap.sh").read_text()


BLOCK_QT = """
import sys
for name in ("PySide6", "shiboken6", "pyqtgraph", "ui"):
    sys.modules[name] = None  # importing any of them raises ImportError, as on a node without them
from workbench.cli import main
tmp = sys.argv[1]
assert main(["new", "--template", "digits_mlp", "-o", tmp + "/p.json"]) == 0
assert main(["train", tmp + "/p.json", "--epochs", "1", "--quiet", "--out", tmp + "/run"]) == 0
loaded = [m for m in sys.modules if m.split(".")[0] in ("PySide6", "shiboken6", "pyqtgraph") and sys.modules[m]]
assert not loaded, loaded
sys.exit(main(["gui"]))
"""


def test_training_and_the_cli_work_without_qt(tmp_path: Path) -> None:
    r = subprocess.run([sys.executable, "-c", BLOCK_QT, str(tmp_path)], capture_output=True, text=True, cwd=ROOT,
                       timeout=300)
    assert (tmp_path / "run" / "summary.json").exists(), r.stderr
    assert r.returncode == 2, r.stderr  # the one command that needs the GUI says how to install it
    assert "pip install 'neural-workbench[gui]'" in r.stderr
