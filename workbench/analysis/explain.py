"""Why does the model decide this: attributions with Captum as the engine.

Methods (each is Captum's own; nothing here computes an attribution by hand):

- ``saliency``: ``Saliency`` (|gradient| of the target score with respect to the input);
- ``integrated_gradients``: ``IntegratedGradients`` from a constant baseline (default 0), ``steps``
  points (Gauss-Legendre, Captum's default);
- ``smoothgrad``: ``NoiseTunnel(Saliency)``, ``noise_samples`` noisy copies with a standard
  deviation of ``noise`` (default: 0.15 x the range of the training inputs, as in Smilkov et al.);
  each sample is seeded alike, so its map does not depend on the other samples explained with it;
- ``occlusion``: ``Occlusion``, a window slid over the input and filled with the baseline
  (images: about 1/8 of the side, half a window stride; sequences: one time step; features
  and tokens: one at a time);
- ``gradcam``: ``LayerGradCam`` at any node with an [N, C, H, W] output (ReLU applied, as in
  Selvaraju et al.), upsampled to the input with ``LayerAttribution.interpolate`` (bilinear).
  Without a node: the last node whose output is [N, C, H, W] with more than one position.

The target is a class (default: the predicted one); a model scoring every time step
([N, T, classes], a language model) is explained at one ``position`` (default: the last).
Token inputs (int64 ids) are attributed at the embedding, the node the Input feeds:
``LayerIntegratedGradients`` from a baseline token id, layer gradients for saliency
(``LayerGradientXActivation`` without the multiplication), both summed over the embedding
dimensions to one value per token; occlusion replaces one token at a time by the baseline id.
Continuous sequences [T, F] get the input-shaped map and its sum per time step.

Nodes are addressed as in :mod:`workbench.analysis.activations` (``block1/conv1`` inside a
block instance; ``block1`` is the instance's output).  Captum is imported inside the functions:
without the ``explain`` extra the error says what to install.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from ..errors import InputError, WorkbenchError
from ..layers.dims import fmt_shape
from .activations import ExplainError, LoadedModel, SampleChoice, activations

METHODS = {"saliency": "Saliency", "integrated_gradients": "Integrated Gradients", "smoothgrad": "SmoothGrad",
           "occlusion": "Occlusion", "gradcam": "Grad-CAM"}
ALIASES = {"ig": "integrated_gradients", "integrated-gradients": "integrated_gradients", "grad-cam": "gradcam",
           "grad_cam": "gradcam", "smooth_grad": "smoothgrad", "smooth-grad": "smoothgrad"}
#: methods whose maps have a sign (the others are magnitudes)
SIGNED = ("integrated_gradients", "occlusion")
#: SmoothGrad's default noise: this share of the training inputs' range
NOISE_SHARE = 0.15


class MissingExtraError(ExplainError, InputError):
    """An optional engine is not installed (exit status 2); the message names the extra."""


def captum_attr() -> Any:
    """``captum.attr``, or an error naming the extra to install."""
    try:
        import captum.attr as attr
    except ImportError:
        raise MissingExtraError("explanations need Captum, which is not installed: "
                                "pip install 'neural-workbench[explain]'") from None
    return attr


def method_id(name: str) -> str:
    """The method's id from its id, alias or display name (``IG``, ``Grad-CAM``...)."""
    key = name.strip().lower().replace(" ", "_")
    key = ALIASES.get(key, key)
    for mid, title in METHODS.items():
        if key in (mid, title.lower().replace(" ", "_")):
            return mid
    raise ExplainError(f"unknown method {name!r} (choose {', '.join(METHODS)})")


