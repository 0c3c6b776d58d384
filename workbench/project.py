"""Project files: versioned JSON holding the graph, layout, data and training setup.

Loading validates everything and reports errors by JSON path
(``graph.nodes[3].params.kernel_size: expected a positive int, got -1``);
nothing in a project is ever executed.  Saving is atomic.  The format is
documented in ``docs/project.schema.json``.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path, PurePath
from typing import Any

from .block_io import library_from_dict
from .blocks import BlockLibrary
from .bulk import gc_paused
from .config import DATA_FIELDS, TRAINING_FIELDS, ConfigError, default_data, default_training, validate_section
from .errors import ProjectError
from .fileio import PROJECT_LIMIT, atomic_write_text
from .graph import Graph
from .jsonio import graph_from_dict, need, parse_json, type_name
from .textcheck import text_problem

FORMAT = "neural-workbench-project"
VERSION = 3
"""2 added ``graphs``: further named graphs (a GAN's discriminator) beside the main one.
3 added ``blocks``: reusable block definitions, used by nodes whose type is a block id."""


def _v1_to_v2(doc: dict[str, Any]) -> dict[str, Any]:
    return {**doc, "version": 2}


def _v2_to_v3(doc: dict[str, Any]) -> dict[str, Any]:
    return {**doc, "version": 3}


#: version -> function upgrading a document of that version to version + 1
MIGRATIONS: dict[int, Callable[[dict[str, Any]], dict[str, Any]]] = {1: _v1_to_v2, 2: _v2_to_v3}


GRAPH_ROLES = ("discriminator",)


@dataclass
class Project:
    """A project: graph plus data and training configuration.

    Attributes:
        weights: file name (beside the project) of a safetensors weights file, or None.
        path: where it was loaded from / saved to (not stored in the file).
    """

    graph: Graph = field(default_factory=Graph)
    name: str = "Untitled"
    description: str = ""
    data: dict[str, Any] = field(default_factory=default_data)
    training: dict[str, Any] = field(default_factory=default_training)
    weights: str | None = None
    path: Path | None = None
    graphs: dict[str, Graph] = field(default_factory=dict)
    """Further graphs by role, e.g. ``{"discriminator": ...}`` for the adversarial task."""
    blocks: BlockLibrary = field(default_factory=BlockLibrary)
    """Reusable block definitions; every graph of the project can hold their instances."""
    sweep: dict[str, Any] | None = None
    """The search space of ``workbench sweep`` (validated by :func:`workbench.sweep.spec.sweep_from_dict`)."""

    def __post_init__(self) -> None:
        self.blocks.host_graphs = self._hosts
        self._hosts()

    def _hosts(self) -> dict[str, Graph]:
        """The project's graphs by a label for messages (and each bound to the block library)."""
        hosts = {"the model": self.graph, **{f"the {role}": g for role, g in self.graphs.items()}}
        for g in hosts.values():
            if g.library is not self.blocks:
                g.library = self.blocks
                for n in g:
                    n.library = self.blocks
        return hosts

    def weights_path(self) -> Path | None:
        if self.weights is None:
            return None
        base = self.path.parent if self.path else Path.cwd()
        return base / self.weights

    def to_dict(self) -> dict[str, Any]:
        return {
            "format": FORMAT,
            "version": VERSION,
            "name": self.name,
            "description": self.description,
            "graph": self.graph.to_dict(),
            "data": dict(self.data),
            "training": dict(self.training),
            "weights": self.weights,
            **({"graphs": {k: g.to_dict() for k, g in self.graphs.items()}} if self.graphs else {}),
            **({"blocks": self.blocks.to_dict()} if len(self.blocks) else {}),
            **({"sweep": self.sweep} if self.sweep is not None else {}),
        }

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2, allow_nan=False) + "\n"


# --------------------------------------------------------------------------- loading


