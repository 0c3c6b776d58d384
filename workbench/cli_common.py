"""What every ``workbench`` subcommand shares: exit statuses, the error line, loading a project,
tables.  Below both ``cli.py`` and ``cli_blocks.py`` (no import circle between them)."""

from __future__ import annotations

import argparse
import sys
from typing import Any

from .errors import ProjectError

EXIT_OK, EXIT_INVALID, EXIT_UNREADABLE = 0, 1, 2


def _fail(message: str, code: int) -> int:
    print(f"workbench: error: {message}", file=sys.stderr)
    return code


class _Unreadable(Exception):
    """The project file cannot be read: exit status 2."""


def _load(path: str) -> Any:
    from .project import load_project

    try:
        return load_project(path)
    except ProjectError as exc:
        raise _Unreadable(str(exc)) from None


def format_table(rows: list[list[str]], align_right: set[int] = frozenset()) -> str:  # type: ignore[assignment]
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    lines = []
    for j, r in enumerate(rows):
        cells = [c.rjust(w) if i in align_right else c.ljust(w) for i, (c, w) in enumerate(zip(r, widths, strict=True))]
        lines.append("  ".join(cells).rstrip())
        if j == 0:
            lines.append("  ".join("-" * w for w in widths))
    return "\n".join(lines)


def _positive_int(text: str) -> int:
    """An argparse type: a positive int, or a usage error naming what was given."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive int, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive int, got {value}")
    return value
