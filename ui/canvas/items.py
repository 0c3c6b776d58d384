"""Canvas items: nodes, ports and wires.  Items hold ids and display text only;
the scene fills them from the graph and shape inference.

A node paints itself at one of three levels of detail, chosen by its size on screen:
the *full* face (name, type and key parameters, output shape, parameter count) while every
line of it is at least 10 px tall; below that a *compact* face with the name in larger type
(and the type line while the box has room for it at a readable size); and bare shapes once
even the largest name would be too small to read.  :meth:`NodeItem.face` says which text
runs, in which fonts, a zoom draws (the tests read it too).

Ports are light objects painted by their node and hit-tested by the scene: a graph of
10,000 nodes has 20,000 of them, and a graphics item each would double the cost of
building and drawing the canvas.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from PySide6.QtCore import QPointF, QRectF, Qt
from PySide6.QtGui import (
    QBrush,
    QColor,
    QFont,
    QFontMetricsF,
    QPainter,
    QPainterPath,
    QPainterPathStroker,
    QPen,
    QPolygonF,
)
from PySide6.QtWidgets import QGraphicsItem, QGraphicsPathItem, QStyleOptionGraphicsItem, QWidget

from workbench.graph import Edge
from workbench.layout import NODE_SIZE
from workbench.routing import curve_controls

from ..style import CATEGORY_COLORS, CanvasColors

if TYPE_CHECKING:
    from .scene import GraphScene

NODE_W, NODE_H = NODE_SIZE
FROZEN_COLOR = QColor("#2b8fd6")  # frozen nodes' tint, border and badge (transfer learning)
HEAD_COLOR = QColor("#8e44ad")  # the outline of a projection head's nodes
PORT_R = 6.0
PORT_HIT = PORT_R + 3.0
"""How far from a port's centre a press still grabs it."""
LABEL_H = 13.0
TITLE_PX, TEXT_PX = 13.0, 11.0
"""Type sizes of the full face (scene pixels): the title, and every other line."""
FULL_ZOOM = 10.0 / TEXT_PX
"""From this zoom up every line of the full face is at least 10 px tall on screen."""
READABLE_PX = 10.5
"""On-screen size of the compact face's smaller type (and the least its name is given)."""
NAME_TARGET_PX = 17.0
"""On-screen size the compact face's name aims for (less when the name is long)."""
NAME_MAX_PX = 44.0
"""The largest name the box holds (scene pixels): one line in a 66 px box."""
NAME_STRETCHES = (100, 87, 75)
"""Widths a compact name is tried at (per cent of normal) before it is elided."""
SHAPES_ONLY_PX = 6.0
"""Below this on-screen size even the largest name is not drawn: bare shapes."""
DETAIL_ZOOM = (READABLE_PX * 2.2 * 1.2) / (NODE_H - 8)
"""From this zoom the compact face has room for a type line under the name."""
HALO = 8.0
WIRE_HIT = 10.0
"""How wide a wire is for the mouse (scene pixels)."""
HIGHLIGHT = {"match": QColor("#ffb300"), "current": QColor("#ff6d00")}
"""Search highlights (not a category colour, so a halo never reads as a kind of layer)."""
COST_BAR = QColor("#e53935")
"""The cost bars' fill (View > Cost Bars)."""

_FONTS: dict[tuple[float, bool, int], tuple[QFont, QFontMetricsF]] = {}
_PENS: dict[tuple[int, float, bool], QPen] = {}


def font(px: float, bold: bool = False, stretch: int = 100) -> QFont:
    """The canvas font at ``px`` scene pixels (cached: fonts are made once per size)."""
    return _font(px, bold, stretch)[0]


def _font(px: float, bold: bool = False, stretch: int = 100) -> tuple[QFont, QFontMetricsF]:
    key = (max(1, int(px)), bold, stretch)  # whole pixels, rounded down: never larger than asked
    hit = _FONTS.get(key)
    if hit is None:
        f = QFont()
        f.setPixelSize(key[0])
        f.setBold(bold)
        if stretch != 100:
            f.setStretch(stretch)  # narrower letters (synthesised when the family has no such face)
        hit = _FONTS[key] = (f, QFontMetricsF(f))
    return hit


