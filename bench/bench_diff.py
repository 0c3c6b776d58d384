"""Issue 15: a diff of two 1,000-node graphs takes <= 1 s, and grows near-linearly.

Workloads, built here from the residual chain of ``bench_scale`` (Conv2d / BatchNorm2d / ReLU /
Add blocks, one Add skip each) as projects:

- *edited*: the second project is a copy with every tenth node renamed and 60 more edits
  (parameter changes, nodes inserted on wires, nodes removed and bypassed, inputs rewired);
  the row's note says whether the diff found every edit (it must: a fast wrong diff is no diff).
- *renamed*: every name differs, so matching rests on structure alone (the slow path).
- growth from 1k to 10k nodes (renamed), sizes side by side in each of 5 rounds as in ``bench_scale``.
- the command ``workbench diff a.json b.json`` end to end (a new process: Python, torch and the
  catalogue load first), for scale; no target.

``diff_projects`` is timed whole: matching, shape inference of both graphs, comparison.
"""

from __future__ import annotations

import random
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bench.bench_scale import _timed, growth, residual_chain, side_by_side
from bench.common import Row, median_time
from workbench.bulk import gc_paused
from workbench.diff import diff_projects
from workbench.graph import Node
from workbench.graph_match import Side, match
from workbench.project import Project, loads_project, save_project

ISSUE = "15"


