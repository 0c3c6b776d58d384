"""Node search (Ctrl+F): a field floating over the canvas that marks every node whose name or
type contains the text, and shows the first.  Enter or F3 goes to the next match, Shift+Enter
or Shift+F3 to the previous one; Escape clears the marks and gives the canvas back the keys.
Matches come in graph order (the order the model runs in)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from PySide6.QtCore import QEvent, QObject, Qt
from PySide6.QtGui import QKeyEvent
from PySide6.QtWidgets import QFrame, QHBoxLayout, QLabel, QLineEdit, QToolButton

if TYPE_CHECKING:
    from .view import GraphView


def find_nodes(scene: object, text: str) -> list[str]:
    """Ids of the nodes whose name, type id or type name contains ``text`` (any case), in graph order."""
    needle = text.strip().casefold()
    if not needle:
        return []
    g = scene.doc.graph  # type: ignore[attr-defined]
    found = []
    for nid in g.topological_order():
        node = g.nodes[nid]
        if needle in node.name.casefold() or needle in node.type.casefold() or needle in node.spec.name.casefold():
            found.append(nid)
    return found


class SearchBar(QFrame):
    """The search field of a :class:`GraphView` (an overlay child of the view)."""

    def __init__(self, view: GraphView) -> None:
        super().__init__(view)
        self.view = view
        self.setObjectName("canvasSearch")
        self.setFrameShape(QFrame.Shape.StyledPanel)
        self.setAutoFillBackground(True)
        layout = QHBoxLayout(self)
        layout.setContentsMargins(6, 4, 4, 4)
        layout.setSpacing(4)
        self.edit = QLineEdit(self)
        self.edit.setObjectName("canvasSearchField")
        self.edit.setPlaceholderText("Find a node by name or type")
        self.edit.setClearButtonEnabled(True)
        self.edit.setMinimumWidth(220)
        self.count = QLabel(self)
        self.count.setObjectName("canvasSearchCount")
        self.count.setMinimumWidth(64)
        self.prev = self._button("▲", "Previous match (Shift+Enter, Shift+F3)", lambda: self.step(-1))
        self.next = self._button("▼", "Next match (Enter, F3)", lambda: self.step(1))
        self.close_button = self._button("✕", "Close the search (Escape)", self.close_search)
        for w in (self.edit, self.count, self.prev, self.next, self.close_button):
            layout.addWidget(w)
        self.matches: list[str] = []
        self.current = -1
        self.edit.textChanged.connect(self.search)
        self.edit.installEventFilter(self)
        self.hide()

    def _button(self, text: str, tip: str, slot: object) -> QToolButton:
        b = QToolButton(self)
        b.setText(text)
        b.setToolTip(tip)
        b.setAutoRaise(True)
        b.clicked.connect(slot)  # type: ignore[arg-type]
        return b

    # ------------------------------------------------------------------ the gestures
    def open(self) -> None:
        """Show the field with its text selected (Ctrl+F); marks the matches of that text again."""
        self.show()
        self.raise_()
        self.view.place_overlays()
        self.edit.setFocus(Qt.FocusReason.ShortcutFocusReason)
        self.edit.selectAll()
        if self.edit.text():
            self.search(self.edit.text())

    def search(self, text: str) -> None:
        """Mark every match and go to the first."""
        self.matches = find_nodes(self.view.graph_scene, text)
        self.current = 0 if self.matches else -1
        self._show()

    def step(self, delta: int) -> None:
        """Go to the next (``+1``) or previous (``-1``) match, round the end."""
        if not self.matches:
            return
        self.current = (self.current + delta) % len(self.matches)
        self._show()

    def close_search(self) -> None:
        """Clear the marks, hide the field and give the canvas the keyboard back."""
        self.matches, self.current = [], -1
        self.view.graph_scene.set_highlights({})
        self.hide()
        self.view.setFocus(Qt.FocusReason.OtherFocusReason)

    def scene_changed(self) -> None:
        """The view shows another graph: its matches are not these."""
        self.view.graph_scene.doc.changed.connect(self._graph_changed, Qt.ConnectionType.UniqueConnection)
        if self.isVisible() and self.edit.text():
            self.search(self.edit.text())
        else:
            self.matches, self.current = [], -1

    def _graph_changed(self, _ids: object = None) -> None:
        """An edit while the search is open: match again (a node deleted, renamed or added), keep
        the current match if it is still one, and leave the canvas where the user has it."""
        if not self.isVisible() or not self.edit.text().strip():
            return
        current = self.matches[self.current] if 0 <= self.current < len(self.matches) else None
        self.matches = find_nodes(self.view.graph_scene, self.edit.text())
        if current in self.matches:
            self.current = self.matches.index(current)
        else:
            self.current = min(max(self.current, 0), len(self.matches) - 1)
        self._show(move=False)

    def _show(self, move: bool = True) -> None:
        scene = self.view.graph_scene
        marks = {nid: "match" for nid in self.matches}
        text = self.edit.text().strip()
        if self.current >= 0:
            nid = self.matches[self.current]
            marks[nid] = "current"
            scene.set_highlights(marks)
            if move:
                scene.select_nodes([nid])  # the inspector follows
                self.view.show_node(nid)
            self.count.setText(f"{self.current + 1} of {len(self.matches)}")
        else:
            scene.set_highlights({})
            self.count.setText("no match" if text else "")
        self.count.setProperty("found", bool(self.matches) or not text)
        self.adjustSize()
        self.view.place_overlays()

    def eventFilter(self, watched: QObject, event: QEvent) -> bool:
        if watched is self.edit and isinstance(event, QKeyEvent) and event.type() == QEvent.Type.KeyPress:
            if event.key() in (Qt.Key.Key_Return, Qt.Key.Key_Enter, Qt.Key.Key_F3):
                self.step(-1 if event.modifiers() & Qt.KeyboardModifier.ShiftModifier else 1)
                return True
            if event.key() == Qt.Key.Key_Escape:
                self.close_search()
                return True
        return super().eventFilter(watched, event)
