"""The graph's indexes answer exactly as the plain scans they replaced.

``ReferenceGraph`` is the graph with its queries and checks written the plain way they
were before the indexes (a scan of every node or edge, a path search per wire, one
``connect`` per wire when loading).  Random edit sequences (hypothesis) and random
project files go to both; every answer, error, event and saved document must match.
"""

from __future__ import annotations

import json
import random
from pathlib import Path
from typing import Any

import networkx as nx
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from onnx import TensorProto, helper, numpy_helper

from workbench.cli import check_report
from workbench.errors import CycleError, GraphError, NameConflictError, NodeNotFoundError, PortError, ProjectError
from workbench.graph import Edge, Graph, GraphEvent
from workbench.project import Project, graph_from_dict, load_project
from workbench.shapes import infer

from .sample_deps import provide_init_from

SAMPLES = sorted((Path(__file__).resolve().parents[2] / "samples").glob("*.json"))


class ReferenceGraph(Graph):
    """Every query a scan, every wire a path search: the behaviour the indexes must keep."""

    def by_name(self, name: str) -> Any:
        for n in self._nodes.values():
            if n.name == name:
                return n
        raise NodeNotFoundError(f"no node named {name!r}", node=name)

    def names(self) -> set[str]:
        return {n.name for n in self._nodes.values()}

    def has_name(self, name: str) -> bool:
        return name in self.names()

    def index_of(self, node_id: str) -> int:
        return list(self._nodes).index(node_id)

    def edges_into(self, node_id: str) -> list[Edge]:
        return [e for e in self._edges.values() if e.dst == node_id]

    def edges_from(self, node_id: str) -> list[Edge]:
        return [e for e in self._edges.values() if e.src == node_id]

    def topological_order(self) -> list[str]:
        index = {nid: i for i, nid in enumerate(self._nodes)}
        return list(nx.lexicographical_topological_sort(self._nx, key=index.__getitem__))

    def _check_connect(self, edge: Edge, cycles: bool = True) -> None:
        a, b = self.node(edge.src), self.node(edge.dst)
        if edge.src_port not in a.output_ports:
            raise PortError(f'"{a.name}" has no output port {edge.src_port!r}', node=a.name)
        if edge.dst_port not in b.input_ports:
            raise PortError(f'"{b.name}" has no input port {edge.dst_port!r}', node=b.name)
        if edge.src == edge.dst or nx.has_path(self._nx, edge.dst, edge.src):
            raise CycleError(f'connecting "{a.name}" to "{b.name}" would create a cycle', node=b.name)
        taken = self._edges.get((edge.dst, edge.dst_port))
        if taken is not None:
            raise PortError(
                f'input {edge.dst_port!r} of "{b.name}" is already connected to "{self._nodes[taken.src].name}"',
                node=b.name,
            )

    def connect_many(self, wires: Any) -> tuple[int, GraphError] | None:
        for i, wire in enumerate(wires):
            try:
                self.connect(*wire)
            except GraphError as exc:
                return i, exc
        return None

    def validate_name(self, name: str, ignore: str | None = None) -> str:
        name = Graph().validate_name(name)  # the rules on the text itself, alone
        for n in self._nodes.values():
            if n.name == name and n.id != ignore:
                raise NameConflictError(f"the name {name!r} is already used by another node", node=name)
        return name

    def unique_name(self, prefix: str) -> str:
        taken = self.names()
        i = 1
        while f"{prefix}{i}" in taken:
            i += 1
        return f"{prefix}{i}"

    def remove_node(self, node_id: str) -> list[Edge]:
        node = self.node(node_id)
        self.check_remove(node_id)
        removed = [e for e in self._edges.values() if node_id in (e.src, e.dst)]
        for e in removed:
            self.disconnect(e)
        del self._nodes[node.id]
        self._nx.remove_node(node.id)
        self._emit(GraphEvent("node_removed", node_id, extra={"node": node}))
        return removed

    def sorted_edges(self) -> list[Edge]:
        order = {nid: i for i, nid in enumerate(self._nodes)}
        return sorted(self._edges.values(),
                      key=lambda e: (order[e.dst], self._nodes[e.dst].input_ports.index(e.dst_port)))


# --------------------------------------------------------------------------- random edits

TYPES = ["Input", "Linear", "ReLU", "Add", "Concat", "Output"]
NAMES = [None, None, "relu1", "relu2", "relu10", "relu01", "linear1", "a", "a1", "a11", " a ", "", "1"]
PREFIXES = ["relu", "linear", "a", "a1", "input", "", "relu0", "concat"]
OUT_PORTS = ["y", "y", "y", "x"]  # mostly ports that exist, so that many wires go in
IN_PORTS = ["x", "x", "in1", "in2", "in3", "y"]


