"""Differentially private training (DP-SGD) with Opacus, and the graph fix it may need.

Opacus does the work: per-sample gradients, clipping to ``max_grad_norm``, Gaussian noise,
Poisson sampling of the batches and the privacy accountant (RDP or PRV).  The spent epsilon
always comes from that accountant; nothing here computes it.

Before training, :func:`privacy_issues` runs Opacus' ``ModuleValidator`` on the compiled
model, module by module, so that a layer it refuses is reported on its node; a BatchNorm node
can be replaced by a GroupNorm node (:class:`BatchNormToGroupNorm`, one reversible change).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import torch
from torch.utils.data import DataLoader

from ..errors import InputError
from ..graph import Edge, Graph
from .errors import TrainingError

if TYPE_CHECKING:
    from .engine import Trainer
    from .issues import Issue

BATCHNORMS = ("BatchNorm1d", "BatchNorm2d", "BatchNorm3d")
_INSTALL = "pip install 'neural-workbench[privacy]'"


class MissingOpacusError(InputError, TrainingError):
    """Private training was asked for but Opacus is not installed."""


def opacus() -> Any:
    """The ``opacus`` package, or an error naming the extra to install."""
    try:
        import opacus as module
        from opacus.validators import ModuleValidator  # noqa: F401  (the part we use beside the engine)
    except ImportError:
        raise MissingOpacusError("training.privacy: differentially private training needs Opacus, which is not "
                                 f"installed; install it with {_INSTALL}") from None
    return module


# --------------------------------------------------------------------------- what Opacus refuses, per node


def group_count(channels: int) -> int:
    """The GroupNorm group count replacing a BatchNorm over ``channels`` (Opacus' own choice: gcd(32, C))."""
    return math.gcd(32, channels)


def privacy_issues(graph: Graph) -> list[Issue]:
    """The nodes Opacus cannot train privately (BatchNorm, an LSTM without its DP version, ...).

    The graph must compile (shape inference already passed).  Each module of the compiled
    model is validated on its own, so the problem lands on the node it comes from (a layer
    inside a block is reported on the block's node).
    """
    from ..compiler import compile_graph
    from .issues import Issue

    try:
        opacus()
    except MissingOpacusError as exc:
        return [Issue(str(exc), path="training.privacy")]
    from opacus.validators import ModuleValidator

    compiled = compile_graph(graph)
    owners = compiled.node_name_of_attr()
    issues: list[Issue] = []
    for name, module in compiled.module.named_modules():
        if not name or next(module.children(), None) is not None:
            continue  # leaves only: a block's own validation would repeat its layers' problems
        top, _, inner = name.partition(".")
        node_name = owners.get(top, top)
        where = f'block "{node_name}", its layer {inner}' if inner else f'"{node_name}"'
        module.train()
        errors = ModuleValidator.validate(module)
        if isinstance(module, torch.nn.modules.batchnorm._BatchNorm):
            fix = (f"; fix: replace it with GroupNorm (num_groups={group_count(module.num_features)}), which "
                   "normalises each sample on its own" + ("" if not inner else " (open the block to change it)"))
            issues.append(Issue(f"{type(module).__name__} {where}: BatchNorm mixes the samples of a batch, so "
                                "Opacus cannot train it with differential privacy" + fix, node_name,
                                path="training.privacy"))
        elif errors:
            first = str(errors[0]).strip().split(". ")[0]
            issues.append(Issue(f"{type(module).__name__} {where}: Opacus cannot train it with differential "
                                f"privacy ({first})", node_name, path="training.privacy"))
    return issues


@dataclass
class BatchNormToGroupNorm:
    """Replace BatchNorm nodes by GroupNorm nodes (same id, name, place, wires), reversibly.

    ``apply`` and ``revert`` call only the graph's public mutators (as a GUI undo command does).

    Args:
        graph: the graph (its shapes must be known: the channel counts set the groups).
        node_ids: the BatchNorm nodes to replace (default: all of them).
    """

    graph: Graph
    node_ids: list[str] = field(default_factory=list)
    _old: list[tuple[int, str, str, str, dict[str, Any], tuple[float, float], list[Edge]]] = field(
        default_factory=list)
    _groups: dict[str, int] = field(default_factory=dict)

    def __post_init__(self) -> None:
        from ..shapes import ShapeInference

        ids = self.node_ids or [n.id for n in self.graph if n.type in BATCHNORMS]
        si = ShapeInference(self.graph, live=False)
        si.update()
        for node_id in ids:
            node = self.graph.node(node_id)
            if node.type not in BATCHNORMS:
                raise TrainingError(f'node "{node.name}" is a {node.type}, not a BatchNorm')
            shape = si.info(node_id).inputs.get("x")
            if not shape or not isinstance(shape[1], int):
                raise TrainingError(f'{node.type} "{node.name}": its channel count is not known; connect its input')
            self._groups[node_id] = group_count(shape[1])
        self.node_ids = ids

    def apply(self) -> None:
        self._old = []
        for node_id in self.node_ids:
            node = self.graph.node(node_id)
            index = self.graph.index_of(node_id)
            wires = self.graph.edges_into(node_id) + self.graph.edges_from(node_id)
            self._old.append((index, node_id, node.type, node.name, dict(node.params), node.position, wires))
            self.graph.remove_node(node_id)
            self.graph.add_node("GroupNorm", {"num_groups": self._groups[node_id], "eps": node.params["eps"],
                                              "affine": node.params["affine"]},
                                node.name, node.position, node_id=node_id, index=index)
            for e in wires:
                self.graph.connect(e.src, e.src_port, e.dst, e.dst_port)

    def revert(self) -> None:
        for index, node_id, old_type, name, params, position, wires in reversed(self._old):
            self.graph.remove_node(node_id)
            self.graph.add_node(old_type, params, name, position, node_id=node_id, index=index)
            for e in wires:
                self.graph.connect(e.src, e.src_port, e.dst, e.dst_port)
        self._old = []

    @property
    def count(self) -> int:
        return len(self.node_ids)


# --------------------------------------------------------------------------- private training


class PrivateTraining:
    """Opacus' privacy engine around a trainer's model, optimizer and training split.

    The model keeps its identity (Opacus attaches its per-sample gradient hooks to it, without
    wrapping), so checkpoints and per-layer statistics read it as before; the optimizer becomes
    Opacus' ``DPOptimizer`` (clipping, noise) and the batches come from its Poisson sampler.

    Args:
        trainer: a trainer in :meth:`~workbench.training.engine.Trainer.prepare`, with its model,
            optimizer and data made.

    Raises:
        MissingOpacusError: Opacus is not installed.
        TrainingError: Opacus refused the set-up (its reason is given).
    """

    def __init__(self, trainer: Trainer) -> None:
        opacus()
        from opacus import PrivacyEngine

        cfg = trainer.cfg
        self.delta = float(cfg["target_delta"])
        self.engine = PrivacyEngine(accountant=cfg["accountant"])
        loader = DataLoader(trainer.data.train, batch_size=int(trainer.data_cfg["batch_size"]))
        common = {"module": trainer.model, "optimizer": trainer.optimizer, "data_loader": loader,
                  "max_grad_norm": float(cfg["max_grad_norm"]), "poisson_sampling": True, "wrap_model": False}
        try:
            if cfg["target_epsilon"] > 0:
                self.hooks, self.optimizer, self.loader = self.engine.make_private_with_epsilon(
                    **common, target_epsilon=float(cfg["target_epsilon"]), target_delta=self.delta,
                    epochs=int(cfg["epochs"]))
            else:
                self.hooks, self.optimizer, self.loader = self.engine.make_private(
                    **common, noise_multiplier=float(cfg["noise_multiplier"]))
        except (ValueError, NotImplementedError) as exc:
            where = "training.target_epsilon" if cfg["target_epsilon"] > 0 else "training.privacy"
            raise TrainingError(f"{where}: Opacus refused the private set-up: {exc}") from None
        self.noise_multiplier = float(self.optimizer.noise_multiplier)
        self.sample_rate = 1 / len(loader)

    def epsilon(self) -> float:
        """The epsilon spent so far at ``target_delta``, from Opacus' accountant (0 before any step)."""
        return float(self.engine.get_epsilon(self.delta)) if len(self.engine.accountant) else 0.0

    def state(self) -> dict[str, Any]:
        """What a checkpoint keeps: the accountant's history (every step's noise and sampling rate)."""
        history = self.engine.accountant.state_dict()["history"]
        return {"accountant": self.engine.accountant.mechanism(), "noise_multiplier": self.noise_multiplier,
                "history": [[float(s), float(q), int(n)] for s, q, n in history]}

    def load_state(self, state: dict[str, Any] | None, where: str) -> None:
        """Continue the accounting of a resumed run.

        Raises:
            TrainingError: the checkpoint holds no privacy accounting (its earlier epochs were not
                private), or another accountant kept it.
        """
        if not state or "history" not in state:
            raise TrainingError(f"cannot resume privately from {where}: it was saved by a run without differential "
                                "privacy, so the epochs before it spent an unbounded privacy budget; start a new run")
        if state.get("accountant") != self.engine.accountant.mechanism():
            raise TrainingError(f"cannot resume from {where}: its privacy was accounted with the "
                                f"{state.get('accountant')} accountant, this run uses "
                                f"{self.engine.accountant.mechanism()} (set training.accountant to match)")
        self.engine.accountant.load_state_dict({"history": [tuple(h) for h in state["history"]],
                                                "mechanism": state["accountant"]})
