"""A whole graph drawn as simple shapes in a few calls: the canvas zoomed far out, and the
overview map.

Far out, a graph of 10,000 nodes would cost 10,000 Python ``paint`` calls a frame.  Instead the
scene hides its node and wire items (their parent layers go transparent, so Qt skips them,
while they still take clicks and keep their selection) and this class draws every node as a
box and every wire as its path, batched per tile of the scene into a few painter paths that
are built once and redrawn until the graph changes.
"""

from __future__ import annotations

import math
import weakref
from typing import TYPE_CHECKING

from PySide6.QtCore import QRectF, Qt
from PySide6.QtGui import QColor, QPainter, QPainterPath

from .items import HIGHLIGHT, NODE_H, NodeItem, pen

if TYPE_CHECKING:
    from .scene import GraphScene

TILE = 4096.0
"""Side of a tile (scene pixels): a frame draws only the tiles it shows."""


class _Tile:
    __slots__ = ("accents", "bodies", "bounds", "errors", "wires")

    def __init__(self) -> None:
        self.bounds = QRectF()
        self.bodies = QPainterPath()
        self.errors = QPainterPath()
        self.accents: dict[int, QPainterPath] = {}
        self.wires = QPainterPath()


class Overview:
    """Batched simple shapes of a scene's graph.  ``version`` changes whenever they are rebuilt
    (the overview map keeps its picture until then)."""

    def __init__(self, scene: GraphScene) -> None:
        self._scene = weakref.ref(scene)  # not a cycle through the scene: it must die by refcount
        self._tiles: list[_Tile] | None = None
        self.version = 0

    @property
    def scene(self) -> GraphScene:
        scene = self._scene()
        assert scene is not None, "the scene is gone"
        return scene

    def invalidate(self) -> None:
        if self._tiles is not None:
            self._tiles = None
            self.version += 1

    def tiles(self) -> list[_Tile]:
        if self._tiles is None:
            self._tiles = self._build()
        return self._tiles

    def _build(self) -> list[_Tile]:
        tiles: dict[tuple[int, int], _Tile] = {}

        def tile(x: float, y: float) -> _Tile:
            key = (math.floor(x / TILE), math.floor(y / TILE))
            t = tiles.get(key)
            if t is None:
                t = tiles[key] = _Tile()
            return t

        def add_node(item: NodeItem, r: QRectF) -> None:
            t = tile(r.x(), r.y())
            (t.errors if item.status == "error" else t.bodies).addRect(r)
            t.accents.setdefault(item.accent.rgba(), QPainterPath()).addRect(QRectF(r.x(), r.y(), 7, NODE_H))
            t.bounds = t.bounds.united(r)

        for item in self.scene.nodes.values():
            r = item.scene_body_rect()
            add_node(item, r)
            for inner in self.scene.expansions.inner_nodes(item.node_id):
                add_node(inner, inner.scene_body_rect())
        for edge in self.scene.all_edge_items():
            path = edge.path() if edge.parentItem() is None else edge.mapToScene(edge.path())
            if path.isEmpty():
                continue
            start = path.elementAt(0)
            t = tile(start.x, start.y)
            t.wires.addPath(path)
            t.bounds = t.bounds.united(path.boundingRect())
        return list(tiles.values())

    def bounds(self) -> QRectF:
        rect = QRectF()
        for t in self.tiles():
            rect = rect.united(t.bounds)
        return rect

    def paint(self, painter: QPainter, rect: QRectF | None = None, selection: bool = True) -> None:
        """Draw the tiles that meet ``rect`` (all when None) with cosmetic pens, so the shapes stay
        visible however far out; then the selection and the search highlights."""
        c = self.scene.colors
        lod = painter.worldTransform().m11()
        shown = [t for t in self.tiles() if rect is None or t.bounds.intersects(rect)]
        painter.save()
        painter.setRenderHint(QPainter.RenderHint.Antialiasing, False)
        painter.setBrush(Qt.BrushStyle.NoBrush)
        wire = pen(c.wire, 1.0, cosmetic=True)
        for t in shown:
            painter.strokePath(t.wires, wire)
        painter.setPen(pen(c.node_border, 1.0, cosmetic=True))
        painter.setBrush(c.node)
        for t in shown:
            painter.drawPath(t.bodies)
        painter.setPen(pen(c.error, 2.0, cosmetic=True))
        for t in shown:
            if not t.errors.isEmpty():
                painter.drawPath(t.errors)
        if 7 * lod >= 1.0:  # the category stripe, once it is at least a pixel wide
            painter.setPen(Qt.PenStyle.NoPen)
            for t in shown:
                for rgba, path in t.accents.items():
                    painter.setBrush(QColor.fromRgba(rgba))
                    painter.drawPath(path)
        painter.setBrush(Qt.BrushStyle.NoBrush)
        marks: list[tuple[QRectF, object]] = []
        if selection:
            sel = pen(c.selection, 2.0, cosmetic=True)
            marks += [(i.scene_body_rect(), sel) for i in self.scene.selectedItems() if isinstance(i, NodeItem)]
        for nid, kind in self.scene.highlighted.items():
            item = self.scene.nodes.get(nid)
            if item is not None:
                grow = 6 / max(lod, 1e-6)  # a few pixels round the box, whatever the zoom
                marks.append((item.scene_body_rect().adjusted(-grow, -grow, grow, grow),
                              pen(HIGHLIGHT[kind], 3.0 if kind == "current" else 2.0, cosmetic=True)))
        for r, p in marks:
            if rect is None or r.intersects(rect):
                painter.setPen(p)  # type: ignore[arg-type]
                painter.drawRect(r)
        painter.restore()

