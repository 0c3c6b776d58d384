"""Wire routing around nodes, computed from rectangles alone (no Qt).

A wire leaves an output port and enters an input port along the graph's flow
(down for a top-to-bottom layout, right for left-to-right).  Most wires join
neighbouring layers and are drawn as a cubic curve; a wire whose curve would run
across another node (a skip connection passing the nodes it skips, a wire
pointing backwards) is routed orthogonally instead: a short stub out of the
port, sideways to a free *channel* beside the nodes in its way, along the channel,
and back in above the target.  Positions are the user's, so the router makes no
assumption about the layout: it looks the obstacles up in an
:class:`ObstacleIndex`.

Everything here works in "flow coordinates" ``(u, v)``: ``v`` runs along the flow,
``u`` across it.  For ``"TB"`` that is ``(x, y)``; for ``"LR"`` the axes swap.
"""

from __future__ import annotations

import math
from collections.abc import Hashable, Iterable, Sequence

Point = tuple[float, float]
Rect = tuple[float, float, float, float]
"""``(x, y, width, height)``."""

STUB = 20.0
"""How far a routed wire runs straight out of (and into) a port: half the smallest gap between
layers that :func:`workbench.layout.auto_layout` leaves, so the turn happens between the rows."""
MARGIN = 12.0
"""Clearance between a routed wire's channel and the nodes beside it."""
CLEARANCE = 3.0
"""Clearance kept by curves and the short legs of a route (a curve is checked on a sampled polyline)."""


class ObstacleIndex:
    """Rectangles by key in a uniform grid, answering "which rectangles touch this box" quickly.

    Keys are anything hashable (node ids).  ``set`` adds or moves a rectangle.
    """

    def __init__(self, cell: float = 256.0) -> None:
        self.cell = cell
        self._rects: dict[Hashable, Rect] = {}
        self._cells: dict[tuple[int, int], set[Hashable]] = {}
        self._bounds: Rect | None = None  # cached; None after a removal (found again when asked)

    def __len__(self) -> int:
        return len(self._rects)

    def __contains__(self, key: object) -> bool:
        return key in self._rects

    def rect(self, key: Hashable) -> Rect:
        return self._rects[key]

    def items(self) -> Iterable[tuple[Hashable, Rect]]:
        return self._rects.items()

    def _span(self, x0: float, y0: float, x1: float, y1: float) -> tuple[range, range]:
        c = self.cell
        return range(math.floor(x0 / c), math.floor(x1 / c) + 1), range(math.floor(y0 / c), math.floor(y1 / c) + 1)

    def set(self, key: Hashable, rect: Rect) -> None:
        """Add the rectangle of ``key``, or move it."""
        old = self._rects.get(key)
        if old == rect:
            return
        if old is not None:
            self.remove(key)
        self._rects[key] = rect
        if self._bounds is not None or len(self._rects) == 1:
            b = self._bounds or rect
            x0, y0 = min(b[0], rect[0]), min(b[1], rect[1])
            x1, y1 = max(b[0] + b[2], rect[0] + rect[2]), max(b[1] + b[3], rect[1] + rect[3])
            self._bounds = (x0, y0, x1 - x0, y1 - y0)
        xs, ys = self._span(rect[0], rect[1], rect[0] + rect[2], rect[1] + rect[3])
        for i in xs:
            for j in ys:
                self._cells.setdefault((i, j), set()).add(key)

    def remove(self, key: Hashable) -> None:
        rect = self._rects.pop(key, None)
        if rect is None:
            return
        self._bounds = None
        xs, ys = self._span(rect[0], rect[1], rect[0] + rect[2], rect[1] + rect[3])
        for i in xs:
            for j in ys:
                cell = self._cells.get((i, j))
                if cell is not None:
                    cell.discard(key)
                    if not cell:
                        del self._cells[(i, j)]

    def query(self, x0: float, y0: float, x1: float, y1: float) -> list[Hashable]:
        """Keys of the rectangles that overlap the box (touching edges do not count)."""
        xs, ys = self._span(x0, y0, x1, y1)
        if len(xs) * len(ys) > len(self._cells):  # a huge box: scan the occupied cells instead
            cells = [keys for (i, j), keys in self._cells.items() if i in xs and j in ys]
        else:
            cells = [self._cells[(i, j)] for i in xs for j in ys if (i, j) in self._cells]
        found: set[Hashable] = set()
        for keys in cells:
            found |= keys
        out = []
        for key in found:
            x, y, w, h = self._rects[key]
            if x < x1 and x + w > x0 and y < y1 and y + h > y0:
                out.append(key)
        return out

    def estimate(self, x0: float, y0: float, x1: float, y1: float, limit: int) -> int:
        """About how many rectangles lie in the box, counting each once per grid cell it touches
        and stopping past ``limit``: cheap enough to ask on every scroll step."""
        xs, ys = self._span(x0, y0, x1, y1)
        total = 0
        if len(xs) * len(ys) > len(self._cells):
            for (i, j), keys in self._cells.items():
                if i in xs and j in ys:
                    total += len(keys)
                    if total > limit:
                        break
            return total
        for i in xs:
            for j in ys:
                keys = self._cells.get((i, j))
                if keys:
                    total += len(keys)
                    if total > limit:
                        return total
        return total

    def bounds(self) -> Rect | None:
        """The box round every rectangle (None when there is none)."""
        if not self._rects:
            return None
        if self._bounds is None:
            x0 = min(r[0] for r in self._rects.values())
            y0 = min(r[1] for r in self._rects.values())
            x1 = max(r[0] + r[2] for r in self._rects.values())
            y1 = max(r[1] + r[3] for r in self._rects.values())
            self._bounds = (x0, y0, x1 - x0, y1 - y0)
        return self._bounds


