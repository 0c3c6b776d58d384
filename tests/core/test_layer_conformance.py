"""Conformance over the whole catalogue: generated from the declarations, so a new
layer is covered automatically.  For every example setting: the inferred output
shapes equal what torch produces, and the inferred parameter count equals torch's."""

from __future__ import annotations

import pytest
import torch

from workbench.compiler import compile_graph
from workbench.graph import Graph
from workbench.layers import REGISTRY, LayerSpec
from workbench.layers.spec import Example
from workbench.shapes import infer

LAYERS = [s for s in REGISTRY.values() if s.role == "layer"]
CASES = [(s, i, ex) for s in LAYERS for i, ex in enumerate(s.examples)]


def single_layer_graph(spec: LayerSpec, ex: Example) -> tuple[Graph, str]:
    g = Graph()
    node = g.add_node(spec.id, dict(ex.params), name="layer")
    # a layer without inputs (a Parameter) still sits in a model, which needs an Input: it gets an unused one
    ports = node.input_ports or (None,) * len(ex.inputs)
    for port, shape in zip(ports, ex.inputs, strict=True):
        src = g.add_node("Input", {"shape": list(shape[1:]), "dtype": "int64" if ex.int_input else "float32"})
        if port is not None:
            g.connect(src.id, "y", node.id, port)
    for port in node.output_ports:
        out = g.add_node("Output", name=f"out_{port}")
        g.connect(node.id, port, out.id, "x")
    return g, node.id


def concrete(shape: tuple, batch: int) -> tuple:
    return tuple(batch if d == "N" else d for d in shape)


@pytest.mark.parametrize("spec", LAYERS, ids=lambda s: s.id)
def test_every_layer_is_declared_completely(spec: LayerSpec) -> None:
    assert spec.examples, f"{spec.id} has no conformance examples"
    assert spec.doc.strip() and spec.name.strip() and spec.category.strip()
    names = [p.name for p in spec.params]
    assert len(names) == len(set(names))
    for key in spec.key_params:
        assert key in names, f"{spec.id}: key param {key} is not declared"
    for p in spec.params:
        assert p.validate(p.default) is not None
    if spec.build is None:
        assert spec.emit is not None, f"{spec.id} neither builds a module nor emits code"


@pytest.mark.parametrize(("spec", "index", "example"), CASES, ids=[f"{s.id}-{i}" for s, i, _ in CASES])
def test_inferred_shapes_and_counts_match_torch(spec: LayerSpec, index: int, example: Example) -> None:
    g, nid = single_layer_graph(spec, example)
    si = infer(g)
    info = si.info(nid)
    assert info.status == "ok", info.error
    compiled = compile_graph(g)
    torch.manual_seed(0)
    batch = example.inputs[0][0]
    xs = []
    for shape in example.inputs:
        xs.append(torch.randint(0, 3, shape) if example.int_input else torch.randn(shape))
    compiled.module.eval()
    with torch.no_grad():
        out = compiled.module(*xs)
    outs = out if isinstance(out, tuple) else (out,)
    expected = [concrete(info.outputs[p], batch) for p in g.nodes[nid].output_ports]
    assert [tuple(o.shape) for o in outs] == expected
    torch_count = sum(p.numel() for p in compiled.module.parameters())
    assert info.params == torch_count
    assert compiled.total_params == torch_count


SEQUENCE_LAYERS = [s for s in LAYERS if s.category in ("Recurrent", "Attention")]


@pytest.mark.parametrize("spec", SEQUENCE_LAYERS, ids=lambda s: s.id)
def test_sequence_layers_keep_a_symbolic_length(spec: LayerSpec) -> None:
    ex = spec.examples[0]
    g = Graph()
    node = g.add_node(spec.id, dict(ex.params))
    # x has the length T; a second sequence (a decoder's memory) has its own length S
    for i, port in enumerate(node.input_ports):
        src = g.add_node("Input", {"shape": ["T" if i == 0 else "S", ex.inputs[i][2]]})
        g.connect(src.id, "y", node.id, port)
    out = g.add_node("Output")
    g.connect(node.id, "y", out.id, "x")
    info = infer(g).info(node.id)
    assert info.outputs["y"][1] == "T"
    module = compile_graph(g).module.eval()
    with torch.no_grad():
        for steps in (3, 7):
            xs = [torch.randn(2, steps if i == 0 else steps + 2, shape[2]) for i, shape in enumerate(ex.inputs)]
            assert module(*xs).shape[1] == steps


def test_registering_a_duplicate_fails() -> None:
    from workbench.layers import register

    with pytest.raises(ValueError, match="registered twice"):
        register(REGISTRY["ReLU"])
