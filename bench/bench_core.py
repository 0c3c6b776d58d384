"""Issue 2 benchmarks: compiled vs hand-written training step; shape inference speed."""

from __future__ import annotations

import time

import torch
from torch import nn

from bench.common import Row, interleaved_ratio, median_time
from workbench.builder import GraphBuilder
from workbench.compiler import compile_graph
from workbench.graph import Graph
from workbench.shapes import ShapeInference


def _cnn_pair() -> tuple[nn.Module, nn.Module, torch.Tensor]:
    b = GraphBuilder()
    x = b.input((1, 28, 28), name="x")
    x = b.layer("Conv2d", x, out_channels=32, padding=[1, 1], name="c1")
    x = b.layer("ReLU", x, name="r1")
    x = b.layer("MaxPool2d", x, name="p1")
    x = b.layer("Conv2d", x, out_channels=64, padding=[1, 1], name="c2")
    x = b.layer("ReLU", x, name="r2")
    x = b.layer("MaxPool2d", x, name="p2")
    x = b.layer("Flatten", x, name="f")
    b.output(b.layer("Linear", x, out_features=10, name="fc"))

    class Hand(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.c1, self.r1, self.p1 = nn.Conv2d(1, 32, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2, 2)
            self.c2, self.r2, self.p2 = nn.Conv2d(32, 64, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2, 2)
            self.fc = nn.Linear(64 * 7 * 7, 10)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            x = self.p1(self.r1(self.c1(x)))
            x = self.p2(self.r2(self.c2(x)))
            return self.fc(x.flatten(1))

    return compile_graph(b.graph).module, Hand(), torch.randn(64, 1, 28, 28)


def _lstm_pair() -> tuple[nn.Module, nn.Module, torch.Tensor]:
    b = GraphBuilder()
    x = b.input((28, 28), name="x")
    r = b.layer("LSTM", x, hidden_size=128, name="lstm")
    b.output(b.layer("Linear", b.port(r, "h"), out_features=10, name="fc"))

    class Hand(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.lstm, self.fc = nn.LSTM(28, 128, batch_first=True), nn.Linear(128, 10)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            _, (h, _) = self.lstm(x)
            return self.fc(h[-1])

    return compile_graph(b.graph).module, Hand(), torch.randn(64, 28, 28)


def _train_step(model: nn.Module, x: torch.Tensor, y: torch.Tensor):
    opt = torch.optim.SGD(model.parameters(), lr=0.01)
    loss_fn = nn.CrossEntropyLoss()

    def step() -> None:
        opt.zero_grad(set_to_none=True)
        loss_fn(model(x), y).backward()
        opt.step()

    return step


def big_graph(n_blocks: int = 250) -> tuple[Graph, list[str]]:
    """~1,000 nodes: conv-BN-ReLU blocks with a residual Add (4 nodes per block)."""
    b = GraphBuilder()
    x = b.input((16, 32, 32))
    convs = []
    for i in range(n_blocks):
        h = b.layer("Conv2d", x, out_channels=16, padding=[1, 1], name=f"conv{i}")
        convs.append(h.node)
        h = b.layer("BatchNorm2d", h, name=f"bn{i}")
        h = b.layer("ReLU", h, name=f"relu{i}")
        x = b.layer("Add", h, x, name=f"add{i}")
    b.output(x)
    return b.graph, convs


def run() -> list[Row]:
    torch.manual_seed(0)
    torch.set_num_threads(max(1, torch.get_num_threads()))
    rows: list[Row] = []
    for name, make in (("CNN", _cnn_pair), ("LSTM", _lstm_pair)):
        compiled, hand, x = make()
        hand.load_state_dict(compiled.state_dict())
        y = torch.randint(0, 10, (x.shape[0],))
        tc, th, ratio = interleaved_ratio(_train_step(compiled, x, y), _train_step(hand, x, y), rounds=21, inner=3)
        # A/A: the hand-written module against itself says how much of the ratio is this machine's noise
        _, _, floor = interleaved_ratio(_train_step(hand, x, y), _train_step(hand, x, y), rounds=21, inner=3)
        rows.append(Row("2", f"{name} train step (batch 64), compiled / hand-written", ratio, "x", 1.02,
                        note=f"{tc * 1e3:.1f} ms vs {th * 1e3:.1f} ms; hand-written against itself {floor:.3f} x"))

    g, convs = big_graph()
    n_nodes, n_edges = len(g), len(g.edges)

    def full() -> None:
        si = ShapeInference(g, live=False)
        si.update()

    t_full = median_time(full, repeat=9, warmup=2)
    rows.append(Row("2", f"full shape inference, {n_nodes} nodes / {n_edges} edges", t_full * 1e3, "ms", 50.0))

    si = ShapeInference(g)
    si.update()
    middle = convs[len(convs) // 2]
    # (a) an edit that keeps the output shape: the early cut-off stops at the node;
    # (b) an edit that changes the shape: everything downstream is re-inferred.
    for label, edits in (
        ("kernel 3x3/pad 1 <-> 1x1/pad 0 (shape kept)",
         lambda i: {"kernel_size": [3, 3] if i % 2 else [1, 1], "padding": [1, 1] if i % 2 else [0, 0]}),
        ("out_channels 16 <-> 8 (shape changes downstream)", lambda i: {"out_channels": 16 if i % 2 else 8}),
    ):
        times, sizes = [], []
        for i in range(16):
            g.set_params(middle, edits(i))
            t = time.perf_counter()
            updated = si.update()
            times.append(time.perf_counter() - t)
            sizes.append(len(updated))
        times.sort()
        rows.append(Row("2", f"incremental re-inference, one edit mid-graph: {label}",
                        times[len(times) // 2] * 1e3, "ms", 10.0, note=f"{max(sizes)} nodes re-inferred"))
    si.close()
    return rows
