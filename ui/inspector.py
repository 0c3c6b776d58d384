"""The inspector: parameter editors generated from the declarations.

One table (``ui.editors.EDITORS``) maps a parameter kind to its editor.  A
multi-selection of nodes of one type is edited together (one undo step per change).

Blocks: a block node shows the parameters its block exposes and a button to
open it.  Inside a block, each parameter of a node has an *expose* toggle that
makes it a parameter of the block; with nothing selected, the inspector edits
the block itself (name, description) and lists its ports and parameters.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import (
    QFormLayout,
    QHBoxLayout,
    QInputDialog,
    QLabel,
    QLineEdit,
    QPushButton,
    QScrollArea,
    QToolButton,
    QWidget,
)

from workbench.blocks import IDENT, BlockError
from workbench.errors import GraphError

from .commands import RenameCommand, SetBlockInfoCommand, SetBlockParamsCommand, SetParamsCommand
from .document import Document
from .editors import EDITORS, ParamEditor
from .node_training_ui import add_training_rows, push_train, sync_editor, trainable

#: prompt(title, label, default, choices) -> the text entered, or None when cancelled; replaced in tests
Prompt = Callable[[str, str, str, list[str]], "str | None"]

def ask_text(parent: QWidget, title: str, label: str, default: str, choices: list[str]) -> str | None:
    """The default prompt: an editable list of choices (or a line edit)."""
    if choices:
        items = list(dict.fromkeys([default, *choices]))
        text, ok = QInputDialog.getItem(parent, title, label, items, 0, True)
    else:
        text, ok = QInputDialog.getText(parent, title, label, text=default)
    return text.strip() if ok and text.strip() else None


class Inspector(QScrollArea):
    """Shows and edits the selected node(s).

    Signals:
        openBlock(str): the user asked to open the selected block node.
        message(str): a status-bar message (why an edit was refused).
    """

    openBlock = Signal(str)
    message = Signal(str)

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setWidgetResizable(True)
        self.doc: Document | None = None
        self.node_ids: list[str] = []
        self.editors: dict[str, ParamEditor] = {}
        self.train_editors: dict[str, ParamEditor] = {}
        self.expose_buttons: dict[str, QToolButton] = {}
        self.name_edit: QLineEdit | None = None
        self.prompt: Prompt = lambda title, label, default, choices: ask_text(self, title, label, default, choices)
        self._show_empty("Select a node to edit its parameters.")

    def set_document(self, doc: Document) -> None:
        self.doc = doc
        doc.changed.connect(self._on_changed)
        self.show_nodes([])

    def _retire_editors(self) -> None:
        """The page is about to be replaced: its editors must not commit any more (Qt sends a
        focused one a focus-out while deleting it, and the selection has already changed).
        What the user typed and did not commit is dropped; leaving the field commits it."""
        for editor in [*self.editors.values(), *self.train_editors.values()]:
            editor.blockSignals(True)

    def _show_empty(self, text: str) -> None:
        self._retire_editors()
        label = QLabel(text)
        label.setAlignment(Qt.AlignmentFlag.AlignCenter)
        label.setWordWrap(True)
        label.setEnabled(False)
        self.setWidget(label)
        self.editors = {}
        self.train_editors = {}
        self.expose_buttons = {}
        self.name_edit = None

    def show_nodes(self, node_ids: list[str]) -> None:
        """Build editors for the selection (all of one type, or nothing)."""
        self._retire_editors()
        doc = self.doc
        self.node_ids = [n for n in node_ids if doc is not None and n in doc.graph.nodes]
        if doc is not None and not self.node_ids and doc.block_id is not None:
            self._show_block(doc.block_id)
            return
        if doc is None or not self.node_ids:
            self._show_empty("Select a node to edit its parameters.")
            return
        nodes = [doc.graph.nodes[n] for n in self.node_ids]
        if len({n.type for n in nodes}) > 1:
            self._show_empty(f"{len(nodes)} nodes of different types are selected.\n"
                             "Select nodes of one type to edit them together.")
            return
        spec = nodes[0].spec
        page = QWidget()
        form = QFormLayout(page)
        form.setFieldGrowthPolicy(QFormLayout.FieldGrowthPolicy.AllNonFixedFieldsGrow)
        title = QLabel(f"<b>{spec.name}</b>" + (f" · {len(nodes)} nodes" if len(nodes) > 1 else ""))
        form.addRow(title)
        doc_label = QLabel(spec.doc)
        doc_label.setWordWrap(True)
        doc_label.setEnabled(False)
        form.addRow(doc_label)
        if len(nodes) == 1:
            self.name_edit = QLineEdit(nodes[0].name)
            self.name_edit.setObjectName("nameEdit")
            self.name_edit.editingFinished.connect(self._rename)
            form.addRow("name", self.name_edit)
        else:
            self.name_edit = None
        self.editors = {}
        self.expose_buttons = {}
        block = doc.project.blocks.defs.get(doc.block_id or "")
        exposable = block is not None and len(nodes) == 1 and spec.role == "layer"
        for p in spec.params:
            editor = EDITORS[p.kind](p, page)
            values = [n.params[p.name] for n in nodes]
            editor.set_value(values[0], mixed=any(v != values[0] for v in values))
            editor.committed.connect(lambda value, merge, key=p.name: self._commit(key, value, merge))
            label = QLabel(p.name)
            label.setToolTip(p.doc)
            if exposable:
                assert block is not None
                form.addRow(label, self._with_expose(editor, block.exposed_as(nodes[0].id, p.name), p.name))
            else:
                form.addRow(label, editor)
            self.editors[p.name] = editor
        if nodes[0].is_block and len(nodes) == 1:
            uses = len(doc.project.blocks.uses(nodes[0].type))
            open_button = QPushButton("Open block (edit inside)")
            open_button.setObjectName("openBlock")
            open_button.setToolTip("Shows the layers inside; changes apply to every use of the block "
                                   f"({uses} in this project).")
            open_button.clicked.connect(lambda: self.openBlock.emit(self.node_ids[0]))
            form.addRow(open_button)
        self.train_editors = {}
        if trainable(nodes) and doc.graph is doc.project.graph:  # training reads the model's own nodes only
            self.train_editors = add_training_rows(
                page, form, nodes, lambda changes: push_train(doc, self.node_ids, changes,
                                                              self.train_editors.get(next(iter(changes)))))
        info = QLabel()
        info.setObjectName("shapeInfo")
        info.setWordWrap(True)
        form.addRow(info)
        self.setWidget(page)
        self._update_info()

    def _update_info(self) -> None:
        if self.doc is None or len(self.node_ids) != 1 or self.widget() is None:
            return
        info_label = self.widget().findChild(QLabel, "shapeInfo")
        if info_label is None:
            return
        from workbench.layers.dims import fmt_shape

        info = self.doc.shapes.info(self.node_ids[0])
        lines = [f"in {p}: {fmt_shape(s) if s else '?'}" for p, s in info.inputs.items()]
        lines += [f"out {p}: {fmt_shape(s)}" for p, s in info.outputs.items()]
        lines.append(f"parameters: {info.params:,}")
        if info.error:
            lines.append(f"<span style='color:#d32f2f'>{info.error}</span>")
        info_label.setText("<br>".join(lines))

    # ------------------------------------------------------------------ blocks
    def _with_expose(self, editor: ParamEditor, exposed_as: str | None, key: str) -> QWidget:
        row = QWidget()
        layout = QHBoxLayout(row)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(editor, 1)
        button = QToolButton(row)
        button.setObjectName(f"expose_{key}")
        button.setCheckable(True)
        button.setChecked(exposed_as is not None)
        button.setText(f"◆ {exposed_as}" if exposed_as else "◇")
        button.setToolTip(f"Exposed as the block parameter {exposed_as!r}: each use of the block sets it. "
                          "Click to stop exposing it." if exposed_as else
                          "Expose as a parameter of the block, so each use of the block can set it")
        button.clicked.connect(lambda checked, k=key: self.toggle_exposed(k, checked))
        layout.addWidget(button)
        self.expose_buttons[key] = button
        return row

    def toggle_exposed(self, key: str, expose: bool) -> bool:
        """Expose (or stop exposing) ``key`` of the selected node inside the open block."""
        doc = self.doc
        if doc is None or doc.block_id is None or len(self.node_ids) != 1:
            return False
        lib, bid, nid = doc.project.blocks, doc.block_id, self.node_ids[0]
        block = lib.defs[bid]
        node = doc.graph.nodes[nid]
        try:
            if expose:
                kind = node.spec.param(key).kind
                same_kind = [bp.name for bp in block.params if block.param_decl(bp).kind == kind]
                default = key if key not in {bp.name for bp in block.params} else f"{node.name}_{key}"
                name = self.prompt("Expose as a block parameter",
                                   f"Name of the parameter of {block.name} that sets {node.name}.{key} "
                                   "(an existing name of the same kind sets both):", default, same_kind)
                if name is None:
                    self._refresh_expose_buttons()
                    return False
                if not IDENT.match(name):
                    raise BlockError(f"a block parameter name must be an identifier, got {name!r}")
                new = lib.with_exposed(bid, nid, key, name)
                text = f"Expose {node.name}.{key} as {block.name}.{name}"
            else:
                new = lib.without_exposed(bid, nid, key)
                text = f"Stop exposing {node.name}.{key}"
            doc.undo_stack.push(SetBlockParamsCommand(lib, bid, new, text))
        except GraphError as exc:
            self.message.emit(f"Cannot change the block's parameters: {exc}")
            self._refresh_expose_buttons()
            return False
        return True

    def _refresh_expose_buttons(self) -> None:
        doc = self.doc
        if doc is None or doc.block_id is None or len(self.node_ids) != 1:
            return
        block = doc.project.blocks.defs.get(doc.block_id)
        if block is None:
            return
        for key, button in self.expose_buttons.items():
            name = block.exposed_as(self.node_ids[0], key)
            button.blockSignals(True)
            button.setChecked(name is not None)
            button.setText(f"◆ {name}" if name else "◇")
            button.blockSignals(False)

    def _show_block(self, block_id: str) -> None:
        """With nothing selected inside a block: the block's own name, description, ports and parameters."""
        self._retire_editors()
        doc = self.doc
        assert doc is not None
        block = doc.project.blocks.defs[block_id]
        spec = block.spec()
        page = QWidget()
        form = QFormLayout(page)
        form.setFieldGrowthPolicy(QFormLayout.FieldGrowthPolicy.AllNonFixedFieldsGrow)
        form.addRow(QLabel(f"<b>Block {block.id}</b>"))
        hint = QLabel("You are editing the inside of a block: every change applies to all its uses. Select a node "
                      "and click ◇ beside a parameter to let each use set it.")
        hint.setWordWrap(True)
        hint.setEnabled(False)
        form.addRow(hint)
        self.name_edit = QLineEdit(block.name)
        self.name_edit.setObjectName("blockName")
        self.name_edit.editingFinished.connect(self._block_info_edited)
        form.addRow("name", self.name_edit)
        self.doc_edit = QLineEdit(block.doc)
        self.doc_edit.setObjectName("blockDoc")
        self.doc_edit.setPlaceholderText("one line shown in the palette and tooltips")
        self.doc_edit.editingFinished.connect(self._block_info_edited)
        form.addRow("description", self.doc_edit)
        form.addRow("inputs", QLabel(", ".join(spec.input_ports({})) or "none"))
        form.addRow("outputs", QLabel(", ".join(spec.outputs) or "none"))
        params = []
        for bp in block.params:
            targets = ", ".join(f"{block.graph.nodes[n].name}.{k}" for n, k in bp.targets)
            params.append(f"<b>{bp.name}</b> = {_fmt(block.param_decl(bp).default)} → {targets}")
        label = QLabel("<br>".join(params) or "none exposed yet")
        label.setObjectName("blockParams")
        label.setWordWrap(True)
        form.addRow("parameters", label)
        uses = [f"{n.name} ({where})" for where, _, n in doc.project.blocks.uses(block_id)]
        used = QLabel(", ".join(uses) or "not used yet")
        used.setWordWrap(True)
        form.addRow("used by", used)
        self.setWidget(page)
        self.editors = {}
        self.train_editors = {}
        self.expose_buttons = {}

    def _block_info_edited(self) -> None:
        doc = self.doc
        if doc is None or doc.block_id is None or self.name_edit is None:
            return
        block = doc.project.blocks.defs[doc.block_id]
        name, text = self.name_edit.text().strip(), self.doc_edit.text().strip()
        if not name:
            self.name_edit.setText(block.name)
            return
        if (name, text) != (block.name, block.doc):
            doc.undo_stack.push(SetBlockInfoCommand(doc.project.blocks, doc.block_id, name, text))

    def _commit(self, key: str, value: Any, merge: bool = False) -> None:
        doc = self.doc
        if doc is None:
            return
        ids = [n for n in self.node_ids if n in doc.graph.nodes and doc.graph.nodes[n].params[key] != value]
        if not ids:
            return
        try:
            for nid in ids:  # validate fully before pushing (ports in use, etc.)
                doc.graph.check_params(nid, {key: value})
            doc.undo_stack.push(SetParamsCommand(doc.graph, ids, {key: value}, merge=merge))
        except GraphError as exc:
            self.editors[key].show_error(str(exc))

    def _rename(self) -> None:
        doc, edit = self.doc, self.name_edit
        if doc is None or edit is None or len(self.node_ids) != 1:
            return
        nid = self.node_ids[0]
        new = edit.text().strip()
        if new == doc.graph.nodes[nid].name:
            return
        try:
            doc.graph.validate_name(new, ignore=nid)
        except GraphError as exc:
            edit.setStyleSheet("border: 1px solid #d32f2f;")
            edit.setToolTip(str(exc))
            return
        edit.setStyleSheet("")
        doc.undo_stack.push(RenameCommand(doc.graph, nid, new))

    def _on_changed(self, _updated: object) -> None:
        """Keep editors in sync after undo/redo without rebuilding while typing."""
        doc = self.doc
        if doc is None:
            return
        alive = [n for n in self.node_ids if n in doc.graph.nodes]
        if alive != self.node_ids:
            self.show_nodes(alive)
            return
        if not alive:
            if doc.block_id is not None and doc.block_id in doc.project.blocks.defs and not (
                    self.name_edit is not None and self.name_edit.hasFocus()):
                self._show_block(doc.block_id)
            return
        nodes = [doc.graph.nodes[n] for n in alive]
        if set(self.editors) != {p.name for p in nodes[0].spec.params}:  # a block's parameters changed
            self.show_nodes(alive)
            return
        self._refresh_expose_buttons()
        for key, editor in self.editors.items():
            values = [n.params[key] for n in nodes]
            current = values[0]
            editor.sync(current, mixed=any(v != current for v in values))  # keeps what the user is typing
        for editor in self.train_editors.values():
            sync_editor(editor, nodes)
        if self.name_edit is not None and not self.name_edit.hasFocus():
            self.name_edit.setText(nodes[0].name)
        self._update_info()


def _fmt(value: Any) -> str:
    return ", ".join(str(v) for v in value) if isinstance(value, (list, tuple)) else str(value)
