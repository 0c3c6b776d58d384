"""Canvas items: nodes, ports and wires.  Items hold ids and display text only;
the scene fills them from the graph and shape inference."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from PySide6.QtCore import QPointF, QRectF, Qt
from PySide6.QtGui import QBrush, QColor, QFont, QPainter, QPainterPath, QPainterPathStroker, QPen
from PySide6.QtWidgets import QGraphicsItem, QGraphicsPathItem, QStyleOptionGraphicsItem, QWidget

from workbench.graph import Edge

from ..style import CATEGORY_COLORS, CanvasColors

if TYPE_CHECKING:
    from .scene import GraphScene

NODE_W, NODE_H = 190.0, 66.0
PORT_R = 6.0
LABEL_H = 12.0


class PortItem(QGraphicsItem):
    """A port on a node's top (inputs) or bottom (outputs) edge."""

    def __init__(self, node: NodeItem, name: str, is_output: bool, label: bool) -> None:
        super().__init__(node)
        self.node_item, self.name, self.is_output, self.show_label = node, name, is_output, label
        self.state = "normal"  # normal | ok | bad
        self.setAcceptHoverEvents(True)
        self.setCursor(Qt.CursorShape.CrossCursor)
        self.setZValue(2)
        self.setToolTip(f"{'output' if is_output else 'input'} {name}")

    @property
    def node_id(self) -> str:
        return self.node_item.node_id

    def boundingRect(self) -> QRectF:
        r = PORT_R + 3
        return QRectF(-r, -r, 2 * r, 2 * r)

    def shape(self) -> QPainterPath:
        p = QPainterPath()
        p.addEllipse(self.boundingRect())
        return p

    def scene_anchor(self) -> QPointF:
        return self.scenePos()

    def set_state(self, state: str) -> None:
        if state != self.state:
            self.state = state
            self.update()

    def paint(self, painter: QPainter, option: QStyleOptionGraphicsItem, widget: QWidget | None = None) -> None:
        colors: CanvasColors = self.node_item.colors
        fill = {"ok": colors.port_ok, "bad": colors.background}.get(self.state, colors.port)
        painter.setPen(QPen(colors.node_border if self.state != "ok" else colors.port_ok, 1.5))
        painter.setBrush(fill)
        r = PORT_R + (2 if self.state == "ok" else 0)
        painter.drawEllipse(QPointF(0, 0), r, r)


