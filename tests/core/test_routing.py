"""Wires routed around nodes (workbench.routing) and the direction a laid-out graph flows in
(workbench.layout), checked against brute force.

The obstacle index is compared with a scan of every rectangle; routes are checked segment by
segment against every node's box by an independent test for axis-aligned segments (routes are
orthogonal), and plain curves by sampling the cubic finely.
"""

from __future__ import annotations

import random
from itertools import pairwise

import pytest

from workbench.builder import GraphBuilder
from workbench.graph import Graph
from workbench.layout import NODE_SIZE, auto_layout, flow_direction
from workbench.routing import ObstacleIndex, curve_controls, route_wire, segment_hits_rect

W, H = NODE_SIZE
Rect = tuple[float, float, float, float]


# ---------------------------------------------------------------- brute-force references
def overlaps(r: Rect, x0: float, y0: float, x1: float, y1: float) -> bool:
    """Whether ``r`` overlaps the box with some area (touching edges do not count)."""
    return r[0] < x1 and r[0] + r[2] > x0 and r[1] < y1 and r[1] + r[3] > y0


def axis_segment_crosses(p: tuple[float, float], q: tuple[float, float], r: Rect) -> bool:
    """Whether an axis-aligned segment runs through the inside of ``r`` (not along its edge)."""
    x0, y0, x1, y1 = r[0], r[1], r[0] + r[2], r[1] + r[3]
    if p[1] == q[1]:  # horizontal
        lo, hi = sorted((p[0], q[0]))
        return y0 < p[1] < y1 and min(hi, x1) - max(lo, x0) > 1e-9
    assert p[0] == q[0], f"not an orthogonal segment: {p} -> {q}"
    lo, hi = sorted((p[1], q[1]))
    return x0 < p[0] < x1 and min(hi, y1) - max(lo, y0) > 1e-9


def cubic(a, c1, c2, b, n: int = 400) -> list[tuple[float, float]]:
    pts = []
    for k in range(n + 1):
        t = k / n
        s = 1 - t
        w = (s**3, 3 * s * s * t, 3 * s * t * t, t**3)
        pts.append((w[0] * a[0] + w[1] * c1[0] + w[2] * c2[0] + w[3] * b[0],
                    w[0] * a[1] + w[1] * c1[1] + w[2] * c2[1] + w[3] * b[1]))
    return pts


def point_inside(p: tuple[float, float], r: Rect) -> bool:
    return r[0] < p[0] < r[0] + r[2] and r[1] < p[1] < r[1] + r[3]


def crossed_nodes(a, b, route, rects: dict[str, Rect], direction: str) -> list[str]:
    """The nodes the wire from ``a`` to ``b`` runs through: its orthogonal ``route``, or (None) its curve."""
    if route is None:
        pts = cubic(a, *curve_controls(a, b, direction), b)
        return [k for k, r in rects.items() if any(point_inside(p, r) for p in pts)]
    assert route[0] == pytest.approx(a) and route[-1] == pytest.approx(b)
    return [k for k, r in rects.items() if any(axis_segment_crosses(p, q, r) for p, q in pairwise(route))]


def index_of(rects: dict[str, Rect]) -> ObstacleIndex:
    index = ObstacleIndex()
    for k, r in rects.items():
        index.set(k, r)
    return index


def out_port(r: Rect, direction: str) -> tuple[float, float]:
    return (r[0] + r[2] / 2, r[1] + r[3]) if direction == "TB" else (r[0] + r[2], r[1] + r[3] / 2)


def in_port(r: Rect, direction: str) -> tuple[float, float]:
    return (r[0] + r[2] / 2, r[1]) if direction == "TB" else (r[0], r[1] + r[3] / 2)


# ---------------------------------------------------------------- the obstacle index
def random_rect(rng: random.Random, spread: float = 3000.0) -> Rect:
    return (rng.uniform(-spread, spread), rng.uniform(-spread, spread), rng.uniform(1, 400), rng.uniform(1, 300))


