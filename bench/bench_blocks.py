"""Issue 6 benchmarks for reusable blocks: nesting costs nothing at run time, and
blocks keep shape inference and editing interactive.

- what one block call costs (40 tiny blocks, nested vs ungrouped, forward);
- train step of a ResNet built from block instances / the same network flat
  (ungrouped), interleaved, same weights, with the same net against itself as
  the noise floor: target <= 1.02 (each block is a generated ``GraphModule``,
  one extra Python call per block);
- full shape inference of ResNet-50 made of blocks (16 bottleneck instances);
- re-inference after an edit inside a block definition that all its instances use;
- group 100 nodes of a 1,000-node graph into a block, and undo it.
"""

from __future__ import annotations

import time

import torch
from torch import nn

from bench.bench_core import _train_step as _step
from bench.bench_core import big_graph
from bench.common import Row, interleaved_ratio, median_time
from workbench.builder import GraphBuilder
from workbench.compiler import compile_graph
from workbench.graph import Graph
from workbench.grouping import Grouping, ungroup
from workbench.project import Project
from workbench.ready_blocks import add_ready
from workbench.shapes import ShapeInference
from workbench.templates import resnet50


def _resnet_with_blocks() -> Project:
    """A CIFAR-sized ResNet: 3 stages x 2 basic blocks, as block instances."""
    project = Project()
    add_ready(project.blocks, ["ConvBNReLU", "ResBlock", "ResBlockDown"])
    b = GraphBuilder(project.graph)
    x = b.input((3, 32, 32), name="image")
    x = b.layer("ConvBNReLU", x, channels=32, name="stem")
    for stage, width in enumerate((32, 64, 128), start=1):
        for i in range(2):
            if i == 0 and stage > 1:
                x = b.layer("ResBlockDown", x, channels=width, stride=[2, 2], name=f"s{stage}b{i}")
            else:
                x = b.layer("ResBlock", x, channels=width, name=f"s{stage}b{i}")
    x = b.layer("Flatten", b.layer("AdaptiveAvgPool2d", x, name="gap"), name="flat")
    b.output(b.layer("Linear", x, out_features=10, name="fc"))
    return project


def _ungrouped(project: Project) -> Graph:
    """A copy of the model with every block instance replaced by its layers."""
    flat = project.graph.copy()
    for node in [n for n in flat if n.is_block]:
        ungroup(flat, node.id)
    return flat


def _chain(blocks: int) -> tuple[nn.Module, nn.Module, torch.Tensor]:
    """A chain of tiny conv-BN-ReLU blocks, nested and ungrouped: compute is negligible, so
    the time difference is what calling a block costs."""
    project = Project()
    add_ready(project.blocks, ["ConvBNReLU"])
    b = GraphBuilder(project.graph)
    x = b.input((2, 4, 4))
    for i in range(blocks):
        x = b.layer("ConvBNReLU", x, channels=2, name=f"u{i}")
    b.output(x)
    nested = compile_graph(project.graph).module.eval()
    flat = compile_graph(_ungrouped(project)).module.eval()
    return nested, flat, torch.randn(1, 2, 4, 4)


def run() -> list[Row]:
    torch.manual_seed(0)
    rows: list[Row] = []
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # one thread: less noise from the other core
    try:
        nested, flat, x = _chain(40)
        with torch.no_grad():
            tn, tf, _ = interleaved_ratio(lambda: nested(x), lambda: flat(x), rounds=31, inner=50)
        per_call = (tn - tf) / 40
        rows.append(Row("6", "cost of one block call (forward, 40 tiny blocks nested vs ungrouped)", per_call * 1e6,
                        "us", note=f"{tn * 1e3:.2f} ms vs {tf * 1e3:.2f} ms per forward"))

        project = _resnet_with_blocks()
        nested = compile_graph(project.graph).module
        flat = compile_graph(_ungrouped(project)).module
        # the same weights: ungrouping puts the layers where the block was, so the state lines up in order
        flat.load_state_dict(dict(zip(flat.state_dict(), nested.state_dict().values(), strict=True)))
        x, y = torch.randn(32, 3, 32, 32), torch.randint(0, 10, (32,))
        step_nested, step_flat, step_flat2 = _step(nested, x, y), _step(flat, x, y), _step(flat, x, y)
        tn, tf, ratio = interleaved_ratio(step_nested, step_flat, rounds=31, inner=3)
        _, _, floor = interleaved_ratio(step_flat, step_flat2, rounds=31, inner=3)  # A/A: the noise floor
        rows.append(Row("6", "ResNet train step (batch 32, 32x32), 7 block instances / the same net ungrouped", ratio,
                        "x", 1.02, note=f"{tn * 1e3:.1f} ms vs {tf * 1e3:.1f} ms; the same net against itself "
                        f"{floor:.3f} x (noise floor); 7 calls x {per_call * 1e6:.1f} us = "
                        f"{7 * per_call / tf * 100:.3f} % of a step"))
    finally:
        torch.set_num_threads(threads)

    r50 = resnet50()
    n_instances = sum(1 for n in r50.graph if n.is_block)
    n_inner = sum(len(r50.blocks.defs[n.type].graph) for n in r50.graph if n.is_block)

    def full() -> None:
        for block in r50.blocks:
            block.invalidate()  # nothing cached from the previous round
        si = ShapeInference(r50.graph, live=False)
        si.update()

    rows.append(Row("6", f"full shape inference, ResNet-50 of blocks ({len(r50.graph)} nodes, {n_instances} "
                    f"instances of {n_inner} inner nodes)", median_time(full, repeat=9) * 1e3, "ms", 50.0))

    si = ShapeInference(r50.graph)
    si.update()
    inner = r50.blocks.defs["Bottleneck"].graph
    bn = inner.by_name("bn1").id
    times = []
    for i in range(10):
        inner.set_params(bn, {"eps": 1e-5 if i % 2 else 2e-5})
        t = time.perf_counter()
        updated = si.update()
        times.append(time.perf_counter() - t)
    times.sort()
    uses = len(r50.blocks.uses("Bottleneck"))
    rows.append(Row("6", f"re-inference after an edit inside a block with {uses} uses (ResNet-50)",
                    times[len(times) // 2] * 1e3, "ms", 10.0, note=f"{len(updated)} nodes re-inferred"))
    si.close()

    g, convs = big_graph()
    project = Project(g)
    start = g.topological_order().index(convs[100])
    chosen = g.topological_order()[start:start + 100]
    t_group, t_undo = [], []
    for _ in range(5):
        t = time.perf_counter()
        change = Grouping(project.graph, chosen, "Stage")
        change.apply()
        t_group.append(time.perf_counter() - t)
        t = time.perf_counter()
        change.revert()
        t_undo.append(time.perf_counter() - t)
    t_group.sort()
    t_undo.sort()
    rows.append(Row("6", f"group 100 of {len(g)} nodes into a block (plan + apply)", t_group[2] * 1e3, "ms", 100.0,
                    note=f"undo {t_undo[2] * 1e3:.1f} ms"))
    return rows