class NodeItem(QGraphicsItem):
    """One layer node: name, type and key parameters, output shape and parameter count."""

    def __init__(self, node_id: str, category: str, colors: CanvasColors,
                 inputs: tuple[str, ...], outputs: tuple[str, ...], is_block: bool = False) -> None:
        super().__init__()
        self.node_id = node_id
        self.is_block = is_block
        self.colors = colors
        self.accent = QColor(CATEGORY_COLORS.get(category, "#607d8b"))
        self.title = ""
        self.subtitle = ""
        self.shape_text = ""
        self.params_text = ""
        self.status = "ok"
        self.edges: set[EdgeItem] = set()
        self.inputs: dict[str, PortItem] = {}
        self.outputs: dict[str, PortItem] = {}
        self.setFlags(
            QGraphicsItem.GraphicsItemFlag.ItemIsMovable
            | QGraphicsItem.GraphicsItemFlag.ItemIsSelectable
            | QGraphicsItem.GraphicsItemFlag.ItemSendsGeometryChanges
        )
        self.setAcceptHoverEvents(True)
        self.setZValue(1)
        self.set_ports(inputs, outputs)

    # ------------------------------------------------------------------ ports
    def set_ports(self, inputs: tuple[str, ...], outputs: tuple[str, ...]) -> None:
        """(Re)create port items when the node's ports change (e.g. Add's num_inputs)."""
        if tuple(self.inputs) == inputs and tuple(self.outputs) == outputs:
            return
        self.prepareGeometryChange()  # the bounding rect makes room for port names
        for p in [*self.inputs.values(), *self.outputs.values()]:
            p.setParentItem(None)
            if p.scene():
                p.scene().removeItem(p)
        self.inputs = {n: PortItem(self, n, False, len(inputs) > 1) for n in inputs}
        self.outputs = {n: PortItem(self, n, True, len(outputs) > 1) for n in outputs}
        for ports, y in ((self.inputs, 0.0), (self.outputs, NODE_H)):
            for i, port in enumerate(ports.values()):
                port.setPos(NODE_W * (i + 1) / (len(ports) + 1), y)
        # wires kept through the change (the graph refuses one that would lose its port) must hold
        # the new port items: the old ones are detached and would anchor the wire near the origin
        for e in self.edges:
            if e.edge.src == self.node_id and e.edge.src_port in self.outputs:
                e.src = self.outputs[e.edge.src_port]
            if e.edge.dst == self.node_id and e.edge.dst_port in self.inputs:
                e.dst = self.inputs[e.edge.dst_port]
            e.update_path()

    def port(self, name: str, output: bool) -> PortItem:
        return (self.outputs if output else self.inputs)[name]

    # ------------------------------------------------------------------ display
    def set_info(self, title: str, subtitle: str, shape_text: str, params_text: str, status: str,
                 tooltip: str) -> None:
        if (title, subtitle, shape_text, params_text, status) != (
            self.title, self.subtitle, self.shape_text, self.params_text, self.status
        ):
            self.title, self.subtitle, self.shape_text = title, subtitle, shape_text
            self.params_text, self.status = params_text, status
            self.update()
        self.setToolTip(tooltip)

    def boundingRect(self) -> QRectF:
        extra = 5 if self.is_block else 0
        top = LABEL_H if len(self.inputs) > 1 else 0.0
        bottom = LABEL_H if len(self.outputs) > 1 else 0.0
        return QRectF(-3, -3 - top, NODE_W + 6 + extra, NODE_H + 6 + extra + top + bottom)

    def paint(self, painter: QPainter, option: QStyleOptionGraphicsItem, widget: QWidget | None = None) -> None:
        c = self.colors
        lod = option.levelOfDetailFromTransform(painter.worldTransform())
        rect = QRectF(0, 0, NODE_W, NODE_H)
        border = c.error if self.status == "error" else (c.selection if self.isSelected() else c.node_border)
        if self.is_block:  # a block looks like a stack of cards: one node with more inside
            painter.setPen(QPen(c.node_border, 1.2))
            painter.setBrush(c.node)
            painter.drawRoundedRect(rect.translated(5, 5), 8, 8)
        painter.setPen(QPen(border, 2.4 if (self.isSelected() or self.status == "error") else 1.2))
        painter.setBrush(c.node)
        painter.drawRoundedRect(rect, 8, 8)
        painter.setPen(Qt.PenStyle.NoPen)
        painter.setBrush(self.accent)
        painter.drawRoundedRect(QRectF(0, 0, 7, NODE_H), 4, 4)
        if lod < 0.35:  # zoomed far out: shapes only, no text (keeps big graphs fluid)
            return
        f = QFont(painter.font())
        f.setPointSizeF(9.5)
        f.setBold(True)
        painter.setFont(f)
        painter.setPen(c.text)
        painter.drawText(QRectF(14, 5, NODE_W - 20, 18), Qt.AlignmentFlag.AlignLeft | Qt.AlignmentFlag.AlignVCenter,
                         self.title)
        f.setBold(False)
        f.setPointSizeF(8.0)
        painter.setFont(f)
        painter.setPen(c.subtext)
        painter.drawText(QRectF(14, 23, NODE_W - 20, 16), Qt.AlignmentFlag.AlignLeft | Qt.AlignmentFlag.AlignVCenter,
                         painter.fontMetrics().elidedText(self.subtitle, Qt.TextElideMode.ElideRight, int(NODE_W - 20)))
        painter.setPen(c.error if self.status == "error" else c.text)
        painter.drawText(QRectF(14, 40, NODE_W - 80, 16), Qt.AlignmentFlag.AlignLeft | Qt.AlignmentFlag.AlignVCenter,
                         painter.fontMetrics().elidedText(self.shape_text, Qt.TextElideMode.ElideRight, int(NODE_W - 84)))
        painter.setPen(c.subtext)
        painter.drawText(QRectF(NODE_W - 70, 40, 62, 16), Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter,
                         self.params_text)
        if self.is_block:
            painter.setPen(self.accent)
            painter.drawText(QRectF(NODE_W - 70, 5, 62, 18), Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter,
                             "BLOCK")
        f.setPointSizeF(7.0)
        painter.setFont(f)
        # port names sit outside the box, beside their port, so they never cover the node's text
        for ports, y in ((self.inputs, -LABEL_H), (self.outputs, NODE_H + 1)):
            if len(ports) > 1:
                for p in ports.values():
                    painter.drawText(QRectF(p.pos().x() + PORT_R + 2, y, 56, LABEL_H),
                                     Qt.AlignmentFlag.AlignLeft | Qt.AlignmentFlag.AlignVCenter, p.name)

    def itemChange(self, change: QGraphicsItem.GraphicsItemChange, value: Any) -> Any:
        if change == QGraphicsItem.GraphicsItemChange.ItemPositionChange and self.scene() is not None:
            return self.scene().snap(value)  # type: ignore[union-attr]
        if change == QGraphicsItem.GraphicsItemChange.ItemPositionHasChanged:
            for e in self.edges:
                e.update_path()
        return super().itemChange(change, value)

    def mouseDoubleClickEvent(self, event: Any) -> None:
        scene: GraphScene = self.scene()  # type: ignore[assignment]
        (scene.openRequested if self.is_block else scene.renameRequested).emit(self.node_id)
        event.accept()