@dataclass
class ExplainOptions:
    """What to explain and how (see the module's docstring for each method).

    Attributes:
        node: Grad-CAM's node (default: the last [N, C, H, W] node with more than one position).
        target: the class to explain (default: each sample's predicted class).
        position: the time step, for outputs [N, T, classes] (default: the last).
        steps: Integrated Gradients' number of points.
        noise_samples, noise: SmoothGrad's copies and standard deviation (None: 0.15 x input range).
        window, stride: occlusion's window and stride over one sample's dims (None: defaults).
        baseline: the reference input value (a token id for token inputs).
        seed: SmoothGrad's random seed.
        batch: samples attributed together (progress is reported after each batch).
    """

    method: str = "saliency"
    node: str | None = None
    target: int | None = None
    position: int | None = None
    steps: int = 50
    noise_samples: int = 16
    noise: float | None = None
    window: tuple[int, ...] | None = None
    stride: tuple[int, ...] | None = None
    baseline: float = 0.0
    seed: int = 0
    batch: int = 8


@dataclass
class Explanation:
    """Attributions for some samples, with what each sample was and what the model said.

    Attributes:
        kind: the input's kind (``image``, ``sequence``, ``features``, ``tokens``).
        inputs: the samples as the model read them.
        attributions: Captum's result, input-shaped ([N, T] per token for token inputs, the
            upsampled [N, 1, H, W] map for Grad-CAM).
        maps: one map per sample to draw: [N, H, W] (channels summed), [N, T, F], [N, F] or [N, T].
        per_step: sequences and tokens: one value per time step or token [N, T], else None.
        layer_maps: Grad-CAM at the node's own resolution [N, h, w], else None.
        signed: whether the maps have a sign (else they are magnitudes).
    """

    method: str
    node: str | None
    kind: str
    indices: list[int]
    split: str
    inputs: np.ndarray
    labels: list[int | None]
    predicted: list[int]
    targets: list[int]
    probabilities: list[float]
    attributions: np.ndarray
    maps: np.ndarray
    per_step: np.ndarray | None = None
    layer_maps: np.ndarray | None = None
    position: int | None = None
    signed: bool = False
    class_names: list[str] = field(default_factory=list)
    weights: str = ""
    notes: list[str] = field(default_factory=list)

    def name_of(self, k: int | None) -> str:
        if k is None:
            return "-"
        return self.class_names[k] if 0 <= k < len(self.class_names) else str(k)

    def caption(self, i: int) -> str:
        """One line about sample ``i``: index, true and predicted class, explained class."""
        label = self.labels[i]
        right = "" if label is None else (" ✓" if label == self.predicted[i] else " ✗")
        blank = " · map zero everywhere" if not np.any(self.maps[i]) else ""  # Grad-CAM: no positive evidence
        return (f"#{self.indices[i]} true {self.name_of(label)} → {self.name_of(self.predicted[i])}{right}; "
                f"explains {self.name_of(self.targets[i])} (p={self.probabilities[i]:.2f}){blank}")

    def summary(self, values_limit: int = 4096) -> dict[str, Any]:
        """JSON-able: per sample its classes, the map's statistics and (when small) its values."""
        samples = []
        for i in range(len(self.indices)):
            m = self.maps[i]
            entry: dict[str, Any] = {
                "index": self.indices[i], "label": self.labels[i], "predicted": self.predicted[i],
                "target": self.targets[i], "probability": self.probabilities[i],
                "map": {"shape": list(m.shape), "min": float(m.min()), "max": float(m.max()),
                        "sum": float(m.sum()), "abs_sum": float(np.abs(m).sum()),
                        "argmax": [int(v) for v in np.unravel_index(int(np.argmax(m)), m.shape)]},
            }
            if m.size <= values_limit:
                entry["map"]["values"] = np.round(m.astype(np.float64), 7).tolist()
            if self.kind == "tokens" and self.class_names:
                entry["tokens"] = [self.name_of(int(t)) for t in self.inputs[i]]
            if self.per_step is not None:
                entry["per_step"] = np.round(self.per_step[i].astype(np.float64), 7).tolist()
            if self.layer_maps is not None:
                entry["layer_map"] = np.round(self.layer_maps[i].astype(np.float64), 7).tolist()
            samples.append(entry)
        return {"method": self.method, "node": self.node, "kind": self.kind, "split": self.split,
                "position": self.position, "signed": self.signed, "weights": self.weights, "notes": self.notes,
                "classes": self.class_names, "samples": samples}


# --------------------------------------------------------------------------- targets


