"""Training dashboard: run controls, live plots, per-layer statistics, results.

Training runs in a worker process (``workbench.training.worker``); a 20 Hz timer
drains its events into preallocated series, so the editor never waits on it.

The dashboard shows one run at a time and says whose (project and run folder); a new
run starts from a clean dashboard.  A run can be *detached* (when another project is
opened): it trains on in the background, its events are read and dropped so the
worker never blocks on a full queue, and its end is reported (``message``).
"""

from __future__ import annotations

import csv
import html
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import Qt, QTimer, Signal
from PySide6.QtWidgets import (
    QCheckBox,
    QComboBox,
    QFileDialog,
    QHBoxLayout,
    QLabel,
    QListWidget,
    QListWidgetItem,
    QProgressBar,
    QPushButton,
    QSlider,
    QSplitter,
    QTabWidget,
    QVBoxLayout,
    QWidget,
)

from workbench.imaging import grid
from workbench.training.worker import TrainingProcess

from .document import Document
from .plots import PALETTE, Plot, Series, curve, make_plot
from .wheel import guard_wheel

#: the smallest plot that still reads (ticks, a legend and a curve); a shorter dock scrolls
MIN_PLOT_HEIGHT = 150


def image_grid(images: np.ndarray, cols: int = 8) -> np.ndarray:
    """A mosaic for an ImageItem: the core's grid with transparent gaps."""
    return grid(images, cols, fill=np.nan)


@dataclass
class BackgroundRun:
    """A run detached from the dashboard, still training."""

    process: TrainingProcess
    project: str
    run_dir: str | None


