"""Layered auto-layout computed from the graph's structure (networkx), and the direction a
laid-out graph flows in.

Nodes go into layers by longest path from the inputs; within a layer they are
ordered by the barycentre of their predecessors to reduce crossings.  Wires are
routed around nodes by :mod:`workbench.routing`.
"""

from __future__ import annotations

from .graph import Graph

NODE_SIZE = (190.0, 66.0)
"""The canvas's node box (width, height): the layouts leave room for it and :func:`flow_direction`
judges positions by it."""
DIRECTIONS = ("TB", "LR")


def auto_layout(
    graph: Graph,
    direction: str = "TB",
    layer_gap: float = 110.0,
    node_gap: float = 240.0,
    sweeps: int = 4,
) -> dict[str, tuple[float, float]]:
    """Positions for every node.

    Args:
        direction: ``"TB"`` (top to bottom) or ``"LR"`` (left to right).
        layer_gap: distance between layers; node_gap: between nodes of a layer.
        sweeps: barycentre ordering passes.

    Returns:
        node id -> (x, y), centred on x = 0 for TB (y = 0 for LR).
    """
    if direction not in DIRECTIONS:
        raise ValueError(f"direction must be TB or LR, got {direction!r}")
    order = graph.topological_order()
    level: dict[str, int] = {}
    for nid in order:
        preds = [e.src for e in graph.edges_into(nid)]
        level[nid] = 1 + max((level[p] for p in preds), default=-1)
    layers: dict[int, list[str]] = {}
    for nid in order:
        layers.setdefault(level[nid], []).append(nid)
    rank: dict[str, float] = {}
    for nodes in layers.values():
        for i, nid in enumerate(nodes):
            rank[nid] = float(i)
    for _ in range(sweeps):
        for lv in sorted(layers):
            nodes = layers[lv]

            def bary(nid: str) -> float:
                preds = [rank[e.src] for e in graph.edges_into(nid)]
                return sum(preds) / len(preds) if preds else rank[nid]

            nodes.sort(key=lambda n: (bary(n), rank[n]))
            for i, nid in enumerate(nodes):
                rank[nid] = float(i)
    pos: dict[str, tuple[float, float]] = {}
    for lv, nodes in layers.items():
        width = (len(nodes) - 1) * node_gap
        for i, nid in enumerate(nodes):
            across, along = i * node_gap - width / 2, lv * layer_gap
            pos[nid] = (across, along) if direction == "TB" else (along * 2.2, across / 1.6)
    return pos


def flow_direction(graph: Graph, node_size: tuple[float, float] = NODE_SIZE) -> str:
    """Which way the graph's wires run as its nodes are placed: ``"LR"`` when more wires go from a
    node to one entirely on its right (and not below it) than to one entirely below it (and not
    beside it); otherwise ``"TB"``.  Diagonal wires (a fan-out to a wide layer) do not vote.  So a
    graph laid out left to right reads as such when it is opened again, with nothing stored."""
    w, h = node_size
    pos = {n.id: n.position for n in graph}
    right = down = 0
    for e in graph.edges:
        (ax, ay), (bx, by) = pos[e.src], pos[e.dst]
        is_right, is_down = bx >= ax + w, by >= ay + h
        if is_right and not is_down:
            right += 1
        elif is_down and not is_right:
            down += 1
    return "LR" if right > down else "TB"
