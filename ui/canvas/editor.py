"""Editing gestures on the canvas that are more than one mouse event: adding a
layer, delete, clipboard, duplicate, rename in place, auto-layout."""

from __future__ import annotations

import json

from PySide6.QtCore import QMimeData, QObject, QPointF, Qt, Signal
from PySide6.QtGui import QGuiApplication
from PySide6.QtWidgets import QLineEdit

from workbench.errors import ProjectError, WorkbenchError
from workbench.graph import Edge
from workbench.layers import REGISTRY
from workbench.layout import auto_layout
from workbench.project import graph_from_dict, parse_json

from ..commands import AddNodeCommand, ConnectCommand, MoveNodesCommand, PasteCommand, RemoveNodesCommand, RenameCommand
from ..document import Document
from .items import NODE_H, NODE_W
from .scene import GRID, GraphScene
from .view import GraphView

GRAPH_MIME = "application/x-neural-workbench-graph"


class CanvasEditor(QObject):
    """Turns canvas intents into commands on the document's undo stack."""

    message = Signal(str)

    def __init__(self, view: GraphView, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.view = view
        self._rename_edit: QLineEdit | None = None
        view.layerDropped.connect(lambda layer, pos: self.add_layer(layer, pos, connect=False))

    @property
    def scene(self) -> GraphScene:
        return self.view.graph_scene

    @property
    def doc(self) -> Document:
        return self.scene.doc

    # ------------------------------------------------------------------ add
    def add_layer(self, type_id: str, pos: QPointF | None = None, connect: bool = True) -> str:
        """Add a layer at ``pos`` (default: the view's centre); with ``connect``, wire it
        after the single selected node when both have a port for it.  Returns the new id."""
        g = self.doc.graph
        spec = REGISTRY[type_id]
        selected = self.scene.selected_node_ids()
        after = None
        if connect and len(selected) == 1 and spec.input_ports(spec.defaults()):
            prev = g.nodes[selected[0]]
            if prev.output_ports:
                after = prev
        if pos is None:
            if after is not None:
                pos = QPointF(after.position[0], after.position[1] + NODE_H + 3 * GRID)
            else:
                pos = self.view.visible_center() - QPointF(NODE_W / 2, NODE_H / 2)
        pos = self.scene.snap(pos)
        stack = self.doc.undo_stack
        add = AddNodeCommand(g, type_id, (pos.x(), pos.y()))
        if after is None:
            stack.push(add)
        else:
            stack.beginMacro(add.text())
            stack.push(add)
            assert add.node_id is not None
            port = g.nodes[add.node_id].input_ports[0]
            reason = g.can_connect(after.id, after.output_ports[0], add.node_id, port)
            if reason is None:
                stack.push(ConnectCommand(g, Edge(after.id, after.output_ports[0], add.node_id, port)))
            stack.endMacro()
        assert add.node_id is not None
        self.scene.select_nodes([add.node_id])
        self.view.update_scene_rect()
        self.message.emit(f"Added {g.nodes[add.node_id].name}")
        return add.node_id

    # ------------------------------------------------------------------ delete
    def delete_selection(self) -> None:
        nodes, edges = self.scene.selected_node_ids(), self.scene.selected_edges()
        if nodes or edges:
            self.doc.undo_stack.push(RemoveNodesCommand(self.doc.graph, nodes, edges))

    # ------------------------------------------------------------------ clipboard
    def selection_json(self) -> str | None:
        ids = self.scene.selected_node_ids()
        if not ids:
            return None
        return json.dumps({"neural-workbench-fragment": 1, "graph": self.doc.graph.to_dict(ids)})

    def copy(self) -> bool:
        text = self.selection_json()
        if text is None:
            return False
        mime = QMimeData()
        mime.setData(GRAPH_MIME, text.encode("utf-8"))
        mime.setText(text)
        QGuiApplication.clipboard().setMimeData(mime)
        self.message.emit(f"Copied {len(self.scene.selected_node_ids())} node(s)")
        return True

    def cut(self) -> None:
        if self.copy():
            stack = self.doc.undo_stack
            stack.beginMacro("Cut")
            self.delete_selection()
            stack.endMacro()

    def paste(self, text: str | None = None, offset: float = 2 * GRID, label: str = "Paste") -> list[str]:
        """Insert nodes from JSON (the clipboard by default). Bad data gives a message, not a crash."""
        if text is None:
            mime = QGuiApplication.clipboard().mimeData()
            if mime is None:
                return []
            text = bytes(mime.data(GRAPH_MIME).data()).decode("utf-8") if mime.hasFormat(GRAPH_MIME) else mime.text()
        try:
            doc = parse_json(text, "clipboard")
            if not isinstance(doc, dict) or "graph" not in doc:
                raise ProjectError("the clipboard holds no Neural Workbench nodes", "", "clipboard")
            fragment = graph_from_dict(doc["graph"], "graph", "clipboard")
        except WorkbenchError as exc:
            self.message.emit(f"Cannot paste: {exc}")
            return []
        if not len(fragment):
            return []
        cmd = PasteCommand(self.doc.graph, fragment, (offset, offset), label)
        self.doc.undo_stack.push(cmd)
        self.scene.select_nodes(cmd.new_ids)
        self.view.update_scene_rect()
        return cmd.new_ids

    def duplicate(self) -> list[str]:
        text = self.selection_json()
        return self.paste(text, label="Duplicate") if text else []

    def select_all(self) -> None:
        for item in self.scene.nodes.values():
            item.setSelected(True)

    # ------------------------------------------------------------------ rename in place
    def start_rename(self, node_id: str | None = None) -> QLineEdit | None:
        ids = [node_id] if node_id else self.scene.selected_node_ids()
        if len(ids) != 1:
            return None
        nid = ids[0]
        item = self.scene.nodes[nid]
        edit = QLineEdit(self.view.viewport())
        edit.setObjectName("renameEdit")
        edit.setText(self.doc.graph.nodes[nid].name)
        edit.selectAll()
        top_left = self.view.mapFromScene(item.pos())
        edit.setGeometry(top_left.x() + 10, top_left.y() + 3, int(NODE_W * self.view.zoom()) - 16, 24)
        edit.show()
        edit.setFocus(Qt.FocusReason.OtherFocusReason)

        def finish() -> None:
            if self._rename_edit is not edit:
                return
            self._rename_edit = None
            new = edit.text().strip()
            edit.deleteLater()
            if nid not in self.doc.graph.nodes or new == self.doc.graph.nodes[nid].name:
                return
            reason = None
            try:
                self.doc.graph.validate_name(new, ignore=nid)
            except WorkbenchError as exc:
                reason = str(exc)
            if reason:
                self.message.emit(f"Rename refused: {reason}")
                return
            self.doc.undo_stack.push(RenameCommand(self.doc.graph, nid, new))

        edit.editingFinished.connect(finish)
        self._rename_edit = edit
        return edit

    # ------------------------------------------------------------------ layout
    def auto_layout(self, direction: str = "TB") -> None:
        g = self.doc.graph
        if not len(g):
            return
        positions = auto_layout(g, direction)
        moves = {nid: (g.nodes[nid].position, self._snapped(p)) for nid, p in positions.items()}
        moves = {k: v for k, v in moves.items() if v[0] != v[1]}
        if moves:
            text = f"Auto-layout ({'top to bottom' if direction == 'TB' else 'left to right'})"
            self.doc.undo_stack.push(MoveNodesCommand(g, moves, text))
        self.view.fit()

    def _snapped(self, p: tuple[float, float]) -> tuple[float, float]:
        s = self.scene.snap(QPointF(*p))
        return (s.x(), s.y())
