"""Values inside a trained model: a node's code found in the compiled module, hooked and read.

A node is addressed by its name on the canvas.  A node inside a block instance is addressed
through the instance: ``block1/conv1`` (``outer/inner/conv1`` for blocks in blocks), since one
block definition has as many values as it has uses; the instance's own name (``block1``) is the
block's output.  A node with several output ports takes ``name:port`` (``lstm:y``); alone it
means the port the rest of the graph reads.  An Output node stands for the value it receives.

Where the node's value is exactly one submodule's output (a Conv2d, a block instance), that
submodule is hooked; otherwise (a function such as ``add`` or ``flatten``, a layer made of
several calls) an ``nn.Identity`` probe is inserted after the node's last fx node, so hooks and
Captum's layer methods see the same tensor the next node reads.  The module is the loaded
model's own copy: probes never reach the project or its exports.

Nothing here needs Captum; :mod:`workbench.analysis.explain` builds on it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.fx as fx
from torch import nn

from ..compiler import Compiled, InputSpec, compile_graph
from ..data import DataBundle, load_data
from ..errors import WorkbenchError
from ..graph import Graph
from ..project import Project
from ..weights import apply_state, graph_hash, load_checkpoint, load_weights

PROBE = "_explain_probe"
SPLITS = ("train", "val", "test")


class ExplainError(WorkbenchError):
    """An explanation or activation request does not fit the model (an unknown node, a method
    that needs what the node or the model lacks...).  ``node`` names the node when there is one."""

    def __init__(self, message: str, node: str | None = None) -> None:
        super().__init__(message)
        self.node = node


@dataclass(frozen=True)
class NodeSite:
    """Where a node's value lives in the compiled module.

    Attributes:
        address: the normalised address (``block1/conv1``, ``lstm:h``).
        node_type: the node's layer type (a block id for an instance).
        holder: dotted path of the ``GraphModule`` whose graph computes it ("" for the model).
        fx_name: the fx node holding the value in that graph.
        layer: dotted path of the submodule whose output is exactly the value, or None.
    """

    address: str
    node_type: str
    holder: str
    fx_name: str
    layer: str | None


def _join(prefix: str, attr: str) -> str:
    return f"{prefix}.{attr}" if prefix else attr


@dataclass
class _Scope:
    """A graph and its compiled module: the model, or the inside of one block instance."""

    graph: Graph
    compiled: Compiled
    path: str  # dotted module path of this scope's GraphModule in the model
    prefix: str  # the address prefix of its nodes ("" or "block1/")
    bound: dict[str, Any] | None = None


@dataclass
class LoadedModel:
    """A project's model with trained weights, ready to explain (evaluation mode).

    Use :func:`load_model`.  ``module`` is this object's own copy: probes inserted into it
    never reach the project.
    """

    project: Project
    compiled: Compiled
    weights: str
    notes: list[str] = field(default_factory=list)
    _bundle: DataBundle | None = None
    _sites: dict[str, NodeSite] = field(default_factory=dict)
    _layers: dict[tuple[str, str], nn.Module] = field(default_factory=dict)
    _scopes: dict[str, _Scope] = field(default_factory=dict)

    @property
    def module(self) -> fx.GraphModule:
        return self.compiled.module

    @property
    def input(self) -> InputSpec:
        return self.compiled.inputs[0]

    @property
    def input_kind(self) -> str:
        """``image`` [C, H, W], ``sequence`` [T, F], ``features`` [F], or ``tokens`` (int64 ids)."""
        if self.input.dtype == "int64":
            return "tokens"
        return {3: "image", 2: "sequence", 1: "features"}.get(len(self.input.shape) - 1, "features")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """The model's first output (what explanations score)."""
        out = self.module(x)
        return out[0] if isinstance(out, tuple) else out

    def predict(self, x: torch.Tensor, batch: int = 256) -> torch.Tensor:
        """First outputs for many samples, without gradients."""
        with torch.no_grad():
            return torch.cat([self.forward(x[i:i + batch]) for i in range(0, len(x), batch)]) if len(x) else x

    # ------------------------------------------------------------------ data
    @property
    def data(self) -> DataBundle:
        """The project's dataset, split and shaped as training saw it (loaded once)."""
        if self._bundle is None:
            self._bundle = load_data(self.project.data, self.input.shape[1:], self.input.dtype)
        return self._bundle

    def split(self, name: str) -> tuple[torch.Tensor, torch.Tensor | None]:
        """(inputs, labels) of a split: ``train``, ``val`` or ``test``; labels are classes, or for
        next-token data each sample's target sequence, or None."""
        if name not in SPLITS:
            raise ExplainError(f"unknown split {name!r} (choose {', '.join(SPLITS)})")
        ds = getattr(self.data, name)
        if ds is None:
            key = "data.val_fraction" if name == "val" else "data.test_fraction"
            raise ExplainError(f"the {name} split of {self.data.samples.name} is empty: raise {key}")
        x, y = ds.tensors
        labels = y if self.data.samples.kind in ("classification", "sequence") else None
        return x, labels

    @property
    def class_names(self) -> list[str]:
        return list(self.data.samples.class_names)

    # ------------------------------------------------------------------ nodes
    def _scope(self, prefix: str) -> _Scope:
        """The scope of an address prefix ("" or ``"block1/"``, ``"a/b/"``), compiled on first use."""
        if prefix in self._scopes:
            return self._scopes[prefix]
        if not prefix:
            scope = _Scope(self.project.graph, self.compiled, "", "")
        else:
            outer_prefix, _, name = prefix[:-1].rpartition("/")
            outer = self._scope(f"{outer_prefix}/" if outer_prefix else "")
            node = self._node(outer, name, prefix[:-1])
            if not node.is_block:
                raise ExplainError(f'"{prefix[:-1]}" is a {node.type}, not a block: only a block instance has nodes '
                                   "inside (address them as instance/node)", node=prefix[:-1])
            attr = outer.compiled.attr_of[node.id]
            call = outer.compiled.calls[attr]
            inner = call.compile()  # type: ignore[union-attr]  # the same code as the instance's module
            scope = _Scope(call.graph, inner, _join(outer.path, attr), prefix, call.bound)  # type: ignore[union-attr]
        self._scopes[prefix] = scope
        return scope

    def _node(self, scope: _Scope, name: str, address: str) -> Any:
        try:
            return scope.graph.by_name(name)
        except WorkbenchError:
            known = [n.name for n in scope.graph]
            where = f"block instance \"{scope.prefix[:-1]}\"" if scope.prefix else "the model"
            shown = ", ".join(known[:12]) + (", ..." if len(known) > 12 else "")
            raise ExplainError(f'no node "{address}" in {where} (its nodes: {shown}); a node inside a block is '
                               "addressed as instance/node", node=address) from None

    def site(self, address: str) -> NodeSite:
        """Find a node's value.

        Raises:
            ExplainError: naming the address when no such node (or port) exists.
        """
        address = address.strip()
        if address in self._sites:
            return self._sites[address]
        port = None
        scope = self._scope("")
        if any(n.name == address for n in scope.graph):
            name = address
        else:
            path, _, last = address.rpartition("/")
            name, sep, port_text = last.partition(":")
            if sep and not any(n.name == last for n in self._scope(f"{path}/" if path else "").graph):
                port = port_text
            else:
                name = last
            scope = self._scope(f"{path}/" if path else "")
        node = self._node(scope, name, address)
        site = self._locate(scope, node, port, address)
        self._sites[address] = site
        return site

    def _locate(self, scope: _Scope, node: Any, port: str | None, address: str) -> NodeSite:
        graph, compiled = scope.graph, scope.compiled
        if node.spec.role == "output":
            edge = graph.edge_into(node.id, "x")
            assert edge is not None  # compiled graphs have every input wired
            src = graph.nodes[edge.src]
            return self._locate(scope, src, edge.src_port if len(src.output_ports) > 1 else None, address)
        holder: fx.GraphModule = self.module.get_submodule(scope.path) if scope.path else self.module  # type: ignore[assignment]
        nodes = {n.name: n for n in holder.graph.nodes}
        if node.spec.role == "input":
            arg = compiled.attr_of[node.id]
            fx_node = next(n for n in nodes.values() if n.op == "placeholder" and n.target == arg)
            return NodeSite(address, node.type, scope.path, fx_node.name, None)
        owned = [n for n in holder.graph.nodes if compiled.owner.get(n.name) == node.name]
        boundary = [n for n in owned if any(compiled.owner.get(u.name) != node.name for u in n.users)]
        ports = node.output_ports
        if port is not None and port not in ports:
            raise ExplainError(f'"{node.name}" has no output port "{port}" (its ports: {", ".join(ports)})',
                               node=address)
        wired = {e.src_port for e in graph.edges_from(node.id)}
        if (port is not None and port not in wired) or not boundary:
            what = f'output port "{port}" of "{node.name}"' if port is not None else f'the output of "{address}"'
            raise ExplainError(f"{what} is not wired: the model does not compute it", node=address)
        if len(boundary) == 1 and len(wired) == 1:
            chosen = boundary[0]
        else:
            chosen = self._by_port(scope, node, port, boundary, address)
        attr = compiled.attr_of.get(node.id, "")
        whole = (chosen.op == "call_module" and chosen.target == attr
                 and sum(1 for n in holder.graph.nodes if n.op == "call_module" and n.target == attr) == 1)
        return NodeSite(address, node.type, scope.path, chosen.name, _join(scope.path, attr) if whole else None)

    def _by_port(self, scope: _Scope, node: Any, port: str | None, boundary: list[fx.Node], address: str) -> fx.Node:
        """Match a multi-output node's values to its ports by their shapes (one sample run)."""
        from torch.fx.passes.shape_prop import ShapeProp

        from ..shapes import ShapeInference

        si = ShapeInference(scope.graph, live=False, bound_inputs=scope.bound)
        si.update()
        declared = si.all()[node.id].outputs
        holder = self.module.get_submodule(scope.path) if scope.path else self.module
        captured: list[tuple[Any, ...]] = []
        handle = holder.register_forward_pre_hook(lambda _m, args: captured.append(args) if not captured else None)
        try:
            with torch.no_grad():
                self.forward(self.example())
        finally:
            handle.remove()
        ShapeProp(holder).propagate(*captured[0])  # type: ignore[arg-type]

        def fits(fx_node: fx.Node, p: str) -> bool:
            meta = fx_node.meta.get("tensor_meta")
            want = declared.get(p)
            if meta is None or not hasattr(meta, "shape") or want is None or len(meta.shape) != len(want):
                return False
            return all(not isinstance(w, int) or w == s for w, s in zip(want, meta.shape, strict=True))

        wanted = [port] if port is not None else list(node.output_ports)
        for p in wanted:
            matches = [n for n in boundary if fits(n, p)]
            if len(matches) == 1:
                return matches[0]
        raise ExplainError(f'"{address}" has several outputs ({", ".join(node.output_ports)}); name one as '
                           f'"{node.name}:PORT"' if port is None else
                           f'cannot tell which value of "{node.name}" is its port "{port}"', node=address)

    def example(self, batch: int = 2) -> torch.Tensor:
        """A small input batch of the model's Input shape (symbolic lengths at 8)."""
        return self.compiled.example_inputs(batch=batch, seq=8, vocab=2)[0]

    def layer(self, address: str) -> nn.Module:
        """The module whose forward output is the node's value: its submodule, or a probe inserted
        after its code (once per node)."""
        site = self.site(address)
        if site.layer is not None:
            return self.module.get_submodule(site.layer)
        key = (site.holder, site.fx_name)
        if key not in self._layers:
            holder: fx.GraphModule = self.module.get_submodule(site.holder) if site.holder else self.module  # type: ignore[assignment]
            target = next(n for n in holder.graph.nodes if n.name == site.fx_name)
            name = f"{PROBE}{len(self._layers)}"
            holder.add_submodule(name, nn.Identity())
            with holder.graph.inserting_after(target):
                probe = holder.graph.call_module(name, (target,))
            target.replace_all_uses_with(probe, delete_user_cb=lambda user: user is not probe)
            holder.recompile()
            self._layers[key] = holder.get_submodule(name)
        return self._layers[key]

    def embedding_address(self) -> str:
        """The node the Input feeds (for token inputs: the embedding whose output is attributed)."""
        graph = self.project.graph
        first = graph.inputs()[0]
        order = {nid: i for i, nid in enumerate(graph.topological_order())}
        consumers = sorted({e.dst for e in graph.edges_from(first.id)}, key=order.__getitem__)
        if not consumers:
            raise ExplainError(f'the Input "{first.name}" feeds no node', node=first.name)
        return graph.nodes[consumers[0]].name

    def addresses(self) -> list[str]:
        """The model's node names in graph order (blocks' insides are ``instance/node``)."""
        return [n.name for n in self.project.graph]


