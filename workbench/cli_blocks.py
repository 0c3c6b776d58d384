"""``workbench block ...``: the block operations of the editor, for scripts.

Commands that change a project save it atomically (in place, or to ``--output``).
"""

from __future__ import annotations

import argparse
import json
from typing import Any

from .block_io import import_block_file, save_block_file
from .blocks import BlockError, BlockLibrary
from .fileio import refuse_overwriting_inputs


def _describe(lib: BlockLibrary) -> list[dict[str, Any]]:
    out = []
    for b in lib:
        spec = b.spec()
        out.append({
            "id": b.id,
            "name": b.name,
            "doc": b.doc,
            "inputs": list(spec.inputs),  # type: ignore[arg-type]
            "outputs": list(spec.outputs),
            "params": [{"name": p.name, "kind": p.kind, "default": list(p.default) if isinstance(p.default, tuple)
                        else p.default} for p in spec.params],
            "layers": sum(1 for n in b.graph if n.spec.role == "layer"),
            "uses": [f"{n.name} ({where})" for where, _, n in lib.uses(b.id)],
        })
    return out


def cmd_list(args: argparse.Namespace) -> int:
    from .cli_common import EXIT_OK, _load, format_table
    from .ready_blocks import ready_library

    lib = _load(args.project).blocks if args.project else ready_library()
    rows = _describe(lib)
    if args.json:
        print(json.dumps(rows, indent=2))
        return EXIT_OK
    if not rows:
        print("no blocks (group nodes with `workbench block group`, or add a ready block with `workbench block add`)")
        return EXIT_OK
    table = [["id", "name", "ports", "parameters", "layers", "used by"]]
    for r in rows:
        ports = f"{', '.join(r['inputs'])} -> {', '.join(r['outputs'])}"
        params = ", ".join(f"{p['name']}={p['default']}" for p in r["params"])
        table.append([r["id"], r["name"], ports, params, str(r["layers"]), ", ".join(r["uses"]) or "-"])
    print(format_table(table, {4}))
    return EXIT_OK


def _save(project: Any, args: argparse.Namespace, message: str) -> int:
    """Save in place, or to ``--output`` (which may not be another input, such as an imported block file)."""
    from .cli_common import EXIT_OK
    from .project import save_project

    if args.output:
        others = [("the block file", getattr(args, "file", None))]
        refuse_overwriting_inputs([("the changed project", args.output)], others)
    path = save_project(project, args.output or project.path)
    print(f"{message}; saved {path}")
    return EXIT_OK


def cmd_add(args: argparse.Namespace) -> int:
    from .cli_common import EXIT_UNREADABLE, _fail, _load
    from .ready_blocks import add_ready, ready_library

    project = _load(args.project)
    ready = ready_library()
    unknown = [b for b in args.blocks if b not in ready.defs]
    if unknown:
        return _fail(f"no ready block {unknown[0]!r} (ready: {', '.join(ready.defs)})", EXIT_UNREADABLE)
    mapping = add_ready(project.blocks, args.blocks, ready)
    return _save(project, args, "added " + ", ".join(f"{a} as {b}" if a != b else a for a, b in mapping.items()
                                                    if a in args.blocks))


def cmd_export(args: argparse.Namespace) -> int:
    from .cli_common import EXIT_OK, _load

    project = _load(args.project)
    _block(project, args.block)
    refuse_overwriting_inputs([("the block file", args.output)], [("the project", args.project)])
    path = save_block_file(project.blocks, args.block, args.output)
    print(f"wrote {path} (block {args.block} and {len(project.blocks.dependencies(args.block))} block(s) it uses)")
    return EXIT_OK


def cmd_import(args: argparse.Namespace) -> int:
    from .cli_common import _load

    project = _load(args.project)
    block_id, added = import_block_file(args.file, project.blocks)
    what = f"imported {block_id}" if added else f"{block_id} was already in the project"
    return _save(project, args, what)


def _graph(project: Any, role: str) -> Any:
    if role == "main":
        return project.graph
    if role not in project.graphs:
        raise BlockError(f"the project has no {role!r} graph (it has: {', '.join(['main', *project.graphs])})")
    return project.graphs[role]


def _block(project: Any, block_id: str) -> Any:
    if block_id not in project.blocks.defs:
        raise BlockError(f"the project has no block {block_id!r} (it has: {', '.join(project.blocks.defs) or 'none'})")
    return project.blocks.defs[block_id]


def cmd_expose(args: argparse.Namespace) -> int:
    from .cli_common import _load

    project = _load(args.project)
    block = _block(project, args.block)
    node = block.graph.by_name(args.node)
    name = args.name or args.param
    project.blocks.expose(block.id, node.id, args.param, name)
    return _save(project, args, f"{block.id} now has the parameter {name} (sets {args.node}.{args.param})")


