"""The Explain view: why the trained model decides what it does, on dataset samples.

It picks samples (by index, by class, or from a cell of the confusion matrix), the weights (a
run's checkpoint or the project's weights), the method and the class, and draws each sample
beside its map (``workbench.analysis.overlay``).  The attribution runs as a job in a spawned
process (progress, Cancel), so the editor stays live whatever the model's size.

Clicking a sample makes it the chosen one; clicking a node on the canvas then shows that node's
activations for it (feature maps as a grid), computed here from the same project and weights
the maps came from.  The node clicked also becomes Grad-CAM's node.  A node inside a block is
shown for the instance the block was opened from (the last instance selected), as
``instance/node``.
"""

from __future__ import annotations

import html
import multiprocessing as mp
import queue
from pathlib import Path
from typing import Any

import numpy as np
from PySide6.QtCore import Qt, QTimer, Signal
from PySide6.QtGui import QColor, QImage, QMouseEvent, QPalette, QPixmap
from PySide6.QtWidgets import (
    QCheckBox,
    QComboBox,
    QFileDialog,
    QFormLayout,
    QFrame,
    QGridLayout,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QProgressBar,
    QPushButton,
    QScrollArea,
    QSpinBox,
    QSplitter,
    QVBoxLayout,
    QWidget,
)

from workbench.analysis.activations import (
    ExplainError,
    LoadedModel,
    SampleChoice,
    activations,
    feature_maps,
    load_model,
    parse_indices,
)
from workbench.analysis.explain import METHODS, ExplainOptions, ExplainRequest, Explanation, run_request
from workbench.analysis.overlay import NEGATIVE, POSITIVE, tiles
from workbench.errors import WorkbenchError
from workbench.jobs import Job
from workbench.layers.dims import fmt_shape
from workbench.training.runs import list_runs, runs_root

from .document import Document
from .wheel import guard_wheel

CHOOSE_FILE = "__choose__"
#: height of a sample's picture on screen, in pixels
TILE_HEIGHT = 72
SPLITS = [("validation", "val"), ("training", "train"), ("test", "test")]