def font_px(f: QFont) -> float:
    """A canvas font's size in scene pixels."""
    return float(f.pixelSize())


def pen(color: QColor, width: float, cosmetic: bool = False) -> QPen:
    key = (color.rgba(), width, cosmetic)
    p = _PENS.get(key)
    if p is None:
        p = _PENS[key] = QPen(color, width)
        p.setCosmetic(cosmetic)
    return p


@dataclass(frozen=True)
class TextRun:
    """One line of text a node draws: where, how aligned, in which font and colour role."""

    role: str
    rect: QRectF
    align: Qt.AlignmentFlag
    font: QFont
    color: str
    text: str


class PortItem:
    """A port on a node's edge: inputs on the side wires come from (top for a top-to-bottom
    graph, left for left-to-right), outputs on the opposite side.  Painted by its node."""

    __slots__ = ("_pos", "is_output", "name", "node_item", "show_label", "state")

    def __init__(self, node: NodeItem, name: str, is_output: bool, label: bool) -> None:
        self.node_item, self.name, self.is_output, self.show_label = node, name, is_output, label
        self.state = "normal"  # normal | ok | bad
        self._pos = QPointF()

    @property
    def node_id(self) -> str:
        return self.node_item.node_id

    def pos(self) -> QPointF:
        """Position in the node's coordinates."""
        return QPointF(self._pos)

    def setPos(self, pos: QPointF) -> None:
        self._pos = QPointF(pos)

    def scenePos(self) -> QPointF:
        return self.node_item.mapToScene(self._pos)

    def scene_anchor(self) -> QPointF:
        return self.scenePos()

    def toolTip(self) -> str:
        return f"{'output' if self.is_output else 'input'} {self.name}"

    def hit(self, scene_pos: QPointF) -> bool:
        d = self.scenePos() - scene_pos
        return d.x() * d.x() + d.y() * d.y() <= PORT_HIT * PORT_HIT

    def set_state(self, state: str) -> None:
        if state != self.state:
            self.state = state
            self.node_item.update()


_NODE_FLAGS = QGraphicsItem.GraphicsItemFlag.ItemIsMovable | QGraphicsItem.GraphicsItemFlag.ItemIsSelectable


