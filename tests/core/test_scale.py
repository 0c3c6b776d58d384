"""Large graphs cost linear time: guards on the amount of work, never on the clock.

The work of an operation is counted as the Python lines it executes (``sys.settrace``
line events, which also fire once per iteration of a one-line loop or comprehension,
in the workbench and in the libraries it calls).  Work that is linear in the graph's
size grows 4x when the graph grows 4x; one O(n) scan per node (a name lookup, a path
search, a filter over all edges) makes it grow 16x.  Each test measures the same
operation at two sizes and bounds the ratio, so the bound does not depend on this
machine's speed, and a per-node O(n) helper shows up however fast the machine is.
"""

from __future__ import annotations

import itertools
import random
import re
import sys
from collections.abc import Callable
from typing import Any

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from workbench.cli import check_report
from workbench.compiler import compile_graph
from workbench.graph import Graph
from workbench.layout import auto_layout
from workbench.project import Project, graph_from_dict, project_from_dict

SMALL, LARGE = 400, 1600
#: linear work grows LARGE / SMALL = 4x; the slack covers fixed costs and n log n sorting
LINEAR = 5.0


def python_lines(fn: Callable[[], Any]) -> int:
    """How many Python lines ``fn()`` executes (every frame, libraries included)."""
    count = 0

    def local(frame: Any, event: str, arg: Any) -> Any:
        nonlocal count
        if event == "line":
            count += 1
        return local

    previous = sys.gettrace()
    sys.settrace(lambda frame, event, arg: local)
    try:
        fn()
    finally:
        sys.settrace(previous)
    return count


def growth(make: Callable[[int], Callable[[], Any]], small: int = SMALL, large: int = LARGE) -> float:
    """Work at ``large`` over work at ``small`` (the inputs are built outside the count)."""
    a, b = make(small), make(large)
    return python_lines(b) / python_lines(a)


def chain(n: int, skip: bool = False) -> Graph:
    """About ``n`` nodes: Input, Linear/ReLU pairs (each pair closed by a residual Add
    when ``skip``), Output.  Names are left to the graph (``linear1``, ``relu1``...)."""
    g = Graph()
    prev = res = g.add_node("Input", {"shape": [4]}, "x").id
    while len(g) < n - 1:
        lin = g.add_node("Linear", {"out_features": 4})
        g.connect(prev, "y", lin.id, "x")
        relu = g.add_node("ReLU")
        g.connect(lin.id, "y", relu.id, "x")
        prev = relu.id
        if skip:
            add = g.add_node("Add")
            g.connect(relu.id, "y", add.id, "in1")
            g.connect(res, "y", add.id, "in2")
            prev = res = add.id
    out = g.add_node("Output")
    g.connect(prev, "y", out.id, "x")
    return g


def project_doc(n: int, skip: bool = False, shuffle: bool = False) -> dict[str, Any]:
    """The project file of :func:`chain`; ``shuffle`` lists its nodes in a random order,
    and the edges by destination in that order, as the graph would save if its nodes
    had been added in that order (files need not list them topologically)."""
    doc = Project(chain(n, skip), "scale").to_dict()
    if shuffle:
        nodes = doc["graph"]["nodes"]
        random.Random(n).shuffle(nodes)
        where = {nd["id"]: i for i, nd in enumerate(nodes)}
        doc["graph"]["edges"].sort(key=lambda e: where[e["to"][0]])
    return doc


def bridged(n: int) -> dict[str, Any]:
    """The file of a graph whose last-listed nodes bridge two long paths: ``taps``
    added after a ReLU chain and a chain of Adds, each feeding one Add from the end
    of the ReLU chain.  Wiring the file edge by edge, every tap's input wire had a
    long path downstream of it and a long one upstream, and a path search per wire
    walked them."""
    g = Graph()
    k = n // 3
    relus = [g.add_node("Input", {"shape": [4]}, "x").id] + [g.add_node("ReLU").id for _ in range(k)]
    adds = [g.add_node("Add").id for _ in range(k)]
    taps = [g.add_node("ReLU").id for _ in range(k)]
    for a, b in itertools.pairwise(relus):
        g.connect(a, "y", b, "x")
    prev = relus[0]
    for add, tap in zip(adds, taps, strict=True):
        g.connect(prev, "y", add, "in1")
        g.connect(tap, "y", add, "in2")
        g.connect(relus[-1], "y", tap, "x")
        prev = add
    g.connect(prev, "y", g.add_node("Output").id, "x")
    return Project(g, "bridged").to_dict()


def onnx_chain(n: int, skip: bool = False) -> onnx.ModelProto:
    """A foreign ONNX model of about ``n`` operators: Gemm/Relu (+ Add) blocks, Constant shapes."""
    rng = np.random.default_rng(0)
    nodes, inits = [], []
    prev = res = "x"
    k = 0
    while len(nodes) < n:
        inits += [numpy_helper.from_array(rng.standard_normal((4, 4)).astype(np.float32), f"l{k}.weight"),
                  numpy_helper.from_array(rng.standard_normal(4).astype(np.float32), f"l{k}.bias")]
        nodes.append(helper.make_node("Gemm", [prev, f"l{k}.weight", f"l{k}.bias"], [f"g{k}"], name=f"/l{k}/Gemm",
                                      transB=1))
        nodes.append(helper.make_node("Relu", [f"g{k}"], [f"r{k}"], name=f"/r{k}/Relu"))
        prev = f"r{k}"
        if skip:
            nodes.append(helper.make_node("Add", [prev, res], [f"a{k}"], name=f"/a{k}/Add"))
            prev = res = f"a{k}"
        k += 1
    graph = helper.make_graph(nodes, "chain", [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 4])],
                              [helper.make_tensor_value_info(prev, TensorProto.FLOAT, ["N", 4])], inits)
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])


