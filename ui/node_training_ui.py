"""The inspector's *Training* rows (frozen, learning-rate scale, role) and their undo command.

The editors come from the same table as every parameter (``ui.editors.EDITORS``) and the
declarations in ``workbench.node_training``; a change to several selected nodes is one undo step.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from PySide6.QtWidgets import QFormLayout, QLabel, QWidget

from workbench.errors import GraphError
from workbench.graph import Graph, Node
from workbench.node_training import TRAIN_FIELDS, flag

from .commands import GraphCommand
from .editors import EDITORS, ParamEditor

LABELS = {"frozen": "frozen", "lr_scale": "lr scale", "role": "role"}


class SetTrainCommand(GraphCommand):
    """Change how training treats one or more nodes (``{"frozen": True}``)."""

    def __init__(self, graph: Graph, node_ids: list[str], changes: dict[str, Any]) -> None:
        who = graph.nodes[node_ids[0]].name if len(node_ids) == 1 else f"{len(node_ids)} nodes"
        what = ("Freeze" if changes.get("frozen") else "Unfreeze") if list(changes) == ["frozen"] else \
            f"Set {', '.join(LABELS[k] for k in changes)} of"
        super().__init__(graph, f"{what} {who}")
        self.new = {nid: dict(changes) for nid in node_ids}
        self.old = {nid: dict(graph.nodes[nid].train) for nid in node_ids}

    def apply(self) -> None:
        for nid, changes in self.new.items():
            self.graph.set_train(nid, changes)

    def revert(self) -> None:
        from workbench.node_training import DEFAULTS

        for nid, old in self.old.items():  # back to exactly the old settings (defaults where unset)
            self.graph.set_train(nid, {**DEFAULTS, **old})


def trainable(nodes: list[Node]) -> bool:
    """Whether the Training rows apply: layers and blocks (not Inputs and Outputs)."""
    return all(n.is_block or n.spec.role == "layer" for n in nodes)


def add_training_rows(parent: QWidget, form: QFormLayout, nodes: list[Node],
                      push: Callable[[dict[str, Any]], None]) -> dict[str, ParamEditor]:
    """Add a *Training* heading and one editor per setting; ``push`` receives each committed change."""
    heading = QLabel("<b>Training</b>")
    heading.setToolTip("How training treats this node: frozen for transfer learning, a learning-rate scale "
                       "(e.g. 0.1 for a pretrained backbone), or the projection head of contrastive pre-training")
    form.addRow(heading)
    editors: dict[str, ParamEditor] = {}
    for p in TRAIN_FIELDS:
        editor = EDITORS[p.kind](p, parent)
        editor.setObjectName(f"train_{p.name}")
        sync_editor(editor, nodes)
        editor.committed.connect(lambda value, _merge, key=p.name: push({key: value}))
        label = QLabel(LABELS[p.name])
        label.setToolTip(p.doc)
        form.addRow(label, editor)
        editors[p.name] = editor
    return editors


def sync_editor(editor: ParamEditor, nodes: list[Node]) -> None:
    values = [flag(n.train, editor.param.name) for n in nodes]
    editor.sync(values[0], mixed=any(v != values[0] for v in values))


def push_train(doc: Any, node_ids: list[str], changes: dict[str, Any], editor: ParamEditor | None) -> None:
    """Validate on every node, then push one undo step (nothing when no node changes)."""
    key, value = next(iter(changes.items()))
    ids = [n for n in node_ids if n in doc.graph.nodes and flag(doc.graph.nodes[n].train, key) != value]
    if not ids:
        return
    try:
        from workbench.node_training import validate_train

        for nid in ids:
            validate_train({**doc.graph.nodes[nid].train, **changes})
        doc.undo_stack.push(SetTrainCommand(doc.graph, ids, changes))
    except (ValueError, GraphError) as exc:
        if editor is not None:
            editor.show_error(str(exc))
