"""Declarations of layer types: typed parameters, ports, shape rule, torch code.

A layer type is one :class:`LayerSpec`.  Everything else (palette, inspector,
shape inference, compiler, source export, tests) reads these declarations.
"""

from __future__ import annotations

import keyword
import math
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar, Protocol

Dim = int | str
"""One dimension: a concrete size, or a symbol such as ``"N"`` (batch) or ``"T"``."""
Shape = tuple[Dim, ...]


class ParamValueError(ValueError):
    """A value a parameter declaration refuses; the message says expected vs received."""


# --------------------------------------------------------------------------- parameters


@dataclass(frozen=True)
class Param:
    """A typed parameter declaration.

    Attributes:
        name: key in the node's ``params`` dict (a Python identifier).
        default: the value a new node gets.
        doc: one line shown in the inspector.
    """

    name: str
    default: Any
    doc: str = ""
    kind: ClassVar[str] = "any"

    def validate(self, value: Any) -> Any:
        """Return the normalised value or raise :class:`ParamValueError`."""
        return value

    def describe(self) -> dict[str, Any]:
        """A JSON-able description (for docs, the schema and the GUI)."""
        return {"name": self.name, "kind": self.kind, "default": self.default, "doc": self.doc}


#: The largest size one dimension, count or window of a layer may declare (2**24 = 16,777,216).
#: Sizes beyond it overflow torch's 32-bit kernels or its storage arithmetic long before they
#: could fit in memory; the memory estimate (``workbench.analysis.cost``) refuses what is smaller
#: but still too big for the machine.
MAX_SIZE = 1 << 24

#: a symbolic dimension ("T"): an ASCII identifier, as ONNX and torch.export name dims
_SYMBOL = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


@dataclass(frozen=True)
class IntParam(Param):
    minimum: int | None = None
    maximum: int | None = None
    kind: ClassVar[str] = "int"

    def validate(self, value: Any) -> int:
        if isinstance(value, float) and value.is_integer():
            value = int(value)
        if not _is_int(value):
            raise ParamValueError(f"expected {self._range_text()}, got {value!r}")
        if self.minimum is not None and value < self.minimum:
            raise ParamValueError(f"expected {self._range_text(large_max=False)}, got {value}")
        if self.maximum is not None and value > self.maximum:
            raise ParamValueError(f"expected {self._range_text()}, got {value}")
        return value

    def _range_text(self, large_max: bool = True) -> str:
        lo, hi = self.minimum, self.maximum
        if hi is not None and hi >= MAX_SIZE:  # a safety bound: name it only when it is the problem
            if not large_max:
                hi = None
            elif lo is not None:
                return f"an int in [{lo}, {hi:,}]"
        if lo == 1 and hi is None:
            return "a positive int"
        if lo == 0 and hi is None:
            return "a non-negative int"
        if lo is not None and hi is not None:
            return f"an int in [{lo}, {hi}]"
        if lo is not None:
            return f"an int >= {lo}"
        if hi is not None:
            return f"an int <= {hi}"
        return "an int"

    def describe(self) -> dict[str, Any]:
        return {**super().describe(), "minimum": self.minimum, "maximum": self.maximum}


@dataclass(frozen=True)
class FloatParam(Param):
    minimum: float | None = None
    maximum: float | None = None
    kind: ClassVar[str] = "float"

    def validate(self, value: Any) -> float:
        if not isinstance(value, (int, float)) or isinstance(value, bool) or not math.isfinite(value):
            raise ParamValueError(f"expected a finite number, got {value!r}")
        value = float(value)
        if (self.minimum is not None and value < self.minimum) or (
            self.maximum is not None and value > self.maximum
        ):
            raise ParamValueError(
                f"expected a number in [{self.minimum if self.minimum is not None else '-inf'}, "
                f"{self.maximum if self.maximum is not None else 'inf'}], got {value}"
            )
        return value

    def describe(self) -> dict[str, Any]:
        return {**super().describe(), "minimum": self.minimum, "maximum": self.maximum}


