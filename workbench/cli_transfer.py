"""``workbench transfer``: set a project up to start from another model's weights."""

from __future__ import annotations

import argparse
import json
import os
from pathlib import Path
from typing import Any


def _names(text: str) -> list[str]:
    return [s.strip() for s in text.split(",") if s.strip()]


def _scale(text: str) -> tuple[list[str], float]:
    nodes, sep, value = text.rpartition("=")
    try:
        scale = float(value)
    except ValueError:
        scale = -1.0
    if not sep or not _names(nodes) or not 0 <= scale <= 100:
        raise argparse.ArgumentTypeError(f"expected NODES=SCALE with SCALE in [0, 100] (fc1,fc2=0.1), got {text!r}")
    return _names(nodes), scale


def _head(text: str) -> tuple[str, int]:
    node, sep, value = text.rpartition("=")
    if not sep or not node or not value.isdigit() or int(value) < 1:
        raise argparse.ArgumentTypeError(f"expected NODE=OUTPUTS (head=3), got {text!r}")
    return node, int(value)


def cmd_transfer(args: argparse.Namespace) -> int:
    from .compiler import compile_graph
    from .errors import GraphError, WorkbenchError
    from .fileio import refuse_overwriting_inputs
    from .project import load_project, save_project
    from .training.transfer import TransferError, read_source, transfer
    from .weights import save_weights

    project = load_project(args.project)
    graph = project.graph
    skip = list(dict.fromkeys(_names(args.skip or "")))
    try:
        if args.head:  # a new head: its size changes and it is never loaded
            node, outputs = args.head
            graph.set_params(graph.by_name(node).id, {"out_features": outputs})
            skip = list(dict.fromkeys([*skip, node]))
        for name in _names(args.freeze or ""):
            graph.set_train(graph.by_name(name).id, {"frozen": True})
        for nodes, scale in args.lr_scale or []:
            for name in nodes:
                graph.set_train(graph.by_name(name).id, {"lr_scale": scale})
    except GraphError as exc:
        raise TransferError(f"{args.project}: {exc}") from None
    assert project.path is not None
    source = Path(args.source)
    # stored relative to the project when it can be, so the pair moves together
    try:
        stored = os.path.relpath(source.resolve(), project.path.parent)
    except ValueError:  # another drive (Windows)
        stored = str(source.resolve())
    compiled = compile_graph(graph)
    report = transfer(graph, compiled, compiled.module, read_source(source.resolve()), tuple(skip))
    project.training["init_from"] = stored
    project.training["init_skip"] = ",".join(skip)
    if args.weights:
        target = project.path.with_suffix(".safetensors")
        refuse_overwriting_inputs([("the project's weights", target)], [("the source", source)])
        save_weights(compiled.module, target, {"source": source.name})
        project.weights = target.name
    try:
        save_project(project)
    except OSError as exc:
        raise WorkbenchError(f"{project.path}: cannot save ({exc})") from None
    if args.json:
        out: dict[str, Any] = report.as_dict()
        out["init_from"] = stored
        print(json.dumps(out, indent=2))
    else:
        print(report.text())
        print(f"{project.path.name}: training starts from {stored}"
              + (f" (skipping {', '.join(skip)})" if skip else "")
              + (f"; weights written to {project.weights}" if args.weights else ""))
    return 0


def add_parser(sub: Any) -> None:
    """The ``transfer`` subcommand."""
    p = sub.add_parser("transfer", help="start a project from another model's weights (nodes matched by name and "
                       "shape), freeze nodes, scale their learning rates, replace the head")
    p.add_argument("project", help="project file (.json); it is edited and saved")
    p.add_argument("--from", dest="source", required=True, metavar="SOURCE",
                   help="a project (.json: its newest run's best checkpoint, else its weights), a run folder, "
                   "a .safetensors weights file or checkpoint, or an .onnx file")
    p.add_argument("--skip", metavar="NODES", help="nodes not to load even when they match (comma-separated)")
    p.add_argument("--head", type=_head, metavar="NODE=OUTPUTS",
                   help="replace the head: set the Linear node's out_features and train it afresh (e.g. head=3)")
    p.add_argument("--freeze", metavar="NODES", help="freeze these nodes (comma-separated)")
    p.add_argument("--lr-scale", type=_scale, action="append", dest="lr_scale", metavar="NODES=SCALE",
                   help="these nodes learn at SCALE x the learning rate (e.g. conv1,conv2=0.1); repeatable")
    p.add_argument("--weights", action="store_true",
                   help="also write the loaded weights as the project's weights file (for export before training)")
    p.add_argument("--json", action="store_true", help="the report as JSON")
    p.set_defaults(func=cmd_transfer)
