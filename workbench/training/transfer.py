"""Transfer learning: weights from another model into the nodes that match, frozen nodes, per-node
learning rates.

- :func:`read_source` reads the weights of another project (its newest run's best checkpoint, else its
  weights file), a run folder, a weights file or checkpoint (safetensors), or an ONNX file (through the
  ONNX importer, so its layers get the names the importer gives them).  Nothing read is executed.
- :func:`transfer` loads them into the nodes whose **name and every tensor shape** match; the report
  lists what matched, what had other shapes (a replaced head), what the source lacks and what it had
  beyond the model.
- :func:`param_groups` turns the nodes' ``train`` settings (``workbench.node_training``) into optimizer
  parameter groups: frozen nodes get ``requires_grad=False`` and are left out, every other group
  carries its ``lr_scale``, which :func:`set_group_lrs` multiplies into the scheduled rate.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from ..compiler import Compiled, assign_identifiers
from ..errors import InputError, WorkbenchError
from ..graph import Graph
from ..node_training import flag, parameter_split


class TransferError(WorkbenchError):
    """Weights cannot be transferred; the message names the file and why."""


class TransferSourceError(TransferError, InputError):
    """The source of the weights cannot be read (exit status 2)."""

    def __init__(self, message: str, file: str | None = None) -> None:
        InputError.__init__(self, message, file)


class SourceNotTrainedError(TransferSourceError):
    """The source is a valid project that has not been trained yet (``check`` warns; training refuses)."""


@dataclass
class Source:
    """Weights read from somewhere, grouped by node.

    Attributes:
        nodes: node name -> {tensor key inside the node: tensor}.
        description: where they came from (for the report).
    """

    nodes: dict[str, dict[str, torch.Tensor]]
    description: str


@dataclass
class TransferReport:
    """What :func:`transfer` did, node by node (node names)."""

    source: str
    matched: list[str] = field(default_factory=list)
    mismatched: dict[str, list[str]] = field(default_factory=dict)
    """node -> the tensors whose shapes (or names) differ, e.g. ``weight: source [10, 64] vs model [2, 64]``."""
    missing: list[str] = field(default_factory=list)
    """nodes with weights in the model but none in the source: they keep their initialisation."""
    unused: list[str] = field(default_factory=list)
    """nodes of the source that no node of the model is called (a dropped head)."""
    skipped: list[str] = field(default_factory=list)
    tensors_loaded: int = 0

    def as_dict(self) -> dict[str, Any]:
        return {"source": self.source, "matched": self.matched, "mismatched": self.mismatched,
                "missing": self.missing, "unused": self.unused, "skipped": self.skipped,
                "tensors_loaded": self.tensors_loaded}

    def text(self) -> str:
        """A few lines for the terminal and the run log."""
        lines = [f"weights from {self.source}: {len(self.matched)} node(s) loaded ({self.tensors_loaded} tensors)"]
        if self.matched:
            lines.append("  matched: " + ", ".join(self.matched))
        for node, why in self.mismatched.items():
            lines.append(f"  not loaded, shapes differ: {node} ({'; '.join(why)})")
        if self.skipped:
            lines.append("  skipped as asked: " + ", ".join(self.skipped))
        if self.missing:
            lines.append("  not in the source (initialised afresh): " + ", ".join(self.missing))
        if self.unused:
            lines.append("  in the source only (ignored): " + ", ".join(self.unused))
        return "\n".join(lines)


# --------------------------------------------------------------------------- reading a source


def _by_node(graph: Graph, tensors: dict[str, torch.Tensor]) -> dict[str, dict[str, torch.Tensor]]:
    """Split a ``state_dict`` of ``graph``'s compiled module by node name."""
    name_of = {ident: graph.node(nid).name for nid, ident in assign_identifiers(graph).items()}
    out: dict[str, dict[str, torch.Tensor]] = {}
    for key, t in tensors.items():
        attr, _, rest = key.partition(".")
        out.setdefault(name_of.get(attr, attr), {})[rest] = t
    return out


