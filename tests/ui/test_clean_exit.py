"""The interpreter must exit cleanly after the GUI ran: a crash at exit (a Qt object that
Python created, destroyed by Qt after Python shut down) fails `make test` with status 139
even when every test passed, and a traceback printed at exit (a slot called while Qt tears
objects down) is an error the user sees.  Each scenario runs in its own interpreter; its
exit status and its stderr are read."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]

PRELUDE = """
import os, sys, tempfile
from pathlib import Path
os.environ["QT_QPA_PLATFORM"] = "offscreen"
sys.path.insert(0, {root!r})
from PySide6.QtCore import QSettings
from PySide6.QtWidgets import QApplication
app = QApplication([])
QSettings.setDefaultFormat(QSettings.Format.IniFormat)
tmp = Path(tempfile.mkdtemp())
QSettings.setPath(QSettings.Format.IniFormat, QSettings.Scope.UserScope, str(tmp))
from ui.mainwindow import MainWindow
MainWindow.recovery_dir = staticmethod(lambda: tmp / "recovery")
w = MainWindow(ask=lambda *a: None, prompt=lambda *a: None)
w.show()
w.open_path(Path({root!r}) / "samples" / "digits_cnn.json")
"""

SCENARIOS = {
    "copy to the clipboard": """
g = w.doc.graph
w.scene.select_nodes([g.by_name("conv1").id, g.by_name("bn1").id])
assert w.editor.copy()
assert len(w.editor.paste()) == 2
""",
    "drag data from the palette": """
mime = w.palette.tree.mimeData([w.palette.items["Conv2d"]])
assert mime is not None
""",
    # Quit -> Discard used to print "QUndoStack already deleted" at exit: the stack, destroyed
    # with its document, cleared itself and announced it to the window's title slot
    "quit and discard unsaved changes": """
from PySide6.QtWidgets import QMessageBox
asked = []
w.ask = lambda title, *a, **k: asked.append(title) or QMessageBox.StandardButton.Discard
w.editor.add_layer("ReLU")
assert w.doc.modified
w.act_quit.trigger()
assert asked == ["Unsaved changes"] and not w.isVisible()
""",
}


@pytest.mark.parametrize("scenario", sorted(SCENARIOS))
def test_interpreter_exits_cleanly_after(scenario: str) -> None:
    # (a window still open is closed without asking; a closed one is left as the user left it)
    code = (PRELUDE.format(root=str(ROOT)) + textwrap.dedent(SCENARIOS[scenario])
            + "\nif w.isVisible():\n    w.doc.undo_stack.setClean()\n")
    env = {**os.environ, "QT_QPA_PLATFORM": "offscreen"}
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, env=env)
    assert proc.returncode == 0, f"exit status {proc.returncode}\n{proc.stderr[-2000:]}"
    assert "Traceback" not in proc.stderr and "Error" not in proc.stderr, proc.stderr[-2000:]