def _targets(model: LoadedModel, x: torch.Tensor, options: ExplainOptions
             ) -> tuple[list[int], list[int], list[float], int | None]:
    """(predicted, targets, target probabilities, position) for each sample."""
    out = model.predict(x).float()
    position = None
    if out.ndim == 3:  # a score per time step: one step is explained
        t = out.shape[1]
        position = t - 1 if options.position is None else options.position
        if not -t <= position < t:
            raise ExplainError(f"position {position} is outside the model's {t} time steps")
        position %= t
        out = out[:, position]
    elif out.ndim != 2:
        raise ExplainError(f"explanations need a model whose Output scores classes ([N, classes] or [N, T, "
                           f"classes]); this one gives {list(out.shape)} per batch", node=model.compiled.outputs[0])
    elif options.position is not None:
        raise ExplainError("position applies to models scoring every time step ([N, T, classes]); this one "
                           f"gives {list(out.shape)}")
    classes = out.shape[1]
    predicted = out.argmax(1).tolist()
    if options.target is not None:
        if not 0 <= options.target < classes:
            raise ExplainError(f"class {options.target} is out of range: the model scores {classes} classes "
                               f"(0..{classes - 1})")
        targets = [options.target] * len(x)
    elif model.project.training.get("task") == "regression":
        targets = [0] * len(x)  # the first output: the largest value is no decision
    else:
        targets = list(predicted)
    probs = torch.softmax(out, 1) if model.project.training.get("task") != "regression" else out
    return predicted, targets, [float(probs[i, k]) for i, k in enumerate(targets)], position


def _captum_target(targets: list[int], position: int | None) -> Any:
    if position is None:
        return torch.tensor(targets)
    return [(position, k) for k in targets]


# --------------------------------------------------------------------------- nodes


def default_gradcam_node(model: LoadedModel) -> str:
    """The last node (in graph order) whose output is [N, C, H, W] with more than one position."""
    from ..shapes import infer

    graph = model.project.graph
    info = infer(graph).all()
    found = None
    for nid in graph.topological_order():
        node = graph.nodes[nid]
        if node.spec.role != "layer":
            continue
        for shape in info[nid].outputs.values():
            if shape is not None and len(shape) == 4 and not (shape[2] == 1 and shape[3] == 1):
                found = node.name
    if found is None:
        raise ExplainError("Grad-CAM needs a node with a spatial output [N, C, H, W]; this model has none")
    return found


def _check_gradcam(model: LoadedModel, node: str, x: torch.Tensor) -> None:
    value = activations(model, x[:1], node)
    if value.ndim != 4:
        raise ExplainError(f'Grad-CAM needs a node with a spatial output [N, C, H, W]; "{node}" gives '
                           f"{fmt_shape(('N', *value.shape[1:]))}: choose a convolution, pooling or block node",
                           node=node)
    if model.input_kind != "image":
        raise ExplainError(f"Grad-CAM maps are laid over an image Input [C, H, W]; this model's Input is "
                           f"{fmt_shape(model.input.shape)}", node=node)


# --------------------------------------------------------------------------- methods


def _default_window(model: LoadedModel, sample: tuple[int, ...]) -> tuple[int, ...]:
    kind = model.input_kind
    if kind == "image":
        side = max(2, round(min(sample[1:]) / 8))
        return (sample[0], side, side)
    if kind == "sequence":
        return (1, sample[1])
    return tuple(1 for _ in sample)


