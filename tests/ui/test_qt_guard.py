"""Guard against PySide6 6.12.0 on Python 3.11, whose void methods leak a reference
to None until CPython aborts (see ../shared/TECH-NOTES.md section 1)."""

from __future__ import annotations

import sys
from importlib.metadata import version

from PySide6.QtWidgets import QWidget


def test_void_qt_calls_do_not_leak_none(qtbot) -> None:
    w = QWidget()
    qtbot.addWidget(w)
    w.setEnabled(True)
    before = sys.getrefcount(None)
    for i in range(20_000):
        w.setEnabled(i % 2 == 0)
    after = sys.getrefcount(None)
    # None is immortal from 3.12 on (huge constant refcount); on 3.11 it must not drift
    assert abs(after - before) < 100, f"None refcount drifted by {after - before} over 20,000 void Qt calls"


def test_installed_pyside_respects_the_pin() -> None:
    major, minor = (int(p) for p in version("PySide6-Essentials").split(".")[:2])
    assert (major, minor) >= (6, 8)
    if sys.version_info < (3, 12):
        assert (major, minor) < (6, 12), "PySide6 >= 6.12 aborts Python 3.11; keep the pyproject pin"
