"""GUI benchmarks: open and render a 1,000-node graph; move a node with 20 wires (issue 3); the Qt
event loop's lateness while a run streams into the training dashboard (issue 15)."""

from __future__ import annotations

import statistics
import tempfile
import time
from pathlib import Path

from PySide6.QtCore import QElapsedTimer, QPointF, Qt, QTimer
from PySide6.QtWidgets import QApplication

from bench.common import Row
from workbench.builder import GraphBuilder
from workbench.project import Project, save_project


def big_project(path: Path) -> tuple[int, int]:
    """1,000 nodes / 1,100 edges: a 'hub' feeding 20 branches, then chains with skips."""
    b = GraphBuilder()
    x = b.input((64,), name="in")
    hub = b.layer("ReLU", x, name="hub")
    branch_ends = [b.layer("Tanh", hub, name=f"branch{i}") for i in range(20)]
    nodes = 2 + 20
    prev = branch_ends[0]
    i = 0
    while nodes < 1000 - 1:
        if i % 10 == 9 and nodes < 1000 - 2:
            prev = b.layer("Add", prev, branch_ends[i % 20], name=f"add{i}")
        else:
            prev = b.layer("Linear", prev, out_features=64, name=f"fc{i}")
        nodes += 1
        i += 1
    b.output(prev)
    b.auto_layout()
    g = b.graph
    # top up to 1,100 edges with extra Outputs reading the Add nodes (fan-out)
    extra = 0
    for node in list(g):
        if len(g.edges) >= 1100 or len(g) >= 1000:
            break
        if node.type == "Add":
            o = g.add_node("Output", position=(node.position[0] + 220, node.position[1]))
            g.connect(node.id, "y", o.id, "x")
            extra += 1
    save_project(Project(g, "big"), path)
    return len(g), len(g.edges)


ROOT = Path(__file__).resolve().parent.parent
#: samples whose runs stream every kind of event: curves, per-layer statistics, a confusion matrix
#: (classification), reconstructions and a 1,000-point latent scatter (the autoencoder)
STREAMED = {"digits_cnn": 60, "digits_autoencoder": 30}


def streaming_lateness(window, app, tmp: Path) -> tuple[list[float], dict[str, list[float]], float]:
    """Train each of ``STREAMED`` from the real main window while a 10 ms timer measures how late the
    event loop serves it; the dashboard's tabs take turns on screen (every 700 ms), so each tab's
    drawing is measured.  Returns the lateness samples (ms), all and by tab, and the GUI thread's CPU
    time per second of streaming (what the dashboard costs, whatever else the machine runs)."""
    clock = QElapsedTimer()
    clock.start()
    lateness: list[float] = []
    by_tab: dict[str, list[float]] = {}
    state = {"training": False, "last": 0}
    cpu = {"start": 0.0, "wall": 0.0, "spent": 0.0}
    tabs = window.training.tabs

    def tick() -> None:
        now = clock.elapsed()
        if state["training"]:  # the worker's start-up (importing torch) is not streaming
            late = max(0.0, now - state["last"] - 10)
            lateness.append(late)
            by_tab.setdefault(tabs.tabText(tabs.currentIndex()), []).append(late)
        state["last"] = now

    def next_tab() -> None:
        shown = [i for i in range(tabs.count()) if tabs.isTabVisible(i)]
        tabs.setCurrentIndex(shown[(shown.index(tabs.currentIndex()) + 1) % len(shown)] if tabs.currentIndex() in shown
                             else shown[0])

    original = window.training.handle

    def handle(e: dict) -> None:
        original(e)
        if e["type"] == "start":
            state["training"] = True
            cpu.update(start=time.thread_time(), t0=time.perf_counter())
        elif e["type"] in ("done", "error", "died") and state["training"]:
            state["training"] = False
            cpu["spent"] += time.thread_time() - cpu["start"]
            cpu["wall"] += time.perf_counter() - cpu["t0"]

    window.training.handle = handle  # type: ignore[method-assign]
    probe = QTimer()
    probe.setTimerType(Qt.TimerType.PreciseTimer)
    probe.setInterval(10)
    probe.timeout.connect(tick)
    cycle = QTimer()
    cycle.setInterval(700)
    cycle.timeout.connect(next_tab)
    for name, epochs in STREAMED.items():
        project = tmp / f"{name}.json"
        project.write_text((ROOT / "samples" / f"{name}.json").read_text())
        window.open_path(project, ask_save=False)
        window.doc.project.training["epochs"] = epochs
        window.show_training()
        tabs.setCurrentIndex(0)
        window.training.start()
        probe.start()
        cycle.start()
        watcher = QTimer()  # the real event loop (not a processEvents() polling loop) until the run ends
        watcher.timeout.connect(lambda: None if window.training.running else app.quit())
        watcher.start(100)
        QTimer.singleShot(600_000, app.quit)
        app.exec()
        watcher.stop()
        cycle.stop()
        probe.stop()
    del window.training.handle
    return lateness, by_tab, cpu["spent"] / max(cpu["wall"], 1e-9)


def p99(values: list[float]) -> float:
    ordered = sorted(values)
    return ordered[int(len(ordered) * 0.99)] if ordered else float("nan")


def run() -> list[Row]:
    from ui.app import create_app
    from ui.mainwindow import MainWindow

    app = create_app()
    tmp = Path(tempfile.mkdtemp())
    path = tmp / "big.json"
    n_nodes, n_edges = big_project(path)
    window = MainWindow(ask=lambda *a: 0)
    window.resize(1400, 900)
    window.show()
    app.processEvents()
    times = []
    for _ in range(3):
        t = time.perf_counter()
        window.open_path(path, ask_save=False)
        window.view.fit()
        window.view.viewport().repaint()
        app.processEvents()
        times.append(time.perf_counter() - t)
    rows = [Row("3", f"open + first render, {n_nodes} nodes / {n_edges} edges (offscreen)",
                statistics.median(times), "s", 1.5)]

    hub = window.doc.graph.by_name("hub").id
    item = window.scene.nodes[hub]
    window.view.center_on_node(hub)
    app.processEvents()
    start = item.pos()
    steps = []
    for k in range(60):
        t = time.perf_counter()
        item.setPos(start + QPointF(10 * (k % 7), 10 * (k % 5)))
        window.view.viewport().repaint()
        steps.append(time.perf_counter() - t)
    rows.append(Row("3", f"move a node with {len(item.edges)} wires + repaint, per step", statistics.median(steps) * 1e3,
                    "ms", 16.0, note=f"p90 {sorted(steps)[int(len(steps) * 0.9)] * 1e3:.1f} ms"))

    late, by_tab, cpu = streaming_lateness(window, app, tmp)
    tabs = ", ".join(f"{tab} {p99(v):.0f}" for tab, v in by_tab.items())
    rows.append(Row("15", "Qt event-loop lateness while runs stream into the dashboard (10 ms timer), p99",
                    p99(late), "ms", 50.0,
                    note=(f"max {max(late):.0f} ms over {len(late)} ticks; p99 by tab: {tabs}; "
                          f"{' and '.join(STREAMED)}") if late else "no ticks"))
    rows.append(Row("15", "GUI thread's CPU time per second of streaming (the dashboard's cost)", cpu * 1e3, "ms/s",
                    note="CPU time, so the machine's other load hardly changes it"))
    window.doc.undo_stack.setClean()
    window.close()
    QApplication.processEvents()
    return rows
