"""Reusable blocks: a named subgraph used as one node.

A block *definition* (:class:`BlockDef`) is a graph whose Input nodes are the
block's input ports and whose Output nodes are its output ports, plus the
parameters it exposes (each one sets one or more parameters of nodes inside).
A project keeps its definitions in a :class:`BlockLibrary`; a block *instance*
is an ordinary node whose type is the block's id.

Everything downstream reads an instance through a :class:`LayerSpec` generated
from its definition, so shape inference, the compiler, the inspector and the
palette treat it like any layer: its shape rule infers the inside with the
shapes the instance is fed; its module is the inside compiled to a
``GraphModule`` of its own (``state_dict`` keys ``block1.conv1.weight``).

Editing a definition updates every instance: the library tells each graph that
holds instances, and they re-infer.  An edit that would break an instance
elsewhere (deleting a block Input whose port is wired, removing a node whose
parameter is exposed) is refused with the reason, like any other graph edit.
"""

from __future__ import annotations

import dataclasses
import operator
import re
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from .errors import CycleError, GraphError, ParamError, PortError, UnknownLayerError
from .graph import Graph, GraphEvent, Node
from .layers import REGISTRY, LayerShapeError, LayerSpec, Param, Shape
from .layers.spec import Emitter
from .textcheck import text_problem

if TYPE_CHECKING:
    from .compiler import Compiled

IDENT = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
CATEGORY = "Blocks"


class BlockError(GraphError):
    """A change to the block library was refused; nothing was changed."""


@dataclass(frozen=True)
class BlockParam:
    """A parameter a block exposes on its instances.

    Attributes:
        name: the key in an instance's ``params`` (an identifier).
        targets: ``(inner node id, parameter)`` pairs it sets; all of one kind.
        doc: one line for the inspector (default: the first target's doc).
    """

    name: str
    targets: tuple[tuple[str, str], ...]
    doc: str = ""

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "doc": self.doc, "targets": [list(t) for t in self.targets]}


def _freeze(value: Any) -> Any:
    if isinstance(value, (list, tuple)):
        return tuple(_freeze(v) for v in value)
    if isinstance(value, dict):
        return tuple(sorted((k, _freeze(v)) for k, v in value.items()))
    return value


@dataclass
class _Resolved:
    """The inside of one instance: its shapes and count, or the first error inside."""

    outputs: list[Shape] = field(default_factory=list)
    count: int = 0
    error: str | None = None
    param: str | None = None
    graph: Graph | None = None
    bound: dict[str, Shape] = field(default_factory=dict)


@dataclass(frozen=True, eq=False)
class BlockCall:
    """How the compiler builds an instance: the inside, compiled to its own module.

    ``source()`` names the class; the PyTorch source exporter writes that class
    out from :meth:`compile` (see ``workbench.export.python_source``).
    """

    block_id: str
    graph: Graph
    bound: dict[str, Shape]

    @property
    def class_name(self) -> str:
        return self.block_id

    def compile(self) -> Compiled:
        from .compiler import compile_graph

        return compile_graph(self.graph, class_name=self.class_name, bound_inputs=self.bound)

    def instantiate(self) -> Any:
        return self.compile().module

    def source(self) -> str:
        return f"{self.class_name}()"