def _checkpoint_of_project(path: Path) -> tuple[Path, str]:
    from ..project import load_project
    from .runs import runs_root

    project = load_project(path)
    runs = runs_root(project.path)
    if runs.is_dir():
        found = sorted(runs.glob("*/checkpoints/best.safetensors"), key=lambda p: p.stat().st_mtime)
        if found:
            return found[-1], f"{path.name} (run {found[-1].parent.parent.name}, best checkpoint)"
    weights = project.weights_path()
    if weights is not None and weights.is_file():
        return weights, f"{path.name} (weights {weights.name})"
    raise SourceNotTrainedError(f"{path}: the project has no trained run under {runs} and no weights file; train it "
                              f"first (workbench train {path.name})", str(path))


def read_source(source: str | Path, base: Path | None = None) -> Source:
    """Read weights to transfer (see the module docstring for what ``source`` may be).

    Args:
        source: a project (.json), a run folder, a .safetensors weights file or checkpoint, or an .onnx file.
        base: the folder a relative ``source`` is relative to (the target project's).

    Raises:
        TransferSourceError: naming the file and the problem.
    """
    from ..weights import load_checkpoint

    path = Path(source)
    if base is not None and not path.is_absolute():
        path = base / path
    if not path.exists():
        raise TransferSourceError(f"{path}: not found", str(path))
    try:
        if path.is_dir():
            for name in ("best", "last"):
                ckpt = path / "checkpoints" / f"{name}.safetensors"
                if ckpt.is_file():
                    return _from_checkpoint(ckpt, f"run {path.name} ({name} checkpoint)")
            raise TransferSourceError(f"{path}: not a run folder (no checkpoints/best.safetensors)", str(path))
        suffix = path.suffix.lower()
        if suffix == ".json":
            from ..project import load_project

            ckpt, what = _checkpoint_of_project(path)
            return Source(_by_node(load_project(path).graph, load_checkpoint(ckpt).state()), what)
        if suffix == ".onnx":
            from ..importers.onnx_import import import_onnx

            result = import_onnx(path, allow_partial=True)
            return Source(_by_node(result.project.graph, result.tensors), f"{path.name} (ONNX, imported)")
        if suffix == ".safetensors":
            return _from_checkpoint(path, path.name)
    except TransferError:
        raise
    except WorkbenchError as exc:  # an unreadable project, checkpoint or ONNX file: named, never a traceback
        raise TransferSourceError(str(exc) if str(path) in str(exc) else f"{path}: {exc}", str(path)) from None
    raise TransferSourceError(f"{path}: expected a project (.json), a run folder, a .safetensors or an .onnx file",
                              str(path))


def _from_checkpoint(path: Path, what: str) -> Source:
    from ..weights import load_checkpoint

    ckpt = load_checkpoint(path)
    nodes: dict[str, dict[str, torch.Tensor]] = {}
    # a weights file or checkpoint is keyed by the node identifiers (``conv1.weight``); names that are
    # valid identifiers (the usual case) are the node names themselves
    for key, t in ckpt.state().items():
        attr, _, rest = key.partition(".")
        nodes.setdefault(attr, {})[rest] = t
    return Source(nodes, what)


# --------------------------------------------------------------------------- loading into a model


def node_modules(graph: Graph, compiled: Compiled, model: nn.Module) -> dict[str, nn.Module]:
    """Node name -> its submodule in ``model`` (nodes without weights or buffers are left out)."""
    out = {}
    for nid, attr in compiled.attr_of.items():
        module = getattr(model, attr, None)
        if isinstance(module, nn.Module) and nid in graph.nodes and next(
                iter(module.state_dict()), None) is not None:
            out[graph.node(nid).name] = module
    return out