def wire_path(a: QPointF, b: QPointF) -> QPainterPath:
    """A vertical cubic curve from an output (above) to an input (below).

    A wire that skips several rows of the same column bows out to the right, so a
    skip connection does not run underneath the nodes it jumps over.
    """
    path = QPainterPath(a)
    dy = b.y() - a.y()
    bend = max(40.0, abs(dy) * 0.5)
    if abs(b.x() - a.x()) < NODE_W * 0.6 and dy > 2.5 * NODE_H:
        bow = min(220.0, NODE_W * 0.55 + dy * 0.08)
        path.cubicTo(QPointF(a.x() + bow, a.y() + bend * 0.6), QPointF(b.x() + bow, b.y() - bend * 0.6), b)
    else:
        path.cubicTo(QPointF(a.x(), a.y() + bend), QPointF(b.x(), b.y() - bend), b)
    return path


class EdgeItem(QGraphicsPathItem):
    """A wire; hover shows the tensor shape it carries."""

    def __init__(self, edge: Edge, src: PortItem, dst: PortItem, colors: CanvasColors) -> None:
        super().__init__()
        self.edge, self.src, self.dst, self.colors = edge, src, dst, colors
        self.error = False
        self.hover = False
        self.setFlag(QGraphicsItem.GraphicsItemFlag.ItemIsSelectable)
        self.setAcceptHoverEvents(True)
        self.setZValue(0)
        self.update_path()
        self._apply_pen()

    def update_path(self) -> None:
        self.setPath(wire_path(self.src.scene_anchor(), self.dst.scene_anchor()))

    def shape(self) -> QPainterPath:
        stroker = QPainterPathStroker()
        stroker.setWidth(10)
        return stroker.createStroke(self.path())

    def set_error(self, error: bool, tooltip: str) -> None:
        self.setToolTip(tooltip)
        if error != self.error:
            self.error = error
            self._apply_pen()

    def _apply_pen(self) -> None:
        c = self.colors
        color = c.error if self.error else (c.wire_hover if (self.hover or self.isSelected()) else c.wire)
        self.setPen(QPen(color, 2.6 if (self.hover or self.isSelected()) else 1.8))

    def hoverEnterEvent(self, event: Any) -> None:
        self.hover = True
        self._apply_pen()
        super().hoverEnterEvent(event)

    def hoverLeaveEvent(self, event: Any) -> None:
        self.hover = False
        self._apply_pen()
        super().hoverLeaveEvent(event)

    def itemChange(self, change: QGraphicsItem.GraphicsItemChange, value: Any) -> Any:
        if change == QGraphicsItem.GraphicsItemChange.ItemSelectedHasChanged:
            self._apply_pen()
        return super().itemChange(change, value)


class WireItem(QGraphicsPathItem):
    """The rubber-band wire that follows the mouse while connecting."""

    def __init__(self, colors: CanvasColors) -> None:
        super().__init__()
        pen = QPen(colors.wire_hover, 2.0, Qt.PenStyle.DashLine)
        self.setPen(pen)
        self.setBrush(QBrush(Qt.BrushStyle.NoBrush))
        self.setZValue(3)
