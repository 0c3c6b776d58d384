"""Property: any random sequence of edits, undone completely, returns the starting
graph; redone completely, returns the edited graph (compared as project JSON).

The edits include grouping nodes into blocks, ungrouping them, making a block
unique, adding ready blocks and editing inside a block, so the blocks section of
the project is covered too.

The search is derandomized and keeps no example database, so every run tries the
same cases: a failure seen once fails every time.  Each failure found (here or by a
longer search, see ``HUNT`` below) stays as an explicit ``@example``."""

from __future__ import annotations

import json
import os
from pathlib import Path

from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from PySide6.QtCore import QPointF

from ui.canvas.editor import CanvasEditor
from ui.canvas.scene import GraphScene
from ui.canvas.view import GraphView
from ui.canvas.wiring import cycle_reason
from ui.commands import (
    ConnectCommand,
    GroupCommand,
    MakeUniqueCommand,
    MoveNodesCommand,
    RemoveNodesCommand,
    RenameCommand,
    RewireCommand,
    SetParamsCommand,
    UngroupCommand,
)
from ui.document import Document
from workbench.errors import WorkbenchError
from workbench.graph import Edge, Graph
from workbench.grouping import Grouping, MakeUnique, Ungrouping
from workbench.layers import REGISTRY
from workbench.project import load_project
from workbench.ready_blocks import ready_catalogue

SAMPLES = [Path(__file__).resolve().parents[2] / "samples" / name for name in ("digits_cnn.json", "digits_resnet.json")]
CNN, RESNET = SAMPLES
LAYERS = sorted(REGISTRY) + [f"ready:{b.id}" for b in ready_catalogue()]
#: a longer, random search: HUNT=3000 pytest tests/ui/test_undo_property.py (add what it finds as @example)
HUNT = int(os.environ.get("HUNT", "0"))

op = st.one_of(
    st.tuples(st.just("add"), st.sampled_from(LAYERS), st.integers(-300, 300), st.integers(-300, 300)),
    st.tuples(st.just("delete"), st.integers(0, 10_000)),
    st.tuples(st.just("connect"), st.integers(0, 10_000), st.integers(0, 10_000)),
    st.tuples(st.just("disconnect"), st.integers(0, 10_000)),
    st.tuples(st.just("param"), st.integers(0, 10_000), st.integers(0, 10_000)),
    st.tuples(st.just("rename"), st.integers(0, 10_000), st.text("abcxyz_ ", min_size=1, max_size=6)),
    st.tuples(st.just("move"), st.integers(0, 10_000), st.integers(-200, 200)),
    st.tuples(st.just("duplicate"), st.integers(0, 10_000)),
    st.tuples(st.just("layout"),),
    st.tuples(st.just("group"), st.integers(0, 10_000), st.integers(1, 4)),
    st.tuples(st.just("ungroup"), st.integers(0, 10_000)),
    st.tuples(st.just("unique"), st.integers(0, 10_000)),
    st.tuples(st.just("inner"), st.integers(0, 10_000), st.integers(0, 10_000)),
    # the quick gestures: a drop on a wire, a drop after the selected node, a wire onto a taken input,
    # a wire end moved to another input or off it
    st.tuples(st.just("insert"), st.sampled_from(LAYERS), st.integers(0, 10_000)),
    st.tuples(st.just("after"), st.sampled_from(LAYERS), st.integers(0, 10_000)),
    st.tuples(st.just("replace"), st.integers(0, 10_000), st.integers(0, 10_000)),
    st.tuples(st.just("reroute"), st.integers(0, 10_000), st.integers(0, 10_000), st.booleans()),
)


def _set_int_param(stack, g: Graph, nid: str, choice: int) -> None:
    node = g.nodes[nid]
    numeric = [p for p in node.spec.params if p.kind == "int" and p.name != "num_inputs"]
    if numeric:
        p = numeric[choice % len(numeric)]
        lo = p.minimum if p.minimum is not None else 0  # type: ignore[attr-defined]
        value = lo + choice % 5
        if value != node.params[p.name]:
            stack.push(SetParamsCommand(g, [node.id], {p.name: value}))


