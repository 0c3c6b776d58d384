"""The Sweep dock: run ``workbench sweep`` on the saved project and watch its Optuna study.

The sweep runs outside the GUI process: a QProcess runs the command line (what the dock does is
scriptable, and a crash there never takes the editor down); Stop sends it Ctrl+C (SIGINT), which
stops the running trials at a batch boundary and leaves the study resumable.  The dock reads the
study itself from its storage once a second: the live trial table, the best-so-far curve, the
Pareto scatter (two objectives), parameter importances (Optuna's) and parallel coordinates.
*Apply trial* writes the selected trial's values into the open project as one undo step.
"""

from __future__ import annotations

import math
import os
import signal
import sys
from pathlib import Path
from typing import Any

import pyqtgraph as pg
from PySide6.QtCore import QProcess, QProcessEnvironment, Qt, QTimer, Signal
from PySide6.QtGui import QColor
from PySide6.QtWidgets import (
    QAbstractItemView,
    QComboBox,
    QFormLayout,
    QFrame,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QPlainTextEdit,
    QPushButton,
    QScrollArea,
    QSplitter,
    QTableWidget,
    QTableWidgetItem,
    QTabWidget,
    QVBoxLayout,
    QWidget,
)

from workbench.errors import WorkbenchError

from .document import Document
from .plots import PALETTE, make_plot
from .wheel import guard_wheel

POLL_MS = 1000


def importances(study: Any, maximize: bool) -> dict[str, float]:
    """Optuna's default evaluator (PED-ANOVA) on the first objective; it looks for the parameters
    of low target values, so a maximised metric is negated."""
    import warnings

    import optuna

    with warnings.catch_warnings():  # the warning says what the negation above takes care of
        warnings.simplefilter("ignore", UserWarning)
        return optuna.importance.get_param_importances(
            study, target=(lambda t: -t.values[0]) if maximize else (lambda t: t.values[0]))