def edited_pair(n: int, seed: int = 0) -> tuple[Project, Project, dict[str, set[str]]]:
    """A project of about ``n`` nodes and an edited copy; returns what was edited, by kind."""
    a = Project(residual_chain(n + 6), f"residual {n}")  # (the chain comes out a few nodes short of n)
    b = loads_project(a.to_json())
    g, rnd = b.graph, random.Random(seed)
    layers = [x.id for x in g if x.spec.role == "layer"]
    rnd.shuffle(layers)
    picks = iter(layers)
    done: dict[str, set[str]] = {k: set() for k in ("rename", "param", "add", "remove", "rewire")}
    for nid in layers[: len(g) // 10]:
        g.rename(nid, f"{g.nodes[nid].name}_v2")
        done["rename"].add(nid)
    busy = set(done["rename"])

    def free() -> str:
        for nid in picks:
            near = {nid} | {e.src for e in g.edges_into(nid)} | {e.dst for e in g.edges_from(nid)}
            if not near & busy:
                busy.update(near)
                return nid
        raise RuntimeError("graph too small for the edits")

    for _ in range(15):
        nid = free()
        if g.nodes[nid].type == "Conv2d":
            g.set_params(nid, {"kernel_size": [1, 1], "padding": [0, 0]})  # same shape, other layer
        else:
            key = {"BatchNorm2d": "eps", "Add": "broadcast"}.get(g.nodes[nid].type)
            if key is None:
                continue
            g.set_params(nid, {key: 1e-3 if key == "eps" else True})
        done["param"].add(nid)
    for k in range(15):
        e = g.edges_into(free())[0]
        g.disconnect(e)
        new = g.add_node("Dropout", {"p": 0.1}, f"inserted{k}", node_id=f"ins{k}")
        g.connect(e.src, e.src_port, new.id, "x")
        g.connect(new.id, "y", e.dst, e.dst_port)
        done["add"].add(new.id)
    for _ in range(15):
        nid = free()
        if g.nodes[nid].type not in ("ReLU", "BatchNorm2d"):
            continue
        (src,), outs = g.edges_into(nid), g.edges_from(nid)
        g.remove_node(nid)
        for e in outs:
            g.connect(src.src, src.src_port, e.dst, e.dst_port)
        done["remove"].add(nid)
    for _ in range(15):
        nid = free()
        if g.nodes[nid].type != "Add":
            continue
        e = g.edge_into(nid, "in2")
        assert e is not None
        g.disconnect(e)
        g.connect(g.edges_into(nid)[0].src, "y", nid, "in2")  # the skip now adds the branch to itself
        done["rewire"].add(nid)
    return a, b, done


def found_all(a: Project, b: Project, done: dict[str, set[str]]) -> bool:
    model = diff_projects(a, b).graphs[0]
    changes = {c.a.id: c for c in model.changes if c.a.id == c.b.id}
    return (all(nid in changes and changes[nid].renamed for nid in done["rename"])
            and all(nid in changes and changes[nid].params for nid in done["param"])
            and all(nid in changes and "in2" in changes[nid].wiring for nid in done["rewire"])
            and done["add"] == {x.id for x in model.added} and done["remove"] == {x.id for x in model.removed}
            and model.matches == [(x, x) for x in a.graph.nodes if x in b.graph.nodes])


def renamed_pair(n: int) -> tuple[Project, Project]:
    a = Project(residual_chain(n + 6), f"residual {n}")  # (the chain comes out a few nodes short of n)
    b = loads_project(a.to_json())
    for nid in list(b.graph.nodes):
        b.graph.rename(nid, f"z_{b.graph.nodes[nid].name}")
    return a, b


def _type(node: Node) -> str:
    return node.type


def run() -> list[Row]:
    rows: list[Row] = []
    a, b, done = edited_pair(1000)
    edits = sum(len(v) for v in done.values())
    ok = found_all(a, b, done)
    t = median_time(lambda: diff_projects(a, b), repeat=7, warmup=2)
    rows.append(Row(ISSUE, f"diff of two {len(a.graph):,}-node graphs, {edits} edits", t, "s", 1.0,
                    note=f"every edit found: {'yes' if ok else 'NO'}"))
    if not ok:
        rows[-1].value = float("inf")  # a wrong answer fails the row, however fast
    a, b = renamed_pair(1000)
    t = median_time(lambda: diff_projects(a, b), repeat=7, warmup=2)
    rows.append(Row(ISSUE, f"diff of two {len(a.graph):,}-node graphs, every name different (structure only)", t,
                    "s", 1.0))

    pairs = {n: renamed_pair(n) for n in (1_000, 10_000)}

    @gc_paused()  # as diff_graphs runs it
    def matching(pa: Project, pb: Project, reps: int) -> None:
        for _ in range(reps):
            match(Side(pa.graph, _type), Side(pb.graph, _type))

    def step(n: int) -> dict[str, float]:
        pa, pb = pairs[n]
        reps = max(1, 10_000 // n)  # the small size repeated: tens of milliseconds once are mostly noise here
        return {"diff": _timed(lambda: diff_projects(pa, pb))[0],
                "match": _timed(lambda: matching(pa, pb, reps))[0] / reps}

    medians, runs = side_by_side(tuple(pairs), 5, step)
    rows.append(Row(ISSUE, "matching alone, every name different: time 10k / 1k nodes",
                    growth(runs, "match", 10_000, 1_000), "x", 12.0, note="linear = 10"))
    rows.append(Row(ISSUE, "whole diff, every name different: time 10k / 1k nodes", growth(runs, "diff", 10_000, 1_000),
                    "x", note=f"linear = 10; {medians['diff'][10_000]:.2f} s at 10k (shape inference of both graphs "
                              "is part of it)"))

    tmp = Path(tempfile.mkdtemp(prefix="bench_diff_"))
    a, b, _ = edited_pair(1000)
    save_project(a, tmp / "a.json")
    save_project(b, tmp / "b.json")
    times = []
    for _ in range(3):
        t0 = time.perf_counter()
        r = subprocess.run([sys.executable, "-m", "workbench", "diff", str(tmp / "a.json"), str(tmp / "b.json")],
                           capture_output=True, text=True, timeout=300)
        times.append(time.perf_counter() - t0)
        assert r.returncode == 1, r.stderr
    rows.append(Row(ISSUE, "`workbench diff a.json b.json`, 1,000 nodes each, end to end", statistics.median(times),
                    "s", note="a new process: Python, torch and the catalogue load first"))
    return rows
