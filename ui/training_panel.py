"""Training dashboard: run controls, live plots, per-layer statistics, results.

Training runs in a worker process (``workbench.training.worker``); a 20 Hz timer
drains its events into preallocated series, so the editor never waits on it.  Drawing
is spread out so the event loop stays responsive (``bench/bench_gui.py`` measures it):
each tick redraws one plot of the tab on screen (the next with new data, in turn), the progress
bar repaints a few times a second, and a validation's results are drawn once, the
latest, when the Results tab is on screen (or the run ends).

The run controls and the progress bar stay above the tabs; a dock too short for the
plots scrolls the plots, never the controls.  At 1280x800 nothing scrolls: the plots
take as many columns as the dock's shape suits (``ui.plots.PlotGrid``).

The dashboard shows one run at a time and says whose (project and run folder); a new
run starts from a clean dashboard.  A run can be *detached* (when another project is
opened): it trains on in the background, its events are read and dropped so the
worker never blocks on a full queue, and its end is reported (``message``).
"""

from __future__ import annotations

import csv
import html
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from PySide6.QtCore import Qt, QTimer, Signal
from PySide6.QtGui import QShowEvent
from PySide6.QtWidgets import (
    QCheckBox,
    QComboBox,
    QFileDialog,
    QHBoxLayout,
    QLabel,
    QPlainTextEdit,
    QProgressBar,
    QPushButton,
    QSlider,
    QSpinBox,
    QTabWidget,
    QToolButton,
    QVBoxLayout,
    QWidget,
)

from workbench.training.worker import TrainingProcess

from .document import Document
from .layer_stats import LayerStats
from .plot_grid import MIN_PLOT_HEIGHT, PlotGrid, scrolling
from .plots import PALETTE, Plot, Series, curve, make_plot
from .results_view import ResultsView, image_grid
from .wheel import guard_wheel

__all__ = ["MIN_PLOT_HEIGHT", "BackgroundRun", "TrainingPanel", "image_grid"]

