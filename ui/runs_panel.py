"""Past runs of the project, sweep trials included: a sortable table of their settings and final
metrics (exported as CSV), the curves of the checked runs overlaid, resume one, or load its weights."""

from __future__ import annotations

import shutil
from pathlib import Path

from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import (
    QAbstractItemView,
    QComboBox,
    QFileDialog,
    QHBoxLayout,
    QPushButton,
    QSplitter,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
    QWidget,
)

from workbench.errors import WorkbenchError
from workbench.runs_table import RunRow, runs_table, write_csv
from workbench.training.runs import RunInfo, read_metrics, runs_root
from workbench.weights import WeightsError, read_checkpoint

from .document import Document
from .plots import PALETTE, curve, make_plot
from .wheel import guard_wheel

ROLE_PATH = Qt.ItemDataRole.UserRole + 1


class _Cell(QTableWidgetItem):
    """A cell that sorts numbers as numbers (and empty cells last)."""

    def __init__(self, value: object) -> None:
        text = "" if value is None else f"{value:.4g}" if isinstance(value, float) else str(value)
        super().__init__(text)
        self.value = value
        self.setToolTip(str(value) if value is not None else "")
        self.setFlags(self.flags() & ~Qt.ItemFlag.ItemIsEditable)

    def __lt__(self, other: QTableWidgetItem) -> bool:
        a, b = self.value, getattr(other, "value", None)
        if isinstance(a, (int, float)) and isinstance(b, (int, float)) and not isinstance(a, bool):
            return a < b
        if a is None or b is None:
            return b is None and a is not None
        return str(a) < str(b)


