"""Layered auto-layout computed from the graph's structure (networkx).

Nodes go into layers by longest path from the inputs; within a layer they are
ordered by the barycentre of their predecessors to reduce crossings.
"""

from __future__ import annotations

from .graph import Graph


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
    if direction not in ("TB", "LR"):
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
