"""Weights and checkpoints as safetensors (never pickles) with JSON metadata.

A checkpoint is **one** safetensors file, written atomically, so a kill at any moment leaves
either the previous checkpoint or the new one, never a mix:

- tensors ``model.<state_dict key>`` and ``optim.<param index>.<state name>``; further parts
  (a GAN's discriminator) as ``<part>.<key>`` and ``<part>_optim.<index>.<name>``;
- the header's metadata ``{"format": "neural-workbench-checkpoint", "version": "2", "meta": JSON}``
  with the epoch, step, metrics, schedule state and optimizer hyper-parameters.

Version 1 checkpoints (the same tensors, metadata in a ``.json`` sidecar) are still read.  Reading
never executes code; the metadata is validated by type, range and depth before use, and tensors
are checked by name, shape and dtype against the model they go into.
"""

from __future__ import annotations

import hashlib
import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import load_file
from safetensors.torch import save as save_bytes
from torch import nn

from .errors import InputError, WorkbenchError
from .fileio import atomic_write_bytes
from .graph import Graph

if TYPE_CHECKING:
    from .project import Project

CHECKPOINT_FORMAT = "neural-workbench-checkpoint"
CHECKPOINT_VERSION = 2
MAX_EPOCH = 100_000  # the largest `epochs` a project can ask for
MAX_META_DEPTH = 8
MAX_META_BYTES = 16 * 2**20


class WeightsError(WorkbenchError):
    """Weights do not fit the model; the message names the file and tensor."""


class WeightsFileError(WeightsError, InputError):
    """A weights file or checkpoint cannot be read, or its metadata is invalid (exit status 2)."""

    def __init__(self, message: str, file: str | None = None) -> None:
        InputError.__init__(self, message, file)


def graph_hash(graph: Graph) -> str:
    """A hash of the architecture (types, params, wiring; not names or positions), so a
    checkpoint can tell whether it fits a project."""
    d = graph.to_dict()
    arch = {
        "nodes": [{"id": n["id"], "type": n["type"], "params": n["params"]} for n in d["nodes"]],
        "edges": d["edges"],
    }
    return hashlib.sha256(json.dumps(arch, sort_keys=True).encode()).hexdigest()[:16]


def _write(path: Path, tensors: dict[str, torch.Tensor], metadata: dict[str, str]) -> None:
    # Serialised in memory and written by our atomic writer: safetensors' own save_file renames a
    # private 0600 temporary over the target (ignoring the umask) and can leave it behind on failure.
    atomic_write_bytes(path, save_bytes(tensors, metadata=metadata))


def state_tensors(module: nn.Module) -> dict[str, torch.Tensor]:
    """``module.state_dict()`` as contiguous CPU tensors (what a safetensors file holds)."""
    return {k: v.detach().cpu().contiguous() for k, v in module.state_dict().items()}


def save_weights(module: nn.Module, path: str | Path, metadata: dict[str, str] | None = None) -> Path:
    """Write ``module.state_dict()`` (keys follow node names) atomically as safetensors."""
    target = Path(path)
    _write(target, state_tensors(module), {k: str(v) for k, v in (metadata or {}).items()})
    return target


def _open_error(p: Path, exc: BaseException) -> WeightsFileError:
    return WeightsFileError(f"{p}: not a readable safetensors file ({exc})", str(p))


def read_tensors(path: str | Path) -> dict[str, torch.Tensor]:
    """Every tensor of a safetensors file.

    Raises:
        WeightsFileError: missing, not a regular file, or not safetensors.
    """
    p = Path(path)
    if not p.is_file():
        raise WeightsFileError(f"{p}: weights file not found" if not p.exists() else
                               f"{p}: not a regular file", str(p))
    try:
        return load_file(str(p))
    except (SafetensorError, OSError, ValueError, RuntimeError) as exc:
        raise _open_error(p, exc) from None


def read_header_metadata(path: str | Path) -> dict[str, str]:
    """The string-to-string metadata of a safetensors header (empty when it has none)."""
    p = Path(path)
    try:
        with safe_open(str(p), framework="pt") as fh:
            return dict(fh.metadata() or {})
    except (SafetensorError, OSError, ValueError, RuntimeError) as exc:
        raise _open_error(p, exc) from None


def load_weights(module: nn.Module, path: str | Path, prefix: str = "") -> None:
    """Load weights into ``module``; every missing, unexpected, mis-shaped or mis-typed tensor is named."""
    tensors = read_tensors(path)
    if prefix:
        tensors = {k[len(prefix):]: v for k, v in tensors.items() if k.startswith(prefix)}
    apply_state(module, tensors, str(path))


