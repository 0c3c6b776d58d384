"""The Compress dialog (Run > Compress…): quantize the verified ONNX export or prune the model, as
a job in a spawned process (progress, Cancel), and show the report measured before and after.

The dialog only collects settings and draws results: the work is
:func:`workbench.compress.jobs.compress_job`, the same functions ``workbench quantize`` and
``workbench prune`` run.  A job writes its files atomically and only when it succeeds, so a refused,
failed or cancelled job leaves nothing behind.  Cancel first asks the job to stop at its next safe
point (a clean end, a fine-tuning run closed properly); a second click ends the process at once,
unless it is writing its files.
"""

from __future__ import annotations

import html
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

from PySide6.QtCore import Qt, QTimer
from PySide6.QtGui import QBrush, QCloseEvent, QColor
from PySide6.QtWidgets import (
    QCheckBox,
    QComboBox,
    QDialog,
    QDoubleSpinBox,
    QFileDialog,
    QFormLayout,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QLineEdit,
    QMessageBox,
    QPlainTextEdit,
    QProgressBar,
    QPushButton,
    QSpinBox,
    QTableWidget,
    QTableWidgetItem,
    QTabWidget,
    QVBoxLayout,
)

from workbench.compress.jobs import compress_job
from workbench.compress.prune import CRITERIA, SCOPES
from workbench.compress.report import CompressReport, Measure
from workbench.jobs import Job
from workbench.training.runs import list_runs, runs_root

from .editors import commit_focused_field
from .wheel import guard_wheel

if TYPE_CHECKING:
    from .mainwindow import MainWindow

CHOOSE_FILE = "__choose__"

#: (title, job kind, fixed options, suffix of the output's default name)
METHODS: list[tuple[str, str, dict[str, Any], str]] = [
    ("Static int8 quantization (calibrated on the project's data)", "quantize", {"mode": "int8"}, "_int8.onnx"),
    ("Dynamic int8 quantization (activations quantized at run time)", "quantize", {"mode": "dynamic"}, "_dynamic.onnx"),
    ("FP16 conversion (half-precision weights and arithmetic)", "quantize", {"mode": "fp16"}, "_fp16.onnx"),
    ("Channel pruning, structured (a smaller editable project)", "prune_structured", {}, "_pruned.json"),
    ("Magnitude pruning, unstructured (sparse weights)", "prune_unstructured", {}, "_sparse.json"),
]
#: colours of a change measured beyond the noise: better, worse
BETTER, WORSE = QColor("#2e7d32"), QColor("#c62828")


