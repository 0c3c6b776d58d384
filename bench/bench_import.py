"""Issue 11 benchmark: importing a ~500-node ONNX model, with and without the self-check.

The model is a residual CNN written with ``onnx.helper`` (Conv / BatchNormalization / Relu / Add
blocks, global pooling, a Gemm head), as converted models look.  "Import" is ``import_onnx`` (read,
analyse, map, compile to name the weights, lay out); "import + check" adds ``check_import`` (load
the weights into the module the import compiled, run it and the original under onnxruntime at two
batch sizes, compare).  Target: the check costs at most as much as the import itself (the two
together <= 2x the import).  Medians of interleaved runs.
"""

from __future__ import annotations

import gc
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np

from bench.common import Row

ISSUE = "11"
CHANNELS, SIDE = 16, 16


def residual_model(path: Path, nodes: int = 500) -> int:
    """Write the model (about ``nodes`` operators); returns its operator count."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(0)
    ops, inits = [], []

    def const(name: str, value: np.ndarray) -> str:
        inits.append(numpy_helper.from_array(value.astype(np.float32), name))
        return name

    x = "image"
    ops.append(helper.make_node("Conv", [x, const("stem.weight", rng.standard_normal((CHANNELS, 3, 3, 3)) * 0.3)],
                                ["stem"], name="/stem/Conv", pads=[1, 1, 1, 1]))
    x, k = "stem", 0
    while len(ops) + 6 <= nodes:
        w = const(f"conv{k}.weight", rng.standard_normal((CHANNELS, CHANNELS, 3, 3)) * (0.3 / CHANNELS))
        stats = [const(f"bn{k}.{s}", v) for s, v in (
            ("weight", rng.uniform(0.5, 1.5, CHANNELS)), ("bias", rng.standard_normal(CHANNELS) * 0.1),
            ("running_mean", rng.standard_normal(CHANNELS) * 0.1), ("running_var", rng.uniform(0.5, 2, CHANNELS)))]
        ops += [
            helper.make_node("Conv", [x, w], [f"c{k}"], name=f"/block{k}/conv/Conv", pads=[1, 1, 1, 1]),
            helper.make_node("BatchNormalization", [f"c{k}", *stats], [f"b{k}"], name=f"/block{k}/bn/BatchNorm"),
            helper.make_node("Relu", [f"b{k}"], [f"r{k}"], name=f"/block{k}/Relu"),
            helper.make_node("Add", [f"r{k}", x], [f"a{k}"], name=f"/block{k}/Add"),
        ]
        x, k = f"a{k}", k + 1
    ops += [helper.make_node("GlobalAveragePool", [x], ["pooled"], name="/pool/GlobalAveragePool"),
            helper.make_node("Flatten", ["pooled"], ["flat"], name="/flatten/Flatten"),
            helper.make_node("Gemm", ["flat", const("fc.weight", rng.standard_normal((10, CHANNELS)) * 0.3),
                                      const("fc.bias", rng.standard_normal(10) * 0.1)], ["logits"], transB=1,
                             name="/fc/Gemm")]
    graph = helper.make_graph(ops, "residual",
                              [helper.make_tensor_value_info("image", TensorProto.FLOAT, ["N", 3, SIDE, SIDE])],
                              [helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["N", 10])], inits)
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), str(path))
    return len(ops)


def run() -> list[Row]:
    from workbench.importers.onnx_import import import_onnx
    from workbench.importers.selfcheck import check_import

    path = Path(tempfile.mkdtemp(prefix="bench_import_")) / "residual.onnx"
    n = residual_model(path)

    def plain() -> float:
        gc.collect()
        t = time.perf_counter()
        import_onnx(path)
        return time.perf_counter() - t

    def checked() -> float:
        gc.collect()
        t = time.perf_counter()
        report = check_import(import_onnx(path))
        elapsed = time.perf_counter() - t
        assert report.ok, report.text()
        return elapsed

    plain(), checked()  # warm-up: imports, onnxruntime's first session
    times: dict[str, list[float]] = {"plain": [], "checked": []}
    for r in range(5):  # interleaved, the order alternating: a busy moment falls on both
        for what, fn in ((("plain", plain), ("checked", checked)) if r % 2 == 0 else
                         (("checked", checked), ("plain", plain))):
            times[what].append(fn())
    ratios = [c / p for c, p in zip(times["checked"], times["plain"], strict=True)]
    layers = len(import_onnx(path).project.graph)
    report = check_import(import_onnx(path))
    plain_s, checked_s = statistics.median(times["plain"]), statistics.median(times["checked"])
    return [
        Row(ISSUE, f"import a {n}-node ONNX model ({layers} layers), no self-check", plain_s, "s"),
        Row(ISSUE, f"import a {n}-node ONNX model with the self-check ({report.reference}, "
                   f"{len(report.probes)} batch sizes)", checked_s, "s"),
        Row(ISSUE, "import with / without the self-check", statistics.median(ratios), "x", 2.0,
            note=f"median of 5 interleaved runs; {plain_s:.2f} s vs {checked_s:.2f} s"),
    ]


if __name__ == "__main__":
    for row in run():
        print(row)