@dataclass(frozen=True)
class BoolParam(Param):
    kind: ClassVar[str] = "bool"

    def validate(self, value: Any) -> bool:
        if not isinstance(value, bool):
            raise ParamValueError(f"expected true or false, got {value!r}")
        return value


@dataclass(frozen=True)
class ChoiceParam(Param):
    choices: tuple[str, ...] = ()
    kind: ClassVar[str] = "choice"

    def validate(self, value: Any) -> str:
        if value not in self.choices:
            raise ParamValueError(f"expected one of {', '.join(self.choices)}, got {value!r}")
        return value

    def describe(self) -> dict[str, Any]:
        return {**super().describe(), "choices": list(self.choices)}


@dataclass(frozen=True)
class IntTupleParam(Param):
    """A tuple of ints: ``length`` fixed (a bare int is broadcast) or free when None.

    ``minimum`` bounds every element; ``allow_minus_one`` admits one ``-1``
    (an inferred size, as in ``reshape``).
    """

    length: int | None = None
    minimum: int | None = None
    min_length: int = 1
    allow_minus_one: bool = False
    maximum: int | None = MAX_SIZE
    max_length: int = 8
    kind: ClassVar[str] = "int_tuple"

    def validate(self, value: Any) -> tuple[int, ...]:
        if _is_int(value) and self.length is not None:
            if self.minimum is not None and value < self.minimum:
                raise ParamValueError(f"expected {self._text()}, got {value}")
            if self.maximum is not None and value > self.maximum:
                raise ParamValueError(f"expected {self._text(with_maximum=True)}, got {value}")
            value = (value,) * self.length
        if not isinstance(value, (list, tuple)) or not all(_is_int(v) for v in value):
            raise ParamValueError(f"expected {self._text()}, got {value!r}")
        value = tuple(value)
        if self.length is not None and len(value) != self.length:
            raise ParamValueError(f"expected {self._text()}, got {len(value)} values {list(value)}")
        if not self.min_length <= len(value) <= self.max_length:
            raise ParamValueError(f"expected {self._text()}, got {list(value)}")
        for v in value:
            if self.allow_minus_one and v == -1:
                continue
            if self.minimum is not None and v < self.minimum:
                raise ParamValueError(f"expected {self._text()}, got {list(value)}")
            if self.maximum is not None and v > self.maximum:
                raise ParamValueError(f"expected {self._text(with_maximum=True)}, got {list(value)}")
        if self.allow_minus_one and value.count(-1) > 1:
            raise ParamValueError(f"at most one -1 is allowed, got {list(value)}")
        return value

    def _text(self, with_maximum: bool = False) -> str:
        what = "ints"
        if self.minimum == 1:
            what = "positive ints"
        elif self.minimum == 0:
            what = "non-negative ints"
        if with_maximum and self.maximum is not None:  # a safety bound: named when it is the problem
            what += f" up to {self.maximum:,}"
        if self.length is not None:
            return f"{self.length} {what} (or one for all)"
        return f"a list of {self.min_length} to {self.max_length} {what}"

    def describe(self) -> dict[str, Any]:
        d = {**super().describe(), "length": self.length, "minimum": self.minimum, "maximum": self.maximum}
        d["default"] = list(self.default)
        return d


@dataclass(frozen=True)
class StrParam(Param):
    """Free text (a path, a column name); ``allow_empty`` admits ``""``."""

    allow_empty: bool = True
    kind: ClassVar[str] = "str"

    def validate(self, value: Any) -> str:
        if not isinstance(value, str) or (not value and not self.allow_empty):
            raise ParamValueError(f"expected {'a' if self.allow_empty else 'a non-empty'} string, got {value!r}")
        if re.search("[\ud800-\udfff\x00]", value):  # cannot be encoded (or passed to the OS) later
            raise ParamValueError(f"expected text without lone surrogates or NUL, got {value!r}")
        return value


