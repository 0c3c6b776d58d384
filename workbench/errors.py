"""Typed errors of the headless core.

Every error carries a location the user can act on: a node name, a parameter,
or a JSON path.  The GUI turns them into annotations; the CLI prints them and
exits non-zero.
"""

from __future__ import annotations


class WorkbenchError(Exception):
    """Base class of every error the core raises on purpose."""


class InputError(WorkbenchError):
    """An input file cannot be read, or is not a file of the kind expected (a project, weights,
    a model).  The command line exits with status 2.

    Attributes:
        file: the file, when known.
    """

    def __init__(self, message: str, file: str | None = None) -> None:
        super().__init__(message)
        self.file = file


class OutputError(WorkbenchError):
    """An output cannot be written where it was asked to go (it is one of the inputs, a directory,
    a device, unwritable...).  Nothing was changed there.  The command line exits with status 2."""


class GraphError(WorkbenchError):
    """A graph mutation was refused.  Nothing was changed.

    Attributes:
        node: name of the node the error is about (or None).
    """

    def __init__(self, message: str, node: str | None = None) -> None:
        super().__init__(message)
        self.node = node


class UnknownLayerError(GraphError):
    """A layer type that is not in the catalogue."""


class ParamError(GraphError):
    """A parameter value was refused by its declaration."""

    def __init__(self, message: str, node: str | None = None, param: str | None = None) -> None:
        super().__init__(message, node)
        self.param = param


class PortError(GraphError):
    """A connection names a port that does not exist or is already taken."""


class CycleError(GraphError):
    """A connection would close a cycle."""


class NameConflictError(GraphError):
    """A node name is empty or already used."""


class NodeNotFoundError(GraphError):
    """An id that names no node of the graph."""


class ShapeError(WorkbenchError):
    """Shape inference failed at a node.

    Attributes:
        node: name of the node that causes the error.
        node_id: its stable id.
        param: the parameter at fault, when there is one.
    """

    def __init__(self, message: str, node: str, node_id: str, param: str | None = None) -> None:
        super().__init__(message)
        self.node = node
        self.node_id = node_id
        self.param = param


class CompileError(WorkbenchError):
    """The graph cannot be compiled; ``errors`` lists every located problem."""

    def __init__(self, errors: list[ShapeError]) -> None:
        lines = "\n".join(f"  - {e}" for e in errors)
        super().__init__(f"the graph has {len(errors)} error(s):\n{lines}")
        self.errors = errors


class ProjectError(InputError):
    """A project (or block, or clipboard) file cannot be read or is invalid.

    Attributes:
        path: JSON path of the offending value (``graph.nodes[3].params.kernel_size``),
            empty for file-level problems.
        file: the file name, when known.
    """

    def __init__(self, message: str, path: str = "", file: str | None = None) -> None:
        self.path = path
        self.detail = message
        where = ": ".join(p for p in (file, path) if p)
        super().__init__(f"{where}: {message}" if where else message, file)
