"""Issue 13, item 1: the cost per node.

- the cost table (MACs, FLOPs, parameters, activation memory, with the blocks' insides) of
  ResNet-50 at 224x224, and of a 1,000-node residual chain (``bench_scale``): the Summary and the
  cost bars recompute it after every edit, so it must stay well under a frame budget;
- growth of the table from 1k to 10k nodes (near-linear);
- the latency profile of the digits CNN on the CPU (3 warm-up passes, 20 timed passes node by
  node, 20 whole forwards): the time of the whole run, the forward's median, and how much the
  per-node timing adds (the sum of the node medians over the forward's median);
- the figures themselves, for the record: ResNet-50's and VGG-16's MACs (published: 4.1 G, 15.5 G).
"""

from __future__ import annotations

import statistics
import time

from bench.bench_scale import residual_chain
from bench.common import Row, median_time
from workbench.analysis.cost import cost_table
from workbench.analysis.profile import profile_graph
from workbench.samples import digits_cnn
from workbench.shapes import infer
from workbench.templates import resnet50, vgg16

ISSUE = "13"


def _table_time(graph: object, repeat: int = 15) -> float:
    si = infer(graph)  # type: ignore[arg-type]  # the GUI's inference is live: only the table is timed
    return median_time(lambda: cost_table(graph, si, batch=1), repeat=repeat)  # type: ignore[arg-type]


def run() -> list[Row]:
    rows: list[Row] = []
    resnet = resnet50().graph
    rows.append(Row(ISSUE, "cost table of ResNet-50 (16 blocks looked into)", _table_time(resnet) * 1e3, "ms", 50.0))
    chain1k, chain10k = residual_chain(1000), residual_chain(10_000)
    t1k = _table_time(chain1k)
    rows.append(Row(ISSUE, "cost table of a 1,000-node graph", t1k * 1e3, "ms", 50.0))
    ratios = []
    for _ in range(3):
        ratios.append(_table_time(chain10k, 3) / _table_time(chain1k, 3))
    rows.append(Row(ISSUE, "cost table growth 1k -> 10k nodes", statistics.median(ratios), "x", 13.0,
                    note="10x the nodes; linear is 10"))
    graph = digits_cnn().graph
    start = time.perf_counter()
    prof = profile_graph(graph, batch=1, warmup=3, iterations=20)
    total = time.perf_counter() - start
    rows.append(Row(ISSUE, "latency profile of the digits CNN (compile, 3 + 20 passes per node, 20 forwards)",
                    total, "s", 5.0, note=f"{len(prof.node_ms)} nodes timed, {prof.threads} threads"))
    rows.append(Row(ISSUE, "digits CNN forward, batch 1 (median of 20)", prof.forward_ms, "ms",
                    note=f"slowest node {max(prof.node_ms.values()):.3f} ms"))
    rows.append(Row(ISSUE, "per-node timing overhead: sum of node medians / forward", prof.total_ms / prof.forward_ms,
                    "x", note="the interpreter's cost per generated operation"))
    rows.append(Row(ISSUE, "ResNet-50 MACs at 224x224 (published 4.1 G)", cost_table(resnet).macs / 1e9, "G"))
    rows.append(Row(ISSUE, "VGG-16 MACs at 224x224 (published 15.5 G)", cost_table(vgg16().graph).macs / 1e9, "G"))
    return rows