class NodeItem(QGraphicsItem):
    """One layer node: name, type and key parameters, output shape and parameter count.

    ``direction`` ("TB" or "LR") puts the ports on the matching sides.  A block node can be
    *expanded*: :meth:`set_frame` grows its box into a frame the scene fills with the
    block's inside (``ui.canvas.expand``); its output ports move to the frame's far edge.
    Items of an expanded inside are built with ``interactive=False`` and ``owner_id`` set
    to the block node's id.

    A node has no ``itemChange``: Qt calls it for every change of every item (a Python call each,
    six per node just to build a scene).  The scene snaps dragged nodes and moves their wires
    (:meth:`GraphScene.place`); code that moves a node item goes through it too.
    """

    def __init__(self, node_id: str, category: str, colors: CanvasColors,
                 inputs: tuple[str, ...], outputs: tuple[str, ...], is_block: bool = False,
                 direction: str = "TB", parent: QGraphicsItem | None = None, interactive: bool = True,
                 pos: QPointF | None = None) -> None:
        super().__init__(parent)
        self.node_id = node_id
        self.owner_id = node_id
        self.is_block = is_block
        self.colors = colors
        self.direction = direction
        self.interactive = interactive
        self.accent = QColor(CATEGORY_COLORS.get(category, "#607d8b"))
        self.title = ""
        self.subtitle = ""
        self.shape_text = ""
        self.params_text = ""
        self.status = "ok"
        self.tip = ""
        self.cost: tuple[float, str] | None = None
        """The cost bar (its length, 0..1 of the largest node's) and its tooltip line, or None."""
        self.highlight: str | None = None
        self.train_badge = ""
        """How training treats the node, as the canvas says it (``❄ frozen · head``); empty: normally."""
        self.frozen = False
        self.head = False
        self.frame_size: tuple[float, float] | None = None
        self.edges: set[EdgeItem] = set()
        self.inputs: dict[str, PortItem] = {}
        self.outputs: dict[str, PortItem] = {}
        self._faces: dict[float, list[TextRun]] = {}
        self._shape: QPainterPath | None = None
        if pos is not None:  # before the flags: a position read from the graph is shown as is, not snapped
            self.setPos(pos)
        self.setAcceptHoverEvents(True)
        if interactive:
            self.setFlags(_NODE_FLAGS)
        self.set_ports(inputs, outputs)

    # ------------------------------------------------------------------ geometry
    def body_size(self) -> tuple[float, float]:
        """The box's size: a node's, or an expanded block's frame."""
        return self.frame_size or (NODE_W, NODE_H)

    def body_rect(self) -> QRectF:
        w, h = self.body_size()
        return QRectF(0, 0, w, h)

    def scene_body_rect(self) -> QRectF:
        return self.body_rect().translated(self.scenePos())

    def chevron_rect(self) -> QRectF:
        """Where a block node's expand/collapse chevron sits (node coordinates)."""
        return QRectF(NODE_W - 24, 3, 21, 21)

    # ------------------------------------------------------------------ ports
    def set_ports(self, inputs: tuple[str, ...], outputs: tuple[str, ...]) -> None:
        """(Re)create ports when the node's ports change (e.g. Add's num_inputs)."""
        if tuple(self.inputs) == inputs and tuple(self.outputs) == outputs:
            return
        if self.scene() is not None:  # (a node being built is not in a scene yet: nothing to tell)
            self.prepareGeometryChange()  # the bounding rect makes room for port names
        self.inputs = {n: PortItem(self, n, False, len(inputs) > 1) for n in inputs}
        self.outputs = {n: PortItem(self, n, True, len(outputs) > 1) for n in outputs}
        self._place_ports()
        # wires kept through the change (the graph refuses one that would lose its port) must hold
        # the new ports: the old ones would anchor the wire where the node no longer has a port
        for e in self.edges:
            if e.edge.src == self.node_id and e.edge.src_port in self.outputs:
                e.src = self.outputs[e.edge.src_port]
            if e.edge.dst == self.node_id and e.edge.dst_port in self.inputs:
                e.dst = self.inputs[e.edge.dst_port]
            e.update_path()

    def _place_ports(self) -> None:
        w, h = self.body_size()
        for ports, output in ((self.inputs, False), (self.outputs, True)):
            for i, port in enumerate(ports.values()):
                t = (i + 1) / (len(ports) + 1)
                if self.direction == "LR":
                    port._pos = QPointF(w if output else 0.0, NODE_H * t)
                else:
                    port._pos = QPointF(NODE_W * t, h if output else 0.0)
        self._shape = None
        self._faces.clear()

    def _geometry_changed(self) -> None:
        self._place_ports()
        for e in self.edges:
            e.update_path()
        self.update()

    def set_direction(self, direction: str) -> None:
        """Put the ports on the sides of a top-to-bottom ("TB") or left-to-right ("LR") flow."""
        if direction != self.direction:
            self.prepareGeometryChange()
            self.direction = direction
            self._geometry_changed()

    def set_frame(self, size: tuple[float, float] | None) -> None:
        """Expand the box into a frame of ``size`` (None: back to a node's box)."""
        if size != self.frame_size:
            self.prepareGeometryChange()
            self.frame_size = size
            self._geometry_changed()

    def port(self, name: str, output: bool) -> PortItem:
        return (self.outputs if output else self.inputs)[name]

    def port_at(self, scene_pos: QPointF) -> PortItem | None:
        for p in (*self.inputs.values(), *self.outputs.values()):
            if p.hit(scene_pos):
                return p
        return None

    # ------------------------------------------------------------------ display
    def set_info(self, title: str, subtitle: str, shape_text: str, params_text: str, status: str,
                 tooltip: str) -> None:
        if (title, subtitle, shape_text, params_text, status) != (
            self.title, self.subtitle, self.shape_text, self.params_text, self.status
        ):
            self.title, self.subtitle, self.shape_text = title, subtitle, shape_text
            self.params_text, self.status = params_text, status
            self._faces.clear()
            self.update()
        self.tip = tooltip

    def toolTip(self) -> str:
        return self.tip + (f"<br>{self.cost[1]}" if self.cost is not None else "")

    def set_cost(self, fraction: float | None, text: str = "") -> None:
        """Show a cost bar ``fraction`` long (0..1) with ``text`` in the tooltip; None removes it."""
        cost = None if fraction is None else (min(1.0, max(0.0, fraction)), text)
        if cost != self.cost:
            self.cost = cost
            self.update()

    def set_highlight(self, kind: str | None) -> None:
        """Mark the node as a search match (``"match"``, ``"current"``) or clear the mark."""
        if kind != self.highlight:
            self.prepareGeometryChange()
            self.highlight = kind
            self.update()

    def boundingRect(self) -> QRectF:
        w, h = self.body_size()
        extra = 5.0 if self.is_block and self.frame_size is None else 0.0
        many_in, many_out = len(self.inputs) > 1, len(self.outputs) > 1
        if self.direction == "LR":
            left = 64.0 if many_in else PORT_HIT
            right = 64.0 if many_out else PORT_HIT
            rect = QRectF(-left, -3, w + left + right + extra, h + 6 + extra)
        else:
            top = max(PORT_HIT, LABEL_H if many_in else 0.0)
            bottom = max(PORT_HIT, LABEL_H + 1 if many_out else 0.0)
            rect = QRectF(-3, -top, w + 6 + extra, h + top + bottom + extra)
        return rect.adjusted(-HALO, -HALO, HALO, HALO) if self.highlight else rect

    def shape(self) -> QPainterPath:
        if self._shape is None:
            path = QPainterPath()
            path.addRoundedRect(self.body_rect(), 8, 8)
            for p in (*self.inputs.values(), *self.outputs.values()):
                path.addEllipse(p._pos, PORT_HIT, PORT_HIT)
            path.setFillRule(Qt.FillRule.WindingFill)
            self._shape = path
        return self._shape

    # ------------------------------------------------------------------ the face at a zoom
    def face(self, lod: float) -> list[TextRun]:
        """The text this node draws at zoom ``lod``: full, compact or none (see the module doc)."""
        key = round(lod, 3)
        runs = self._faces.get(key)
        if runs is None:
            if len(self._faces) > 8:
                self._faces.clear()
            runs = self._faces[key] = self._full_face() if lod >= FULL_ZOOM else self._compact_face(lod)
        return runs

    def _full_face(self) -> list[TextRun]:
        left = Qt.AlignmentFlag.AlignLeft | Qt.AlignmentFlag.AlignVCenter
        right = Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter
        title_font, title_m = _font(TITLE_PX, True)
        text_font, text_m = _font(TEXT_PX)
        badge_w = 0.0
        if self.train_badge:
            badge_w = min(text_m.horizontalAdvance(self.train_badge) + 6, NODE_W / 2)
        room = NODE_W - 20 - (80 if self.is_block else 0) - badge_w
        runs = [
            TextRun("title", QRectF(14, 5, room, 18), left, title_font, "text",
                    title_m.elidedText(self.title, Qt.TextElideMode.ElideRight, room)),
            TextRun("subtitle", QRectF(14, 23, NODE_W - 20, 16), left, text_font, "subtext",
                    text_m.elidedText(self.subtitle, Qt.TextElideMode.ElideRight, NODE_W - 20)),
            TextRun("shape", QRectF(14, 40, NODE_W - 80, 16), left, text_font,
                    "error" if self.status == "error" else "text",
                    text_m.elidedText(self.shape_text, Qt.TextElideMode.ElideRight, NODE_W - 84)),
            TextRun("params", QRectF(NODE_W - 70, 40, 62, 16), right, text_font, "subtext", self.params_text),
        ]
        if self.is_block:
            runs.append(TextRun("badge", QRectF(NODE_W - 84, 5, 56, 18), right, text_font, "accent", "BLOCK"))
        if self.train_badge:
            end = NODE_W - (88 if self.is_block else 8)
            runs.append(TextRun("train", QRectF(end - badge_w, 5, badge_w, 18), right, text_font, "frozen",
                                text_m.elidedText(self.train_badge, Qt.TextElideMode.ElideRight, badge_w)))
        # port names sit outside the box, beside their port, so they never cover the node's text
        for ports, output in ((self.inputs, False), (self.outputs, True)):
            if len(ports) < 2:
                continue
            for p in ports.values():
                x, y = p._pos.x(), p._pos.y()
                if self.direction == "LR":
                    rect = QRectF(x + PORT_R + 2, y - LABEL_H, 60, LABEL_H) if output else QRectF(
                        x - PORT_R - 62, y - LABEL_H, 60, LABEL_H)
                    align = left if output else right
                else:
                    rect = QRectF(x + PORT_R + 2, y + 1 if output else y - LABEL_H, 56, LABEL_H)
                    align = left
                runs.append(TextRun("port", rect, align, text_font, "subtext", p.name))
        return runs

    def _compact_face(self, lod: float) -> list[TextRun]:
        if NAME_MAX_PX * lod < SHAPES_ONLY_PX or not self.title:
            return []
        room = NODE_W - 22 - (26 if self._chevron_shown(lod) else 0)
        detail = bool(self.subtitle) and lod >= DETAIL_ZOOM
        # fonts come in whole scene pixels, rounded down: the least readable size is rounded up
        # here, or near 100% (a scene pixel nearly a screen pixel) the type would fall below it
        detail_px = float(math.ceil(READABLE_PX / lod - 1e-9))
        cap = NAME_MAX_PX if not detail else min(NAME_MAX_PX, (NODE_H - 8 - detail_px * 1.2) / 1.2)
        width_1px = max(1e-6, _font(100, True)[1].horizontalAdvance(self.title) / 100)
        fit = 0.97 * room / width_1px
        px = min(cap, max(min(NAME_TARGET_PX / lod, fit), detail_px))
        for stretch in NAME_STRETCHES:  # a long name is set narrower before it is cut short
            name_font, name_m = _font(px, True, stretch)
            if name_m.horizontalAdvance(self.title) <= room:
                break
        left = Qt.AlignmentFlag.AlignLeft | Qt.AlignmentFlag.AlignVCenter
        # cut in the middle: names that differ, differ at the end as often as at the start (layer3_5)
        name = name_m.elidedText(self.title, Qt.TextElideMode.ElideMiddle, room)
        if not detail:
            return [TextRun("name", QRectF(14, 0, room, NODE_H), left, name_font, "text", name)]
        name_h, detail_h = px * 1.2, detail_px * 1.2
        top = (NODE_H - name_h - detail_h) / 2
        detail_font, detail_m = _font(detail_px)
        return [
            TextRun("name", QRectF(14, top, room, name_h), left, name_font, "text", name),
            TextRun("detail", QRectF(14, top + name_h, NODE_W - 22, detail_h), left, detail_font, "subtext",
                    detail_m.elidedText(self.subtitle, Qt.TextElideMode.ElideRight, NODE_W - 22)),
        ]

    def _color(self, role: str) -> QColor:
        c = self.colors
        return {"text": c.text, "subtext": c.subtext, "error": c.error, "accent": self.accent,
                "frozen": FROZEN_COLOR}[role]

    def set_train(self, frozen: bool, lr_scale: float, role: str) -> None:
        """Mark a frozen node (tinted, dashed border), a scaled learning rate and a projection head."""
        parts = (["❄ frozen"] if frozen else []) + ([f"lr ×{lr_scale:g}"] if lr_scale != 1 and not frozen else []) \
            + (["head"] if role == "projection_head" else [])
        badge = " · ".join(parts)
        if (frozen, badge) != (self.frozen, self.train_badge):
            self.frozen, self.train_badge = frozen, badge
            self.head = role == "projection_head"
            self._faces.clear()
            self.update()

    # ------------------------------------------------------------------ painting
    def paint(self, painter: QPainter, option: QStyleOptionGraphicsItem, widget: QWidget | None = None) -> None:
        lod = option.levelOfDetailFromTransform(painter.worldTransform())
        self._paint_box(painter, lod)
        if self.cost is not None:
            self._paint_cost(painter, lod)
        for run in self.face(lod):
            painter.setFont(run.font)
            painter.setPen(self._color(run.color))
            painter.drawText(run.rect, run.align, run.text)
        self._paint_ports(painter, lod)
        if self.is_block and self.interactive:
            self._paint_chevron(painter, lod)

    def _paint_box(self, painter: QPainter, lod: float) -> None:
        c = self.colors
        rect = QRectF(0, 0, NODE_W, NODE_H)
        if self.highlight:
            color = HIGHLIGHT[self.highlight]
            halo = QColor(color)
            halo.setAlpha(70 if self.highlight == "current" else 40)
            painter.setPen(pen(color, max(3.0, 2.5 / lod) if self.highlight == "current" else max(2.0, 1.5 / lod)))
            painter.setBrush(halo)
            painter.drawRoundedRect(self.body_rect().adjusted(-6, -6, 6, 6), 11, 11)
        if self.frame_size is not None:  # an expanded block: a tinted frame holding its inside
            tint = QColor(self.accent)
            tint.setAlpha(28)
            painter.setPen(pen(self.accent, 1.5))
            painter.setBrush(tint)
            painter.drawRoundedRect(self.body_rect(), 10, 10)
        elif self.is_block:  # a block looks like a stack of cards: one node with more inside
            painter.setPen(pen(c.node_border, 1.2))
            painter.setBrush(c.node)
            painter.drawRoundedRect(rect.translated(5, 5), 8, 8)
        marked = self.isSelected() or self.status == "error"
        border = c.error if self.status == "error" else (c.selection if self.isSelected() else c.node_border)
        painter.setPen(pen(border, max(2.4, 2.0 / lod) if marked else 1.2))
        painter.setBrush(c.node)
        painter.drawRoundedRect(rect, 8, 8)
        painter.setPen(Qt.PenStyle.NoPen)
        painter.setBrush(self.accent)
        painter.drawRoundedRect(QRectF(0, 0, 7, NODE_H), 4, 4)
        if self.frozen:  # frozen weights: an icy tint and a dashed border, readable at any zoom
            tint = QColor(FROZEN_COLOR)
            tint.setAlpha(40)
            painter.setBrush(tint)
            dashed = QPen(FROZEN_COLOR, max(2.0, 1.6 / lod))
            dashed.setStyle(Qt.PenStyle.DashLine)
            painter.setPen(dashed)
            painter.drawRoundedRect(rect.adjusted(1.5, 1.5, -1.5, -1.5), 7, 7)
        if self.head:  # a projection head (contrastive pre-training; dropped from the encoder): dash-dot outline
            outline = QPen(HEAD_COLOR, max(2.0, 1.6 / lod))
            outline.setStyle(Qt.PenStyle.DashDotLine)
            painter.setPen(outline)
            painter.setBrush(Qt.BrushStyle.NoBrush)
            painter.drawRoundedRect(rect.adjusted(-3, -3, 3, 3), 10, 10)

    def _paint_cost(self, painter: QPainter, lod: float) -> None:
        """The cost bar along the bottom of the box: a track and, over it, the node's share
        (at least a sliver, so a node that costs something never looks like one that costs nothing)."""
        track = QRectF(12, NODE_H - 8, NODE_W - 20, max(4.0, 3.0 / lod))
        painter.setPen(Qt.PenStyle.NoPen)
        shade = QColor(self.colors.node_border)
        shade.setAlpha(110)
        painter.setBrush(shade)
        painter.drawRoundedRect(track, 2, 2)
        if self.cost is not None and self.cost[0] > 0:
            painter.setBrush(COST_BAR)
            painter.drawRoundedRect(QRectF(track.x(), track.y(), max(3.0, track.width() * self.cost[0]),
                                           track.height()), 2, 2)

    def _paint_ports(self, painter: QPainter, lod: float) -> None:
        if PORT_R * lod < 1.0:
            return
        c = self.colors
        for p in (*self.inputs.values(), *self.outputs.values()):
            ok = p.state == "ok"
            painter.setPen(pen(c.port_ok if ok else c.node_border, 1.5))
            painter.setBrush(c.port_ok if ok else (c.background if p.state == "bad" else c.port))
            r = PORT_R + (2 if ok else 0)
            painter.drawEllipse(p._pos, r, r)

    def _chevron_shown(self, lod: float) -> bool:
        """Whether the expand/collapse chevron is drawn (and clickable) at zoom ``lod``."""
        return self.is_block and self.interactive and self.chevron_rect().height() * lod >= 6

    def _paint_chevron(self, painter: QPainter, lod: float) -> None:
        if not self._chevron_shown(lod):
            return
        r = self.chevron_rect()
        cx, cy, s = r.center().x(), r.center().y(), 5.0
        if self.frame_size is None:  # collapsed: pointing at the inside it can show
            tri = QPolygonF([QPointF(cx - s * 0.6, cy - s), QPointF(cx + s * 0.9, cy), QPointF(cx - s * 0.6, cy + s)])
        else:
            tri = QPolygonF([QPointF(cx - s, cy - s * 0.6), QPointF(cx + s, cy - s * 0.6), QPointF(cx, cy + s * 0.9)])
        painter.setPen(Qt.PenStyle.NoPen)
        painter.setBrush(self.accent)
        painter.drawPolygon(tri)

    # ------------------------------------------------------------------ events
    def hoverMoveEvent(self, event: Any) -> None:
        if self.interactive and self.port_at(event.scenePos()) is not None:
            self.setCursor(Qt.CursorShape.CrossCursor)
        elif self.is_block and self.interactive and self.chevron_rect().contains(event.pos()):
            self.setCursor(Qt.CursorShape.PointingHandCursor)
        else:
            self.unsetCursor()
        super().hoverMoveEvent(event)

    def mousePressEvent(self, event: Any) -> None:
        if (self.is_block and self.interactive and event.button() == Qt.MouseButton.LeftButton
                and self.chevron_rect().contains(event.pos())):
            toggle = getattr(self.scene(), "toggle_expanded", None)
            if toggle is not None:
                toggle(self.node_id)
                event.accept()
                return
        super().mousePressEvent(event)

    def mouseDoubleClickEvent(self, event: Any) -> None:
        scene: GraphScene = self.scene()  # type: ignore[assignment]
        if not self.interactive:  # the inside of an expanded block: edit it in the block itself
            scene.openRequested.emit(self.owner_id)
        elif self.is_block and self.chevron_rect().contains(event.pos()):
            pass  # a quick second click on the chevron is not a request to open the block
        else:
            (scene.openRequested if self.is_block else scene.renameRequested).emit(self.node_id)
        event.accept()


