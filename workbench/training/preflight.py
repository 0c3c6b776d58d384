"""Pre-flight: everything that can be known about a training run before its first step.

A pure function of the project (task, data and training sections, inferred shapes)
and of a description of the dataset (sample shape, kind, classes): does the Input
fit the samples, does the Output fit the targets, do the token ids fit the
vocabulary, does a step fit in memory.  ``workbench check`` and
:meth:`~workbench.training.engine.Trainer.prepare` both call it, so what check
accepts, training accepts; each problem names its node, parameter or JSON path.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from typing import Any

import torch

from ..analysis.cost import cost_table, too_big, training_bytes
from ..analysis.dtypes import INT, infer_dtypes
from ..data import DataError, Samples, fit_to_input, load_samples
from ..graph import Graph
from ..layers import Shape
from ..layers.dims import fmt_shape
from ..shapes import ShapeInference
from .errors import TrainingError
from .issues import Issue

#: torchvision sets are described without downloading them (check must not touch the network)
_TORCHVISION = {"MNIST": ((1, 28, 28), 60000), "FashionMNIST": ((1, 28, 28), 60000), "CIFAR10": ((3, 32, 32), 50000)}


@dataclass(frozen=True)
class DataInfo:
    """What pre-flight needs to know about a dataset (not the samples themselves).

    Attributes:
        kind: ``classification``, ``regression``, ``sequence``, ``seq2seq`` or ``unlabelled``.
        sample_shape: one input sample's shape.
        target_shape: one target's shape (None when unlabelled).
        num_classes: classes (classification) or vocabulary size (sequence, seq2seq).
        samples: how many samples there are.
        id_range: smallest and largest input value as integer ids (what an int64 Input reads).
        target_id_range: seq2seq: smallest and largest target id (what the second Input reads).
    """

    name: str
    kind: str
    sample_shape: tuple[int, ...]
    target_shape: tuple[int, ...] | None
    num_classes: int
    samples: int
    id_range: tuple[int, int] = (0, 0)
    target_id_range: tuple[int, int] | None = None


class PreflightError(TrainingError):
    """Training cannot start: ``issues`` lists every located problem (the first one's place
    is also in ``node``, ``param`` and ``path``)."""

    def __init__(self, issues: list[Issue]) -> None:
        lines = "\n".join(f"  - {i.message}" for i in issues)
        super().__init__(f"training cannot start ({len(issues)} problem(s)):\n{lines}")
        self.issues = issues
        self.node, self.param, self.path = issues[0].node, issues[0].param, issues[0].path


def describe(samples: Samples) -> DataInfo:
    """The description of loaded samples."""
    x = samples.x
    # int() truncates toward zero, as the trainer's .long() does, without copying the data
    ids = (int(float(x.min())), int(float(x.max()))) if x.numel() else (0, 0)
    target = tuple(samples.y.shape[1:]) if samples.y is not None else None
    classes = len(samples.class_names) if samples.kind in ("sequence", "seq2seq") else samples.num_classes
    y = samples.y
    target_ids = (int(y.min()), int(y.max())) if samples.kind == "seq2seq" and y is not None and y.numel() else None
    return DataInfo(samples.name, samples.kind, tuple(x.shape[1:]), target, classes, len(samples), ids, target_ids)


def describe_dataset(data_cfg: dict[str, Any]) -> DataInfo:
    """Describe the configured dataset: loads local ones, never downloads.

    Raises:
        DataError: the data is not there or cannot be read.
    """
    if data_cfg.get("dataset") == "torchvision":
        name = data_cfg.get("name") or "MNIST"
        if name not in _TORCHVISION:
            raise DataError(f"torchvision dataset {name!r} is not supported (MNIST, FashionMNIST, CIFAR10)")
        try:
            import torchvision  # noqa: F401
        except Exception as exc:
            raise DataError(f"torchvision is not installed or does not load ({exc})") from None
        shape, count = _TORCHVISION[name]
        return DataInfo(name, "classification", shape, (), 10, count, (0, 1))
    return describe(load_samples(data_cfg))


# --------------------------------------------------------------------------- the checks


def graph_issues(graph: Graph, si: ShapeInference, label: str = "") -> list[Issue]:
    """What compiling refuses beyond shape errors: element types, parameters beyond memory."""
    issues = [Issue(f"{label}{e}", e.node, e.param) for e in infer_dtypes(graph)[1]]
    if not issues and not si.errors():
        from ..analysis.cost import parameters_fit

        err = parameters_fit(graph, si)
        if err is not None:
            issues.append(Issue(f"{label}{err}", err.node))
    return issues


def preflight(project: Any, data: DataInfo, training: dict[str, Any] | None = None,
              data_cfg: dict[str, Any] | None = None, budget: int | None = None) -> list[Issue]:
    """Every located reason the first training steps would fail (empty: none found).

    Args:
        project: the project (its graph, further graphs and sections).
        data: the dataset's description (:func:`describe` / :func:`describe_dataset`).
        training, data_cfg: the sections to use (default: the project's; the trainer passes
            its overrides).
        budget: memory in bytes a step may use (default: this machine's).
    """
    training = training or project.training
    data_cfg = data_cfg or project.data
    task = training["task"]
    graph: Graph = project.graph
    inputs, outputs = graph.inputs(), graph.outputs()
    shared = [Issue(f'Input "{n.name}" is not batched (one tensor shared by every sample), but training feeds '
                    "every Input batches of samples: turn its batched setting on", n.name, "batched")
              for n in inputs if not n.params.get("batched", True)]
    if shared:  # the fit of samples to such an Input means nothing
        return shared
    if (task == "seq2seq") != (data.kind == "seq2seq"):  # nothing else can be checked across the two
        why = (f"the seq2seq task needs (source, target) pairs (the 'numbers_to_words' dataset); {data.name} has "
               f"{data.kind} targets" if task == "seq2seq" else
               f"the dataset {data.name} holds (source, target) token sequences; choose the seq2seq task")
        return [Issue(why, path="training.task")]
    wanted = 2 if task == "seq2seq" else 1
    if len(inputs) != wanted:
        names = f' ({", ".join(chr(34) + n.name + chr(34) for n in inputs)})' if inputs else ""
        what = ("training needs exactly one Input" if wanted == 1 else
                "the seq2seq task needs two Inputs, the source token ids and then the shifted target token ids")
        return [Issue(f"{what}; the model has {len(inputs)}{names}",
                      inputs[wanted].name if len(inputs) > wanted else None, path="graph.nodes")]
    if not outputs:
        return []  # shape inference already reports it
    issues = _split_issues(data, data_cfg)
    if task in ("classification", "distillation") and data.kind != "classification":
        other = "language_model" if data.kind == "sequence" else "regression"
        issues.append(Issue(f"the task is {task} but the dataset {data.name} has {data.kind} targets; "
                            f"choose the {other} task", path="training.task"))
    if task in ("language_model", "masked_tokens") and data.kind != "sequence":
        issues.append(Issue(f"{'a language model' if task == 'language_model' else 'masked_tokens'} needs text data (the 'text' dataset); {data.name} has {data.kind} "
                            "targets", path="training.task"))
    model_input = inputs[0]
    if task == "adversarial":
        issues += _adversarial(project, data, data_cfg)
        fitted = None
    else:
        fitted = _fit(model_input, data, data_cfg, issues)
    if fitted is None and task != "adversarial":
        return issues
    bound = {model_input.id: ("N", *fitted)} if fitted is not None else {}
    if task == "seq2seq":
        target_in = _seq2seq_inputs(inputs, data, data_cfg, issues)
        if target_in is None:
            return issues
        bound[inputs[1].id] = ("N", *target_in)
    si = ShapeInference(graph, live=False, bound_inputs=bound)
    si.update()
    errors = si.errors()
    if errors:
        where = f"with the dataset's samples of shape {fmt_shape(fitted)}, " if fitted is not None else ""
        return issues + [Issue(f"{where}{e}", e.node, e.param) for e in errors]
    out_node = outputs[0]
    out_shape = si.info(out_node.id).inputs["x"]
    assert out_shape is not None
    if task not in ("adversarial", "contrastive"):  # contrastive: any embedding the projection head makes
        scored = {"distillation": "classification", "masked_image": "reconstruction",
                  "masked_tokens": "language_model"}.get(task, task)
        issues += _output_issues(scored, out_node.name, out_shape, data, fitted)
    if task == "distillation" and fitted is not None:  # the teacher loads, reads these samples, scores these classes
        from .distill import teacher_problems

        channels = data.sample_shape[0] if len(data.sample_shape) == 3 else None
        issues += [Issue(m, node, path=path) for m, node, path in
                   teacher_problems(project, training, data_cfg, fitted, channels, tuple(out_shape), out_node.name)]
    if task == "masked_tokens":  # the mask token's id is the vocabulary's size: the Embedding needs a row for it
        data = replace(data, id_range=(data.id_range[0], max(data.id_range[1], data.num_classes)))
    issues += _id_issues(graph, si, model_input, data)
    issues += _batchnorm_issues(graph, si, data, data_cfg)
    if training.get("privacy"):  # what Opacus cannot train, on its node
        from .privacy import privacy_issues

        issues += privacy_issues(graph)
    batch = int(data_cfg["batch_size"])
    table = cost_table(graph, si, batch=batch)
    need = training_bytes(table, training.get("optimizer", "adam"))
    disc = project.graphs.get("discriminator") if task == "adversarial" else None
    if disc is not None:
        dsi = ShapeInference(disc, live=False)
        dsi.update()
        dtable = cost_table(disc, dsi, batch=batch)
        need += training_bytes(dtable, training.get("optimizer", "adam"))
        table.nodes += dtable.nodes
    err = too_big(table, need, f"one training step at batch size {batch}", budget, "activation_bytes")
    if err is not None:
        issues.append(Issue(str(err), err.node, path="data.batch_size"))
    return issues


def _split_issues(data: DataInfo, data_cfg: dict[str, Any]) -> list[Issue]:
    n = data.samples
    n_val = round(n * float(data_cfg.get("val_fraction", 0.2)))
    n_test = round(n * float(data_cfg.get("test_fraction", 0.0)))
    if n - n_val - n_test < 1:
        return [Issue(f"the splits leave no training samples ({n} samples, validation {n_val}, test {n_test})",
                      path="data.val_fraction")]
    return []


def _fit(node: Any, data: DataInfo, data_cfg: dict[str, Any], issues: list[Issue]) -> tuple[int, ...] | None:
    """The Input's shape (batch excluded) with the data's sizes, or None with an issue."""
    want = tuple(node.params["shape"])
    try:
        # one sample of zeros: fit_to_input's reshapes need a size to infer -1 from
        fitted = fit_to_input(torch.zeros((1, *data.sample_shape)), want, data_cfg.get("layout", "auto"), data.name)
    except DataError as exc:
        issues.append(Issue(f'Input "{node.name}": {exc}', node.name, "shape"))
        return None
    return tuple(int(d) for d in fitted.shape[1:])


def _seq2seq_inputs(inputs: list[Any], data: DataInfo, data_cfg: dict[str, Any],
                    issues: list[Issue]) -> tuple[int, ...] | None:
    """The second Input's shape fitted to the shifted targets (BOS first, the last token dropped), or None
    with an issue; both Inputs must read integer ids."""
    for node, side in zip(inputs, ("source", "target"), strict=True):
        if node.params.get("dtype") != "int64":
            issues.append(Issue(f'Input "{node.name}": the seq2seq task feeds it the {side} token ids; set its '
                                "dtype to int64", node.name, "dtype"))
    steps = data.target_shape[0] - 1 if data.target_shape else 0
    if steps < 1:
        issues.append(Issue(f"the dataset {data.name} has no target tokens to learn", path="data.dataset"))
        return None
    shifted = replace(data, name=f"{data.name} targets (shifted)", sample_shape=(steps,))
    return _fit(inputs[1], shifted, data_cfg, issues)


def _per_sample(shape: Shape) -> int | None:
    dims = shape[1:]
    return math.prod(dims) if all(isinstance(d, int) for d in dims) else None  # type: ignore[arg-type]


def _output_issues(task: str, name: str, out: Shape, data: DataInfo, fitted: tuple[int, ...] | None) -> list[Issue]:
    label = f'Output "{name}"'
    if task == "classification":
        if len(out) != 2:
            return [Issue(f"{label}: classification needs the Output to be [N, {data.num_classes or 'classes'}], got "
                          f"{fmt_shape(out)}; add a Flatten and a Linear layer before the Output", name)]
        if data.num_classes and out[1] != data.num_classes:
            return [Issue(f"{label}: the dataset {data.name} has {data.num_classes} classes but the Output gives "
                          f"{out[1]} values per sample ({fmt_shape(out)}); set the last Linear layer's out_features "
                          f"to {data.num_classes}", name)]
        return []
    if task == "seq2seq":
        steps = data.target_shape[0] - 1 if data.target_shape else None  # the target without its BOS
        want = f"[N, {steps or 'T'}, {data.num_classes or 'vocabulary'}]"
        if len(out) != 3 or (data.num_classes and out[2] != data.num_classes) or (steps and out[1] != steps):
            return [Issue(f"{label}: seq2seq needs the Output to be {want} (a score per vocabulary entry for each "
                          f"target token), got {fmt_shape(out)}", name)]
        return []
    if task == "language_model":
        steps = data.target_shape[0] if data.target_shape else None
        want = f"[N, {steps or 'T'}, {data.num_classes or 'vocabulary'}]"
        if len(out) != 3 or (data.num_classes and out[2] != data.num_classes) or (steps and out[1] != steps):
            return [Issue(f"{label}: a language model needs the Output to be {want} (a score per token and step), "
                          f"got {fmt_shape(out)}", name)]
        return []
    target = fitted if task == "reconstruction" else data.target_shape
    if target is None:
        return [Issue(f"the task {task} needs targets, but the dataset {data.name} has none", path="training.task")]
    got = _per_sample(out)
    if got is not None and got != math.prod(target):
        what = "the input it reconstructs" if task == "reconstruction" else "the target"
        return [Issue(f"{label}: {task} needs the Output to have the shape of {what}, {fmt_shape(target)} per "
                      f"sample ({math.prod(target)} values), got {fmt_shape(out)} ({got} values)", name)]
    return []


def _id_issues(graph: Graph, si: ShapeInference, model_input: Any, data: DataInfo) -> list[Issue]:
    """Token ids outside an Embedding's table fail on the batch that holds them."""
    if not str(model_input.params.get("dtype", "")).startswith("int"):
        return []
    kinds, _ = infer_dtypes(graph)
    lo, hi = data.id_range
    if data.target_id_range is not None:  # seq2seq: the ids of both sides, whichever Input an Embedding reads
        lo, hi = min(lo, data.target_id_range[0]), max(hi, data.target_id_range[1])
    issues = []
    for node in graph:
        key = {"Embedding": "num_embeddings", "TokenPositionEmbedding": "vocab_size"}.get(node.type)
        edge = graph.edge_into(node.id, "x") if key else None
        if edge is None or kinds.get((edge.src, edge.src_port)) != INT:
            continue
        if lo < 0 or hi >= node.params[key]:
            issues.append(Issue(f'{node.spec.name} "{node.name}": the dataset {data.name} holds ids from {lo} to {hi} '
                                f"but {key}={node.params[key]} covers 0 to {node.params[key] - 1}; set {key} to at "
                                f"least {hi + 1}" + (" (negative ids cannot be looked up: use a float32 Input)"
                                                     if lo < 0 else ""), node.name, key))
    return issues


def _batchnorm_issues(graph: Graph, si: ShapeInference, data: DataInfo, data_cfg: dict[str, Any]) -> list[Issue]:
    """BatchNorm cannot train on one value per channel: a batch of one sample without spatial
    dimensions (the last, partial batch counts)."""
    bs = int(data_cfg["batch_size"])
    n = data.samples
    n_train = n - round(n * float(data_cfg.get("val_fraction", 0.2))) - round(n * float(data_cfg.get("test_fraction", 0)))
    smallest = bs if n_train % bs == 0 else min(bs, n_train % bs)
    issues = []
    for node in graph:
        if node.type not in ("BatchNorm1d", "BatchNorm2d", "BatchNorm3d"):
            continue
        shape = si.info(node.id).inputs.get("x")
        spatial = _per_sample(("N", *shape[2:])) if shape else None
        if spatial == 1 and smallest == 1:
            issues.append(Issue(f'{node.spec.name} "{node.name}": a training batch of 1 sample gives it one value per '
                                f"channel, which it cannot normalise ({n_train} training samples in batches of {bs}); "
                                "change data.batch_size", node.name, path="data.batch_size"))
    return issues


def _adversarial(project: Any, data: DataInfo, data_cfg: dict[str, Any]) -> list[Issue]:
    """The generator's noise, its samples, and the discriminator that reads them and the data."""
    disc = project.graphs.get("discriminator")
    if disc is None:
        return [Issue("the adversarial task needs a discriminator graph", path="graphs.discriminator")]
    gen = project.graph
    dsi = ShapeInference(disc, live=False)
    dsi.update()
    label = "the discriminator: "
    errors = [Issue(f"{label}{e}", e.node, e.param, "graphs.discriminator") for e in dsi.errors()]
    if errors:
        return errors
    issues = graph_issues(disc, dsi, label)
    d_inputs, d_outputs = disc.inputs(), disc.outputs()
    if len(d_inputs) != 1 or not d_outputs:
        return [*issues, Issue(f"{label}needs exactly one Input and an Output", path="graphs.discriminator")]
    noise = gen.inputs()[0]
    if any(isinstance(d, str) for d in noise.params["shape"]):
        issues.append(Issue(f'Input "{noise.name}": the generator\'s Input (the noise) needs a fixed shape',
                            noise.name, "shape"))
    gsi = ShapeInference(gen, live=False)
    gsi.update()
    produced = gsi.info(gen.outputs()[0].id).inputs.get("x")
    wanted = dsi.info(d_inputs[0].id).outputs["y"]
    if produced is not None and tuple(produced[1:]) != tuple(wanted[1:]):
        issues.append(Issue(f"the generator makes samples of shape {fmt_shape(produced[1:])} but the discriminator's "
                            f"Input expects {fmt_shape(wanted[1:])} (Input \"{d_inputs[0].name}\")",
                            gen.outputs()[0].name))
    verdict = dsi.info(d_outputs[0].id).inputs.get("x")
    if verdict is not None and _per_sample(verdict) != 1:
        issues.append(Issue(f'{label}Output "{d_outputs[0].name}" must give one score per sample, got '
                            f"{fmt_shape(verdict)}", d_outputs[0].name, path="graphs.discriminator"))
    real: list[Issue] = []
    _fit(d_inputs[0], data, data_cfg, real)
    return issues + [Issue(f"{label}{i.message}", i.node, i.param, "graphs.discriminator") for i in real]


# --------------------------------------------------------------------------- entry points


def check_issues(project: Any, si: ShapeInference) -> tuple[list[Issue], list[str]]:
    """For ``workbench check``: errors beyond shape inference, and warnings (data not there).

    Shape errors themselves are not repeated; the data is described only when the graph
    compiles, since its fit to the data means nothing before.
    """
    pending: list[str] = []  # warnings: what this machine lacks (data, a trained source to transfer from)
    issues = (graph_issues(project.graph, si) + settings_issues(project.data, project.training)
              + task_issues(project, project.training, pending))
    disc = project.graphs.get("discriminator")
    if project.training["task"] == "adversarial" and disc is not None:  # whether or not the data is here
        dsi = ShapeInference(disc, live=False)
        dsi.update()
        label = "the discriminator: "
        issues += [Issue(f"{label}{e}", e.node, e.param, "graphs.discriminator") for e in dsi.errors()]
        issues += [] if dsi.errors() else graph_issues(disc, dsi, label)
    if si.errors() or not project.graph.inputs() or not project.graph.outputs() or issues:
        return issues, pending
    try:
        data = describe_dataset(project.data)
    except DataError as exc:
        return issues, [*pending, f"data: the dataset cannot be loaded here ({exc}); its fit to the model was not "
                        "checked"]
    return issues + preflight(project, data), pending


def settings_issues(data_cfg: dict[str, Any], training: dict[str, Any]) -> list[Issue]:
    """Settings that are valid alone but not together, and a device this machine lacks."""
    from ..config import ConfigError, cross_check
    from .devices import DeviceError, resolve_device

    issues = []
    try:
        cross_check(data_cfg, training)
    except ConfigError as exc:
        issues.append(Issue(f"{exc.key}: {exc.detail}", path=exc.key))
    try:
        resolve_device(training["device"])
    except DeviceError as exc:
        issues.append(Issue(f"training.device: {exc}", path="training.device"))
    if training["task"] == "adversarial" and float(data_cfg.get("test_fraction", 0)) > 0:
        issues.append(Issue("data.test_fraction: the adversarial task has no test metrics (its model is fed noise, "
                            "not samples); set test_fraction to 0", path="data.test_fraction"))
    return issues


def task_issues(project: Any, training: dict[str, Any], pending: list[str] | None = None) -> list[Issue]:
    """Transfer (``init_from``, frozen nodes) and self-supervised settings checked against the project
    (``pending``: see :func:`~workbench.training.transfer.transfer_issues`)."""
    from .self_supervised import ssl_issues
    from .transfer import transfer_issues

    return transfer_issues(project, training, pending) + ssl_issues(project, training) + _float64_issues(project, training)


def _float64_issues(project: Any, training: dict[str, Any]) -> list[Issue]:
    """A float64 Input makes the model compute in float64: mixed precision would lower it, and MPS has none."""
    node = next((n for n in project.graph.inputs() if n.params.get("dtype") == "float64"), None)
    if node is None:
        return []
    where = f'Input "{node.name}" is float64 (the model computes in float64)'
    issues = []
    if training["precision"] != "fp32":
        issues.append(Issue(f"training.precision: {where}, which {training['precision']} mixed precision would "
                            "lower; use fp32, or make the Input float32", node.name, "dtype", "training.precision"))
    from .devices import DeviceError, resolve_device

    try:
        on_mps = resolve_device(training["device"]).type == "mps"  # "auto" picks MPS on a Mac
    except DeviceError:
        on_mps = False  # settings_issues reports the device
    if on_mps:
        issues.append(Issue(f"training.device: {where}, and MPS devices have no float64; use cpu or cuda, or make "
                            "the Input float32", node.name, "dtype", "training.device"))
    return issues


def preflight_training(project: Any, training: dict[str, Any], data_cfg: dict[str, Any]) -> DataInfo:
    """What :class:`~workbench.training.engine.Trainer` runs before it allocates anything.

    Raises:
        PreflightError: listing every located problem.
        DataError: the dataset cannot be loaded.
    """
    si = ShapeInference(project.graph, live=False)
    si.update()
    if si.errors():
        from ..errors import CompileError

        raise CompileError(si.errors())
    issues = graph_issues(project.graph, si) + settings_issues(data_cfg, training) + task_issues(project, training)
    data = describe_dataset(data_cfg)
    issues += [] if issues else preflight(project, data, training, data_cfg)
    if issues:
        raise PreflightError(issues)
    return data


__all__ = ["DataInfo", "Issue", "PreflightError", "check_issues", "describe", "describe_dataset", "preflight",
           "preflight_training"]