def apply(editor: CanvasEditor, doc: Document, action: tuple) -> None:
    g, stack = doc.graph, doc.undo_stack
    ids = list(g.nodes)
    kind = action[0]
    if kind == "add":
        editor.scene.clearSelection()
        editor.add_layer(action[1], QPointF(action[2], action[3]), connect=False)
    elif not ids and kind != "layout":
        return
    elif kind == "delete":
        stack.push(RemoveNodesCommand(g, [ids[action[1] % len(ids)]]))
    elif kind == "connect":
        src, dst = g.nodes[ids[action[1] % len(ids)]], g.nodes[ids[action[2] % len(ids)]]
        if src.output_ports and dst.input_ports:
            port = dst.input_ports[action[2] % len(dst.input_ports)]
            if g.can_connect(src.id, src.output_ports[0], dst.id, port) is None:
                stack.push(ConnectCommand(g, Edge(src.id, src.output_ports[0], dst.id, port)))
    elif kind == "disconnect":
        if g.edges:
            stack.push(RemoveNodesCommand(g, [], [g.edges[action[1] % len(g.edges)]]))
    elif kind == "param":
        _set_int_param(stack, g, ids[action[1] % len(ids)], action[2])
    elif kind == "rename":
        nid = ids[action[1] % len(ids)]
        name = action[2].strip()
        if name and name not in g.names():
            stack.push(RenameCommand(g, nid, name))
    elif kind == "move":
        nid = ids[action[1] % len(ids)]
        old = g.nodes[nid].position
        stack.push(MoveNodesCommand(g, {nid: (old, (old[0] + action[2], old[1] - action[2]))}))
    elif kind == "duplicate":
        editor.scene.select_nodes([ids[action[1] % len(ids)]])
        editor.duplicate()
    elif kind == "layout":
        editor.auto_layout("TB")
    elif kind == "group":
        order = g.topological_order()
        start = order.index(ids[action[1] % len(ids)])
        chosen = order[start:start + action[2]]
        try:
            change = Grouping(g, chosen, "Block")
        except WorkbenchError:
            return  # refused with a reason (an Input in it, a gap, unknown shapes): nothing to undo
        stack.push(GroupCommand(change))
    elif kind == "ungroup":
        blocks = [n for n in ids if g.nodes[n].is_block]
        if blocks:
            stack.push(UngroupCommand(Ungrouping(g, blocks[action[1] % len(blocks)])))
    elif kind == "unique":
        blocks = [n for n in ids if g.nodes[n].is_block]
        if blocks:
            stack.push(MakeUniqueCommand(MakeUnique(g, blocks[action[1] % len(blocks)])))
    elif kind == "insert":
        if g.edges:
            edge = g.edges[action[2] % len(g.edges)]
            pos = g.nodes[edge.dst].position
            editor.insert_on_wire(action[1], QPointF(pos[0] + 30, pos[1] - 40), edge)
    elif kind == "after":
        editor.scene.select_nodes([ids[action[2] % len(ids)]])
        editor.add_layer(action[1], QPointF(400, 400))
    elif kind == "replace":
        taken = [e for e in g.edges]
        src = g.nodes[ids[action[1] % len(ids)]]
        if taken and src.output_ports:
            old = taken[action[2] % len(taken)]
            new = Edge(src.id, src.output_ports[0], old.dst, old.dst_port)
            if new != old and cycle_reason(g, src.id, old.dst) is None:
                stack.push(RewireCommand(g, [old], [new], "Replace"))
    elif kind == "reroute":
        if g.edges:
            picked = g.edges[action[1] % len(g.edges)]
            if action[3]:  # off the input, onto nothing
                stack.push(RewireCommand(g, [picked], [], "Disconnect"))
            else:
                dst = g.nodes[ids[action[2] % len(ids)]]
                if dst.input_ports:
                    port = dst.input_ports[action[2] % len(dst.input_ports)]
                    taken = g.edge_into(dst.id, port)
                    if (dst.id, port) != (picked.dst, picked.dst_port) and cycle_reason(g, picked.src, dst.id) is None:
                        remove = [picked] + ([taken] if taken is not None else [])
                        new = Edge(picked.src, picked.src_port, dst.id, port)
                        stack.push(RewireCommand(g, remove, [new], "Reconnect"))
    elif kind == "inner":
        defs = list(doc.project.blocks)
        if defs:
            inner = defs[action[1] % len(defs)].graph
            layers = [n.id for n in inner if n.spec.role == "layer"]
            if layers:
                _set_int_param(stack, inner, layers[action[2] % len(layers)], action[2])


@settings(max_examples=HUNT or 150, derandomize=not HUNT, database=None, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(sample=st.sampled_from(SAMPLES), actions=st.lists(op, min_size=1, max_size=25))
# Make Block Unique, then an edit inside the copy: redo re-created the copy, and the edit went to the old one
@example(sample=RESNET, actions=[("unique", 0), ("inner", 1, 0)])
# the same with a ready block dropped from the palette (its redo re-created the block too)
@example(sample=CNN, actions=[("add", "ready:ResBlock", 0, 0), ("inner", 0, 0)])
# every quick gesture at least once, a ready block into a wire among them
@example(sample=RESNET, actions=[("insert", "ReLU", 3), ("replace", 0, 5), ("reroute", 2, 7, False),
                                 ("reroute", 1, 0, True), ("after", "Dropout", 4), ("insert", "ready:ResBlock", 6),
                                 ("layout",), ("insert", "Add", 2)])
def test_random_edits_undo_to_the_start_and_redo_to_the_end(qtbot, sample, actions) -> None:
    doc = Document(load_project(sample))  # the ResNet starts with blocks to ungroup and edit inside
    scene = GraphScene(doc)
    view = GraphView(scene)
    qtbot.addWidget(view)
    editor = CanvasEditor(view)
    start = json.loads(doc.project.to_json())
    for action in actions:
        apply(editor, doc, action)
    end = json.loads(doc.project.to_json())
    stack = doc.undo_stack
    while stack.canUndo():
        stack.undo()
    assert json.loads(doc.project.to_json()) == start
    # the scene mirrors the graph after undo-all
    assert set(scene.nodes) == set(doc.graph.nodes) and set(scene.edges) == set(doc.graph.edges)
    while stack.canRedo():
        stack.redo()
    assert json.loads(doc.project.to_json()) == end
    assert set(scene.nodes) == set(doc.graph.nodes) and set(scene.edges) == set(doc.graph.edges)
    scene.detach()
