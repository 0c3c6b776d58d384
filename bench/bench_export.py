"""Issue 5 benchmarks: export time and verification error per sample; import of a ~500-node
model; onnxruntime vs eager PyTorch inference throughput per sample."""

from __future__ import annotations

import logging
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np
import torch
from torch import nn

from bench.common import Row, interleaved_ratio

ROOT = Path(__file__).resolve().parent.parent


def big_onnx(path: Path) -> int:
    """A conv net of ~500 ONNX nodes (Conv/BatchNorm/ReLU blocks with residual Adds)."""

    class Block(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.c1, self.b1 = nn.Conv2d(16, 16, 3, padding=1), nn.BatchNorm2d(16)
            self.c2, self.b2 = nn.Conv2d(16, 16, 3, padding=1), nn.BatchNorm2d(16)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return torch.relu(self.b2(self.c2(torch.relu(self.b1(self.c1(x))))) + x)

    model = nn.Sequential(nn.Conv2d(3, 16, 3, padding=1), *[Block() for _ in range(70)],
                          nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(16, 10)).eval()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        prog = torch.onnx.export(model, (torch.randn(2, 3, 16, 16),), dynamo=True, optimize=False, verbose=False,
                                 dynamic_shapes=({0: torch.export.Dim("batch")},))
    prog.save(str(path))
    import onnx

    return len(onnx.load(str(path)).graph.node)


def run() -> list[Row]:
    import onnxruntime as ort

    from workbench.compiler import compile_graph
    from workbench.export.onnx_export import export_onnx
    from workbench.importers.onnx_import import import_onnx
    from workbench.project import load_project

    logging.getLogger("torch.onnx").setLevel(logging.ERROR)
    tmp = Path(tempfile.mkdtemp())
    rows: list[Row] = []
    for sample in sorted((ROOT / "samples").glob("*.json")):
        project = load_project(sample)
        out = tmp / f"{sample.stem}.onnx"
        t = time.perf_counter()
        report = export_onnx(project, out)
        rows.append(Row("5", f"export + verify {sample.stem}", time.perf_counter() - t, "s",
                        note=f"{report.exporter}, opset {report.opset}, max abs diff {report.max_abs:.1e}"))
        compiled = compile_graph(project.graph)
        module = compiled.module.eval()
        (x,) = compiled.example_inputs(batch=64)
        session = ort.InferenceSession(str(out), providers=["CPUExecutionProvider"])
        feed = {session.get_inputs()[0].name: x.numpy()}

        def eager(module: torch.nn.Module = module, x: torch.Tensor = x) -> None:
            with torch.no_grad():
                module(x)

        def onnxrt(session: ort.InferenceSession = session, feed: dict = feed) -> None:
            session.run(None, feed)

        t_ort, t_torch, ratio = interleaved_ratio(onnxrt, eager, rounds=11, inner=5)
        rows.append(Row("5", f"inference throughput {sample.stem} (batch 64), onnxruntime / eager PyTorch",
                        1 / ratio, "x", note=f"{t_ort * 1e3:.2f} ms vs {t_torch * 1e3:.2f} ms per batch"))
    path = tmp / "big.onnx"
    n = big_onnx(path)
    times = []
    for _ in range(3):
        t = time.perf_counter()
        result = import_onnx(path)
        times.append(time.perf_counter() - t)
    rows.append(Row("5", f"import a {n}-node ONNX model ({len(result.project.graph)} layers)",
                    float(np.median(times)), "s", 5.0))
    return rows
