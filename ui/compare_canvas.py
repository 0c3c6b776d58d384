"""The two sides of the Compare view: read-only canvases whose nodes carry a coloured halo
by what the diff says of them (added, removed, changed, renamed)."""

from __future__ import annotations

import html

from PySide6.QtCore import QPointF, QRectF, Qt
from PySide6.QtGui import QBrush, QColor, QPainterPath, QPen
from PySide6.QtWidgets import (
    QGraphicsItem,
    QGraphicsPathItem,
    QGraphicsScene,
    QGraphicsSceneMouseEvent,
    QLabel,
    QVBoxLayout,
    QWidget,
)

from workbench.project import Project

from .canvas.items import NODE_H, NODE_W
from .canvas.scene import GraphScene
from .canvas.view import GraphView
from .document import Document

#: what a node is on its side: its halo colour and the list's marker
#: (none is a category accent of the canvas: a halo must not read as a kind of layer)
KINDS = {"added": ("#22a55b", "+"), "removed": ("#e5383b", "−"), "changed": ("#f59e0b", "~"),
         "renamed": ("#3b82f6", "→")}
DIMMED = 0.55  # unchanged nodes step back so the differences stand out


class ReadOnlyScene(GraphScene):
    """A graph scene that only selects: no wires, no moves, no rename or open on double-click."""

    def __init__(self, document: Document) -> None:
        super().__init__(document)
        for item in self.nodes.values():
            item.setFlag(item.GraphicsItemFlag.ItemIsMovable, False)
        self.halos: list[QGraphicsPathItem] = []
        self.bound = False  # its selection is followed by the compare window

    def mousePressEvent(self, event: QGraphicsSceneMouseEvent) -> None:
        QGraphicsScene.mousePressEvent(self, event)

    def mouseMoveEvent(self, event: QGraphicsSceneMouseEvent) -> None:
        QGraphicsScene.mouseMoveEvent(self, event)

    def mouseReleaseEvent(self, event: QGraphicsSceneMouseEvent) -> None:
        QGraphicsScene.mouseReleaseEvent(self, event)

    def mouseDoubleClickEvent(self, event: QGraphicsSceneMouseEvent) -> None:
        event.accept()

    def mark(self, kinds: dict[str, str]) -> None:
        """Colour a halo behind each node of ``kinds`` (node id -> kind); dim the others."""
        for halo in self.halos:
            self.removeItem(halo)
        self.halos = []
        for nid, item in self.nodes.items():
            kind = kinds.get(nid)
            item.setOpacity(1.0 if kind else DIMMED)
            if kind is None:
                continue
            color = QColor(KINDS[kind][0])
            path = QPainterPath()
            path.addRoundedRect(QRectF(-7, -7, NODE_W + 14, NODE_H + 14), 12, 12)
            halo = QGraphicsPathItem(path)
            halo.setPen(QPen(color, 4))
            fill = QColor(color)
            fill.setAlpha(50)
            halo.setBrush(QBrush(fill))
            halo.setPos(item.pos())
            halo.setZValue(0.5)  # above the wires, below the node
            halo.setToolTip(kind)
            self.addItem(halo)
            self.halos.append(halo)


class Side(QWidget):
    """One model: a title and a read-only canvas showing one of its graphs."""

    def __init__(self, project: Project, title: str, color: str) -> None:
        super().__init__()
        self.project = project
        self.doc = Document(project)
        self.empty = Document(Project())
        self.scene = ReadOnlyScene(self.empty)  # until a graph is shown (one scene of a big graph is enough)
        self.view = GraphView(self.scene)
        self.view.setAcceptDrops(False)
        self.title = QLabel(f"<b style='color:{color}'>{html.escape(title)}</b>")
        self.title.setTextFormat(Qt.TextFormat.RichText)
        self.title.setToolTip(html.escape(title))
        column = QVBoxLayout(self)
        column.setContentsMargins(0, 0, 0, 0)
        column.addWidget(self.title)
        column.addWidget(self.view, 1)

    def show_role(self, role: str | None) -> None:
        """Show a graph of the project (``None``: it has no such graph; an empty canvas)."""
        doc = self.doc if role is not None else self.empty
        if role is not None and role != doc.role:
            doc.set_role(role)
        elif self.scene.doc is doc and self.scene.graph is doc.graph:
            return
        old = self.scene
        old.detach()
        self.scene = ReadOnlyScene(doc)
        self.view.setScene(self.scene)
        self.view.update_scene_rect()
        old.deleteLater()



def centre_of(item: QGraphicsItem) -> QPointF:
    return item.pos() + QPointF(NODE_W / 2, NODE_H / 2)
