"""Latency per node, measured on a device: the profile run.

The model is compiled as for training, moved to the chosen device (``workbench.training.devices``
decides which: the one place that does) and run in evaluation mode without gradients on a random
batch.  Each forward pass goes through a ``torch.fx`` interpreter that times every generated
operation and adds it to the node whose code it is (a block instance: its whole call); after
``warmup`` untimed passes, ``iterations`` timed ones give each node its median.  The whole
forward, called normally, is timed as often: the interpreter's own overhead (a few microseconds
per operation) is the difference between the two totals.

Progress is reported after every pass and the run stops at the next pass when asked; the GUI
runs it as a job in a spawned process (``profile_job``), the CLI in-process (``check --profile``).
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any

from ..bulk import gc_paused
from ..errors import WorkbenchError
from ..graph import Graph

#: progress(done, total): called after each pass
Progress = Callable[[int, int], None]


class ProfileCancelled(WorkbenchError):
    """The profile run was stopped before it finished (nothing is reported)."""


@dataclass
class Profile:
    """Median latencies of one profile run.

    Attributes:
        node_ms: node id -> median milliseconds per forward pass.
        forward_ms: median milliseconds of the whole forward, called normally.
        device, threads: where it ran (CPU threads torch used).
    """

    device: str
    batch: int
    symbol_size: int
    warmup: int
    iterations: int
    node_ms: dict[str, float] = field(default_factory=dict)
    forward_ms: float = 0.0
    threads: int = 1

    @property
    def total_ms(self) -> float:
        """The sum of the nodes' medians."""
        return sum(self.node_ms.values())

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Profile:
        return cls(**data)


def _synchronize(device: Any) -> None:
    if device.type != "cpu":  # kernels run asynchronously: wait before reading the clock
        import torch

        torch.accelerator.synchronize(device)


def profile_graph(graph: Graph, batch: int = 1, symbol_size: int = 1, device: str = "cpu", warmup: int = 3,
                  iterations: int = 20, progress: Progress | None = None,
                  should_stop: Callable[[], bool] | None = None) -> Profile:
    """Compile ``graph`` and measure each node's median latency on ``device``.

    Args:
        batch: the batch size ``N`` of the random inputs; ``symbol_size`` every other symbol's.
        device: ``auto``, ``cpu``, ``cuda[:N]`` or ``mps``, resolved by the training's device choice.
        warmup: untimed passes first (caches, allocator, lazy initialisation).
        iterations: timed passes; each node reports its median over them.
        progress: called with (passes done, passes in all) after every pass.
        should_stop: polled between passes; True ends the run with :class:`ProfileCancelled`.

    Raises:
        CompileError: the graph does not compile (located errors).
        DeviceError: the device does not exist or cannot be used.
        ProfileCancelled: ``should_stop`` said so.
        WorkbenchError: ``batch``, ``warmup`` or ``iterations`` out of range.
    """
    import torch
    import torch.fx as fx

    from ..compiler import compile_graph
    from ..training.devices import resolve_device

    if batch < 1 or symbol_size < 1 or warmup < 0 or iterations < 1:
        raise WorkbenchError(f"a profile needs batch >= 1, sizes >= 1, warmup >= 0 and iterations >= 1 (got batch "
                             f"{batch}, symbol size {symbol_size}, warmup {warmup}, iterations {iterations})")
    dev = resolve_device(device)
    compiled = compile_graph(graph)
    module = compiled.module.to(dev).eval()
    inputs = tuple(t.to(dev) for t in compiled.example_inputs(batch=batch, seq=symbol_size))
    by_name = {n.name: n.id for n in graph}
    owner = {n: by_name[w] for n, w in compiled.owner.items() if w in by_name}
    owner.update({spec.arg: by_name[spec.node] for spec in compiled.inputs})
    samples: dict[str, list[float]] = {nid: [] for nid in set(owner.values())}
    current: dict[str, float] = {}

    class Timed(fx.Interpreter):
        def run_node(self, n: fx.Node) -> Any:
            _synchronize(dev)
            start = time.perf_counter()
            out = super().run_node(n)
            _synchronize(dev)
            nid = owner.get(n.name)
            if nid is not None:
                current[nid] = current.get(nid, 0.0) + time.perf_counter() - start
            return out

    interpreter = Timed(module)
    total = warmup + 2 * iterations
    done = 0

    def step() -> None:
        nonlocal done
        done += 1
        if progress is not None:
            progress(done, total)
        if should_stop is not None and done < total and should_stop():
            raise ProfileCancelled("the profile run was stopped")

    forward: list[float] = []
    # no cyclic collection inside a timed pass (a full one walks every live object: milliseconds),
    # as timeit does; reference counting still frees each pass's tensors
    with torch.no_grad(), gc_paused():
        for i in range(warmup + iterations):
            current.clear()
            interpreter.run(*inputs)
            if i >= warmup:
                for nid in samples:
                    samples[nid].append(current.get(nid, 0.0))
            step()
        for _ in range(iterations):
            _synchronize(dev)
            start = time.perf_counter()
            module(*inputs)
            _synchronize(dev)
            forward.append(time.perf_counter() - start)
            step()
    return Profile(str(dev), batch, symbol_size, warmup, iterations,
                   {nid: statistics.median(v) * 1e3 for nid, v in samples.items()},
                   statistics.median(forward) * 1e3, torch.get_num_threads())


def profile_job(project_json: str, role: str, batch: int, symbol_size: int, device: str, warmup: int = 3,
                iterations: int = 20, progress: Progress | None = None) -> dict[str, Any]:
    """:func:`profile_graph` on one graph of a project given as JSON (``main``, ``discriminator``
    or ``block:<id>``), for ``workbench.jobs.Job``: plain data in and out."""
    from ..project import loads_project

    project = loads_project(project_json)
    if role == "main":
        graph = project.graph
    elif role.startswith("block:"):
        graph = project.blocks.defs[role[len("block:"):]].graph
    else:
        graph = project.graphs[role]
    device = device or str(project.training.get("device", "auto"))
    return profile_graph(graph, batch, symbol_size, device, warmup, iterations, progress).to_dict()