def load_model(project: Project, checkpoint: str | Path | None = None, require_weights: bool = True) -> LoadedModel:
    """Compile the project and load trained weights: the checkpoint, else the project's weights file.

    Raises:
        CompileError: the graph has errors.
        WeightsFileError: the checkpoint cannot be read (exit status 2 on the command line).
        WeightsError: it does not fit the model (each tensor named).
        ExplainError: no weights at all (an untrained model explains nothing), or a model with
            several Inputs.
    """
    compiled = compile_graph(project.graph)
    notes: list[str] = []
    if len(compiled.inputs) != 1:
        raise ExplainError(f"explanations need a model with one Input; this one has {len(compiled.inputs)} "
                           f"({', '.join(s.node for s in compiled.inputs)})")
    if checkpoint is not None:
        ckpt = load_checkpoint(checkpoint)
        apply_state(compiled.module, ckpt.state(), str(checkpoint))
        saved_for = ckpt.meta.get("project_hash")
        if saved_for and saved_for != graph_hash(project.graph):
            notes.append(f"{Path(checkpoint).name} was saved for another version of the graph (its tensors fit, "
                         "but a setting without weights may differ)")
        weights = f"checkpoint {Path(checkpoint).name}"
    elif project.weights_path() is not None:
        load_weights(compiled.module, project.weights_path())  # type: ignore[arg-type]
        weights = f"weights file {project.weights}"
    elif require_weights:
        raise ExplainError("the model has no trained weights: give a checkpoint (a run's checkpoints/last.safetensors) "
                           "or load weights into the project")
    else:
        weights = "initial random weights"
    compiled.module.eval()  # dropout off, batch norm on its running statistics: one sample = one answer
    return LoadedModel(project, compiled, weights, notes)