class BlockGraph(Graph):
    """The inside of a block.  Refuses edits that would break instances elsewhere."""

    def __init__(self, library: BlockLibrary, block_id: str) -> None:
        super().__init__(library)
        self.block_id = block_id

    @property
    def _lib(self) -> BlockLibrary:
        assert isinstance(self.library, BlockLibrary)
        return self.library

    def check_add(self, type_id: str) -> None:
        if type_id == self.block_id:
            raise CycleError(f'the block "{self.block_id}" cannot contain itself')
        if type_id in self._lib.defs and self.block_id in self._lib.dependencies(type_id):
            raise CycleError(f'the block "{self.block_id}" cannot contain "{type_id}", which contains it')

    def check_remove(self, node_id: str) -> None:
        block = self._lib.defs.get(self.block_id)
        if block is None or block.graph is not self:
            return
        node = self.node(node_id)
        for bp in block.params:
            for nid, key in bp.targets:
                if nid == node_id:
                    raise BlockError(f'"{node.name}" sets the block parameter "{bp.name}" ({key}) of {self.block_id}: '
                                     "stop exposing it first", node=node.name)
        role = node.spec.role
        if role in ("input", "output"):
            wired = self._lib.wired_ports(self.block_id, node.name, role)
            if wired:
                raise PortError(f'"{node.name}" is the {role} port of {self.block_id}, wired at {wired[0]}: '
                                "disconnect it there first", node=node.name)

    def check_rename(self, node_id: str, name: str) -> None:
        block = self._lib.defs.get(self.block_id)
        if block is None or block.graph is not self:
            return
        node = self.node(node_id)
        role = node.spec.role
        if role in ("input", "output"):
            wired = self._lib.wired_ports(self.block_id, node.name, role)
            if wired:
                raise PortError(f'renaming "{node.name}" renames a port of {self.block_id} that is wired at '
                                f"{wired[0]}: disconnect it there first", node=node.name)


class BlockDef:
    """One block: its inside (a :class:`BlockGraph`), display name, doc and exposed parameters.

    Treat as read-only: change its parameters and names through the library and
    its inside through its graph's mutators.
    """

    def __init__(self, block_id: str, name: str, graph: BlockGraph, params: Iterable[BlockParam] = (),
                 doc: str = "") -> None:
        self.id = block_id
        self.name = name
        self.doc = doc
        self.graph = graph
        self.params: tuple[BlockParam, ...] = tuple(params)
        self.library: BlockLibrary | None = None
        self.listener: Callable[[GraphEvent], None] | None = None
        self._spec: LayerSpec | None = None
        self._cache: dict[Any, _Resolved] = {}

    # ------------------------------------------------------------------ the generated layer type
    def spec(self) -> LayerSpec:
        """The layer declaration instances are read through (rebuilt after every edit)."""
        if self._spec is None:
            inputs = tuple(n.name for n in self.graph.inputs())
            outputs = tuple(n.name for n in self.graph.outputs())
            inner = sum(1 for n in self.graph if n.spec.role == "layer")
            ports = f"Inputs: {', '.join(inputs) or 'none'}. Outputs: {', '.join(outputs) or 'none'}."
            doc = f"{self.doc} " if self.doc else ""
            self._spec = LayerSpec(
                id=self.id,
                name=self.name,
                category=CATEGORY,
                doc=f"{doc}A block of {inner} layer{'s' if inner != 1 else ''}. {ports}",
                infer=self._infer,
                params=tuple(self.param_decl(bp) for bp in self.params),
                inputs=inputs,
                outputs=outputs,
                count=lambda p, ins: self.resolve(p, ins).count,
                build=self._build,
                emit=_multi_output_emit(len(outputs)) if len(outputs) > 1 else None,
                key_params=tuple(bp.name for bp in self.params[:3]),
            )
        return self._spec

    def param_decl(self, bp: BlockParam) -> Param:
        """The declaration of an exposed parameter: its first target's, renamed, with
        the value inside the definition as default."""
        nid, key = bp.targets[0]
        node = self.graph.node(nid)
        decl = node.spec.param(key)
        return dataclasses.replace(decl, name=bp.name, default=node.params[key], doc=bp.doc or decl.doc)

    def exposed_as(self, node_id: str, key: str) -> str | None:
        """The block parameter that sets ``key`` of the inner node, if any."""
        for bp in self.params:
            if (node_id, key) in bp.targets:
                return bp.name
        return None

    def _infer(self, params: dict[str, Any], shapes: list[Shape]) -> list[Shape]:
        r = self.resolve(params, shapes)
        if r.error is not None:
            raise LayerShapeError(r.error, param=r.param)
        return list(r.outputs)

    def _build(self, params: dict[str, Any], shapes: list[Shape]) -> BlockCall:
        r = self.resolve(params, shapes)
        assert r.graph is not None, "build is only called on an instance that inferred"
        return BlockCall(self.id, r.graph, r.bound)

    # ------------------------------------------------------------------ one instance's inside
    def instance_graph(self, params: dict[str, Any]) -> Graph:
        """A copy of the inside with an instance's exposed parameter values applied.

        Raises:
            ParamError / GraphError: a value one of the targets refuses.
        """
        g = self.graph.copy()
        for bp in self.params:
            if bp.name in params:
                for nid, key in bp.targets:
                    if g.nodes[nid].params[key] == params[bp.name]:
                        continue
                    try:
                        g.set_params(nid, {key: params[bp.name]})
                    except GraphError as exc:
                        detail = str(exc).split(": ", 1)[-1]
                        raise ParamError(f'{bp.name}={params[bp.name]!r} does not suit "{g.nodes[nid].name}".{key} '
                                         f"inside the block: {detail}", param=bp.name) from None
        return g

    def resolve(self, params: dict[str, Any], shapes: list[Shape]) -> _Resolved:
        """Output shapes, parameter count and inside (with its values) of an instance, or the
        first error inside; cached per parameter values and input shapes."""
        key = (_freeze(params), _freeze(shapes))
        hit = self._cache.get(key)
        if hit is None:
            hit = self._resolve(params, shapes)
            if len(self._cache) >= 256:
                self._cache.clear()
            self._cache[key] = hit
        return hit

    def _resolve(self, params: dict[str, Any], shapes: list[Shape]) -> _Resolved:
        from .shapes import ShapeInference

        try:
            g = self.instance_graph(params)
        except ParamError as exc:
            return _Resolved(error=str(exc), param=exc.param)
        bound = {n.id: tuple(s) for n, s in zip(g.inputs(), shapes, strict=False)}
        si = ShapeInference(g, live=False, bound_inputs=bound)
        si.update()
        if not g.outputs():
            return _Resolved(error="the block has no Output node inside (open it and add one)")
        errors = si.errors()
        if errors:
            e = errors[0]
            return _Resolved(error=f"inside the block, {e}", param=self.exposed_as(e.node_id, e.param or ""))
        outs = [si.info(o.id).inputs["x"] for o in g.outputs()]
        if any(s is None for s in outs):
            return _Resolved(error="inside the block, an Output's shape is unknown")
        return _Resolved(outputs=outs, count=si.total_params(), graph=g, bound=bound)  # type: ignore[arg-type]

    def invalidate(self) -> None:
        self._spec = None
        self._cache.clear()

    # ------------------------------------------------------------------ serialisation
    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "doc": self.doc, "params": [bp.to_dict() for bp in self.params],
                "graph": self.graph.to_dict()}


