"""Weights and checkpoints as safetensors (never pickles) with JSON metadata.

A checkpoint is ``NAME.safetensors`` (model tensors under ``model.``, optimizer
tensors under ``optim.``) plus ``NAME.json`` (epoch, metrics, project hash,
optimizer hyper-parameters, schedule state).  Both are written atomically;
reading them never executes code.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file
from torch import nn

from .errors import WorkbenchError
from .fileio import atomic_path, atomic_write_text
from .graph import Graph

if TYPE_CHECKING:
    from .project import Project


class WeightsError(WorkbenchError):
    """Weights cannot be read or do not fit the model; the message names the file and tensor."""


def graph_hash(graph: Graph) -> str:
    """A hash of the architecture (types, params, wiring; not names or positions), so a
    checkpoint can tell whether it fits a project."""
    d = graph.to_dict()
    arch = {
        "nodes": [{"id": n["id"], "type": n["type"], "params": n["params"]} for n in d["nodes"]],
        "edges": d["edges"],
    }
    return hashlib.sha256(json.dumps(arch, sort_keys=True).encode()).hexdigest()[:16]


def save_weights(module: nn.Module, path: str | Path, metadata: dict[str, str] | None = None) -> Path:
    """Write ``module.state_dict()`` (keys follow node names) atomically as safetensors."""
    tensors = {k: v.detach().cpu().contiguous() for k, v in module.state_dict().items()}
    target = Path(path)
    with atomic_path(target) as tmp:
        save_file(tensors, str(tmp), metadata=metadata or {})
    return target


def read_tensors(path: str | Path) -> dict[str, torch.Tensor]:
    p = Path(path)
    if not p.is_file():
        raise WeightsError(f"{p}: weights file not found")
    try:
        return load_file(str(p))
    except (SafetensorError, OSError, ValueError) as exc:
        raise WeightsError(f"{p}: not a readable safetensors file ({exc})") from None


def load_weights(module: nn.Module, path: str | Path, prefix: str = "") -> None:
    """Load weights into ``module``; every missing, unexpected or mis-shaped tensor is named."""
    tensors = read_tensors(path)
    if prefix:
        tensors = {k[len(prefix):]: v for k, v in tensors.items() if k.startswith(prefix)}
    apply_state(module, tensors, str(path))


def apply_state(module: nn.Module, tensors: dict[str, torch.Tensor], source: str) -> None:
    own = module.state_dict()
    missing = sorted(set(own) - set(tensors))
    extra = sorted(set(tensors) - set(own))
    bad = [f"{k}: file {list(tensors[k].shape)} vs model {list(own[k].shape)}"
           for k in own if k in tensors and tensors[k].shape != own[k].shape]
    if missing or extra or bad:
        parts = []
        if missing:
            parts.append(f"missing {', '.join(missing[:5])}{'...' if len(missing) > 5 else ''}")
        if extra:
            parts.append(f"unexpected {', '.join(extra[:5])}{'...' if len(extra) > 5 else ''}")
        if bad:
            parts.append(f"shape mismatch {'; '.join(bad[:5])}")
        raise WeightsError(f"{source} does not fit the model: {'; '.join(parts)}")
    module.load_state_dict(tensors, strict=True)


# --------------------------------------------------------------------------- checkpoints


def _jsonable(value: Any) -> Any:
    try:
        json.dumps(value)
    except (TypeError, ValueError):
        return None
    return value


def save_checkpoint(path: str | Path, model: nn.Module, optimizer: torch.optim.Optimizer | None,
                    meta: dict[str, Any]) -> Path:
    """Write ``path`` (.safetensors) and its ``.json`` sidecar atomically."""
    path = Path(path)
    tensors = {f"model.{k}": v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    opt_meta: dict[str, Any] = {}
    if optimizer is not None:
        sd = optimizer.state_dict()
        scalars: dict[str, dict[str, Any]] = {}
        for pid, state in sd["state"].items():
            for key, value in state.items():
                if torch.is_tensor(value):
                    tensors[f"optim.{pid}.{key}"] = value.detach().cpu().contiguous()
                else:
                    scalars.setdefault(str(pid), {})[key] = _jsonable(value)
        opt_meta = {"param_groups": [{k: _jsonable(v) for k, v in g.items()} for g in sd["param_groups"]],
                    "scalars": scalars, "class": type(optimizer).__name__}
    with atomic_path(path) as tmp:
        save_file(tensors, str(tmp), metadata={"format": "neural-workbench-checkpoint"})
    atomic_write_text(path.with_suffix(".json"), json.dumps({**meta, "optimizer": opt_meta}, indent=2))
    return path


def read_checkpoint(path: str | Path) -> tuple[dict[str, torch.Tensor], dict[str, torch.Tensor], dict[str, Any]]:
    """Returns (model tensors, optimizer tensors, metadata)."""
    path = Path(path)
    tensors = read_tensors(path)
    meta_path = path.with_suffix(".json")
    try:
        meta = json.loads(meta_path.read_text()) if meta_path.exists() else {}
    except (OSError, ValueError) as exc:
        raise WeightsError(f"{meta_path}: unreadable checkpoint metadata ({exc})") from None
    model = {k[6:]: v for k, v in tensors.items() if k.startswith("model.")}
    optim = {k[6:]: v for k, v in tensors.items() if k.startswith("optim.")}
    if not model:  # a plain weights file works as a checkpoint too
        model = tensors
    return model, optim, meta


def restore_optimizer(optimizer: torch.optim.Optimizer, tensors: dict[str, torch.Tensor], meta: dict[str, Any]) -> None:
    opt = meta.get("optimizer") or {}
    if not opt or opt.get("class") != type(optimizer).__name__:
        return  # a different optimizer: start it fresh
    state: dict[int, dict[str, Any]] = {}
    for key, value in tensors.items():
        pid, name = key.split(".", 1)
        state.setdefault(int(pid), {})[name] = value
    for pid, scalars in opt.get("scalars", {}).items():
        state.setdefault(int(pid), {}).update(scalars)
    groups = optimizer.state_dict()["param_groups"]
    for g, saved in zip(groups, opt.get("param_groups", []), strict=False):
        for k, v in saved.items():
            if k != "params" and v is not None:
                g[k] = v
    optimizer.load_state_dict({"state": state, "param_groups": groups})


def attach_weights(project: Project, source: str | Path) -> Path:
    """Check a weights file (or checkpoint) against the project's model, copy it beside the
    project as ``<project>.safetensors`` and point the project at it (the caller saves)."""
    from .compiler import compile_graph

    if project.path is None:
        raise WeightsError("save the project first: its weights are stored beside it")
    tensors, _, _ = read_checkpoint(source)
    module = compile_graph(project.graph).module
    apply_state(module, tensors, str(source))  # names every missing or mis-shaped tensor
    target = project.path.with_suffix(".safetensors")
    save_weights(module, target, {"source": Path(source).name})
    project.weights = target.name
    return target
