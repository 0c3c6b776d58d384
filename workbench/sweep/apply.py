"""From a sweep's parameter names to places in a project, and trial values into a copy of it.

``lr`` is the training setting, ``batch_size`` the data setting, ``conv1.out_channels`` the
parameter of the node named ``conv1`` (a block instance's exposed parameters are its parameters).
Every name and range is checked against the project before the first trial runs.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ..config import DATA_FIELDS, TRAINING_FIELDS, ConfigError, validate_section
from ..errors import GraphError
from ..layers.spec import Param, ParamValueError
from ..project import Project, project_from_dict
from .spec import SweepError, SweepSpec

_SECTIONS = {"training": TRAINING_FIELDS, "data": DATA_FIELDS}


@dataclass(frozen=True)
class Target:
    """Where a sweep parameter's value goes: ``section`` ("training", "data") and ``key``, or the
    node ``node_id`` and its parameter ``key``."""

    name: str
    key: str
    section: str | None = None
    node_id: str | None = None


def _field(section: str, key: str) -> Param | None:
    return next((f for f in _SECTIONS[section] if f.name == key), None)


def target_of(project: Project, name: str) -> tuple[Target, Param]:
    head, dot, key = name.rpartition(".")
    if not dot:
        sections = [s for s in _SECTIONS if _field(s, name) is not None]
        if len(sections) > 1:
            raise SweepError(f"{name!r} is a setting of both {' and '.join(sections)}: write "
                             f"{' or '.join(f'{s}.{name}' for s in sections)}", name)
        if not sections:
            raise SweepError(f"{name!r} is not a training or data setting", name)
        field = _field(sections[0], name)
        assert field is not None
        return Target(name, name, section=sections[0]), field
    section_field = _field(head, key) if head in _SECTIONS else None
    node = next((n for n in project.graph if n.name == head), None)
    if section_field is not None and node is not None and any(p.name == key for p in node.spec.params):
        raise SweepError(f"{name!r} is both the {head} setting {key!r} and the parameter of node \"{head}\": rename "
                         "the node", name)
    if section_field is not None:
        return Target(name, key, section=head), section_field
    if node is None:
        raise SweepError(f"no node named \"{head}\" in the model (a setting is written without a dot: lr, "
                         "batch_size)", name)
    param = next((p for p in node.spec.params if p.name == key), None)
    if param is None:
        known = ", ".join(p.name for p in node.spec.params) or "none"
        raise SweepError(f"node \"{head}\" ({node.type}) has no parameter {key!r} (its parameters: {known})", name)
    return Target(name, key, node_id=node.id), param


def _check_value(param: Param, value: Any, name: str, what: str) -> None:
    try:
        param.validate(value)
    except ParamValueError as exc:
        raise SweepError(f"{what} {value!r} is refused by the parameter: {exc}", name) from None


def resolve(project: Project, spec: SweepSpec) -> dict[str, Target]:
    """Check every name and range of ``spec`` against the project; returns the targets by name.

    Raises:
        SweepError: located at the parameter's name, saying what is wrong.
    """
    if not spec.params:
        raise SweepError("the search space is empty: declare parameters in the project's sweep section or with "
                         "--param NAME=...", "sweep.params")
    targets = {}
    for p in spec.params:
        target, param = target_of(project, p.name)
        if p.kind == "choice":
            for c in p.choices:
                _check_value(param, c, p.name, "the choice")
        else:
            if param.kind not in ("int", "float") or (p.kind == "float" and param.kind == "int"):
                raise SweepError(f"a {p.kind} range does not fit this {param.kind} parameter; use "
                                 f"{'int:LOW:HIGH' if param.kind == 'int' else 'a choice'}", p.name)
            _check_value(param, int(p.low) if p.kind == "int" else p.low, p.name, "low")
            _check_value(param, int(p.high) if p.kind == "int" else p.high, p.name, "high")
        targets[p.name] = target
    return targets


def sweep_problems(project: Project) -> list[str]:
    """What ``workbench check`` says about the project's ``sweep`` section (names, ranges), as messages."""
    from .spec import sweep_from_dict

    if project.sweep is None:
        return []
    spec = sweep_from_dict(project.sweep)
    if not spec.params:
        return []
    try:
        resolve(project, spec)
    except SweepError as exc:
        return [f"sweep: {exc}"]
    return []


def apply_values(project: Project, targets: dict[str, Target], values: dict[str, Any]) -> Project:
    """A copy of ``project`` with ``values`` (name -> value) set; the project itself is not changed.

    Raises:
        SweepError: a value the setting or the graph refuses (a PortError, a ParamError...).
    """
    copy = project_from_dict(project.to_dict())  # the same serializer as save and load: nothing shared
    copy.path = project.path
    sections = {"training": dict(copy.training), "data": dict(copy.data)}
    for name, value in values.items():
        t = targets[name]
        if t.section is not None:
            sections[t.section][t.key] = value
            continue
        assert t.node_id is not None
        try:
            copy.graph.set_params(t.node_id, {t.key: value})
        except GraphError as exc:
            raise SweepError(str(exc), name) from None
    for section, fields in _SECTIONS.items():
        try:
            setattr(copy, section, validate_section(fields, sections[section]))
        except ConfigError as exc:
            raise SweepError(exc.detail, f"{section}.{exc.key}") from None
    return copy


def with_overrides(project: Project, overrides: dict[str, Any]) -> Project:
    """A copy of ``project`` whose settings ``overrides`` replaces (``epochs``, ``device`` from the command
    line): the base every trial starts from, so a sampled value of the same setting wins over it.

    Raises:
        SweepError: a value the setting refuses.
    """
    copy = project_from_dict(project.to_dict())
    copy.path = project.path
    sections = {"training": dict(copy.training), "data": dict(copy.data)}
    for key, value in overrides.items():
        section = "training" if _field("training", key) is not None else "data"
        sections[section][key] = value
    for section, fields in _SECTIONS.items():
        try:
            setattr(copy, section, validate_section(fields, sections[section]))
        except ConfigError as exc:
            raise SweepError(exc.detail, f"--{exc.key.replace('_', '-')}") from None
    return copy


def targets_of(project: Project, names: list[str]) -> dict[str, Target]:
    """The targets of parameter names alone (a stored trial's values; no ranges to check)."""
    return {name: target_of(project, name)[0] for name in names}
