"""Reading JSON documents with errors by JSON path: the layer below project files, block files and
the clipboard (all three build graphs from the same form).

Parsing is strict (no NaN or Infinity), and every problem is a ProjectError naming the file and
the JSON path of the offending value (``graph.nodes[3].params.kernel_size``).
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

from .bulk import gc_paused
from .errors import GraphError, ParamError, ProjectError
from .graph import Graph
from .node_training import TrainFlagError, validate_train
from .textcheck import text_problem

if TYPE_CHECKING:
    from .graph import SpecSource


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


def need(cond: bool, path: str, message: str, file: str | None) -> None:
    if not cond:
        raise ProjectError(message, path, file)


def type_name(v: Any) -> str:
    return {dict: "an object", list: "a list", str: "a string", bool: "a boolean", type(None): "null"}.get(
        type(v), "a number" if isinstance(v, (int, float)) else type(v).__name__
    )


@gc_paused()
def graph_from_dict(doc: Any, path: str = "graph", file: str | None = None, *, library: SpecSource | None = None,
                    into: Graph | None = None) -> Graph:
    """Build a graph from its JSON form, reporting problems by JSON path.

    Used for project files, blocks, the clipboard and templates alike.

    Args:
        library: the blocks its nodes may instantiate.
        into: an empty graph to fill (a block's inside) instead of a new one.
    """
    need(isinstance(doc, dict), path, f"expected an object, got {type_name(doc)}", file)
    for key in doc:
        need(key in ("nodes", "edges"), f"{path}.{key}", "unknown key (known: edges, nodes)", file)
    nodes, edges = doc.get("nodes", []), doc.get("edges", [])
    need(isinstance(nodes, list), f"{path}.nodes", f"expected a list, got {type_name(nodes)}", file)
    need(isinstance(edges, list), f"{path}.edges", f"expected a list, got {type_name(edges)}", file)
    g = into if into is not None else Graph(library)
    for i, nd in enumerate(nodes):
        at = f"{path}.nodes[{i}]"
        need(isinstance(nd, dict), at, f"expected an object, got {type_name(nd)}", file)
        for key in nd:
            need(key in ("id", "type", "name", "params", "position", "train"), f"{at}.{key}",
                  "unknown key (known: id, name, params, position, train, type)", file)
        nid, typ, nm = nd.get("id"), nd.get("type"), nd.get("name")
        need(isinstance(nid, str) and nid != "" and not text_problem(nid), f"{at}.id",
              f"expected a non-empty string without control characters, got {nid!r}", file)
        need(nid not in g.nodes, f"{at}.id", f"the id {nid!r} is used twice", file)
        need(isinstance(typ, str), f"{at}.type", f"expected a layer type name, got {typ!r}", file)
        need(isinstance(nm, str), f"{at}.name", f"expected a string, got {nm!r}", file)
        params = nd.get("params", {})
        need(isinstance(params, dict), f"{at}.params", f"expected an object, got {type_name(params)}", file)
        pos = nd.get("position", [0, 0])
        need(
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
        if "train" in nd:
            try:
                g.nodes[nid].train = validate_train(nd["train"])
            except TrainFlagError as exc:
                raise ProjectError(exc.detail, f"{at}.train" + (f".{exc.key}" if exc.key else ""), file) from None
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
            need(ok, at, f'expected {{"from": [node_id, port], "to": [node_id, port]}}, got {ed!r}', file)
            (src, sp), (dst, dp) = ed["from"], ed["to"]
            for key, nid in (("from", src), ("to", dst)):
                need(nid in g.nodes, f"{at}.{key}", f"no node with id {nid!r}", file)
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
