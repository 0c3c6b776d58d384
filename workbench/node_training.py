"""How training treats one node: frozen, its learning-rate scale, its role (a projection head).

These are per node (or block instance) settings stored in the project file as the node's optional
``"train"`` object, e.g. ``{"frozen": true, "lr_scale": 0.1}``; a node without one trains normally.
They live beside the node (not in a name-keyed table) so that renaming, copying, undo and block
instances keep them.  Only values that differ from the defaults are stored.
"""

from __future__ import annotations

from typing import Any

from .layers.spec import BoolParam, ChoiceParam, FloatParam, Param, ParamValueError

#: ``projection_head``: a SimCLR-style projection head, trained during contrastive pre-training and
#: dropped from the encoder afterwards (see ``workbench.training.contrastive``)
ROLES = ("", "projection_head")

TRAIN_FIELDS: tuple[Param, ...] = (
    BoolParam("frozen", False, "keep this node's weights fixed while training (transfer learning): no gradient, "
              "not in the optimizer"),
    FloatParam("lr_scale", 1.0, "this node's learning rate = the run's (scheduled) learning rate x this (e.g. 0.1 "
               "for a pretrained backbone)", minimum=0.0, maximum=100.0),
    ChoiceParam("role", "", "projection_head: used by contrastive pre-training, dropped from the exported encoder",
                choices=ROLES),
)
DEFAULTS: dict[str, Any] = {f.name: f.default for f in TRAIN_FIELDS}


class TrainFlagError(ValueError):
    """A node's training setting was refused; ``key`` names it."""

    def __init__(self, key: str, message: str) -> None:
        super().__init__(f"{key}: {message}")
        self.key = key
        self.detail = message


def validate_train(values: Any) -> dict[str, Any]:
    """The node's training settings, validated, with the defaults left out (what the file stores).

    Raises:
        TrainFlagError: naming the setting.
    """
    if not isinstance(values, dict):
        raise TrainFlagError("", f"expected an object, got {type(values).__name__}")
    known = {f.name: f for f in TRAIN_FIELDS}
    out: dict[str, Any] = {}
    for key, value in values.items():
        f = known.get(key)
        if f is None:
            raise TrainFlagError(key, f"unknown setting (known: {', '.join(known)})")
        try:
            v = f.validate(value)
        except ParamValueError as exc:
            raise TrainFlagError(key, str(exc)) from None
        if v != f.default:
            out[key] = v
    return out


def flag(train: dict[str, Any], key: str) -> Any:
    """One setting of a node's ``train`` dict (its default when unset)."""
    return train.get(key, DEFAULTS[key])


def parameter_split(graph: Any, counts: dict[str, int]) -> tuple[int, int]:
    """(trainable, frozen) parameters of ``graph``, from per-node counts (node id -> parameters)."""
    frozen = sum(c for nid, c in counts.items() if nid in graph.nodes and flag(graph.nodes[nid].train, "frozen"))
    return sum(counts.values()) - frozen, frozen


def split_text(graph: Any, si: Any) -> str:
    """`` (1,234 trainable, 567 frozen)`` when some node is frozen, else empty (for summaries)."""
    if not any(flag(n.train, "frozen") for n in graph):
        return ""
    trainable, frozen = parameter_split(graph, {nid: info.params for nid, info in si.all().items()})
    return f" ({trainable:,} trainable, {frozen:,} frozen)"
