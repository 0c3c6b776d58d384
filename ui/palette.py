"""The layer palette, generated from the catalogue: categories, search, drag source.

Two more sections hold blocks: *Blocks*, the project's own (they change with
the project), and *Ready blocks*, shipped with the program (placing one copies
it into the project).  A project block's context menu opens, renames, exports
or deletes it.
"""

from __future__ import annotations

from PySide6.QtCore import QMimeData, QPoint, Qt, Signal
from PySide6.QtWidgets import QLineEdit, QMenu, QTreeWidget, QTreeWidgetItem, QVBoxLayout, QWidget

from workbench.blocks import BlockLibrary
from workbench.layers import by_category
from workbench.ready_blocks import ready_catalogue

from .canvas.editor import READY_PREFIX
from .canvas.view import LAYER_MIME
from .style import category_icon

ROLE_LAYER = Qt.ItemDataRole.UserRole + 1
ROLE_SEARCH = Qt.ItemDataRole.UserRole + 2
PROJECT_BLOCKS, READY_BLOCKS = "Blocks", "Ready blocks"


class PaletteTree(QTreeWidget):
    """Tree of layers; dragging an entry carries its layer id as :data:`LAYER_MIME`."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setHeaderHidden(True)
        self.setDragEnabled(True)
        self.setDragDropMode(QTreeWidget.DragDropMode.DragOnly)
        self.setRootIsDecorated(True)
        self.setAnimated(True)

    def mimeTypes(self) -> list[str]:
        return [LAYER_MIME]

    def mimeData(self, items: list[QTreeWidgetItem]) -> QMimeData:
        mime = QMimeData()
        layers = [i.data(0, ROLE_LAYER) for i in items if i.data(0, ROLE_LAYER)]
        if layers:
            mime.setData(LAYER_MIME, layers[0].encode("utf-8"))
            mime.setText(layers[0])
        return mime


class Palette(QWidget):
    """Signals:
    activated(str): a layer was double-clicked or chosen with Enter in the search box.
    blockAction(str, str): ``(action, block_id)`` from a project block's context menu;
        action is open, rename, export or delete.
    """

    activated = Signal(str)
    blockAction = Signal(str, str)

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.search = QLineEdit(self)
        self.search.setPlaceholderText("Search layers and blocks (name, category, description)…")
        self.search.setClearButtonEnabled(True)
        self.tree = PaletteTree(self)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(4, 4, 4, 4)
        layout.addWidget(self.search)
        layout.addWidget(self.tree)
        self.items: dict[str, QTreeWidgetItem] = {}
        self.library: BlockLibrary | None = None
        self.blocks_group = self._group(PROJECT_BLOCKS)
        for category, specs in by_category().items():
            group = self._group(category)
            for spec in specs:
                self._entry(group, spec.id, spec.name, category, spec.doc)
        ready = self._group(READY_BLOCKS, icon_category=PROJECT_BLOCKS)
        for block in ready_catalogue():
            spec = block.spec()
            self._entry(ready, f"{READY_PREFIX}{block.id}", block.name, READY_BLOCKS, spec.doc)
        self.tree.expandAll()
        self.blocks_group.setHidden(True)
        self.search.textChanged.connect(self.filter)
        self.search.returnPressed.connect(self._enter)
        self.tree.itemDoubleClicked.connect(self._double_clicked)
        self.tree.setContextMenuPolicy(Qt.ContextMenuPolicy.CustomContextMenu)
        self.tree.customContextMenuRequested.connect(self._context_menu)

    def _group(self, title: str, icon_category: str | None = None) -> QTreeWidgetItem:
        group = QTreeWidgetItem(self.tree, [title])
        group.setIcon(0, category_icon(icon_category or title))
        group.setFlags(group.flags() & ~Qt.ItemFlag.ItemIsDragEnabled)
        return group

    def _entry(self, group: QTreeWidgetItem, layer: str, name: str, category: str, doc: str) -> QTreeWidgetItem:
        item = QTreeWidgetItem(group, [name])
        item.setIcon(0, category_icon(PROJECT_BLOCKS if category == READY_BLOCKS else category))
        item.setData(0, ROLE_LAYER, layer)
        item.setToolTip(0, f"<b>{name}</b> <i>({category})</i><br>{doc}")
        item.setData(0, ROLE_SEARCH, f"{layer} {name} {category} {doc}".lower())
        self.items[layer] = item
        return item

    # ------------------------------------------------------------------ the project's blocks
    def set_library(self, library: BlockLibrary) -> None:
        """Follow a project's blocks (the *Blocks* section)."""
        if self.library is not None:
            self.library.unsubscribe(self._on_library)
        self.library = library
        library.subscribe(self._on_library)
        self.refresh_blocks()

    def _on_library(self, kind: str, _block_id: str) -> None:
        if kind != "changed":  # the list shows names: edits inside a block do not change it
            self.refresh_blocks()

    def refresh_blocks(self) -> None:
        for i in reversed(range(self.blocks_group.childCount())):
            child = self.blocks_group.takeChild(i)
            self.items.pop(child.data(0, ROLE_LAYER), None)
        for block in self.library or ():
            item = self._entry(self.blocks_group, block.id, block.name, PROJECT_BLOCKS, block.spec().doc)
            item.setToolTip(0, item.toolTip(0) + f"<br><i>{block.id} · right-click to open, rename, export or "
                            "delete</i>")
        self.blocks_group.setExpanded(True)
        self.filter(self.search.text())

    # ------------------------------------------------------------------ search
    def filter(self, text: str) -> None:
        """Show only entries whose name, category or doc contains every word typed."""
        words = text.lower().split()
        for i in range(self.tree.topLevelItemCount()):
            group = self.tree.topLevelItem(i)
            any_visible = False
            for j in range(group.childCount()):
                child = group.child(j)
                hay = child.data(0, ROLE_SEARCH)
                visible = all(w in hay for w in words)
                child.setHidden(not visible)
                any_visible |= visible
            group.setHidden(not any_visible)
            group.setExpanded(True)

    def visible_layers(self) -> list[str]:
        return [lid for lid, item in self.items.items() if not item.isHidden() and not item.parent().isHidden()]

    def _enter(self) -> None:
        hits = self.visible_layers()
        current = self.tree.currentItem()
        if current is not None and current.data(0, ROLE_LAYER) in hits:
            self.activated.emit(current.data(0, ROLE_LAYER))
        elif hits:
            # prefer an exact name match, then the first hit in palette order
            typed = self.search.text().strip().lower()
            exact = [h for h in hits if h.lower() == typed or self.items[h].text(0).lower() == typed]
            self.activated.emit((exact or hits)[0])

    def _double_clicked(self, item: QTreeWidgetItem, _column: int) -> None:
        layer = item.data(0, ROLE_LAYER)
        if layer:
            self.activated.emit(layer)

    # ------------------------------------------------------------------ block menu
    def block_menu(self, block_id: str) -> QMenu:
        """The context menu of a project block (its actions emit :attr:`blockAction`)."""
        menu = QMenu(self)
        used = bool(self.library and self.library.uses(block_id))
        for action, text in (("open", "&Open (edit inside)"), ("rename", "&Rename…"), ("export", "&Export to File…"),
                             ("delete", "&Delete")):
            a = menu.addAction(text, lambda act=action: self.blockAction.emit(act, block_id))
            a.setObjectName(f"block_{action}")
            if action == "delete" and used:
                a.setEnabled(False)
                a.setText("&Delete (in use)")
        return menu

    def _context_menu(self, pos: QPoint) -> None:
        item = self.tree.itemAt(pos)
        if item is None or item.parent() is not self.blocks_group:
            return
        self.block_menu(item.data(0, ROLE_LAYER)).exec(self.tree.viewport().mapToGlobal(pos))