@pytest.mark.parametrize("cell", [64.0, 256.0])
def test_the_obstacle_index_answers_as_a_scan_of_every_rectangle_does(cell: float) -> None:
    rng = random.Random(15)
    index, truth = ObstacleIndex(cell), {}
    for step in range(1500):
        op = rng.random()
        if op < 0.55 or not truth:  # add
            key = f"k{step}"
            truth[key] = random_rect(rng)
            index.set(key, truth[key])
        elif op < 0.8:  # move (sometimes to where it already is)
            key = rng.choice(sorted(truth))
            truth[key] = truth[key] if rng.random() < 0.1 else random_rect(rng)
            index.set(key, truth[key])
        else:
            key = rng.choice(sorted(truth))
            del truth[key]
            index.remove(key)
        assert len(index) == len(truth)
        if step % 10 == 0:
            for _ in range(5):
                x0, y0 = rng.uniform(-3500, 3500), rng.uniform(-3500, 3500)
                size = rng.choice([5.0, 300.0, 3000.0, 20000.0])  # small boxes, and huge ones (the scan path)
                x1, y1 = x0 + rng.uniform(0, size), y0 + rng.uniform(0, size)
                expected = {k for k, r in truth.items() if overlaps(r, x0, y0, x1, y1)}
                assert set(index.query(x0, y0, x1, y1)) == expected
                assert index.estimate(x0, y0, x1, y1, 10**9) >= len(expected)  # per cell: never fewer
            bounds = index.bounds()
            if truth:
                x0 = min(r[0] for r in truth.values())
                y0 = min(r[1] for r in truth.values())
                x1 = max(r[0] + r[2] for r in truth.values())
                y1 = max(r[1] + r[3] for r in truth.values())
                assert bounds == pytest.approx((x0, y0, x1 - x0, y1 - y0))
            else:
                assert bounds is None
    index.remove("not there")  # removing an unknown key is no error
    assert {k: index.rect(k) for k in truth} == truth and all(k in index for k in truth)


def test_the_obstacle_index_does_not_count_touching_edges() -> None:
    index = ObstacleIndex()
    index.set("a", (0.0, 0.0, 100.0, 50.0))
    assert index.query(100, 0, 200, 50) == []  # shares the right edge only
    assert index.query(0, 50, 100, 90) == []  # the bottom edge
    assert index.query(99, 49, 200, 90) == ["a"]
    index.remove("a")
    assert index.bounds() is None and index.query(-1e6, -1e6, 1e6, 1e6) == []


# ---------------------------------------------------------------- segment against rectangle
R = (0.0, 0.0, 100.0, 50.0)


@pytest.mark.parametrize(("p", "q", "pad", "hits"), [
    ((-10, 25), (110, 25), 0, True),  # straight through
    ((50, -10), (50, 60), 0, True),
    ((-10, -10), (110, 60), 0, True),  # the diagonal
    ((20, 20), (30, 30), 0, True),  # wholly inside
    ((50, 25), (50, 200), 0, True),  # starts inside
    ((-10, 0), (110, 0), 0, False),  # along the top edge
    ((100, -10), (100, 60), 0, False),  # along the right edge
    ((-10, -10), (10, 10 - 30), 0, False),  # passes by
    ((90, -10), (110, 10), 0, False),  # through the corner point only
    ((-10, 60), (110, 60), 0, False),  # below
    ((-10, 60), (110, 60), 12, True),  # ... but within the padding
    ((50, 50), (50, 90), 0, False),  # leaves from the bottom edge outwards (a port's stub)
    ((50, 50), (50, 50), 0, False),  # a point on the edge
    ((110, 25), (-10, 25), 0, True),  # either way round
])
def test_segment_hits_rect(p, q, pad: float, hits: bool) -> None:
    assert segment_hits_rect(p, q, R, pad) is hits
    if pad == 0:  # the brute-force reference agrees where it applies (axis-aligned segments)
        if p[0] == q[0] or p[1] == q[1]:
            assert axis_segment_crosses(p, q, R) is hits
        else:  # a dense sample of the segment
            inside = any(point_inside((p[0] + (q[0] - p[0]) * t / 500, p[1] + (q[1] - p[1]) * t / 500), R)
                         for t in range(501))
            assert inside is hits