def wire_path(a: QPointF, b: QPointF, direction: str = "TB") -> QPainterPath:
    """A cubic curve from an output (``a``) to an input (``b``), leaving and entering along the
    flow: down for a top-to-bottom graph, right for left-to-right."""
    (c1x, c1y), (c2x, c2y) = curve_controls((a.x(), a.y()), (b.x(), b.y()), direction)
    path = QPainterPath(a)
    path.cubicTo(QPointF(c1x, c1y), QPointF(c2x, c2y), b)
    return path


def route_path(points: list[QPointF], radius: float = 10.0) -> QPainterPath:
    """An orthogonal route through ``points`` with rounded corners (each inside its corner, so it
    keeps the route's clearance)."""
    pts = [(p.x(), p.y()) for p in points]
    path = QPainterPath(points[0])
    for i in range(1, len(pts) - 1):
        (x0, y0), (x1, y1), (x2, y2) = pts[i - 1], pts[i], pts[i + 1]
        l1, l2 = abs(x1 - x0) + abs(y1 - y0), abs(x2 - x1) + abs(y2 - y1)
        r = min(radius, l1 / 2, l2 / 2)
        if r <= 0.5:
            path.lineTo(x1, y1)
            continue
        f1, f2 = r / l1, r / l2
        path.lineTo(x1 - (x1 - x0) * f1, y1 - (y1 - y0) * f1)
        path.quadTo(x1, y1, x1 + (x2 - x1) * f2, y1 + (y2 - y1) * f2)
    path.lineTo(*pts[-1])
    return path