def rgb_pixmap(rgb: np.ndarray, height: int, background: QColor | None = None) -> QPixmap:
    """An RGB array in [0, 1] ([H, W, 3]; NaN shows ``background``) as a pixmap ``height`` high,
    pixels kept square and sharp."""
    a = np.asarray(rgb, np.float32)
    if a.ndim == 2:
        a = np.repeat(a[:, :, None], 3, 2)
    if background is not None:
        fill = np.array([background.redF(), background.greenF(), background.blueF()], np.float32)
        a = np.where(np.isnan(a), fill, a)
    u8 = np.ascontiguousarray((np.clip(np.nan_to_num(a), 0, 1) * 255).astype(np.uint8))
    h, w = u8.shape[:2]
    image = QImage(u8.data, w, h, 3 * w, QImage.Format.Format_RGB888).copy()  # own the pixels
    if h > height:  # a large image (224x224) is shrunk smoothly; a small one is blown up in whole pixels
        return QPixmap.fromImage(image.scaledToHeight(height, Qt.TransformationMode.SmoothTransformation))
    scale = max(1, height // max(1, h))
    return QPixmap.fromImage(image.scaled(w * scale, h * scale, Qt.AspectRatioMode.IgnoreAspectRatio,
                                          Qt.TransformationMode.FastTransformation))


def token_html(e: Explanation, i: int) -> str:
    """A token sample as text, each token on the colour of its attribution."""
    values = np.asarray(e.maps[i], np.float64).reshape(-1)
    peak = float(np.abs(values).max()) or 1.0
    parts = []
    for token, v in zip(e.inputs[i].reshape(-1), values, strict=True):
        strength = min(1.0, abs(v) / peak) * 0.8
        colour = POSITIVE if v >= 0 else NEGATIVE
        mixed = (1 - strength) * np.ones(3) + strength * colour
        hexcol = "#" + "".join(f"{int(c * 255):02x}" for c in mixed)
        text = html.escape(e.name_of(int(token))).replace(" ", "&nbsp;").replace("\n", "↵")
        parts.append(f"<span style='background-color:{hexcol}; color:#111'>{text}</span>")
    return "<tt>" + "".join(parts) + "</tt>"


class SampleTile(QFrame):
    """One sample: its picture beside its map, and a caption; a click chooses it."""

    clicked = Signal(int)

    def __init__(self, position: int, e: Explanation, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.position = position
        self.setFrameShape(QFrame.Shape.StyledPanel)
        self.setCursor(Qt.CursorShape.PointingHandCursor)
        lay = QVBoxLayout(self)
        lay.setContentsMargins(3, 3, 3, 3)
        lay.setSpacing(2)
        self.picture = QLabel()
        if e.kind == "tokens":
            self.picture.setTextFormat(Qt.TextFormat.RichText)
            self.picture.setText(token_html(e, position))
            self.picture.setWordWrap(True)
        else:
            base, over = tiles(e, position)
            gap = np.full((base.shape[0], 1, 3), np.nan, np.float32)
            pair = np.concatenate([base, gap, over], 1)
            self.picture.setPixmap(rgb_pixmap(pair, TILE_HEIGHT if base.shape[0] > 1 else 16,
                                              self.palette().color(QPalette.ColorRole.Window)))
        lay.addWidget(self.picture)
        head, _, tail = e.caption(position).partition("; ")
        self.caption = QLabel(f"{html.escape(head)}<br><span style='color:gray'>{html.escape(tail)}</span>")
        self.caption.setToolTip(e.caption(position))
        lay.addWidget(self.caption)
        self.set_chosen(False)

    def set_chosen(self, on: bool) -> None:
        self.setLineWidth(2 if on else 1)
        self.setStyleSheet("SampleTile { border: 2px solid palette(highlight); }" if on else "")

    def mousePressEvent(self, event: QMouseEvent) -> None:
        if event.button() == Qt.MouseButton.LeftButton:
            self.clicked.emit(self.position)
        super().mousePressEvent(event)


class ExplainView(QWidget):
    """Signals:
    message(str): news for the status bar.
    """

    message = Signal(str)

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.doc: Document | None = None
        self.job: Job | None = None
        self.events: Any = None
        self.request: ExplainRequest | None = None
        self.explanation: Explanation | None = None
        self.chosen: int | None = None  # position of the chosen sample in the explanation
        self.tiles: list[SampleTile] = []
        self.instances: dict[str, str] = {}  # block id -> address of the instance last selected
        self.node_address: str | None = None
        self.cell_count: int | None = None  # samples in the confusion cell asked for, as the matrix counted them
        self._model: tuple[tuple[str, str | None], LoadedModel] | None = None
        self._build()
        self.timer = QTimer(self)
        self.timer.setInterval(50)
        self.timer.timeout.connect(self._poll)

    # ------------------------------------------------------------------ construction
    def _build(self) -> None:
        self.weights = QComboBox()
        self.weights.setToolTip("The trained weights to explain: a run's checkpoint or the project's weights file")
        self.weights.activated.connect(self._weights_activated)
        self.split = QComboBox()
        for title, key in SPLITS:
            self.split.addItem(title, key)
        self.indices = QLineEdit()
        self.indices.setPlaceholderText("first N (or e.g. 0-7, 12)")
        self.indices.setToolTip("Samples by position in the split; empty: the first ones that pass the filters")
        self.count = QSpinBox()
        self.count.setRange(1, 64)
        self.count.setValue(16)
        self.true_class = QComboBox()
        self.predicted_class = QComboBox()
        self.misclassified = QCheckBox("misclassified only")
        self.method = QComboBox()
        for mid, title in METHODS.items():
            self.method.addItem(title, mid)
        self.node = QLineEdit()
        self.node.setPlaceholderText("automatic (click a node)")
        self.node.setToolTip("Grad-CAM's node: click one on the canvas, or type its name (inside a block "
                             "instance: instance/node); empty: the last node with an [N, C, H, W] output")
        self.target = QComboBox()
        for combo in (self.weights, self.split, self.true_class, self.predicted_class, self.method, self.target):
            guard_wheel(combo)
        guard_wheel(self.count)
        self.explain_button = QPushButton("Explain")
        self.explain_button.setObjectName("explainButton")
        self.explain_button.clicked.connect(self.start)
        self.cancel_button = QPushButton("Cancel")
        self.cancel_button.setEnabled(False)
        self.cancel_button.clicked.connect(self.cancel)
        self.progress = QProgressBar()
        self.progress.setRange(0, 1)
        self.progress.setValue(0)
        self.progress.setFormat("idle")
        self.status = QLabel("Choose samples and a method, then Explain.")
        self.status.setWordWrap(True)

        form = QFormLayout()
        form.setContentsMargins(0, 0, 0, 0)
        form.setVerticalSpacing(3)
        form.addRow("Weights", self.weights)
        form.addRow("Samples of", self.split)
        row = QHBoxLayout()
        row.addWidget(self.indices, 1)
        row.addWidget(QLabel("at most"))
        row.addWidget(self.count)
        form.addRow("Samples", row)
        form.addRow("True class", self.true_class)
        form.addRow("Predicted", self.predicted_class)
        form.addRow("", self.misclassified)
        form.addRow("Method", self.method)
        form.addRow("Node", self.node)
        form.addRow("Explain class", self.target)
        buttons = QHBoxLayout()
        buttons.addWidget(self.explain_button)
        buttons.addWidget(self.cancel_button)
        form.addRow(buttons)
        form.addRow(self.progress)
        controls = QWidget()
        col = QVBoxLayout(controls)
        col.setContentsMargins(4, 4, 4, 4)
        col.addLayout(form)
        col.addWidget(self.status)
        col.addStretch(1)
        controls_area = QScrollArea()
        controls_area.setWidget(controls)
        controls_area.setWidgetResizable(True)
        controls_area.setFrameShape(QFrame.Shape.NoFrame)
        controls_area.setMinimumWidth(260)

        self.title = QLabel("No explanation yet.")
        self.title.setWordWrap(True)
        self.grid_host = QWidget()
        self.grid = QGridLayout(self.grid_host)
        self.grid.setContentsMargins(2, 2, 2, 2)
        self.grid.setSpacing(4)
        self.grid.setAlignment(Qt.AlignmentFlag.AlignTop | Qt.AlignmentFlag.AlignLeft)
        self.results = QScrollArea()
        self.results.setWidget(self.grid_host)
        self.results.setWidgetResizable(True)
        self.results.setFrameShape(QFrame.Shape.NoFrame)
        middle = QWidget()
        mid = QVBoxLayout(middle)
        mid.setContentsMargins(4, 4, 4, 4)
        mid.addWidget(self.title)
        mid.addWidget(self.results, 1)

        self.activation_title = QLabel("Activations: choose a sample, then click a node on the canvas.")
        self.activation_title.setWordWrap(True)
        self.activation_image = QLabel()
        self.activation_image.setAlignment(Qt.AlignmentFlag.AlignTop | Qt.AlignmentFlag.AlignHCenter)
        right = QWidget()
        rcol = QVBoxLayout(right)
        rcol.setContentsMargins(4, 4, 4, 4)
        rcol.addWidget(self.activation_title)
        self.activation_area = QScrollArea()
        self.activation_area.setWidget(self.activation_image)
        self.activation_area.setWidgetResizable(True)
        self.activation_area.setFrameShape(QFrame.Shape.NoFrame)
        self.activation_area.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)  # scaled to fit
        rcol.addWidget(self.activation_area, 1)

        self.splitter = QSplitter(Qt.Orientation.Horizontal)
        for w in (controls_area, middle, right):
            self.splitter.addWidget(w)
        self.splitter.setStretchFactor(1, 3)
        self.splitter.setStretchFactor(2, 1)
        self.splitter.setSizes([290, 640, 300])
        lay = QVBoxLayout(self)
        lay.setContentsMargins(0, 0, 0, 0)
        lay.addWidget(self.splitter)
        self._fill_classes([])

    def _fill_classes(self, names: list[str]) -> None:
        """The class pickers: 'any' / 'predicted' first, then the classes."""
        for combo, first in ((self.true_class, "any"), (self.predicted_class, "any"), (self.target, "predicted")):
            current = combo.currentData()
            combo.clear()
            combo.addItem(first, None)
            for k, name in enumerate(names):
                combo.addItem(name if name == str(k) else f"{k}: {name}", k)
            combo.setCurrentIndex(max(0, combo.findData(current)))

    # ------------------------------------------------------------------ document, weights
    def set_document(self, doc: Document) -> None:
        """Another project: its weights are listed; a running job and the maps of the last one go."""
        self.cancel()
        self._clear()
        self.doc = doc
        self._model = None
        self.instances = {}
        self.node_address = None
        self.node.clear()
        self.refresh_weights()
        self._fill_classes(self._class_names())

    def _class_names(self) -> list[str]:
        """Names for the class pickers, from the model's output size (before any data is loaded)."""
        if self.doc is None:
            return []
        try:
            from workbench.shapes import infer

            graph = self.doc.project.graph
            outputs = graph.outputs()
            shapes = self.doc.shapes if self.doc.graph is graph else infer(graph)  # the editor's: no second pass
            shape = shapes.info(outputs[0].id).inputs.get("x") if outputs else None
        except WorkbenchError:
            return []
        if not shape or not isinstance(shape[-1], int) or len(shape) not in (2, 3) or shape[-1] > 1000:
            return []
        return [str(k) for k in range(shape[-1])]

    def refresh_weights(self, prefer: str | None = None) -> None:
        """List the runs' checkpoints (newest first) and the project's weights; keep the choice,
        or take ``prefer`` (a checkpoint path)."""
        current = prefer or self.weights.currentData()
        self.weights.clear()
        project = self.doc.project if self.doc is not None else None
        if project is not None and project.path is not None:
            for run in list_runs(runs_root(project.path)):
                for kind in ("last", "best"):
                    path = run.path / "checkpoints" / f"{kind}.safetensors"
                    if path.is_file():
                        self.weights.addItem(f"run {run.name}: {kind} ({run.status})", str(path))
        if project is not None and project.weights_path() is not None:
            self.weights.addItem(f"project weights ({project.weights})", "")
        if current and current != CHOOSE_FILE and self.weights.findData(current) < 0 and Path(current).is_file():
            self.weights.addItem(Path(current).name, current)
        self.weights.addItem("Other file…", CHOOSE_FILE)
        index = self.weights.findData(current) if current is not None else -1
        self.weights.setCurrentIndex(index if index >= 0 and current != CHOOSE_FILE else 0)

    def _weights_activated(self, _index: int) -> None:
        if self.weights.currentData() != CHOOSE_FILE:
            return
        path, _ = QFileDialog.getOpenFileName(self, "Weights to explain", "", "Weights (*.safetensors)")
        self.refresh_weights(prefer=path or None)

    def checkpoint(self) -> str | None:
        """The chosen checkpoint; None means the project's weights file."""
        data = self.weights.currentData()
        return (data or None) if data != CHOOSE_FILE else None

    # ------------------------------------------------------------------ the job
    @property
    def running(self) -> bool:
        return self.job is not None

    def _request(self) -> ExplainRequest:
        assert self.doc is not None
        text = self.indices.text().strip()
        choice = SampleChoice(split=self.split.currentData(), indices=parse_indices(text) if text else None,
                              count=self.count.value(), label=self.true_class.currentData(),
                              predicted=self.predicted_class.currentData(),
                              misclassified=self.misclassified.isChecked())
        options = ExplainOptions(method=self.method.currentData(), node=self.node.text().strip() or None,
                                 target=self.target.currentData())
        project = self.doc.project
        return ExplainRequest(project.to_json(), str(project.path) if project.path else None, self.checkpoint(),
                              choice, options)

    def start(self) -> bool:
        """Explain the chosen samples in a background job."""
        if self.doc is None or self.running:
            return False
        self.cell_count = None
        errors = self.doc.errors(["main"])
        if errors:
            self._error(f"Fix the graph first: {errors[0]}")
            return False
        if self.weights.currentData() == CHOOSE_FILE:
            self._error("No trained weights: train the model (Run > Train) or choose a file (Weights: Other file…).")
            return False
        try:
            self.request = self._request()
        except ExplainError as exc:
            self._error(str(exc))
            return False
        self.events = mp.get_context("spawn").Queue()
        self.job = Job(run_request, self.request, self.events).start()
        self.progress.setRange(0, 0)  # busy until the job says how many samples
        self.progress.setFormat("starting…")
        self.status.setText(f"Explaining with {METHODS[self.request.options.method]}…")
        self.explain_button.setEnabled(False)
        self.cancel_button.setEnabled(True)
        self.timer.start()
        return True

    def _poll(self) -> None:
        if self.job is None:
            return
        try:
            while True:
                done, total = self.events.get_nowait()
                self.progress.setRange(0, max(1, total))
                self.progress.setValue(done)
                self.progress.setFormat(f"{done}/{total} samples")
        except (queue.Empty, OSError, ValueError):
            pass
        outcome = self.job.poll()
        if outcome is None:
            return
        self._finish()
        kind, value = outcome
        if kind == "ok":
            self.show_explanation(value)
        else:
            self._error(f"Cannot explain: {value}")
            self.progress.setFormat("failed")

    def _finish(self) -> None:
        self.timer.stop()
        self.job = None
        self.events = None
        self.progress.setRange(0, 1)
        self.explain_button.setEnabled(True)
        self.cancel_button.setEnabled(False)

    def cancel(self) -> None:
        """End the job (its process); nothing was written."""
        if self.job is not None:
            self.job.cancel()
            self._finish()
            self.progress.setValue(0)
            self.progress.setFormat("cancelled")
            self.status.setText("Cancelled.")

    def shutdown(self) -> None:
        self.cancel()

    def _error(self, text: str) -> None:
        self.status.setText(f"<span style='color:#d32f2f'>{html.escape(text)}</span>")
        self.message.emit(text)

    # ------------------------------------------------------------------ results
    def _clear(self) -> None:
        for tile in self.tiles:
            self.grid.removeWidget(tile)
            tile.deleteLater()
        self.tiles = []
        self.explanation = self.request = self.chosen = None
        self.title.setText("No explanation yet.")
        self.activation_image.clear()
        self.activation_title.setText("Activations: choose a sample, then click a node on the canvas.")

    def show_explanation(self, e: Explanation) -> None:
        """Draw every sample beside its map; the first becomes the chosen sample."""
        request = self.request
        self._clear()
        self.request, self.explanation = request, e
        if e.class_names:
            self._fill_classes(e.class_names)
        self.tiles = [SampleTile(i, e) for i in range(len(e.indices))]
        width = max(t.sizeHint().width() for t in self.tiles) + self.grid.spacing()
        cols = 1 if e.kind == "tokens" else max(1, (self.results.viewport().width() - 4) // width)
        for i, tile in enumerate(self.tiles):
            tile.clicked.connect(self.choose_sample)
            self.grid.addWidget(tile, i // cols, i % cols)
        where = f" at {e.node}" if e.node else ""
        step = f", time step {e.position}" if e.position is not None else ""
        legend = ("red: for the class, blue: against it" if e.signed else "red: how much each part counts")
        self.title.setText(f"<b>{METHODS[e.method]}{html.escape(where)}</b>{step} · {len(e.indices)} "
                           f"{dict((k, t) for t, k in SPLITS).get(e.split, e.split)} samples · "
                           f"{html.escape(e.weights)} · {legend}")
        notes = " ".join(e.notes)
        if self.cell_count is not None and min(self.cell_count, self.count.value()) != len(e.indices):
            notes += (f" The matrix shows {self.cell_count} in this cell, these weights put "
                      f"{len(e.indices)}{' or more' if len(e.indices) == self.count.value() else ''} there: the "
                      "checkpoint is newer than the matrix (a run still going?).")
        self.status.setText(f"Done: {len(e.indices)} samples." + (f" {html.escape(notes)}" if notes else ""))
        self.progress.setRange(0, 1)
        self.progress.setValue(1)
        self.progress.setFormat("done")
        self.choose_sample(0)

    def choose_sample(self, position: int) -> None:
        """Make a sample the chosen one (its activations show for the node clicked)."""
        if self.explanation is None or not 0 <= position < len(self.tiles):
            return
        self.chosen = position
        for i, tile in enumerate(self.tiles):
            tile.set_chosen(i == position)
        if self.node_address:
            self.show_activations(self.node_address)

    # ------------------------------------------------------------------ confusion matrix, canvas
    def run_finished(self, run_dir: str) -> None:
        """A run ended: its last checkpoint becomes the weights to explain."""
        path = Path(run_dir) / "checkpoints" / "last.safetensors" if run_dir else None
        self.refresh_weights(prefer=str(path) if path is not None and path.is_file() else None)

    def show_cell(self, true: int, predicted: int, run_dir: str | None, count: int | None = None) -> None:
        """A confusion-matrix cell was clicked: explain its validation samples (true -> predicted)
        with the run's last checkpoint (the weights the matrix came from); ``count`` is the cell's
        number in the matrix, checked against the samples found."""
        if run_dir:
            path = Path(run_dir) / "checkpoints" / "last.safetensors"
            self.refresh_weights(prefer=str(path) if path.is_file() else None)
        self.split.setCurrentIndex(self.split.findData("val"))
        self.indices.clear()
        self.true_class.setCurrentIndex(max(0, self.true_class.findData(true)))
        self.predicted_class.setCurrentIndex(max(0, self.predicted_class.findData(predicted)))
        self.misclassified.setChecked(False)  # the cell says it: off the diagonal every sample is wrong
        if self.running:
            self.cancel()
        if self.start():
            self.cell_count = count

    def canvas_selection(self, node_ids: list[str]) -> None:
        """The canvas selection changed: one node becomes the node (Grad-CAM's, and the activations')."""
        if self.doc is None or len(node_ids) != 1 or (self.doc.role != "main" and self.doc.block_id is None):
            return  # another graph (a GAN's discriminator) is not what the maps explain
        node = self.doc.graph.nodes.get(node_ids[0])
        if node is None:
            return
        block = self.doc.block_id
        if block is None:
            address = node.name
        else:
            instance = self.instances.get(block) or self._first_instance(block)
            if instance is None:
                self.activation_title.setText(f"The block {block} is not used in the model: no activations.")
                return
            address = f"{instance}/{node.name}"
        if node.is_block:
            self.instances[node.type] = address
        self.node_address = address
        self.node.setText(address)
        if self.chosen is not None and self.isVisible():
            self.show_activations(address)

    def _first_instance(self, block_id: str) -> str | None:
        assert self.doc is not None
        for n in self.doc.project.graph:
            if n.type == block_id:
                return n.name
        return None

    def _loaded(self) -> LoadedModel:
        """The model the shown maps came from (same project text and weights), loaded once here."""
        assert self.request is not None
        key = (self.request.project_json, self.request.checkpoint)
        if self._model is None or self._model[0] != key:
            from workbench.project import loads_project

            project = loads_project(self.request.project_json)
            project.path = Path(self.request.project_path) if self.request.project_path else None
            self._model = (key, load_model(project, self.request.checkpoint))
        return self._model[1]

    def show_activations(self, address: str) -> None:
        """The node's value for the chosen sample, as a grid of feature maps."""
        e = self.explanation
        if e is None or self.chosen is None or self.request is None:
            self.activation_title.setText("Activations: explain some samples and choose one first.")
            return
        import torch

        try:
            model = self._loaded()
            x = torch.from_numpy(np.ascontiguousarray(e.inputs[self.chosen:self.chosen + 1]))
            value = activations(model, x, address)[0].float().numpy()
        except (WorkbenchError, RuntimeError) as exc:
            self.activation_image.clear()
            self.activation_title.setText(f"<span style='color:#d32f2f'>{html.escape(str(exc))}</span>")
            return
        picture = feature_maps(value)
        h, w = picture.shape
        bar = self.activation_area.verticalScrollBar().sizeHint().width()
        room = max(64, self.activation_area.viewport().width() - bar - 8)  # as wide as the panel, square pixels
        height = h * max(1, min(room // w, 480 // h)) if w <= room else max(1, h * room // w)  # wide: shrink
        self.activation_image.setPixmap(rgb_pixmap(picture, height, self.palette().color(QPalette.ColorRole.Window)))
        scaled = " (each map on its own scale)" if value.ndim == 3 else ""
        self.activation_title.setText(f"<b>{html.escape(address)}</b>: {fmt_shape(('N', *value.shape))} for sample "
                                      f"#{e.indices[self.chosen]}{scaled}; min {value.min():.3g}, max {value.max():.3g}")
