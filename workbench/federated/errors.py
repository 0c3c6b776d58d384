"""The federated package's error (its own module: the strategy and DP modules raise it too)."""

from __future__ import annotations

from ..errors import WorkbenchError


class FederatedError(WorkbenchError):
    """Federated training cannot start or failed; the message says where and why."""
