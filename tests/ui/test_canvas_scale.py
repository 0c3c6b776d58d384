"""A huge graph opens with plain curves and routes its wires afterwards, a slice of the event loop
at a time; the routes it ends with are the ones a synchronous open draws."""

from __future__ import annotations

from pathlib import Path

import pytest

import ui.canvas.scene as scene_module
from workbench.builder import GraphBuilder
from workbench.project import Project, save_project


def skip_chain(path: Path) -> Path:
    """Eight layers in a column with a skip from the second to the last: its wire must go round."""
    b = GraphBuilder()
    x = b.input((8,), name="x")
    first = b.layer("Linear", x, out_features=8, name="l0")
    h = first
    for i in range(1, 7):
        h = b.layer("Linear", h, out_features=8, name=f"l{i}")
    b.output(b.layer("Add", h, first, name="join"))
    b.auto_layout()
    save_project(Project(b.graph, "skips"), path)
    return path


def routes(window) -> dict:
    return {(e.src, e.dst, e.dst_port): (None if item.route is None else [(p.x(), p.y()) for p in item.route])
            for e, item in window.scene.edges.items()}


def test_a_huge_graph_routes_its_wires_after_opening_as_an_open_would(window, qtbot, tmp_path: Path,
                                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    path = skip_chain(tmp_path / "p.json")
    window.open_path(path)
    expected = routes(window)
    assert any(r is not None for r in expected.values())  # the skip is routed round the column
    assert window.scene.routing_pending == 0
    monkeypatch.setattr(scene_module, "ROUTE_AT_OPEN_LIMIT", 3)  # this graph now counts as huge
    window.open_path(path)
    assert window.scene.routing_pending == len(window.doc.graph.edges)
    assert all(r is None for r in routes(window).values())  # plain curves first
    qtbot.waitUntil(lambda: window.scene.routing_pending == 0, timeout=10_000)  # the event loop routes them
    assert routes(window) == expected
