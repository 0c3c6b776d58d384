"""Editing gestures on the canvas that are more than one mouse event: adding a
layer or block, delete, clipboard, duplicate, rename in place, group and
ungroup, auto-layout."""

from __future__ import annotations

import json
from typing import Any

from PySide6.QtCore import QObject, QPointF, Qt, Signal
from PySide6.QtGui import QGuiApplication
from PySide6.QtWidgets import QLineEdit

from workbench.block_io import library_from_dict, plan_merge, retyped
from workbench.errors import ProjectError, WorkbenchError
from workbench.graph import Edge
from workbench.grouping import Grouping, Ungrouping
from workbench.layers.spec import LayerSpec
from workbench.layout import auto_layout
from workbench.project import graph_from_dict, parse_json
from workbench.ready_blocks import ready_catalogue

from ..commands import (
    AddBlocksCommand,
    AddNodeCommand,
    ConnectCommand,
    GroupCommand,
    MoveNodesCommand,
    PasteCommand,
    RemoveNodesCommand,
    RenameCommand,
    RewireCommand,
    UngroupCommand,
)
from ..document import Document
from .items import NODE_H, NODE_W
from .scene import GRID, GraphScene
from .view import GraphView

READY_PREFIX = "ready:"
"""Palette entries of ready blocks carry ``ready:<id>``: placing one copies the block into the project."""


