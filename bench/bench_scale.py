"""Large graphs cost linear time: check, save, load and ONNX import at 1k, 10k and 100k nodes.

Workloads, built here:
- a residual chain of Conv2d / BatchNorm2d / ReLU blocks, each closed by an Add skip (4 nodes a
  block), as a project.  *check* is the CLI's ``check_report`` on the loaded project; *save* is
  ``save_project`` (JSON and atomic write); *load* is ``load_project``.
- the same network as a foreign ONNX file (Conv / BatchNormalization / Relu / Add operators,
  weights as initializers), imported as ``workbench import`` does it: ``import_onnx`` then
  ``write_import`` (project and weights written).

In every round each size runs once, side by side (the order alternates between rounds), so
machine load hits all sizes alike; a growth ratio is the median of the per-round ratios, and a
time the median over rounds.  Only the project being timed is alive meanwhile (as in a
``workbench`` process): other large objects would make every garbage collection longer.
Linear work grows 10x from 1k to 10k nodes: the target is 12.

From 10k to 100k nodes the time grows 11-14x although the work does not (tests/core/test_scale.py
counts the Python lines run: 10x): the data of 100k nodes no longer fits the processor's caches,
so every access costs more.  Those rows have no target.

ONNX import stops at 30k operators: one import of 100k takes about a minute here (most of it
making the torch modules whose state_dict lays out the weights, once to map them and once to
write them), three rounds would add several minutes to the suite, and the 30k/10k ratio already
shows how it grows.
"""

from __future__ import annotations

import gc
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

from bench.common import Row
from workbench.graph import Graph
from workbench.project import Project

ISSUE = "scale"
CHANNELS, SIDE = 4, 8


def residual_chain(n: int) -> Graph:
    """About ``n`` nodes: Input, (Conv2d, BatchNorm2d, ReLU, Add) blocks, Output."""
    g = Graph()
    x = g.add_node("Input", {"shape": [CHANNELS, SIDE, SIDE]}, "image").id
    while len(g) + 4 <= n - 1:
        conv = g.add_node("Conv2d", {"out_channels": CHANNELS, "padding": [1, 1]}).id
        bn, relu, add = g.add_node("BatchNorm2d").id, g.add_node("ReLU").id, g.add_node("Add").id
        g.connect(x, "y", conv, "x")
        g.connect(conv, "y", bn, "x")
        g.connect(bn, "y", relu, "x")
        g.connect(relu, "y", add, "in1")
        g.connect(x, "y", add, "in2")
        x = add
    g.connect(x, "y", g.add_node("Output").id, "x")
    return g


def residual_onnx(n: int, path: Path) -> int:
    """Write the same network as an ONNX file of about ``n`` operators; returns their count."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(0)
    nodes, inits = [], []
    x, k = "image", 0
    while len(nodes) + 4 <= n:
        w = rng.standard_normal((CHANNELS, CHANNELS, 3, 3)).astype(np.float32) * 0.1
        stats = [np.ones(CHANNELS, np.float32), np.zeros(CHANNELS, np.float32), np.zeros(CHANNELS, np.float32),
                 np.ones(CHANNELS, np.float32)]
        names = [f"conv{k}.weight", f"conv{k}.bias", *(f"bn{k}.{s}" for s in ("weight", "bias", "mean", "var"))]
        inits += [numpy_helper.from_array(a, nm) for a, nm in zip([w, np.zeros(CHANNELS, np.float32), *stats], names,
                                                                   strict=True)]
        nodes += [
            helper.make_node("Conv", [x, names[0], names[1]], [f"c{k}"], name=f"/conv{k}/Conv", pads=[1, 1, 1, 1]),
            helper.make_node("BatchNormalization", [f"c{k}", *names[2:]], [f"b{k}"], name=f"/bn{k}/BatchNormalization"),
            helper.make_node("Relu", [f"b{k}"], [f"r{k}"], name=f"/relu{k}/Relu"),
            helper.make_node("Add", [f"r{k}", x], [f"a{k}"], name=f"/add{k}/Add"),
        ]
        x, k = f"a{k}", k + 1
    shape = ["N", CHANNELS, SIDE, SIDE]
    graph = helper.make_graph(nodes, "residual", [helper.make_tensor_value_info("image", TensorProto.FLOAT, shape)],
                              [helper.make_tensor_value_info(x, TensorProto.FLOAT, shape)], inits)
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), path)
    return len(nodes)


def _timed(fn: Callable[[], object]) -> tuple[float, object]:
    gc.collect()  # the garbage of what ran before is not charged to this
    t = time.perf_counter()
    result = fn()
    return time.perf_counter() - t, result


def side_by_side(sizes: tuple[int, ...], rounds: int,
                 step: Callable[[int], dict[str, float]]) -> tuple[dict[str, dict[int, float]], list[dict[str, dict[int, float]]]]:
    """Run ``step(size)`` (which times one or more operations) for each size in every round,
    the order alternating between rounds; returns median times and every round's times."""
    step(min(sizes))  # warm-up: imports and first-call caches
    runs: list[dict[str, dict[int, float]]] = []
    for r in range(rounds):
        times: dict[str, dict[int, float]] = {}
        for size in (sorted(sizes) if r % 2 == 0 else sorted(sizes, reverse=True)):
            for what, t in step(size).items():
                times.setdefault(what, {})[size] = t
        runs.append(times)
    medians = {what: {n: statistics.median(run[what][n] for run in runs) for n in sizes} for what in runs[0]}
    return medians, runs