Router = Callable[["EdgeItem", QPointF, QPointF], "list[QPointF] | None"]
"""Given a wire and its two ends, the corners of a route around the nodes in its way (or None:
the plain curve is clear)."""


class EdgeItem(QGraphicsPathItem):
    """A wire; hover shows the tensor shape it carries.  ``router`` (set by the scene) routes it
    around the nodes its curve would cross; ``route`` holds the corners it was drawn through."""

    def __init__(self, edge: Edge, src: PortItem, dst: PortItem, colors: CanvasColors,
                 router: Router | None = None, parent: QGraphicsItem | None = None) -> None:
        super().__init__(parent)
        self._bounds = QRectF()
        self._shape: QPainterPath | None = None
        self.edge, self.src, self.dst, self.colors = edge, src, dst, colors
        self.router = router
        self.route: list[QPointF] | None = None
        self.error = False
        self.hover = False
        self.tip = ""
        self._local = parent is not None  # inside an expanded block: drawn in the block's coordinates
        self.setFlag(QGraphicsItem.GraphicsItemFlag.ItemIsSelectable)
        self.setAcceptHoverEvents(True)
        self.update_path()
        self._apply_pen()

    def ends(self) -> tuple[QPointF, QPointF]:
        """The two port anchors in this item's coordinates."""
        a, b = self.src.scene_anchor(), self.dst.scene_anchor()
        if self._local:
            return self.mapFromScene(a), self.mapFromScene(b)
        return a, b

    def update_path(self) -> None:
        a, b = self.ends()
        self.route = self.router(self, a, b) if self.router is not None else None
        path = route_path(self.route) if self.route else wire_path(a, b, self.src.node_item.direction)
        if self.scene() is not None:  # while the old bounds still stand (Qt's index finds the wire by them)
            self.prepareGeometryChange()
        self._bounds = path.controlPointRect().adjusted(-WIRE_HIT / 2, -WIRE_HIT / 2, WIRE_HIT / 2, WIRE_HIT / 2)
        self._shape = None
        self.setPath(path)

    def boundingRect(self) -> QRectF:
        # Qt's own asks shape() for it, i.e. strokes the path on every change: 30 us a wire
        return self._bounds

    def shape(self) -> QPainterPath:
        if self._shape is None:  # made when a hit test needs it
            stroker = QPainterPathStroker()
            stroker.setWidth(WIRE_HIT)
            self._shape = stroker.createStroke(self.path())
        return self._shape

    def set_error(self, error: bool, tooltip: str) -> None:
        self.tip = tooltip
        if error != self.error:
            self.error = error
            self._apply_pen()

    def toolTip(self) -> str:
        return self.tip

    def refresh_pen(self) -> None:
        """Re-colour after a selection change (the scene calls it: an itemChange override on every
        wire would cost a Python call per wire for every change Qt reports)."""
        self._apply_pen()

    def _apply_pen(self) -> None:
        c = self.colors
        on = self.hover or self.isSelected()
        color = c.error if self.error else (c.wire_hover if on else c.wire)
        self.setPen(pen(color, 2.6 if on else 1.8))

    def hoverEnterEvent(self, event: Any) -> None:
        self.hover = True
        self._apply_pen()
        super().hoverEnterEvent(event)

    def hoverLeaveEvent(self, event: Any) -> None:
        self.hover = False
        self._apply_pen()
        super().hoverLeaveEvent(event)


class WireItem(QGraphicsPathItem):
    """The rubber-band wire that follows the mouse while connecting."""

    def __init__(self, colors: CanvasColors) -> None:
        super().__init__()
        dash = QPen(colors.wire_hover, 2.0, Qt.PenStyle.DashLine)
        self.setPen(dash)
        self.setBrush(QBrush(Qt.BrushStyle.NoBrush))
        self.setZValue(3)
