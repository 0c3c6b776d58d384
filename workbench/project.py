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
from .errors import GraphError, ParamError, ProjectError
from .fileio import PROJECT_LIMIT, atomic_write_text
from .graph import Graph
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
        }

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2, allow_nan=False) + "\n"


# --------------------------------------------------------------------------- loading


def _reject_constant(value: str) -> Any:
    raise ValueError(f"{value} is not allowed in a project file")


def parse_json(text: str, file: str | None = None) -> Any:
    """Parse JSON strictly (no NaN/Infinity), as a ProjectError on failure."""
    try:
        return json.loads(text, parse_constant=_reject_constant)
    except json.JSONDecodeError as exc:
        raise ProjectError(f"not valid JSON: {exc.msg} (line {exc.lineno}, column {exc.colno})", "", file) from None
    except (ValueError, RecursionError) as exc:
        raise ProjectError(f"not valid JSON: {exc}", "", file) from None


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


def _need(cond: bool, path: str, message: str, file: str | None) -> None:
    if not cond:
        raise ProjectError(message, path, file)


def _type_name(v: Any) -> str:
    return {dict: "an object", list: "a list", str: "a string", bool: "a boolean", type(None): "null"}.get(
        type(v), "a number" if isinstance(v, (int, float)) else type(v).__name__
    )


