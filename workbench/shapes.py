"""Shape inference with a symbolic batch dimension, incremental under edits.

Every output port gets a shape, or its node gets a :class:`ShapeError` that
names the node, the parameter and what was expected vs received.  Nodes
downstream of an error are *unknown*, not errors, so a single mistake shows
once.  Subscribed to a graph, an edit marks only the edited node and its
descendants dirty; the next query re-infers just those.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from .errors import ShapeError
from .graph import Graph, GraphEvent
from .layers import LayerShapeError, Shape
from .layers.dims import fmt_shape


@dataclass
class NodeInfo:
    """What inference knows about one node.

    Attributes:
        status: ``"ok"``, ``"error"`` or ``"unknown"`` (an input is not known).
        inputs: shape per input port (None where unknown).
        outputs: shape per output port (empty unless ok).
        params: trainable parameter count (0 unless ok).
        error: the located error when status is ``"error"``.
    """

    status: str
    inputs: dict[str, Shape | None] = field(default_factory=dict)
    outputs: dict[str, Shape] = field(default_factory=dict)
    params: int = 0
    error: ShapeError | None = None


@dataclass(frozen=True)
class Warning_:
    """A problem that does not stop compilation (e.g. a dead branch)."""

    node: str
    node_id: str
    message: str


class ShapeInference:
    """Shapes and parameter counts for a graph, kept up to date incrementally.

    Args:
        graph: the graph to follow.
        live: subscribe to the graph's events (False: a one-shot snapshot that
            you refresh with :meth:`invalidate_all`).
        bound_inputs: Input node id -> the full shape it receives (batch
            included); how a block's inside sees the tensors its instance is fed.
            Other Inputs produce ``[N, *shape]`` from their parameter.
    """

    def __init__(self, graph: Graph, live: bool = True, bound_inputs: dict[str, Shape] | None = None) -> None:
        self.graph = graph
        self.bound_inputs = dict(bound_inputs or {})
        self._info: dict[str, NodeInfo] = {}
        self._dirty: set[str] = set(graph.nodes)
        self.last_updated: set[str] = set()
        if live:
            graph.subscribe(self._on_event)

    def close(self) -> None:
        """Stop following the graph."""
        try:
            self.graph.unsubscribe(self._on_event)
        except ValueError:
            pass

    # ------------------------------------------------------------------ events
    def _on_event(self, event: GraphEvent) -> None:
        if event.kind == "node_removed":
            self._info.pop(event.node or "", None)
            self._dirty.discard(event.node or "")
        elif event.kind in ("node_added", "edge_added", "edge_removed", "params_changed", "definition_changed"):
            if event.node in self.graph.nodes:
                self._dirty.add(event.node)  # type: ignore[arg-type]
        elif event.kind == "renamed":
            # messages downstream quote this name ('got [N, 784] from "flatten1"')
            self._dirty |= self.graph.successors(event.node)  # type: ignore[arg-type]

    def invalidate_all(self) -> None:
        self._dirty = set(self.graph.nodes)

    # ------------------------------------------------------------------ queries
    def info(self, node_id: str) -> NodeInfo:
        self.update()
        return self._info[node_id]

    def all(self) -> dict[str, NodeInfo]:
        """Info for every node, in the graph's node order."""
        self.update()
        return {nid: self._info[nid] for nid in self.graph.nodes}

    def errors(self) -> list[ShapeError]:
        """Every located error, in the graph's topological order."""
        self.update()
        if not any(i.error for i in self._info.values()):
            return []
        return [self._info[n].error for n in self.graph.topological_order() if self._info[n].error]  # type: ignore[misc]

    def total_params(self) -> int:
        self.update()
        return sum(i.params for i in self._info.values())

    def warnings(self) -> list[Warning_]:
        """Nodes whose results reach no Output; Inputs that feed nothing."""
        outputs = [n.id for n in self.graph.outputs()]
        if not outputs:
            return []
        # one walk up from all Outputs at once (not one per Output: O(V + E) with many)
        pred = self.graph._nx._pred
        live: set[str] = set(outputs)
        stack = list(outputs)
        while stack:
            for p in pred[stack.pop()]:
                if p not in live:
                    live.add(p)
                    stack.append(p)
        found = []
        for node in self.graph:
            if node.id not in live:
                what = "is not used by any Output" if node.spec.role != "input" else "feeds no Output"
                found.append(Warning_(node.name, node.id, f'{node.spec.name} "{node.name}" {what}'))
        return found

    # ------------------------------------------------------------------ inference
    def update(self) -> set[str]:
        """Re-infer dirty nodes and everything downstream; returns the ids updated."""
        if not self._dirty:
            self.last_updated = set()
            return set()
        succ = self.graph._nx._succ  # adjacency: id -> {successor: edges}
        todo: set[str] = {n for n in self._dirty if n in self.graph.nodes}
        stack = list(todo)
        while stack:  # one traversal from all dirty nodes: everything downstream
            for nxt in succ[stack.pop()]:
                if nxt not in todo:
                    todo.add(nxt)
                    stack.append(nxt)
        roots = self._dirty & todo
        self._dirty.clear()
        # Early cut-off: a node is re-inferred only when it was edited or an input
        # of it changed, so an edit that keeps its output shape stops right there.
        pred = self.graph._nx._pred
        changed: set[str] = set()
        updated: set[str] = set()
        for nid in self._order(todo):
            if nid not in roots and not any(p in changed for p in pred[nid]):
                continue
            old = self._info.get(nid)
            new = self._infer_node(nid)
            self._info[nid] = new
            updated.add(nid)
            if old is None or _signature(old) != _signature(new):
                changed.add(nid)
        self.last_updated = updated
        return updated

    def _order(self, todo: set[str]) -> list[str]:
        """Kahn's algorithm over ``todo`` only (it is closed under successors)."""
        pred = self.graph._nx._pred
        succ = self.graph._nx._succ
        indeg = {n: sum(1 for p in pred[n] if p in todo) for n in todo}
        ready = [n for n, d in indeg.items() if d == 0]
        out: list[str] = []
        while ready:
            n = ready.pop()
            out.append(n)
            for m in succ[n]:
                indeg[m] -= 1
                if indeg[m] == 0:
                    ready.append(m)
        return out

    def _infer_node(self, nid: str) -> NodeInfo:
        g = self.graph
        node = g.nodes[nid]
        spec = node.spec
        ins: dict[str, Shape | None] = {}
        sources: dict[str, str] = {}
        missing: list[str] = []
        for port in node.input_ports:
            edge = g.edge_into(nid, port)
            if edge is None:
                ins[port] = None
                missing.append(port)
                continue
            src_info = self._info.get(edge.src)
            sources[port] = g.nodes[edge.src].name
            ins[port] = src_info.outputs.get(edge.src_port) if src_info and src_info.status == "ok" else None
        label = f'{spec.name} "{node.name}"'
        if missing:
            what = f"input {missing[0]!r} is" if len(node.input_ports) > 1 else "its input is"
            err = ShapeError(f"{label}: {what} not connected", node.name, nid)
            return NodeInfo("error", ins, error=err)
        if any(s is None for s in ins.values()):
            return NodeInfo("unknown", ins)
        if nid in self.bound_inputs:
            return NodeInfo("ok", ins, {"y": tuple(self.bound_inputs[nid])}, 0)
        shapes: list[Shape] = list(ins.values())  # type: ignore[arg-type]
        try:
            outs = spec.infer(node.params, shapes)
            count = spec.param_count(node.params, shapes)
        except LayerShapeError as exc:
            return NodeInfo("error", ins, error=self._located(exc, label, node.name, nid, node.input_ports, shapes, sources))
        return NodeInfo("ok", ins, dict(zip(node.output_ports, outs, strict=True)), int(count))

    @staticmethod
    def _located(
        exc: LayerShapeError,
        label: str,
        name: str,
        nid: str,
        ports: tuple[str, ...],
        shapes: list[Shape],
        sources: dict[str, str],
    ) -> ShapeError:
        port_i = exc.port if exc.port is not None else 0
        port = ports[port_i] if ports else ""
        on = f" on input {port!r}" if len(ports) > 1 else ""
        got = f'got {fmt_shape(shapes[port_i])} from "{sources.get(port, "?")}"' if shapes else ""
        if exc.expected:
            text = f"{label}: expects {exc.expected}{on}, {got}"
        elif exc.port is not None and shapes:
            text = f"{label}: {exc.message}{on} ({got})"
        else:
            text = f"{label}: {exc.message}"
        return ShapeError(text, name, nid, exc.param)


def _signature(info: NodeInfo) -> tuple:
    return (info.status, info.outputs, str(info.error) if info.error else None)


def infer(graph: Graph) -> ShapeInference:
    """One-shot inference over ``graph`` (not following later edits)."""
    si = ShapeInference(graph, live=False)
    si.update()
    return si