@dataclass(frozen=True)
class ShapeParam(Param):
    """The shape of an Input without its batch dimension: ints, or ``"T"`` for a
    symbolic sequence length.  Empty: one value per sample (the input is ``[N]``)."""

    kind: ClassVar[str] = "shape"

    def validate(self, value: Any) -> tuple[Dim, ...]:
        if not isinstance(value, (list, tuple)) or not len(value) <= 8:
            raise ParamValueError(f"expected a list of up to 8 positive ints (or \"T\"), got {value!r}")
        out: list[Dim] = []
        for v in value:
            if _is_int(v) and 1 <= v <= MAX_SIZE:
                out.append(v)
            elif isinstance(v, str) and _SYMBOL.fullmatch(v) and not keyword.iskeyword(v) and v not in ("N", "batch"):
                out.append(v)
            else:
                raise ParamValueError(
                    f"expected a list of positive ints up to {MAX_SIZE:,} (or a symbol like \"T\"), "
                    f"got {list(value)!r}"
                )
        return tuple(out)

    def describe(self) -> dict[str, Any]:
        return {**super().describe(), "default": list(self.default)}


# --------------------------------------------------------------------------- torch code


@dataclass(frozen=True)
class ModuleCall:
    """How to construct a torch module: ``torch.nn.<cls>(*args, **kwargs)``.

    One description serves both instantiation (compiler) and source export.
    """

    cls: str
    args: tuple[Any, ...] = ()
    kwargs: dict[str, Any] = field(default_factory=dict)

    def instantiate(self) -> Any:
        import torch.nn as nn

        def build(v: Any) -> Any:
            if isinstance(v, ModuleCall):
                return v.instantiate()
            if isinstance(v, dict):
                return {k: build(x) for k, x in v.items()}
            return v

        return getattr(nn, self.cls)(*(build(a) for a in self.args), **{k: build(v) for k, v in self.kwargs.items()})

    def source(self) -> str:
        def render(v: Any) -> str:
            if isinstance(v, ModuleCall):
                return v.source()
            if isinstance(v, dict):
                return "{" + ", ".join(f"{k!r}: {render(x)}" for k, x in v.items()) + "}"
            return repr(v)

        parts = [render(a) for a in self.args] + [f"{k}={render(v)}" for k, v in self.kwargs.items()]
        return f"nn.{self.cls}({', '.join(parts)})"


class LayerShapeError(Exception):
    """Raised by shape rules.  The inference engine adds the node's name.

    Args:
        message: what is wrong (used as is when ``expected`` is None).
        port: index of the input at fault.
        param: name of the parameter at fault.
        expected: a shape pattern such as ``[N, C, H, W]``; the engine then writes
            ``expects [N, C, H, W], got [N, 784] from "flatten1"``.
    """

    def __init__(
        self,
        message: str = "",
        *,
        port: int | None = None,
        param: str | None = None,
        expected: str | None = None,
    ) -> None:
        super().__init__(message or f"expects {expected}")
        self.message = message
        self.port = port
        self.param = param
        self.expected = expected


ShapeRule = Callable[[dict[str, Any], list[Shape]], list[Shape]]
CountRule = Callable[[dict[str, Any], list[Shape]], int]
BuildRule = Callable[[dict[str, Any], list[Shape]], ModuleCall]
EmitRule = Callable[["Emitter", dict[str, Any], list[Shape], list[Any]], list[Any]]
OpsRule = Callable[[dict[str, Any], list[tuple[int, ...]], list[tuple[int, ...]]], tuple[int, int]]
"""``(params, input shapes, output shapes) -> (MACs, FLOPs)`` of one forward pass; the shapes are
concrete (the batch and every symbol replaced by a size).  See ``workbench.analysis.macs``."""