def apply_state(module: nn.Module, tensors: dict[str, torch.Tensor], source: str) -> None:
    """Load ``tensors`` into ``module`` strictly.

    Raises:
        WeightsError: naming every missing, unexpected, mis-shaped or mis-typed tensor (a float64
            or int tensor is not silently cast into a float32 parameter).
    """
    own = module.state_dict()
    missing = sorted(set(own) - set(tensors))
    extra = sorted(set(tensors) - set(own))
    bad = [f"{k}: file {list(tensors[k].shape)} vs model {list(own[k].shape)}"
           for k in own if k in tensors and tensors[k].shape != own[k].shape]
    bad += [f"{k}: file {str(tensors[k].dtype).removeprefix('torch.')} vs model "
            f"{str(own[k].dtype).removeprefix('torch.')}"
            for k in own if k in tensors and tensors[k].shape == own[k].shape and tensors[k].dtype != own[k].dtype]
    if missing or extra or bad:
        parts = []
        if missing:
            parts.append(f"missing {', '.join(missing[:5])}{'...' if len(missing) > 5 else ''}")
        if extra:
            parts.append(f"unexpected {', '.join(extra[:5])}{'...' if len(extra) > 5 else ''}")
        if bad:
            parts.append(f"mismatch {'; '.join(bad[:5])}")
        raise WeightsError(f"{source} does not fit the model: {'; '.join(parts)}")
    load_state(module, tensors)


def load_state(module: nn.Module, tensors: dict[str, torch.Tensor]) -> None:
    """``module.load_state_dict(tensors, strict=True)``, one child module at a time.

    torch's loader filters the whole dict once per child module, and a compiled graph has a child
    per layer: loading 10,000 layers that way is quadratic (tens of seconds).  Keys that do not
    belong to a child (a root buffer) go through torch's own loader, which also words any error.
    """
    parts: dict[str, dict[str, torch.Tensor]] = {}
    for key, value in tensors.items():
        attr, dot, rest = key.partition(".")
        if not dot or attr not in module._modules:
            module.load_state_dict(tensors, strict=True)
            return
        parts.setdefault(attr, {})[rest] = value
    own_children = {k for k in module.state_dict() if "." in k}
    if {f"{a}.{r}" for a, p in parts.items() for r in p} != own_children:
        module.load_state_dict(tensors, strict=True)
        return
    for attr, part in parts.items():
        module._modules[attr].load_state_dict(part, strict=True)  # type: ignore[union-attr]


# --------------------------------------------------------------------------- checkpoints


def _jsonable(value: Any) -> Any:
    """``value`` as strict JSON: non-finite numbers and what JSON cannot hold become None."""
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if value is None or isinstance(value, (bool, int, str)):
        return value
    return None


def _optimizer_part(optimizer: torch.optim.Optimizer, prefix: str, tensors: dict[str, torch.Tensor]) -> dict[str, Any]:
    sd = optimizer.state_dict()
    scalars: dict[str, dict[str, Any]] = {}
    for pid, state in sd["state"].items():
        for key, value in state.items():
            if torch.is_tensor(value):
                tensors[f"{prefix}.{pid}.{key}"] = value.detach().cpu().contiguous()
            else:
                scalars.setdefault(str(pid), {})[key] = _jsonable(value)
    return {"param_groups": [{k: _jsonable(v) for k, v in g.items() if k != "params"} for g in sd["param_groups"]],
            "scalars": scalars, "class": type(optimizer).__name__}


def save_checkpoint(path: str | Path, model: nn.Module, optimizer: torch.optim.Optimizer | None,
                    meta: dict[str, Any], parts: dict[str, tuple[nn.Module, torch.optim.Optimizer | None]] | None = None,
                    ) -> Path:
    """Write one checkpoint file atomically.

    Args:
        meta: epoch, step, metrics... (JSON-able).
        parts: further named models with their optimizers (``{"discriminator": (d, opt_d)}``).
    """
    path = Path(path)
    tensors = {f"model.{k}": v for k, v in state_tensors(model).items()}
    doc = {k: _jsonable(v) for k, v in meta.items()}
    doc["optimizer"] = _optimizer_part(optimizer, "optim", tensors) if optimizer is not None else {}
    for name, (module, opt) in (parts or {}).items():
        tensors.update({f"{name}.{k}": v for k, v in state_tensors(module).items()})
        doc[f"{name}_optimizer"] = _optimizer_part(opt, f"{name}_optim", tensors) if opt is not None else {}
    _write(path, tensors, {"format": CHECKPOINT_FORMAT, "version": str(CHECKPOINT_VERSION),
                           "meta": json.dumps(doc, allow_nan=False)})
    return path