def _occlusion_shapes(model: LoadedModel, sample: tuple[int, ...], options: ExplainOptions
                      ) -> tuple[tuple[int, ...], tuple[int, ...]]:
    """Occlusion's window and stride over one sample: the options' (an image's H, W cover every
    channel), else a window of about 1/8 of an image's side, one time step, or one value; the
    stride defaults to half the window (a sequence's window moves a whole step)."""
    image = model.input_kind == "image"

    def full(dims: tuple[int, ...], channel: int) -> tuple[int, ...]:
        return (channel, *dims) if image and len(dims) == 2 else tuple(dims)

    window = full(options.window, sample[0]) if options.window is not None else _default_window(model, sample)
    if options.stride is not None:
        stride = full(options.stride, sample[0])
    elif model.input_kind == "sequence" and options.window is None:
        stride = window
    else:
        stride = tuple(max(1, w // 2) for w in window)
        stride = (window[0], *stride[1:]) if image else stride
    if len(window) != len(sample) or len(stride) != len(window):
        raise ExplainError(f"occlusion window {list(window)} and stride {list(stride)} must have one value per "
                           f"sample dimension {list(sample)}")
    if any(w < 1 or w > s for w, s in zip(window, sample, strict=True)) or any(s < 1 for s in stride):
        raise ExplainError(f"occlusion window {list(window)} must fit in the sample {list(sample)}, with "
                           "positive strides")
    return window, stride


def _noise(model: LoadedModel, options: ExplainOptions) -> float:
    if options.noise is not None:
        if options.noise <= 0:
            raise ExplainError(f"SmoothGrad's noise must be positive, got {options.noise}")
        return float(options.noise)
    x, _ = model.split("train")
    span = float(x.max() - x.min()) if len(x) else 1.0
    return NOISE_SHARE * (span if span > 0 else 1.0)


def _attribute(attr: Any, model: LoadedModel, method: str, node: str | None, xb: torch.Tensor, target: Any,
               options: ExplainOptions, noise: float, window: Any) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Captum's attributions for one batch, and Grad-CAM's layer map."""
    f = model.forward
    if xb.is_floating_point() and method != "occlusion":  # Captum would set it itself, with a warning
        xb = xb.detach().clone().requires_grad_(True)
    if model.input_kind == "tokens" and method in ("saliency", "integrated_gradients"):
        layer = model.layer(model.embedding_address())
        if method == "integrated_gradients":
            base = torch.full_like(xb, int(options.baseline))
            a = attr.LayerIntegratedGradients(f, layer).attribute(xb, baselines=base, target=target,
                                                                   n_steps=options.steps)
            return a.sum(-1), None
        grads = attr.LayerGradientXActivation(f, layer, multiply_by_inputs=False).attribute(xb, target=target)
        return grads.abs().sum(-1), None
    if method == "saliency":
        return attr.Saliency(f).attribute(xb, target=target), None
    if method == "integrated_gradients":
        return attr.IntegratedGradients(f).attribute(xb, baselines=options.baseline, target=target,
                                                     n_steps=options.steps), None
    if method == "smoothgrad":
        parts = []
        for i in range(len(xb)):  # seeded alike per sample: a map does not depend on its neighbours
            torch.manual_seed(options.seed)
            parts.append(attr.NoiseTunnel(attr.Saliency(f)).attribute(
                xb[i:i + 1], nt_type="smoothgrad", nt_samples=options.noise_samples, stdevs=noise,
                target=target[i:i + 1]))
        return torch.cat(parts), None
    if method == "occlusion":
        window_shape, stride = window
        base = int(options.baseline) if model.input_kind == "tokens" else options.baseline
        return attr.Occlusion(f).attribute(xb, sliding_window_shapes=window_shape, strides=stride, baselines=base,
                                           target=target, perturbations_per_eval=16), None
    assert method == "gradcam" and node is not None
    cam = attr.LayerGradCam(f, model.layer(node)).attribute(xb, target=target, relu_attributions=True)
    return attr.LayerAttribution.interpolate(cam, tuple(xb.shape[-2:]), "bilinear"), cam[:, 0]


def explain(model: LoadedModel, x: torch.Tensor, options: ExplainOptions, indices: list[int] | None = None,
            labels: list[Any] | None = None, split: str = "",
            progress: Callable[[int, int], None] | None = None) -> Explanation:
    """Attribute the model's decision for the samples ``x`` to their inputs (or Grad-CAM's node).

    Args:
        model: from :func:`~workbench.analysis.activations.load_model`.
        x: samples shaped for the Input (a batch).
        options: the method and its settings.
        indices, labels, split: what the samples are (shown and reported; not used to compute); for
            next-token data a label is the sample's target sequence (its token at ``position`` is shown).
        progress: called with (samples done, total) after each batch.

    Raises:
        ExplainError: the method does not fit the model or the node (the message says why);
            MissingExtraError without Captum.
    """
    attr = captum_attr()
    method = method_id(options.method)
    if len(x) == 0:
        raise ExplainError("no samples to explain")
    if options.steps < 1 or options.noise_samples < 1 or options.batch < 1:
        raise ExplainError("steps, noise samples and batch must be positive")
    kind = model.input_kind
    node = None
    if method == "gradcam":
        node = options.node or default_gradcam_node(model)
        model.site(node)  # an unknown node is named before anything runs
        _check_gradcam(model, node, x)
    elif options.node:
        model.site(options.node)
    if kind == "tokens" and method == "smoothgrad":
        raise ExplainError("SmoothGrad adds noise to the input, and token ids cannot take noise: use "
                           "integrated_gradients, saliency or occlusion for this model")
    noise = _noise(model, options) if method == "smoothgrad" else 0.0
    window = _occlusion_shapes(model, tuple(x.shape[1:]), options) if method == "occlusion" else None
    predicted, targets, probs, position = _targets(model, x, options)
    results, layer_maps = [], []
    for start in range(0, len(x), options.batch):
        xb = x[start:start + options.batch]
        a, cam = _attribute(attr, model, method, node, xb, _captum_target(targets[start:start + len(xb)], position),
                            options, noise, window)
        results.append(a.detach().float())
        if cam is not None:
            layer_maps.append(cam.detach().float())
        if progress is not None:
            progress(min(start + len(xb), len(x)), len(x))
    a = torch.cat(results)
    if method == "gradcam":
        maps = a[:, 0]
    elif kind == "image":
        maps = a.sum(1)
    else:
        maps = a
    per_step = None
    if kind == "tokens":
        per_step = maps
    elif kind == "sequence":
        per_step = maps.sum(-1)
    try:
        names = model.class_names if model.data.samples.kind in ("classification", "sequence") else []
    except WorkbenchError:  # samples given directly, for a model its dataset does not fit: numbers will do
        names = []
    if labels is not None and position is not None:  # next-token data: the label is the token at the position
        labels = [None if v is None else int(np.asarray(v).reshape(-1)[position]) for v in labels]
    return Explanation(
        method=method, node=node, kind=kind, split=split,
        indices=list(indices) if indices is not None else list(range(len(x))),
        inputs=x.detach().cpu().numpy(), labels=list(labels) if labels is not None else [None] * len(x),
        predicted=predicted, targets=targets, probabilities=probs, position=position,
        attributions=a.cpu().numpy(), maps=maps.cpu().numpy(),
        per_step=None if per_step is None else per_step.cpu().numpy(),
        layer_maps=torch.cat(layer_maps).cpu().numpy() if layer_maps else None,
        signed=method in SIGNED, class_names=names, weights=model.weights, notes=list(model.notes))


# --------------------------------------------------------------------------- as a job


@dataclass
class ExplainRequest:
    """Everything a job needs (plain data: it crosses to a spawned process).

    Attributes:
        project_json: the project as saved (the editor's current state).
        project_path: where it lives (its weights file and data paths are relative to it).
        checkpoint: the weights to explain (None: the project's weights file).
    """

    project_json: str
    project_path: str | None
    checkpoint: str | None
    choice: SampleChoice
    options: ExplainOptions


def run_request(request: ExplainRequest, events: Any = None) -> Explanation:
    """Load the model, choose the samples and explain them: the GUI's job, run in a spawned
    process (``workbench.jobs.Job``).  ``(done, total)`` pairs go to ``events`` as batches finish."""
    import os
    from pathlib import Path

    from ..project import loads_project
    from .activations import load_model, select_samples

    torch.set_num_threads(max(1, (os.cpu_count() or 2) - 1))  # one core stays with the editor
    project = loads_project(request.project_json)
    project.path = Path(request.project_path) if request.project_path else None
    model = load_model(project, request.checkpoint)
    indices, x, labels = select_samples(model, request.choice)
    if events is not None:
        events.put((0, len(indices)))

    def progress(done: int, total: int) -> None:
        if events is not None:
            events.put((done, total))

    return explain(model, x, request.options, indices, labels, request.choice.split, progress)