#: seconds between progress-bar repaints (QProgressBar.setValue repaints at once, ~4 ms each)
PROGRESS_INTERVAL = 0.25
#: tasks whose validations write text: a Generated text tab instead of Results
TEXT_TASKS = ("language_model", "seq2seq")


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
    confusionCellClicked(int, int): a cell of the confusion matrix was clicked (true class, predicted
        class), so the Explain view can show those samples.
    """

    runFinished = Signal(str)
    message = Signal(str)
    confusionCellClicked = Signal(int, int)

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.doc: Document | None = None
        self.process: TrainingProcess | None = None
        self.run_dir: str | None = None
        self._t_start = 0.0
        self.history: list[dict[str, Any]] = []
        self.epochs = 0
        self._turn = 0  # which plot of the tab on screen the next tick redraws
        self._last_batch: dict[str, Any] | None = None
        self._progress_at = 0.0
        self.d_loss: Series | None = None
        self.confusion: np.ndarray | None = None
        self.run_project = ""
        """The project whose run the dashboard shows (named as it was when the run started)."""
        self.background: list[BackgroundRun] = []
        self._build()
        self.tabs.currentChanged.connect(lambda _i: self.redraw_visible(everything=True))
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
        self.processes = QSpinBox()
        self.processes.setObjectName("processes")
        self.processes.setRange(1, max(2, os.cpu_count() or 1))
        self.processes.setSuffix(" process(es)")
        self.processes.setToolTip("Run on this many processes of this machine (torchrun + DistributedDataParallel): "
                                  "the batch size is the global batch, split evenly over them; rank 0's events "
                                  "stream into this dashboard")
        guard_wheel(self.device, self.processes)
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
        header = QHBoxLayout()
        header.addWidget(self.title)
        header.addSpacing(12)
        header.addWidget(self.status, 1)
        bar = QHBoxLayout()
        for w in (QLabel("Device"), self.device, QLabel("Run on"), self.processes, self.train_button,
                  self.pause_button, self.stop_button):
            bar.addWidget(w)
        bar.addWidget(self.progress, 1)

        self.loss_plot = make_plot("Loss", "loss")
        self.metric_plot = make_plot("Validation metric", "value", "epoch")
        self.lr_plot = make_plot("Learning rate", "lr", legend=False)  # one curve: the title names it
        self.speed_plot = make_plot("Throughput", "samples/s", legend=False)
        self.train_loss = curve(self.loss_plot, "train (per step)", PALETTE[0])
        self.val_loss_series = curve(self.loss_plot, "validation", PALETTE[1], symbol="o", width=2)
        self.epoch_step: dict[int, int] = {}
        self.metric_series: dict[str, Series] = {}
        self._bounded_metrics = True
        self.lr = curve(self.lr_plot, "lr", PALETTE[2])
        self.speed = curve(self.speed_plot, "samples/s", PALETTE[3])
        # private runs: the epsilon Opacus' accountant says was spent (shown when a run reports it)
        self.privacy_plot = make_plot("Privacy budget spent (ε)", "epsilon", "epoch", legend=False)
        self.epsilon = curve(self.privacy_plot, "epsilon", PALETTE[4], symbol="o")
        self.privacy_plot.hide()
        self.curves_grid = PlotGrid([self.loss_plot, self.metric_plot, self.lr_plot, self.speed_plot,
                                     self.privacy_plot])
        self.curves_area = scrolling(self.curves_grid)

        self.smoothing = QSlider(Qt.Orientation.Horizontal)
        self.smoothing.setRange(0, 99)
        self.smoothing.setValue(60)
        self.smoothing.setFixedWidth(90)
        self.smoothing.setToolTip("Smoothing of the per-step training loss (exponential moving average)")
        self.smoothing.valueChanged.connect(self._smoothing_changed)
        guard_wheel(self.smoothing)
        self.log_axis = QCheckBox("log loss axis")
        self.log_axis.toggled.connect(lambda on: self.loss_plot.setLogMode(y=on))
        export_png = QToolButton()
        export_png.setText("Export plots (PNG)…")
        export_png.clicked.connect(self.export_png_dialog)
        export_csv = QToolButton()
        export_csv.setText("Export metrics (CSV)…")
        export_csv.clicked.connect(self.export_csv_dialog)
        tools = QWidget()  # beside the tabs: no row of its own
        row = QHBoxLayout(tools)
        row.setContentsMargins(0, 0, 2, 2)
        for w in (QLabel("smoothing"), self.smoothing, self.log_axis, export_png, export_csv):
            row.addWidget(w)

        self.layer_stats = LayerStats()
        self.layer_list = self.layer_stats.layer_list
        self.grad_plot, self.weight_plot = self.layer_stats.grad_plot, self.layer_stats.weight_plot

        # results after validation
        self.results = ResultsView()
        self.results_plot = self.results.confusion
        self.results_image = self.results.confusion.image
        self.results_plot.scene().sigMouseClicked.connect(self._confusion_clicked)
        self._pending_validation: dict[str, Any] | None = None

        self.tabs = QTabWidget()
        self.tabs.addTab(self.curves_area, "Curves")
        self.tabs.addTab(scrolling(self.layer_stats), "Layers")
        self.results_area = scrolling(self.results)
        self.tabs.addTab(self.results_area, "Results")
        self.generated = QPlainTextEdit()
        self.generated.setReadOnly(True)
        self.generated.setPlaceholderText("Language models write samples here after each validation.")
        self.tabs.addTab(self.generated, "Generated text")
        self.tabs.setCornerWidget(tools, Qt.Corner.TopRightCorner)
        main = QVBoxLayout(self)
        main.setContentsMargins(6, 4, 6, 4)
        main.setSpacing(4)
        main.addLayout(header)
        main.addLayout(bar)
        main.addWidget(self.tabs, 1)
        self._smoothing_changed(self.smoothing.value())

    def showEvent(self, event: QShowEvent) -> None:
        super().showEvent(event)
        self.redraw_visible(everything=True)  # what streamed in while the dock was hidden

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
            self._task_tabs()

    def _task_tabs(self) -> None:
        """The tasks that write text have a Generated text tab instead of Results (pictures)."""
        task = self.doc.project.training.get("task") if self.doc is not None else None
        self.tabs.setTabVisible(self.tabs.indexOf(self.generated), task in TEXT_TASKS)
        self.tabs.setTabVisible(self.tabs.indexOf(self.results_area), task not in TEXT_TASKS)

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
        self._task_tabs()
        overrides = {"device": self.device.currentData()}
        self.process = TrainingProcess(self.doc.project.to_json(), self.doc.project.path, overrides,
                                       resume=Path(resume) if resume else None, processes=self.processes.value())
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

    @property
    def grad_series(self) -> dict[str, Series]:
        return self.layer_stats.grad_series

    @property
    def weight_series(self) -> dict[str, Series]:
        return self.layer_stats.weight_series

    def plots(self) -> list[Plot]:
        return [self.loss_plot, self.metric_plot, self.lr_plot, self.speed_plot, self.privacy_plot, self.grad_plot,
                self.weight_plot, *self.results.plots()]

    def reset(self) -> None:
        """A clean dashboard for a new run: curves and their legends, per-layer plots, results,
        generated text, progress; plots a user zoomed follow the data again."""
        for s in (self.train_loss, self.val_loss_series, self.lr, self.speed, self.epsilon):
            s.clear()
            s.redraw()
        self.privacy_plot.hide()
        for s in self.metric_series.values():
            self.metric_plot.remove_curve(s.curve)
        self.metric_series = {}
        self._bounded_metrics = True  # the metrics on the left axis so far lie in [-1.5, 1.5]
        if self.d_loss is not None:
            self.loss_plot.removeItem(self.d_loss.curve)
            self.d_loss = None
        self._label_loss_curves("train (per step)")
        self.layer_stats.setup([])
        self.results.clear()
        self._pending_validation = None
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
            series.append((self.d_loss, "discriminator"))
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
        finished = self.process.finished
        now = time.perf_counter()
        if self._last_batch is not None and (finished or now - self._progress_at >= PROGRESS_INTERVAL):
            self._show_progress(self._last_batch)
            self._last_batch = None
            self._progress_at = now
        if finished:
            self.redraw_visible(everything=True)
            if self._pending_validation is not None:  # the run's last results, wherever the user looks
                self._show_validation()
            self.timer.stop()
            self._idle_buttons()
        else:
            self.redraw_visible()

    def _show_progress(self, e: dict[str, Any]) -> None:
        p = e["progress"]
        self.progress.setValue(int(p * 1000))
        elapsed = time.perf_counter() - self._t_start
        eta = elapsed * (1 - p) / p if p > 0 else 0
        self.progress.setFormat(f"epoch {e['epoch']}/{self.epochs} · step {e['step']} · "
                                f"{p * 100:.0f}% · ETA {int(eta) // 60}:{int(eta) % 60:02d}")

    def _plot_series(self) -> list[tuple[Plot, list[Series]]]:
        """The plots of the tab on screen, each with the series it draws."""
        tab = self.tabs.currentIndex()
        if tab == 0:
            return [(self.loss_plot, [self.train_loss, self.val_loss_series,
                                      *([self.d_loss] if self.d_loss is not None else [])]),
                    (self.metric_plot, list(self.metric_series.values())),
                    (self.lr_plot, [self.lr]), (self.speed_plot, [self.speed]), (self.privacy_plot, [self.epsilon])]
        if tab == 1:
            return self.layer_stats.plot_series()
        return []

    def redraw_visible(self, everything: bool = False) -> None:
        """Only the tab on screen is drawn; hidden curves stay dirty until shown.

        A tick redraws one plot (the next with new data, in turn): Qt paints every changed plot
        of the window in one go, so redrawing four at once held the event loop four times as long.
        """
        if not self.isVisible():
            return
        if self.tabs.currentWidget() is self.results_area:
            if self._pending_validation is not None:
                self._show_validation()
            return
        plots = self._plot_series()
        for k in range(len(plots)):
            plot, series = plots[(self._turn + k) % len(plots)]
            if not any(s.dirty for s in series):
                continue
            for s in series:
                s.redraw()
            plot.refresh_hover()
            if not everything:
                self._turn = (self._turn + k + 1) % len(plots)
                return
        if not self.running:  # no more data coming: the curves fill their plots
            for plot, _series in plots:
                plot.settle()

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
            self.layer_stats.setup(e["layers"])
        elif kind == "batch":
            self.train_loss.append(e["step"], e["loss"])
            if "d_loss" in e:  # adversarial: both players' losses
                if self.d_loss is None:
                    self.d_loss = curve(self.loss_plot, "discriminator", PALETTE[4])
                    self._label_loss_curves("generator")
                self.d_loss.append(e["step"], e["d_loss"])
            self.lr.append(e["step"], e["lr"])
            if e["samples_per_s"] > 0:
                self.speed.append(e["step"], e["samples_per_s"])
            self._last_batch = e  # the progress bar is updated a few times a second: setValue repaints at once
        elif kind == "layers":
            self.layer_stats.append(e["step"], e["grad_norm"], e["weight_norm"])
        elif kind == "epoch":
            self.history.append(e)
            if "val_loss" in e:
                self.val_loss_series.append(e["step"], e["val_loss"])
            if "epsilon" in e:
                self.privacy_plot.show()
                self.epsilon.append(e["epoch"], e["epsilon"])
            for client, m in e.get("clients", {}).items():  # a federated round: each trained client's accuracy
                if isinstance(m.get("train_accuracy"), float):
                    key = f"client {client}"
                    if key not in self.metric_series:
                        self.metric_series[key] = self._metric_curve(f"client {client} (train)", m["train_accuracy"])
                    self.metric_series[key].append(e["epoch"], m["train_accuracy"])
            for key, value in e.items():
                if key.startswith("val_") and key != "val_loss" and isinstance(value, float):
                    if key not in self.metric_series:
                        self.metric_series[key] = self._metric_curve(key[4:], value)
                    self.metric_series[key].append(e["epoch"], value)
        elif kind == "validation":
            if "text" in e:  # every sample of text is kept; the pictures show the latest validation
                self.generated.appendPlainText(f"--- epoch {e['epoch']} (perplexity "
                                               f"{e['metrics'].get('perplexity', float('nan')):.2f}) ---\n{e['text']}\n")
            if "confusion" in e:
                self.confusion = np.asarray(e["confusion"])
            self._pending_validation = e
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

    def show_run(self, run_dir: str | Path) -> bool:
        """Draw a finished run (a training or a federated run) from its metrics file; refused while
        a run is training."""
        if self.running:
            return False
        from workbench.training.runs import read_metrics

        run = Path(run_dir)
        events = [e for e in read_metrics(run) if e.get("type") in ("epoch", "batch")]
        self.reset()
        self.run_dir = str(run)
        self._set_title(self.run_project, run.name)
        self.epochs = max((int(e["epoch"]) for e in events), default=0)
        for e in events:
            self.handle(e)
        rounds = sum(1 for e in events if e["type"] == "epoch")
        kind = "rounds" if any("round" in e for e in events) else "epochs"
        self.status.setText(f"Run {run.name}: {rounds} {kind}, read from its metrics file.")
        self.redraw_visible(everything=True)
        return True

    def _metric_curve(self, name: str, first: float) -> Series:
        """A metric's curve: on the right axis when its scale is not the bounded one of the metrics
        already on the left (a perplexity beside an accuracy)."""
        color = PALETTE[(len(self.metric_series) + 2) % len(PALETTE)]
        if self.metric_series and self._bounded_metrics and abs(first) > 1.5:
            return self.metric_plot.right_curve(name, color, symbol="o")
        self._bounded_metrics = self._bounded_metrics and abs(first) <= 1.5
        return curve(self.metric_plot, name, color, symbol="o")

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

    def _show_validation(self) -> None:
        """Draw the latest validation's results (confusion matrix, reconstructions, latent codes...)."""
        e, self._pending_validation = self._pending_validation, None
        if e is not None:
            self.results.show_validation(e)

    def _confusion_clicked(self, event: Any) -> None:
        """A left click on a cell of the confusion matrix names its (true, predicted) classes."""
        cm = self.results_plot.matrix
        vb = self.results_plot.getPlotItem().getViewBox()
        if cm is None or event.button() != Qt.MouseButton.LeftButton or not vb.sceneBoundingRect().contains(
                event.scenePos()):
            return
        p = vb.mapSceneToView(event.scenePos())
        true, predicted = round(p.y()), round(p.x())  # rows are true classes, columns predicted ones
        if 0 <= true < len(cm) and 0 <= predicted < len(cm):
            self.confusionCellClicked.emit(true, predicted)

    def _smoothing_changed(self, value: int) -> None:
        self.train_loss.set_smoothing(value / 100.0)
        self.train_loss.redraw()
        self.loss_plot.refresh_hover()

    # ------------------------------------------------------------------ export
    def export_png(self, path: str | Path) -> Path:
        """All four curves in one picture."""
        target = Path(path)
        self.redraw_visible(everything=True)
        self.curves_grid.grab().save(str(target))
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
