"""Graph mutations: each validates and applies fully or raises a typed error."""

from __future__ import annotations

import itertools

import pytest

from workbench.errors import (
    CycleError,
    GraphError,
    NameConflictError,
    NodeNotFoundError,
    ParamError,
    PortError,
    UnknownLayerError,
)
from workbench.graph import Graph, GraphEvent, python_identifier


@pytest.fixture
def chain() -> tuple[Graph, list[str]]:
    g = Graph()
    ids = [g.add_node(t).id for t in ("Input", "Linear", "ReLU", "Output")]
    for a, b in itertools.pairwise(ids):
        g.connect(a, "y", b, "x")
    return g, ids


def snapshot(g: Graph) -> dict:
    return g.to_dict()


def test_default_names_are_unique_and_readable() -> None:
    g = Graph()
    a, b = g.add_node("Conv2d"), g.add_node("Conv2d")
    assert (a.name, b.name) == ("conv2d1", "conv2d2")
    assert a.id != b.id


def test_connect_refuses_a_cycle_and_changes_nothing(chain) -> None:
    g, (_i, lin, relu, _out) = chain
    add = g.add_node("Add")
    g.connect(relu, "y", add.id, "in1")
    before = snapshot(g)
    with pytest.raises(CycleError, match="cycle"):
        g.connect(add.id, "y", lin, "x")  # lin's input is taken too, but the cycle check must not mask it
    assert snapshot(g) == before


def test_self_loop_is_a_cycle() -> None:
    g = Graph()
    add = g.add_node("Add")
    with pytest.raises(CycleError):
        g.connect(add.id, "y", add.id, "in1")


def test_an_input_port_takes_one_edge_and_outputs_fan_out(chain) -> None:
    g, (i, lin, relu, _out) = chain
    with pytest.raises(PortError, match="already connected"):
        g.connect(i, "y", lin, "x")
    other = g.add_node("Output")
    g.connect(relu, "y", other.id, "x")  # fan-out is fine
    assert len(g.edges_from(relu)) == 2


def test_unknown_ports_and_nodes_are_refused(chain) -> None:
    g, (_i, lin, _relu, out) = chain
    with pytest.raises(PortError, match="no output port 'h'"):
        g.connect(lin, "h", out, "x")
    with pytest.raises(NodeNotFoundError):
        g.connect("nope", "y", out, "x")


def test_unknown_layer_and_bad_params_are_refused() -> None:
    g = Graph()
    with pytest.raises(UnknownLayerError):
        g.add_node("Conv9d")
    with pytest.raises(ParamError, match="kernel_size: expected 2 positive ints") as exc:
        g.add_node("Conv2d", {"kernel_size": [0, 3]})
    assert exc.value.param == "kernel_size"
    with pytest.raises(ParamError, match="no parameter 'colour'"):
        g.add_node("ReLU", {"colour": "red"})
    assert len(g) == 0


def test_set_param_validates_and_returns_old_value(chain) -> None:
    g, (_i, lin, _relu, _out) = chain
    assert g.set_param(lin, "out_features", 10) == 64
    assert g.nodes[lin].params["out_features"] == 10
    with pytest.raises(ParamError, match="expected a positive int, got -1"):
        g.set_param(lin, "out_features", -1)
    assert g.nodes[lin].params["out_features"] == 10


def test_removing_a_connected_port_is_refused() -> None:
    g = Graph()
    a, b, c = (g.add_node("Input") for _ in range(3))
    add = g.add_node("Add", {"num_inputs": 3})
    for src, port in ((a, "in1"), (b, "in2"), (c, "in3")):
        g.connect(src.id, "y", add.id, port)
    with pytest.raises(PortError, match="disconnect input 'in3'"):
        g.set_param(add.id, "num_inputs", 2)
    assert add.params["num_inputs"] == 3


def test_names_must_be_unique_and_non_empty(chain) -> None:
    g, (_i, lin, relu, _out) = chain
    name_of_relu = g.nodes[relu].name
    with pytest.raises(NameConflictError):
        g.rename(lin, name_of_relu)
    with pytest.raises(NameConflictError):
        g.rename(lin, "   ")
    assert g.rename(lin, "hidden") == "linear1"
    assert g.by_name("hidden").id == lin


def test_remove_node_returns_its_edges_for_undo(chain) -> None:
    g, (i, lin, relu, _out) = chain
    removed = g.remove_node(lin)
    assert {(e.src, e.dst) for e in removed} == {(i, lin), (lin, relu)}
    assert lin not in g.nodes and all(lin not in (e.src, e.dst) for e in g.edges)


def test_events_are_emitted(chain) -> None:
    g, (_i, lin, relu, _out) = chain
    seen: list[GraphEvent] = []
    g.subscribe(seen.append)
    g.set_param(lin, "out_features", 3)
    g.move(lin, (10, 20))
    g.rename(lin, "fc")
    g.remove_node(relu)
    kinds = [e.kind for e in seen]
    assert kinds == ["params_changed", "moved", "renamed", "edge_removed", "edge_removed", "node_removed"]


def test_node_ids_cannot_be_reused() -> None:
    g = Graph()
    n = g.add_node("ReLU")
    with pytest.raises(GraphError, match="already used"):
        g.add_node("ReLU", node_id=n.id)


def test_topological_order_is_deterministic(chain) -> None:
    g, ids = chain
    assert g.topological_order() == ids


@pytest.mark.parametrize(
    ("name", "ident"),
    [("class", "class_"), ("my conv", "my_conv"), ("3x3", "_3x3"), ("match", "match_"), ("ü", "u"), ("卷积", "n__"), ("__x", "n__x")],
)
def test_python_identifier(name: str, ident: str) -> None:
    assert python_identifier(name) == ident
    assert ident.isidentifier()