# ---------------------------------------------------------------- routes
def column(n: int, direction: str, pitch: float | None = None) -> dict[str, Rect]:
    """``n`` nodes one after another along the flow, as auto_layout spaces them."""
    if direction == "TB":
        return {f"n{k}": (0.0, k * (pitch or 110.0), W, H) for k in range(n)}
    return {f"n{k}": (k * (pitch or 242.0), 0.0, W, H) for k in range(n)}


@pytest.mark.parametrize("direction", ["TB", "LR"])
def test_a_wire_between_neighbours_is_a_plain_curve(direction: str) -> None:
    rects = column(4, direction)
    index = index_of(rects)
    for a, b in pairwise(sorted(rects)):
        assert route_wire(out_port(rects[a], direction), in_port(rects[b], direction), index, a, b, direction) is None
    # and with a node beside (not between) them
    side = (400.0, 0.0, W, H) if direction == "TB" else (0.0, 300.0, W, H)
    index.set("side", side)
    assert route_wire(out_port(rects["n0"], direction), in_port(rects["n1"], direction), index, "n0", "n1",
                      direction) is None


@pytest.mark.parametrize("direction", ["TB", "LR"])
def test_a_skip_over_a_column_of_nodes_goes_round_them(direction: str) -> None:
    rects = column(7, direction)
    index = index_of(rects)
    for first, last in (("n0", "n2"), ("n0", "n6"), ("n1", "n5")):
        a, b = out_port(rects[first], direction), in_port(rects[last], direction)
        route = route_wire(a, b, index, first, last, direction)
        assert route is not None, "the straight wire would run through the nodes it skips"
        assert crossed_nodes(a, b, route, rects, direction) == []
        # it leaves and arrives along the flow: the first and last legs are along it, out of / into the port
        along = 1 if direction == "TB" else 0
        assert route[1][along] > a[along] and route[1][1 - along] == a[1 - along]
        assert route[-2][along] < b[along] and route[-2][1 - along] == b[1 - along]
        # the plain curve would have crossed them: a route is not made for nothing
        assert crossed_nodes(a, b, None, rects, direction) != []


@pytest.mark.parametrize("direction", ["TB", "LR"])
def test_a_skip_finds_the_gap_between_two_columns(direction: str) -> None:
    """Two columns side by side: the skip over the left one runs round it, and not through the other."""
    rects = column(6, direction)
    shift = (W + 80.0, 0.0) if direction == "TB" else (0.0, H + 80.0)
    rects |= {f"m{k}": (r[0] + shift[0], r[1] + shift[1], W, H) for k, r in enumerate(column(6, direction).values())}
    index = index_of(rects)
    for first, last in (("n0", "n5"), ("m0", "m5"), ("n0", "m5"), ("m1", "n4")):
        a, b = out_port(rects[first], direction), in_port(rects[last], direction)
        route = route_wire(a, b, index, first, last, direction)
        assert crossed_nodes(a, b, route, rects, direction) == [], (first, last, route)


@pytest.mark.parametrize("direction", ["TB", "LR"])
def test_a_backwards_wire_goes_round_both_ends(direction: str) -> None:
    rects = column(5, direction)
    index = index_of(rects)
    a, b = out_port(rects["n4"], direction), in_port(rects["n1"], direction)  # from the last node back up
    route = route_wire(a, b, index, "n4", "n1", direction)
    assert route is not None
    assert crossed_nodes(a, b, route, rects, direction) == []  # its own two ends included
    along = 1 if direction == "TB" else 0
    assert route[1][along] > a[along] and route[-2][along] < b[along]  # out along the flow, in along it


def test_a_wire_with_nothing_in_its_way_needs_no_route_however_far() -> None:
    rects = {"a": (0.0, 0.0, W, H), "b": (600.0, 2000.0, W, H)}
    index = index_of(rects)
    assert route_wire(out_port(rects["a"], "TB"), in_port(rects["b"], "TB"), index, "a", "b") is None


# ---------------------------------------------------------------- the flow of a laid-out graph
def branching_graph() -> Graph:
    """A stem, two branches of different lengths joined again, and a head: fan-out and a skip."""
    b = GraphBuilder()
    x = b.input((16,), name="x")
    h = b.layer("Linear", x, out_features=16, name="stem")
    left = b.layer("ReLU", h, name="left")
    right = b.layer("Tanh", b.layer("Linear", h, out_features=16, name="r1"), name="r2")
    joined = b.layer("Add", left, right, name="join")
    b.output(b.layer("Linear", b.layer("Add", joined, h, name="skip"), out_features=4, name="head"))
    return b.graph