def random_edits(rnd: random.Random, count: int) -> list[tuple]:
    """``count`` edits in the proportions an editing session has: mostly adding and wiring
    nodes (graphs grow to a few dozen nodes and wires), some removing, renaming, port
    changes, undoing a deletion, copying, and wiring that is refused."""
    k = lambda: rnd.randrange(64)  # noqa: E731  (a node or edge, taken modulo how many there are)
    makers = [
        (25, lambda: ("add", rnd.choice(TYPES), rnd.choice(NAMES), rnd.choice([None, None, None, k() % 12 - 1]))),
        (30, lambda: ("wire", k(), k(), rnd.randrange(3))),
        (5, lambda: ("connect", k(), rnd.choice(OUT_PORTS), k(), rnd.choice(IN_PORTS))),
        (6, lambda: ("disconnect", k())),
        (7, lambda: ("remove", k())),
        (7, lambda: ("rename", k(), rnd.choice(NAMES[2:]))),
        (5, lambda: ("ports", k(), rnd.randrange(2, 5))),
        (6, lambda: ("undo-remove", [k() for _ in range(rnd.randrange(1, 5))])),
        (2, lambda: ("copy",)),
    ]
    weights = [w for w, _ in makers]
    return [rnd.choices(makers, weights)[0][1]() for _ in range(count)]


def _apply(g: Graph, op: tuple) -> Any:
    """One edit; returns what it returned (made comparable) or the error it raised."""
    ids = list(g.nodes)
    pick = (lambda k: ids[k % len(ids)]) if ids else (lambda k: "none")
    edges = g.edges
    try:
        if op[0] == "add":
            params = {"shape": [3]} if op[1] == "Input" else {"num_inputs": 3} if op[1] == "Concat" else {}
            n = g.add_node(op[1], params, op[2], index=op[3])
            return ("node", n.id, n.name)
        if op[0] == "connect":
            return g.connect(pick(op[1]), op[2], pick(op[3]), op[4])
        if op[0] == "wire":
            src, dst = g.node(pick(op[1])), g.node(pick(op[2]))
            outs, ins = src.output_ports or ("y",), dst.input_ports or ("x",)
            return g.connect(src.id, outs[0], dst.id, ins[op[3] % len(ins)])
        if op[0] == "disconnect":
            return g.disconnect(edges[op[1] % len(edges)]) if edges else None
        if op[0] == "remove":
            return g.remove_node(pick(op[1]))
        if op[0] == "rename":
            return g.rename(pick(op[1]), op[2])
        if op[0] == "ports":
            node = g.node(pick(op[1]))
            return g.set_params(node.id, {"num_inputs": op[2]}) if node.type in ("Add", "Concat") else None
        if op[0] == "undo-remove":  # what the editor's delete command does, then its undo
            chosen = list(dict.fromkeys(pick(k) for k in op[1]))
            records = g.records(chosen)
            removed = [e for nid in chosen for e in g.remove_node(nid)]
            g.restore(records, removed)
            return records, removed
        return None
    except (GraphError, ValueError) as exc:
        return type(exc).__name__, str(exc)


def _state(g: Graph) -> dict[str, Any]:
    """Every answer the graph gives about itself."""
    ids = list(g.nodes)
    return {
        "doc": g.to_dict(),
        "edges": g.edges,
        "sorted_edges": g.sorted_edges(),
        "topological": g.topological_order(),
        "into": {nid: g.edges_into(nid) for nid in ids},
        "from": {nid: g.edges_from(nid) for nid in ids},
        "names": g.names(),
        "by_name": {n.name: g.by_name(n.name).id for n in g},
        "has_name": [g.has_name(name) for name in NAMES if name is not None],
        "index": [g.index_of(nid) for nid in ids],
        "unique": [g.unique_name(p) for p in PREFIXES],
        "successors": {nid: sorted(g.successors(nid)) for nid in ids},
    }


@settings(max_examples=200, deadline=None, derandomize=True, database=None,
          suppress_health_check=[HealthCheck.too_slow])
@given(st.randoms(use_true_random=False), st.integers(10, 120))
def test_random_edits_answer_as_the_plain_scans(rnd: random.Random, count: int) -> None:
    edits = random_edits(rnd, count)
    fast, ref = Graph(), ReferenceGraph()
    heard: dict[str, list] = {"fast": [], "ref": []}

    def listen(g: Graph, key: str) -> None:
        g.subscribe(lambda ev: heard[key].append((ev.kind, ev.node, ev.edge)))

    listen(fast, "fast")
    listen(ref, "ref")
    for op in edits:
        if op[0] == "copy":  # a copy carries its indexes: it must go on answering the same
            fast = fast.copy()
            listen(fast, "fast")
            continue
        assert _apply(fast, op) == _apply(ref, op), op
        assert heard["fast"] == heard["ref"], op
        assert _state(fast) == _state(ref), op
    _check_shape_listings(fast)


