"""Past runs of the project: compare their curves, resume one, or load its weights."""

from __future__ import annotations

import shutil
from pathlib import Path

from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import (
    QComboBox,
    QHBoxLayout,
    QListWidget,
    QListWidgetItem,
    QPushButton,
    QSplitter,
    QVBoxLayout,
    QWidget,
)

from workbench.training.runs import RunInfo, list_runs, runs_root
from workbench.weights import WeightsError, read_checkpoint

from .document import Document
from .plots import PALETTE, curve, make_plot
from .wheel import guard_wheel

ROLE_PATH = Qt.ItemDataRole.UserRole + 1


class RunsPanel(QWidget):
    """Signals:
    resumeRequested(str): continue from this checkpoint.
    message(str): status text.
    """

    resumeRequested = Signal(str)
    message = Signal(str)

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.doc: Document | None = None
        self.list = QListWidget()
        self.list.itemChanged.connect(lambda _i: self.plot_selected())
        self.metric = QComboBox()
        self.metric.addItems(["val_loss", "val_accuracy", "train_loss", "val_mae", "val_r2", "val_probe_accuracy",
                              "val_knn_accuracy"])
        self.metric.currentTextChanged.connect(lambda _t: self.plot_selected())
        guard_wheel(self.metric)
        refresh = QPushButton("Refresh")
        refresh.clicked.connect(self.refresh)
        self.resume_button = QPushButton("Resume run")
        self.resume_button.clicked.connect(self._resume)
        self.load_button = QPushButton("Load weights into project")
        self.load_button.clicked.connect(self.load_weights_of_current)
        self.plot = make_plot("Compare runs", "value", "epoch")
        left = QWidget()
        lay = QVBoxLayout(left)
        lay.setContentsMargins(0, 0, 0, 0)
        lay.addWidget(self.list)
        buttons = QHBoxLayout()
        for b in (refresh, self.resume_button, self.load_button):
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

    def set_document(self, doc: Document) -> None:
        self.doc = doc
        self.refresh()

    def refresh(self) -> None:
        self.list.blockSignals(True)
        self.list.clear()
        self.runs = list_runs(runs_root(self.doc.project.path)) if self.doc else []
        for i, run in enumerate(self.runs):
            s = run.summary
            final = s.get("final") or {}
            best = next((f"{k} {v:.4f}" for k, v in s.items() if k.startswith("best_") and isinstance(v, float)), "")
            loss = f"loss {final['loss']:.4f}" if "loss" in final else ""
            item = QListWidgetItem(f"{run.name}  [{run.status}]  {best}  {loss}".rstrip())
            item.setData(ROLE_PATH, str(run.path))
            item.setFlags(item.flags() | Qt.ItemFlag.ItemIsUserCheckable)
            item.setCheckState(Qt.CheckState.Checked if i < 3 else Qt.CheckState.Unchecked)
            self.list.addItem(item)
        self.list.blockSignals(False)
        self.plot_selected()

    def plot_selected(self) -> None:
        self.plot.clear()
        self.plot.addLegend(offset=(-10, 10))
        key = self.metric.currentText()
        for i in range(self.list.count()):
            item = self.list.item(i)
            if item.checkState() != Qt.CheckState.Checked:
                continue
            run = self.runs[i]
            series = curve(self.plot, run.name, PALETTE[i % len(PALETTE)], symbol="o")
            for e in run.epochs():
                if key in e:
                    series.append(e["epoch"], e[key])
            series.redraw()

    def _current_run(self) -> Path | None:
        item = self.list.currentItem()
        return Path(item.data(ROLE_PATH)) if item is not None else None

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
