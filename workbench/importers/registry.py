"""What ONNX converters see and what they return, and the registry they join by decorator.

Modelled on onnx2torch: a converter is a small pure function registered for one ONNX op and a
range of opsets.  It receives an immutable :class:`OnnxNode` (attributes, inputs and outputs
with their inferred shapes, element types and constant values, the opset, the module scope the
exporter recorded) and returns an :class:`Emission`: the catalogue layers it creates, which
ONNX tensors feed their ports and which ONNX tensors their ports produce.  Nothing is shared or
mutated; the mapper (``mapping.py``) applies emissions to the graph.

A *recogniser* maps a pattern of several ONNX nodes (MatMul + Add -> Linear, the transposes
around a recurrent layer, an attention block) to layers.  It is registered the same way,
anchored at one op, receives the node and a read-only :class:`ModelView` of the whole model,
and returns an emission that *claims* the ONNX nodes it consumes, or None when the pattern
does not match.  Recognisers run before converters, higher ``priority`` first.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any, Protocol

import numpy as np

Dim = int | str
"""A dimension: a size, or a symbol (``"batch"``, ``"T"``; ``"?"`` when unknown)."""

BATCH = "<batch>"
"""The key of the batch size in ``OnnxNode.sizes`` (whatever the model calls its batch dimension)."""

CONST, SHAPE, DATA = "const", "shape", "data"
"""What an ONNX tensor holds: a value known at import time, a value computed from the shapes
of data tensors only (a Reshape target, zeros of the batch size), or data."""


class Unsupported(Exception):
    """This node (or pattern) has no catalogue equivalent; the message says which part."""


@dataclass(frozen=True)
class Value:
    """One ONNX tensor as the importer knows it.

    Attributes:
        name: the tensor's name in the model.
        shape: inferred dimensions (None when inference gave none).
        elem: ONNX element type (``onnx.TensorProto.FLOAT``...; 0 unknown).
        kind: :data:`CONST`, :data:`SHAPE` or :data:`DATA`.
        const: the value when ``kind`` is :data:`CONST` (read-only).
        probes: for a :data:`SHAPE` tensor, its value at two settings of the model inputs'
            symbolic sizes (batch 2 then 3, other lengths 5 then 7...): equal values do not depend
            on the sizes (a constant), values that follow the batch are the batch.
    """

    name: str
    shape: tuple[Dim, ...] | None
    elem: int
    kind: str
    const: np.ndarray | None = None
    probes: tuple[np.ndarray, np.ndarray] | None = None
    ran: tuple[tuple[int, ...], tuple[int, ...]] | None = None
    """For a data tensor whose shape inference lost: its shape at the two probe settings, from a run."""
    shared: bool = False
    """A data tensor computed from shared model inputs only (read without a batch dimension: every
    ONNX axis is a real one, and one tensor serves every sample)."""

    def fixed(self) -> np.ndarray | None:
        """The value when it is known at import time: a constant, or a shape-derived value that is
        the same whatever the input sizes."""
        if self.const is not None:
            return self.const
        if self.probes is not None:
            a, b = self.probes
            if a.shape == b.shape and np.array_equal(a, b):
                return a
        return None

    @property
    def rank(self) -> int | None:
        return None if self.shape is None else len(self.shape)

    def sample_shape(self) -> tuple[int, ...] | None:
        """The dims after the batch when all are known sizes (else None)."""
        if self.shape is None or not all(isinstance(d, int) and d > 0 for d in self.shape[1:]):
            return None
        return tuple(int(d) for d in self.shape[1:])  # type: ignore[arg-type]


@dataclass(frozen=True)
class OnnxNode:
    """An ONNX node, read-only.

    Attributes:
        index: position in the model's node list.
        op: op type; ``domain`` its domain ("" is the default one).
        name: the node's name ("" when it has none); ``label`` names it in messages
            (``"#12 Mul"`` for a node without a name).
        attrs: attributes (strings decoded).
        inputs: one :class:`Value` per input, None where an optional input is omitted.
        outputs: one :class:`Value` per output, None where omitted.
        opset: the model's version of the node's domain.
        scope: the module path the exporter recorded (``("encoder", "encoder.layers.0",
            "encoder.layers.0.self_attn")``); empty when unknown.
        classes: the module classes along ``scope`` when the exporter recorded them.
        sizes: the two settings of the inputs' symbolic sizes the ``probes`` of shape-derived
            values were computed at.
    """

    index: int
    op: str
    domain: str
    name: str
    attrs: Mapping[str, Any]
    inputs: tuple[Value | None, ...]
    outputs: tuple[Value | None, ...]
    opset: int
    scope: tuple[str, ...] = ()
    classes: tuple[str, ...] = ()
    sizes: tuple[Mapping[str, int], Mapping[str, int]] = ({}, {})

    @property
    def label(self) -> str:
        return self.name if self.name else f"#{self.index} {self.op}"

    def attr(self, key: str, default: Any = None) -> Any:
        return self.attrs.get(key, default)

    def input(self, i: int) -> Value | None:
        return self.inputs[i] if i < len(self.inputs) else None

    def data_inputs(self) -> list[Value]:
        return [v for v in self.inputs if v is not None and v.kind == DATA]

    def const_input(self, i: int, what: str) -> np.ndarray:
        """Input ``i``'s constant value, or :class:`Unsupported` naming ``what``."""
        v = self.input(i)
        value = v.fixed() if v is not None else None
        if value is None:
            raise Unsupported(f"{what} is computed at run time, not a constant")
        return value

    def optional_const(self, i: int) -> np.ndarray | None:
        """Input ``i``'s constant value; None when the input is omitted.

        Raises:
            Unsupported: the input is given but not a constant.
        """
        v = self.input(i)
        if v is None:
            return None
        value = v.fixed()
        if value is None:
            raise Unsupported(f"input {i} is computed at run time, not a constant")
        return value

    def hint(self, weight: int | None = None) -> str:
        """A readable name for the layer: the weight's module (``conv1.weight`` -> ``conv1``) or the
        node's own name."""
        if weight is not None:
            w = self.input(weight)
            if w is not None and w.name.endswith((".weight", ".bias", "_weight")):
                return w.name.rsplit(".", 1)[0] if "." in w.name else w.name
        if self.scope and self.scope[-1]:
            return self.scope[-1]
        return self.name or (self.outputs[0].name if self.outputs and self.outputs[0] else self.op)