def transfer(graph: Graph, compiled: Compiled, model: nn.Module, source: Source,
             skip: tuple[str, ...] = ()) -> TransferReport:
    """Load ``source`` into the nodes of ``model`` whose name and tensor shapes all match.

    A node is loaded whole or not at all: a head with another number of classes keeps its
    initialisation.  ``skip`` names nodes not to load even when they match (a head to retrain).

    Raises:
        TransferError: ``skip`` names a node the model does not have.
    """
    modules = node_modules(graph, compiled, model)
    for name in skip:
        if not graph.has_name(name):
            raise TransferError(f"--skip {name}: the model has no node called {name!r}")
    report = TransferReport(source.description)
    ident = {graph.node(nid).name: i for nid, i in assign_identifiers(graph).items()}
    used: set[str] = set()
    for name, module in modules.items():
        own = module.state_dict()
        key = name if name in source.nodes else ident[name]  # a plain weights file is keyed by identifiers
        theirs = source.nodes.get(key)
        used.add(key)
        if name in skip:
            report.skipped.append(name)
            continue
        if theirs is None:
            report.missing.append(name)
            continue
        why = [f"{k}: source {list(theirs[k].shape)} vs model {list(v.shape)}"
               for k, v in own.items() if k in theirs and theirs[k].shape != v.shape]
        why += [f"{k}: not in the source" for k in own if k not in theirs]
        why += [f"{k}: only in the source" for k in theirs if k not in own]
        if why:
            report.mismatched[name] = why
            continue
        with torch.no_grad():
            module.load_state_dict({k: theirs[k].to(own[k].dtype) for k in own})
        report.matched.append(name)
        report.tensors_loaded += len(own)
    report.unused = [n for n in source.nodes if n not in used]
    return report


# --------------------------------------------------------------------------- frozen nodes, learning rates


def param_groups(graph: Graph, compiled: Compiled, model: nn.Module) -> list[dict[str, Any]]:
    """Optimizer parameter groups from the nodes' ``train`` settings.

    Frozen nodes' parameters get ``requires_grad=False`` and belong to no group; the others are grouped
    by ``lr_scale`` (a group's ``lr_scale`` and ``nodes`` travel with it in ``optimizer.param_groups``).

    Raises:
        TransferError: every node is frozen (nothing would train).
    """
    by_scale: dict[float, dict[str, Any]] = {}
    seen: set[int] = set()
    for nid, attr in compiled.attr_of.items():
        module = getattr(model, attr, None)
        if not isinstance(module, nn.Module) or nid not in graph.nodes:
            continue
        node = graph.node(nid)
        params = [p for p in module.parameters() if id(p) not in seen]
        seen.update(id(p) for p in params)
        if not params:
            continue
        if flag(node.train, "frozen"):
            for p in params:
                p.requires_grad_(False)
            continue
        scale = float(flag(node.train, "lr_scale"))
        group = by_scale.setdefault(scale, {"params": [], "lr_scale": scale, "nodes": []})
        group["params"].extend(params)
        group["nodes"].append(node.name)
    rest = [p for p in model.parameters() if id(p) not in seen]
    if rest:  # weights that belong to no node (none today): trained at the run's rate
        by_scale.setdefault(1.0, {"params": [], "lr_scale": 1.0, "nodes": []})["params"].extend(rest)
    groups = [g for g in by_scale.values() if g["params"]]
    if not groups and any(True for _ in model.parameters()):
        raise TransferError("every node with weights is frozen: nothing would train; unfreeze at least one node")
    return groups


def frozen_modules(graph: Graph, compiled: Compiled, model: nn.Module) -> list[nn.Module]:
    """The submodules of frozen nodes (kept in eval mode while training, so a frozen BatchNorm's
    statistics and a frozen Dropout stay as they are)."""
    out = []
    for nid, attr in compiled.attr_of.items():
        module = getattr(model, attr, None)
        if isinstance(module, nn.Module) and nid in graph.nodes and flag(graph.node(nid).train, "frozen"):
            out.append(module)
    return out