@dataclass
class Checkpoint:
    """A checkpoint read back: tensors by part, validated metadata."""

    path: Path
    tensors: dict[str, torch.Tensor]
    meta: dict[str, Any] = field(default_factory=dict)

    def state(self, part: str = "model") -> dict[str, torch.Tensor]:
        """The state dict of a part (a plain weights file counts as the model)."""
        out = {k[len(part) + 1:]: v for k, v in self.tensors.items() if k.startswith(f"{part}.")}
        if not out and part == "model" and not any(k.startswith("optim.") for k in self.tensors):
            return dict(self.tensors)
        return out

    def optimizer_tensors(self, part: str = "model") -> dict[str, torch.Tensor]:
        prefix = "optim." if part == "model" else f"{part}_optim."
        return {k[len(prefix):]: v for k, v in self.tensors.items() if k.startswith(prefix)}

    def optimizer_meta(self, part: str = "model") -> dict[str, Any]:
        return self.meta.get("optimizer" if part == "model" else f"{part}_optimizer") or {}


def _depth(value: Any, limit: int) -> int:
    """Nesting depth of a JSON value, stopping early past ``limit``."""
    if limit < 0:
        return 1
    if isinstance(value, dict):
        return 1 + max((_depth(v, limit - 1) for v in value.values()), default=0)
    if isinstance(value, list):
        return 1 + max((_depth(v, limit - 1) for v in value), default=0)
    return 0


