"""The layer palette, generated from the catalogue: categories, search, drag source."""

from __future__ import annotations

from PySide6.QtCore import QMimeData, Qt, Signal
from PySide6.QtWidgets import QLineEdit, QTreeWidget, QTreeWidgetItem, QVBoxLayout, QWidget

from workbench.layers import by_category

from .canvas.view import LAYER_MIME
from .style import category_icon

ROLE_LAYER = Qt.ItemDataRole.UserRole + 1


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
    """

    activated = Signal(str)

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.search = QLineEdit(self)
        self.search.setPlaceholderText("Search layers (name, category, description)…")
        self.search.setClearButtonEnabled(True)
        self.tree = PaletteTree(self)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(4, 4, 4, 4)
        layout.addWidget(self.search)
        layout.addWidget(self.tree)
        self.items: dict[str, QTreeWidgetItem] = {}
        for category, specs in by_category().items():
            group = QTreeWidgetItem(self.tree, [category])
            group.setIcon(0, category_icon(category))
            group.setFlags(group.flags() & ~Qt.ItemFlag.ItemIsDragEnabled)
            for spec in specs:
                item = QTreeWidgetItem(group, [spec.name])
                item.setIcon(0, category_icon(category))
                item.setData(0, ROLE_LAYER, spec.id)
                item.setToolTip(0, f"<b>{spec.name}</b> <i>({category})</i><br>{spec.doc}")
                item.setData(0, Qt.ItemDataRole.UserRole + 2, f"{spec.id} {spec.name} {category} {spec.doc}".lower())
                self.items[spec.id] = item
        self.tree.expandAll()
        self.search.textChanged.connect(self.filter)
        self.search.returnPressed.connect(self._enter)
        self.tree.itemDoubleClicked.connect(self._double_clicked)

    def filter(self, text: str) -> None:
        """Show only layers whose name, category or doc contains every word typed."""
        words = text.lower().split()
        for i in range(self.tree.topLevelItemCount()):
            group = self.tree.topLevelItem(i)
            any_visible = False
            for j in range(group.childCount()):
                child = group.child(j)
                hay = child.data(0, Qt.ItemDataRole.UserRole + 2)
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