def _check_shape_listings(g: Graph) -> None:
    """Shape errors in topological order and dead-branch warnings, as the plain walks give them."""
    si = infer(g)
    info = si.all()
    index = {nid: i for i, nid in enumerate(g.nodes)}
    order = nx.lexicographical_topological_sort(g._nx, key=index.__getitem__)
    assert si.errors() == [info[n].error for n in order if info[n].error]
    outputs = [n.id for n in g.outputs()]
    live = set(outputs).union(*(nx.ancestors(g._nx, o) for o in outputs))
    assert [w.node_id for w in si.warnings()] == ([n.id for n in g if n.id not in live] if outputs else [])


def test_unique_name_finds_a_freed_name_again() -> None:
    g = Graph()
    nodes = [g.add_node("ReLU") for _ in range(12)]
    assert g.unique_name("relu") == "relu13"
    g.remove_node(nodes[10].id)  # relu11 is free again: for "relu" and for "relu1" (relu1 + "1")
    assert g.unique_name("relu") == "relu11"
    assert g.unique_name("relu1") == "relu11"
    g.rename(nodes[2].id, "other")  # relu3 freed by a rename
    assert g.unique_name("relu") == "relu3"
    assert g.add_node("ReLU").name == "relu3"


# --------------------------------------------------------------------------- loading


@st.composite
def graph_docs(draw: st.DrawFn) -> dict[str, Any]:
    """A graph document with random, often wrong, wiring: cycles, taken or missing ports,
    unknown nodes, malformed edges."""
    types = draw(st.lists(st.sampled_from(["Input", "ReLU", "ReLU", "Add", "Add", "Output"]), min_size=1, max_size=9))
    nodes = [{"id": f"n{i}", "type": t, "name": f"{t.lower()}{i}",
              "params": {"shape": [2]} if t == "Input" else {}, "position": [0, 0]} for i, t in enumerate(types)]
    ids = st.sampled_from([n["id"] for n in nodes] + ["nX"])
    wire = st.fixed_dictionaries({"from": st.tuples(ids, st.sampled_from(["y", "y", "y", "x"])).map(list),
                                  "to": st.tuples(ids, st.sampled_from(["x", "x", "in1", "in2", "y"])).map(list)})
    edges = draw(st.lists(wire, max_size=16))
    if draw(st.booleans()):  # a malformed edge somewhere
        edges.insert(draw(st.integers(0, len(edges))), {"from": ["n0"]})
    return {"nodes": nodes, "edges": edges}


def _load(doc: dict[str, Any], into: Graph | None = None) -> Any:
    try:
        return graph_from_dict(json.loads(json.dumps(doc)), into=into).to_dict()
    except ProjectError as exc:
        return "ProjectError", str(exc), exc.path


@settings(max_examples=400, deadline=None, derandomize=True, database=None)
@given(graph_docs())
def test_loading_wires_all_edges_at_once_with_the_same_outcome(doc: dict[str, Any]) -> None:
    """One cycle check for all the edges reports the same first error as a check per edge."""
    assert _load(doc) == _load(doc, ReferenceGraph())


def test_the_first_edge_closing_a_cycle_is_named_even_with_later_errors() -> None:
    nodes = [{"id": f"n{i}", "type": "ReLU", "name": f"r{i}"} for i in range(6)]
    edges = [{"from": [f"n{i}", "y"], "to": [f"n{i + 1}", "x"]} for i in range(3)]
    edges += [{"from": ["n3", "y"], "to": ["n0", "x"]},  # closes r0 -> r1 -> r2 -> r3 -> r0
              {"from": ["n1", "y"], "to": ["n4", "x"]}, {"from": ["n4", "y"], "to": ["n5", "x"]},  # fine
              {"from": ["n0", "y"], "to": ["n1", "nope"]}, {"to": ["n1"]}]
    with pytest.raises(ProjectError) as exc:
        graph_from_dict({"nodes": nodes, "edges": edges})
    assert str(exc.value) == 'graph.edges[3]: connecting "r3" to "r0" would create a cycle'
    assert _load({"nodes": nodes, "edges": edges}, ReferenceGraph())[1] == str(exc.value)


