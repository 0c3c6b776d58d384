"""Problems (errors and warnings, click to go to the node) and the model summary."""

from __future__ import annotations

from PySide6.QtCore import Qt, Signal
from PySide6.QtGui import QBrush, QColor
from PySide6.QtWidgets import (
    QHeaderView,
    QLabel,
    QListWidget,
    QListWidgetItem,
    QTableWidget,
    QTableWidgetItem,
    QTabWidget,
    QVBoxLayout,
    QWidget,
)

from workbench.layers.dims import fmt_shape

from .document import Document
from .style import icon

ROLE_NODE = Qt.ItemDataRole.UserRole + 1


class NumericItem(QTableWidgetItem):
    """Sorts by its number, not its text."""

    def __init__(self, value: int) -> None:
        super().__init__(f"{value:,}")
        self.value = value
        self.setTextAlignment(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)

    def __lt__(self, other: QTableWidgetItem) -> bool:
        return self.value < getattr(other, "value", 0)


class ProblemsPanel(QTabWidget):
    """Signals:
    nodeActivated(str): the user clicked a problem or a summary row of this node.
    """

    nodeActivated = Signal(str)

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.doc: Document | None = None
        self.list = QListWidget()
        self.list.itemClicked.connect(self._clicked)
        self.list.itemActivated.connect(self._clicked)
        self.addTab(self.list, "Problems")
        summary = QWidget()
        self.totals = QLabel()
        self.totals.setObjectName("totals")
        self.table = QTableWidget(0, 4)
        self.table.setHorizontalHeaderLabels(["name", "type", "output shape(s)", "params"])
        self.table.horizontalHeader().setSectionResizeMode(2, QHeaderView.ResizeMode.Stretch)
        self.table.verticalHeader().setVisible(False)
        self.table.setEditTriggers(QTableWidget.EditTrigger.NoEditTriggers)
        self.table.setSelectionBehavior(QTableWidget.SelectionBehavior.SelectRows)
        self.table.itemClicked.connect(lambda item: self._clicked(self.table.item(item.row(), 0)))
        lay = QVBoxLayout(summary)
        lay.setContentsMargins(4, 4, 4, 4)
        lay.addWidget(self.totals)
        lay.addWidget(self.table)
        self.addTab(summary, "Summary")

    def set_document(self, doc: Document) -> None:
        self.doc = doc
        doc.changed.connect(lambda _ids: self.refresh())
        self.refresh()

    def refresh(self) -> None:
        doc = self.doc
        if doc is None:
            return
        si, g = doc.shapes, doc.graph
        self.list.clear()
        errors = si.errors()
        graph_level = []
        if not g.inputs():
            graph_level.append("The graph has no Input node: drag one from the palette (Input/Output).")
        if not g.outputs():
            graph_level.append("The graph has no Output node: drag one from the palette (Input/Output).")
        for text in graph_level:
            item = QListWidgetItem(icon("activation"), text)
            self.list.addItem(item)
        for e in errors:
            item = QListWidgetItem(f"error  {e}")
            item.setForeground(QBrush(QColor("#d32f2f")))
            item.setData(ROLE_NODE, e.node_id)
            self.list.addItem(item)
        warnings = si.warnings()
        for w in warnings:
            item = QListWidgetItem(f"warning  {w.message}")
            item.setForeground(QBrush(QColor("#ef6c00")))
            item.setData(ROLE_NODE, w.node_id)
            self.list.addItem(item)
        n_err, n_warn = len(errors) + len(graph_level), len(warnings)
        self.setTabText(0, f"Problems ({n_err + n_warn})" if n_err + n_warn else "Problems")
        if not n_err and not n_warn:
            self.list.addItem(QListWidgetItem("No problems: the graph compiles."))

        total = si.total_params()
        self.totals.setText(
            f"<b>{total:,}</b> parameters · about <b>{total * 4 / 1e6:.2f} MB</b> as float32 · "
            f"{len(g)} nodes, {len(g.edges)} wires"
        )
        self.table.setSortingEnabled(False)
        self.table.setRowCount(len(g))
        infos = si.all()
        for row, node in enumerate(g):
            info = infos[node.id]
            shapes = ", ".join(fmt_shape(s) for s in info.outputs.values()) or (
                "error" if info.status == "error" else ("?" if info.status == "unknown" else ""))
            name_item = QTableWidgetItem(node.name)
            name_item.setData(ROLE_NODE, node.id)
            self.table.setItem(row, 0, name_item)
            self.table.setItem(row, 1, QTableWidgetItem(node.spec.name))
            self.table.setItem(row, 2, QTableWidgetItem(shapes))
            self.table.setItem(row, 3, NumericItem(info.params))
        self.table.setSortingEnabled(True)
        self.table.resizeColumnToContents(0)
        self.table.resizeColumnToContents(1)

    def _clicked(self, item: QListWidgetItem | QTableWidgetItem | None) -> None:
        if item is None:
            return
        nid = item.data(ROLE_NODE)
        if nid:
            self.nodeActivated.emit(nid)