# ---------------------------------------------------------------------- flow coordinates
def _to_flow(p: Point, direction: str) -> Point:
    return p if direction == "TB" else (p[1], p[0])


def _rect_to_flow(r: Rect, direction: str) -> Rect:
    return r if direction == "TB" else (r[1], r[0], r[3], r[2])


def _box(u0: float, v0: float, u1: float, v1: float, direction: str) -> tuple[float, float, float, float]:
    """A query box given in flow coordinates, as ``(x0, y0, x1, y1)``."""
    return (u0, v0, u1, v1) if direction == "TB" else (v0, u0, v1, u1)


def curve_controls(a: Point, b: Point, direction: str = "TB") -> tuple[Point, Point]:
    """The two control points of the cubic drawn from output ``a`` to input ``b``: it leaves and
    enters along the flow, so the wire meets each port head on."""
    (au, av), (bu, bv) = _to_flow(a, direction), _to_flow(b, direction)
    bend = max(40.0, abs(bv - av) * 0.5)
    c1, c2 = (au, av + bend), (bu, bv - bend)
    return _to_flow(c1, direction), _to_flow(c2, direction)


def _cubic_points(a: Point, c1: Point, c2: Point, b: Point, n: int) -> list[Point]:
    out = []
    for k in range(n + 1):
        t = k / n
        s = 1 - t
        w0, w1, w2, w3 = s * s * s, 3 * s * s * t, 3 * s * t * t, t * t * t
        out.append((w0 * a[0] + w1 * c1[0] + w2 * c2[0] + w3 * b[0], w0 * a[1] + w1 * c1[1] + w2 * c2[1] + w3 * b[1]))
    return out


def segment_hits_rect(p: Point, q: Point, r: Rect, pad: float = 0.0) -> bool:
    """Whether the segment ``p``-``q`` passes through the inside of ``r`` grown by ``pad``
    (Liang-Barsky clipping; a segment along an edge does not count)."""
    x0, y0, x1, y1 = r[0] - pad, r[1] - pad, r[0] + r[2] + pad, r[1] + r[3] + pad
    dx, dy = q[0] - p[0], q[1] - p[1]
    t0, t1 = 0.0, 1.0
    for num, den in ((p[0] - x0, -dx), (x1 - p[0], dx), (p[1] - y0, -dy), (y1 - p[1], dy)):
        if den == 0:
            if num <= 0:  # parallel to this edge and outside (or on) it
                return False
            continue
        t = num / den
        if den < 0:
            if t > t1:
                return False
            t0 = max(t0, t)
        else:
            if t < t0:
                return False
            t1 = min(t1, t)
    if t1 - t0 <= 1e-9:
        return False
    # a segment that only grazes a corner is no crossing: its middle must be strictly inside
    tm = (t0 + t1) / 2
    mx, my = p[0] + dx * tm, p[1] + dy * tm
    return x0 < mx < x1 and y0 < my < y1


def polyline_hits(points: Sequence[Point], index: ObstacleIndex, ignore: Iterable[Hashable] = (),
                  pad: float = CLEARANCE) -> list[Hashable]:
    """Keys of the obstacles a polyline passes through (grown by ``pad``), ``ignore`` left out."""
    skip = set(ignore)
    xs, ys = [p[0] for p in points], [p[1] for p in points]
    hits = []
    for key in index.query(min(xs) - pad, min(ys) - pad, max(xs) + pad, max(ys) + pad):
        if key in skip:
            continue
        r = index.rect(key)
        if any(segment_hits_rect(points[i], points[i + 1], r, pad) for i in range(len(points) - 1)):
            hits.append(key)
    return hits


def curve_polyline(a: Point, b: Point, direction: str = "TB") -> list[Point]:
    """The wire's cubic as a polyline fine enough to test against nodes."""
    c1, c2 = curve_controls(a, b, direction)
    length = abs(a[0] - b[0]) + abs(a[1] - b[1])
    return _cubic_points(a, c1, c2, b, max(8, min(64, int(length / 25))))