@pytest.mark.parametrize("direction", ["TB", "LR"])
def test_flow_direction_reads_back_the_layout(direction: str) -> None:
    g = branching_graph()
    for nid, pos in auto_layout(g, direction).items():
        g.move(nid, pos)
    assert flow_direction(g) == direction
    # every wire runs along the flow: the destination's box lies wholly after the source's
    for e in g.edges:
        (ax, ay), (bx, by) = g.nodes[e.src].position, g.nodes[e.dst].position
        assert (by >= ay + H) if direction == "TB" else (bx >= ax + W)


def test_flow_direction_of_an_unplaced_graph_is_top_to_bottom() -> None:
    assert flow_direction(branching_graph()) == "TB"  # every node at (0, 0): nothing votes
    with pytest.raises(ValueError, match="TB or LR"):
        auto_layout(branching_graph(), "RL")


# ---------------------------------------------------------------- property: no wire across a node
def random_graph(rng: random.Random, n: int) -> Graph:
    """A random DAG of ``n`` single-input layers and two-input Adds (each joins an earlier node)."""
    b = GraphBuilder()
    ports = [b.input((8,), name="x")]
    while len(b.graph) < n - 1:
        if len(ports) > 2 and rng.random() < 0.35:
            ports.append(b.layer("Add", rng.choice(ports[-3:]), rng.choice(ports[:-1])))
        else:
            ports.append(b.layer("ReLU", rng.choice(ports[-4:] if rng.random() < 0.8 else ports)))
    b.output(ports[-1])
    return b.graph


def test_routed_wires_of_random_layouts_never_cross_a_node() -> None:
    """Random graphs laid out both ways (auto_layout leaves a free channel between layers and beside
    them): every wire, curve or route, misses every node but its own two ends, which it only leaves and
    enters through its ports."""
    rng = random.Random(2026)
    cases = routed = 0
    for case in range(60):
        g = random_graph(rng, rng.randint(5, 24))
        direction = "TB" if case % 2 == 0 else "LR"
        pos = auto_layout(g, direction)
        rects = {nid: (x, y, W, H) for nid, (x, y) in pos.items()}
        index = index_of(rects)
        for e in g.edges:
            a, b = out_port(rects[e.src], direction), in_port(rects[e.dst], direction)
            route = route_wire(a, b, index, e.src, e.dst, direction)
            assert crossed_nodes(a, b, route, rects, direction) == [], (case, e, route)
            cases += 1
            routed += route is not None
    assert cases > 300 and routed > 20, (cases, routed)  # enough wires, and enough of them routed


def test_routed_wires_of_random_scattered_nodes_never_cross_a_node() -> None:
    """Nodes scattered in rows with uneven gaps and sideways offsets (a user's own placement), wires
    forwards, backwards and across several rows."""
    rng = random.Random(7)
    cases = routed = 0
    for case in range(40):
        direction = "TB" if case % 2 == 0 else "LR"
        rects: dict[str, Rect] = {}
        along = 0.0
        for row in range(rng.randint(3, 7)):
            across = rng.uniform(-300, 300)
            for col in range(rng.randint(1, 4)):
                across += rng.uniform(W + 30, W + 250) if direction == "TB" else rng.uniform(H + 30, H + 150)
                if direction == "TB":
                    rects[f"r{row}c{col}"] = (across, along, W, H)
                else:
                    rects[f"r{row}c{col}"] = (along, across, W, H)
            along += (H if direction == "TB" else W) + rng.uniform(44, 160)  # a gap room for two stubs
        index = index_of(rects)
        keys = sorted(rects)
        for _ in range(10):
            src, dst = rng.sample(keys, 2)
            a, b = out_port(rects[src], direction), in_port(rects[dst], direction)
            route = route_wire(a, b, index, src, dst, direction)
            assert crossed_nodes(a, b, route, rects, direction) == [], (case, src, dst, route)
            cases += 1
            routed += route is not None
    assert cases == 400 and routed > 50, routed