class RunsPanel(QWidget):
    """Signals:
    resumeRequested(str): continue from this checkpoint.
    message(str): status text.
    """

    resumeRequested = Signal(str)
    showRequested = Signal(str)
    message = Signal(str)

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.doc: Document | None = None
        self.table = QTableWidget(0, 0)
        self.table.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.table.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
        self.table.setSortingEnabled(True)
        self.table.verticalHeader().setVisible(False)
        self.table.itemChanged.connect(lambda _i: self.plot_selected())
        self.metric = QComboBox()
        self.metric.addItems(["val_loss", "val_accuracy", "train_loss", "val_mae", "val_r2", "epsilon",
                              "val_probe_accuracy", "val_knn_accuracy"])
        self.metric.currentTextChanged.connect(lambda _t: self.plot_selected())
        guard_wheel(self.metric)
        refresh = QPushButton("Refresh")
        refresh.clicked.connect(self.refresh)
        self.resume_button = QPushButton("Resume run")
        self.resume_button.clicked.connect(self._resume)
        self.load_button = QPushButton("Load weights into project")
        self.load_button.clicked.connect(self.load_weights_of_current)
        self.show_button = QPushButton("Show in dashboard")
        self.show_button.setToolTip("Draw the selected run's curves (a federated run's rounds and clients too)")
        self.show_button.clicked.connect(self._show)
        self.csv_button = QPushButton("Export CSV...")
        self.csv_button.setToolTip("the table as a CSV file: every run's settings and final metrics")
        self.csv_button.clicked.connect(self._export_csv)
        self.plot = make_plot("Compare runs", "value", "epoch")
        left = QWidget()
        lay = QVBoxLayout(left)
        lay.setContentsMargins(0, 0, 0, 0)
        lay.addWidget(self.table)
        buttons = QHBoxLayout()
        for b in (refresh, self.resume_button, self.load_button, self.show_button, self.csv_button):
            buttons.addWidget(b)
        lay.addLayout(buttons)
        lay.addWidget(self.metric)
        split = QSplitter()
        split.addWidget(left)
        split.addWidget(self.plot)
        main = QVBoxLayout(self)
        main.setContentsMargins(2, 2, 2, 2)
        main.addWidget(split)
        self.runs: list[RunInfo] = []
        self.columns: list[str] = []
        self.rows: list[RunRow] = []

    def set_document(self, doc: Document) -> None:
        self.doc = doc
        self.refresh()

    def refresh(self) -> None:
        """Read the run folders again and rebuild the table (the 3 newest runs checked)."""
        self.columns, self.rows = runs_table(runs_root(self.doc.project.path)) if self.doc else ([], [])
        self.runs = [RunInfo(r.path, r.name, r.status, {}) for r in self.rows]
        t = self.table
        t.blockSignals(True)
        t.setSortingEnabled(False)
        t.clear()
        t.setColumnCount(len(self.columns))
        t.setRowCount(len(self.rows))
        t.setHorizontalHeaderLabels(self.columns)
        for i, row in enumerate(self.rows):
            for j, col in enumerate(self.columns):
                item = _Cell(row.cell(col))
                if j == 0:
                    item.setData(ROLE_PATH, str(row.path))
                    item.setFlags(item.flags() | Qt.ItemFlag.ItemIsUserCheckable)
                    item.setCheckState(Qt.CheckState.Checked if i < 3 else Qt.CheckState.Unchecked)
                t.setItem(i, j, item)
        t.setSortingEnabled(True)
        t.resizeColumnsToContents()
        t.blockSignals(False)
        self.plot_selected()

    def checked_runs(self) -> list[Path]:
        """The runs whose curves are overlaid (in the table's current order)."""
        out = []
        for i in range(self.table.rowCount()):
            item = self.table.item(i, 0)
            if item is not None and item.checkState() == Qt.CheckState.Checked:
                out.append(Path(item.data(ROLE_PATH)))
        return out

    def plot_selected(self) -> None:
        self.plot.clear()
        self.plot.addLegend(offset=(-10, 10))
        key = self.metric.currentText()
        for i, path in enumerate(self.checked_runs()):
            series = curve(self.plot, path.name, PALETTE[i % len(PALETTE)], symbol="o")
            for e in read_metrics(path):
                if e.get("type") == "epoch" and key in e:
                    series.append(e["epoch"], e[key])
            series.redraw()

    def export_csv(self, path: Path) -> Path:
        """Write the table (every run, whatever is checked) as CSV, atomically."""
        write_csv(path, self.columns, self.rows)
        return path

    def _export_csv(self) -> None:
        name, _ = QFileDialog.getSaveFileName(self, "Export runs table", "runs.csv", "CSV files (*.csv)")
        if name:
            try:
                self.export_csv(Path(name))
            except (OSError, WorkbenchError) as exc:
                self.message.emit(f"cannot write {name}: {getattr(exc, 'strerror', None) or exc}")
                return
            self.message.emit(f"Runs table written to {name}")

    def _current_run(self) -> Path | None:
        row = self.table.currentRow()
        item = self.table.item(row, 0) if row >= 0 else None
        return Path(item.data(ROLE_PATH)) if item is not None else None

    def _show(self) -> None:
        run = self._current_run()
        if run is not None:
            self.showRequested.emit(str(run))

    def _resume(self) -> None:
        run = self._current_run()
        if run is not None and (run / "checkpoints" / "last.safetensors").exists():
            self.resumeRequested.emit(str(run / "checkpoints" / "last.safetensors"))

    def load_weights_of_current(self) -> bool:
        run = self._current_run()
        return self.load_weights(run / "checkpoints" / "best.safetensors") if run else False

    def load_weights(self, checkpoint: Path) -> bool:
        """Copy a checkpoint's model weights beside the project and point the project at them."""
        doc = self.doc
        if doc is None:
            return False
        if doc.project.path is None:
            self.message.emit("Save the project first: its weights are stored beside it.")
            return False
        if not checkpoint.exists():
            checkpoint = checkpoint.with_name("last.safetensors")
        try:
            tensors, _, _ = read_checkpoint(checkpoint)
        except WeightsError as exc:
            self.message.emit(str(exc))
            return False
        from safetensors.torch import save_file

        from workbench.fileio import atomic_path

        target = doc.project.path.with_suffix(".safetensors")
        with atomic_path(target) as tmp:
            save_file(tensors, str(tmp), metadata={"source": checkpoint.parent.parent.name})
        shutil.copystat(checkpoint, target)
        doc.project.weights = target.name
        doc.undo_stack.resetClean()  # the project file now needs saving to remember the weights
        self.message.emit(f"Loaded weights from {checkpoint.parent.parent.name} into {target.name}")
        return True
