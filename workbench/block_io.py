"""Blocks as data: loading a library from JSON (errors by JSON path), copying blocks
between libraries without clobbering, and block files.

A block file holds one block and every block it uses, so it opens anywhere:
``{"format": "neural-workbench-block", "version": 1, "block": id, "blocks": {...}}``.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from .blocks import IDENT, BlockDef, BlockError, BlockGraph, BlockLibrary, BlockParam, free_id
from .errors import GraphError, ProjectError
from .jsonio import graph_from_dict, need, parse_json, type_name
from .layers import REGISTRY
from .textcheck import text_problem

# --------------------------------------------------------------------------- loading


def library_from_dict(doc: Any, path: str = "blocks", file: str | None = None) -> BlockLibrary:
    """Validate and build a library from its JSON form, reporting problems by JSON path.

    Blocks may use one another in any order in the file; a block that contains
    itself (directly or through others) is refused.
    """

    lib = BlockLibrary()
    need(isinstance(doc, dict), path, f"expected an object of blocks by id, got {type_name(doc)}", file)
    uses: dict[str, list[str]] = {}
    for bid, entry in doc.items():
        at = f"{path}.{bid}"
        need(bool(IDENT.fullmatch(bid)), at, "a block id must be an identifier (letters, digits, _)", file)
        need(bid not in REGISTRY, at, f'"{bid}" is a layer type of the catalogue; choose another block id', file)
        need(isinstance(entry, dict), at, f"expected an object, got {type_name(entry)}", file)
        graph = entry.get("graph")
        nodes = graph.get("nodes") if isinstance(graph, dict) else None
        types = [n.get("type") for n in nodes if isinstance(n, dict)] if isinstance(nodes, list) else []
        uses[bid] = [t for t in types if isinstance(t, str) and t in doc and t not in REGISTRY]
    for bid in _dependency_order(uses, path, file):
        add_block_from_dict(lib, bid, doc[bid], f"{path}.{bid}", file)
    return lib


def add_block_from_dict(lib: BlockLibrary, bid: str, entry: Any, at: str = "block", file: str | None = None,
                        index: int | None = None) -> BlockDef:
    """Validate one block's JSON and add it to ``lib`` (the blocks it uses must be there).

    Raises:
        ProjectError: naming the JSON path of the first problem.
    """

    need(isinstance(entry, dict), at, f"expected an object, got {type_name(entry)}", file)
    for key in entry:
        need(key in ("name", "doc", "params", "graph"), f"{at}.{key}", "unknown key (known: doc, graph, name, params)",
              file)
    try:
        lib.validate_id(bid)
    except BlockError as exc:
        raise ProjectError(str(exc), at, file) from None
    name = entry.get("name", bid)
    need(isinstance(name, str) and name.strip() != "", f"{at}.name", f"expected a non-empty string, got {name!r}",
          file)
    need(not text_problem(name), f"{at}.name", f"the block name {text_problem(name)}", file)
    bdoc = entry.get("doc", "")
    need(isinstance(bdoc, str), f"{at}.doc", f"expected a string, got {type_name(bdoc)}", file)
    need(not text_problem(bdoc, multiline=True), f"{at}.doc", f"the block doc {text_problem(bdoc, multiline=True)}",
          file)
    graph = graph_from_dict(entry.get("graph", {}), f"{at}.graph", file, into=BlockGraph(lib, bid))
    raw = entry.get("params", [])
    need(isinstance(raw, list), f"{at}.params", f"expected a list, got {type_name(raw)}", file)
    params = []
    for i, p in enumerate(raw):
        pat = f"{at}.params[{i}]"
        need(isinstance(p, dict) and set(p) <= {"name", "doc", "targets"}, pat,
              'expected {"name": ..., "doc": ..., "targets": [[node_id, parameter], ...]}', file)
        targets = p.get("targets")
        need(isinstance(targets, list) and all(
            isinstance(t, list) and len(t) == 2 and all(isinstance(v, str) for v in t) for t in targets),
            f"{pat}.targets", f"expected a list of [node_id, parameter] pairs, got {targets!r}", file)
        pdoc = p.get("doc", "")
        need(isinstance(pdoc, str), f"{pat}.doc", f"expected a string, got {type_name(pdoc)}", file)
        need(not text_problem(pdoc, multiline=True), f"{pat}.doc", f"the doc {text_problem(pdoc, multiline=True)}",
              file)
        params.append(BlockParam(p.get("name"), tuple((t[0], t[1]) for t in targets), pdoc))  # type: ignore[arg-type]
    block = BlockDef(bid, name.strip(), graph, params, bdoc)
    try:
        lib.add(block, index)
    except GraphError as exc:
        raise ProjectError(str(exc), f"{at}.params", file) from None
    return block


def _dependency_order(uses: dict[str, list[str]], path: str, file: str | None) -> list[str]:
    order: list[str] = []
    state: dict[str, int] = {}  # 1 visiting, 2 done

    def visit(bid: str, trail: list[str]) -> None:
        if state.get(bid) == 2:
            return
        if state.get(bid) == 1:
            loop = [*trail[trail.index(bid):], bid]
            raise ProjectError(f"the block contains itself: {' -> '.join(loop)}", f"{path}.{loop[0]}.graph", file)
        state[bid] = 1
        for dep in uses[bid]:
            visit(dep, [*trail, bid])
        state[bid] = 2
        order.append(bid)

    for bid in uses:
        visit(bid, [])
    return order


# --------------------------------------------------------------------------- copying between libraries


def retyped(doc: dict[str, Any], mapping: dict[str, str]) -> dict[str, Any]:
    """A graph's JSON (or a block's) with the block types of its nodes renamed."""
    if not mapping or not isinstance(doc, dict):
        return doc
    if "graph" in doc and "nodes" not in doc:
        return {**doc, "graph": retyped(doc["graph"], mapping)}
    nodes = doc.get("nodes")
    if not isinstance(nodes, list):
        return doc  # not valid; graph_from_dict says where
    return {**doc, "nodes": [{**n, "type": mapping.get(n["type"], n["type"])}
                             if isinstance(n, dict) and isinstance(n.get("type"), str) else n for n in nodes]}


def plan_merge(source: BlockLibrary, ids: Iterable[str], target: BlockLibrary) -> tuple[dict[str, str], dict[str, Any]]:
    """What copying ``ids`` (and the blocks they use) from ``source`` into ``target`` takes.

    A block that ``target`` already holds with the same content (under its id or
    another) is reused; one whose id is taken by a different block is copied
    under a new id.  Returns the id mapping and the JSON of the blocks to add, in
    the order to add them (:func:`add_block_from_dict`); nothing is changed yet.
    """
    mapping: dict[str, str] = {}
    new: dict[str, Any] = {}
    taken = set(target.defs)
    existing = {bid: b.to_dict() for bid, b in target.defs.items()}
    for bid, doc in source.to_dict(ids).items():  # dependencies come first
        doc = retyped(doc, mapping)
        same = [t for t, d in existing.items() if d == doc]
        if same:
            mapping[bid] = bid if bid in same else same[0]
            continue
        new_id = free_id(bid, taken)
        taken.add(new_id)
        existing[new_id] = doc
        mapping[bid] = new_id
        new[new_id] = doc
    return mapping, new


# --------------------------------------------------------------------------- block files

BLOCK_FORMAT = "neural-workbench-block"
BLOCK_VERSION = 1


def block_file_dict(library: BlockLibrary, block_id: str) -> dict[str, Any]:
    """A block file: the block and every block it uses, so it opens anywhere."""
    if block_id not in library.defs:
        raise BlockError(f'no block "{block_id}"')
    return {"format": BLOCK_FORMAT, "version": BLOCK_VERSION, "block": block_id,
            "blocks": library.to_dict([block_id])}


def save_block_file(library: BlockLibrary, block_id: str, path: str | os.PathLike[str]) -> Path:
    """Write a block file atomically; returns its path."""
    from .fileio import atomic_write_text

    text = json.dumps(block_file_dict(library, block_id), indent=2, allow_nan=False) + "\n"
    target = Path(path)
    atomic_write_text(target, text)
    return target


def read_block_file(path: str | os.PathLike[str]) -> tuple[BlockLibrary, str]:
    """Read and validate a block file; returns a library holding it and the block's id.

    Raises:
        ProjectError: with the file name and the JSON path of the first problem.
    """

    p = Path(path)
    file = str(p)
    try:
        text = p.read_bytes().decode("utf-8")
    except OSError as exc:
        raise ProjectError(f"cannot read the file: {exc.strerror or exc}", "", file) from None
    except UnicodeDecodeError as exc:
        raise ProjectError(f"not UTF-8 text (byte {exc.start})", "", file) from None
    doc = parse_json(text, file)
    need(isinstance(doc, dict), "", "expected a JSON object at the top level", file)
    need(doc.get("format") == BLOCK_FORMAT, "format",
          f"expected {BLOCK_FORMAT!r}, got {doc.get('format')!r} (is this a Neural Workbench block file?)", file)
    version = doc.get("version")
    need(isinstance(version, int) and not isinstance(version, bool) and version >= 1, "version",
          f"expected a positive int, got {version!r}", file)
    need(version <= BLOCK_VERSION, "version", f"this block file was written by a newer Neural Workbench (block "
          f"format {version}); this version reads up to {BLOCK_VERSION}. Please upgrade.", file)
    for key in doc:
        need(key in ("format", "version", "block", "blocks"), key, "unknown key (known: block, blocks, format, version)",
              file)
    lib = library_from_dict(doc.get("blocks"), "blocks", file)
    block_id = doc.get("block")
    need(isinstance(block_id, str) and block_id in lib.defs, "block",
          f"expected the id of one of the file's blocks, got {block_id!r}", file)
    return lib, block_id  # type: ignore[return-value]


def import_block_file(path: str | os.PathLike[str], library: BlockLibrary) -> tuple[str, list[str]]:
    """Add a block file's block (and those it uses) to ``library``, reusing identical
    blocks and renaming on id clashes.  Returns its id in ``library`` and the ids added."""
    source, block_id = read_block_file(path)
    mapping, new = plan_merge(source, [block_id], library)
    for bid, doc in new.items():
        add_block_from_dict(library, bid, doc, f"blocks.{bid}", str(path))
    return mapping[block_id], list(new)