def free_id(ident: str, taken: set[str]) -> str:
    """``ident``, or ``ident`` with a number (``ResBlock2``), not in ``taken`` nor the catalogue."""
    if ident not in taken and ident not in REGISTRY:
        return ident
    stem = ident.rstrip("0123456789") or ident
    i = 2
    while f"{stem}{i}" in taken or f"{stem}{i}" in REGISTRY:
        i += 1
    return f"{stem}{i}"


def _multi_output_emit(count: int) -> Callable[[Emitter, dict[str, Any], list[Shape], list[Any]], list[Any]]:
    def emit(em: Emitter, params: dict[str, Any], shapes: list[Shape], xs: list[Any]) -> list[Any]:
        result = em.call_module(*xs)
        return [em.call_function(operator.getitem, result, i) for i in range(count)]

    return emit


class BlockLibrary:
    """A project's block definitions, by id (in palette order).

    ``host_graphs`` returns the project's own graphs by label (``{"the model":
    graph}``); the library adds its definitions' graphs, so a change reaches
    every instance wherever it is.
    """

    def __init__(self) -> None:
        self.defs: dict[str, BlockDef] = {}
        self.host_graphs: Callable[[], dict[str, Graph]] = dict
        self._listeners: list[Callable[[str, str], None]] = []

    # ------------------------------------------------------------------ observers
    def subscribe(self, listener: Callable[[str, str], None]) -> None:
        """``listener(kind, block_id)``: kind is added, removed, renamed (name or doc) or changed
        (anything else: it fires on every edit inside a block, so keep such listeners cheap)."""
        self._listeners.append(listener)

    def unsubscribe(self, listener: Callable[[str, str], None]) -> None:
        if listener in self._listeners:
            self._listeners.remove(listener)

    def _emit(self, kind: str, block_id: str) -> None:
        for listener in list(self._listeners):
            listener(kind, block_id)

    # ------------------------------------------------------------------ queries
    def spec(self, type_id: str) -> LayerSpec | None:
        block = self.defs.get(type_id)
        return block.spec() if block is not None else None

    def __contains__(self, block_id: object) -> bool:
        return block_id in self.defs

    def __iter__(self) -> Iterator[BlockDef]:
        return iter(list(self.defs.values()))

    def __len__(self) -> int:
        return len(self.defs)

    def graphs(self) -> dict[str, Graph]:
        """Every graph that may hold instances, by a label for messages."""
        out = dict(self.host_graphs())
        out.update({f'block "{b.id}"': b.graph for b in self.defs.values()})
        return out

    def uses(self, block_id: str) -> list[tuple[str, Graph, Node]]:
        """``(where, graph, node)`` for every instance of the block."""
        return [(label, g, n) for label, g in self.graphs().items() for n in g if n.type == block_id]

    def wired_ports(self, block_id: str, port: str, role: str) -> list[str]:
        """Where an instance's port ``port`` is wired (``'"res1" in the model'``)."""
        found = []
        for label, g, n in self.uses(block_id):
            edges = g.edges_into(n.id) if role == "input" else g.edges_from(n.id)
            if any((e.dst_port if role == "input" else e.src_port) == port for e in edges):
                found.append(f'"{n.name}" in {label}')
        return found

    def dependencies(self, block_id: str) -> set[str]:
        """Blocks used inside ``block_id``, directly or through other blocks."""
        seen: set[str] = set()
        stack = [block_id]
        while stack:
            b = self.defs.get(stack.pop())
            if b is None:
                continue
            for n in b.graph:
                if n.type in self.defs and n.type not in seen:
                    seen.add(n.type)
                    stack.append(n.type)
        return seen

    def new_id(self, base: str) -> str:
        """A free block id derived from ``base`` (a name typed by the user)."""
        words = re.findall(r"[A-Za-z0-9]+", base)
        ident = "".join(w[:1].upper() + w[1:] for w in words) or "Block"
        return free_id(ident if ident[0].isalpha() else f"Block{ident}", set(self.defs))

    # ------------------------------------------------------------------ changes
    def validate_id(self, block_id: str) -> None:
        if not isinstance(block_id, str) or not IDENT.fullmatch(block_id):
            raise BlockError(f"a block id must be an identifier (letters, digits, _), got {block_id!r}")
        if block_id in REGISTRY:
            raise BlockError(f'"{block_id}" is a layer type of the catalogue; choose another block id')
        if block_id in self.defs:
            raise BlockError(f'a block "{block_id}" already exists')

    def add(self, block: BlockDef, index: int | None = None) -> None:
        """Add a definition (its inside may use blocks already in the library).

        Raises:
            BlockError: bad or taken id, unknown nested block, bad exposed parameters.
        """
        self.validate_id(block.id)
        if not isinstance(block.graph, BlockGraph) or block.graph.block_id != block.id:
            raise BlockError(f'internal: the inside of "{block.id}" must be a BlockGraph for it')
        block.graph.library = self
        for n in block.graph:
            n.library = self
            if n.type not in REGISTRY and n.type not in self.defs:
                raise UnknownLayerError(f'"{n.name}" in block "{block.id}" uses the unknown block "{n.type}"',
                                        node=n.name)
        _check_params(block, block.params)
        block.library = self
        items = list(self.defs.items())
        items.insert(len(items) if index is None else index, (block.id, block))
        self.defs = dict(items)
        block.listener = self._on_inner_event(block)
        block.graph.subscribe(block.listener)
        block.invalidate()
        self._emit("added", block.id)

    def remove(self, block_id: str) -> tuple[int, BlockDef]:
        """Remove an unused definition; returns its index and itself (for undo).

        Raises:
            BlockError: the block has instances.
        """
        block = self.defs.get(block_id)
        if block is None:
            raise BlockError(f'no block "{block_id}"')
        used = self.uses(block_id)
        if used:
            label, _, node = used[0]
            raise BlockError(f'the block "{block_id}" is used by "{node.name}" in {label}'
                             + (f" and {len(used) - 1} more" if len(used) > 1 else ""))
        index = list(self.defs).index(block_id)
        del self.defs[block_id]
        if block.listener is not None:
            block.graph.unsubscribe(block.listener)
            block.listener = None
        block.library = None
        self._emit("removed", block_id)
        return index, block

    def set_info(self, block_id: str, name: str | None = None, doc: str | None = None) -> tuple[str, str]:
        """Change the display name and doc; returns the old ones."""
        block = self._get(block_id)
        if name is not None and not name.strip():
            raise BlockError("a block name cannot be empty")
        problem = (text_problem(name) if name is not None else None) or (
            text_problem(doc, multiline=True) if doc is not None else None)
        if problem:
            raise BlockError(f"the block {'name' if name is not None and text_problem(name) else 'doc'} {problem}")
        old = (block.name, block.doc)
        block.name = name.strip() if name is not None else block.name
        block.doc = doc if doc is not None else block.doc
        self.changed(block_id, "renamed")
        return old

    def set_params(self, block_id: str, params: Iterable[BlockParam]) -> list[tuple[Graph, str, dict[str, Any]]]:
        """Replace the exposed parameters; instances keep the values of parameters that
        stay (others take their defaults).  Returns the instances' old parameters, for
        :meth:`restore_instance_params`.

        Raises:
            BlockError: a name or target is invalid, or another block exposes a
                parameter that would disappear.
        """
        block = self._get(block_id)
        params = tuple(params)
        _check_params(block, params)
        gone = {bp.name for bp in block.params} - {bp.name for bp in params}
        for other in self.defs.values():
            for bp in other.params:
                for nid, key in bp.targets:
                    node = other.graph.nodes.get(nid)
                    if node is not None and node.type == block_id and key in gone:
                        raise BlockError(f'block "{other.id}" exposes "{key}" of its "{node.name}" as "{bp.name}": '
                                         "stop exposing it there first")
        old_instances = [(g, n.id, dict(n.params)) for _, g, n in self.uses(block_id)]
        block.params = params
        block.invalidate()
        decls = {bp.name: block.param_decl(bp) for bp in params}
        for g, nid, old in old_instances:
            values = {}
            for pname, decl in decls.items():
                try:
                    values[pname] = decl.validate(old[pname]) if pname in old else decl.default
                except ValueError:
                    values[pname] = decl.default
            g.reset_params(nid, values)
        self.changed(block_id)
        return old_instances

    @staticmethod
    def restore_instance_params(old: list[tuple[Graph, str, dict[str, Any]]]) -> None:
        for g, nid, params in old:
            if nid in g.nodes:
                g.reset_params(nid, params)

    def with_exposed(self, block_id: str, node_id: str, key: str, name: str, doc: str = "") -> tuple[BlockParam, ...]:
        """The exposed parameters after exposing ``key`` of an inner node as ``name`` (a new
        parameter, or another target of an existing one of the same kind); nothing changes."""
        old = self._get(block_id).params
        existing = next((bp for bp in old if bp.name == name), None)
        if existing is None:
            return (*old, BlockParam(name, ((node_id, key),), doc))
        return tuple(dataclasses.replace(bp, targets=(*bp.targets, (node_id, key))) if bp is existing else bp
                     for bp in old)

    def without_exposed(self, block_id: str, node_id: str, key: str) -> tuple[BlockParam, ...]:
        """The exposed parameters after no longer exposing ``key`` of an inner node."""
        new = []
        for bp in self._get(block_id).params:
            targets = tuple(t for t in bp.targets if t != (node_id, key))
            if targets:
                new.append(dataclasses.replace(bp, targets=targets))
        return tuple(new)

    def expose(self, block_id: str, node_id: str, key: str, name: str, doc: str = "") -> tuple[BlockParam, ...]:
        """Expose ``key`` of an inner node as the block parameter ``name``; returns the old list."""
        old = self._get(block_id).params
        self.set_params(block_id, self.with_exposed(block_id, node_id, key, name, doc))
        return old

    def unexpose(self, block_id: str, node_id: str, key: str) -> tuple[BlockParam, ...]:
        """Stop exposing ``key`` of an inner node; returns the old list."""
        old = self._get(block_id).params
        self.set_params(block_id, self.without_exposed(block_id, node_id, key))
        return old

    def changed(self, block_id: str, kind: str = "changed") -> None:
        """A definition changed: invalidate it, tell every graph holding instances, then the
        library's listeners (``kind`` is "renamed" when only its name or doc changed)."""
        block = self.defs.get(block_id)
        if block is None:
            return
        block.invalidate()
        for g in self.graphs().values():
            g.definition_changed(block_id)
        self._emit(kind, block_id)

    def _on_inner_event(self, block: BlockDef) -> Callable[[GraphEvent], None]:
        def listener(event: GraphEvent) -> None:
            if event.kind != "moved" and self.defs.get(block.id) is block:
                self.changed(block.id)

        return listener

    def _get(self, block_id: str) -> BlockDef:
        try:
            return self.defs[block_id]
        except KeyError:
            raise BlockError(f'no block "{block_id}"') from None

    # ------------------------------------------------------------------ serialisation
    def to_dict(self, ids: Iterable[str] | None = None) -> dict[str, Any]:
        """JSON form; with ``ids``, those blocks and every block they use (dependencies first)."""
        if ids is None:
            return {b.id: b.to_dict() for b in self.defs.values()}
        wanted: set[str] = set()
        for i in ids:
            wanted |= {i} | self.dependencies(i)
        return {b.id: b.to_dict() for b in self.defs.values() if b.id in wanted}


