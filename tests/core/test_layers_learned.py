"""Learned tensors: the Parameter node (its initial values, gradients, saving and loading, source
export) and the per-channel ScaleBias layer (values, keys, ONNX form, located errors)."""

from __future__ import annotations

from pathlib import Path

import onnx
import pytest
import torch

from workbench.builder import GraphBuilder
from workbench.compiler import compile_graph
from workbench.export.onnx_export import export_onnx
from workbench.export.python_source import module_source
from workbench.project import Project
from workbench.shapes import infer
from workbench.weights import load_weights, save_weights


def position_table_model(init: str = "zeros", **params):
    """x [N, 5, 8] + a learned position table [1, 5, 8] (Add broadcasts it over the batch), then a Linear."""
    b = GraphBuilder()
    x = b.input((5, 8), name="x")
    table = b.layer("Parameter", shape=[1, 5, 8], init=init, name="pos_table", **params)
    y = b.layer("Add", x, table, broadcast=True, name="add")
    b.output(b.layer("Linear", y, out_features=3, name="head"))
    return b.graph


def test_parameter_trains_gradients_reach_it() -> None:
    torch.manual_seed(0)
    compiled = compile_graph(position_table_model())
    module = compiled.module
    assert "pos_table.weight" in module.state_dict()  # state_dict keys read like the canvas
    assert torch.equal(module.pos_table.weight, torch.zeros(1, 5, 8))
    assert compiled.total_params == sum(p.numel() for p in module.parameters()) == 40 + 8 * 3 + 3
    opt = torch.optim.SGD(module.parameters(), lr=0.1)
    x = torch.randn(4, 5, 8)
    module(x).pow(2).sum().backward()
    grad = module.pos_table.weight.grad
    assert grad is not None and grad.abs().sum() > 0
    opt.step()
    assert not torch.equal(module.pos_table.weight, torch.zeros(1, 5, 8))


def test_parameter_saves_and_loads_under_its_node_name(tmp_path: Path) -> None:
    torch.manual_seed(1)
    a = compile_graph(position_table_model("normal", scale=1.0)).module
    save_weights(a, tmp_path / "w.safetensors")
    torch.manual_seed(2)
    b = compile_graph(position_table_model("normal", scale=1.0)).module
    assert not torch.equal(a.pos_table.weight, b.pos_table.weight)
    load_weights(b, tmp_path / "w.safetensors")
    torch.testing.assert_close(b.pos_table.weight, a.pos_table.weight)
    x = torch.randn(2, 5, 8)
    torch.testing.assert_close(b(x), a(x))


@pytest.mark.parametrize(("init", "scale"), [("zeros", 0.02), ("ones", 0.02), ("constant", 1e-5),
                                             ("normal", 2.0), ("uniform", 0.3)])
def test_parameter_initialisation(init: str, scale: float) -> None:
    b = GraphBuilder()
    b.input((3,))
    b.output(b.layer("Parameter", shape=[100, 100], init=init, scale=scale, name="p"))
    torch.manual_seed(0)
    w = compile_graph(b.graph).module.p.weight.detach()
    if init in ("zeros", "ones", "constant"):
        assert torch.equal(w, torch.full((100, 100), {"zeros": 0.0, "ones": 1.0}.get(init, scale)))
    elif init == "normal":
        assert abs(float(w.mean())) < 0.1 and abs(float(w.std()) - scale) < 0.05 * scale
    else:
        assert float(w.abs().max()) <= scale and float(w.abs().max()) > 0.99 * scale
        assert abs(float(w.std()) - scale / 3**0.5) < 0.05 * scale


@pytest.mark.parametrize("init", ["normal", "uniform", "constant"])
def test_exported_source_starts_from_the_same_values(init: str) -> None:
    """The generated __init__ draws what the compiled module drew (same seed, same order)."""
    b = GraphBuilder()
    b.input((3,))
    b.output(b.layer("Parameter", shape=[2, 3, 4], init=init, scale=0.5, name="cls_token"))
    torch.manual_seed(7)
    compiled = compile_graph(b.graph)
    source = module_source(compiled, "M", "t", "w.safetensors")
    assert "nn.ParameterDict({'weight': nn.Parameter(" in source and "self.cls_token.weight" in source
    namespace: dict = {}
    exec(compile(source, "<export>", "exec"), namespace)
    torch.manual_seed(7)
    exported = namespace["M"]()
    torch.testing.assert_close(exported.cls_token.weight, compiled.module.cls_token.weight)


# --------------------------------------------------------------------------- ScaleBias


def scale_bias_model(shape: tuple, **params):
    b = GraphBuilder()
    b.output(b.layer("ScaleBias", b.input(shape, name="x"), name="sb", **params))
    return b.graph


@pytest.mark.parametrize(("shape", "dim", "stored"), [((3, 4, 5), 1, (3, 1, 1)), ((4, 6), -1, (6,)),
                                                      ((3, 4, 5), 2, (4, 1))])
def test_scale_bias_is_a_per_channel_affine_map(shape: tuple, dim: int, stored: tuple) -> None:
    module = compile_graph(scale_bias_model(shape, dim=dim)).module
    assert {k: tuple(v.shape) for k, v in module.state_dict().items()} == {"sb.weight": stored, "sb.bias": stored}
    x = torch.randn(2, *shape)
    torch.testing.assert_close(module(x), x)  # starts as the identity (scale 1, bias 0)
    torch.manual_seed(0)
    weight, bias = torch.randn(stored), torch.randn(stored)
    module.load_state_dict({"sb.weight": weight, "sb.bias": bias})
    channels = shape[dim] if dim < 0 else shape[dim - 1]
    view = [1] * (len(shape) + 1)
    view[dim] = channels
    torch.testing.assert_close(module(x), x * weight.reshape(view) + bias.reshape(view))


def test_scale_bias_scale_or_bias_alone() -> None:
    assert set(compile_graph(scale_bias_model((4,), dim=-1, bias=False)).module.state_dict()) == {"sb.weight"}
    assert set(compile_graph(scale_bias_model((4,), dim=-1, scale=False)).module.state_dict()) == {"sb.bias"}


def test_scale_bias_exports_as_mul_and_add_with_per_channel_constants(tmp_path: Path) -> None:
    export_onnx(Project(scale_bias_model((3, 4, 4), dim=1), "sb"), tmp_path / "sb.onnx")
    model = onnx.load(str(tmp_path / "sb.onnx"))
    inits = {i.name: list(i.dims) for i in model.graph.initializer}
    ops = [(n.op_type, [inits.get(i) for i in n.input]) for n in model.graph.node]
    assert ops == [("Mul", [None, [3, 1, 1]]), ("Add", [None, [3, 1, 1]])]


@pytest.mark.parametrize(("shape", "params", "param", "words"), [
    ((3, 4), {"dim": 0}, "dim", "dim=0 must name a non-batch dimension of [N, 3, 4]"),
    ((3, 4), {"dim": 3}, "dim", "dim=3 must name a non-batch dimension"),
    ((3, 4), {"scale": False, "bias": False}, "scale", "learns nothing with both scale and bias off"),
    (("T", 4), {"dim": 1}, None, "needs a fixed number of channels (dimension 1), got the symbolic size T"),
])
def test_scale_bias_errors_are_located(shape: tuple, params: dict, param: str | None, words: str) -> None:
    [err] = infer(scale_bias_model(shape, **params)).errors()
    assert err.node == "sb" and err.param == param and words in str(err)
