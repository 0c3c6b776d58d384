"""Templates of known architectures: exact published parameter counts, and the formulas
agree with torch (modules built on the meta device, so no memory is spent)."""

from __future__ import annotations

import pytest
import torch

from workbench.compiler import compile_graph
from workbench.shapes import infer
from workbench.templates import TEMPLATES

PUBLISHED = {
    "LeNet-5": 61_706,
    "AlexNet": 61_100_840,
    "VGG-16": 138_357_544,
    "ResNet-18": 11_689_512,
    "ResNet-50": 25_557_032,
    "BERT-base": 109_482_240,
}


@pytest.mark.parametrize("name", sorted(TEMPLATES))
def test_template_parameter_count_is_the_published_figure(name: str) -> None:
    project = TEMPLATES[name]()
    si = infer(project.graph)
    assert si.errors() == []
    assert si.total_params() == PUBLISHED[name]
    with torch.device("meta"):
        module = compile_graph(project.graph).module
    assert sum(p.numel() for p in module.parameters()) == PUBLISHED[name]


def test_lenet_runs_and_shapes_match() -> None:
    compiled = compile_graph(TEMPLATES["LeNet-5"]().graph)
    assert compiled.module(torch.randn(2, 1, 32, 32)).shape == (2, 10)
