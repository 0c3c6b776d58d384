"""Shape inference: located messages for every error kind, and incremental updates."""

from __future__ import annotations

import pytest

from workbench.builder import GraphBuilder
from workbench.compiler import compile_graph
from workbench.graph import Graph
from workbench.shapes import ShapeInference, infer


def test_wrong_rank_names_node_expected_and_source() -> None:
    b = GraphBuilder()
    x = b.input((1, 28, 28))
    x = b.layer("Flatten", x, name="flatten1")
    x = b.layer("Conv2d", x, name="conv2")
    b.output(x)
    [err] = infer(b.graph).errors()
    assert str(err) == 'Conv2d "conv2": expects [N, C, H, W], got [N, 784] from "flatten1"'
    assert err.node == "conv2"


def test_channel_mismatch_in_add_names_the_port() -> None:
    b = GraphBuilder()
    x = b.input((3, 8, 8), name="img")
    a = b.layer("Conv2d", x, out_channels=8, padding=[1, 1], name="a")
    c = b.layer("Conv2d", x, out_channels=4, padding=[1, 1], name="c")
    b.output(b.layer("Add", a, c, name="sum"))
    [err] = infer(b.graph).errors()
    assert err.node == "sum"
    assert "in2 has shape [N, 4, 8, 8], which does not match [N, 8, 8, 8]" in str(err)


def test_kernel_too_large_names_the_parameter() -> None:
    b = GraphBuilder()
    x = b.input((1, 4, 4))
    b.output(b.layer("Conv2d", x, kernel_size=[5, 5], name="big"))
    [err] = infer(b.graph).errors()
    assert err.param == "kernel_size"
    assert 'Conv2d "big": kernel_size=5' in str(err) and "size 4" in str(err)


def test_unconnected_input_and_downstream_unknown() -> None:
    g = Graph()
    lin = g.add_node("Linear", name="fc")
    relu = g.add_node("ReLU")
    g.connect(lin.id, "y", relu.id, "x")
    si = infer(g)
    [err] = si.errors()
    assert str(err) == 'Linear "fc": its input is not connected'
    assert si.info(relu.id).status == "unknown"  # a single mistake shows once


def test_symbolic_dim_where_a_fixed_one_is_needed() -> None:
    b = GraphBuilder()
    x = b.input(("T",), name="seq")
    b.output(b.layer("Linear", x, name="fc"))
    [err] = infer(b.graph).errors()
    assert "needs a fixed number of input features" in str(err) and "symbolic size T" in str(err)


def test_reshape_mismatch_is_reported() -> None:
    b = GraphBuilder()
    x = b.input((10,))
    b.output(b.layer("Reshape", x, shape=[3, 3], name="r"))
    [err] = infer(b.graph).errors()
    assert err.param == "shape" and "10 values per sample" in str(err)


def test_incremental_update_touches_only_downstream() -> None:
    b = GraphBuilder()
    x = b.input((16,))
    ids = []
    for i in range(30):
        x = b.layer("Linear", x, out_features=16, name=f"fc{i}")
        ids.append(x.node)
    b.output(x)
    si = ShapeInference(b.graph)
    si.update()
    b.graph.set_param(ids[20], "out_features", 8)
    updated = si.update()
    # fc21 sees a new input width, but its own output stays [N, 16]: the update stops there
    assert updated == {ids[20], ids[21]}
    assert si.info(ids[20]).outputs["y"] == ("N", 8)
    assert si.info(ids[21]).params == 8 * 16 + 16
    b.graph.set_param(ids[29], "out_features", 3)
    assert si.update() == {ids[29], b.graph.outputs()[0].id}


def test_a_shape_change_propagates_to_the_end() -> None:
    b = GraphBuilder()
    x = b.input((16,))
    first = x = b.layer("ReLU", x)
    for _ in range(10):
        x = b.layer("Tanh", x)
    b.output(x)
    si = ShapeInference(b.graph)
    si.update()
    b.graph.set_param(b.graph.inputs()[0].id, "shape", [4])
    assert len(si.update()) == len(b.graph)
    assert si.info(x.node).outputs["y"] == ("N", 4) and si.info(first.node).outputs["y"] == ("N", 4)


def test_rename_updates_messages_downstream() -> None:
    b = GraphBuilder()
    x = b.input((1, 28, 28))
    f = b.layer("Flatten", x, name="flatten1")
    b.output(b.layer("Conv2d", f, name="conv2"))
    si = ShapeInference(b.graph)
    assert 'from "flatten1"' in str(si.errors()[0])
    b.graph.rename(f.node, "flat")
    assert 'from "flat"' in str(si.errors()[0])


def test_incremental_equals_full_after_edits() -> None:
    b = GraphBuilder()
    x = b.input((1, 8, 8))
    c = b.layer("Conv2d", x, out_channels=4, padding=[1, 1])
    f = b.layer("Flatten", c)
    b.output(b.layer("Linear", f, out_features=3))
    si = ShapeInference(b.graph)
    si.update()
    b.graph.set_param(c.node, "out_channels", 6)
    b.graph.set_param(c.node, "padding", [0, 0])
    fresh = infer(b.graph)
    assert {k: (v.status, v.outputs, v.params) for k, v in si.all().items()} == {
        k: (v.status, v.outputs, v.params) for k, v in fresh.all().items()
    }


def test_total_params_equals_compiled_module() -> None:
    b = GraphBuilder()
    x = b.input((8, 8))
    s = b.layer("LSTM", x, hidden_size=12, num_layers=2, bidirectional=True)
    h = b.layer("Linear", b.port(s, "h"), out_features=5)
    b.output(h)
    si = infer(b.graph)
    compiled = compile_graph(b.graph)
    assert si.total_params() == sum(p.numel() for p in compiled.module.parameters())


def test_dead_branch_is_a_warning() -> None:
    b = GraphBuilder()
    x = b.input((4,))
    b.layer("ReLU", x, name="unused")
    b.output(b.layer("Linear", x, out_features=2))
    warnings = infer(b.graph).warnings()
    assert [w.node for w in warnings] == ["unused"]


@pytest.mark.parametrize("dim", [0, 3, -3])
def test_softmax_dim_out_of_range(dim: int) -> None:
    b = GraphBuilder()
    x = b.input((4, 5))
    b.output(b.layer("Softmax", x, dim=dim, name="sm"))
    [err] = infer(b.graph).errors()
    assert err.param == "dim"


def test_a_symbolic_product_keeps_the_grouping_of_its_factors() -> None:
    from workbench.layers.dims import product

    assert product([3, "(T+1)//2"]) == "3*((T+1)//2)"
    assert product(["T*2-1", 4]) == "4*(T*2-1)"
    assert product([2, "T"]) == "2*T"
    for t in range(1, 9):  # the written expression evaluates to the product of the factors
        assert eval(product([3, "(T+1)//2"]), {"T": t}) == 3 * ((t + 1) // 2)