# --------------------------------------------------------------------------- growth of the work


@pytest.mark.parametrize("skip", [False, True], ids=["chain", "skips"])
def test_building_a_graph_node_by_node_is_linear(skip: bool) -> None:
    # add_node names each node (unique_name) and connect checks for cycles
    assert growth(lambda n: lambda: chain(n, skip)) < LINEAR


@pytest.mark.parametrize(("skip", "shuffle"), [(False, False), (True, False), (True, True)],
                         ids=["chain", "skips", "skips-shuffled"])
def test_loading_a_project_is_linear(skip: bool, shuffle: bool) -> None:
    # validate_name per node, a cycle check per edge
    assert growth(lambda n: (lambda doc: lambda: project_from_dict(doc))(project_doc(n, skip, shuffle))) < LINEAR


def test_loading_a_project_whose_wires_bridge_long_paths_is_linear() -> None:
    assert growth(lambda n: (lambda doc: lambda: project_from_dict(doc))(bridged(n))) < LINEAR


@pytest.mark.parametrize("skip", [False, True], ids=["chain", "skips"])
def test_saving_a_project_is_linear(skip: bool) -> None:
    assert growth(lambda n: (lambda p: p.to_json)(Project(chain(n, skip)))) < LINEAR


@pytest.mark.parametrize("skip", [False, True], ids=["chain", "skips"])
def test_check_is_linear(skip: bool) -> None:
    assert growth(lambda n: (lambda p: lambda: check_report(p))(project_from_dict(project_doc(n, skip)))) < LINEAR


def test_check_with_many_outputs_is_linear() -> None:
    # the dead-branch warning walked back from each Output separately
    def make(n: int) -> Callable[[], Any]:
        g = Graph()
        x = g.add_node("Input", {"shape": [4]}).id
        for _ in range(n // 2):
            relu = g.add_node("ReLU").id
            g.connect(x, "y", relu, "x")
            x = relu
            g.connect(relu, "y", g.add_node("Output").id, "x")
        return lambda: check_report(Project(g))

    assert growth(make) < LINEAR


@pytest.mark.parametrize("skip", [False, True], ids=["chain", "skips"])
def test_auto_layout_is_linear(skip: bool) -> None:
    assert growth(lambda n: (lambda g: lambda: auto_layout(g))(chain(n, skip))) < LINEAR


def test_compile_is_linear() -> None:
    assert growth(lambda n: (lambda g: lambda: compile_graph(g))(chain(n, True)), 150, 600) < LINEAR


def test_compile_with_clashing_identifiers_is_linear() -> None:
    # names that sanitise to the same identifier ("a+", "a-", "a→"... are all a_) get numbered suffixes
    symbols = [c for c in map(chr, range(0x2000, 0x3000)) if re.fullmatch(r"\W", c) and not c.isspace()]

    def make(n: int) -> Callable[[], Any]:
        g = Graph()
        x = g.add_node("Input", {"shape": [4]}, "x").id
        for i in range(n):
            relu = g.add_node("ReLU", name=f"a{symbols[i]}").id
            g.connect(x, "y", relu, "x")
            x = relu
        g.connect(x, "y", g.add_node("Output").id, "x")
        return lambda: compile_graph(g)

    assert growth(make, 150, 600) < LINEAR


@pytest.mark.parametrize("skip", [False, True], ids=["chain", "skips"])
def test_onnx_import_is_linear(skip: bool, tmp_path) -> None:
    """As ``workbench import`` does it: read, map, lay out, then write project and weights."""
    from workbench.importers.onnx_import import import_onnx, write_import

    def make(n: int) -> Callable[[], Any]:
        path = tmp_path / f"m{n}.onnx"
        onnx.save(onnx_chain(n, skip), path)
        return lambda: write_import(import_onnx(path), tmp_path / f"m{n}.json")

    assert growth(make, 150, 600) < LINEAR


def test_undo_records_look_up_positions_once() -> None:
    """``records`` (what undo keeps of deleted nodes) needs each node's position in the
    node order: a scan of the node list per node made deleting a selection quadratic."""

    class CountingDict(dict):
        scans = 0

        def __iter__(self):  # list(d), enumerate(d), d.index... all start here
            CountingDict.scans += 1
            return super().__iter__()

    g = chain(300)
    g._nodes = CountingDict(g._nodes)  # the node order, observed
    ids = list(g.nodes)[::2]
    CountingDict.scans = 0
    records = g.records(ids)
    assert [r["index"] for r in records] == list(range(0, len(g), 2))
    assert CountingDict.scans <= 2


def test_graph_from_dict_fills_a_given_graph() -> None:
    # (a block's inside is loaded into a graph made for it)
    doc = project_doc(50, skip=True)["graph"]
    into = Graph()
    assert graph_from_dict(doc, into=into) is into
    assert into.to_dict() == doc


def test_loading_imported_weights_is_linear() -> None:
    """torch's load_state_dict filters the whole dict once per child module, and a compiled
    graph has a child per layer: ``write_import`` loads each layer's part by itself."""
    import torch

    from workbench.importers.onnx_import import _load_state

    def make(n: int) -> Callable[[], Any]:
        module = compile_graph(chain(n)).module
        tensors = {k: torch.zeros_like(v) for k, v in module.state_dict().items()}
        return lambda: _load_state(module, tensors)

    assert growth(make) < LINEAR
