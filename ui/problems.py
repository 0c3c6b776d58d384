"""Problems (errors and warnings, click to go to the node) and the model summary.

The summary lists the nodes in graph order (the topological order the model runs them
in, its "#" column) and keeps that order through edits; a click on another header sorts
by that column until "#" is clicked again."""

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

from workbench.analysis.cost import cost_table, format_bytes
from workbench.analysis.macs import format_count
from workbench.layers.dims import fmt_shape

from .document import Document
from .style import icon

ROLE_NODE = Qt.ItemDataRole.UserRole + 1
ORDER, NAME = 0, 1  # summary columns: graph order, node name
MACS, MEMORY, LATENCY = 5, 6, 7  # the cost columns


class NumericItem(QTableWidgetItem):
    """Sorts by its number, not its text."""

    def __init__(self, value: float, text: str | None = None) -> None:
        super().__init__(f"{value:,}" if text is None else text)
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
        self.table = QTableWidget(0, 8)
        self.table.setHorizontalHeaderLabels(["#", "name", "type", "output shape(s)", "params", "MACs", "memory",
                                              "latency"])
        self.table.horizontalHeaderItem(0).setToolTip("Graph order: where the node runs in the model")
        self.table.horizontalHeaderItem(MACS).setToolTip("Multiply-accumulates of one forward pass at the cost batch "
                                                         "(View > Cost Bars > Batch Size); FLOPs in the tooltip")
        self.table.horizontalHeaderItem(MEMORY).setToolTip("The node's outputs at the cost batch")
        self.table.horizontalHeaderItem(LATENCY).setToolTip("Median per forward pass, measured by View > Cost Bars > "
                                                            "Profile Latency")
        self.cost_batch = 1
        """The batch size of the cost columns (set by the window's cost view)."""
        self.cost_latency: dict[str, float] = {}
        """Measured median latency per node id (ms), empty until a profile run."""
        self.table.horizontalHeader().setSectionResizeMode(3, QHeaderView.ResizeMode.Stretch)
        self.table.verticalHeader().setVisible(False)
        self.table.setEditTriggers(QTableWidget.EditTrigger.NoEditTriggers)
        self.table.setSelectionBehavior(QTableWidget.SelectionBehavior.SelectRows)
        self.table.itemClicked.connect(lambda item: self._clicked(self.table.item(item.row(), NAME)))
        # Sorting on from the start, by graph order: enabling it later sorted by the first column
        # (the name) and an unsorted refill kept nodes in the order they were added.
        self.table.setSortingEnabled(True)
        self.table.sortByColumn(ORDER, Qt.SortOrder.AscendingOrder)
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

        from workbench.node_training import split_text

        total = si.total_params()
        costs = cost_table(g, si, self.cost_batch, int(doc.project.data.get("seq_len", 1)))
        costs.attach(self.cost_latency)
        latency = f" · <b>{costs.latency_ms:.3f} ms</b> measured" if costs.latency_ms is not None else ""
        self.totals.setText(
            f"<b>{total:,}</b> parameters{split_text(g, si)} · about <b>{total * 4 / 1e6:.2f} MB</b> as float32 · "
            f"{len(g)} nodes, {len(g.edges)} wires<br><b>{format_count(costs.macs)}</b> MACs · "
            f"<b>{format_count(costs.flops)}</b> FLOPs · <b>{format_bytes(costs.activation_bytes)}</b> of activations "
            f"at batch {self.cost_batch}{latency}"
        )
        by_id = costs.by_id()
        header = self.table.horizontalHeader()
        column, order = header.sortIndicatorSection(), header.sortIndicatorOrder()
        self.table.setSortingEnabled(False)  # filling a sorting table moves rows under the loop
        self.table.setRowCount(len(g))
        infos = si.all()
        for row, nid in enumerate(g.topological_order()):
            node, info = g.nodes[nid], infos[nid]
            shapes = ", ".join(fmt_shape(s) for s in info.outputs.values()) or (
                "error" if info.status == "error" else ("?" if info.status == "unknown" else ""))
            name_item = QTableWidgetItem(node.name)
            name_item.setData(ROLE_NODE, node.id)
            self.table.setItem(row, ORDER, NumericItem(row + 1))
            self.table.setItem(row, NAME, name_item)
            self.table.setItem(row, 2, QTableWidgetItem(node.spec.name))
            self.table.setItem(row, 3, QTableWidgetItem(shapes))
            self.table.setItem(row, 4, NumericItem(info.params))
            cost = by_id[nid]
            macs = NumericItem(cost.macs, format_count(cost.macs))
            macs.setToolTip(f"{cost.macs:,} MACs, {cost.flops:,} FLOPs")
            self.table.setItem(row, MACS, macs)
            self.table.setItem(row, MEMORY, NumericItem(cost.activation_bytes, format_bytes(cost.activation_bytes)))
            ms = cost.latency_ms
            self.table.setItem(row, LATENCY, NumericItem(ms if ms is not None else -1.0,
                                                         f"{ms:.3f} ms" if ms is not None else ""))
        self.table.setSortingEnabled(True)
        self.table.sortByColumn(column, order)  # the user's column, graph order unless another was clicked
        for c in (ORDER, NAME, 2):
            self.table.resizeColumnToContents(c)

    def _clicked(self, item: QListWidgetItem | QTableWidgetItem | None) -> None:
        if item is None:
            return
        nid = item.data(ROLE_NODE)
        if nid:
            self.nodeActivated.emit(nid)