def cmd_unexpose(args: argparse.Namespace) -> int:
    from .cli_common import _load

    project = _load(args.project)
    block = _block(project, args.block)
    node = block.graph.by_name(args.node)
    if block.exposed_as(node.id, args.param) is None:
        raise BlockError(f"{args.node}.{args.param} is not exposed by {block.id}")
    project.blocks.unexpose(block.id, node.id, args.param)
    return _save(project, args, f"{block.id} no longer exposes {args.node}.{args.param}")


def cmd_group(args: argparse.Namespace) -> int:
    from .cli_common import _load
    from .grouping import group

    project = _load(args.project)
    graph = _graph(project, args.graph)
    block, nid = group(graph, [graph.by_name(n).id for n in args.nodes], args.name, args.instance)
    return _save(project, args, f"grouped {len(args.nodes)} node(s) into block {block.id} "
                 f"(node \"{graph.nodes[nid].name}\")")


def cmd_ungroup(args: argparse.Namespace) -> int:
    from .cli_common import _load
    from .grouping import ungroup

    project = _load(args.project)
    graph = _graph(project, args.graph)
    node = graph.by_name(args.node)
    ids = ungroup(graph, node.id)
    return _save(project, args, f"replaced \"{args.node}\" by {len(ids)} node(s)")


def cmd_remove(args: argparse.Namespace) -> int:
    from .cli_common import _load

    project = _load(args.project)
    project.blocks.remove(args.block)
    return _save(project, args, f"removed block {args.block}")


def add_parser(sub: Any) -> None:
    """Register ``workbench block`` and its actions."""
    p = sub.add_parser("block", help="reusable blocks: list, add ready ones, group, ungroup, export, import")
    actions = p.add_subparsers(dest="action", metavar="ACTION", required=True)

    def project_arg(q: argparse.ArgumentParser, changes: bool = True) -> None:
        q.add_argument("project", help="project file (.json)")
        if changes:
            q.add_argument("-o", "--output", help="write the changed project here (default: in place)")

    q = actions.add_parser("list", help="the project's blocks (without PROJECT: the ready blocks)")
    q.add_argument("project", nargs="?", help="project file (.json)")
    q.add_argument("--json", action="store_true")
    q.set_defaults(func=cmd_list)

    q = actions.add_parser("add", help="copy ready blocks into the project (see `workbench block list`)")
    project_arg(q)
    q.add_argument("blocks", nargs="+", metavar="BLOCK", help="ready block id, e.g. ResBlock")
    q.set_defaults(func=cmd_add)

    q = actions.add_parser("group", help="replace nodes by one instance of a new block holding them")
    project_arg(q)
    q.add_argument("nodes", nargs="+", metavar="NODE", help="node names")
    q.add_argument("--name", default="Block", help="the block's name (its id is derived from it)")
    q.add_argument("--instance", help="name of the new node")
    q.add_argument("--graph", default="main", help="which graph (main, or discriminator)")
    q.set_defaults(func=cmd_group)

    q = actions.add_parser("ungroup", help="replace a block instance by the layers inside it")
    project_arg(q)
    q.add_argument("node", help="name of the block node")
    q.add_argument("--graph", default="main", help="which graph (main, or discriminator)")
    q.set_defaults(func=cmd_ungroup)

    q = actions.add_parser("export", help="write a block (and the blocks it uses) to a block file")
    q.add_argument("project", help="project file (.json)")
    q.add_argument("block", help="block id")
    q.add_argument("-o", "--output", required=True, help="block file to write (.json)")
    q.set_defaults(func=cmd_export)

    q = actions.add_parser("import", help="add a block file's block to the project")
    project_arg(q)
    q.add_argument("file", help="block file (.json)")
    q.set_defaults(func=cmd_import)

    q = actions.add_parser("remove", help="delete an unused block from the project")
    project_arg(q)
    q.add_argument("block", help="block id")
    q.set_defaults(func=cmd_remove)

    for action, text, func in (
        ("expose", "make a parameter of a node inside a block a parameter of the block", cmd_expose),
        ("unexpose", "stop exposing a parameter of a node inside a block", cmd_unexpose),
    ):
        q = actions.add_parser(action, help=text)
        project_arg(q)
        q.add_argument("block", help="block id")
        q.add_argument("node", help="name of the node inside the block")
        q.add_argument("param", help="its parameter")
        if action == "expose":
            q.add_argument("--as", dest="name", help="the block parameter's name (default: PARAM); an existing one "
                           "of the same kind gets another target")
        q.set_defaults(func=func)