@dataclass(frozen=True)
class Out:
    """An output port of another layer of the same emission (by its position in ``layers``)."""

    layer: int
    port: str = "y"


Source = str | Out
"""What feeds a port: an ONNX tensor (or a name another emission produces), or an :class:`Out`."""


@dataclass(frozen=True)
class Layer:
    """One catalogue layer a converter creates.

    Attributes:
        type: catalogue type id.
        params: its parameters (validated when the mapper adds the node).
        inputs: one source per input port, in port order.
        weights: initial tensors by ``state_dict`` key within the layer (``weight``, ``bias``...).
        outputs: (port, tensor name) pairs: the ONNX tensors (or names for other emissions) it produces.
        name: a name hint (the module the ONNX node came from).
    """

    type: str
    params: Mapping[str, Any] = field(default_factory=dict)
    inputs: tuple[Source, ...] = ()
    weights: Mapping[str, np.ndarray] = field(default_factory=dict)
    outputs: tuple[tuple[str, str], ...] = ()
    name: str = ""


@dataclass(frozen=True)
class Emission:
    """What a converter or recogniser returns.

    Attributes:
        layers: the layers to add, in dependency order.
        aliases: ONNX tensor -> what it equals (an Identity passes its input through).
        claims: indices of further ONNX nodes this emission accounts for (a recogniser's pattern).
        notes: remarks for the import report.
    """

    layers: tuple[Layer, ...] = ()
    aliases: Mapping[str, Source] = field(default_factory=dict)
    claims: frozenset[int] = frozenset()
    notes: tuple[str, ...] = ()


def one(type_id: str, node: OnnxNode, params: Mapping[str, Any] | None = None, inputs: Iterable[Source] = (),
        weights: Mapping[str, np.ndarray] | None = None, name: str | None = None,
        outputs: Iterable[tuple[str, str]] | None = None) -> Emission:
    """The commonest emission: one layer on ``inputs`` (default: the node's first input) that
    produces the node's first output on port ``y``."""
    ins = tuple(inputs) or (node.inputs[0].name,)  # type: ignore[union-attr]
    outs = tuple(outputs) if outputs is not None else (("y", node.outputs[0].name),)  # type: ignore[union-attr]
    return Emission((Layer(type_id, dict(params or {}), ins, dict(weights or {}), outs, name or node.hint()),))