def activations(model: LoadedModel, x: torch.Tensor, address: str) -> torch.Tensor:
    """The value of a node for the samples ``x`` (a forward hook on its layer or probe).

    Raises:
        ExplainError: an unknown node.
    """
    layer = model.layer(address)
    seen: list[torch.Tensor] = []

    def hook(_m: nn.Module, _args: Any, out: Any) -> None:
        seen.append((out[0] if isinstance(out, tuple) else out).detach())

    handle = layer.register_forward_hook(hook)
    try:
        with torch.no_grad():
            model.forward(x)
    finally:
        handle.remove()
    if not seen:
        raise ExplainError(f'"{address}" did not run for this input', node=address)
    return seen[0]


def feature_maps(value: np.ndarray, cols: int = 0, pad: int = 1) -> np.ndarray:
    """One sample's value at a node as a 2-D picture in [0, 1] (NaN gaps between maps).

    [C, H, W] becomes a grid of C feature maps, each scaled on its own range (so a weak channel
    still shows its pattern); [T, D] (a sequence) and [D] are shown as they are, scaled once.
    """
    from ..imaging import grid

    v = np.asarray(value, dtype=np.float32)
    if v.ndim == 3:
        lo = v.min(axis=(1, 2), keepdims=True)
        span = v.max(axis=(1, 2), keepdims=True) - lo
        scaled = np.where(span > 0, (v - lo) / np.where(span > 0, span, 1), 0.5)
        return grid(scaled, cols or max(1, int(np.ceil(np.sqrt(len(v))))), pad=pad, fill=np.nan)
    v = v.reshape(1, -1) if v.ndim <= 1 else v.reshape(v.shape[0], -1)
    lo, span = float(v.min()), float(v.max() - v.min())
    return (v - lo) / span if span > 0 else np.full_like(v, 0.5)