def prepare_model(trainer: Any) -> list[dict[str, Any]]:
    """The engine's transfer step, before the optimizer exists: load ``training.init_from`` (a fresh run
    only; a resumed one has its own weights), freeze, and return the parameter groups.

    Raises:
        TransferError: naming ``training.init_from`` or the node.
    """
    cfg, project = trainer.cfg, trainer.project
    trainer.frozen = frozen_modules(project.graph, trainer.compiled, trainer.model)
    if cfg.get("init_from") and trainer.resume is None:
        base = project.path.parent if project.path is not None else Path.cwd()
        skip = tuple(s.strip() for s in cfg["init_skip"].split(",") if s.strip())
        try:
            report = transfer(project.graph, trainer.compiled, trainer.model, read_source(cfg["init_from"], base),
                              skip)
        except TransferError as exc:
            raise TransferError(f"training.init_from: {exc}") from None
        trainer.transfer_report = report
        trainer.emit({"type": "log", "message": report.text()})
    groups = param_groups(project.graph, trainer.compiled, trainer.model)
    # node names stay out of the optimizer (its hyper-parameters go into checkpoints as numbers)
    trainer.group_nodes = {g["lr_scale"]: g.pop("nodes") for g in groups}
    return groups


def transfer_issues(project: Any, training: dict[str, Any], pending: list[str] | None = None) -> list[Any]:
    """For ``workbench check`` and the pre-flight: an ``init_from`` that cannot be read, an ``init_skip``
    naming no node, everything frozen (what check accepts, training accepts).

    Args:
        pending: where ``check`` collects warnings: a source project that is valid but not trained yet is
            one (like data that is not on this machine); without it (training) that is an issue too.
    """
    from .issues import Issue

    issues = []
    if training.get("init_from"):
        base = project.path.parent if project.path is not None else Path.cwd()
        try:
            read_source(training["init_from"], base)
        except SourceNotTrainedError as exc:
            if pending is None:
                issues.append(Issue(f"training.init_from: {exc}", path="training.init_from"))
            else:
                pending.append(f"training.init_from: {exc}; training will refuse to start until then")
        except TransferError as exc:
            issues.append(Issue(f"training.init_from: {exc}", path="training.init_from"))
    for name in (s.strip() for s in training.get("init_skip", "").split(",")):
        if name and not project.graph.has_name(name):
            issues.append(Issue(f"training.init_skip: the model has no node called {name!r}", path="training.init_skip"))
    # training reads the settings of the model's own nodes (a block instance counts as one node): settings
    # inside a block's definition or on a discriminator would be silently ignored, so they are refused
    elsewhere = [(f'block "{b.id}"', f"blocks.{b.id}", b.graph) for b in project.blocks] + [
        (f"the {role}", f"graphs.{role}", g) for role, g in project.graphs.items()]
    for label, path, g in elsewhere:
        for n in g:
            if n.train:
                issues.append(Issue(f"{label}: node {n.name!r} has training settings ({', '.join(n.train)}), which "
                                    "only apply to nodes of the model itself: set them on the block's instance (or "
                                    "remove them)", n.name, f"train.{next(iter(n.train))}", path))
    frozen = [n for n in project.graph if flag(n.train, "frozen")]
    if frozen:
        from ..shapes import ShapeInference

        si = ShapeInference(project.graph, live=False)
        si.update()
        counts = {nid: i.params for nid, i in si.all().items()}
        trainable, _ = parameter_split(project.graph, counts)
        if trainable == 0 and sum(counts.values()) > 0:
            issues.append(Issue(f"every node with weights is frozen ({', '.join(n.name for n in frozen)}): "
                                "nothing would train; unfreeze at least one", frozen[0].name, "train.frozen"))
    return issues


def set_group_lrs(optimizer: torch.optim.Optimizer, lr: float) -> None:
    """Every group's rate = the scheduled rate x the group's ``lr_scale``."""
    for group in optimizer.param_groups:
        group["lr"] = lr * float(group.get("lr_scale", 1.0))