class TrainingPanel(QWidget):
    """Signals:
    runFinished(str): a run ended (its folder), so the runs panel can refresh.
    message(str): news for the status bar (a background run ended).
    """

    runFinished = Signal(str)
    message = Signal(str)

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.doc: Document | None = None
        self.process: TrainingProcess | None = None
        self.run_dir: str | None = None
        self.layer_names: list[str] = []
        self._t_start = 0.0
        self.history: list[dict[str, Any]] = []
        self.epochs = 0
        self._ticks = 0
        self._last_batch: dict[str, Any] | None = None
        self.d_loss: Series | None = None
        self.confusion: np.ndarray | None = None
        self.run_project = ""
        """The project whose run the dashboard shows (named as it was when the run started)."""
        self.background: list[BackgroundRun] = []
        self._build()
        self.tabs.currentChanged.connect(lambda _i: self.redraw_visible())
        self.timer = QTimer(self)
        self.timer.setInterval(50)  # 20 Hz
        self.timer.timeout.connect(self.drain)
        self._background_timer = QTimer(self)
        self._background_timer.setInterval(500)
        self._background_timer.timeout.connect(self._drain_background)

    # ------------------------------------------------------------------ construction
    def _build(self) -> None:
        self.title = QLabel()
        self.title.setObjectName("runTitle")
        self.title.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.device = QComboBox()
        self.device.setToolTip("Device to train on; listed by the worker process (the GUI never touches CUDA)")
        self.device.addItem("auto (best available)", "auto")
        self.device.addItem("cpu", "cpu")
        guard_wheel(self.device)
        self.train_button = QPushButton("Train")
        self.train_button.setObjectName("trainButton")
        self.pause_button = QPushButton("Pause")
        self.stop_button = QPushButton("Stop")
        self.pause_button.setEnabled(False)
        self.stop_button.setEnabled(False)
        self.train_button.clicked.connect(self.start)
        self.pause_button.clicked.connect(self.toggle_pause)
        self.stop_button.clicked.connect(self.stop)
        self.progress = QProgressBar()
        self.progress.setRange(0, 1000)
        self.progress.setFormat("idle")
        self.progress.setTextVisible(True)
        self.status = QLabel("Ready.")
        self.status.setWordWrap(True)
        bar = QHBoxLayout()
        for w in (QLabel("Device"), self.device, self.train_button, self.pause_button, self.stop_button):
            bar.addWidget(w)
        bar.addWidget(self.progress, 1)

        self.loss_plot = make_plot("Loss", "loss")
        self.metric_plot = make_plot("Validation metric", "value", "epoch")
        self.lr_plot = make_plot("Learning rate", "lr")
        self.speed_plot = make_plot("Throughput", "samples/s")
        self.train_loss = curve(self.loss_plot, "train (per step)", PALETTE[0])
        self.val_loss_series = curve(self.loss_plot, "validation", PALETTE[1], symbol="o", width=2)
        self.epoch_step: dict[int, int] = {}
        self.metric_series: dict[str, Series] = {}
        self.lr = curve(self.lr_plot, "lr", PALETTE[2])
        self.speed = curve(self.speed_plot, "samples/s", PALETTE[3])
        grid = QSplitter(Qt.Orientation.Vertical)
        top, bottom = QSplitter(Qt.Orientation.Horizontal), QSplitter(Qt.Orientation.Horizontal)
        top.addWidget(self.loss_plot)
        top.addWidget(self.metric_plot)
        bottom.addWidget(self.lr_plot)
        bottom.addWidget(self.speed_plot)
        grid.addWidget(top)
        grid.addWidget(bottom)

        self.smoothing = QSlider(Qt.Orientation.Horizontal)
        self.smoothing.setRange(0, 99)
        self.smoothing.setValue(60)
        self.smoothing.setToolTip("Smoothing of the per-step training loss (exponential moving average)")
        self.smoothing.valueChanged.connect(self._smoothing_changed)
        guard_wheel(self.smoothing)
        self.log_axis = QCheckBox("log loss axis")
        self.log_axis.toggled.connect(lambda on: self.loss_plot.setLogMode(y=on))
        export_png = QPushButton("Export plots (PNG)…")
        export_png.clicked.connect(self.export_png_dialog)
        export_csv = QPushButton("Export metrics (CSV)…")
        export_csv.clicked.connect(self.export_csv_dialog)
        tools = QHBoxLayout()
        for w in (QLabel("smoothing"), self.smoothing, self.log_axis, export_png, export_csv):
            tools.addWidget(w)
        tools.addStretch(1)

        # per-layer statistics
        self.layer_list = QListWidget()
        self.layer_list.setMaximumWidth(200)
        self.layer_list.itemChanged.connect(lambda _i: self._layers_visibility())
        self.grad_plot = make_plot("Gradient norm per layer", "‖grad‖")
        self.weight_plot = make_plot("Weight norm per layer", "‖w‖")
        self.grad_series: dict[str, Series] = {}
        self.weight_series: dict[str, Series] = {}
        layers = QSplitter(Qt.Orientation.Horizontal)
        layers.addWidget(self.layer_list)
        layers.addWidget(self.grad_plot)
        layers.addWidget(self.weight_plot)

        # results after validation
        self.results_plot = make_plot("Results", "", "")
        self.results_image = pg.ImageItem()
        self.results_image.setColorMap(pg.colormap.get("viridis"))
        self.results_plot.addItem(self.results_image)
        self.results_scatter = pg.ScatterPlotItem(size=5, brush=pg.mkBrush(PALETTE[0]))
        self.results_plot.addItem(self.results_scatter)
        for plot in self.plots():
            plot.setMinimumHeight(MIN_PLOT_HEIGHT)  # below this a short dock scrolls rather than squash them

        self.tabs = QTabWidget()
        curves = QWidget()
        lay = QVBoxLayout(curves)
        lay.setContentsMargins(0, 0, 0, 0)
        lay.addLayout(tools)
        lay.addWidget(grid, 1)
        self.tabs.addTab(curves, "Curves")
        self.tabs.addTab(layers, "Layers")
        self.tabs.addTab(self.results_plot, "Results")
        from PySide6.QtWidgets import QPlainTextEdit

        self.generated = QPlainTextEdit()
        self.generated.setReadOnly(True)
        self.generated.setPlaceholderText("Language models write samples here after each validation.")
        self.tabs.addTab(self.generated, "Generated text")
        main = QVBoxLayout(self)
        main.addWidget(self.title)
        main.addLayout(bar)
        main.addWidget(self.status)
        main.addWidget(self.tabs, 1)
        self._smoothing_changed(self.smoothing.value())

    def heightForWidth(self, width: int) -> int:
        # The dashboard sits in a scroll area, which sizes a widget with a wrapped label (the status line)
        # by its height-for-width: here the four plots' preferred height (~1,100 px), so the plots were
        # cut off below a short dock.  It takes the height it is given instead, down to its minimum.
        return self.minimumSizeHint().height()

    def set_document(self, doc: Document) -> None:
        self.doc = doc
        self.refresh_title()

    def refresh_title(self) -> None:
        """With no run shown, name the open project (after Open, New or Save As)."""
        if self.process is None and self.doc is not None:
            self._set_title(self.doc.display_name(), None)

    def _set_title(self, project: str, run: str | None) -> None:
        """Name the project and the run (its folder) the dashboard shows."""
        self.run_project = project
        what = "no run yet" if run is None else f"run <b>{html.escape(run)}</b>" if run else "starting a run…"
        self.title.setText(f"<b>{html.escape(project)}</b> · {what}")

    # ------------------------------------------------------------------ control
    @property
    def running(self) -> bool:
        return self.process is not None and not self.process.finished

    def start(self, resume: str | None = None) -> bool:
        """Start a run of the current project in a worker process."""
        if self.doc is None or self.running:
            return False
        errors = self.doc.errors()  # every graph counts (a GAN's discriminator), whichever is on the canvas
        if errors:
            self.status.setText(f"Fix the graph first: {errors[0]}")
            return False
        self.reset()
        self._set_title(self.doc.display_name(), "")
        overrides = {"device": self.device.currentData()}
        self.process = TrainingProcess(self.doc.project.to_json(), self.doc.project.path, overrides,
                                       resume=Path(resume) if resume else None)
        try:
            self.process.start()
        except (OSError, RuntimeError) as exc:
            self.process = None
            self.status.setText(f"<span style='color:#d32f2f'>Cannot start the training process: {exc}</span>")
            return False
        self._t_start = time.perf_counter()
        self.status.setText("Starting the training process…")
        self.progress.setFormat("starting…")
        self.train_button.setEnabled(False)
        self.pause_button.setEnabled(True)
        self.stop_button.setEnabled(True)
        self.timer.start()
        return True

    def toggle_pause(self) -> None:
        if not self.running or self.process is None:
            return
        if self.pause_button.text() == "Pause":
            self.process.pause()
            self.pause_button.setText("Resume")
        else:
            self.process.resume()
            self.pause_button.setText("Pause")

    def stop(self) -> None:
        if self.running and self.process is not None:
            self.process.stop()
            self.status.setText("Stopping after the current step (a checkpoint will be written)…")

    def detach(self) -> bool:
        """Let the streaming run train on in the background, away from the dashboard, which
        clears for the next run.  Its events are still read (and dropped) and its end reported."""
        if not self.running or self.process is None:
            return False
        self.background.append(BackgroundRun(self.process, self.run_project, self.run_dir))
        self.process = None
        self.timer.stop()
        self._background_timer.start()
        project = self.run_project
        self.reset()
        self._idle_buttons()
        self.refresh_title()
        self.status.setText(f"The run of {html.escape(project)} goes on in the background; "
                            "it is listed in Runs when it ends.")
        return True

    def _drain_background(self) -> None:
        for run in list(self.background):
            for e in run.process.poll():
                if e["type"] == "start":
                    run.run_dir = e["run_dir"]
                elif e["type"] == "done":
                    self._background_news(f"The background run of {run.project} {e['summary']['status']} "
                                          f"after {e['summary']['epochs_done']} epoch(s).")
                elif e["type"] in ("error", "died"):
                    self._background_news(f"The background run of {run.project} failed: {e['message']}")
            if run.process.finished:
                self.background.remove(run)
                self.runFinished.emit(run.run_dir or "")
        if not self.background:
            self._background_timer.stop()

    def _background_news(self, text: str) -> None:
        self.message.emit(text)
        if self.process is None:  # an idle dashboard says it too (it said the run went on)
            self.status.setText(html.escape(text))

    def shutdown(self) -> None:
        """On window close: stop the workers (the shown run and background ones) without
        waiting on the GUI thread."""
        for process in [self.process, *(run.process for run in self.background)]:
            if process is not None and process.alive:
                process.stop()
                QTimer.singleShot(3000, process.kill)

    def plots(self) -> list[Plot]:
        return [self.loss_plot, self.metric_plot, self.lr_plot, self.speed_plot, self.grad_plot, self.weight_plot,
                self.results_plot]

    def reset(self) -> None:
        """A clean dashboard for a new run: curves and their legends, per-layer plots, results,
        generated text, progress; plots a user zoomed follow the data again."""
        for s in (self.train_loss, self.val_loss_series, self.lr, self.speed):
            s.clear()
            s.redraw()
        for s in self.metric_series.values():
            self.metric_plot.removeItem(s.curve)
        self.metric_series = {}
        if self.d_loss is not None:
            self.loss_plot.removeItem(self.d_loss.curve)
            self.d_loss = None
        self._label_loss_curves("train (per step)")
        self._setup_layers([])
        self.results_image.clear()
        self.results_scatter.clear()
        self.results_plot.setAspectLocked(False)
        self.results_plot.set_title("Results")
        self.confusion = None
        self.generated.clear()
        self.progress.setValue(0)
        self.progress.setFormat("idle")
        self.epoch_step.clear()
        self.history: list[dict[str, Any]] = []
        self.run_dir = None
        self.epochs = 0
        self._last_batch = None
        for plot in self.plots():
            plot.reset_view()

    def _label_loss_curves(self, train_name: str) -> None:
        """The loss legend, in order (pyqtgraph keeps a curve's first name in its legend)."""
        legend = self.loss_plot.getPlotItem().legend
        legend.clear()
        series = [(self.train_loss, train_name), (self.val_loss_series, "validation")]
        if self.d_loss is not None:
            series.append((self.d_loss, "discriminator (per step)"))
        for s, name in series:
            s.curve.opts["name"] = name
            legend.addItem(s.curve, name)

    def _idle_buttons(self) -> None:
        self.train_button.setEnabled(True)
        self.pause_button.setEnabled(False)
        self.pause_button.setText("Pause")
        self.stop_button.setEnabled(False)

    # ------------------------------------------------------------------ events
    def drain(self) -> None:
        if self.process is None:
            return
        for e in self.process.poll():
            self.handle(e)
        if self._last_batch is not None:
            self._show_progress(self._last_batch)
            self._last_batch = None
        self._ticks += 1
        if self._ticks % 2 == 0 or self.process.finished:  # plots redraw at 10 Hz; events drain at 20 Hz
            self.redraw_visible()
        if self.process.finished:
            self.timer.stop()
            self._idle_buttons()

    def _show_progress(self, e: dict[str, Any]) -> None:
        p = e["progress"]
        self.progress.setValue(int(p * 1000))
        elapsed = time.perf_counter() - self._t_start
        eta = elapsed * (1 - p) / p if p > 0 else 0
        self.progress.setFormat(f"epoch {e['epoch']}/{self.epochs} · step {e['step']} · "
                                f"{p * 100:.0f}% · ETA {int(eta) // 60}:{int(eta) % 60:02d}")

    def redraw_visible(self) -> None:
        """Only the tab on screen is redrawn; hidden curves stay dirty until shown."""
        if not self.isVisible():
            return
        tab = self.tabs.currentIndex()
        if tab == 0:
            for s in (self.train_loss, self.val_loss_series, self.lr, self.speed, *self.metric_series.values(),
                      *([self.d_loss] if self.d_loss is not None else [])):
                s.redraw()
        elif tab == 1:
            for s in (*self.grad_series.values(), *self.weight_series.values()):
                s.redraw()

    def handle(self, e: dict[str, Any]) -> None:
        kind = e["type"]
        if kind == "devices":
            self._fill_devices(e["devices"])
        elif kind == "start":
            self.run_dir = e["run_dir"]
            self._set_title(self.run_project, Path(e["run_dir"]).name if e.get("run_dir") else "")
            self.title.setToolTip(str(e.get("run_dir") or ""))
            self.epochs = e["epochs"]
            self.steps_per_epoch = e["steps_per_epoch"]
            self.status.setText(f"Training on {e['device']}: {e['train_samples']:,} training and "
                                f"{e['val_samples']:,} validation samples, {e['params']:,} parameters.")
            self._setup_layers(e["layers"])
        elif kind == "batch":
            self.train_loss.append(e["step"], e["loss"])
            if "d_loss" in e:  # adversarial: both players' losses
                if self.d_loss is None:
                    self.d_loss = curve(self.loss_plot, "discriminator (per step)", PALETTE[4])
                    self._label_loss_curves("generator (per step)")
                self.d_loss.append(e["step"], e["d_loss"])
            self.lr.append(e["step"], e["lr"])
            if e["samples_per_s"] > 0:
                self.speed.append(e["step"], e["samples_per_s"])
            self._last_batch = e  # the progress bar is updated once per drain: setValue repaints at once
        elif kind == "layers":
            for name, v in e["grad_norm"].items():
                if name in self.grad_series:
                    self.grad_series[name].append(e["step"], v)
            for name, v in e["weight_norm"].items():
                if name in self.weight_series:
                    self.weight_series[name].append(e["step"], v)
        elif kind == "epoch":
            self.history.append(e)
            if "val_loss" in e:
                self.val_loss_series.append(e["step"], e["val_loss"])
            for key, value in e.items():
                if key.startswith("val_") and key != "val_loss" and isinstance(value, float):
                    if key not in self.metric_series:
                        color = PALETTE[(len(self.metric_series) + 2) % len(PALETTE)]
                        self.metric_series[key] = curve(self.metric_plot, key[4:], color, symbol="o")
                    self.metric_series[key].append(e["epoch"], value)
        elif kind == "validation":
            self._show_results(e)
        elif kind == "status":
            self.status.setText("Paused." if e["status"] == "paused" else "Training…")
        elif kind == "log":
            self.status.setText(e["message"])
        elif kind == "done":
            s = e["summary"]
            final = ", ".join(f"{k} {v:.4f}" for k, v in s["final"].items())
            self.status.setText(f"Run {s['status']} after {s['epochs_done']} epoch(s). {final}")
            self.progress.setFormat(s["status"])
            self.runFinished.emit(self.run_dir or "")
        elif kind in ("error", "died"):
            self.status.setText(f"<span style='color:#d32f2f'>Training failed: {e['message']}</span>")
            self.progress.setFormat("failed")
            self.runFinished.emit(self.run_dir or "")

    def _fill_devices(self, devices: list[dict[str, Any]]) -> None:
        current = self.device.currentData()
        self.device.clear()
        self.device.addItem("auto (best available)", "auto")
        for d in devices:
            extra = f" ({d['memory_bytes'] / 2**30:.1f} GB)" if d.get("memory_bytes") else ""
            self.device.addItem(f"{d['id']}: {d['name']}{extra}", d["id"])
            if not d["available"]:
                idx = self.device.count() - 1
                self.device.model().item(idx).setEnabled(False)  # type: ignore[attr-defined]
                self.device.setItemData(idx, d.get("note", ""), Qt.ItemDataRole.ToolTipRole)
        i = self.device.findData(current)
        self.device.setCurrentIndex(max(0, i))

    def _setup_layers(self, names: list[str]) -> None:
        self.layer_names = names
        self.layer_list.blockSignals(True)
        self.layer_list.clear()
        for plot in (self.grad_plot, self.weight_plot):
            plot.clear()
            plot.addLegend(offset=(-10, 10))
        self.grad_series = {name: Series(None) for name in names}
        self.weight_series = {name: Series(None) for name in names}
        for i, name in enumerate(names):
            item = QListWidgetItem(name)
            item.setFlags(item.flags() | Qt.ItemFlag.ItemIsUserCheckable)
            item.setCheckState(Qt.CheckState.Checked if i < 6 else Qt.CheckState.Unchecked)
            self.layer_list.addItem(item)
        self.layer_list.blockSignals(False)
        self._layers_visibility()

    def _layers_visibility(self) -> None:
        """Checked layers get curves (made on first use); unchecked ones are hidden."""
        for i in range(self.layer_list.count()):
            item = self.layer_list.item(i)
            on = item.checkState() == Qt.CheckState.Checked
            name = item.text()
            for series, plot in ((self.grad_series, self.grad_plot), (self.weight_series, self.weight_plot)):
                s = series.get(name)
                if s is None:
                    continue
                if on and s.curve is None:
                    color = PALETTE[i % len(PALETTE)]
                    s.curve = plot.plot([], [], name=name, pen=pg.mkPen(color))
                    s.dirty = True
                if s.curve is not None:
                    s.curve.setVisible(on)
                    s.redraw()

    def _show_results(self, e: dict[str, Any]) -> None:
        """Confusion matrix, predictions vs targets, reconstructions, latent codes or generated text."""
        self.results_scatter.clear()
        self.results_image.clear()
        task = e["task"]
        # pictures keep square pixels; scatter plots use the whole area
        self.results_plot.setAspectLocked("generated" in e or task == "reconstruction" or "confusion" in e)
        if "text" in e:
            self.generated.appendPlainText(f"--- epoch {e['epoch']} (perplexity {e['metrics']['perplexity']:.2f}) ---\n"
                                           f"{e['text']}\n")
        if "generated" in e:
            self.results_image.setImage(np.flipud(image_grid(np.asarray(e["generated"]), cols=8)).T)
            self.results_plot.set_title(f"Generated samples, epoch {e['epoch']}")
            return
        if "latent" in e:
            pts = np.asarray(e["latent"])
            labels = np.asarray(e.get("latent_labels", np.zeros(len(pts)))).astype(int)
            brushes = [pg.mkBrush(PALETTE[i % len(PALETTE)]) for i in labels[: len(pts)]]
            self.results_scatter.setData(pts[:, 0], pts[:, 1], brush=brushes)
            self.results_plot.set_title(f"2-D latent codes of validation samples, coloured by class, epoch {e['epoch']}")
            return
        if "confusion" in e:
            cm = np.asarray(e["confusion"], dtype=np.float32)
            norm = cm / np.maximum(cm.sum(1, keepdims=True), 1)
            self.results_image.setImage(norm.T, levels=(0, 1))
            self.results_plot.set_title(f"Confusion matrix, epoch {e['epoch']} (rows: true, columns: predicted)")
            self.confusion = cm
        elif task == "regression":
            out = np.asarray(e["samples"]["outputs"]).reshape(-1)
            tgt = np.asarray(e["samples"]["targets"]).reshape(-1)
            self.results_scatter.setData(tgt, out)
            self.results_plot.set_title(f"Predictions vs targets, epoch {e['epoch']}")
        elif task == "reconstruction":
            inputs = np.asarray(e.get("inputs", []))
            outs = np.asarray(e["samples"]["outputs"])
            if len(inputs) and len(outs):
                k = min(8, len(inputs), len(outs))
                both = np.concatenate([inputs[:k].reshape(k, -1), outs[:k].reshape(k, -1)])
                self.results_image.setImage(np.flipud(image_grid(both, cols=k)).T)
            self.results_plot.set_title(f"Inputs (top) and reconstructions (bottom), epoch {e['epoch']}")

    def _smoothing_changed(self, value: int) -> None:
        self.train_loss.set_smoothing(value / 100.0)
        self.train_loss.redraw()

    # ------------------------------------------------------------------ export
    def export_png(self, path: str | Path) -> Path:
        """All four curves in one picture."""
        target = Path(path)
        self.tabs.widget(0).grab().save(str(target))
        return target

    def export_csv(self, path: str | Path) -> Path:
        target = Path(path)
        rows = getattr(self, "history", [])
        keys = sorted({k for r in rows for k in r if k != "type"})
        with open(target, "w", newline="") as fh:
            writer = csv.DictWriter(fh, fieldnames=keys)
            writer.writeheader()
            for r in rows:
                writer.writerow({k: r.get(k, "") for k in keys})
        return target

    def export_png_dialog(self) -> None:
        path, _ = QFileDialog.getSaveFileName(self, "Export plots", "training.png", "PNG images (*.png)")
        if path:
            self.export_png(path)

    def export_csv_dialog(self) -> None:
        path, _ = QFileDialog.getSaveFileName(self, "Export metrics", "metrics.csv", "CSV files (*.csv)")
        if path:
            self.export_csv(path)
