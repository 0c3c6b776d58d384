"""The search space of a sweep: what a project's ``sweep`` section and ``--param`` declare.

Pure data and validation (no Optuna here): the project loader validates the section with
:func:`sweep_from_dict` (errors by JSON path, ``sweep.params[2].low: must be < high``), and the
command line parses ``--param conv1.out_channels=int:8:64:log`` with :func:`parse_param`.

A parameter's ``name`` is either a setting (``lr``, ``batch_size``, ``optimizer``; ``training.seed``
or ``data.seed`` where a name is in both sections) or ``node.parameter`` for any node of the model,
a block instance's exposed parameters included (``conv1.out_channels``, ``stage1.width``).  Whether
the node and parameter exist is checked when the sweep starts (:func:`workbench.sweep.apply.resolve`),
not when the project opens: renaming a node must never make a project unreadable.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from typing import Any

from ..config import DATA_FIELDS, TRAINING_FIELDS
from ..errors import WorkbenchError

SAMPLERS = ("tpe", "random", "grid")
PRUNERS = ("none", "median", "hyperband")
#: objectives beside the validation metric, each minimised (latency_ms: the forward pass at batch 1,
#: measured on the training device by ``workbench check --profile``'s profiler)
COST_OBJECTIVES = ("params", "macs", "latency_ms")
#: the largest grid a sweep enumerates (an int range without a step counts every value)
GRID_LIMIT = 100_000
KINDS = ("int", "float", "choice")


class SweepError(WorkbenchError):
    """A sweep cannot be declared or run as asked; ``path`` names the place (``sweep.params[2].low``
    or ``--param conv1.out_channels``)."""

    def __init__(self, message: str, path: str = "") -> None:
        super().__init__(f"{path}: {message}" if path else message)
        self.path = path
        self.detail = message


@dataclass(frozen=True)
class SweepParam:
    """One dimension of the search space.

    Attributes:
        name: a setting (``lr``) or ``node.parameter``.
        kind: ``int``, ``float`` or ``choice``.
        low, high: the range (int, float), both included.
        log: sample on a log scale (int, float).
        step: the spacing of the values (int, float); None samples continuously (float) or every int.
        choices: the values of a ``choice``.
    """

    name: str
    kind: str
    low: float | None = None
    high: float | None = None
    log: bool = False
    step: float | None = None
    choices: tuple[Any, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        if self.kind == "choice":
            return {"name": self.name, "type": "choice", "choices": list(self.choices)}
        out: dict[str, Any] = {"name": self.name, "type": self.kind, "low": self.low, "high": self.high}
        if self.log:
            out["log"] = True
        if self.step is not None:
            out["step"] = self.step
        return out

    def grid(self) -> list[Any]:
        """Every value a grid search tries.

        Raises:
            SweepError: a continuous float range, or a grid larger than :data:`GRID_LIMIT`.
        """
        if self.kind == "choice":
            return list(self.choices)
        assert self.low is not None and self.high is not None
        if self.kind == "float" and self.step is None:
            raise SweepError("the grid sampler needs a step for a float range (or use a choice)", self.name)
        step = self.step if self.step is not None else 1
        count = math.floor((self.high - self.low) / step + 1e-9) + 1
        if count > GRID_LIMIT:
            raise SweepError(f"the grid would have {count} values here (at most {GRID_LIMIT}); give a larger step",
                             self.name)
        if self.kind == "int":
            return [int(self.low) + i * int(step) for i in range(count)]
        return [round(self.low + i * step, 12) for i in range(count)]


@dataclass(frozen=True)
class SweepSpec:
    """A sweep as the project (and the command line) declares it.

    Attributes:
        params: the search space.
        objectives: the validation metric first (``val_accuracy``, ``val_loss``; empty: the task's
            primary metric), then any of :data:`COST_OBJECTIVES`; each ``name`` or ``name:max|min``.
        sampler, pruner: see :data:`SAMPLERS`, :data:`PRUNERS` (pruner None: median for one objective,
            none for several, which Optuna cannot prune).
        trials: how many finished trials the study should hold (None: the grid's size, or 20).
        seed: the sampler's seed (None: random).
    """

    params: tuple[SweepParam, ...] = ()
    objectives: tuple[str, ...] = ()
    sampler: str = "tpe"
    pruner: str | None = None
    trials: int | None = None
    seed: int | None = None

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"params": [p.to_dict() for p in self.params], "sampler": self.sampler}
        if self.pruner is not None:
            out["pruner"] = self.pruner
        if self.objectives:
            out["objectives"] = list(self.objectives)
        if self.trials is not None:
            out["trials"] = self.trials
        if self.seed is not None:
            out["seed"] = self.seed
        return out

    def with_params(self, params: list[SweepParam]) -> SweepSpec:
        """This spec with ``params`` added; one with a name already declared replaces it."""
        names = {p.name for p in params}
        return replace(self, params=tuple(p for p in self.params if p.name not in names) + tuple(params))

    def grid_space(self) -> dict[str, list[Any]]:
        return {p.name: p.grid() for p in self.params}

    def grid_size(self) -> int:
        size = 1
        for values in self.grid_space().values():
            size *= len(values)
        return size


# --------------------------------------------------------------------------- validation


def _number(value: Any, path: str, integer: bool) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or (integer and not float(value).is_integer()):
        raise SweepError(f"expected {'an integer' if integer else 'a number'}, got {value!r}", path)
    if not math.isfinite(float(value)):
        raise SweepError(f"expected a finite number, got {value!r}", path)
    return int(value) if integer else float(value)


def _name(value: Any, path: str) -> str:
    if not isinstance(value, str) or not value or value != value.strip() or any(c in value for c in "\n\r\t="):
        raise SweepError(f"expected a setting (lr) or node.parameter (conv1.out_channels), got {value!r}", path)
    if "." not in value and not any(f.name == value for f in (*TRAINING_FIELDS, *DATA_FIELDS)):
        raise SweepError(f"{value!r} is not a training or data setting; a node's parameter is written "
                         "node.parameter (conv1.out_channels)", path)
    return value


def param_from_dict(doc: Any, path: str) -> SweepParam:
    """One ``sweep.params[i]`` entry, validated.

    Raises:
        SweepError: naming the key (``sweep.params[2].low: must be < high``).
    """
    if not isinstance(doc, dict):
        raise SweepError(f"expected an object with name and type, got {type(doc).__name__}", path)
    kind = doc.get("type")
    allowed = {"name", "type", "choices"} if kind == "choice" else {"name", "type", "low", "high", "log", "step"}
    for key in doc:
        if key not in allowed:
            raise SweepError(f"unknown key (known for type {kind!r}: {', '.join(sorted(allowed))})", f"{path}.{key}")
    name = _name(doc.get("name"), f"{path}.name")
    if kind not in KINDS:
        raise SweepError(f"expected one of {', '.join(KINDS)}, got {kind!r}", f"{path}.type")
    if kind == "choice":
        choices = doc.get("choices")
        if not isinstance(choices, list) or not choices:
            raise SweepError("expected a non-empty list of values", f"{path}.choices")
        for i, c in enumerate(choices):
            if not isinstance(c, (str, int, float, bool)) or (isinstance(c, float) and not math.isfinite(c)):
                raise SweepError(f"expected a string, number or boolean, got {c!r}", f"{path}.choices[{i}]")
        if len({(type(c), c) for c in choices}) != len(choices):
            raise SweepError("a value is listed twice", f"{path}.choices")
        return SweepParam(name, "choice", choices=tuple(choices))
    integer = kind == "int"
    for key in ("low", "high"):
        if key not in doc:
            raise SweepError(f"missing (a {kind} range needs low and high)", f"{path}.{key}")
    low, high = _number(doc["low"], f"{path}.low", integer), _number(doc["high"], f"{path}.high", integer)
    if not low < high:
        raise SweepError(f"must be < high ({doc['high']!r}), got {doc['low']!r}", f"{path}.low")
    log = doc.get("log", False)
    if not isinstance(log, bool):
        raise SweepError(f"expected true or false, got {log!r}", f"{path}.log")
    if log and low <= 0:
        raise SweepError(f"a log scale needs low > 0, got {doc['low']!r}", f"{path}.low")
    step = doc.get("step")
    if step is not None:
        step = _number(step, f"{path}.step", integer)
        if step <= 0:
            raise SweepError(f"expected a positive step, got {doc['step']!r}", f"{path}.step")
        if log and not (integer and step == 1):  # Optuna: a step and a log scale exclude each other
            raise SweepError("a step and a log scale cannot be combined (Optuna samples one or the other)",
                             f"{path}.step")
        if step > high - low:
            raise SweepError(f"larger than the range ({high - low}): the range would hold one value",
                             f"{path}.step")
    return SweepParam(name, kind, low, high, log, step)


def sweep_from_dict(doc: Any, path: str = "sweep") -> SweepSpec:
    """The ``sweep`` section of a project, validated.

    Raises:
        SweepError: with the JSON path of the first problem.
    """
    if not isinstance(doc, dict):
        raise SweepError(f"expected an object, got {type(doc).__name__}", path)
    known = ("params", "objectives", "sampler", "pruner", "trials", "seed")
    for key in doc:
        if key not in known:
            raise SweepError(f"unknown key (known: {', '.join(known)})", f"{path}.{key}")
    raw = doc.get("params", [])
    if not isinstance(raw, list):
        raise SweepError(f"expected a list, got {type(raw).__name__}", f"{path}.params")
    params = [param_from_dict(p, f"{path}.params[{i}]") for i, p in enumerate(raw)]
    seen: dict[str, int] = {}
    for i, p in enumerate(params):
        if p.name in seen:
            raise SweepError(f"{p.name!r} is already declared at params[{seen[p.name]}]", f"{path}.params[{i}].name")
        seen[p.name] = i
    objectives = doc.get("objectives", [])
    if not isinstance(objectives, list) or not all(isinstance(o, str) for o in objectives):
        raise SweepError("expected a list of names (val_accuracy, params, macs, latency_ms)", f"{path}.objectives")
    for i, o in enumerate(objectives):
        check_objective(o, i, f"{path}.objectives[{i}]")
    if len(set(o.split(":")[0] for o in objectives)) != len(objectives):
        raise SweepError("an objective is listed twice", f"{path}.objectives")
    sampler = doc.get("sampler", "tpe")
    if sampler not in SAMPLERS:
        raise SweepError(f"expected one of {', '.join(SAMPLERS)}, got {sampler!r}", f"{path}.sampler")
    pruner = doc.get("pruner")
    if pruner is not None and pruner not in PRUNERS:
        raise SweepError(f"expected one of {', '.join(PRUNERS)}, got {pruner!r}", f"{path}.pruner")
    trials = doc.get("trials")
    if trials is not None and (isinstance(trials, bool) or not isinstance(trials, int) or trials < 1):
        raise SweepError(f"expected a positive integer, got {trials!r}", f"{path}.trials")
    seed = doc.get("seed")
    if seed is not None and (isinstance(seed, bool) or not isinstance(seed, int) or not 0 <= seed < 2**32):
        raise SweepError(f"expected an integer from 0 to 2**32 - 1, got {seed!r}", f"{path}.seed")
    return SweepSpec(tuple(params), tuple(objectives), sampler, pruner, trials, seed)


def check_objective(text: str, index: int, path: str) -> tuple[str, str | None]:
    """``name`` or ``name:max|min`` -> (name, direction or None for the default).

    The first objective is a validation metric (``val_...``); the others are costs.
    """
    name, _, direction = text.partition(":")
    if direction not in ("", "max", "min"):
        raise SweepError(f"the direction after ':' is max or min, got {direction!r}", path)
    if index == 0 and not name.startswith("val_"):
        raise SweepError(f"the first objective is a validation metric (val_accuracy, val_loss, ...), got {name!r}",
                         path)
    if index > 0 and name not in COST_OBJECTIVES:
        raise SweepError(f"expected one of {', '.join(COST_OBJECTIVES)} after the metric, got {name!r}", path)
    return name, direction or None


# --------------------------------------------------------------------------- the command line


def _scalar(text: str) -> Any:
    low = text.lower()
    if low in ("true", "false"):
        return low == "true"
    for convert in (int, float):
        try:
            return convert(text)
        except ValueError:
            pass
    return text


def parse_param(text: str) -> SweepParam:
    """``--param`` syntax::

        NAME=int:LOW:HIGH[:log][:step=S]     conv1.out_channels=int:8:64:log
        NAME=float:LOW:HIGH[:log][:step=S]   lr=float:1e-4:1e-1:log
        NAME=choice:A,B,C  (or NAME=A,B,C)   optimizer=adam,sgd

    Raises:
        SweepError: located at ``--param NAME``.
    """
    name, eq, rest = text.partition("=")
    where = f"--param {name or text}"
    if not eq or not name or not rest:
        raise SweepError("expected NAME=int:LOW:HIGH, NAME=float:LOW:HIGH[:log] or NAME=A,B,C", where)
    kind, colon, body = rest.partition(":")
    doc: dict[str, Any] = {"name": name}
    if not colon or kind not in KINDS:
        doc.update(type="choice", choices=[_scalar(c) for c in rest.split(",")])
    elif kind == "choice":
        doc.update(type="choice", choices=[_scalar(c) for c in body.split(",")])
    else:
        parts = body.split(":")
        if len(parts) < 2:
            raise SweepError(f"expected {kind}:LOW:HIGH, got {rest!r}", where)
        doc.update(type=kind, low=_scalar(parts[0]), high=_scalar(parts[1]))
        for opt in parts[2:]:
            if opt == "log":
                doc["log"] = True
            elif opt.startswith("step="):
                doc["step"] = _scalar(opt[5:])
            else:
                raise SweepError(f"unknown option {opt!r} (log or step=S)", where)
        if kind == "float":  # 1 and 10 are floats here
            doc.update({k: float(v) for k, v in doc.items() if k in ("low", "high", "step")
                        and isinstance(v, int) and not isinstance(v, bool)})
    try:
        return param_from_dict(doc, where)
    except SweepError as exc:
        # the keys of the dict form mean nothing on the command line: keep the message, name the option
        raise SweepError(exc.detail + (f" ({exc.path.rsplit('.', 1)[1]})" if "." in exc.path.replace(name, "")
                                       else ""), where) from None