def parse_indices(text: str) -> list[int]:
    """``"3, 5, 9-12"`` -> [3, 5, 9, 10, 11, 12].

    Raises:
        ExplainError: quoting the part that is not an index or a range.
    """
    out: list[int] = []
    for part in text.replace(";", ",").split(","):
        part = part.strip()
        if not part:
            continue
        a, sep, b = part.partition("-")
        try:
            lo, hi = (int(a), int(b)) if sep and a.strip() else (int(part), int(part))
        except ValueError:
            raise ExplainError(f"samples: {part!r} is not an index or a range such as 9-12") from None
        if hi < lo or hi - lo > 100_000 or lo < 0:
            raise ExplainError(f"samples: {part!r} is not a range of indices from low to high")
        out.extend(range(lo, hi + 1))
    if not out:
        raise ExplainError("samples: no index given (e.g. 0-15 or 3, 7, 12)")
    return out


@dataclass
class SampleChoice:
    """Which samples to look at.

    Attributes:
        split: ``train``, ``val`` (default: the confusion matrix's) or ``test``.
        indices: positions in the split (taken as given, in order); else the first ``count``
            samples that pass the filters below.
        label: only samples of this true class.
        predicted: only samples the model assigns to this class (with ``label``: one cell of the
            confusion matrix).
        misclassified: only samples the model gets wrong.
    """

    split: str = "val"
    indices: list[int] | None = None
    count: int = 16
    label: int | None = None
    predicted: int | None = None
    misclassified: bool = False