@gc_paused()
def load_project(path: str | os.PathLike[str]) -> Project:
    """Read and validate a project file.

    Raises:
        ProjectError: with the file name and the JSON path of the first problem.
    """
    p = Path(path)
    if p.is_dir():
        raise ProjectError("is a folder, not a project file", "", str(p))
    try:
        with open(p, "rb") as fh:
            raw = fh.read(PROJECT_LIMIT + 1)  # bounded: `check /dev/zero` is an error, not an endless read
    except OSError as exc:
        raise ProjectError(f"cannot read the file: {exc.strerror or exc}", "", str(p)) from None
    if len(raw) > PROJECT_LIMIT:
        raise ProjectError(f"larger than {PROJECT_LIMIT // 2**20} MiB: not a project file?", "", str(p))
    try:
        text = raw.decode("utf-8-sig")  # a byte-order mark (Windows editors write one) is accepted
    except UnicodeDecodeError as exc:
        raise ProjectError(f"not UTF-8 text (byte {exc.start})", "", str(p)) from None
    project = project_from_dict(parse_json(text, str(p)), str(p))
    project.path = p.resolve()
    return project


def loads_project(text: str) -> Project:
    return project_from_dict(parse_json(text))


def project_from_dict(doc: Any, file: str | None = None) -> Project:
    """Validate a parsed document and build the project (see :func:`load_project`)."""
    need(isinstance(doc, dict), "", f"expected a JSON object at the top level, got {type_name(doc)}", file)
    fmt = doc.get("format")
    need(fmt == FORMAT, "format", f"expected {FORMAT!r}, got {fmt!r} (is this a Neural Workbench project?)", file)
    version = doc.get("version")
    need(isinstance(version, int) and not isinstance(version, bool) and version >= 1, "version",
          f"expected a positive int, got {version!r}", file)
    if version > VERSION:
        raise ProjectError(
            f"this file was written by a newer Neural Workbench (format version {version}); "
            f"this version reads up to {VERSION}. Please upgrade.",
            "version",
            file,
        )
    while version < VERSION:
        doc = MIGRATIONS[version](doc)
        version += 1
    allowed = {"format", "version", "name", "description", "graph", "data", "training", "weights", "graphs", "blocks",
               "sweep"}
    for key in doc:
        need(key in allowed, key, f"unknown key (known: {', '.join(sorted(allowed))})", file)

    name = doc.get("name", "Untitled")
    need(isinstance(name, str), "name", f"expected a string, got {type_name(name)}", file)
    need(not text_problem(name), "name", f"the project name {text_problem(name)}", file)
    description = doc.get("description", "")
    need(isinstance(description, str), "description", f"expected a string, got {type_name(description)}", file)
    need(not text_problem(description, multiline=True), "description",
          f"the description {text_problem(description, multiline=True)}", file)
    weights = doc.get("weights")
    if weights is not None:
        need(isinstance(weights, str) and weights != "" and not text_problem(weights), "weights",
              f"expected a file name or null, got {weights!r}", file)
        pure = PurePath(weights)
        need(
            not pure.is_absolute() and len(pure.parts) == 1 and weights not in (".", ".."),
            "weights",
            f"expected a file name beside the project (no folders), got {weights!r}",
            file,
        )
    blocks = library_from_dict(doc.get("blocks", {}), "blocks", file)
    graph = graph_from_dict(doc.get("graph"), "graph", file, library=blocks)
    extra = doc.get("graphs", {})
    need(isinstance(extra, dict), "graphs", f"expected an object of named graphs, got {type_name(extra)}", file)
    graphs = {}
    for role, g in extra.items():
        need(role in GRAPH_ROLES, f"graphs.{role}", f"unknown graph role (known: {', '.join(GRAPH_ROLES)})", file)
        graphs[role] = graph_from_dict(g, f"graphs.{role}", file, library=blocks)
    sections = {}
    for key, fields in (("data", DATA_FIELDS), ("training", TRAINING_FIELDS)):
        try:
            sections[key] = validate_section(fields, doc.get(key, {}))
        except ConfigError as exc:
            raise ProjectError(exc.detail, f"{key}.{exc.key}" if exc.key else key, file) from None
    sweep = None
    if "sweep" in doc:
        from .sweep.spec import SweepError, sweep_from_dict

        try:
            sweep = sweep_from_dict(doc["sweep"]).to_dict()
        except SweepError as exc:
            raise ProjectError(exc.detail, exc.path, file) from None
    return Project(graph, name, description, sections["data"], sections["training"], weights, graphs=graphs,
                   blocks=blocks, sweep=sweep)


@gc_paused()
def save_project(project: Project, path: str | os.PathLike[str] | None = None) -> Path:
    """Write the project atomically (temp file, fsync, rename); returns the path."""
    target = Path(path) if path is not None else project.path
    if target is None:
        raise ValueError("no path to save to")
    atomic_write_text(target, project.to_json())
    project.path = target.resolve()
    return target