# ---------------------------------------------------------------------- routing
def route_wire(a: Point, b: Point, index: ObstacleIndex, src: Hashable = None, dst: Hashable = None,
               direction: str = "TB", stub: float = STUB, margin: float = MARGIN) -> list[Point] | None:
    """How to draw the wire from output port ``a`` (on node ``src``) to input port ``b`` (on ``dst``).

    Returns:
        None when the plain curve (:func:`curve_controls`) crosses no other node; otherwise the
        corner points of an orthogonal route from ``a`` to ``b`` that keeps ``margin`` away from
        the nodes beside its channel (best effort when the nodes leave no free way at all).
    """
    ends = {k for k in (src, dst) if k is not None}
    (au, av), (bu, bv) = _to_flow(a, direction), _to_flow(b, direction)
    if bv - av >= 2 * stub:
        # the curve stays inside the box between its ports: only what lies there can be in its way
        others = [k for k in index.query(*_box(min(au, bu) - 1, av + 1, max(au, bu) + 1, bv - 1, direction))
                  if k not in ends]
        if not others:  # the common case: neighbouring layers
            return None
        line = [a, b] if abs(au - bu) < 0.5 else curve_polyline(a, b, direction)
        if not any(_crosses(line, index.rect(k)) for k in others):
            return None
    v1, v2 = av + stub, bv - stub
    lo, hi = min(v1, v2), max(v1, v2)
    bounds = index.bounds()
    if bounds is None:
        return None
    fb = _rect_to_flow(bounds, direction)
    span = (min(fb[0], au, bu) - 1, max(fb[0] + fb[2], au, bu) + 1)
    blocked = []
    for key in index.query(*_box(span[0], lo - margin, span[1], hi + margin, direction)):
        ru, rv, rw, rh = _rect_to_flow(index.rect(key), direction)
        if rv - margin < hi and rv + rh + margin > lo:
            blocked.append((ru - margin, ru + rw + margin))
    nudge = CLEARANCE + 1
    best: tuple[int, float] | None = None
    for c in _channels(blocked, au, bu)[:8]:
        # the long leg along the channel is clear by construction; the legs across the flow (and
        # the stubs, tested from just off their own node, so a route turning back across its own
        # source or target counts) are tested here
        legs = [((au, av + nudge), (au, v1)), ((au, v1), (c, v1)), ((c, v2), (bu, v2)), ((bu, v2), (bu, bv - nudge))]
        hits = sum(_leg_hits(_to_flow(p, direction), _to_flow(q, direction), index) for p, q in legs)
        if hits == 0:
            best = (0, c)
            break
        if best is None or hits < best[0]:
            best = (hits, c)
    c = best[1] if best is not None else max(au, bu)
    pts = [(au, av), (au, v1), (c, v1), (c, v2), (bu, v2), (bu, bv)]
    return [_to_flow(p, direction) for p in _simplify(pts)]


def _crosses(points: Sequence[Point], r: Rect, pad: float = CLEARANCE) -> bool:
    return any(segment_hits_rect(points[i], points[i + 1], r, pad) for i in range(len(points) - 1))


def _leg_hits(p: Point, q: Point, index: ObstacleIndex, pad: float = CLEARANCE) -> int:
    """How many obstacles the segment ``p``-``q`` passes through."""
    if p == q:
        return 0
    keys = index.query(min(p[0], q[0]) - pad, min(p[1], q[1]) - pad, max(p[0], q[0]) + pad, max(p[1], q[1]) + pad)
    return sum(1 for k in keys if segment_hits_rect(p, q, index.rect(k), pad))


def _channels(blocked: list[tuple[float, float]], au: float, bu: float) -> list[float]:
    """Free positions across the flow for the long leg of a route, best first: as near the two
    ports as the blocked intervals allow; on a tie the right-hand (or lower) side."""
    merged: list[list[float]] = []
    for s, e in sorted(blocked):
        if merged and s <= merged[-1][1]:
            merged[-1][1] = max(merged[-1][1], e)
        else:
            merged.append([s, e])
    gaps = []
    prev = -math.inf
    for s, e in merged:
        gaps.append((prev, s))
        prev = e
    gaps.append((prev, math.inf))
    lo, hi = min(au, bu), max(au, bu)
    scored = []
    for g0, g1 in gaps:
        if g1 - g0 <= 0:
            continue
        picks = [p for p in (au, bu) if g0 < p < g1]
        if not picks:
            if g0 < hi and g1 > lo:  # the gap lies between the ports
                picks = [(g0 + g1) / 2]
            else:
                picks = [g1] if g1 <= lo else [g0]
        for c in picks:
            bends = (c != au) + (c != bu)
            scored.append((abs(c - au) + abs(c - bu), bends, -c, c))
    scored.sort()
    return [s[3] for s in scored]


def _simplify(points: list[Point]) -> list[Point]:
    """Drop repeated and collinear points of an orthogonal polyline."""
    out: list[Point] = []
    for p in points:
        if out and abs(out[-1][0] - p[0]) < 1e-6 and abs(out[-1][1] - p[1]) < 1e-6:
            continue
        if len(out) >= 2:
            (x0, y0), (x1, y1) = out[-2], out[-1]
            if (abs(x0 - x1) < 1e-6 and abs(x1 - p[0]) < 1e-6) or (abs(y0 - y1) < 1e-6 and abs(y1 - p[1]) < 1e-6):
                out[-1] = p
                continue
        out.append(p)
    return out
