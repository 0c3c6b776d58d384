"""Issue 3 benchmarks: open and render a 1,000-node graph; move a node with 20 wires."""

from __future__ import annotations

import statistics
import tempfile
import time
from pathlib import Path

from PySide6.QtCore import QPointF
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
    window.doc.undo_stack.setClean()
    window.close()
    QApplication.processEvents()
    return rows