def growth(runs: list[dict[str, dict[int, float]]], what: str, large: int, small: int) -> float:
    return statistics.median(run[what][large] / run[what][small] for run in runs)


def run() -> list[Row]:
    from workbench.cli import check_report
    from workbench.importers.onnx_import import import_onnx, write_import
    from workbench.project import load_project, save_project

    tmp = Path(tempfile.mkdtemp(prefix="bench_scale_"))
    rows: list[Row] = []
    sizes = (1_000, 10_000, 100_000)
    files, counts = {}, {}
    for n in sizes:
        graph = residual_chain(n)
        counts[n] = len(graph)
        files[n] = save_project(Project(graph, f"residual {n}"), tmp / f"residual{n}.json")
    del graph
    labels = {"load": "load (read, validate, build the graph)", "check": "check (check_report on the loaded project)",
              "save": "save (JSON, atomic write)"}

    def project_step(n: int) -> dict[str, float]:
        # Only this size's project is alive while it is timed, as in a `workbench` process.
        t_load, project = _timed(lambda: load_project(files[n]))
        t_check, _ = _timed(lambda: check_report(project))
        t_save, _ = _timed(lambda: save_project(project, tmp / f"saved{n}.json"))
        return {"load": t_load, "check": t_check, "save": t_save}

    medians, runs = side_by_side(sizes, 3, project_step)
    for what in ("check", "save", "load"):
        for n in sizes:
            target = 2.0 if what == "check" and n == 10_000 else None
            rows.append(Row(ISSUE, f"{labels[what]}, {counts[n]:,} nodes", medians[what][n], "s", target))
        rows.append(Row(ISSUE, f"{labels[what]}: time 10k / 1k nodes", growth(runs, what, 10_000, 1_000), "x", 12.0,
                        note="linear = 10"))
        rows.append(Row(ISSUE, f"{labels[what]}: time 100k / 10k nodes", growth(runs, what, 100_000, 10_000), "x",
                        note="linear = 10; see the note on memory in bench_scale.py"))

    onnx_sizes = (1_000, 10_000, 30_000)
    models, ops = {}, {}
    for n in onnx_sizes:
        models[n] = tmp / f"residual{n}.onnx"
        ops[n] = residual_onnx(n, models[n])

    def import_step(n: int) -> dict[str, float]:
        t, _ = _timed(lambda: write_import(import_onnx(models[n]), tmp / f"imported{n}.json"))
        return {"import": t}

    medians, runs = side_by_side(onnx_sizes, 3, import_step)
    for n in onnx_sizes:
        rows.append(Row(ISSUE, f"ONNX import (import_onnx + write_import), {ops[n]:,} operators", medians["import"][n],
                        "s", 10.0 if n == 10_000 else None))
    rows.append(Row(ISSUE, "ONNX import: time 10k / 1k operators", growth(runs, "import", 10_000, 1_000), "x", 12.0,
                    note="linear = 10"))
    rows.append(Row(ISSUE, "ONNX import: time 30k / 10k operators", growth(runs, "import", 30_000, 10_000), "x",
                    note="linear = 3; 100k left out (about a minute a run)"))
    return rows