class CanvasEditor(QObject):
    """Turns canvas intents into commands on the document's undo stack."""

    message = Signal(str)

    def __init__(self, view: GraphView, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.view = view
        self._rename_edit: QLineEdit | None = None
        # a drop connects after the single selected node, or splits the wire it lands on
        view.layerDropped.connect(lambda layer, pos: self.add_layer(layer, pos))
        view.layerDroppedOnWire.connect(self.insert_on_wire)

    @property
    def scene(self) -> GraphScene:
        return self.view.graph_scene

    @property
    def doc(self) -> Document:
        return self.scene.doc

    # ------------------------------------------------------------------ add
    def _resolve(self, type_id: str) -> tuple[str, str, dict[str, Any], LayerSpec] | None:
        """A palette entry as (type id, display name, blocks to copy in first, its declaration);
        None, with a message, when it cannot go into the graph on the canvas."""
        g = self.doc.graph
        blocks: dict[str, Any] = {}
        if type_id.startswith(READY_PREFIX):
            ready = type_id[len(READY_PREFIX):]
            mapping, blocks = plan_merge(ready_catalogue(), [ready], self.doc.project.blocks)
            type_id, name = mapping[ready], ready_catalogue().defs[ready].name
            spec = ready_catalogue().defs[ready].spec() if blocks else g.spec_of(type_id)
        else:
            spec = g.spec_of(type_id)
            name = spec.name
        try:
            if type_id not in blocks:  # (a block about to be added cannot contain this graph)
                g.check_add(type_id)  # e.g. a block dropped into its own inside
        except WorkbenchError as exc:
            self.message.emit(f"Cannot add {name}: {exc}")
            return None
        return type_id, name, blocks, spec

    def add_layer(self, type_id: str, pos: QPointF | None = None, connect: bool = True) -> str | None:
        """Add a layer or block at ``pos`` (default: the view's centre); with ``connect``, wire
        it after the single selected node when both have a port for it.  A ready block
        (``ready:<id>``) is first copied into the project, in the same undo step.
        Returns the new id (None when the block cannot go here)."""
        resolved = self._resolve(type_id)
        if resolved is None:
            return None
        type_id, name, blocks, spec = resolved
        g = self.doc.graph
        stack = self.doc.undo_stack
        selected = self.scene.selected_node_ids()
        after = None
        if connect and len(selected) == 1 and spec.input_ports(spec.defaults()):
            prev = g.nodes[selected[0]]
            if prev.output_ports:
                after = prev
        stack.beginMacro(f"Add {name}" + (f" after {after.name}" if after is not None else ""))
        if blocks:
            stack.push(AddBlocksCommand(self.doc.project.blocks, blocks, f"Add block {name}"))
        if pos is None:
            if after is not None:
                pos = QPointF(after.position[0], after.position[1] + NODE_H + 3 * GRID)
            else:
                pos = self.view.visible_center() - QPointF(NODE_W / 2, NODE_H / 2)
        pos = self.scene.snap(pos)
        add = AddNodeCommand(g, type_id, (pos.x(), pos.y()))
        stack.push(add)
        assert add.node_id is not None
        if after is not None:  # a new node's free input, from an existing node: no cycle, no taken port
            port = g.nodes[add.node_id].input_ports[0]
            stack.push(ConnectCommand(g, Edge(after.id, after.output_ports[0], add.node_id, port)))
        stack.endMacro()
        self.scene.select_nodes([add.node_id])
        self.view.update_scene_rect()
        self.message.emit(f"Added {g.nodes[add.node_id].name}" + (f" after {after.name}" if after else ""))
        return add.node_id

    def insert_on_wire(self, type_id: str, pos: QPointF, edge: Edge) -> str | None:
        """Drop a layer or block on a wire: the wire splits into source -> new node -> destination
        (the new node's first input and first output: its main ones), and the nodes downstream
        move along when there is no room between the two, all in one undo step.  A layer with no
        input or no output (an Input, an Output) is added beside the wire, with a message."""
        entry = type_id
        resolved = self._resolve(type_id)
        if resolved is None:
            return None
        type_id, name, blocks, spec = resolved
        g = self.doc.graph
        params = spec.defaults()
        if edge not in g.edges or not spec.input_ports(params) or not spec.output_ports(params):
            nid = self.add_layer(entry, pos, connect=False)
            if nid is not None and edge in g.edges:
                self.message.emit(f"{name} has no {'input' if not spec.input_ports(params) else 'output'}: "
                                  "it cannot go into a wire, so it was added beside it")
            return nid
        a, b = g.nodes[edge.src].name, g.nodes[edge.dst].name
        place, moves = self._insertion_place(edge, self.scene.snap(pos))
        stack = self.doc.undo_stack
        text = f"Insert {name} between {a} and {b}"
        stack.beginMacro(text)
        if blocks:
            stack.push(AddBlocksCommand(self.doc.project.blocks, blocks, f"Add block {name}"))
        if moves:
            stack.push(MoveNodesCommand(g, moves, f"Make room after {a}"))
        add = AddNodeCommand(g, type_id, (place.x(), place.y()))
        stack.push(add)
        nid = add.node_id
        assert nid is not None
        new = g.nodes[nid]
        wires = [Edge(edge.src, edge.src_port, nid, new.input_ports[0]),
                 Edge(nid, new.output_ports[0], edge.dst, edge.dst_port)]
        stack.push(RewireCommand(g, [edge], wires, text))
        stack.endMacro()
        self.scene.select_nodes([nid])
        self.view.update_scene_rect()
        self.message.emit(f"Inserted {new.name} between {a} and {b}")
        return nid

    def _insertion_place(self, edge: Edge, drop: QPointF) -> tuple[QPointF, dict[str, Any]]:
        """Where a node inserted into ``edge`` goes, and which nodes move to make room for it.

        Along the flow (down, or right for a left-to-right graph): when the new node fits
        between the wire's two nodes it stays where it was dropped, kept clear of both; else it
        takes the destination's place and the destination with everything below it moves one
        step (the distance between the two), so a chain keeps its spacing.
        """
        g = self.doc.graph
        src, dst = g.nodes[edge.src].position, g.nodes[edge.dst].position
        flow = 0 if self.scene.direction == "LR" else 1
        size = (NODE_W, NODE_H)[flow]
        step = dst[flow] - src[flow]
        along = drop.y() if flow else drop.x()
        if step >= 2 * size + 2 * GRID:  # room between them
            lo, hi = src[flow] + size + GRID, dst[flow] - size - GRID
            along = min(max(along, lo), hi)
            place = QPointF(drop.x(), along) if flow else QPointF(along, drop.y())
            return self.scene.snap(place), {}
        if step <= 0:  # the wire runs against the flow: no order to keep
            return drop, {}
        place = QPointF(dst[0], dst[1])
        moves = {}
        for nid in {edge.dst} | g.descendants(edge.dst):
            old = g.nodes[nid].position
            moves[nid] = (old, (old[0], old[1] + step) if flow else (old[0] + step, old[1]))
        return place, moves

    # ------------------------------------------------------------------ delete
    def delete_selection(self) -> None:
        nodes, edges = self.scene.selected_node_ids(), self.scene.selected_edges()
        reason = self.doc.graph.can_remove(nodes)
        if reason:
            self.message.emit(f"Cannot delete: {reason}")
            return
        if nodes or edges:
            self.doc.undo_stack.push(RemoveNodesCommand(self.doc.graph, nodes, edges))

    # ------------------------------------------------------------------ clipboard
    def selection_json(self) -> str | None:
        ids = self.scene.selected_node_ids()
        if not ids:
            return None
        g = self.doc.graph
        doc = {"neural-workbench-fragment": 1, "graph": g.to_dict(ids)}
        used = sorted({g.nodes[i].type for i in ids if g.nodes[i].is_block})
        if used:  # the blocks travel with their instances (into another project, too)
            doc["blocks"] = self.doc.project.blocks.to_dict(used)
        return json.dumps(doc)

    def copy(self) -> bool:
        text = self.selection_json()
        if text is None:
            return False
        # Plain text, not a QMimeData made here: the clipboard would own a Python-created object that
        # Qt destroys after the interpreter has shut down (a segfault at exit). The text is the
        # fragment's JSON, tagged "neural-workbench-fragment", so paste recognises it.
        QGuiApplication.clipboard().setText(text)
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
            text = QGuiApplication.clipboard().text()
            if not text:
                return []
        lib = self.doc.project.blocks
        try:
            doc = parse_json(text, "clipboard")
            if not isinstance(doc, dict) or "graph" not in doc:
                raise ProjectError("the clipboard holds no Neural Workbench nodes", "", "clipboard")
            carried = library_from_dict(doc.get("blocks", {}), "blocks", "clipboard")
            mapping, new_blocks = plan_merge(carried, list(carried.defs), lib)
            graph_doc = retyped(doc["graph"], mapping) if isinstance(doc["graph"], dict) else doc["graph"]
            staged = library_from_dict({**lib.to_dict(), **new_blocks}, "blocks", "clipboard")
            fragment = graph_from_dict(graph_doc, "graph", "clipboard", library=staged)
            for n in fragment:
                self.doc.graph.check_add(n.type)
        except WorkbenchError as exc:
            self.message.emit(f"Cannot paste: {exc}")
            return []
        if not len(fragment):
            return []
        stack = self.doc.undo_stack
        stack.beginMacro(label)
        if new_blocks:
            stack.push(AddBlocksCommand(lib, new_blocks, f"Add {len(new_blocks)} block(s)"))
        fragment = graph_from_dict(graph_doc, "graph", "clipboard", library=lib)
        cmd = PasteCommand(self.doc.graph, fragment, (offset, offset), label)
        stack.push(cmd)
        stack.endMacro()
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

    # ------------------------------------------------------------------ blocks
    def group_selection(self, name: str) -> str | None:
        """Group the selected nodes into a new block named ``name``; returns the block node's id."""
        try:
            change = Grouping(self.doc.graph, self.scene.selected_node_ids(), name, shapes=self.doc.shapes)
        except WorkbenchError as exc:
            self.message.emit(f"Cannot group: {exc}")
            return None
        cmd = GroupCommand(change)
        self.doc.undo_stack.push(cmd)
        self.scene.select_nodes([cmd.node_id] if cmd.node_id else [])
        self.message.emit(f"Grouped {len(change.node_ids)} nodes into {change.block.name} "
                          "(double-click it to open it)")
        return cmd.node_id

    def ungroup_selection(self) -> list[str]:
        """Replace each selected block node by the layers inside it (one undo step)."""
        g = self.doc.graph
        blocks = [nid for nid in self.scene.selected_node_ids() if g.nodes[nid].is_block]
        if not blocks:
            self.message.emit("Select a block node to ungroup")
            return []
        stack = self.doc.undo_stack
        new: list[str] = []
        stack.beginMacro(f"Ungroup {g.nodes[blocks[0]].name}" if len(blocks) == 1 else f"Ungroup {len(blocks)} blocks")
        try:
            for nid in blocks:
                cmd = UngroupCommand(Ungrouping(g, nid))
                stack.push(cmd)
                new += list(cmd.change.new_ids.values())
        except WorkbenchError as exc:
            self.message.emit(f"Cannot ungroup: {exc}")
        finally:
            stack.endMacro()
        self.scene.select_nodes(new)
        return new

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
