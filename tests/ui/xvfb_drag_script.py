"""Run under a real X server: a true drag from the palette onto the canvas.

Started by tests/ui/test_xvfb_drag.py. Drives the real pointer with xdotool when it is
installed (the X server delivers the events, QDrag runs its own loop), else with
QTest events scheduled from timers. Prints RESULT <json> and exits 0 on success.

argv: the palette entry, the node type expected, and optionally ``wire``: then the digits CNN
sample is opened and the entry is dropped on its wire from conv1 to bn1 (it should be inserted).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
from pathlib import Path

from PySide6.QtCore import QPoint, QSettings, Qt, QTimer
from PySide6.QtTest import QTest
from PySide6.QtWidgets import QApplication

app = QApplication(sys.argv)
QSettings.setDefaultFormat(QSettings.Format.IniFormat)
QSettings.setPath(QSettings.Format.IniFormat, QSettings.Scope.UserScope, tempfile.mkdtemp())
app.setOrganizationName("NeuralWorkbenchXvfb")

from ui.mainwindow import MainWindow  # noqa: E402

w = MainWindow(ask=lambda *a: 0)
w.setGeometry(0, 0, 1200, 800)
w.show()
w.raise_()
w.activateWindow()
for _ in range(20):
    app.processEvents()
    QTest.qWait(50)

# argv: the palette entry to drag and the node type expected on the canvas (a ready block lands as its block)
entry = sys.argv[1] if len(sys.argv) > 1 else "Conv2d"
expected = sys.argv[2] if len(sys.argv) > 2 else entry
onto_wire = len(sys.argv) > 3 and sys.argv[3] == "wire"
tree = w.palette.tree
item = w.palette.items[entry]
tree.scrollToItem(item)
app.processEvents()
start = tree.viewport().mapToGlobal(tree.visualItemRect(item).center())
target_local = QPoint(w.view.viewport().width() // 2, w.view.viewport().height() // 2)
before: set[str] = set()
if onto_wire:
    w.open_path(Path(__file__).resolve().parents[2] / "samples" / "digits_cnn.json")
    w.view.zoom_by(1 / w.view.zoom())
    g = w.doc.graph
    conv1, bn1 = g.by_name("conv1").id, g.by_name("bn1").id
    wire = next(e for e in g.edges if e.src == conv1 and e.dst == bn1)
    wire_item = w.scene.edges[wire]
    on_wire = wire_item.mapToScene(wire_item.path().pointAtPercent(0.5))
    w.view.centerOn(on_wire)
    for _ in range(5):
        app.processEvents()
    target_local = w.view.mapFromScene(on_wire)
    before = set(g.nodes)
target = w.view.viewport().mapToGlobal(target_local)
result: dict = {}


def finish() -> None:
    g = w.doc.graph
    result["nodes"] = [n.type for n in g if n.id not in before]
    if w.doc.graph.nodes and not onto_wire:
        node = next(iter(w.doc.graph))
        result["position"] = node.position
        result["drop_scene"] = [w.view.mapToScene(target_local).x(), w.view.mapToScene(target_local).y()]
    if onto_wire:
        new = [n.id for n in g if n.id not in before]
        names = {n.id: n.name for n in g}
        result["wires"] = sorted([names[e.src], names[e.dst]] for e in g.edges if e.src in new or e.dst in new)
        result["undo"] = w.doc.undo_stack.undoText()
    result["driver"] = driver
    result["blocks"] = list(w.doc.project.blocks.defs)
    if os.environ.get("XVFB_SHOT"):  # a picture of the window after the drop, for a person to look at
        w.grab().save(os.environ["XVFB_SHOT"])
    print("RESULT " + json.dumps(result), flush=True)
    w.doc.undo_stack.setClean()
    app.exit(0 if result["nodes"] == [expected] else 1)


xdotool = shutil.which("xdotool")
if xdotool:
    driver = "xdotool"

    def run_xdotool() -> None:
        def x(*args: object) -> None:
            subprocess.run([xdotool, *map(str, args)], check=True)

        x("mousemove", start.x(), start.y())
        x("mousedown", 1)
        for i in range(1, 21):
            px = start.x() + (target.x() - start.x()) * i / 20
            py = start.y() + (target.y() - start.y()) * i / 20
            x("mousemove", int(px), int(py))
            x("sleep", 0.03)
        x("mouseup", 1)

    def launch() -> None:
        # xdotool blocks while QDrag runs its own event loop here: drive it from a thread
        threading.Thread(target=run_xdotool, daemon=True).start()

    QTimer.singleShot(300, launch)
    QTimer.singleShot(6000, finish)
else:
    driver = "qtest"
    vp = tree.viewport()
    local = tree.visualItemRect(item).center()
    steps = [local + QPoint(0, 4 * i) for i in range(1, 8)]

    def drop_phase() -> None:
        canvas = w.view.viewport()
        for i in range(1, 6):
            QTest.mouseMove(canvas, target_local + QPoint(i, i))
        QTest.mouseRelease(canvas, Qt.MouseButton.LeftButton, Qt.KeyboardModifier.NoModifier, target_local)

    QTimer.singleShot(500, drop_phase)
    QTimer.singleShot(3000, finish)
    QTest.mousePress(vp, Qt.MouseButton.LeftButton, Qt.KeyboardModifier.NoModifier, local)
    for p in steps:
        QTest.mouseMove(vp, p)

sys.exit(app.exec())