class CompressDialog(QDialog):
    """Settings, a Compress button with progress and Cancel, and the report's tables.

    Attributes:
        outcome: the last job's result (``{"status", "report", "message"}``), or None.
    """

    def __init__(self, window: MainWindow) -> None:
        super().__init__(window)
        self.window_ = window
        self.setWindowTitle("Compress")
        self.setObjectName("compressDialog")
        self.setWindowModality(Qt.WindowModality.WindowModal)  # the project compressed is the one on screen
        self.job: Job | None = None
        self.stopping = False
        self.phase = ""
        self.outcome: dict[str, Any] | None = None
        self.report: CompressReport | None = None
        self.written: str | None = None  # the project structured pruning wrote (to open)
        self._out_edited = False
        self._shown_doc: object = None
        self._build()
        self.timer = QTimer(self)
        self.timer.setInterval(50)
        self.timer.timeout.connect(self._poll)
        self.resize(900, 720)

    # ------------------------------------------------------------------ construction
    def _build(self) -> None:
        self.project_label = QLabel()
        self.weights = QComboBox()
        self.weights.setToolTip("The trained weights to compress: a run's checkpoint or the project's weights file")
        self.weights.activated.connect(self._weights_activated)
        self.method = QComboBox()
        for title, *_ in METHODS:
            self.method.addItem(title)
        self.method.currentIndexChanged.connect(self._method_changed)
        self.amount = QDoubleSpinBox()
        self.amount.setRange(1.0, 99.0)
        self.amount.setDecimals(1)
        self.amount.setValue(50.0)
        self.amount.setSuffix(" %")
        self.criterion = QComboBox()
        for c, title in zip(CRITERIA, ("L1 norm of each filter", "BatchNorm scale after it"), strict=True):
            self.criterion.addItem(title, c)
        self.include_linear = QCheckBox("also prune the hidden units of Linear layers")
        self.finetune = QSpinBox()
        self.finetune.setRange(0, 1000)
        self.finetune.setSuffix(" epochs")
        self.finetune.setToolTip("Train the pruned project from its pruned weights (a run beside it); 0: no fine-tuning")
        self.scope = QComboBox()
        for s, title in zip(SCOPES, ("the smallest over the whole model", "the smallest in each layer"), strict=True):
            self.scope.addItem(title, s)
        self.calibration = QSpinBox()
        self.calibration.setRange(1, 1_000_000)
        self.calibration.setValue(1024)
        self.calibration.setSuffix(" samples")
        self.calibration.setToolTip("Training samples the int8 ranges are calibrated on")
        cores = os.cpu_count() or 2
        self.threads = QSpinBox()
        self.threads.setRange(1, cores)
        self.threads.setValue(max(1, cores - 1))  # one core stays with the editor
        self.threads.setToolTip("Threads for the job and its latency measurements (latency depends on it)")
        self.max_drop = QLineEdit()
        self.max_drop.setObjectName("maxDrop")
        self.max_drop.setPlaceholderText("no limit")
        self.max_drop.setToolTip("Refuse the result (write nothing) when validation accuracy falls by more than "
                                 "this many percentage points")
        self.output = QLineEdit()
        self.output.setObjectName("compressOutput")
        self.output.textEdited.connect(self._output_edited)
        self.browse = QPushButton("Browse…")
        self.browse.clicked.connect(self._browse)
        for w in (self.weights, self.method, self.criterion, self.scope, self.amount, self.finetune, self.calibration,
                  self.threads):
            guard_wheel(w)

        self.form = QFormLayout()
        self.form.addRow("Project", self.project_label)
        self.form.addRow("Weights", self.weights)
        self.form.addRow("Method", self.method)
        self.amount_label = QLabel()
        self.form.addRow(self.amount_label, self.amount)
        self.form.addRow("Rank channels by", self.criterion)
        self.form.addRow("", self.include_linear)
        self.form.addRow("Fine-tune", self.finetune)
        self.form.addRow("Zero weights", self.scope)
        self.form.addRow("Calibrate on", self.calibration)
        self.form.addRow("Threads", self.threads)
        drop_row = QHBoxLayout()
        drop_row.addWidget(self.max_drop, 1)
        drop_row.addWidget(QLabel("accuracy points at most"))
        self.form.addRow("Refuse a drop over", drop_row)
        out_row = QHBoxLayout()
        out_row.addWidget(self.output, 1)
        out_row.addWidget(self.browse)
        self.form.addRow("Write to", out_row)

        self.run_button = QPushButton("Compress")
        self.run_button.setObjectName("compressButton")
        self.run_button.setDefault(True)
        self.run_button.clicked.connect(self.start)
        self.cancel_button = QPushButton("Cancel")
        self.cancel_button.setEnabled(False)
        self.cancel_button.clicked.connect(self.cancel)
        self.open_button = QPushButton("Open the Pruned Project")
        self.open_button.setVisible(False)
        self.open_button.clicked.connect(self.open_result)
        self.close_button = QPushButton("Close")
        self.close_button.clicked.connect(self.close)
        self.progress = QProgressBar()
        self.progress.setRange(0, 1)
        self.progress.setValue(0)
        self.progress.setFormat("idle")
        self.status = QLabel("Choose a method and where to write the result, then Compress.")
        self.status.setWordWrap(True)
        self.status.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        buttons = QHBoxLayout()
        buttons.addWidget(self.run_button)
        buttons.addWidget(self.cancel_button)
        buttons.addWidget(self.progress, 1)
        buttons.addWidget(self.open_button)
        buttons.addWidget(self.close_button)

        self.table = self._table(["measure", "before", "after", "change", "note"])
        self.layers = self._table([])
        self.notes = QPlainTextEdit()
        self.notes.setReadOnly(True)
        self.tabs = QTabWidget()
        self.tabs.addTab(self.table, "Before and after")
        self.tabs.addTab(self.layers, "Per layer")
        self.tabs.addTab(self.notes, "Notes")
        self.report_title = QLabel("No report yet.")
        self.report_title.setWordWrap(True)

        lay = QVBoxLayout(self)
        lay.addLayout(self.form)
        lay.addLayout(buttons)
        lay.addWidget(self.status)
        lay.addWidget(self.report_title)
        lay.addWidget(self.tabs, 1)
        self._method_changed()

    @staticmethod
    def _table(headers: list[str]) -> QTableWidget:
        t = QTableWidget(0, len(headers))
        t.setHorizontalHeaderLabels(headers)
        t.verticalHeader().setVisible(False)
        t.setEditTriggers(QTableWidget.EditTrigger.NoEditTriggers)
        t.setWordWrap(False)
        t.horizontalHeader().setStretchLastSection(True)
        return t

    # ------------------------------------------------------------------ settings
    def kind(self) -> str:
        return METHODS[self.method.currentIndex()][1]

    def _method_changed(self, _index: int = 0) -> None:
        """Show the settings that do something for the chosen method; the output follows it."""
        kind = self.kind()
        mode = METHODS[self.method.currentIndex()][2].get("mode")
        visible = {self.amount: kind != "quantize", self.criterion: kind == "prune_structured",
                   self.include_linear: kind == "prune_structured", self.finetune: kind == "prune_structured",
                   self.scope: kind == "prune_unstructured", self.calibration: mode == "int8"}
        for widget, on in visible.items():
            self.form.setRowVisible(widget, on)
        self.amount_label.setText("Remove channels" if kind == "prune_structured" else "Sparsity")
        self.amount.setToolTip("Share of each prunable layer's output channels to remove" if kind == "prune_structured"
                               else "Share of the convolution and Linear weights set to zero")
        if not self._out_edited:
            self.output.setText(self._default_output())

    def _default_output(self) -> str:
        project = self.window_.doc.project
        suffix = METHODS[self.method.currentIndex()][3]
        if project.path is not None:
            return str(project.path.with_name(project.path.stem + suffix))
        stem = "".join(c if c.isalnum() or c in "-_" else "_" for c in project.name) or "model"
        return str(self.window_._last_dir() / (stem + suffix))

    def _output_edited(self, _text: str) -> None:
        self._out_edited = True

    def _browse(self) -> None:
        kind = self.kind()
        filt = "ONNX models (*.onnx)" if kind == "quantize" else "Projects (*.json)"
        path, _ = QFileDialog.getSaveFileName(self, "Write the compressed model to", self.output.text(), filt)
        if path:
            self.output.setText(path)
            self._out_edited = True

    def refresh(self) -> None:
        """Read the window's project again: its name, its runs' checkpoints and weights."""
        project = self.window_.doc.project
        if self._shown_doc is not self.window_.doc:  # another project: its own output name, not the last one's
            self._shown_doc = self.window_.doc
            self._out_edited = False
            self._clear_report()
            self.status.setText("Choose a method and where to write the result, then Compress.")
            self.progress.setFormat("idle")
        self.project_label.setText(html.escape(project.name) + (f" ({project.path})" if project.path else
                                                                " (not saved)"))
        self.refresh_weights()
        if not self._out_edited:
            self.output.setText(self._default_output())

    def refresh_weights(self, prefer: str | None = None) -> None:
        """The runs' checkpoints (newest first), the project's weights, and "Other file…"."""
        current = prefer or self.weights.currentData()
        self.weights.clear()
        project = self.window_.doc.project
        if project.path is not None:
            for run in list_runs(runs_root(project.path)):
                for kind in ("last", "best"):
                    path = run.path / "checkpoints" / f"{kind}.safetensors"
                    if path.is_file():
                        self.weights.addItem(f"run {run.name}: {kind} ({run.status})", str(path))
        if project.weights_path() is not None:
            self.weights.addItem(f"project weights ({project.weights})", "")
        if current and current != CHOOSE_FILE and self.weights.findData(current) < 0 and Path(current).is_file():
            self.weights.addItem(Path(current).name, current)
        self.weights.addItem("Other file…", CHOOSE_FILE)
        index = self.weights.findData(current) if current is not None else -1
        self.weights.setCurrentIndex(index if index >= 0 and current != CHOOSE_FILE else 0)

    def _weights_activated(self, _index: int) -> None:
        if self.weights.currentData() != CHOOSE_FILE:
            return
        path, _ = QFileDialog.getOpenFileName(self, "Weights to compress", "", "Weights (*.safetensors)")
        self.refresh_weights(prefer=path or None)

    def options(self) -> dict[str, Any]:
        """The job's keyword arguments from the form.

        Raises:
            ValueError: a field holds something unusable (the message names the field).
        """
        kind = self.kind()
        opts: dict[str, Any] = dict(METHODS[self.method.currentIndex()][2])
        checkpoint = self.weights.currentData()
        opts["checkpoint"] = checkpoint or None
        opts["threads"] = self.threads.value()
        text = self.max_drop.text().strip().replace(",", ".")
        if text:
            try:
                drop = float(text)
            except ValueError:
                drop = float("nan")
            if not drop >= 0:  # NaN too
                raise ValueError(f"Refuse a drop over: expected a number of accuracy points >= 0, got {text!r}")
            opts["max_drop"] = drop
        if kind == "quantize":
            if opts["mode"] == "int8":
                opts["calibration_samples"] = self.calibration.value()
        else:
            opts["amount"] = round(self.amount.value() / 100.0, 6)
        if kind == "prune_structured":
            opts.update(criterion=self.criterion.currentData(), include_linear=self.include_linear.isChecked(),
                        finetune_epochs=self.finetune.value())
        elif kind == "prune_unstructured":
            opts["scope"] = self.scope.currentData()
        return opts

    # ------------------------------------------------------------------ the job
    @property
    def running(self) -> bool:
        return self.job is not None

    def start(self) -> bool:
        """Check the settings and start the job; False (with the reason shown) when it cannot start."""
        if self.running:
            return False
        commit_focused_field()
        doc = self.window_.doc
        errors = doc.errors(["main"])
        if errors:
            return self._error(f"Fix the graph first: {errors[0]}")
        if self.weights.currentData() == CHOOSE_FILE:
            return self._error("No trained weights: train the model first (Run > Train) or choose a weights file "
                               "(Weights: Other file…).")
        try:
            opts = self.options()
        except ValueError as exc:
            self.max_drop.setFocus()
            return self._error(str(exc))
        out = self.output.text().strip()
        if not out:
            self.output.setFocus()
            return self._error("Write to: give the file to write.")
        path = Path(out).expanduser()
        kind = self.kind()
        targets = [path] if kind == "quantize" else [path, path.with_suffix(".safetensors")]
        existing = [t for t in targets if t.is_file()]
        if existing:
            B = QMessageBox.StandardButton
            names = " and ".join(str(t) for t in existing)
            if self.window_.ask("Replace files?", f"{names} already exist{'s' if len(existing) == 1 else ''}. "
                                "Replace when the job succeeds?", B.Yes | B.No) != B.Yes:
                return False
        project = doc.project
        self._clear_report()
        self.job = Job(compress_job, kind, project.to_json(), str(project.path) if project.path else None, str(path),
                       opts, progress=True, stoppable=True).start()
        self.stopping = False
        self.phase = ""
        self.progress.setRange(0, 0)
        self.progress.setFormat("starting…")
        self.status.setText(f"{html.escape(self.method.currentText())}: starting…")
        self.run_button.setEnabled(False)
        self.cancel_button.setEnabled(True)
        self.cancel_button.setText("Cancel")
        self.timer.start()
        return True

    def _poll(self) -> None:
        if self.job is None:
            return
        outcome = self.job.poll()
        while outcome is not None and outcome[0] == "progress":
            done, total, *note = outcome[1]
            if total:
                self.progress.setRange(0, total)
                self.progress.setValue(done)
            if note:
                self.phase = note[0]
                self.progress.setFormat(note[0][:80])
                if not self.stopping:
                    self.status.setText(html.escape(note[0]))
            outcome = self.job.poll()
        if outcome is None:
            return
        self._finish()
        kind, value = outcome
        if kind == "ok":
            self.show_outcome(value)
        else:
            self.outcome = {"status": "error", "report": None, "message": value}
            self.progress.setFormat("failed")
            self._error(f"Cannot compress: {value}")

    def _finish(self) -> None:
        self.timer.stop()
        self.job = None
        self.stopping = False
        self.progress.setRange(0, 1)
        self.run_button.setEnabled(True)
        self.cancel_button.setEnabled(False)
        self.cancel_button.setText("Cancel")

    def cancel(self) -> None:
        """First click: the job stops at its next safe point.  Second: its process ends now (not
        while it writes its files, which takes an instant and is left to finish)."""
        if self.job is None:
            return
        if not self.stopping:
            self.stopping = True
            self.job.request_stop()
            self.cancel_button.setText("Stop Now")
            self.status.setText("Stopping at the next safe point… (Stop Now ends the job at once)")
            return
        if self.phase.startswith("writing"):
            self.status.setText("Writing the files: the job ends in a moment.")
            return
        self.job.cancel()
        self._finish()
        self.outcome = {"status": "cancelled", "report": None, "message": "ended by the user"}
        self.progress.setValue(0)
        self.progress.setFormat("cancelled")
        self.status.setText("Cancelled: nothing was written.")

    def _error(self, text: str) -> bool:
        self.status.setText(f"<span style='color:{WORSE.name()}'>{html.escape(text)}</span>")
        self.window_.show_message(text.splitlines()[0])
        return False

    # ------------------------------------------------------------------ results
    def _clear_report(self) -> None:
        self.outcome = self.report = self.written = None
        self.open_button.setVisible(False)
        self.table.setRowCount(0)
        self.layers.setRowCount(0)
        self.layers.setColumnCount(0)
        self.notes.clear()
        self.report_title.setText("No report yet.")

    def show_outcome(self, outcome: dict[str, Any]) -> None:
        """Draw a finished job: its report, and what became of the files."""
        self.outcome = outcome
        status = outcome["status"]
        if outcome.get("report"):
            self.show_report(CompressReport.from_dict(outcome["report"]))
        if status == "ok":
            self.progress.setValue(1)
            self.progress.setFormat("done")
            self.status.setText(f"Done: {html.escape(written(self.report.outputs if self.report else []))}.")
            if self.kind() == "prune_structured" and self.report is not None and self.report.outputs:
                self.written = self.report.outputs[0]
                self.open_button.setVisible(True)
            self.window_.show_message(f"Compressed: {outcome['message']}")
        elif status == "refused":
            self.progress.setFormat("refused")
            self._error(f"Refused: {outcome['message']}")
        else:
            self.progress.setValue(0)
            self.progress.setFormat("cancelled")
            self.status.setText(html.escape(f"Cancelled: {outcome['message']}"))

    def show_report(self, report: CompressReport) -> None:
        """The measures before and after, the per-layer table and the notes."""
        self.report = report
        state = "refused, nothing written" if report.refused else "written" if report.outputs else "nothing written"
        self.report_title.setText(f"<b>{html.escape(report.job)}</b> · {html.escape(state)}")
        self.table.setRowCount(len(report.rows))
        for i, row in enumerate(report.rows):
            for j, text in enumerate(row.cells()):
                item = QTableWidgetItem(text)
                if j in (1, 2, 3):
                    item.setTextAlignment(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
                if j == 4:
                    item.setToolTip(text)
                self.table.setItem(i, j, item)
            verdict, colour = judge(row)
            if verdict:
                cell = self.table.item(i, 3)
                cell.setToolTip(verdict)
                if colour is not None:
                    cell.setForeground(QBrush(colour))
        header = self.table.horizontalHeader()
        for j in range(4):
            header.setSectionResizeMode(j, QHeaderView.ResizeMode.ResizeToContents)
        keys = list(report.nodes[0]) if report.nodes else []
        self.layers.setColumnCount(len(keys))
        self.layers.setHorizontalHeaderLabels(keys)
        self.layers.setRowCount(len(report.nodes))
        for i, node in enumerate(report.nodes):
            for j, key in enumerate(keys):
                self.layers.setItem(i, j, QTableWidgetItem(str(node.get(key, ""))))
        self.layers.resizeColumnsToContents()
        lines = [f"• {n}" for n in report.notes]
        if report.refused:
            lines.insert(0, f"Refused: {report.refused}")
        self.notes.setPlainText("\n".join(lines))
        self.tabs.setCurrentIndex(0)

    def open_result(self) -> bool:
        """Open the smaller project structured pruning wrote (unsaved changes are asked about first)."""
        if self.written is None:
            return False
        if self.window_.open_path(self.written):
            self.close()
            return True
        return False

    def closeEvent(self, event: QCloseEvent) -> None:
        if self.job is not None:
            if self.phase.startswith("writing"):
                event.ignore()  # an instant: the files are being renamed into place
                return
            self.job.cancel()
            self._finish()
        super().closeEvent(event)


def written(paths: list[str]) -> str:
    """"wrote a.json and a.safetensors in /folder": the names first, the folder once."""
    if not paths:
        return "nothing written"
    folders = {str(Path(p).parent) for p in paths}
    if len(folders) > 1:
        return "wrote " + " and ".join(paths)
    return f"wrote {' and '.join(Path(p).name for p in paths)} in {folders.pop()}"


def judge(row: Measure) -> tuple[str, QColor | None]:
    """What a change says, claiming only what was measured: a latency is faster or slower only
    when three rounds in four agree (the report's spread), else it is within the noise."""
    change = row.change
    if change is None:
        return "", None
    if row.name.startswith("latency"):
        lo, hi = row.spread or [change, change]
        if hi < 1.0 and change < 0.97:
            return f"{1 / change:.2f}x faster (measured)", BETTER
        if lo > 1.0 and change > 1.03:
            return f"{change:.2f}x slower (measured)", WORSE
        return "no difference beyond the noise", None
    if row.kind == "ratio" and row.unit in ("bytes", "MACs", "params"):
        return (f"{1 / change:.2f}x smaller", BETTER) if change < 1 else ("not smaller", None)
    if row.name.startswith("validation accuracy") and change < 0:
        return f"{-change:.2f} points lost", WORSE
    return "", None


def compress_dialog(window: MainWindow) -> CompressDialog:
    """Show the window's Compress dialog (made once), read from the project now on screen."""
    dialog: CompressDialog | None = getattr(window, "compress_dialog", None)
    if dialog is None:
        dialog = CompressDialog(window)
        window.compress_dialog = dialog  # type: ignore[attr-defined]
    dialog.refresh()
    dialog.show()
    dialog.raise_()
    return dialog
