"""The main window's actions for reading a graph: node search, the overview map, the auto-layout
button with both directions, and expanding or collapsing every block in place."""

from __future__ import annotations

from typing import TYPE_CHECKING

from PySide6.QtGui import QKeySequence
from PySide6.QtWidgets import QMenu, QToolBar, QToolButton

if TYPE_CHECKING:
    from ..mainwindow import MainWindow

MINIMAP_KEY = "canvas/minimap"


class ReadingActions:
    """Made by the main window once its view and editor exist; ``add_to_menu`` and
    ``add_to_toolbar`` place them."""

    def __init__(self, window: MainWindow) -> None:
        self.w = w = window
        search = w.view.search
        self.find = w._action("&Find Node…", search.open, QKeySequence(QKeySequence.StandardKey.Find))
        self.find.setToolTip("Find a node by name or type (Enter or F3: next match, Escape: done)")
        self.find_next = w._action("Find &Next", lambda: self._step(1), "F3")
        self.find_prev = w._action("Find Pre&vious", lambda: self._step(-1), "Shift+F3")
        self.minimap = w._action("Overview &Map", self._toggle_minimap, "Ctrl+Shift+M", checkable=True)
        self.minimap.setToolTip("The whole graph in a corner of the canvas; click or drag in it to go there")
        self.minimap.setChecked(str(w.settings.value(MINIMAP_KEY, "true")).lower() == "true")
        w.view.minimap.setVisible(self.minimap.isChecked())
        self.expand_all = w._action("E&xpand All Blocks", lambda: self._expand_all(True))
        self.collapse_all = w._action("Co&llapse All Blocks", lambda: self._expand_all(False))
        # one toolbar button for both layouts: its face repeats the graph's direction, its menu picks one
        self.layout = w._action("Auto-layout", lambda: w.editor.auto_layout(w.scene.direction))
        self.layout.setToolTip("Lay the graph out again (the arrow: top to bottom, or left to right)")
        self.layout_menu = QMenu(w)
        self.layout_menu.addAction(w.act_layout_tb)
        self.layout_menu.addAction(w.act_layout_lr)
        self.layout.setMenu(self.layout_menu)

    def add_to_menu(self, menu: QMenu) -> None:
        for a in (self.find, self.find_next, self.find_prev, None, self.minimap, self.expand_all,
                  self.collapse_all, None):
            menu.addSeparator() if a is None else menu.addAction(a)

    def add_to_toolbar(self, toolbar: QToolBar) -> None:
        toolbar.addAction(self.layout)
        button = toolbar.widgetForAction(self.layout)
        if isinstance(button, QToolButton):
            button.setPopupMode(QToolButton.ToolButtonPopupMode.MenuButtonPopup)
            button.setObjectName("autoLayoutButton")

    def _step(self, delta: int) -> None:
        search = self.w.view.search
        if not search.isVisible() or not search.matches:
            search.open()
        else:
            search.step(delta)

    def _toggle_minimap(self) -> None:
        on = self.minimap.isChecked()
        self.w.view.minimap.setVisible(on)
        self.w.view.place_overlays()
        self.w.settings.setValue(MINIMAP_KEY, "true" if on else "false")

    def _expand_all(self, expanded: bool) -> None:
        scene = self.w.scene
        for nid, item in list(scene.nodes.items()):
            if item.is_block:
                scene.set_expanded(nid, expanded)
        self.w.view.update_scene_rect()
