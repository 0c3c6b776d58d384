"""GUI fixtures: an isolated main window (settings, recovery folder, dialogs) and
helpers for the mouse gestures QTest lacks (drags with moves, palette drops)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from PySide6.QtCore import QMimeData, QPoint, QPointF, QSettings, Qt
from PySide6.QtGui import QDragEnterEvent, QDragMoveEvent, QDropEvent
from PySide6.QtTest import QTest
from PySide6.QtWidgets import QApplication, QMessageBox

from ui.mainwindow import MainWindow

ROOT = Path(__file__).resolve().parents[2]
SAMPLES = sorted((ROOT / "samples").glob("*.json"))
CNN = ROOT / "samples" / "digits_cnn.json"  # the editor tests refer to its node names


class Asker:
    """Stands in for message boxes: records questions, answers from a script."""

    def __init__(self) -> None:
        self.asked: list[tuple[str, str]] = []
        self.answers: list[QMessageBox.StandardButton] = []
        self.buttons: list[QMessageBox.StandardButton] = []
        self.labels: list[dict[QMessageBox.StandardButton, str]] = []

    def __call__(self, title: str, text: str, buttons: QMessageBox.StandardButton,
                 labels: dict[QMessageBox.StandardButton, str] | None = None) -> QMessageBox.StandardButton:
        self.asked.append((title, text))
        self.buttons.append(buttons)
        self.labels.append(labels or {})
        if self.answers:
            return self.answers.pop(0)
        return QMessageBox.StandardButton.Ok if buttons == QMessageBox.StandardButton.Ok else (
            QMessageBox.StandardButton.Discard)


@pytest.fixture
def asker() -> Asker:
    return Asker()


class Prompter:
    """Stands in for text prompts: records them, answers from a script (default: the default)."""

    def __init__(self) -> None:
        self.asked: list[tuple[str, str, str, list[str]]] = []
        self.answers: list[str | None] = []

    def __call__(self, title: str, label: str, default: str, choices: list[str]) -> str | None:
        self.asked.append((title, label, default, choices))
        return self.answers.pop(0) if self.answers else default


@pytest.fixture
def prompter() -> Prompter:
    return Prompter()


@pytest.fixture
def window(qtbot: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, asker: Asker,
           prompter: Prompter) -> Iterator[MainWindow]:
    QSettings.setDefaultFormat(QSettings.Format.IniFormat)
    QSettings.setPath(QSettings.Format.IniFormat, QSettings.Scope.UserScope, str(tmp_path / "settings"))
    QApplication.setOrganizationName("NeuralWorkbenchTests")
    QApplication.setApplicationName("tests")
    monkeypatch.setattr(MainWindow, "recovery_dir", staticmethod(lambda: tmp_path / "recovery"))
    w = MainWindow(ask=asker, prompt=prompter)
    qtbot.addWidget(w)
    w.resize(1300, 850)
    w.show()
    qtbot.waitExposed(w)
    yield w
    w.doc.undo_stack.setClean()  # let it close without asking


def project_json(w: MainWindow) -> dict[str, Any]:
    return json.loads(w.doc.project.to_json())


def graph_json(w: MainWindow) -> dict[str, Any]:
    return project_json(w)["graph"]


def view_point(w: MainWindow, scene_pos: QPointF) -> QPoint:
    return w.view.mapFromScene(scene_pos)


def drag(widget: Any, a: QPoint, b: QPoint, button: Qt.MouseButton = Qt.MouseButton.LeftButton,
         steps: int = 8, modifier: Qt.KeyboardModifier = Qt.KeyboardModifier.NoModifier) -> None:
    """Press at ``a``, move in steps, release at ``b`` (QTest has no drag)."""
    QTest.mousePress(widget, button, modifier, a)
    for i in range(1, steps + 1):
        p = a + (b - a) * (i / steps)
        QTest.mouseMove(widget, QPoint(int(p.x()), int(p.y())))
    QTest.mouseRelease(widget, button, modifier, b)


def drop_layer(w: MainWindow, layer_id: str, at: QPoint) -> None:
    """Offscreen Qt cannot run a real QDrag: send the drag-enter/move/drop events the view
    would receive, carrying the palette's own mime data (the real drop code runs)."""
    item = w.palette.items[layer_id]
    mime: QMimeData = w.palette.tree.mimeData([item])
    vp = w.view.viewport()
    pos = QPointF(at)
    actions = Qt.DropAction.CopyAction | Qt.DropAction.MoveAction
    no_buttons, no_mods = Qt.MouseButton.NoButton, Qt.KeyboardModifier.NoModifier
    enter = QDragEnterEvent(at, actions, mime, no_buttons, no_mods)
    QApplication.sendEvent(vp, enter)
    assert enter.isAccepted(), "the canvas refused the palette's drag"
    move = QDragMoveEvent(at, actions, mime, no_buttons, no_mods)
    QApplication.sendEvent(vp, move)
    assert move.isAccepted()
    drop = QDropEvent(pos, actions, mime, no_buttons, no_mods)
    QApplication.sendEvent(vp, drop)
    assert drop.isAccepted()


def port_point(w: MainWindow, node_id: str, port: str, output: bool) -> QPoint:
    item = w.scene.nodes[node_id].port(port, output)
    return view_point(w, item.scenePos())


def node_point(w: MainWindow, node_id: str) -> QPoint:
    item = w.scene.nodes[node_id]
    return view_point(w, item.pos() + QPointF(60, 30))