def test_connect_many_keeps_the_wires_before_the_refused_one() -> None:
    g = Graph()
    a, b, c = (g.add_node("ReLU").id for _ in range(3))
    heard: list[GraphEvent] = []
    g.subscribe(heard.append)
    failure = g.connect_many([(a, "y", b, "x"), (b, "y", c, "x"), (c, "y", a, "x"), (a, "y", c, "x")])
    assert failure is not None and failure[0] == 2 and isinstance(failure[1], CycleError)
    assert [(e.src, e.dst) for e in g.edges] == [(a, b), (b, c)]
    assert [(ev.kind, ev.edge) for ev in heard] == [("edge_added", e) for e in g.edges]
    assert g.connect_many([(c, "y", a, "x")]) is not None  # the graph still knows its wires
    assert list(nx.simple_cycles(g._nx)) == []


# --------------------------------------------------------------------------- the samples


@pytest.mark.parametrize("sample", SAMPLES, ids=lambda p: p.name)
def test_samples_load_save_and_check_as_before(sample: Path, tmp_path: Path) -> None:
    sample = provide_init_from(sample, tmp_path)
    project = load_project(sample)
    doc = json.loads(sample.read_text())
    assert project.to_dict()["graph"]["edges"] == doc["graph"]["edges"]  # saved in the file's order
    reference = Project(graph_from_dict(doc["graph"], into=ReferenceGraph(project.blocks)), project.name,
                        project.description, project.data, project.training, project.weights,
                        graphs=project.graphs, blocks=project.blocks)
    reference.path = project.path  # paths in the project (training.init_from) are relative to its folder
    assert project.to_json() == reference.to_json()
    assert project.graph.topological_order() == reference.graph.topological_order()
    assert project.graph.sorted_edges() == reference.graph.sorted_edges()
    report = check_report(project)
    assert report == check_report(reference)
    assert [b["uses"] for b in report["blocks"]] == [[n.name for _, _, n in project.blocks.uses(b.id)]
                                                     for b in project.blocks]


# --------------------------------------------------------------------------- ONNX constants


@pytest.mark.parametrize("value", [
    np.array([-1, 4], np.int64), np.array(3.5, np.float32), np.zeros((2, 0, 3), np.float32),
    np.arange(6, dtype=np.int32).reshape(2, 3), np.array([True, False]), np.array([1.5, -2], np.float16),
    np.array([7], np.uint8), np.array([2.25], np.float64),
])
def test_a_constant_folds_as_the_reference_evaluator_computes_it(value: np.ndarray) -> None:
    from onnx.reference import ReferenceEvaluator

    from workbench.importers.onnx_import import _fold

    node = helper.make_node("Constant", [], ["c"], value=numpy_helper.from_array(value))
    opset = [helper.make_opsetid("", 17)]
    graph = helper.make_graph([node], "g", [], [helper.make_tensor_value_info("c", TensorProto.UNDEFINED, None)])
    (expected,) = ReferenceEvaluator(helper.make_model(graph, opset_imports=opset)).run(None, {})
    (got,) = _fold(node, {}, opset)
    assert got.dtype == expected.dtype and got.shape == expected.shape
    np.testing.assert_array_equal(got, expected)
    other = helper.make_node("Constant", [], ["c"], value_ints=[1, 2])  # not the fast form: evaluated as before
    np.testing.assert_array_equal(_fold(other, {}, opset)[0], np.array([1, 2]))


def test_imported_weights_load_as_load_state_dict_loads_them() -> None:
    import torch

    from workbench.builder import GraphBuilder
    from workbench.compiler import compile_graph
    from workbench.importers.onnx_import import _load_state

    b = GraphBuilder()
    x = b.input((3, 8, 8), name="x")
    x = b.layer("Conv2d", x, out_channels=4, padding=[1, 1], name="conv")
    x = b.layer("BatchNorm2d", x, name="bn")
    x = b.layer("Flatten", b.layer("ReLU", x, name="relu"), name="flat")
    b.output(b.layer("Linear", x, out_features=5, name="fc"))
    torch.manual_seed(0)
    tensors = {k: torch.randn_like(v.float()).to(v.dtype) for k, v in compile_graph(b.graph).module.state_dict().items()}
    ours, torchs = compile_graph(b.graph).module, compile_graph(b.graph).module
    _load_state(ours, tensors)
    torchs.load_state_dict(tensors, strict=True)
    for (k, a), (k2, c) in zip(ours.state_dict().items(), torchs.state_dict().items(), strict=True):
        assert k == k2 and torch.equal(a, c)
    for broken in ({k: v for k, v in tensors.items() if k != "fc.bias"}, {**tensors, "fc.extra": tensors["fc.bias"]},
                   {**tensors, "fc.bias": torch.zeros(6)}):
        with pytest.raises(RuntimeError) as ours_error:
            _load_state(compile_graph(b.graph).module, broken)
        with pytest.raises(RuntimeError) as torch_error:
            compile_graph(b.graph).module.load_state_dict(broken, strict=True)
        assert str(ours_error.value) == str(torch_error.value)
