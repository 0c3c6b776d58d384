"""An ONNX model read once into the immutable facts converters need (:class:`ModelView`).

Shapes come from ``onnx.shape_inference`` (strict, with data propagation); constants from the
initializers and from folding every node whose inputs are all constants; each tensor is
classified as a constant, a value computed from shapes only (``Shape`` -> ``Gather`` ->
``Concat`` on a symbolic batch: a Reshape target, zeros of the batch size) or data.  Nodes that
reach no model output are left out ("dead"), and each node's module scope is read from the
exporter's naming (TorchScript: ``/encoder/layers.0/self_attn/MatMul``; torch.export: the
``pkg.torch.onnx.name_scopes`` metadata).
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import onnx
from onnx import numpy_helper

from ..onnxrt import cpu_session
from .registry import BATCH, CONST, DATA, SHAPE, Dim, OnnxNode, Value, frozen

#: element types a Constant's tensor reads the same through numpy_helper as through the reference evaluator
_PLAIN_TYPES = {onnx.TensorProto.FLOAT, onnx.TensorProto.DOUBLE, onnx.TensorProto.FLOAT16, onnx.TensorProto.BOOL,
                onnx.TensorProto.INT8, onnx.TensorProto.INT16, onnx.TensorProto.INT32, onnx.TensorProto.INT64,
                onnx.TensorProto.UINT8, onnx.TensorProto.UINT16, onnx.TensorProto.UINT32, onnx.TensorProto.UINT64}
#: ops whose output is never data: they read only the shape of their input
_SHAPE_OPS = {"Shape", "Size"}
#: (op, input) pairs that contribute only their element type
_TYPE_ONLY = {("CastLike", 1)}
#: ops that look random and must not be folded into one fixed draw
_RANDOM = {"RandomNormal", "RandomUniform", "RandomNormalLike", "RandomUniformLike", "Multinomial", "Bernoulli"}


class ModelError(Exception):
    """The model cannot be analysed (shape inference failed...); the message says why."""


def fold(node: onnx.NodeProto, consts: Mapping[str, np.ndarray], opset: list[Any]) -> list[np.ndarray]:
    """Evaluate a node whose inputs are all constants (shape arithmetic, Constant...)."""
    from onnx.reference import ReferenceEvaluator

    if (node.op_type == "Constant" and node.domain in ("", "ai.onnx") and len(node.attribute) == 1
            and node.attribute[0].name == "value" and node.attribute[0].t.data_type in _PLAIN_TYPES
            and node.attribute[0].t.data_location != onnx.TensorProto.EXTERNAL):
        # the commonest constant, read directly: a reference evaluator per node costs ~1 ms
        return [numpy_helper.to_array(node.attribute[0].t)]
    if node.op_type in _SEQUENCE:
        return [_SEQUENCE[node.op_type](node, [consts[i] if i else None for i in node.input])]
    inputs = [i for i in node.input if i]
    graph = onnx.helper.make_graph(
        [node], "fold",
        [onnx.helper.make_tensor_value_info(i, onnx.helper.np_dtype_to_tensor_dtype(consts[i].dtype), consts[i].shape)
         for i in inputs],
        [onnx.helper.make_tensor_value_info(o, onnx.TensorProto.UNDEFINED, None) for o in node.output if o],
    )
    ref = ReferenceEvaluator(onnx.helper.make_model(graph, opset_imports=opset))
    return ref.run(None, {i: consts[i] for i in inputs})


def _split_to_sequence(node: onnx.NodeProto, ins: list[Any]) -> list[np.ndarray]:
    a = {x.name: onnx.helper.get_attribute_value(x) for x in node.attribute}
    x, axis = ins[0], int(a.get("axis", 0))
    split = ins[1] if len(ins) > 1 else None
    if split is None:
        parts = np.split(x, x.shape[axis], axis)
        return [p.squeeze(axis) for p in parts] if a.get("keepdims", 1) == 0 else parts
    sizes = np.atleast_1d(split).astype(np.int64)
    if sizes.size == 1:
        sizes = np.full(-(-x.shape[axis] // int(sizes[0])), int(sizes[0]))
        sizes[-1] = x.shape[axis] - int(sizes[:-1].sum())
    return np.split(x, np.cumsum(sizes)[:-1], axis)


#: sequence ops on constants, evaluated here (a sequence is a list, which the reference evaluator's
#: one-node graphs cannot take as an input)
_SEQUENCE: dict[str, Any] = {
    "SplitToSequence": _split_to_sequence,
    "SequenceAt": lambda node, ins: ins[0][int(ins[1])],
    "SequenceConstruct": lambda node, ins: list(ins),
    "SequenceLength": lambda node, ins: np.array(len(ins[0]), np.int64),
}


def _infer(model: onnx.ModelProto) -> tuple[dict[str, tuple[Dim, ...]], dict[str, int]]:
    try:
        inferred = onnx.shape_inference.infer_shapes(model, strict_mode=True, data_prop=True)
    except Exception as exc:
        try:  # strict inference refuses some models onnxruntime runs (a symbolic broadcast it cannot prove)
            inferred = onnx.shape_inference.infer_shapes(model, strict_mode=False, data_prop=True)
        except Exception:
            raise ModelError(f"shape inference failed: {str(exc).splitlines()[0]}") from None
    shapes: dict[str, tuple[Dim, ...]] = {}
    elems: dict[str, int] = {}
    for vi in [*inferred.graph.input, *inferred.graph.value_info, *inferred.graph.output]:
        t = vi.type.tensor_type
        elems[vi.name] = t.elem_type
        if t.HasField("shape"):
            shapes[vi.name] = tuple(d.dim_value if d.HasField("dim_value") else (d.dim_param or "?")
                                    for d in t.shape.dim)
    return shapes, elems


def _scope(node: onnx.NodeProto) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """The module path (qualified names, outermost first) and classes the exporter recorded."""
    meta = {p.key: p.value for p in node.metadata_props}
    scopes = meta.get("pkg.torch.onnx.name_scopes")
    if scopes:
        try:
            names = [str(s) for s in _literal(scopes)]
            classes = [str(s) for s in _literal(meta.get("pkg.torch.onnx.class_hierarchy", "[]"))]
        except ValueError:
            return (), ()
        # [root "", module paths..., the op's own name]; the classes run alongside
        return tuple(n for n in names[1:-1] if n), tuple(classes[1:-1])
    if node.name.startswith("/") and node.name.count("/") >= 2:  # TorchScript: /encoder/layers.0/self_attn/MatMul
        parts = node.name.strip("/").split("/")[:-1]
        return tuple(".".join(parts[: i + 1]) for i in range(len(parts))), ()
    return (), ()


def _literal(text: str) -> list[Any]:
    import ast

    try:
        value = ast.literal_eval(text)
    except (ValueError, SyntaxError) as exc:
        raise ValueError(str(exc)) from None
    if not isinstance(value, list):
        raise ValueError("not a list")
    return value


def _attrs(node: onnx.NodeProto) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for a in node.attribute:
        v = onnx.helper.get_attribute_value(a)
        if isinstance(v, bytes):
            v = v.decode("utf-8", "replace")
        elif isinstance(v, list) and v and isinstance(v[0], bytes):
            v = [x.decode("utf-8", "replace") for x in v]
        out[a.name] = v
    return out


class Model:
    """The analysed model; implements :class:`~workbench.importers.registry.ModelView`."""

    def __init__(self, model: onnx.ModelProto, path: Path, shared: frozenset[str] = frozenset()) -> None:
        """``shared``: model inputs read without a batch dimension (see :func:`shared_reading`)."""
        self.proto = model
        self.path = path
        self.opsets = {("" if o.domain == "ai.onnx" else o.domain): o.version for o in model.opset_import}
        self.opset = self.opsets.get("", 1)
        self.shapes, self.elems = _infer(model)
        self.nodes = list(model.graph.node)
        self.outputs = [o.name for o in model.graph.output]
        self.consts: dict[str, Any] = {}  # arrays, or lists for constant sequences
        for init in model.graph.initializer:
            self.consts[init.name] = numpy_helper.to_array(init)
            self.elems.setdefault(init.name, init.data_type)
        initialized = set(self.consts)
        self.initialized = frozenset(initialized)
        self.inputs = [vi for vi in model.graph.input if vi.name not in initialized]
        self.producer_of: dict[str, int] = {}
        self.readers: dict[str, list[int]] = {}
        for k, n in enumerate(self.nodes):
            for o in n.output:
                if o:
                    self.producer_of[o] = k
            for i in n.input:
                if i:
                    self.readers.setdefault(i, []).append(k)
        self.fold_errors: dict[int, str] = {}
        self.kind: dict[str, str] = {name: CONST for name in self.consts}
        for vi in self.inputs:
            self.kind[vi.name] = DATA
        self._classify()
        self.shared = self._shared(shared)
        self.live = self._live()
        self.data_live = self._data_live()
        self._views: dict[int, OnnxNode] = {}
        self._scopes: dict[str, list[int]] | None = None
        self._probe_sizes: tuple[dict[str, int], dict[str, int]] | None = None
        self._probe_cache: tuple[dict[str, np.ndarray | None], dict[str, np.ndarray | None]] = ({}, {})
        self._probed: dict[str, tuple[np.ndarray, np.ndarray] | None] = {}
        self._ran: dict[tuple[tuple[str, int], ...], dict[str, tuple[int, ...]] | None] = {}

    # ------------------------------------------------------------------ analysis
    def _classify(self) -> None:
        """Fold constants and mark each tensor const, shape-derived or data (nodes are in
        topological order, as the ONNX standard requires)."""
        opset = list(self.proto.opset_import)
        for k, n in enumerate(self.nodes):
            if n.op_type in _SHAPE_OPS and self._fixed_shape(n):
                continue
            if n.op_type == "CastLike" and self._cast_like(n):
                continue
            ins = [i for j, i in enumerate(n.input) if i and (n.op_type, j) not in _TYPE_ONLY]
            kinds = [self.kind.get(i, DATA) for i in ins]
            if all(k_ == CONST for k_ in kinds) and n.op_type not in _RANDOM:
                try:
                    for out, value in zip(n.output, fold(n, self.consts, opset), strict=False):
                        if out:
                            self.consts[out] = value if isinstance(value, list) else np.asarray(value)
                            self.kind[out] = CONST
                    continue
                except Exception as exc:
                    self.fold_errors[k] = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
            if n.op_type in _RANDOM:
                kind = DATA  # noise is data, whatever its inputs
            elif n.op_type in _SHAPE_OPS or DATA not in kinds:
                kind = SHAPE
            else:
                kind = DATA
            for out in n.output:
                if out:
                    self.kind[out] = kind

    def _shared(self, inputs: frozenset[str]) -> frozenset[str]:
        """The data tensors computed from shared inputs only (nodes are in topological order)."""
        shared = set(inputs)
        for n in self.nodes:
            data = [i for i in n.input if i and self.kind.get(i) == DATA]
            if data and all(i in shared for i in data):
                shared.update(o for o in n.output if o and self.kind.get(o) == DATA)
        return frozenset(shared)

    def _fixed_shape(self, n: onnx.NodeProto) -> bool:
        """A Shape (or Size) of dimensions that are all fixed is a constant."""
        dims = self.shapes.get(n.input[0])
        if dims is None:
            return False
        a = {x.name: onnx.helper.get_attribute_value(x) for x in n.attribute}
        picked = dims if n.op_type == "Size" else dims[a.get("start", 0): a.get("end", len(dims))]
        if not all(isinstance(d, int) for d in picked):
            return False
        value = np.array(np.prod(picked), np.int64) if n.op_type == "Size" else np.array(picked, np.int64)
        self.consts[n.output[0]] = value
        self.kind[n.output[0]] = CONST
        return True

    def _cast_like(self, n: onnx.NodeProto) -> bool:
        """CastLike reads only the type of its second input: a constant cast like data is a constant."""
        value, elem = self.consts.get(n.input[0]), self.elems.get(n.input[1], 0)
        if value is None or not elem:
            return False
        self.consts[n.output[0]] = value.astype(onnx.helper.tensor_dtype_to_np_dtype(elem))
        self.kind[n.output[0]] = CONST
        return True

    def _live(self) -> set[int]:
        """Nodes from which a model output can be reached."""
        live: set[int] = set()
        stack = [self.producer_of[o] for o in self.outputs if o in self.producer_of]
        while stack:
            k = stack.pop()
            if k in live:
                continue
            live.add(k)
            for i in self.nodes[k].input:
                p = self.producer_of.get(i)
                if p is not None and p not in live:
                    stack.append(p)
        return live

    def _data_live(self) -> set[int]:
        """Nodes whose data reaches a model output (through data tensors only: a node read only for
        its shape is not needed)."""
        live: set[int] = set()
        stack = [self.producer_of[o] for o in self.outputs if o in self.producer_of and self.kind.get(o) == DATA]
        while stack:
            k = stack.pop()
            if k in live:
                continue
            live.add(k)
            for i in self.nodes[k].input:
                p = self.producer_of.get(i)
                if p is not None and p not in live and self.kind.get(i) == DATA:
                    stack.append(p)
        return live

    # ------------------------------------------------------------------ ModelView
    def value(self, tensor: str) -> Value:
        const = self.consts.get(tensor)
        if isinstance(const, list):  # a sequence: no tensor value a layer could hold
            const = None
        if const is not None:
            const = const.view()
            const.flags.writeable = False
            shape: tuple[Dim, ...] | None = tuple(int(d) for d in const.shape)
            elem = onnx.helper.np_dtype_to_tensor_dtype(const.dtype) if const.dtype != object else 0
        else:
            shape = self.shapes.get(tensor)
            elem = self.elems.get(tensor, 0)
        kind = self.kind.get(tensor, DATA)
        probes = ran = None
        if kind == SHAPE:
            if tensor not in self._probed:
                self._probed[tensor] = self._probes(tensor)
            probes = self._probed[tensor]
        elif kind == DATA and shape is not None and not all(isinstance(d, int) or d in self.probe_sizes()[0]
                                                            for d in shape):
            a, b = (self._runtime_shapes(s) for s in self.probe_sizes())
            if a is not None and b is not None and tensor in a and tensor in b:
                ran = (a[tensor], b[tensor])
        return Value(tensor, shape, elem, kind, const, probes, ran, shared=tensor in self.shared)

    def node(self, index: int) -> OnnxNode:
        view = self._views.get(index)
        if view is None:
            n = self.nodes[index]
            scope, classes = _scope(n)
            domain = "" if n.domain == "ai.onnx" else n.domain
            view = OnnxNode(index, n.op_type, domain, n.name, frozen(_attrs(n)),
                            tuple(self.value(i) if i else None for i in n.input),
                            tuple(self.value(o) if o else None for o in n.output),
                            self.opsets.get(domain, 1), scope, classes, self.probe_sizes())
            self._views[index] = view
        return view

    def producer(self, tensor: str) -> OnnxNode | None:
        k = self.producer_of.get(tensor)
        return None if k is None else self.node(k)

    def consumers(self, tensor: str) -> tuple[OnnxNode, ...]:
        return tuple(self.node(k) for k in self.readers.get(tensor, ()) if k in self.live)

    def is_output(self, tensor: str) -> bool:
        return tensor in self.outputs

    def in_scope(self, scope: str) -> tuple[OnnxNode, ...]:
        if self._scopes is None:
            self._scopes = {}
            for k in sorted(self.live):
                for s in self.node(k).scope:
                    self._scopes.setdefault(s, []).append(k)
        return tuple(self.node(k) for k in self._scopes.get(scope, ()))

    def constants(self, prefix: str) -> dict[str, np.ndarray]:
        return {k: self.consts[k] for k in self.initialized if k.startswith(prefix)}

    def evaluate(self, tensor: str, sizes: Mapping[str, int]) -> np.ndarray | None:
        """Evaluate a shape-derived tensor with concrete sizes for the symbolic input dims."""
        return self._evaluate(tensor, sizes, {})

    def probe_sizes(self) -> tuple[dict[str, int], dict[str, int]]:
        """Two settings of the inputs' symbolic sizes: the batch 2 then 3, other lengths 5 then 7..."""
        if self._probe_sizes is None:
            a: dict[str, int] = {}
            b: dict[str, int] = {}
            more = iter([(5, 7), (11, 13), (17, 19), (23, 29), (31, 37)])
            for vi in self.inputs:
                for i, d in enumerate(self.shapes.get(vi.name) or ()):
                    if isinstance(d, str) and d not in a:
                        a[d], b[d] = (2, 3) if i == 0 else next(more, (41, 43))
                    if i == 0 and BATCH not in a:  # the batch, for a data tensor whose first dim inference lost
                        a[BATCH], b[BATCH] = (d, d) if isinstance(d, int) else (a[d], b[d])
            self._probe_sizes = (a, b)
        return self._probe_sizes

    def _probes(self, tensor: str) -> tuple[np.ndarray, np.ndarray] | None:
        a, b = self.probe_sizes()
        va = self._evaluate(tensor, a, self._probe_cache[0])
        vb = self._evaluate(tensor, b, self._probe_cache[1]) if va is not None else None
        return None if va is None or vb is None else (va, vb)

    def _evaluate(self, tensor: str, sizes: Mapping[str, int], cache: dict[str, np.ndarray | None]
                  ) -> np.ndarray | None:
        if self.kind.get(tensor) == CONST:
            return self.consts[tensor]
        if self.kind.get(tensor) != SHAPE:
            return None
        if tensor in cache:
            return cache[tensor]
        order: list[int] = []
        seen: set[int] = set()
        stack = [self.producer_of[tensor]] if tensor in self.producer_of else []
        while stack:  # the ancestors still to compute, stopping at Shape nodes
            k = stack.pop()
            if k in seen:
                continue
            seen.add(k)
            order.append(k)
            if self.nodes[k].op_type in _SHAPE_OPS:
                continue
            stack += [self.producer_of[i] for i in self.nodes[k].input
                      if i and self.kind.get(i) == SHAPE and i not in cache and i in self.producer_of]
        try:
            for k in sorted(order):
                n = self.nodes[k]
                if n.op_type in _SHAPE_OPS:
                    dims = self.shapes.get(n.input[0])
                    concrete = [d if isinstance(d, int) else sizes.get(d) for d in dims or ()]
                    if dims is None or any(d is None for d in concrete):
                        ran = self._runtime_shapes(sizes)  # inference lost this shape: run the model for it
                        if ran is None or n.input[0] not in ran:
                            cache.update({o: None for o in n.output})
                            continue
                        concrete = list(ran[n.input[0]])
                    a = {x.name: onnx.helper.get_attribute_value(x) for x in n.attribute}
                    shape = np.array(concrete, np.int64)
                    cache[n.output[0]] = (np.array(np.prod(shape), np.int64) if n.op_type == "Size"
                                          else shape[a.get("start", 0): a.get("end", len(shape))])
                    continue
                env = {i: (cache.get(i) if self.kind.get(i) == SHAPE else self.consts.get(i)) for i in n.input if i}
                if any(v is None for v in env.values()):
                    cache.update({o: None for o in n.output if o})
                    continue
                for out, v in zip(n.output, fold(n, env, list(self.proto.opset_import)), strict=False):  # type: ignore[arg-type]
                    cache[out] = np.asarray(v)
        except Exception:
            cache.setdefault(tensor, None)
        return cache.get(tensor)

    def _runtime_shapes(self, sizes: Mapping[str, int]) -> dict[str, tuple[int, ...]] | None:
        """The shapes of the tensors Shape nodes read, from one onnxruntime run at ``sizes`` (once per
        setting; only for models whose shape arithmetic inference could not follow)."""
        key = tuple(sorted(sizes.items()))
        if key in self._ran:
            return self._ran[key]
        self._ran[key] = None
        wanted = sorted({n.input[0] for n in self.nodes if n.op_type in _SHAPE_OPS and self.kind.get(n.input[0]) == DATA}
                        | {t for t, dims in self.shapes.items() if self.kind.get(t) == DATA and t not in self.outputs
                           and not all(isinstance(d, int) or d in sizes for d in dims)})
        if not wanted:
            self._ran[key] = {}
            return self._ran[key]
        feeds = {}
        for vi in self.inputs:
            dims = [d if isinstance(d, int) else sizes.get(d) for d in self.shapes.get(vi.name) or ()]
            if any(d is None for d in dims):
                return None
            dtype = onnx.helper.tensor_dtype_to_np_dtype(vi.type.tensor_type.elem_type)
            feeds[vi.name] = np.zeros(dims, dtype)
        try:

            probe = onnx.ModelProto()
            probe.CopyFrom(self.proto)
            probe.graph.output.extend(onnx.helper.make_tensor_value_info(t, self.elems.get(t) or onnx.TensorProto.FLOAT,
                                                                         None) for t in wanted if t not in self.outputs)
            session = cpu_session(probe.SerializeToString(), quiet=4)
            values = session.run(wanted, feeds)
        except Exception:
            return None
        self._ran[key] = {t: tuple(int(d) for d in np.shape(v)) for t, v in zip(wanted, values, strict=True)}
        return self._ran[key]

    # ------------------------------------------------------------------ helpers for the mapper
    def label(self, index: int) -> str:
        n = self.nodes[index]
        return n.name if n.name else f"#{index} {n.op_type}"