def project_from_dict(doc: Any, file: str | None = None) -> Project:
    """Validate a parsed document and build the project (see :func:`load_project`)."""
    _need(isinstance(doc, dict), "", f"expected a JSON object at the top level, got {_type_name(doc)}", file)
    fmt = doc.get("format")
    _need(fmt == FORMAT, "format", f"expected {FORMAT!r}, got {fmt!r} (is this a Neural Workbench project?)", file)
    version = doc.get("version")
    _need(isinstance(version, int) and not isinstance(version, bool) and version >= 1, "version",
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
    allowed = {"format", "version", "name", "description", "graph", "data", "training", "weights", "graphs", "blocks"}
    for key in doc:
        _need(key in allowed, key, f"unknown key (known: {', '.join(sorted(allowed))})", file)

    name = doc.get("name", "Untitled")
    _need(isinstance(name, str), "name", f"expected a string, got {_type_name(name)}", file)
    _need(not text_problem(name), "name", f"the project name {text_problem(name)}", file)
    description = doc.get("description", "")
    _need(isinstance(description, str), "description", f"expected a string, got {_type_name(description)}", file)
    _need(not text_problem(description, multiline=True), "description",
          f"the description {text_problem(description, multiline=True)}", file)
    weights = doc.get("weights")
    if weights is not None:
        _need(isinstance(weights, str) and weights != "" and not text_problem(weights), "weights",
              f"expected a file name or null, got {weights!r}", file)
        pure = PurePath(weights)
        _need(
            not pure.is_absolute() and len(pure.parts) == 1 and weights not in (".", ".."),
            "weights",
            f"expected a file name beside the project (no folders), got {weights!r}",
            file,
        )
    blocks = library_from_dict(doc.get("blocks", {}), "blocks", file)
    graph = graph_from_dict(doc.get("graph"), "graph", file, library=blocks)
    extra = doc.get("graphs", {})
    _need(isinstance(extra, dict), "graphs", f"expected an object of named graphs, got {_type_name(extra)}", file)
    graphs = {}
    for role, g in extra.items():
        _need(role in GRAPH_ROLES, f"graphs.{role}", f"unknown graph role (known: {', '.join(GRAPH_ROLES)})", file)
        graphs[role] = graph_from_dict(g, f"graphs.{role}", file, library=blocks)
    sections = {}
    for key, fields in (("data", DATA_FIELDS), ("training", TRAINING_FIELDS)):
        try:
            sections[key] = validate_section(fields, doc.get(key, {}))
        except ConfigError as exc:
            raise ProjectError(exc.detail, f"{key}.{exc.key}" if exc.key else key, file) from None
    return Project(graph, name, description, sections["data"], sections["training"], weights, graphs=graphs,
                   blocks=blocks)


@gc_paused()
def graph_from_dict(doc: Any, path: str = "graph", file: str | None = None, *, library: BlockLibrary | None = None,
                    into: Graph | None = None) -> Graph:
    """Build a graph from its JSON form, reporting problems by JSON path.

    Used for project files, blocks, the clipboard and templates alike.

    Args:
        library: the blocks its nodes may instantiate.
        into: an empty graph to fill (a block's inside) instead of a new one.
    """
    _need(isinstance(doc, dict), path, f"expected an object, got {_type_name(doc)}", file)
    for key in doc:
        _need(key in ("nodes", "edges"), f"{path}.{key}", "unknown key (known: edges, nodes)", file)
    nodes, edges = doc.get("nodes", []), doc.get("edges", [])
    _need(isinstance(nodes, list), f"{path}.nodes", f"expected a list, got {_type_name(nodes)}", file)
    _need(isinstance(edges, list), f"{path}.edges", f"expected a list, got {_type_name(edges)}", file)
    g = into if into is not None else Graph(library)
    for i, nd in enumerate(nodes):
        at = f"{path}.nodes[{i}]"
        _need(isinstance(nd, dict), at, f"expected an object, got {_type_name(nd)}", file)
        for key in nd:
            _need(key in ("id", "type", "name", "params", "position"), f"{at}.{key}",
                  "unknown key (known: id, name, params, position, type)", file)
        nid, typ, nm = nd.get("id"), nd.get("type"), nd.get("name")
        _need(isinstance(nid, str) and nid != "" and not text_problem(nid), f"{at}.id",
              f"expected a non-empty string without control characters, got {nid!r}", file)
        _need(nid not in g.nodes, f"{at}.id", f"the id {nid!r} is used twice", file)
        _need(isinstance(typ, str), f"{at}.type", f"expected a layer type name, got {typ!r}", file)
        _need(isinstance(nm, str), f"{at}.name", f"expected a string, got {nm!r}", file)
        params = nd.get("params", {})
        _need(isinstance(params, dict), f"{at}.params", f"expected an object, got {_type_name(params)}", file)
        pos = nd.get("position", [0, 0])
        _need(
            isinstance(pos, list) and len(pos) == 2
            and all(isinstance(v, (int, float)) and not isinstance(v, bool) and abs(v) < 1e9 for v in pos),
            f"{at}.position",
            f"expected [x, y] numbers, got {pos!r}",
            file,
        )
        try:
            g.add_node(typ, params, nm, (pos[0], pos[1]), node_id=nid)
        except ParamError as exc:
            detail = str(exc).split(": ", 1)[-1] if exc.param else str(exc)
            sub = f"{at}.params.{exc.param}" if exc.param else f"{at}.params"
            raise ProjectError(detail, sub, file) from None
        except GraphError as exc:
            field_ = "type" if "layer type" in str(exc) else "name"
            raise ProjectError(str(exc), f"{at}.{field_}", file) from None
    # The edges are read first and wired together (one cycle check for all, not one per
    # edge); the error reported is still the first in file order, as if wired one by one.
    wires: list[tuple[str, str, str, str]] = []
    unreadable: ProjectError | None = None
    for i, ed in enumerate(edges):
        at = f"{path}.edges[{i}]"
        try:
            ok = isinstance(ed, dict) and set(ed) == {"from", "to"} and all(
                isinstance(ed[k], list) and len(ed[k]) == 2 and all(isinstance(v, str) for v in ed[k])
                for k in ("from", "to")
            )
            _need(ok, at, f'expected {{"from": [node_id, port], "to": [node_id, port]}}, got {ed!r}', file)
            (src, sp), (dst, dp) = ed["from"], ed["to"]
            for key, nid in (("from", src), ("to", dst)):
                _need(nid in g.nodes, f"{at}.{key}", f"no node with id {nid!r}", file)
        except ProjectError as exc:
            unreadable = exc
            break
        wires.append((src, sp, dst, dp))
    failure = g.connect_many(wires)
    if failure is not None:
        index, exc = failure
        raise ProjectError(str(exc), f"{path}.edges[{index}]", file) from None
    if unreadable is not None:
        raise unreadable
    return g


# --------------------------------------------------------------------------- saving


@gc_paused()
def save_project(project: Project, path: str | os.PathLike[str] | None = None) -> Path:
    """Write the project atomically (temp file, fsync, rename); returns the path."""
    target = Path(path) if path is not None else project.path
    if target is None:
        raise ValueError("no path to save to")
    atomic_write_text(target, project.to_json())
    project.path = target.resolve()
    return target
