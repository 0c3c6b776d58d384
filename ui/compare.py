"""The Compare view: two models side by side, their differences coloured and listed.

Each side draws its graph with the canvas's own scene and items, read-only.  The diff
(:mod:`workbench.diff`) decides what corresponds: choosing a difference in the list, or a
node on either side, selects and centres it and its match on the other side; panning or
zooming one side moves the other so that the matched node nearest the centre stays in the
same place on both.  Blocks are compared inside: the *Graph* box shows the inside of a block
on both sides.
"""

from __future__ import annotations

import html
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from PySide6.QtCore import QPointF, Qt
from PySide6.QtGui import QColor, QShowEvent
from PySide6.QtWidgets import (
    QComboBox,
    QFileDialog,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QMessageBox,
    QPlainTextEdit,
    QSplitter,
    QTreeWidget,
    QTreeWidgetItem,
    QVBoxLayout,
    QWidget,
)

from workbench.diff import BlockDiff, GraphDiff, NodeChange, ProjectDiff, change_lines, diff_projects, format_value
from workbench.errors import WorkbenchError
from workbench.project import Project, load_project, loads_project

from .canvas.items import NodeItem
from .canvas.view import GraphView
from .compare_canvas import KINDS, Side, centre_of
from .document import block_role
from .style import is_dark
from .wheel import guard_wheel

if TYPE_CHECKING:
    from .mainwindow import MainWindow

@dataclass(frozen=True)
class Entry:
    """A row of the difference list: which graph, which node on each side (None: not there)."""

    graph: int
    a: str | None
    b: str | None


@dataclass
class GraphPair:
    """A graph as both sides show it (``None``: that side has no such graph)."""

    name: str
    role_a: str | None
    role_b: str | None
    diff: GraphDiff | None
    block: BlockDiff | None = None

    @property
    def differs(self) -> bool:
        return self.diff is None or not self.diff.equal or (self.block is not None and not self.block.equal)

    @property
    def title(self) -> str:
        if self.diff is None:
            return f"{self.name} (only in {'B' if self.role_a is None else 'A'})"
        return f"{self.name} (differs)" if self.block is not None and self.differs else self.name


