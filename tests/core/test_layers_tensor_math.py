"""Semantics of the activation, tensor and math layers that the conformance examples cannot show:
each compiled layer against the direct torch call on random data, located refusals, variable
lengths, a class token expanded to the batch, and output ports that follow a parameter."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

from workbench.compiler import compile_graph
from workbench.errors import PortError, ProjectError, ShapeError
from workbench.export.onnx_export import export_onnx
from workbench.export.python_source import module_source
from workbench.graph import Graph
from workbench.layers import REGISTRY, LayerShapeError
from workbench.project import Project, graph_from_dict
from workbench.shapes import infer


def layer_graph(type_id: str, params: dict, *shapes: tuple) -> tuple[Graph, str]:
    """Inputs of ``shapes`` (without the batch; "T" for a variable length) -> one layer -> Outputs."""
    g = Graph()
    node = g.add_node(type_id, params, name="layer")
    for port, shape in zip(node.input_ports, shapes, strict=True):
        src = g.add_node("Input", {"shape": list(shape)})
        g.connect(src.id, "y", node.id, port)
    for port in node.output_ports:
        g.connect(node.id, port, g.add_node("Output", name=f"out_{port}").id, "x")
    return g, node.id


def run(type_id: str, params: dict, *xs: torch.Tensor) -> tuple[torch.Tensor, ...]:
    """The compiled single-layer model on ``xs`` (its Inputs take their shapes)."""
    g, _ = layer_graph(type_id, params, *(tuple(x.shape[1:]) for x in xs))
    module = compile_graph(g).module.eval()
    with torch.no_grad():
        out = module(*xs)
    return out if isinstance(out, tuple) else (out,)


def refusal(type_id: str, params: dict, *shapes: tuple) -> ShapeError:
    """The located shape error of the layer on inputs of ``shapes``."""
    g, nid = layer_graph(type_id, params, *shapes)
    info = infer(g).info(nid)
    assert info.status == "error", f"{type_id} {params} on {shapes} was accepted: {info.outputs}"
    assert info.error is not None
    return info.error


def out_shapes(type_id: str, params: dict, *shapes: tuple) -> list[tuple]:
    g, nid = layer_graph(type_id, params, *shapes)
    info = infer(g).info(nid)
    assert info.status == "ok", info.error
    return [info.outputs[p] for p in g.nodes[nid].output_ports]


@pytest.fixture(autouse=True)
def _seed() -> None:
    torch.manual_seed(0)


# --------------------------------------------------------------------------- activations

ACTIVATIONS = [
    ("ReLU6", {}, F.relu6),
    ("Hardswish", {}, F.hardswish),
    ("Hardsigmoid", {}, F.hardsigmoid),
    ("Hardtanh", {"min_val": -0.3, "max_val": 0.7}, lambda x: F.hardtanh(x, -0.3, 0.7)),
    ("ELU", {"alpha": 0.4}, lambda x: F.elu(x, 0.4)),
    ("SELU", {}, F.selu),
    ("CELU", {"alpha": 2.5}, lambda x: F.celu(x, 2.5)),
    ("Mish", {}, F.mish),
    ("Softplus", {"beta": 3.0, "threshold": 0.5}, lambda x: F.softplus(x, 3.0, 0.5)),
    ("Softsign", {}, F.softsign),
    ("GLU", {"dim": 1}, lambda x: F.glu(x, 1)),
    ("Softmin", {"dim": 1}, lambda x: F.softmin(x, 1)),
    ("Clamp", {"bounds": "min", "min": 0.2}, lambda x: torch.clamp(x, min=0.2)),
    ("Clamp", {"bounds": "max", "max": -0.1}, lambda x: torch.clamp(x, max=-0.1)),
    ("Clamp", {"bounds": "both", "min": -0.5, "max": 0.25}, lambda x: torch.clamp(x, -0.5, 0.25)),
]


@pytest.mark.parametrize(("type_id", "params", "ref"), ACTIVATIONS,
                         ids=[f"{t}-{i}" for i, (t, _, _) in enumerate(ACTIVATIONS)])
def test_activation_matches_the_torch_function(type_id, params, ref) -> None:
    x = torch.randn(3, 4, 5) * 3
    (y,) = run(type_id, params, x)
    torch.testing.assert_close(y, ref(x))


def test_clamp_with_one_bound_leaves_the_other_side_alone() -> None:
    x = torch.linspace(-5, 5, 11).reshape(1, 11)
    (low,) = run("Clamp", {"bounds": "min", "min": 0.0, "max": -100.0}, x)  # max is not used
    assert low.max() == 5 and low.min() == 0
    (high,) = run("Clamp", {"bounds": "max", "max": 1.0, "min": 100.0}, x)  # min is not used
    assert high.min() == -5 and high.max() == 1


@pytest.mark.parametrize(("type_id", "params", "param"), [
    ("Hardtanh", {"min_val": 1.0, "max_val": 1.0}, "max_val"),
    ("CELU", {"alpha": 0.0}, "alpha"),
    ("Softplus", {"beta": 0.0}, "beta"),
    ("Softplus", {"beta": -1.0}, "beta"),
    ("Clamp", {"min": 2.0, "max": 1.0}, "max"),
    ("GLU", {"dim": -1}, "dim"),  # 5 is odd
    ("GLU", {"dim": 0}, "dim"),  # the batch
    ("Softmin", {"dim": 0}, "dim"),
])
def test_activation_settings_torch_would_refuse_or_get_wrong_are_located(type_id, params, param) -> None:
    err = refusal(type_id, params, (3, 5))
    assert err.param == param and 'layer"' in str(err)


def test_glu_on_a_variable_length_needs_a_fixed_dim() -> None:
    assert out_shapes("GLU", {"dim": -1}, ("T", 6)) == [("N", "T", 3)]
    assert refusal("GLU", {"dim": 1}, ("T", 6)).param == "dim"


def test_prelu_learns_one_slope_or_one_per_channel() -> None:
    for per_channel, count in ((False, 1), (True, 3)):
        g, nid = layer_graph("PReLU", {"per_channel": per_channel, "init": 0.1}, (3, 4, 4))
        compiled = compile_graph(g)
        assert infer(g).info(nid).params == count == compiled.total_params
        weight = compiled.module.layer.weight
        assert weight.shape == (count,) and torch.all(weight == 0.1)
        with torch.no_grad():
            weight.copy_(torch.linspace(0.1, 0.3, count))
        x = torch.randn(2, 3, 4, 4)
        with torch.no_grad():
            torch.testing.assert_close(compiled.module(x), F.prelu(x, weight))


# --------------------------------------------------------------------------- padding and pixel shuffles

PADS = [
    ({"mode": "constant", "pads": (1, 2, 0, 3), "value": -2.0}, (2, 3, 4, 5)),
    ({"mode": "reflect", "pads": (2, 1)}, (2, 3, 5)),
    ({"mode": "replicate", "pads": (1, 0, 2, 2)}, (2, 3, 4, 5)),
    ({"mode": "circular", "pads": (1, 1, 2, 0)}, (2, 1, 3, 4)),
    ({"mode": "reflect", "pads": (1, 1)}, (2, 6)),  # rank k+1: torch reads [C, L]
]


@pytest.mark.parametrize(("params", "shape"), PADS, ids=[p["mode"] for p, _ in PADS])
def test_pad_matches_f_pad(params, shape) -> None:
    x = torch.randn(shape)
    (y,) = run("Pad", params, x)
    value = {"value": params["value"]} if "value" in params else {}
    torch.testing.assert_close(y, F.pad(x, list(params["pads"]), mode=params["mode"], **value))
    assert out_shapes("Pad", params, shape[1:]) == [("N", *y.shape[1:])]


@pytest.mark.parametrize(("params", "shape", "param"), [
    ({"pads": (1, 1, 1)}, (3, 4), "pads"),  # odd count
    ({"pads": (1, 1, 1, 1, 1, 1)}, (3, 4), "pads"),  # would pad the batch
    ({"mode": "reflect", "pads": (1, 1), "value": 1.0}, (3, 4), "value"),
    ({"mode": "reflect", "pads": (4, 0)}, (3, 4), "pads"),  # not smaller than the size
    ({"mode": "circular", "pads": (5, 0)}, (3, 4), "pads"),
    ({"mode": "replicate", "pads": (1, 1)}, (2, 3, 4), "pads"),  # rank 4 for one padded dim
])
def test_pad_refusals_are_located(params, shape, param) -> None:
    assert refusal("Pad", params, shape).param == param


def test_pad_value_changes_the_border() -> None:
    x = torch.zeros(1, 2)
    assert run("Pad", {"pads": (1, 0), "value": 7.0}, x)[0][0, 0] == 7.0
    assert run("Pad", {"pads": (1, 0)}, x)[0][0, 0] == 0.0


def test_pad_keeps_a_variable_length_symbolic() -> None:
    assert out_shapes("Pad", {"pads": (2, 1)}, (3, "T")) == [("N", 3, "T+3")]
    module = compile_graph(layer_graph("Pad", {"pads": (2, 1), "mode": "replicate"}, (3, "T"))[0]).module
    for steps in (4, 9):
        x = torch.randn(2, 3, steps)
        torch.testing.assert_close(module(x), F.pad(x, [2, 1], mode="replicate"))


def test_pixel_shuffle_and_unshuffle_invert_each_other() -> None:
    x = torch.randn(2, 12, 3, 5)
    (up,) = run("PixelShuffle", {"upscale_factor": 2}, x)
    torch.testing.assert_close(up, F.pixel_shuffle(x, 2))
    (down,) = run("PixelUnshuffle", {"downscale_factor": 2}, up)
    torch.testing.assert_close(down, x)
    assert refusal("PixelShuffle", {"upscale_factor": 2}, (6, 3, 3)).param == "upscale_factor"
    assert refusal("PixelUnshuffle", {"downscale_factor": 2}, (3, 4, 5)).param == "downscale_factor"


# --------------------------------------------------------------------------- split and chunk


def test_split_sizes_and_the_rest_match_torch_split() -> None:
    x = torch.randn(3, 7, 2)
    outs = run("Split", {"sizes": (2, -1, 1), "dim": 1}, x)
    for got, want in zip(outs, torch.split(x, [2, 4, 1], 1), strict=True):
        torch.testing.assert_close(got, want)
    assert out_shapes("Split", {"sizes": (2, -1, 1)}, (7, 2)) == [("N", 2, 2), ("N", 4, 2), ("N", 1, 2)]


def test_split_of_a_variable_length_gives_the_rest_to_the_minus_one_piece() -> None:
    assert out_shapes("Split", {"sizes": (1, -1, 2)}, ("T", 3)) == [("N", 1, 3), ("N", "T-3", 3), ("N", 2, 3)]
    g, _ = layer_graph("Split", {"sizes": (1, -1, 2)}, ("T", 3))
    module = compile_graph(g).module
    for steps in (4, 8):
        x = torch.randn(2, steps, 3)
        for got, want in zip(module(x), torch.split(x, [1, steps - 3, 2], 1), strict=True):
            torch.testing.assert_close(got, want)
    assert refusal("Split", {"sizes": (1, 2)}, ("T", 3)).param == "sizes"  # no -1: cannot add up


@pytest.mark.parametrize(("params", "param"), [
    ({"sizes": (2, 2)}, "sizes"),  # 4 != 5
    ({"sizes": (3, 2, -1)}, "sizes"),  # nothing left
    ({"sizes": (2, 3), "dim": 0}, "dim"),  # the batch
])
def test_split_refusals_are_located(params, param) -> None:
    assert refusal("Split", params, (5, 4)).param == param


def test_chunk_matches_torch_chunk_and_refuses_what_would_give_fewer_pieces() -> None:
    x = torch.randn(2, 7, 3)
    outs = run("Chunk", {"chunks": 3, "dim": 1}, x)
    assert [o.shape[1] for o in outs] == [3, 3, 1]
    for got, want in zip(outs, torch.chunk(x, 3, 1), strict=True):
        torch.testing.assert_close(got, want)
    assert len(torch.chunk(torch.zeros(1, 6), 4, 1)) == 3  # why Chunk refuses 4 pieces of 6
    err = refusal("Chunk", {"chunks": 4, "dim": 1}, (6,))
    assert err.param == "chunks" and "3 pieces" in str(err)
    assert refusal("Chunk", {"chunks": 2}, ("T", 4)).param == "dim"


# --------------------------------------------------------------------------- slice and select

SLICES = [
    {"dim": 1, "start": 2},
    {"dim": -1, "start": -4, "end": -1, "step": 2},
    {"dim": 2, "start": -3},
    {"dim": 1, "start": 0, "end": 100},  # clamped, as in Python
    {"dim": -2, "start": 1, "end": -1, "step": 3},
]


@pytest.mark.parametrize("params", SLICES, ids=range(len(SLICES)))
def test_slice_counts_like_python(params) -> None:
    x = torch.randn(2, 7, 6, 5)
    (y,) = run("Slice", params, x)
    d = params["dim"] % 4
    index = (slice(None),) * d + (slice(params["start"], params.get("end"), params.get("step", 1)),)
    torch.testing.assert_close(y, x[index])
    assert out_shapes("Slice", params, (7, 6, 5)) == [("N", *y.shape[1:])]


@pytest.mark.parametrize(("params", "expected", "length"), [
    ({"start": 2}, "T-2", lambda t: t - 2),
    ({"start": 1, "end": -1}, "T-2", lambda t: t - 2),
    ({"start": -3}, 3, lambda t: 3),
    ({"start": 0, "end": 4}, 4, lambda t: 4),
    ({"start": 1, "step": 2}, "T//2", lambda t: t // 2),
    ({"start": 0, "step": 3}, "(T+2)//3", lambda t: (t + 2) // 3),
])
def test_slice_of_a_variable_length(params, expected, length) -> None:
    [shape] = out_shapes("Slice", {"dim": 1, **params}, ("T", 3))
    assert shape == ("N", expected, 3)
    module = compile_graph(layer_graph("Slice", {"dim": 1, **params}, ("T", 3))[0]).module
    for steps in (6, 9):
        x = torch.randn(2, steps, 3)
        assert module(x).shape == (2, length(steps), 3)
        torch.testing.assert_close(module(x), x[:, params["start"]:params.get("end"):params.get("step", 1)])


def test_slice_refusals_are_located() -> None:
    assert refusal("Slice", {"start": 4, "end": 2}, (6,)).param == "start"  # empty
    assert refusal("Slice", {"start": -2, "end": 3}, ("T",)).param == "end"
    assert refusal("Slice", {"dim": 0}, (6,)).param == "dim"


def test_select_takes_one_position_and_removes_the_dim() -> None:
    x = torch.randn(2, 5, 3)
    torch.testing.assert_close(run("Select", {"dim": 1, "index": -1}, x)[0], x[:, -1])
    torch.testing.assert_close(run("Select", {"dim": 2, "index": 1}, x)[0], x[:, :, 1])
    assert out_shapes("Select", {"dim": 1, "index": -1}, ("T", 3)) == [("N", 3)]
    assert refusal("Select", {"dim": 1, "index": 5}, (5, 3)).param == "index"
    assert refusal("Select", {"dim": 1, "index": -6}, (5, 3)).param == "index"
    assert refusal("Select", {"dim": 0, "index": 0}, (5, 3)).param == "dim"


# --------------------------------------------------------------------------- squeeze, unsqueeze, transpose


def test_squeeze_unsqueeze_and_transpose() -> None:
    x = torch.randn(2, 1, 4, 1)
    torch.testing.assert_close(run("Squeeze", {"dims": (-1, 1)}, x)[0], x.squeeze((1, 3)))
    torch.testing.assert_close(run("Unsqueeze", {"dim": -1}, x)[0], x.unsqueeze(-1))
    torch.testing.assert_close(run("Unsqueeze", {"dim": 2}, x)[0], x.unsqueeze(2))
    torch.testing.assert_close(run("Transpose", {"dim0": -1, "dim1": 2}, x)[0], x.transpose(3, 2))
    assert refusal("Squeeze", {"dims": (2,)}, (1, 4)).param == "dims"  # size 4: torch would keep it
    assert refusal("Squeeze", {"dims": (1, -2)}, (1, 4)).param == "dims"  # named twice
    assert refusal("Squeeze", {"dims": (1,)}, ("T", 4)).param == "dims"
    assert refusal("Unsqueeze", {"dim": 0}, (4,)).param == "dim"
    assert refusal("Unsqueeze", {"dim": -3}, (4,)).param == "dim"
    assert refusal("Transpose", {"dim0": 0, "dim1": 1}, (4, 3)).param == "dim0"
    assert refusal("Transpose", {"dim0": 1, "dim1": -2}, (4, 3)).param == "dim1"


# --------------------------------------------------------------------------- expand and repeat


def test_expand_and_repeat_match_torch() -> None:
    x = torch.randn(2, 3, 1)
    torch.testing.assert_close(run("Expand", {"sizes": (-1, 4)}, x)[0], x.expand(-1, -1, 4))
    torch.testing.assert_close(run("Repeat", {"repeats": (2,)}, x)[0], x.repeat(1, 2, 1))
    torch.testing.assert_close(run("Repeat", {"repeats": (1, 3)}, x)[0], x.repeat(1, 1, 3))
    assert out_shapes("Repeat", {"repeats": (2,)}, ("T", 3)) == [("N", "2*T", 3)]
    assert refusal("Expand", {"sizes": (4,)}, (3, 1)).param == "sizes"  # dim 1 has size 3
    assert refusal("Expand", {"sizes": (-1, 2, 2)}, (3, 1)).param == "sizes"  # too many
    assert refusal("Repeat", {"repeats": (1, 1, 2)}, (3, 1)).param == "repeats"


def test_expand_gives_a_batch_size_one_tensor_the_batch_of_another_input() -> None:
    spec = REGISTRY["Expand"]
    params = {**spec.defaults(), "match_batch": True}
    assert spec.input_ports(params) == ("x", "like")
    assert spec.infer(params, [(1, 1, 8), ("N", 5, 8)]) == [("N", 1, 8)]
    with pytest.raises(LayerShapeError, match="batch size 1") as info:  # 2 samples cannot become N
        spec.infer(params, [(2, 1, 8), ("N", 5, 8)])
    assert info.value.port == 0
    g, _ = layer_graph("Expand", {"match_batch": True}, (1, 8), (5, 8))
    module = compile_graph(g).module
    cls, x = torch.randn(1, 1, 8), torch.randn(3, 5, 8)
    torch.testing.assert_close(module(cls, x), cls.expand(x.shape[0], -1, -1))


def test_a_class_token_parameter_is_expanded_to_the_batch_and_exports(tmp_path: Path) -> None:
    """The ViT pattern: cat([cls.expand(x.shape[0], -1, -1), x], 1), at any batch size."""
    g = Graph()
    x = g.add_node("Input", {"shape": [5, 8]}, name="x")
    cls = g.add_node("Parameter", {"shape": (1, 1, 8), "init": "normal", "scale": 0.02}, name="cls")
    expand = g.add_node("Expand", {"match_batch": True}, name="expand")
    cat = g.add_node("Concat", {"num_inputs": 2, "dim": 1}, name="cat")
    out = g.add_node("Output", name="y")
    for src, dst, port in ((cls, expand, "x"), (x, expand, "like"), (expand, cat, "in1"), (x, cat, "in2"),
                           (cat, out, "x")):
        g.connect(src.id, "y", dst.id, port)
    assert infer(g).info(cat.id).outputs["y"] == ("N", 6, 8)
    module = compile_graph(g).module
    weight = module.cls.weight
    for batch in (1, 4):
        xs = torch.randn(batch, 5, 8)
        torch.testing.assert_close(module(xs), torch.cat([weight.expand(batch, -1, -1), xs], 1))
    report = export_onnx(Project(g, "vit-token"), tmp_path / "m.onnx")  # verified by onnxruntime at 2 batches
    assert {c["batch"] for c in report.checks} >= {2, 7}


# --------------------------------------------------------------------------- reductions

REDUCTIONS = [("ReduceMean", torch.mean), ("ReduceSum", torch.sum), ("ReduceMax", torch.amax),
              ("ReduceMin", torch.amin)]


@pytest.mark.parametrize(("type_id", "fn"), REDUCTIONS, ids=[t for t, _ in REDUCTIONS])
@pytest.mark.parametrize("keepdim", [False, True])
def test_reductions_match_torch(type_id, fn, keepdim) -> None:
    x = torch.randn(2, 3, 4, 5)
    (y,) = run(type_id, {"dims": (1, -1), "keepdim": keepdim}, x)
    torch.testing.assert_close(y, fn(x, (1, 3), keepdim=keepdim))
    assert out_shapes(type_id, {"dims": (1, -1), "keepdim": keepdim}, (3, 4, 5)) == [("N", *y.shape[1:])]
    assert refusal(type_id, {"dims": (0,)}, (3, 4)).param == "dims"  # the batch
    assert refusal(type_id, {"dims": (1, -2)}, (3, 4)).param == "dims"  # twice


def test_a_mean_over_a_variable_length() -> None:
    assert out_shapes("ReduceMean", {"dims": (1,)}, ("T", 4)) == [("N", 4)]


# --------------------------------------------------------------------------- element-wise math

BINARY = [("Subtract", torch.sub), ("Divide", torch.div), ("Power", torch.pow), ("Maximum", torch.maximum),
          ("Minimum", torch.minimum)]


@pytest.mark.parametrize(("type_id", "fn"), BINARY, ids=[t for t, _ in BINARY])
def test_binary_ops_match_torch_and_broadcast_like_add(type_id, fn) -> None:
    a, b = torch.rand(2, 3, 4) + 0.5, torch.randn(2, 3, 4)
    torch.testing.assert_close(run(type_id, {}, a, b)[0], fn(a, b))
    c = torch.randn(2, 3, 1)
    torch.testing.assert_close(run(type_id, {"broadcast": True}, a, c)[0], fn(a, c))
    err = refusal(type_id, {}, (3, 4), (3, 1))
    assert "broadcast" in str(err) and "in2" in str(err)
    assert "broadcast" in str(refusal("Add", {}, (3, 4), (3, 1)))  # the same rule as Add


def test_subtract_and_divide_are_ordered() -> None:
    a, b = torch.full((1, 2), 6.0), torch.full((1, 2), 2.0)
    assert run("Subtract", {}, a, b)[0][0, 0] == 4 and run("Divide", {}, a, b)[0][0, 0] == 3
    assert run("Power", {}, a, b)[0][0, 0] == 36


UNARY = [("Negate", torch.neg), ("Abs", torch.abs), ("Sqrt", torch.sqrt), ("Exp", torch.exp), ("Log", torch.log),
         ("Reciprocal", torch.reciprocal)]


@pytest.mark.parametrize(("type_id", "fn"), UNARY, ids=[t for t, _ in UNARY])
def test_unary_ops_match_torch(type_id, fn) -> None:
    x = torch.rand(2, 3, 4) + 0.1
    torch.testing.assert_close(run(type_id, {}, x)[0], fn(x))
    torch.testing.assert_close(run(type_id, {}, -x)[0], fn(-x), equal_nan=True)


SCALAR = {
    "add": lambda x, c: x + c,
    "subtract": lambda x, c: x - c,
    "multiply": lambda x, c: x * c,
    "divide": lambda x, c: x / c,
    "power": lambda x, c: x**c,
    "maximum": lambda x, c: torch.maximum(x, torch.tensor(c)),
    "minimum": lambda x, c: torch.minimum(x, torch.tensor(c)),
    "reverse_subtract": lambda x, c: c - x,
    "reverse_divide": lambda x, c: c / x,
    "reverse_power": lambda x, c: c**x,
}


def test_every_scalar_op_is_tested() -> None:
    assert set(SCALAR) == set(REGISTRY["ScalarOp"].param("op").choices)


@pytest.mark.parametrize("op", sorted(SCALAR))
def test_scalar_op_matches_the_python_expression(op) -> None:
    x = torch.rand(2, 3, 4) + 0.5
    c = 1.7
    (y,) = run("ScalarOp", {"op": op, "constant": c}, x)
    torch.testing.assert_close(y, SCALAR[op](x, c))


def test_scalar_op_reversed_forms_put_the_constant_first() -> None:
    x = torch.full((1, 1), 4.0)
    results = {op: run("ScalarOp", {"op": op, "constant": 3.0}, x)[0].item() for op in SCALAR}
    assert results["subtract"] == 1 and results["reverse_subtract"] == -1
    assert results["divide"] == pytest.approx(4 / 3) and results["reverse_divide"] == 0.75
    assert results["power"] == 64 and results["reverse_power"] == 81
    assert results["maximum"] == 4 and results["minimum"] == 3


def test_scalar_op_refusals_are_located() -> None:
    assert refusal("ScalarOp", {"op": "divide", "constant": 0.0}, (3,)).param == "constant"
    assert refusal("ScalarOp", {"op": "reverse_power", "constant": -2.0}, (3,)).param == "constant"
    out_shapes("ScalarOp", {"op": "reverse_divide", "constant": 0.0}, (3,))  # 0 / x is defined


def test_matmul_is_batched_and_broadcasts() -> None:
    a, b = torch.randn(2, 3, 5, 4), torch.randn(2, 1, 4, 6)
    torch.testing.assert_close(run("MatMul", {}, a, b)[0], torch.matmul(a, b))
    assert out_shapes("MatMul", {}, ("T", 4), (4, "T")) == [("N", "T", "T")]
    err = refusal("MatMul", {}, (3, 4), (5, 6))
    assert "rows" in str(err) and "'b'" in str(err)
    err = refusal("MatMul", {}, (4,), (4, 6))  # [N, 4] @ ...: the batch would be a matrix row
    assert "batch" in str(err) and "'a'" in str(err)


def test_matmul_with_a_learned_matrix_multiplies_every_sample() -> None:
    g = Graph()
    x = g.add_node("Input", {"shape": [5, 4]})
    w = g.add_node("Parameter", {"shape": (4, 3), "init": "normal", "scale": 1.0}, name="w")
    mm = g.add_node("MatMul", name="mm")
    g.connect(x.id, "y", mm.id, "a")
    g.connect(w.id, "y", mm.id, "b")
    g.connect(mm.id, "y", g.add_node("Output").id, "x")
    assert infer(g).info(mm.id).outputs["y"] == ("N", 5, 3)
    module = compile_graph(g).module
    xs = torch.randn(2, 5, 4)
    torch.testing.assert_close(module(xs), xs @ module.w.weight)


# --------------------------------------------------------------------------- output ports from parameters


def test_output_ports_follow_the_parameters() -> None:
    g = Graph()
    split = g.add_node("Split", {"sizes": (2, 2, 2)})
    chunk = g.add_node("Chunk", {"chunks": 4})
    assert split.output_ports == ("y1", "y2", "y3") and chunk.output_ports == ("y1", "y2", "y3", "y4")
    g.set_param(split.id, "sizes", (3, 3))
    assert split.output_ports == ("y1", "y2")


def test_removing_a_wired_output_port_is_refused_and_changes_nothing() -> None:
    g, nid = layer_graph("Split", {"sizes": (2, 2, 2)}, (6, 3))
    before = dict(g.nodes[nid].params), sorted(map(str, g.edges))
    with pytest.raises(PortError, match="disconnect output 'y3'"):
        g.set_params(nid, {"sizes": (3, 3)})
    with pytest.raises(PortError, match="disconnect output 'y3'"):
        g.check_params(nid, {"sizes": (3, 3)})
    assert (dict(g.nodes[nid].params), sorted(map(str, g.edges))) == before
    # y2 stays when there are two pieces: only the port that goes away blocks the change
    g.remove_node(g.by_name("out_y3").id)  # and its wire
    g.set_params(nid, {"sizes": (3, 3)})
    assert [o.shape[1] for o in compile_graph(g).module(torch.randn(2, 6, 3))] == [3, 3]


def test_a_project_wiring_a_port_the_parameters_do_not_make_is_refused_by_json_path() -> None:
    doc = {
        "nodes": [
            {"id": "a", "type": "Input", "name": "x", "params": {"shape": [6]}},
            {"id": "b", "type": "Split", "name": "split", "params": {"sizes": [3, 3]}},
            {"id": "c", "type": "Output", "name": "y"},
        ],
        "edges": [{"from": ["a", "y"], "to": ["b", "x"]}, {"from": ["b", "y3"], "to": ["c", "x"]}],
    }
    with pytest.raises(ProjectError) as info:
        graph_from_dict(doc)
    assert info.value.path == "graph.edges[1]" and "y3" in str(info.value)
    doc["nodes"][1]["params"]["sizes"] = [2, 2, 2]
    assert graph_from_dict(doc).nodes["b"].output_ports == ("y1", "y2", "y3")


# --------------------------------------------------------------------------- exports beyond the first example

EXPORTS = [
    *[("Pad", p, (s[1:],)) for p, s in PADS[1:4]],
    *[("ScalarOp", {"op": op, "constant": 2.0}, ((3, 4),)) for op in sorted(SCALAR) if op != "add"],
    ("Split", {"sizes": (1, -1, 2)}, (("T", 3),)),
    ("Slice", {"dim": 1, "start": 1, "end": -1}, (("T", 3),)),
    ("Select", {"dim": 1, "index": -1}, (("T", 3),)),
    ("Chunk", {"chunks": 3, "dim": -1}, ((2, 7),)),
    ("Expand", {"match_batch": True, "sizes": (3,)}, ((1, 4), (6,))),
    ("Log", {}, ((3, 4),)),  # NaN for negative inputs, in both runtimes
    ("Sqrt", {}, ((3, 4),)),
    ("Power", {}, ((3, 4), (3, 4))),
]


@pytest.mark.parametrize(("type_id", "params", "shapes"), EXPORTS, ids=[f"{t}-{i}" for i, (t, _, _) in
                                                                       enumerate(EXPORTS)])
def test_onnx_export_and_source_of_more_settings(type_id, params, shapes, tmp_path: Path) -> None:
    g, _ = layer_graph(type_id, params, *shapes)
    report = export_onnx(Project(g, type_id), tmp_path / "m.onnx")  # raises unless onnxruntime agrees
    assert len(report.checks) >= 2
    compiled = compile_graph(g)
    namespace: dict = {}
    exec(compile(module_source(compiled, "M", type_id, "w.safetensors"), type_id, "exec"), namespace)
    model = namespace["M"]().eval()
    xs = compiled.example_inputs(batch=3, seq=6)
    with torch.no_grad():
        got, want = model(*xs), compiled.module(*xs)
    for a, b in zip(got if isinstance(got, tuple) else (got,), want if isinstance(want, tuple) else (want,),
                    strict=True):
        torch.testing.assert_close(a, b, equal_nan=True)


def test_nan_positions_are_not_a_verification_failure_but_other_differences_are() -> None:
    """Log of a negative input is NaN in PyTorch and onnxruntime alike: that agrees."""
    from workbench.export.onnx_export import ExportError, _compare

    class Session:
        def __init__(self, out):
            self.out = out

        def get_inputs(self):
            return [type("I", (), {"name": "x"})()]

        def run(self, _names, _feed):
            return [self.out]

    x = torch.tensor([[-1.0, 0.0, 2.0]])
    ref = torch.log(x)
    check = _compare(Session(ref.numpy()), lambda t: torch.log(t), (x,), "t")
    assert check["max_abs"] == 0.0
    wrong = ref.numpy().copy()
    wrong[0, 2] = math.nan  # a NaN where PyTorch has a number
    with pytest.raises(ExportError, match="NaN in one but not the other at 1 of 3"):
        _compare(Session(wrong), lambda t: torch.log(t), (x,), "t")
    off = ref.numpy() + 0.5  # NaN and -inf stay, the number moves
    with pytest.raises(ExportError, match=r"max abs diff 5\.000e-01"):
        _compare(Session(off), lambda t: torch.log(t), (x,), "t")


def test_a_log_of_negative_activations_is_refused_by_training_naming_the_node(tmp_path: Path) -> None:
    """Values, not shapes, decide a Log's domain: check accepts it, the first step names the node."""
    import json

    from .fuzz_mutants import SAMPLES, run_pipeline

    doc = json.loads(next(p for p in SAMPLES if p.name == "digits_cnn.json").read_text())
    conv = next(n for n in doc["graph"]["nodes"] if n["name"] == "conv1")
    edge = next(e for e in doc["graph"]["edges"] if e["from"][0] == conv["id"])
    doc["graph"]["nodes"].append({"id": "ln", "type": "Log", "name": "log_of_conv", "params": {}})
    doc["graph"]["edges"].append({"from": ["ln", "y"], "to": edge["to"]})
    edge["to"] = ["ln", "x"]
    assert run_pipeline(doc, tmp_path) == "numeric"