def _is_number(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


def _is_int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _check(cond: bool, file: str, key: str, message: str) -> None:
    if not cond:
        raise WeightsFileError(f"{file}: checkpoint metadata {key}: {message}", file)


def _validate_optimizer(opt: Any, file: str, key: str) -> None:
    _check(isinstance(opt, dict), file, key, "expected an object")
    if not opt:
        return
    _check(isinstance(opt.get("class"), str) and len(opt["class"]) <= 64, file, f"{key}.class", "expected a name")
    groups = opt.get("param_groups", [])
    _check(isinstance(groups, list) and len(groups) <= 1000, file, f"{key}.param_groups", "expected a list")
    for i, g in enumerate(groups):
        _check(isinstance(g, dict), file, f"{key}.param_groups[{i}]", "expected an object")
        for k, v in g.items():
            ok = v is None or isinstance(v, (bool, str)) or _is_number(v) or (
                isinstance(v, list) and len(v) <= 16 and all(_is_number(x) for x in v))
            _check(ok, file, f"{key}.param_groups[{i}].{k}", f"expected a number, a flag or a short list, got {v!r:.60}")
    scalars = opt.get("scalars", {})
    _check(isinstance(scalars, dict), file, f"{key}.scalars", "expected an object")
    for pid, values in scalars.items():
        _check(pid.isdigit(), file, f"{key}.scalars", f"parameter index {pid!r:.40} is not a number")
        _check(isinstance(values, dict) and all(v is None or _is_number(v) or isinstance(v, bool)
                                                for v in values.values()),
               file, f"{key}.scalars.{pid}", "expected numbers")


def validate_meta(meta: Any, file: str) -> dict[str, Any]:
    """Check checkpoint metadata by type, range and depth.

    Raises:
        WeightsFileError: naming the key and what was expected.
    """
    _check(isinstance(meta, dict), file, "(top)", "expected an object")
    _check(_depth(meta, MAX_META_DEPTH) <= MAX_META_DEPTH, file, "(top)", f"nested deeper than {MAX_META_DEPTH} levels")
    for key in ("epoch", "step"):
        if key in meta:
            v = meta[key]
            hi = MAX_EPOCH if key == "epoch" else 10**12
            _check(_is_int(v) and 0 <= v <= hi, file, key, f"expected an int in [0, {hi}], got {v!r:.60}")
    if "metrics" in meta:
        m = meta["metrics"]
        _check(isinstance(m, dict) and len(m) <= 1000, file, "metrics", "expected an object of numbers")
        for k, v in m.items():
            _check(v is None or _is_number(v), file, f"metrics.{k}", f"expected a number, got {v!r:.60}")
    if meta.get("best") is not None:
        _check(_is_number(meta["best"]), file, "best", f"expected a number, got {meta['best']!r:.60}")
    for key in ("project", "project_hash"):
        if key in meta:
            _check(isinstance(meta[key], str) and len(meta[key]) <= 10_000, file, key, "expected a string")
    if "schedule" in meta:
        sched = meta["schedule"]
        _check(isinstance(sched, dict), file, "schedule", "expected an object")
        for k, v in sched.items():
            _check(_is_number(v), file, f"schedule.{k}", f"expected a number, got {v!r:.60}")
        if "plateau_factor" in sched:
            _check(0 < sched["plateau_factor"] <= 1, file, "schedule.plateau_factor", "expected a number in (0, 1]")
        if "plateau_bad" in sched:
            _check(_is_int(sched["plateau_bad"]) and 0 <= sched["plateau_bad"] <= MAX_EPOCH, file,
                   "schedule.plateau_bad", f"expected an int in [0, {MAX_EPOCH}]")
    for key, value in meta.items():
        if key == "optimizer" or key.endswith("_optimizer"):
            _validate_optimizer(value, file, key)
    return meta


def _parse_meta(text: str, file: str) -> dict[str, Any]:
    if len(text) > MAX_META_BYTES:
        raise WeightsFileError(f"{file}: checkpoint metadata larger than {MAX_META_BYTES // 2**20} MiB", file)
    try:
        doc = json.loads(text, parse_constant=lambda c: (_ for _ in ()).throw(ValueError(f"{c} is not allowed")))
    except RecursionError:
        raise WeightsFileError(f"{file}: checkpoint metadata nested too deeply", file) from None
    except ValueError as exc:
        raise WeightsFileError(f"{file}: unreadable checkpoint metadata ({exc})", file) from None
    return validate_meta(doc, file)


def load_checkpoint(path: str | Path) -> Checkpoint:
    """Read a checkpoint (or a plain weights file) and validate its metadata.

    Raises:
        WeightsFileError: unreadable file or invalid metadata, naming the key.
    """
    path = Path(path)
    tensors = read_tensors(path)
    header = read_header_metadata(path)
    if "meta" in header:
        if header.get("format") != CHECKPOINT_FORMAT or header.get("version") != str(CHECKPOINT_VERSION):
            raise WeightsFileError(f"{path}: unknown checkpoint format {header.get('format')!r} version "
                                   f"{header.get('version')!r}", str(path))
        meta = _parse_meta(header["meta"], str(path))
    else:  # version 1: the metadata in a sidecar (two files written one after the other)
        side = path.with_suffix(".json")
        meta = {}
        if side.is_file():
            try:
                text = side.read_bytes()[: MAX_META_BYTES + 1].decode("utf-8")
            except (OSError, UnicodeDecodeError) as exc:
                raise WeightsFileError(f"{side}: unreadable checkpoint metadata ({exc})", str(side)) from None
            meta = _parse_meta(text, str(side))
    return Checkpoint(path, tensors, meta)


def read_checkpoint(path: str | Path) -> tuple[dict[str, torch.Tensor], dict[str, torch.Tensor], dict[str, Any]]:
    """Returns (model tensors, optimizer tensors, metadata); see :func:`load_checkpoint`."""
    ckpt = load_checkpoint(path)
    return ckpt.state(), ckpt.optimizer_tensors(), ckpt.meta


def restore_optimizer(optimizer: torch.optim.Optimizer, tensors: dict[str, torch.Tensor], meta: dict[str, Any],
                      source: str = "checkpoint") -> None:
    """Put saved optimizer state back.  A different optimizer class starts fresh.

    ``meta`` is the optimizer's section (``{"class", "param_groups", "scalars"}``) or, for
    compatibility, the whole checkpoint metadata holding it under ``"optimizer"``.

    Raises:
        WeightsError: a state tensor names no parameter or does not fit it.
    """
    opt = meta.get("optimizer", meta) if "class" not in meta else meta
    if not opt or opt.get("class") != type(optimizer).__name__:
        return  # a different optimizer: start it fresh
    params = [p for g in optimizer.param_groups for p in g["params"]]
    state: dict[int, dict[str, Any]] = {}
    for key, value in tensors.items():
        pid_text, _, name = key.partition(".")
        if not pid_text.isdigit() or not name or int(pid_text) >= len(params):
            raise WeightsError(f"{source}: optimizer tensor {key!r} names no parameter of the model")
        pid = int(pid_text)
        if name != "step" and value.shape != params[pid].shape:
            raise WeightsError(f"{source}: optimizer tensor {key!r} has shape {list(value.shape)}, its parameter "
                               f"{list(params[pid].shape)}")
        state.setdefault(pid, {})[name] = value.to(params[pid].device)
    for pid, scalars in opt.get("scalars", {}).items():
        if int(pid) < len(params):
            state.setdefault(int(pid), {}).update(scalars)
    # The hyper-parameters stay the project's (the set-up is the one source of truth; the learning
    # rate follows the schedule); only the per-parameter state (moments, step counts) comes back.
    groups = optimizer.state_dict()["param_groups"]
    optimizer.load_state_dict({"state": state, "param_groups": groups})


def attach_weights(project: Project, source: str | Path) -> Path:
    """Check a weights file (or checkpoint) against the project's model, copy it beside the
    project as ``<project>.safetensors`` and point the project at it (the caller saves)."""
    from .compiler import compile_graph

    if project.path is None:
        raise WeightsError("save the project first: its weights are stored beside it")
    tensors = load_checkpoint(source).state()
    module = compile_graph(project.graph).module
    apply_state(module, tensors, str(source))  # names every missing or mis-shaped tensor
    target = project.path.with_suffix(".safetensors")
    save_weights(module, target, {"source": Path(source).name})
    project.weights = target.name
    return target
