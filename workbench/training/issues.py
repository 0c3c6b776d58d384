"""A located problem found before training starts (pre-flight and the checks of privacy,
self-supervised tasks and transfer all report them)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Issue:
    """One located problem: a node (and parameter) or a JSON path of the project."""

    message: str
    node: str | None = None
    param: str | None = None
    path: str | None = None

    def as_dict(self) -> dict[str, Any]:
        return {"node": self.node, "message": self.message, "param": self.param, "path": self.path}