class CompareWindow(QWidget):
    """Two projects side by side with the list of their differences.

    Args:
        a, b: the projects (the window keeps them; pass copies of projects being edited).
        title_a, title_b: how each side is named (file names).
    """

    def __init__(self, a: Project, b: Project, title_a: str, title_b: str, parent: QWidget | None = None) -> None:
        super().__init__(parent, Qt.WindowType.Window)
        self.setWindowTitle(f"Compare {Path(title_a).name} with {Path(title_b).name}")
        self.diff: ProjectDiff = diff_projects(a, b, title_a, title_b)
        self.left = Side(a, f"A: {title_a}", KINDS["removed"][0])
        self.right = Side(b, f"B: {title_b}", KINDS["added"][0])
        self.pairs = self._pairs(a, b)
        self._busy = False  # while one side moves the other (no echo back)
        self._partners: tuple[dict[str, str], dict[str, str]] = ({}, {})  # of the graph pair shown
        self.graph_box = QComboBox()
        self.graph_box.setToolTip("Which graph both sides show: the model, another graph, or the inside of a block")
        for pair in self.pairs:
            self.graph_box.addItem(pair.title)
        guard_wheel(self.graph_box)
        self.graph_box.currentIndexChanged.connect(self.show_pair)
        self.list = QTreeWidget()
        self.list.setHeaderHidden(True)
        self.list.setRootIsDecorated(True)
        self.list.setMinimumWidth(220)
        self.list.header().setSectionResizeMode(QHeaderView.ResizeMode.ResizeToContents)
        self.list.header().setStretchLastSection(False)  # long rows scroll sideways rather than being cut
        self.list.itemSelectionChanged.connect(self._entry_chosen)
        self.verdict = QLabel()
        self.details = QPlainTextEdit()  # plain text: names come from files
        self.details.setReadOnly(True)
        self.details.setPlaceholderText("Choose a difference, or a node on either side, to see what changed.")
        self._fill_list()
        legend = "  ".join(f"<span style='color:{c}'>■</span> {k}" for k, (c, _) in KINDS.items())
        top = QHBoxLayout()
        top.addWidget(QLabel("Graph:"))
        top.addWidget(self.graph_box)
        top.addSpacing(12)
        top.addWidget(self.verdict, 1)
        top.addWidget(QLabel(legend))
        split = QSplitter(Qt.Orientation.Horizontal)
        lists = QSplitter(Qt.Orientation.Vertical)
        lists.addWidget(self.list)
        lists.addWidget(self.details)
        lists.setSizes([480, 220])
        split.addWidget(lists)
        split.addWidget(self.left)
        split.addWidget(self.right)
        split.setStretchFactor(0, 0)
        split.setStretchFactor(1, 1)
        split.setStretchFactor(2, 1)
        split.setSizes([280, 500, 500])
        column = QVBoxLayout(self)
        column.setContentsMargins(6, 6, 6, 6)
        column.addLayout(top)
        column.addWidget(split, 1)
        for side in (self.left, self.right):
            view = side.view
            view.horizontalScrollBar().valueChanged.connect(lambda _v, s=side: self._follow(s))
            view.verticalScrollBar().valueChanged.connect(lambda _v, s=side: self._follow(s))
            view.zoomChanged.connect(lambda _z, s=side: self._follow(s))
        self.current = -1
        self._shown = False
        self.resize(1280, 800)
        self.show_pair(0)

    def showEvent(self, event: QShowEvent) -> None:
        super().showEvent(event)
        if not self._shown:  # the views have their real size only now: fit them to it
            self._shown = True
            self.refit()

    def refit(self) -> None:
        """Fit the left side to its view and line the right side up with it."""
        self._busy = True
        try:
            self.left.view.fit()
            self.right.view.fit()
        finally:
            self._busy = False
        self._remember()
        self._follow(self.left)

    # ------------------------------------------------------------------ graphs
    def _pairs(self, a: Project, b: Project) -> list[GraphPair]:
        pairs = [GraphPair("Model", "main", "main", self.diff.graphs[0])]
        for g in self.diff.graphs[1:]:
            pairs.append(GraphPair(g.label.capitalize(), g.label if g.label in a.graphs else None,
                                   g.label if g.label in b.graphs else None, g))
        for bd in self.diff.blocks:
            name = bd.b_id if bd.a_id == bd.b_id else f"{bd.a_id} → {bd.b_id}"
            pairs.append(GraphPair(f"Block {name}", block_role(bd.a_id), block_role(bd.b_id), bd.graph, bd))
        pairs += [GraphPair(f"Block {bid}", block_role(bid), None, None) for bid in self.diff.blocks_removed]
        pairs += [GraphPair(f"Block {bid}", None, block_role(bid), None) for bid in self.diff.blocks_added]
        return pairs

    def show_pair(self, index: int) -> None:
        """Show one graph pair on both sides, coloured by its differences."""
        if index == self.current:
            return
        self.current = index
        g = self.pairs[index].diff
        self._partners = (dict(g.matches), {y: x for x, y in g.matches}) if g is not None else ({}, {})
        if self.graph_box.currentIndex() != index:
            self.graph_box.setCurrentIndex(index)  # (re-enters, returns at once)
        pair = self.pairs[index]
        self._busy = True
        try:
            for side, role in ((self.left, pair.role_a), (self.right, pair.role_b)):
                side.show_role(role)
                if not side.scene.bound:
                    side.scene.selectionChanged.connect(lambda s=side: self._node_chosen(s))
                    side.scene.bound = True
            kinds_a, kinds_b = self._kinds(pair)
            if pair.diff is None:  # a block only one side has: all of it is new, or gone
                kinds_a = dict.fromkeys(self.left.scene.nodes, "removed")
                kinds_b = dict.fromkeys(self.right.scene.nodes, "added")
            self.left.scene.mark(kinds_a)
            self.right.scene.mark(kinds_b)
        finally:
            self._busy = False
        self.refit()

    @staticmethod
    def _kinds(pair: GraphPair) -> tuple[dict[str, str], dict[str, str]]:
        a: dict[str, str] = {}
        b: dict[str, str] = {}
        if pair.diff is None:
            return a, b
        for c in pair.diff.changes:
            a[c.a.id] = b[c.b.id] = "changed" if c.changed else "renamed"
        a.update({n.id: "removed" for n in pair.diff.removed})
        b.update({n.id: "added" for n in pair.diff.added})
        return a, b

    # ------------------------------------------------------------------ the list
    def _fill_list(self) -> None:
        self.list.clear()
        self.entries: dict[int, Entry] = {}
        total = 0
        for index, pair in enumerate(self.pairs):
            g = pair.diff
            if index and not pair.differs:
                continue
            if g is None:
                kind = "added" if pair.role_a is None else "removed"
                root = QTreeWidgetItem([f"{pair.name}: only in {'B' if kind == 'added' else 'A'}"])
                root.setForeground(0, _text_color(KINDS[kind][0]))
                self.list.addTopLevelItem(root)
                self._bind(root, Entry(index, None, None))
                total += 1
                continue
            count = len(g.changes) + len(g.added) + len(g.removed)
            text = f"{pair.name}: {count or 'no'} difference{'s' if count != 1 else ''}"
            if pair.block is not None and pair.differs and not count:
                text = f"{pair.name}: its {self._block_facts(pair.block)} differ"
                total += 1
            root = QTreeWidgetItem([text])
            root.setToolTip(0, html.escape(g.summary()))
            self.list.addTopLevelItem(root)
            self._bind(root, Entry(index, None, None))
            for c in g.changes:
                self._child(root, Entry(index, c.a.id, c.b.id), "changed" if c.changed else "renamed",
                            _change_text(c), _change_details(c))
            for n in g.added:
                self._child(root, Entry(index, None, n.id), "added", f"{n.name} ({n.type})", "only in B")
            for n in g.removed:
                into = f": grouped into block {g.grouped[n.id]}" if n.id in g.grouped else ""
                self._child(root, Entry(index, n.id, None), "removed", f"{n.name} ({n.type}){into}", "only in A")
            total += len(g.changes) + len(g.added) + len(g.removed)
            root.setExpanded(True)
        self.verdict.setText("<b>The models are equal.</b>" if self.diff.equal else
                             f"<b>{total} difference{'s' if total != 1 else ''}</b>: choose one to see it on both "
                             "sides")

    @staticmethod
    def _block_facts(bd: BlockDiff) -> str:
        facts = [what for what, differs in (("id", bd.a_id != bd.b_id), ("name", bd.name), ("doc", bd.doc),
                                            ("exposed parameters", bd.params)) if differs]
        return ", ".join(facts) or "definition"

    def _child(self, root: QTreeWidgetItem, entry: Entry, kind: str, text: str, tip: str) -> None:
        color, sign = KINDS[kind]
        item = QTreeWidgetItem([f"{sign} {text}"])
        item.setForeground(0, _text_color(color))
        item.setToolTip(0, f"<p style='white-space:pre'>{html.escape(tip)}</p>")  # names come from files
        root.addChild(item)
        self._bind(item, entry)

    def _bind(self, item: QTreeWidgetItem, entry: Entry) -> None:
        key = len(self.entries)
        self.entries[key] = entry
        item.setData(0, Qt.ItemDataRole.UserRole, key)

    def item_for(self, entry: Entry) -> QTreeWidgetItem | None:
        """The list row of a difference (for tests and for selecting it from the canvas)."""
        for i in range(self.list.topLevelItemCount()):
            root = self.list.topLevelItem(i)
            for item in (root, *(root.child(j) for j in range(root.childCount()))):
                if self.entries[item.data(0, Qt.ItemDataRole.UserRole)] == entry:
                    return item
        return None

    def _entry_chosen(self) -> None:
        items = self.list.selectedItems()
        if not items or self._busy:
            return
        entry = self.entries[items[0].data(0, Qt.ItemDataRole.UserRole)]
        self.show_pair(entry.graph)
        self.go_to(entry.a, entry.b)
        self.details.setPlainText(self.describe(entry))

    def describe(self, entry: Entry) -> str:
        """What the details pane says about a row of the list (or a node chosen on a canvas)."""
        pair = self.pairs[entry.graph]
        g = pair.diff
        if entry.a is None and entry.b is None:
            if g is None:
                return f"{pair.name}: the whole block is only in {'B' if pair.role_a is None else 'A'}."
            lines = [f"{pair.name}: {g.summary()}"]
            block = pair.block
            if block is not None:
                if block.a_id != block.b_id:
                    lines.append(f"id: {block.a_id} -> {block.b_id}")
                if block.name:
                    lines.append(f"name: {block.name[0]!r} -> {block.name[1]!r}")
                if block.doc:
                    lines.append("doc changed")
                lines += [f"exposed {k}: {o or '(not exposed)'} -> {n or '(not exposed)'}"
                          for k, (o, n) in block.params.items()]
            return "\n".join(lines)
        change = next((c for c in g.changes if (c.a.id, c.b.id) == (entry.a, entry.b)), None) if g else None
        if change is not None:
            return "\n".join(change_lines(change))
        side, nid = (self.left, entry.a) if entry.a is not None else (self.right, entry.b)
        node = side.scene.doc.graph.nodes.get(nid or "")
        if node is None:
            return ""
        if entry.a is not None and entry.b is not None:
            state = "unchanged"
        else:
            state = "only in A (removed)" if entry.b is None else "only in B (added)"
            if g is not None and entry.a in g.grouped:
                state += f"; grouped into the new block {g.grouped[entry.a]}"
        params = [f"    {k}: {format_value(v)}" for k, v in node.params.items()]
        return "\n".join([f"{node.name} ({node.type}): {state}", *params])

    # ------------------------------------------------------------------ navigation
    def partner(self, side: Side, node_id: str) -> str | None:
        """The node matched with ``node_id`` on the other side."""
        return self._partners[0 if side is self.left else 1].get(node_id)

    def go_to(self, a: str | None, b: str | None) -> None:
        """Select and centre ``a`` on the left and ``b`` on the right; a node that one side lacks
        is shown where it would be (beside the match of a neighbour)."""
        self._busy = True
        try:
            for side, nid, other, other_id in ((self.left, a, self.right, b), (self.right, b, self.left, a)):
                side.scene.select_nodes([nid] if nid else [])
                target = nid or (self._where(other, other_id) if other_id else None)
                if target is not None:
                    side.view.center_on_node(target)
        finally:
            self._busy = False
        self._remember()

    def _where(self, side: Side, node_id: str) -> str | None:
        """The match, on the other side, of the nearest matched neighbour of ``node_id``."""
        graph = side.doc.graph if side.scene.doc is side.doc else None
        if graph is None or node_id not in graph.nodes:
            return None
        seen, frontier = {node_id}, [node_id]
        while frontier:
            nxt = []
            for nid in frontier:
                for e in [*graph.edges_into(nid), *graph.edges_from(nid)]:
                    for m in (e.src, e.dst):
                        if m not in seen:
                            found = self.partner(side, m)
                            if found is not None:
                                return found
                            seen.add(m)
                            nxt.append(m)
            frontier = nxt
        return None

    def _node_chosen(self, side: Side) -> None:
        if self._busy:
            return
        try:
            ids = side.scene.selected_node_ids()
        except RuntimeError:  # a scene being replaced
            return
        if len(ids) != 1:
            return
        other = self.right if side is self.left else self.left
        mine, theirs = ids[0], self.partner(side, ids[0])
        a, b = (mine, theirs) if side is self.left else (theirs, mine)
        self._busy = True
        try:
            other.scene.select_nodes([theirs] if theirs else [])
            target = theirs or self._where(side, mine)
            if target is not None:
                other.view.center_on_node(target)
            item = self.item_for(Entry(self.current, a, b))
            if item is not None:
                self.list.setCurrentItem(item)
            else:
                self.list.clearSelection()
            self.details.setPlainText(self.describe(Entry(self.current, a, b)))
        finally:
            self._busy = False
        self._remember()

    def _nearest_match(self, side: Side, centre: QPointF) -> tuple[str, str] | None:
        """The matched node nearest ``centre`` on ``side`` and its match: among the nodes in sight
        (a query of the scene's index), else among all."""
        other = self.right if side is self.left else self.left
        visible = side.view.mapToScene(side.view.viewport().rect()).boundingRect()
        for items in (side.scene.items(visible), side.scene.nodes.values()):
            best: tuple[float, str, str] | None = None
            for item in items:
                if not isinstance(item, NodeItem):
                    continue
                match = self.partner(side, item.node_id)
                if match is None or match not in other.scene.nodes:
                    continue
                d = (centre_of(item) - centre).manhattanLength()
                if best is None or d < best[0]:
                    best = (d, item.node_id, match)
            if best is not None:
                return best[1], best[2]
        return None

    def _remember(self) -> None:
        for side in (self.left, self.right):
            side.view.setProperty("compare_center", side.view.visible_center())

    def _follow(self, source: Side) -> None:
        """Move the other side as ``source`` moved: the same zoom, and the matched node nearest
        ``source``'s centre at the same place in both views."""
        if self._busy:
            return
        other = self.right if source is self.left else self.left
        self._busy = True
        try:
            zoom = source.view.zoom()
            if abs(other.view.zoom() - zoom) > 1e-6:
                anchor = other.view.transformationAnchor()
                other.view.setTransformationAnchor(GraphView.ViewportAnchor.AnchorViewCenter)
                other.view.scale(zoom / other.view.zoom(), zoom / other.view.zoom())
                other.view.setTransformationAnchor(anchor)
                other.view.zoomChanged.emit(other.view.zoom())
            centre = source.view.visible_center()
            best = self._nearest_match(source, centre)
            if best is not None:
                mine, theirs = best
                other.view.centerOn(centre_of(other.scene.nodes[theirs]) + (centre - centre_of(source.scene.nodes[mine])))
            else:  # nothing matched: follow the movement itself
                before = source.view.property("compare_center")
                if isinstance(before, QPointF):
                    other.view.centerOn(other.view.visible_center() + (centre - before))
        finally:
            self._busy = False
        self._remember()