class Emitter(Protocol):
    """What an emit rule may do while the compiler writes ``forward``.

    The compiler provides the implementation; rules only call these methods,
    so they never touch ``torch.fx`` directly.
    """

    def call_module(self, *args: Any, **kwargs: Any) -> Any:
        """Call this node's own submodule."""
        ...

    def call_submodule(self, name: str, *args: Any, **kwargs: Any) -> Any:
        """Call a child of this node's module (``self.embed.token(x)``)."""
        ...

    def call_function(self, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        """Call a torch function (``torch.cat``, ``operator.getitem``...)."""
        ...

    def call_method(self, name: str, *args: Any, **kwargs: Any) -> Any:
        """Call a tensor method (``x.flatten(1)``)."""
        ...


@dataclass(frozen=True)
class Example:
    """A parameter setting and input shapes the conformance tests run.

    Shapes use concrete sizes; ``int_input`` marks token-id inputs.
    """

    params: dict[str, Any]
    inputs: tuple[tuple[int, ...], ...]
    int_input: bool = False


@dataclass(frozen=True)
class LayerSpec:
    """One layer type.

    Attributes:
        id: stable type id stored in project files (``"Conv2d"``).
        name: display name.
        category: palette group.
        doc: one line, including input and output shapes.
        params: parameter declarations, in inspector order.
        inputs: input port names (or a function of params for variadic layers).
        outputs: output port names (or a function of params, for layers such as Split
            whose number of outputs is a parameter).
        infer: shape rule ``(params, input_shapes) -> output_shapes``.
        count: parameter-count rule (defaults to 0).
        build: the torch module to create, or None for functional layers.
        emit: how ``forward`` uses it; defaults to calling the module on the inputs.
        key_params: parameters shown on the canvas node.
        examples: settings for the conformance tests.
        role: ``"layer"``, ``"input"`` or ``"output"``.
        dtype: what its inputs may hold: ``"float"`` (floating point; the output is float),
            ``"index"`` (integer ids, as Embedding reads; the output is float), ``"same"``
            (anything; the output keeps it) or ``"promote"`` (anything; float if any input is).
        ops: multiply-accumulates and FLOPs of one forward pass (an :data:`OpsRule`); None takes
            the fallback of ``workbench.analysis.macs`` (no MACs; one FLOP per output element, none
            for layers that only move data).
    """

    id: str
    name: str
    category: str
    doc: str
    infer: ShapeRule
    params: tuple[Param, ...] = ()
    inputs: tuple[str, ...] | Callable[[dict[str, Any]], tuple[str, ...]] = ("x",)
    outputs: tuple[str, ...] | Callable[[dict[str, Any]], tuple[str, ...]] = ("y",)
    count: CountRule | None = None
    build: BuildRule | None = None
    emit: EmitRule | None = None
    key_params: tuple[str, ...] = ()
    examples: tuple[Example, ...] = ()
    role: str = "layer"
    """``"input"`` and ``"output"`` mark the graph's interface nodes."""
    dtype: str = "float"
    ops: OpsRule | None = None

    def param(self, name: str) -> Param:
        for p in self.params:
            if p.name == name:
                return p
        raise KeyError(name)

    def defaults(self) -> dict[str, Any]:
        return {p.name: p.validate(p.default) for p in self.params}

    def input_ports(self, params: dict[str, Any]) -> tuple[str, ...]:
        return self.inputs(params) if callable(self.inputs) else self.inputs

    def output_ports(self, params: dict[str, Any]) -> tuple[str, ...]:
        return self.outputs(params) if callable(self.outputs) else self.outputs

    def param_count(self, params: dict[str, Any], shapes: Sequence[Shape]) -> int:
        return self.count(params, list(shapes)) if self.count else 0


# --------------------------------------------------------------------------- registry

REGISTRY: dict[str, LayerSpec] = {}


def register(spec: LayerSpec) -> LayerSpec:
    """Add a layer type to the catalogue; a duplicate id fails at import."""
    if spec.id in REGISTRY:
        raise ValueError(f"layer type {spec.id!r} is registered twice")
    for p in spec.params:
        p.validate(p.default)  # a declaration with a bad default fails at import
    REGISTRY[spec.id] = spec
    return spec


def get_spec(type_id: str) -> LayerSpec:
    """Return the declaration of ``type_id`` or raise KeyError."""
    return REGISTRY[type_id]