class SweepDock(QWidget):
    """Signals: message(str): status text."""

    message = Signal(str)

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.doc: Document | None = None
        self.process: QProcess | None = None
        self.storage: Any = None
        self.study_key: tuple[str, str] | None = None
        self.trials: list[Any] = []
        self.directions: list[str] = []
        self.objective_names: list[str] = []
        self.stopped = False
        self.sweep_path: Path | None = None
        """The project file of the sweep started last (the study the dock reads)."""
        self.study_ready = True

        self.params = QPlainTextEdit()
        self.params.setPlaceholderText("one per line, besides the project's sweep section:\n"
                                       "lr=float:1e-4:1e-1:log\nconv1.out_channels=int:8:64:log\noptimizer=adam,sgd")
        self.params.setMaximumHeight(90)
        self.objectives = QLineEdit()
        self.objectives.setPlaceholderText("default: the task's metric; e.g. val_accuracy, params")
        self.trials_edit = QLineEdit()
        self.trials_edit.setPlaceholderText("20")
        self.jobs_edit = QLineEdit("1")
        self.epochs_edit = QLineEdit()
        self.epochs_edit.setPlaceholderText("the project's")
        self.study_edit = QLineEdit()
        self.study_edit.setPlaceholderText("the project file's name")
        self.sampler = QComboBox()
        self.sampler.addItems(["project's", "tpe", "random", "grid"])
        self.pruner = QComboBox()
        self.pruner.addItems(["default", "none", "median", "hyperband"])
        for combo in (self.sampler, self.pruner):
            guard_wheel(combo)
        form = QFormLayout()
        form.addRow("Parameters", self.params)
        form.addRow("Objectives", self.objectives)
        row = QHBoxLayout()
        for label, w in (("Trials", self.trials_edit), ("Workers", self.jobs_edit), ("Epochs", self.epochs_edit)):
            row.addWidget(QLabel(label))
            row.addWidget(w)
        form.addRow(row)
        row = QHBoxLayout()
        for label, w in (("Sampler", self.sampler), ("Pruner", self.pruner), ("Study", self.study_edit)):
            row.addWidget(QLabel(label))
            row.addWidget(w)
        form.addRow(row)
        self.start_button = QPushButton("Start sweep")
        self.start_button.clicked.connect(self.start)
        self.stop_button = QPushButton("Stop")
        self.stop_button.setEnabled(False)
        self.stop_button.clicked.connect(self.stop)
        self.apply_button = QPushButton("Apply trial")
        self.apply_button.setToolTip("write the selected trial's values into the project (one undo step)")
        self.apply_button.clicked.connect(self.apply_selected)
        self.importance_button = QPushButton("Importances")
        self.importance_button.clicked.connect(self.update_importances)
        self.status = QLabel("No sweep running.")
        self.status.setWordWrap(True)
        buttons = QHBoxLayout()
        for b in (self.start_button, self.stop_button, self.apply_button, self.importance_button):
            buttons.addWidget(b)

        self.table = QTableWidget(0, 0)
        self.table.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.table.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
        self.table.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.table.verticalHeader().setVisible(False)
        self.log = QPlainTextEdit()
        self.log.setReadOnly(True)
        self.log.setMaximumBlockCount(2000)

        self.best_plot = make_plot("Best so far", "value", "trial")
        self.best_curve = self.best_plot.plot([], [], pen=pg.mkPen(QColor(PALETTE[0]), width=2), name="best")
        self.trial_points = pg.ScatterPlotItem(size=6, brush=QColor(PALETTE[1]), name="trials")
        self.best_plot.addItem(self.trial_points)
        self.pareto_plot = make_plot("Pareto front", "metric", "cost")
        self.pareto_all = pg.ScatterPlotItem(size=6, brush=QColor("#9e9e9e"), name="trials")
        self.pareto_front = pg.ScatterPlotItem(size=9, brush=QColor(PALETTE[1]), name="front")
        self.pareto_plot.addItem(self.pareto_all)
        self.pareto_plot.addItem(self.pareto_front)
        self.coords_plot = make_plot("Parallel coordinates", "scaled value (0-1)", "parameter", legend=False)
        self.importances = QTableWidget(0, 2)
        self.importances.setHorizontalHeaderLabels(["parameter", "importance"])
        self.importances.verticalHeader().setVisible(False)
        self.tabs = QTabWidget()
        self.tabs.addTab(self.best_plot, "Best so far")
        self.tabs.addTab(self.pareto_plot, "Pareto")
        self.tabs.addTab(self.coords_plot, "Parallel coordinates")
        self.tabs.addTab(self.importances, "Importances")
        self.tabs.addTab(self.log, "Log")

        left = QWidget()
        lay = QVBoxLayout(left)
        lay.setContentsMargins(0, 0, 0, 0)
        lay.addLayout(form)
        lay.addLayout(buttons)
        lay.addWidget(self.status)
        lay.addWidget(self.table, 1)
        scroll = QScrollArea()  # the form scrolls in a short dock: the bottom docks share one height with the canvas
        scroll.setWidgetResizable(True)
        scroll.setFrameShape(QFrame.Shape.NoFrame)
        scroll.setWidget(left)
        self.table.setMinimumHeight(90)
        split = QSplitter()
        split.addWidget(scroll)
        split.addWidget(self.tabs)
        main = QVBoxLayout(self)
        main.setContentsMargins(2, 2, 2, 2)
        main.addWidget(split)
        self.timer = QTimer(self)
        self.timer.setInterval(POLL_MS)
        self.timer.timeout.connect(self.poll)

    # ------------------------------------------------------------------ document
    def set_document(self, doc: Document) -> None:
        self.doc = doc
        if self.running:  # the dock goes on watching the sweep it started (its project file is fixed)
            return
        self.sweep_path = None
        self.storage, self.study_key = None, None
        self.trials = []
        self._fill_table()

    @property
    def running(self) -> bool:
        return self.process is not None and self.process.state() != QProcess.ProcessState.NotRunning

    # ------------------------------------------------------------------ the command
    def command(self) -> list[str]:
        """The ``workbench sweep`` arguments the form stands for (after the program and ``-m workbench``)."""
        assert self.doc is not None and self.doc.project.path is not None
        args = ["sweep", str(self.doc.project.path)]
        for line in self.params.toPlainText().splitlines():
            if line.strip():
                args += ["--param", line.strip()]
        for name in (o.strip() for o in self.objectives.text().split(",")):
            if name:
                args += ["--objective", name]
        for flag, edit in (("--trials", self.trials_edit), ("--jobs", self.jobs_edit), ("--epochs", self.epochs_edit),
                           ("--study", self.study_edit)):
            if edit.text().strip():
                args += [flag, edit.text().strip()]
        if self.sampler.currentIndex() > 0:
            args += ["--sampler", self.sampler.currentText()]
        if self.pruner.currentIndex() > 0:
            args += ["--pruner", self.pruner.currentText()]
        return args

    def start(self) -> None:
        doc = self.doc
        if doc is None or self.running:
            return
        if doc.project.path is None or not doc.undo_stack.isClean():
            self._say("Save the project first: the sweep runs on the saved file.")
            return
        args = self.command()
        self.log.appendPlainText("$ workbench " + " ".join(args))
        proc = QProcess(self)
        env = QProcessEnvironment.systemEnvironment()
        root = str(Path(__file__).resolve().parents[1])  # the same workbench package as this GUI
        env.insert("PYTHONPATH", os.pathsep.join(p for p in (root, env.value("PYTHONPATH")) if p))
        env.insert("PYTHONUNBUFFERED", "1")
        proc.setProcessEnvironment(env)
        proc.setProcessChannelMode(QProcess.ProcessChannelMode.MergedChannels)
        proc.readyReadStandardOutput.connect(self._read_output)
        proc.finished.connect(self._finished)
        self.process = proc
        self.stopped = False
        self.storage, self.study_key = None, None
        self.sweep_path = doc.project.path
        self.study_ready = False  # the storage is read once the sweep has created it, never at the same time
        proc.start(sys.executable, ["-m", "workbench", *args])
        self.start_button.setEnabled(False)
        self.stop_button.setEnabled(True)
        self.status.setText("Starting the sweep...")
        self.timer.start()

    def stop(self) -> None:
        """Ctrl+C for the sweep: the running trials stop at a batch boundary (again: at once)."""
        if not self.running or self.process is None:
            return
        self.stopped = True
        pid = int(self.process.processId())
        if sys.platform != "win32" and pid > 0:
            os.kill(pid, signal.SIGINT)
        else:
            self.process.terminate()
        self.status.setText("Stopping after the running trials' current step...")

    def _read_output(self) -> None:
        assert self.process is not None
        text = bytes(self.process.readAllStandardOutput().data()).decode("utf-8", "replace")
        for line in text.splitlines():
            if line.strip():
                self.log.appendPlainText(line)
                if line.startswith("study '"):  # the sweep made (or resumed) its study: it can be read now
                    self.study_ready = True
                if line.startswith("workbench: error:"):
                    self.status.setText(line.removeprefix("workbench: error:").strip())

    def _finished(self, code: int, _status: Any) -> None:
        self.timer.stop()
        self.poll()
        self.start_button.setEnabled(True)
        self.stop_button.setEnabled(False)
        done = sum(t.state.name in ("COMPLETE", "PRUNED") for t in self.trials)
        if self.stopped:
            self.status.setText(f"Stopped with {done} finished trial(s); Start again resumes the study.")
        elif code == 0:
            self.status.setText(f"Sweep finished: {done} finished trial(s).")
        elif not self.status.text() or self.status.text().startswith(("Starting", "Running")):
            self.status.setText(f"The sweep ended with exit status {code}; see the Log tab.")
        if len(self.trials) > 1:
            self.update_importances()
        self.message.emit(self.status.text())

    # ------------------------------------------------------------------ reading the study
    def _key(self) -> tuple[str, str] | None:
        path = self.sweep_path or (self.doc.project.path if self.doc is not None else None)
        if path is None:
            return None
        from workbench.sweep.study import default_storage

        return default_storage(path), self.study_edit.text().strip() or path.stem

    def poll(self) -> None:
        """Read the study's trials from its storage and redraw (nothing yet: nothing to draw)."""
        key = self._key()
        if key is None or (self.running and not self.study_ready):
            return
        try:
            from workbench.sweep.study import open_storage, optuna_module

            optuna = optuna_module()
            if self.storage is None or self.study_key != key:
                if not Path(key[0].removeprefix("sqlite:///")).exists():
                    return
                self.storage, self.study_key = open_storage(key[0]), key
            study = optuna.load_study(study_name=key[1], storage=self.storage)
        except (KeyError, WorkbenchError):
            return
        self.trials = study.get_trials(deepcopy=False)
        self.directions = [d.name.lower() for d in study.directions]
        self.objective_names = list(study.user_attrs.get("objectives") or
                                    [f"value {i}" for i in range(len(self.directions))])
        self.front = {t.number for t in study.best_trials} if any(
            t.state.name == "COMPLETE" for t in self.trials) else set()
        self._fill_table()
        self._draw()
        if self.running:
            done = sum(t.state.name in ("COMPLETE", "PRUNED") for t in self.trials)
            live = sum(t.state.name == "RUNNING" for t in self.trials)
            self.status.setText(f"Running: {done} finished trial(s), {live} running.")

    def _fill_table(self) -> None:
        keys = sorted({k for t in self.trials for k in t.params})
        columns = ["trial", "state", *self.objective_names, *keys, "seconds"]
        t = self.table
        selected = self.selected_trial()
        t.setRowCount(len(self.trials))
        t.setColumnCount(len(columns))
        t.setHorizontalHeaderLabels(columns)
        for i, trial in enumerate(self.trials):
            state = trial.state.name.lower()
            if state == "fail":
                state = "interrupted" if trial.user_attrs.get("interrupted") else "failed"
            values = list(trial.values or [None] * len(self.objective_names))
            duration = (trial.datetime_complete - trial.datetime_start).total_seconds() if (
                trial.datetime_complete and trial.datetime_start) else None
            cells = [trial.number, state, *values, *(trial.params.get(k) for k in keys), duration]
            for j, v in enumerate(cells):
                item = QTableWidgetItem("" if v is None else f"{v:.4g}" if isinstance(v, float) else str(v))
                if j == 0:
                    item.setData(Qt.ItemDataRole.UserRole, trial.number)
                if j == 1 and trial.user_attrs.get("failure"):
                    item.setToolTip(trial.user_attrs["failure"])
                if trial.number in getattr(self, "front", set()):
                    item.setBackground(QColor(255, 235, 160))
                t.setItem(i, j, item)
        if selected is not None:
            for i, trial in enumerate(self.trials):
                if trial.number == selected:
                    t.selectRow(i)
        t.resizeColumnsToContents()

    def selected_trial(self) -> int | None:
        row = self.table.currentRow()
        item = self.table.item(row, 0) if row >= 0 else None
        return int(item.data(Qt.ItemDataRole.UserRole)) if item is not None else None

    def _draw(self) -> None:
        complete = [t for t in self.trials if t.state.name == "COMPLETE" and t.values]
        if not complete:
            return
        sign = 1 if self.directions[0] == "maximize" else -1
        xs, best, running = [], [], None
        for t in sorted(complete, key=lambda t: t.number):
            v = t.values[0]
            running = v if running is None or sign * v > sign * running else running
            xs.append(t.number)
            best.append(running)
        self.best_curve.setData(xs, best)
        self.trial_points.setData([t.number for t in complete], [t.values[0] for t in complete])
        if len(self.directions) > 1:
            self.pareto_plot.setLabel("bottom", self.objective_names[1])
            self.pareto_plot.setLabel("left", self.objective_names[0])
            self.pareto_all.setData([t.values[1] for t in complete], [t.values[0] for t in complete])
            front = [t for t in complete if t.number in self.front]
            self.pareto_front.setData([t.values[1] for t in front], [t.values[0] for t in front])
        self._draw_coordinates(complete)

    def _draw_coordinates(self, complete: list[Any]) -> None:
        """One line per trial across its (scaled) parameter values, coloured by the metric."""
        self.coords_plot.clear()
        keys = sorted({k for t in complete for k in t.params})
        if not keys:
            return
        axis = self.coords_plot.getAxis("bottom")
        axis.setTicks([[(i, k) for i, k in enumerate(keys)] + [(len(keys), self.objective_names[0])]])
        columns = []
        for k in [*keys, None]:
            raw = [t.values[0] if k is None else t.params.get(k) for t in complete]
            numeric = all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in raw)
            if numeric:
                lo, hi = min(raw), max(raw)
                log = k is not None and lo > 0 and hi / lo > 20
                f = (lambda v: math.log(v)) if log else (lambda v: v)
                span = (f(hi) - f(lo)) or 1.0
                columns.append([(f(v) - f(lo)) / span for v in raw])
            else:
                levels = sorted({str(v) for v in raw})
                columns.append([levels.index(str(v)) / max(1, len(levels) - 1) for v in raw])
        metric = columns[-1]
        for i, _t in enumerate(complete):
            shade = metric[i] if self.directions[0] == "maximize" else 1 - metric[i]
            color = QColor.fromHsvF(0.6 * (1 - shade), 0.8, 0.85)
            self.coords_plot.plot(list(range(len(columns))), [c[i] for c in columns], pen=pg.mkPen(color, width=1))

    def update_importances(self) -> None:
        """Optuna's parameter importances over the finished trials, for the first objective."""
        from workbench.sweep.study import optuna_module

        optuna = optuna_module()
        complete = [t for t in self.trials if t.state.name == "COMPLETE"]
        if len(complete) < 2 or self.study_key is None:
            self._say("Importances need at least two complete trials.")
            return
        study = optuna.load_study(study_name=self.study_key[1], storage=self.storage)
        try:
            scores = importances(study, self.directions[0] == "maximize")
        except (RuntimeError, ValueError, ImportError) as exc:
            self._say(f"Importances: {exc}")
            return
        self.importances.setRowCount(len(scores))
        for i, (name, value) in enumerate(scores.items()):
            self.importances.setItem(i, 0, QTableWidgetItem(name))
            self.importances.setItem(i, 1, QTableWidgetItem(f"{value:.3f}  " + "#" * round(20 * value)))
        self.importances.resizeColumnsToContents()

    # ------------------------------------------------------------------ apply
    def apply_selected(self) -> bool:
        """Write the selected trial's values into the project as one undo step."""
        number = self.selected_trial()
        doc = self.doc
        trial = next((t for t in self.trials if t.number == number), None)
        if doc is None or trial is None or not trial.params:
            self._say("Select a trial with values first.")
            return False
        from workbench.sweep.apply import apply_values, targets_of

        from .commands import SetParamsCommand
        from .config_form import SetConfigCommand

        try:
            targets = targets_of(doc.project, list(trial.params))
            apply_values(doc.project, targets, trial.params)  # every value is checked before the first change
        except WorkbenchError as exc:
            self._say(f"Trial {number} cannot be applied: {exc}")
            return False
        stack = doc.undo_stack
        stack.beginMacro(f"Apply trial {number}")
        for name, value in trial.params.items():
            t = targets[name]
            if t.section is not None:
                if getattr(doc.project, t.section)[t.key] != value:
                    stack.push(SetConfigCommand(doc, t.section, t.key, value))
            elif doc.project.graph.node(t.node_id).params.get(t.key) != value:
                stack.push(SetParamsCommand(doc.project.graph, [t.node_id], {t.key: value}))
        stack.endMacro()
        self._say(f"Applied trial {number}: " + ", ".join(f"{k}={v}" for k, v in trial.params.items()))
        return True

    def _say(self, text: str) -> None:
        self.status.setText(text)
        self.message.emit(text)
