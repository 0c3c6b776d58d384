"""Cost bars on the canvas (View > Cost Bars) and the latency profile behind one of them.

The user picks a measure: none, MACs, parameters, memory (the node's outputs at the cost batch)
or latency (measured by a profile run).  Each node then shows a bar relative to the largest
node of the graph on the canvas, with the figure in its tooltip; the Summary table shows the
same costs as columns.  The figures come from ``workbench.analysis.cost`` (latency from
``workbench.analysis.profile``, run as a job in a spawned process with a progress dialog that
can cancel it).  A profile measures the graph as it was: an edit that changes shapes or
parameters, or another graph on the canvas, drops it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from PySide6.QtCore import QObject
from PySide6.QtGui import QAction, QActionGroup
from PySide6.QtWidgets import QMenu, QMessageBox

from workbench.analysis.cost import CostTable, NodeCost, cost_table, format_bytes
from workbench.analysis.macs import format_count
from workbench.graph import Graph

if TYPE_CHECKING:
    from .document import Document
    from .mainwindow import MainWindow

#: measure key -> menu text
MEASURES = {"none": "&None", "macs": "&MACs", "params": "&Parameters", "memory": "M&emory", "latency": "&Latency"}
MAX_BATCH = 1_000_000


class CostView(QObject):
    """The cost bars of the main window's canvas and the cost settings the Summary shares."""

    def __init__(self, window: MainWindow) -> None:
        super().__init__(window)
        self.window = window
        self.measure = "none"
        self.batch = 1
        self.latency: dict[str, float] = {}
        """Median ms per node id of the graph on the canvas (empty until profiled)."""
        self.latency_note = ""
        self._latency_graph: Graph | None = None
        self._doc: Document | None = None
        self.menu = QMenu("Cost &Bars", window)
        self.menu.setToolTip("Bars on the nodes showing a cost, relative to the largest node")
        group = QActionGroup(self.menu)
        self.actions: dict[str, QAction] = {}
        for key, text in MEASURES.items():
            action = self.menu.addAction(text)
            action.setCheckable(True)
            action.setChecked(key == self.measure)
            action.setObjectName(f"cost_{key}")
            action.triggered.connect(lambda _checked=False, k=key: self.set_measure(k))
            group.addAction(action)
            self.actions[key] = action
        self.menu.addSeparator()
        self.act_batch = self.menu.addAction("&Batch Size for Costs…", self.ask_batch)
        self.act_profile = self.menu.addAction("Profile La&tency…", self.profile)

    # ------------------------------------------------------------------ binding
    def bind(self) -> None:
        """Follow the window's current document and scene (after New, Open or another graph shown)."""
        doc = self.window.doc
        if doc is not self._doc:
            if self._doc is not None:
                try:
                    self._doc.changed.disconnect(self._changed)
                except (RuntimeError, TypeError):  # the old document is already gone
                    pass
            self._doc = doc
            doc.changed.connect(self._changed)
        self._sync_summary()
        self.apply()

    def _changed(self, ids: object = None) -> None:
        if ids:  # shapes or parameters changed: the measured latencies are of another model
            self._drop_latency()
        self.apply()

    def _drop_latency(self) -> None:
        if self.latency:
            self.latency, self.latency_note, self._latency_graph = {}, "", None
            self._sync_summary()

    def _sync_summary(self) -> None:
        if self._latency_graph is not None and self._latency_graph is not self.window.doc.graph:
            self.latency, self.latency_note, self._latency_graph = {}, "", None
        problems = self.window.problems
        if (problems.cost_batch, problems.cost_latency) != (self.batch, self.latency):
            problems.cost_batch, problems.cost_latency = self.batch, dict(self.latency)
            problems.refresh()

    # ------------------------------------------------------------------ settings
    def set_measure(self, key: str) -> None:
        """Show bars for ``key`` (a key of :data:`MEASURES`); latency runs a profile first when
        there is none (and stays as it was if that is cancelled or fails)."""
        if key == "latency" and not self.latency and not self.profile(show=False):
            key = self.measure
        self.measure = key
        self.actions[key].setChecked(True)
        self.apply()

    def ask_batch(self) -> None:
        text = self.window.prompt("Batch Size for Costs", "Batch size of MACs, FLOPs, memory and latency:",
                                  str(self.batch), [])
        if text is None:
            return
        try:
            batch = int(text)
        except ValueError:
            batch = 0
        if not 1 <= batch <= MAX_BATCH:
            self.window.ask("Batch size", f"The batch size must be a whole number from 1 to {MAX_BATCH:,}; "
                            f"got {text!r}.", QMessageBox.StandardButton.Ok)
            return
        if batch != self.batch:
            self.batch = batch
            self._drop_latency()
            self._sync_summary()
            self.apply()
            self.window.show_message(f"Costs at batch size {batch}")

    # ------------------------------------------------------------------ the profile job
    def profile(self, show: bool = True) -> bool:
        """Measure each node's latency on the project's training device, in a background job.
        True when it finished; ``show`` switches the bars to latency."""
        from workbench.analysis.profile import Profile, profile_job

        from .jobs import run_with_progress

        doc = self.window.doc
        errors = doc.shapes.errors()
        if errors or not doc.graph.inputs() or not doc.graph.outputs():
            why = str(errors[0]) if errors else "the graph needs an Input and an Output"
            self.window.ask("Cannot profile", f"Fix the graph first: {why}", QMessageBox.StandardButton.Ok)
            return False
        device = str(doc.project.training.get("device", "auto"))
        status, result = run_with_progress(self.window, f"Measuring the latency of every node ({device}, batch "
                                           f"{self.batch})…", profile_job, doc.project.to_json(), doc.role,
                                           self.batch, self._symbols(), "", 3, 20, progress=True)
        if status != "ok":
            if status == "error":
                self.window.ask("Profile failed", str(result), QMessageBox.StandardButton.Ok)
            else:
                self.window.show_message("Profile cancelled")
            return False
        prof = Profile.from_dict(result)
        self.latency, self._latency_graph = dict(prof.node_ms), doc.graph
        self.latency_note = (f"median of {prof.iterations} passes on {prof.device}, batch {prof.batch}; the whole "
                             f"forward: {prof.forward_ms:.3f} ms")
        self._sync_summary()
        self.window.show_message(f"Latency measured on {prof.device}: {prof.forward_ms:.3f} ms per forward pass")
        if show:
            self.set_measure("latency")
        else:
            self.apply()
        return True

    # ------------------------------------------------------------------ the bars
    def _symbols(self) -> int:
        return int(self.window.doc.project.data.get("seq_len", 1))

    def table(self) -> CostTable:
        """The costs of the graph on the canvas at the cost batch (with measured latencies)."""
        doc = self.window.doc
        table = cost_table(doc.graph, doc.shapes, self.batch, self._symbols())
        table.attach(self.latency)
        return table

    def value(self, row: NodeCost) -> float | None:
        """The measure shown for one node (None: not measured)."""
        return {"macs": row.macs, "params": row.params, "memory": row.activation_bytes,
                "latency": row.latency_ms}.get(self.measure)

    def text(self, row: NodeCost) -> str:
        """The tooltip line of a node's bar."""
        b = self.batch
        if self.measure == "macs":
            return f"<b>MACs</b> {format_count(row.macs)} · FLOPs {format_count(row.flops)} (batch {b})"
        if self.measure == "params":
            return f"<b>Parameters</b> {row.params:,} ({format_bytes(row.param_bytes)})"
        if self.measure == "memory":
            return f"<b>Memory</b> {format_bytes(row.activation_bytes)} of outputs (batch {b})"
        if row.latency_ms is None:
            return "<b>Latency</b> not measured (no code of its own)"
        return f"<b>Latency</b> {row.latency_ms:.3f} ms ({self.latency_note})"

    def apply(self) -> None:
        """Set every node's bar on the canvas for the chosen measure."""
        items = self.window.scene.nodes
        if self.measure == "none" or (self.measure == "latency" and not self.latency):
            for item in items.values():
                item.set_cost(None)
            return
        rows = self.table().by_id()
        values = {nid: self.value(row) for nid, row in rows.items()}
        top = max((v for v in values.values() if v is not None), default=0)
        for nid, item in items.items():
            row, v = rows.get(nid), values.get(nid)
            if row is None:
                item.set_cost(None)
            else:
                item.set_cost((v or 0) / top if top else 0.0, self.text(row))