class ModelView(Protocol):
    """A read-only view of the whole model, for recognisers."""

    def node(self, index: int) -> OnnxNode:
        """The node at ``index``."""
        ...

    def producer(self, tensor: str) -> OnnxNode | None:
        """The node that computes ``tensor`` (None for model inputs and initializers)."""
        ...

    def consumers(self, tensor: str) -> tuple[OnnxNode, ...]:
        """The live nodes that read ``tensor`` (nodes that reach no model output are left out)."""
        ...

    def value(self, tensor: str) -> Value:
        """What is known about ``tensor``."""
        ...

    def is_output(self, tensor: str) -> bool:
        """Whether ``tensor`` is a model output."""
        ...

    def in_scope(self, scope: str) -> tuple[OnnxNode, ...]:
        """The live nodes the exporter recorded under module ``scope`` (or one inside it)."""
        ...

    def constants(self, prefix: str) -> dict[str, np.ndarray]:
        """The initializers whose names start with ``prefix`` (a module's parameters, by state_dict name)."""
        ...

    def evaluate(self, tensor: str, sizes: Mapping[str, int]) -> np.ndarray | None:
        """The value of a :data:`SHAPE` tensor when each symbolic dim of the model inputs takes
        the size in ``sizes`` (None when it cannot be computed)."""
        ...


Converter = Callable[[OnnxNode], Emission]
Recogniser = Callable[[OnnxNode, ModelView], "Emission | None"]


@dataclass(frozen=True)
class _Entry:
    fn: Callable[..., Any]
    since: int
    until: int | None

    def covers(self, opset: int) -> bool:
        return self.since <= opset and (self.until is None or opset <= self.until)


_CONVERTERS: dict[tuple[str, str], list[_Entry]] = {}
_RECOGNISERS: dict[tuple[str, str], list[tuple[int, _Entry]]] = {}
TARGETS: set[str] = set()
"""Catalogue types the converters produce (a test checks each exists)."""


def converter(op: str, since: int = 1, until: int | None = None, domain: str = "",
              targets: tuple[str, ...] = ()) -> Callable[[Converter], Converter]:
    """Register ``fn`` for ``op`` at opsets ``since..until``; overlapping ranges fail at import."""

    def deco(fn: Converter) -> Converter:
        entries = _CONVERTERS.setdefault((domain, op), [])
        for e in entries:
            if e.since <= (until if until is not None else 10**9) and since <= (e.until if e.until is not None
                                                                                    else 10**9):
                raise ValueError(f"ONNX op {op}: two converters for opsets {since}..{until}")
        entries.append(_Entry(fn, since, until))
        TARGETS.update(targets)
        return fn

    return deco


def recogniser(op: str, priority: int = 0, since: int = 1, until: int | None = None, domain: str = "",
               targets: tuple[str, ...] = ()) -> Callable[[Recogniser], Recogniser]:
    """Register a pattern anchored at ``op``; higher ``priority`` runs first over the whole model."""

    def deco(fn: Recogniser) -> Recogniser:
        _RECOGNISERS.setdefault((domain, op), []).append((priority, _Entry(fn, since, until)))
        TARGETS.update(targets)
        return fn

    return deco


def converter_for(node: OnnxNode) -> Converter | None:
    for e in _CONVERTERS.get((_domain(node.domain), node.op), ()):
        if e.covers(node.opset):
            return e.fn
    return None


def recognisers_for(node: OnnxNode, priority: int) -> list[Recogniser]:
    return [e.fn for p, e in _RECOGNISERS.get((_domain(node.domain), node.op), ()) if p == priority
            and e.covers(node.opset)]


def priorities() -> list[int]:
    """Recogniser priorities in the order their passes run."""
    return sorted({p for entries in _RECOGNISERS.values() for p, _ in entries}, reverse=True)


def _domain(domain: str) -> str:
    return "" if domain in ("", "ai.onnx") else domain


def frozen(d: Mapping[str, Any]) -> Mapping[str, Any]:
    return MappingProxyType(dict(d))
