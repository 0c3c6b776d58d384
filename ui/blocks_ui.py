"""Blocks in the editor: group and ungroup, open a block and come back, block
files, the palette's block menu and the bar shown above the canvas inside a block.

The main window owns one :class:`BlockActions`; it only turns gestures into
commands (``ui.commands``) and navigation, the core does the work.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from PySide6.QtCore import QObject, QPoint, Qt, QTimer
from PySide6.QtGui import QAction, QKeySequence
from PySide6.QtWidgets import (
    QFileDialog,
    QHBoxLayout,
    QLabel,
    QMenu,
    QMessageBox,
    QSizePolicy,
    QToolButton,
    QWidget,
)

from workbench.block_io import plan_merge, read_block_file, save_block_file
from workbench.errors import WorkbenchError
from workbench.grouping import MakeUnique

from .commands import AddBlocksCommand, MakeUniqueCommand, RemoveBlockCommand, SetBlockInfoCommand
from .document import BLOCK_ROLE, Document, block_role

if TYPE_CHECKING:
    from .mainwindow import MainWindow


class BlockBar(QWidget):
    """Shown above the canvas while a block's inside is on it: where you are and the way back."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("blockBar")
        self.setAttribute(Qt.WidgetAttribute.WA_StyledBackground, True)
        self.setStyleSheet("#blockBar { background: palette(alternate-base); border-bottom: 1px solid palette(mid); }")
        layout = QHBoxLayout(self)
        layout.setContentsMargins(6, 3, 6, 3)
        self.back = QToolButton(self)
        self.back.setObjectName("closeBlock")
        self.back.setText("◀ Back")
        self.back.setToolButtonStyle(Qt.ToolButtonStyle.ToolButtonTextOnly)
        self.crumbs = QLabel(self)
        self.crumbs.setObjectName("blockCrumbs")
        self.hint = QLabel(self)
        self.hint.setEnabled(False)
        self.hint.setMinimumWidth(0)
        self.hint.setSizePolicy(QSizePolicy.Policy.Ignored, QSizePolicy.Policy.Preferred)  # never widens the canvas
        self.hint.setAlignment(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
        layout.addWidget(self.back)
        layout.addWidget(self.crumbs)
        layout.addWidget(self.hint, 1)
        self.hide()


class BlockActions(QObject):
    """Block gestures of a main window, as actions and methods the tests call too."""

    def __init__(self, window: MainWindow) -> None:
        super().__init__(window)
        self.w = window
        self.trail: list[str] = []
        """Graphs shown before the current block (the way back)."""
        self.bar = BlockBar()
        self.bar.back.clicked.connect(self.close_block)
        act = window._action
        self.act_group = act("&Group into Block…", self.group, "Ctrl+G")
        self.act_ungroup = act("&Ungroup Block", self.ungroup, "Ctrl+Shift+G")
        self.act_unique = act("Make Block &Unique", self.make_unique)
        self.act_unique.setToolTip("Give the selected block node a copy of its block, so edits inside reach it alone")
        self.act_open = act("&Open Block", self.open_selected, "Ctrl+E")
        self.act_close = act("&Close Block", self.close_block, "Ctrl+Shift+E")
        self.act_close.setShortcuts([QKeySequence("Ctrl+Shift+E"), QKeySequence("Alt+Up")])
        self.act_import = act("Import &Block…", self.import_dialog)
        self.act_export = act("Export Bloc&k…", self.export_selected)
        for a in (self.act_group, self.act_ungroup, self.act_open):
            a.setShortcutContext(Qt.ShortcutContext.WidgetWithChildrenShortcut)
            window.view.addAction(a)
        self._library = None

    @property
    def doc(self) -> Document:
        return self.w.doc

    def actions(self) -> list[QAction]:
        return [self.act_group, self.act_ungroup, self.act_unique, self.act_open, self.act_close]

    # ------------------------------------------------------------------ binding
    def bind(self, doc: Document) -> None:
        """Follow a newly opened document."""
        self.trail = []
        doc.roleRequested.connect(self._role_requested)
        if self._library is not None:
            self._library.unsubscribe(self._on_library)
        self._library = doc.project.blocks
        doc.project.blocks.subscribe(self._on_library)
        self.w.palette.set_library(doc.project.blocks)
        self.update_bar()

    def _role_requested(self, role: str) -> None:
        """An undo or redo changes a graph that is not shown: show it first."""
        if role.startswith(BLOCK_ROLE) and self.doc.role not in self.trail:
            self.trail.append(self.doc.role)
        elif not role.startswith(BLOCK_ROLE):
            self.trail = []
        self.w.show_graph(role)

    def _on_library(self, kind: str, block_id: str) -> None:
        if kind == "removed" and self.doc.role == block_role(block_id):
            # the block on the canvas is gone (undo of a group): go back once the change is complete
            QTimer.singleShot(0, self.close_block)
        elif kind == "renamed":  # the bar shows the name (edits inside fire "changed": not needed here)
            self.update_bar()

    # ------------------------------------------------------------------ navigation
    def open_selected(self) -> None:
        ids = [n for n in self.w.scene.selected_node_ids() if self.doc.graph.nodes[n].is_block]
        if ids:
            self.open_block(ids[0])
        else:
            self.w.show_message("Select a block node to open it")

    def open_block(self, node_id: str) -> None:
        """Show the inside of the block this node is an instance of."""
        node = self.doc.graph.nodes.get(node_id)
        if node is None or not node.is_block:
            return
        self.open_definition(node.type)
        self.w.show_message(f"Editing block {node.type}: changes apply to all its uses (Back: Alt+Up)")

    def open_definition(self, block_id: str) -> None:
        role = block_role(block_id)
        if role == self.doc.role:
            return
        self.trail.append(self.doc.role)
        self.w.show_graph(role)

    def close_block(self) -> None:
        """Back to the graph the block was opened from."""
        if self.doc.block_id is None:
            return
        back = "main"
        while self.trail:
            candidate = self.trail.pop()
            if self.doc.has_role(candidate):
                back = candidate
                break
        self.w.show_graph(back)

    def role_title(self, role: str) -> str:
        if role == "main":
            return "Model"
        if role.startswith(BLOCK_ROLE):
            block = self.doc.project.blocks.defs.get(role[len(BLOCK_ROLE):])
            return block.name if block is not None else role[len(BLOCK_ROLE):]
        return role.capitalize()

    def update_bar(self) -> None:
        block_id = self.doc.block_id
        if block_id is None or block_id not in self.doc.project.blocks.defs:
            self.bar.hide()
            self.act_close.setEnabled(False)
            return
        self.act_close.setEnabled(True)
        crumbs = [self.role_title(r) for r in self.trail if self.doc.has_role(r)] or ["Model"]
        self.bar.crumbs.setText(" › ".join([*crumbs, f"<b>{self.role_title(self.doc.role)}</b>"]))
        uses = len(self.doc.project.blocks.uses(block_id))
        self.bar.hint.setText(f"Block {block_id}: changes apply to all {uses} use{'s' if uses != 1 else ''}")
        self.bar.setToolTip("You are editing the inside of a block. Shapes shown are for its example inputs "
                            "(the Input nodes' shapes); parameters marked ◆ in the inspector are set by each use.")
        self.bar.show()

    # ------------------------------------------------------------------ group / ungroup
    def group(self, name: str | None = None) -> str | None:
        """Group the selection into a new block (asks for its name)."""
        if not self.w.scene.selected_node_ids():
            self.w.show_message("Select the nodes to group into a block")
            return None
        if name is None:
            name = self.w.prompt("Group into block", "Name of the new block:", "Block", [])
            if name is None:
                return None
        return self.w.editor.group_selection(name)

    def ungroup(self) -> list[str]:
        return self.w.editor.ungroup_selection()

    def make_unique(self) -> str | None:
        """Give the selected block node its own copy of its block; returns the copy's id."""
        ids = [n for n in self.w.scene.selected_node_ids() if self.doc.graph.nodes[n].is_block]
        if len(ids) != 1:
            self.w.show_message("Select one block node to make it unique")
            return None
        try:
            cmd = MakeUniqueCommand(MakeUnique(self.doc.graph, ids[0]))
        except WorkbenchError as exc:
            self.w.show_message(f"Cannot make it unique: {exc}")
            return None
        self.doc.undo_stack.push(cmd)
        self.w.scene.select_nodes(ids)
        self.w.show_message(f"{self.doc.graph.nodes[ids[0]].name} now has its own block, "
                            f"{cmd.change.new_type}")  # type: ignore[union-attr]
        return cmd.change.new_type  # type: ignore[union-attr]

    # ------------------------------------------------------------------ files
    def export_selected(self) -> None:
        block_id = self.doc.block_id
        for nid in self.w.scene.selected_node_ids():
            if self.doc.graph.nodes[nid].is_block:
                block_id = self.doc.graph.nodes[nid].type
                break
        if block_id is None:
            self.w.ask("Export block", "Select a block node (or open a block) to export it.",
                       QMessageBox.StandardButton.Ok)
            return
        self.export_dialog(block_id)

    def export_dialog(self, block_id: str) -> None:
        start = str(self.w._last_dir() / f"{block_id}.block.json")
        path, _ = QFileDialog.getSaveFileName(self.w, "Export block", start, "Neural Workbench blocks (*.json)")
        if path:
            self.export_block(block_id, path)

    def export_block(self, block_id: str, path: str | Path) -> bool:
        try:
            out = save_block_file(self.doc.project.blocks, block_id, path)
        except (OSError, WorkbenchError) as exc:
            self.w.ask("Cannot export the block", f"{path}: {getattr(exc, 'strerror', None) or exc}",
                       QMessageBox.StandardButton.Ok)
            return False
        self.w.show_message(f"Exported block {block_id} to {out}")
        return True

    def import_dialog(self) -> None:
        path, _ = QFileDialog.getOpenFileName(self.w, "Import block", str(self.w._last_dir()),
                                              "Neural Workbench blocks (*.json);;All files (*)")
        if path:
            self.import_block(path)

    def import_block(self, path: str | Path) -> str | None:
        """Add a block file's block to the project (one undo step); returns its id here."""
        lib = self.doc.project.blocks
        try:
            source, block_id = read_block_file(path)
            mapping, new = plan_merge(source, [block_id], lib)
        except WorkbenchError as exc:
            self.w.ask("Cannot import the block", str(exc), QMessageBox.StandardButton.Ok)
            return None
        if new:
            self.doc.undo_stack.push(AddBlocksCommand(lib, new, f"Import block {mapping[block_id]}"))
            self.w.show_message(f"Imported block {mapping[block_id]}: drag it from the palette's Blocks section")
        else:
            self.w.show_message(f"The project already has this block ({mapping[block_id]})")
        return mapping[block_id]

    # ------------------------------------------------------------------ palette menu
    def palette_action(self, action: str, block_id: str) -> None:
        lib = self.doc.project.blocks
        if block_id not in lib.defs:
            return
        if action == "open":
            self.open_definition(block_id)
        elif action == "export":
            self.export_dialog(block_id)
        elif action == "rename":
            block = lib.defs[block_id]
            name = self.w.prompt("Rename block", f"New name of {block.id}:", block.name, [])
            if name and name != block.name:
                self.doc.undo_stack.push(SetBlockInfoCommand(lib, block_id, name, block.doc))
        elif action == "delete":
            try:
                if lib.uses(block_id):
                    raise WorkbenchError(f"{block_id} is in use; delete or ungroup its nodes first")
                if self.doc.role == block_role(block_id):
                    self.close_block()
                self.doc.undo_stack.push(RemoveBlockCommand(lib, block_id))
            except WorkbenchError as exc:
                self.w.show_message(f"Cannot delete the block: {exc}")

    # ------------------------------------------------------------------ canvas menu
    def canvas_menu(self, pos: QPoint) -> QMenu:
        """The canvas's context menu at a viewport position (the node under it gets selected)."""
        w = self.w
        scene_pos = w.view.mapToScene(pos)
        item = next((i for i in w.scene.items(scene_pos) if hasattr(i, "node_id") and hasattr(i, "is_block")), None)
        if item is not None and not item.isSelected():
            w.scene.select_nodes([item.node_id])
        selected = w.scene.selected_node_ids()
        menu = QMenu(w)
        is_block = any(self.doc.graph.nodes[n].is_block for n in selected)
        if is_block:
            menu.addAction(self.act_open)
        for a in (w.act_rename, w.act_duplicate, w.act_delete):
            a.setEnabled(bool(selected))
            menu.addAction(a)
        menu.addSeparator()
        self.act_group.setEnabled(bool(selected))
        self.act_ungroup.setEnabled(is_block)
        menu.addAction(self.act_group)
        menu.addAction(self.act_ungroup)
        if is_block:
            menu.addAction(self.act_unique)
            menu.addAction(self.act_export)
        if self.doc.block_id is not None:
            menu.addSeparator()
            menu.addAction(self.act_close)
        menu.addSeparator()
        menu.addAction(w.act_paste)
        menu.addAction(w.act_layout_tb)
        return menu

    def show_canvas_menu(self, pos: QPoint) -> None:
        menu = self.canvas_menu(pos)
        menu.exec(self.w.view.viewport().mapToGlobal(pos))
        for a in (self.act_group, self.act_ungroup, self.w.act_rename, self.w.act_duplicate, self.w.act_delete):
            a.setEnabled(True)