def select_samples(model: LoadedModel, choice: SampleChoice) -> tuple[list[int], torch.Tensor, list[Any]]:
    """(indices in the split, their inputs, their labels) for a choice (labels as :meth:`LoadedModel.split`
    gives them: a class, a target sequence, or None).

    Raises:
        ExplainError: an index outside the split, a class filter on data without classes, or no
            sample passes the filters.
    """
    x, y = model.split(choice.split)
    n = len(x)
    if choice.indices is not None:
        bad = [i for i in choice.indices if not 0 <= i < n]
        if bad:
            raise ExplainError(f"sample {bad[0]} is outside the {choice.split} split (0..{n - 1})")
        idx = list(choice.indices)
    else:
        if choice.count < 1:
            raise ExplainError(f"the number of samples must be positive, got {choice.count}")
        keep = torch.ones(n, dtype=torch.bool)
        filtering = choice.label is not None or choice.predicted is not None or choice.misclassified
        if filtering and (y is None or y.ndim != 1):
            raise ExplainError(f"{model.data.samples.name} has no classes: samples cannot be chosen by class")
        if choice.label is not None:
            assert y is not None
            keep &= y == choice.label
        if choice.predicted is not None or choice.misclassified:
            assert y is not None
            out = model.predict(x)
            if out.ndim != 2:
                raise ExplainError("samples are chosen by predicted class only for models with an Output "
                                   "[N, classes]")
            pred = out.argmax(1)
            if choice.predicted is not None:
                keep &= pred == choice.predicted
            if choice.misclassified:
                keep &= pred != y
        idx = torch.nonzero(keep).flatten()[: choice.count].tolist()
        if not idx:
            raise ExplainError(f"no sample of the {choice.split} split fits the choice")
    labels: list[Any] = ([int(y[i]) if y.ndim == 1 else y[i].tolist() for i in idx] if y is not None
                         else [None] * len(idx))
    return idx, x[idx], labels
