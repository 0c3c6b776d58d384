"""Export conformance over the whole catalogue, generated from the declarations (a new layer is
covered by its examples): the standalone PyTorch source computes what the compiled module computes,
and the ONNX export (the product's path: torch.export, TorchScript as fallback) verifies against
onnxruntime."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from workbench.compiler import compile_graph
from workbench.export.onnx_export import export_onnx
from workbench.export.python_source import module_source
from workbench.layers import REGISTRY
from workbench.project import Project

from .test_layer_conformance import CASES, LAYERS, single_layer_graph


def _inputs(example) -> list[torch.Tensor]:
    torch.manual_seed(0)
    return [torch.randint(0, 3, s) if example.int_input else torch.randn(s) for s in example.inputs]


def _outputs(module: torch.nn.Module, xs: list[torch.Tensor]) -> tuple[torch.Tensor, ...]:
    module.eval()
    with torch.no_grad():
        out = module(*xs)
    return out if isinstance(out, tuple) else (out,)


@pytest.mark.parametrize(("spec", "index", "example"), CASES, ids=[f"{s.id}-{i}" for s, i, _ in CASES])
def test_python_source_computes_what_the_module_computes(spec, index, example) -> None:
    g, _ = single_layer_graph(spec, example)
    compiled = compile_graph(g)
    namespace: dict = {}
    exec(compile(module_source(compiled, "M", spec.id, "w.safetensors"), f"<{spec.id}>", "exec"), namespace)
    model = namespace["M"]()
    model.load_state_dict(compiled.module.state_dict())
    xs = _inputs(example)
    for a, b in zip(_outputs(model, xs), _outputs(compiled.module, xs), strict=True):
        torch.testing.assert_close(a, b, equal_nan=True)  # sqrt, log, power of random negatives: NaN in both


FIRST = [(s, s.examples[0]) for s in LAYERS]


@pytest.mark.parametrize(("spec", "example"), FIRST, ids=[s.id for s, _ in FIRST])
def test_onnx_export_verifies_against_onnxruntime(spec, example, tmp_path: Path) -> None:
    g, _ = single_layer_graph(spec, example)
    report = export_onnx(Project(g, spec.id), tmp_path / "m.onnx")  # raises ExportError when it does not verify
    assert report.checks and report.max_abs <= 1e-3


def test_catalogue_has_the_breadth_of_the_desktop_peers() -> None:
    layers = [s for s in REGISTRY.values() if s.role == "layer"]
    assert len(layers) >= 90, f"{len(layers)} layer types"