def _change_text(c: NodeChange) -> str:
    title = f"{c.a.name} → {c.b.name}" if c.renamed else c.b.name
    what = []
    if c.type:
        what.append(f"type {c.type[0]} → {c.type[1]}")
    what += [f"{k} {format_value(o)} → {format_value(n)}" for k, (o, n) in list(c.params.items())[:2]]
    if len(c.params) > 2:
        what.append(f"{len(c.params) - 2} more")
    if c.wiring:
        what.append("wiring")
    if c.shapes and not what:
        what.append("shape " + " ".join(f"{o} → {n}" for o, n in c.shapes.values()))
    if c.block:
        what.append(f"block {c.block} differs")
    return f"{title}: {', '.join(what)}" if what else title


def _change_details(c: NodeChange) -> str:
    return "\n".join(line.strip() for line in change_lines(c))


def _text_color(color: str) -> QColor:
    """A kind's colour with enough contrast for text on the list's background."""
    return QColor(color).lighter(125) if is_dark() else QColor(color).darker(135)


# --------------------------------------------------------------------------- from the main window


def compare_with_dialog(window: MainWindow) -> CompareWindow | None:
    """File > Compare With…: pick a project or ONNX file and compare the open project with it."""
    path, _ = QFileDialog.getOpenFileName(window, "Compare with", str(window._last_dir()),
                                          "Models (*.json *.onnx);;Projects (*.json);;ONNX models (*.onnx);;"
                                          "All files (*)")
    return open_compare(window, path) if path else None


def open_compare(window: MainWindow, path: str | Path) -> CompareWindow | None:
    """Compare the open project (as it is now, saved or not) with a file; errors are shown."""
    path = Path(path)
    try:
        if path.suffix.lower() == ".onnx":  # the importer runs in a worker: the editor stays live
            from workbench.diff import model_json

            from .jobs import run_with_progress

            status, result = run_with_progress(window, f"Reading {path.name}…", model_json, str(path))
            if status != "ok":
                if status == "error":
                    window.ask("Cannot compare", result, QMessageBox.StandardButton.Ok)
                return None
            other = loads_project(result)
        else:
            other = load_project(path)
    except WorkbenchError as exc:
        window.ask("Cannot compare", str(exc), QMessageBox.StandardButton.Ok)
        return None
    mine = loads_project(window.doc.project.to_json())  # a snapshot: later edits do not reach the view
    name = window.doc.display_name() + (" (unsaved changes)" if window.doc.modified else "")
    view = CompareWindow(mine, other, name, str(path), parent=window)
    view.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)
    view.show()
    return view