def _check_params(block: BlockDef, params: tuple[BlockParam, ...]) -> None:
    names: set[str] = set()
    used: set[tuple[str, str]] = set()
    for bp in params:
        if not isinstance(bp.name, str) or not IDENT.fullmatch(bp.name):
            raise BlockError(f"a block parameter name must be an identifier, got {bp.name!r}")
        if bp.name in names:
            raise BlockError(f'the block parameter "{bp.name}" is declared twice')
        names.add(bp.name)
        if not bp.targets:
            raise BlockError(f'the block parameter "{bp.name}" sets nothing')
        kinds = set()
        for nid, key in bp.targets:
            node = block.graph.nodes.get(nid)
            if node is None:
                raise BlockError(f'the block parameter "{bp.name}" targets no node with id {nid!r}')
            if node.spec.role != "layer":
                raise BlockError(f'the block parameter "{bp.name}" targets the {node.spec.role} "{node.name}": '
                                 "its shape comes from the instance")
            try:
                decl = node.spec.param(key)
            except KeyError:
                raise BlockError(f'the block parameter "{bp.name}" targets "{node.name}", which has no '
                                 f"parameter {key!r}") from None
            if (nid, key) in used:
                raise BlockError(f'"{node.name}".{key} is exposed twice')
            used.add((nid, key))
            kinds.add((decl.kind, getattr(decl, "length", None), getattr(decl, "choices", None)))
        if len(kinds) > 1:
            raise BlockError(f'the block parameter "{bp.name}" sets parameters of different kinds')


# --------------------------------------------------------------------------- building blocks in Python


def define_block(library: BlockLibrary, block_id: str, name: str, build: Callable[[Any], None],
                 exposed: dict[str, list[tuple[str, str]]] | None = None, doc: str = "",
                 param_docs: dict[str, str] | None = None) -> BlockDef:
    """Build a block with a :class:`~workbench.builder.GraphBuilder` and add it.

    Args:
        build: called with a builder over the block's inside; use ``b.input`` /
            ``b.output`` for its ports.
        exposed: block parameter -> ``(inner node name, parameter)`` targets.
    """
    from .builder import GraphBuilder

    graph = BlockGraph(library, block_id)
    b = GraphBuilder(graph)
    build(b)
    b.auto_layout()
    params = tuple(
        BlockParam(pname, tuple((graph.by_name(n).id, k) for n, k in targets), (param_docs or {}).get(pname, ""))
        for pname, targets in (exposed or {}).items()
    )
    block = BlockDef(block_id, name, graph, params, doc)
    library.add(block)
    return block
