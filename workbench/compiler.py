"""Graph -> ``nn.Module`` by ``torch.fx`` code generation.

The compiler writes an ``fx.Graph`` whose ``forward`` is straight-line Python
(no loop over nodes at run time) and wraps it in a ``GraphModule``.  Submodule
names follow node names, so ``state_dict`` keys read like the canvas.  The
result is an ordinary module: it trains, saves, ``torch.compile``s and exports.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import torch
import torch.fx as fx
from torch import nn

from .analysis.cost import parameters_fit
from .analysis.dtypes import infer_dtypes
from .errors import CompileError, ShapeError
from .graph import Graph, python_identifier
from .layers import ModuleCall, Shape
from .layers.dims import INPUT_DTYPES
from .shapes import ShapeInference


def _reserved_names() -> frozenset[str]:
    """Identifiers a node may not take as its attribute or forward argument.

    Class attributes (``dir``) miss what ``__init__`` sets on the instance (``training``,
    ``_modules``, a GraphModule's ``meta``...), so a real instance of each is asked too.
    fx's generated code refers to a few globals of its own (``torch``, ``device``, ``inf``);
    the exported class adds ``load_weights``.  Keywords are python_identifier's concern.
    """
    import torch.fx.graph as fx_graph

    instance = fx.GraphModule(nn.Module(), fx.Graph())
    names = set(dir(nn.Module)) | set(dir(fx.GraphModule)) | set(vars(nn.Module())) | set(vars(instance))
    names |= set(getattr(fx_graph, "_custom_builtins", {})) | {"self", "torch", "nn", "operator", "load_weights"}
    return frozenset(names)


#: attribute names a submodule may not take (they would shadow nn.Module API or fx's names)
_RESERVED = _reserved_names()


@dataclass(frozen=True)
class InputSpec:
    """One model input: forward argument name, node name, symbolic shape, dtype."""

    arg: str
    node: str
    shape: Shape
    dtype: str


@dataclass
class Compiled:
    """The compiled module and what an exporter or trainer needs to know about it.

    Attributes:
        module: the ``GraphModule``.
        inputs: forward arguments in order.
        outputs: Output node names in the order ``forward`` returns them.
        output_shapes: their symbolic shapes.
        calls: constructor of every submodule, by attribute name (for source export):
            a :class:`ModuleCall`, or a block's call (``workbench.blocks.BlockCall``).
        attr_of: node id -> attribute / variable name.
        total_params: as inferred (equals ``sum(p.numel())``).
    """

    module: fx.GraphModule
    inputs: list[InputSpec]
    outputs: list[str]
    output_shapes: list[Shape]
    calls: dict[str, ModuleCall] = field(default_factory=dict)
    attr_of: dict[str, str] = field(default_factory=dict)
    total_params: int = 0
    owner: dict[str, str] = field(default_factory=dict)
    """fx node name -> the workbench node name whose code it is (for located runtime errors)."""

    def node_name_of_attr(self) -> dict[str, str]:
        """Submodule attribute -> node name."""
        return {attr: self.owner.get(attr, attr) for attr in self.calls}

    def example_inputs(self, batch: int = 2, seq: int = 5, vocab: int = 2) -> tuple[torch.Tensor, ...]:
        """Random inputs: symbolic batch -> ``batch``, other symbols -> ``seq``."""
        out = []
        for spec in self.inputs:
            dims = [batch if d == "N" else (d if isinstance(d, int) else seq) for d in spec.shape]
            if spec.dtype == "int64":
                out.append(torch.randint(0, vocab, dims))
            else:
                out.append(torch.randn(dims, dtype=INPUT_DTYPES[spec.dtype]))
        return tuple(out)


class _FxEmitter:
    """Implements :class:`workbench.layers.spec.Emitter` over an ``fx.Graph``."""

    def __init__(self, graph: fx.Graph, attr: str, owner: dict[str, str], node_name: str) -> None:
        self.graph = graph
        self.attr = attr
        self.owner = owner
        self.node_name = node_name

    def _own(self, node: fx.Node) -> fx.Node:
        self.owner[node.name] = self.node_name
        return node

    def call_module(self, *args: Any, **kwargs: Any) -> fx.Node:
        return self._own(self.graph.create_node("call_module", self.attr, args, kwargs, name=self.attr))

    def call_submodule(self, name: str, *args: Any, **kwargs: Any) -> fx.Node:
        target = f"{self.attr}.{name}"
        return self._own(self.graph.create_node("call_module", target, args, kwargs,
                                                name=f"{self.attr}_{name}"))

    def call_function(self, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> fx.Node:
        return self._own(self.graph.call_function(fn, args, kwargs))

    def call_method(self, name: str, *args: Any, **kwargs: Any) -> fx.Node:
        return self._own(self.graph.call_method(name, args, kwargs))

    def get_attr(self, name: str) -> fx.Node:
        """A tensor of this node's module (``self.cls_token.weight``): learned tensors that no
        module call returns (the Parameter node's)."""
        return self._own(self.graph.get_attr(f"{self.attr}.{name}"))


def assign_identifiers(graph: Graph) -> dict[str, str]:
    """Node id -> a unique Python identifier derived from the node's name."""
    used: set[str] = set()
    tried: dict[str, int] = {}  # base -> the last suffix it took (every earlier one is used)
    out: dict[str, str] = {}
    for node in graph:
        base = python_identifier(node.name)
        if base.startswith("__"):  # a class body would mangle self.__x into self._Class__x
            base = "n" + base
        if base in _RESERVED or re.fullmatch(r"_tensor_constant\d+", base):  # fx names its constants so
            base += "_"
        # go on from the last suffix this base took: names that all sanitise to one base
        # ("a+", "a-"...) would otherwise each count up from 1 (quadratic)
        i = tried.get(base, 1)
        ident = base if i == 1 else f"{base}_{i}"
        while ident in used:
            i += 1
            ident = f"{base}_{i}"
        tried[base] = i
        used.add(ident)
        out[node.id] = ident
    return out


def compile_graph(graph: Graph, shapes: ShapeInference | None = None, class_name: str = "WorkbenchModel",
                  bound_inputs: dict[str, Shape] | None = None, memory_budget: int | None = None) -> Compiled:
    """Compile ``graph`` into a module.

    A block instance becomes a submodule that is itself a compiled ``GraphModule``
    (its own straight-line ``forward``), so ``state_dict`` keys read
    ``block1.conv1.weight``, as in hand-written code with a block class.

    Args:
        graph: a graph with at least one Input and one Output.
        shapes: inference to reuse (must follow ``graph``); computed when None.
        class_name: name of the generated class.
        bound_inputs: Input node id -> the shape it is fed (a block's inside, see
            :class:`~workbench.shapes.ShapeInference`).
        memory_budget: bytes the parameters may take (default: this machine's memory).

    Returns:
        A :class:`Compiled` whose ``module`` is an ``fx.GraphModule``.

    Raises:
        CompileError: listing every located error (the same as shape inference), or the
            parameters' size when they cannot fit in memory (nothing is allocated then).
    """
    if shapes is None:
        si = ShapeInference(graph, live=False, bound_inputs=bound_inputs)
        si.update()
    else:
        si = shapes
    errors = list(si.errors())
    if not graph.inputs():
        errors.append(ShapeError("the graph has no Input node", "(graph)", ""))
    if not graph.outputs():
        errors.append(ShapeError("the graph has no Output node", "(graph)", ""))
    if not errors and bound_inputs is None:  # a block's inside was checked with its instance's dtypes
        errors += infer_dtypes(graph)[1]
    if not errors:
        too_big = parameters_fit(graph, si, memory_budget)
        errors += [too_big] if too_big is not None else []
    if errors:
        raise CompileError(errors)
    info = si.all()
    attr_of = assign_identifiers(graph)
    root = nn.Module()
    fxg = fx.Graph()
    env: dict[tuple[str, str], fx.Node] = {}
    calls: dict[str, ModuleCall] = {}
    inputs: list[InputSpec] = []
    outputs: list[tuple[str, fx.Node, Shape]] = []
    owner: dict[str, str] = {}

    # Placeholders first, in the graph's node order: that is forward's signature.
    for node in graph.inputs():
        attr = attr_of[node.id]
        env[(node.id, "y")] = fxg.placeholder(attr)  # the argument is `attr` (fx may name its value otherwise)
        inputs.append(InputSpec(attr, node.name, info[node.id].outputs["y"], node.params["dtype"]))

    for nid in graph.topological_order():
        node, ni, attr = graph.nodes[nid], info[nid], attr_of[nid]
        spec = node.spec
        if spec.role == "input":
            continue
        xs = []
        for port in node.input_ports:
            edge = graph.edge_into(nid, port)
            assert edge is not None  # shape inference refuses unconnected inputs
            xs.append(env[(edge.src, edge.src_port)])
        shapes_in = [ni.inputs[p] for p in node.input_ports]
        if spec.role == "output":
            outputs.append((node.name, xs[0], shapes_in[0]))  # type: ignore[arg-type]
            continue
        call = spec.build(node.params, shapes_in) if spec.build is not None else None  # type: ignore[arg-type]
        if call is not None:  # some layers need a module only in some settings (learned vs fixed)
            root.add_module(attr, call.instantiate())
            calls[attr] = call
        emitter = _FxEmitter(fxg, attr, owner, node.name)
        if spec.emit is not None:
            results = spec.emit(emitter, node.params, shapes_in, xs)  # type: ignore[arg-type]
        else:
            results = [emitter.call_module(*xs)]
        for port, value in zip(node.output_ports, results, strict=True):
            env[(nid, port)] = value

    # Outputs keep the graph's node order (not the topological one).
    order = {n.name: i for i, n in enumerate(graph.outputs())}
    outputs.sort(key=lambda o: order[o[0]])
    result = outputs[0][1] if len(outputs) == 1 else tuple(o[1] for o in outputs)
    fxg.output(result)
    module = fx.GraphModule(root, fxg, class_name=class_name)
    # Drop unused values (e.g. an LSTM's final state when only its sequence is wired).
    if module.graph.eliminate_dead_code():
        module.recompile()
    module.graph.lint()
    if any(spec.dtype == "float64" for spec in inputs):
        module.double()  # a float64 Input makes the whole model compute in float64 (see the Input layer)
    return Compiled(
        module=module,
        inputs=inputs,
        outputs=[o[0] for o in outputs],
        output_shapes=[o[2] for o in outputs],
        calls=calls,
        attr_of=attr_of,
        total_params=si.total_params(),
        owner=owner,
    )
