"""Problems (errors and warnings, click to go to the node) and the model summary.

The summary lists the nodes in graph order (the topological order the model runs them
in, its "#" column) and keeps that order through edits; a click on another header sorts
by that column until "#" is clicked again."""

from __future__ import annotations

from typing import Any

from PySide6.QtCore import QAbstractTableModel, QModelIndex, QPersistentModelIndex, QSortFilterProxyModel, Qt, Signal
from PySide6.QtGui import QBrush, QColor
from PySide6.QtWidgets import (
    QAbstractItemView,
    QHeaderView,
    QLabel,
    QListWidget,
    QListWidgetItem,
    QPushButton,
    QTableView,
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
SORT_ROLE = Qt.ItemDataRole.UserRole + 2
SUMMARY_TAB = 1


class SummaryModel(QAbstractTableModel):
    """The summary's rows as plain values: a view asks only for the cells it shows, so a graph of
    ten thousand nodes fills the table in milliseconds (one widget item per cell took seconds)."""

    HEADERS = ("#", "name", "type", "output shape(s)", "params", "MACs", "memory", "latency")
    TIPS = {
        ORDER: "Graph order: where the node runs in the model",
        MACS: "Multiply-accumulates of one forward pass at the cost batch (View > Cost Bars > Batch Size); "
              "FLOPs in the tooltip",
        MEMORY: "The node's outputs at the cost batch",
        LATENCY: "Median per forward pass, measured by View > Cost Bars > Profile Latency",
    }

    def __init__(self) -> None:
        super().__init__()
        self.rows: list[tuple[tuple[str, ...], tuple[Any, ...], str, str]] = []
        """Per node: the texts, the sort keys, the node id and the MACs tooltip."""

    def set_rows(self, rows: list[tuple[tuple[str, ...], tuple[Any, ...], str, str]]) -> None:
        self.beginResetModel()
        self.rows = rows
        self.endResetModel()

    def rowCount(self, parent: QModelIndex | QPersistentModelIndex = QModelIndex()) -> int:
        return 0 if parent.isValid() else len(self.rows)

    def columnCount(self, parent: QModelIndex | QPersistentModelIndex = QModelIndex()) -> int:
        return 0 if parent.isValid() else len(self.HEADERS)

    def data(self, index: QModelIndex | QPersistentModelIndex, role: int = Qt.ItemDataRole.DisplayRole) -> Any:
        texts, keys, nid, tip = self.rows[index.row()]
        col = index.column()
        if role == Qt.ItemDataRole.DisplayRole:
            return texts[col]
        if role == SORT_ROLE:
            return keys[col]
        if role == ROLE_NODE:
            return nid
        if role == Qt.ItemDataRole.TextAlignmentRole and col not in (NAME, 2, 3):
            return int(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
        if role == Qt.ItemDataRole.ToolTipRole and col == MACS:
            return tip
        return None

    def headerData(self, section: int, orientation: Qt.Orientation, role: int = Qt.ItemDataRole.DisplayRole) -> Any:
        if orientation != Qt.Orientation.Horizontal:
            return None
        if role == Qt.ItemDataRole.DisplayRole:
            return self.HEADERS[section]
        if role == Qt.ItemDataRole.ToolTipRole:
            return self.TIPS.get(section)
        return None


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
        # private training (Opacus) cannot train BatchNorm: the fix, one undo step
        self.privacy_fix = QPushButton("Replace BatchNorm by GroupNorm (for private training)")
        self.privacy_fix.setObjectName("privacyFix")
        self.privacy_fix.setToolTip("GroupNorm normalises each sample on its own, so Opacus can train it with "
                                    "differential privacy (one undo step)")
        self.privacy_fix.clicked.connect(self.fix_for_privacy)
        self.privacy_fix.hide()
        problems = QWidget()
        box = QVBoxLayout(problems)
        box.setContentsMargins(0, 0, 0, 0)
        box.addWidget(self.list)
        box.addWidget(self.privacy_fix)
        self.addTab(problems, "Problems")
        summary = QWidget()
        self.totals = QLabel()
        self.totals.setObjectName("totals")
        self.model = SummaryModel()
        self.sorted = QSortFilterProxyModel(self)
        self.sorted.setSourceModel(self.model)
        self.sorted.setSortRole(SORT_ROLE)
        self.table = QTableView()
        self.table.setModel(self.sorted)
        self.cost_batch = 1
        """The batch size of the cost columns (set by the window's cost view)."""
        self.cost_latency: dict[str, float] = {}
        """Measured median latency per node id (ms), empty until a profile run."""
        self.table.horizontalHeader().setSectionResizeMode(3, QHeaderView.ResizeMode.Stretch)
        self.table.verticalHeader().setVisible(False)
        self.table.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.table.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.table.clicked.connect(self._row_clicked)
        self._summary_stale = True
        self.currentChanged.connect(lambda _i: self._summary_stale and self.refresh_summary())
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
        privacy = self._privacy_problems()
        for node_id, text in privacy:
            item = QListWidgetItem(f"error  {text}")
            item.setForeground(QBrush(QColor("#d32f2f")))
            item.setData(ROLE_NODE, node_id)
            self.list.addItem(item)
        self.privacy_fix.setVisible(bool(privacy))
        warnings = si.warnings()
        for w in warnings:
            item = QListWidgetItem(f"warning  {w.message}")
            item.setForeground(QBrush(QColor("#ef6c00")))
            item.setData(ROLE_NODE, w.node_id)
            self.list.addItem(item)
        n_err, n_warn = len(errors) + len(graph_level) + len(privacy), len(warnings)
        self.setTabText(0, f"Problems ({n_err + n_warn})" if n_err + n_warn else "Problems")
        if not n_err and not n_warn:
            self.list.addItem(QListWidgetItem("No problems: the graph compiles."))

        self._summary_stale = True
        if self.currentIndex() == SUMMARY_TAB:  # filled when shown: a big graph's costs take a while
            self.refresh_summary()

    def refresh_summary(self) -> None:
        """Fill the Summary (totals and the per-node table) from the document as it is."""
        doc = self.doc
        if doc is None:
            return
        self._summary_stale = False
        si, g = doc.shapes, doc.graph
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
        infos = si.all()
        rows = []
        for row, nid in enumerate(g.topological_order()):
            node, info, cost = g.nodes[nid], infos[nid], by_id[nid]
            shapes = ", ".join(fmt_shape(s) for s in info.outputs.values()) or (
                "error" if info.status == "error" else ("?" if info.status == "unknown" else ""))
            ms = cost.latency_ms
            texts = (str(row + 1), node.name, node.spec.name, shapes, f"{info.params:,}", format_count(cost.macs),
                     format_bytes(cost.activation_bytes), f"{ms:.3f} ms" if ms is not None else "")
            keys = (row + 1, node.name, node.spec.name, shapes, info.params, cost.macs, cost.activation_bytes,
                    ms if ms is not None else -1.0)
            rows.append((texts, keys, nid, f"{cost.macs:,} MACs, {cost.flops:,} FLOPs"))
        self.model.set_rows(rows)  # the proxy keeps the user's sort column: graph order unless another was clicked
        if len(rows) <= 2000:  # measuring every row's text is the slow part of a huge table
            for c in (ORDER, NAME, 2):
                self.table.resizeColumnToContents(c)

    def cell(self, row: int, column: int) -> str:
        """The text shown at ``row``, ``column`` of the Summary, as sorted on screen."""
        return str(self.sorted.index(row, column).data())

    def _row_clicked(self, index: QModelIndex) -> None:
        nid = index.data(ROLE_NODE)
        if nid:
            self.nodeActivated.emit(nid)

    def _privacy_problems(self) -> list[tuple[str, str]]:
        """With training.privacy on: the model's BatchNorm nodes, which Opacus cannot train (``workbench
        check`` and training run Opacus' own validator on the whole model, blocks included)."""
        doc = self.doc
        if doc is None or not doc.project.training.get("privacy") or doc.graph is not doc.project.graph:
            return []
        from workbench.training.privacy import BATCHNORMS

        return [(n.id, f'{n.type} "{n.name}": BatchNorm mixes the samples of a batch, so Opacus cannot train it with '
                 "differential privacy; replace it by GroupNorm (the button below)")
                for n in doc.graph if n.type in BATCHNORMS]

    def fix_for_privacy(self) -> bool:
        """Replace the model's BatchNorm nodes by GroupNorm nodes, as one undo step."""
        doc = self.doc
        if doc is None:
            return False
        from workbench.errors import WorkbenchError
        from workbench.training.privacy import BatchNormToGroupNorm

        from .commands import ReplaceBatchNormCommand

        try:
            change = BatchNormToGroupNorm(doc.project.graph)
        except WorkbenchError as exc:  # a BatchNorm whose channels are unknown: its wire is missing
            self.list.addItem(QListWidgetItem(f"error  {exc}"))
            return False
        if not change.count:
            return False
        doc.undo_stack.push(ReplaceBatchNormCommand(change))
        return True

    def _clicked(self, item: QListWidgetItem | None) -> None:
        if item is None:
            return
        nid = item.data(ROLE_NODE)
        if nid:
            self.nodeActivated.emit(nid)
