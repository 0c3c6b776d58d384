"""``workbench privacy-fix``: make a project's model trainable with differential privacy.

    workbench privacy-fix P [-o OUT]

replaces each BatchNorm node by a GroupNorm node (the fix ``workbench check`` names when
``training.privacy`` is on) and writes the project atomically to OUT (default: P itself).
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from .cli_common import EXIT_OK, _load


def add_parser(sub: Any) -> None:
    p = sub.add_parser("privacy-fix", help="replace BatchNorm nodes by GroupNorm so that Opacus can train the "
                       "model with differential privacy")
    p.add_argument("project")
    p.add_argument("-o", "--output", help="where to write the fixed project (default: over the project)")
    p.set_defaults(func=cmd_privacy_fix)


def cmd_privacy_fix(args: argparse.Namespace) -> int:
    from .project import save_project
    from .training.privacy import BatchNormToGroupNorm

    project = _load(args.project)
    change = BatchNormToGroupNorm(project.graph)
    if not change.count:
        print(f"{args.project}: no BatchNorm node to replace")
        return EXIT_OK
    change.apply()
    out = Path(args.output) if args.output else Path(args.project)
    save_project(project, out)
    names = ", ".join(f'"{project.graph.node(i).name}"' for i in change.node_ids)
    print(f"replaced {change.count} BatchNorm node(s) by GroupNorm ({names}); wrote {out}")
    return EXIT_OK
