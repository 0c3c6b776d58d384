"""Pruning: structured (whole channels removed: a smaller, editable project) and unstructured
(the smallest weights set to zero: the same project, sparse weights).

Both measure the model before and after on the validation split; structured pruning can
fine-tune the smaller model (a training run of the new project, beside it in ``runs/``).
"""

from __future__ import annotations

import tempfile
import zlib
from pathlib import Path
from typing import Any

import torch
from torch import nn

from ..compiler import Compiled, compile_graph
from ..errors import NodeNotFoundError
from ..export.onnx_export import export_inputs, model_with_weights
from ..fileio import check_output_target, refuse_overwriting_inputs
from ..project import Project, project_from_dict, save_project
from ..weights import apply_state, read_checkpoint, save_bytes, save_checkpoint, save_weights, state_tensors
from .channels import TRANSPOSED, ChannelGroup, channel_groups, describe, importance, keep_count, slice_state
from .evaluate import (
    EvalData,
    Latency,
    accuracy_drop,
    check_max_drop,
    count_macs,
    evaluate,
    interleaved,
    latency_rows,
    load_eval_data,
    metric_rows,
    speed_note,
    torch_runner,
)
from .report import (
    Cancelled,
    CompressError,
    CompressReport,
    Measure,
    Progress,
    ProgressFn,
    ResultRefused,
    StopFn,
    never_stop,
    no_progress,
)

CRITERIA = ("l1", "bn")
SCOPES = ("global", "layer")


class _Job:
    """What both kinds of pruning share: checks, the trained model, its data, the steps."""

    def __init__(self, project: Project, out: str | Path, checkpoint: Path | None, amount: float,
                 max_drop: float | None, threads: int | None, progress: ProgressFn, stop: StopFn) -> None:
        if not 0.0 < amount < 1.0:
            raise CompressError(f"amount: expected a share of the weights or channels in (0, 1), got {amount}")
        self.out = Path(out)
        if self.out.suffix.lower() != ".json":
            raise CompressError(f"{self.out}: the pruned project is a project file: give a name ending in .json")
        self.weights_out = self.out.with_suffix(".safetensors")
        refuse_overwriting_inputs([("the pruned project", self.out), ("its weights", self.weights_out)],
                                  export_inputs(project, checkpoint))
        for target in (self.out, self.weights_out):
            check_output_target(target)
        check_max_drop(project.training["task"], max_drop)
        if checkpoint is None and project.weights_path() is None:
            raise CompressError("the project has no trained weights: give a checkpoint (--checkpoint) or load "
                                "weights into the project first")
        if threads is not None:
            torch.set_num_threads(threads)
        self.project, self.checkpoint, self.amount, self.max_drop = project, checkpoint, amount, max_drop
        self.progress, self.stop = progress, stop

    def load(self) -> None:
        """The trained model, the project's data, and the model's validation metrics."""
        self.step("data", "loading the trained model and the project's data", 0.0)
        self.compiled, self.weights_note = model_with_weights(self.project, self.checkpoint)
        self.data: EvalData = load_eval_data(self.project, self.compiled)
        self.before = evaluate(torch_runner(self.compiled.module), self.data)

    def step(self, phase: str, message: str, fraction: float | None) -> None:
        if self.stop():
            raise Cancelled("cancelled by the user; nothing was written")
        self.progress(Progress(phase, message, fraction))

    def copy(self, graph_changes: dict[str, dict[str, Any]], name: str) -> Project:
        """The project with ``graph_changes`` (node id -> parameters), its weights file beside ``out``."""
        new = project_from_dict(self.project.to_dict())
        for nid, params in graph_changes.items():
            new.graph.set_params(nid, params)
        new.name = name
        new.weights = self.weights_out.name
        new.path = self.out.resolve()
        return new

    def refuse_if_broken(self, report: CompressReport, after: dict[str, float]) -> None:
        if self.max_drop is not None and accuracy_drop(self.before, after) > self.max_drop:
            report.refused = (f"validation accuracy fell by {accuracy_drop(self.before, after):.2f} points "
                              f"({100 * self.before['accuracy']:.2f} % -> {100 * after['accuracy']:.2f} %), more than "
                              f"the limit of {self.max_drop:g}; nothing was written")
            raise ResultRefused(report)

    def latency(self, before: nn.Module, after: nn.Module) -> list[Measure]:
        before.eval()
        after.eval()

        def measure(batch: int) -> Latency:
            inputs = self.data.example(batch)

            def run(m: nn.Module) -> Any:
                with torch.no_grad():
                    return m(*inputs)

            return interleaved(lambda: run(before), lambda: run(after))

        threads = torch.get_num_threads()
        return latency_rows(measure, what=f"PyTorch CPU, {threads} thread{'s' if threads > 1 else ''}")

    def write(self, new: Project, module: nn.Module, report: CompressReport) -> None:
        self.step("write", f"writing {self.out} and {self.weights_out.name}", 0.97)
        save_weights(module, self.weights_out, {"project": new.name, "source": self.weights_note})
        save_project(new, self.out)
        report.outputs += [str(self.out), str(self.weights_out)]
        self.progress(Progress("done", "done", 1.0))


def prune_structured(project: Project, out: str | Path, checkpoint: Path | None = None, amount: float = 0.5,
                     criterion: str = "l1", nodes: list[str] | None = None, include_linear: bool = False,
                     finetune_epochs: int = 0, finetune_lr: float | None = None, max_drop: float | None = None,
                     threads: int | None = None, progress: ProgressFn = no_progress,
                     stop: StopFn = never_stop) -> CompressReport:
    """Remove ``amount`` of the output channels of every prunable convolution (or of ``nodes``),
    rewrite ``out_channels`` and the weights of the layers that read them, optionally fine-tune,
    and write the smaller project ``out`` with its weights ``out.safetensors``.

    Args:
        criterion: ``l1`` (the L1 norm of each filter) or ``bn`` (the BatchNorm scale after it).
        nodes: node names to prune (default: every convolution that can be); the producers their
            channels are tied to (a residual Add) are pruned with them.
        include_linear: also prune the hidden units of Linear layers on [N, features].
        finetune_epochs: train the pruned project this many epochs (its own training settings).
        finetune_lr: the fine-tuning learning rate (default: the project's).
        max_drop: refuse the result when validation accuracy (after fine-tuning) falls by more
            than this many points.
        threads: torch threads for the job and the measurements (default: torch's).

    Raises:
        CompressError: nothing can be pruned, or a named node cannot (with the reason, located);
        ResultRefused, Cancelled: nothing was written.
    """
    if criterion not in CRITERIA:
        raise CompressError(f"criterion: expected one of {', '.join(CRITERIA)}, got {criterion!r}")
    if finetune_epochs < 0:
        raise CompressError(f"finetune_epochs: expected an int >= 0, got {finetune_epochs}")
    if finetune_lr is not None and not 0 < finetune_lr <= 10:
        raise CompressError(f"finetune_lr: expected a learning rate in (0, 10], got {finetune_lr}")
    job = _Job(project, out, checkpoint, amount, max_drop, threads, progress, stop)
    graph = project.graph
    groups = channel_groups(graph, include_linear=include_linear)
    chosen = _choose(project, groups, nodes, include_linear)
    job.load()
    state = state_tensors(job.compiled.module)
    job.step("prune", f"ranking channels by {criterion}", 0.1)
    keep: dict[int, tuple[ChannelGroup, torch.Tensor]] = {}
    changes: dict[str, dict[str, Any]] = {}
    table: list[dict[str, Any]] = []
    for i, group in enumerate(chosen):
        k = keep_count(group.size, amount)
        if k == group.size:
            continue
        idx = importance(graph, group, state, criterion).topk(k).indices.sort().values
        keep[i] = (group, idx)
        for nid in group.producers:
            key = "out_features" if graph.nodes[nid].type == "Linear" else "out_channels"
            changes[nid] = {key: k}
    if not keep:
        raise CompressError(f"amount {amount:g} removes no channel (each group keeps at least one, rounded)")
    for group in groups:
        pruned = next((idx for g, idx in keep.values() if g is group), None)
        for nid in group.producers:
            node = graph.nodes[nid]
            table.append({"node": node.name, "type": node.type,
                          "channels": f"{group.size} -> {len(pruned)}" if pruned is not None else str(group.size),
                          "status": (f"pruned ({criterion})" + (f" with {describe(graph, group)}"
                                                                 if len(group.producers) > 1 else "")
                                     if pruned is not None else "kept: " + ("; ".join(group.blockers[:2])
                                                                           or "not selected"))})
    new = job.copy(changes, f"{project.name} (pruned)")
    compiled = compile_graph(new.graph)
    apply_state(compiled.module, slice_state(graph, state, keep), "the pruned weights")
    job.step("evaluate", "re-estimating BatchNorm statistics and measuring the pruned model", 0.2)
    recalibrated = recalibrate_batchnorm(compiled.module, job.data)
    pruned_metrics = evaluate(torch_runner(compiled.module), job.data)
    report = CompressReport("structured channel pruning", nodes=table)
    report.notes.append(f"removed {amount:g} of the channels of {len(keep)} group(s) by {criterion} "
                        + ("(the L1 norm of each filter)" if criterion == "l1" else "(the BatchNorm scale)"))
    if recalibrated:
        report.notes.append(f"the running statistics of {recalibrated} BatchNorm layer(s) were re-estimated on the "
                            "training split (the inputs they normalise changed with the removed channels)")
    final = pruned_metrics
    if finetune_epochs:
        state_ft, run_dir = _finetune(job, new, compiled, finetune_epochs, finetune_lr)
        apply_state(compiled.module, state_ft, "the fine-tuned weights")
        final = evaluate(torch_runner(compiled.module), job.data)
        report.rows += metric_rows(job.before, pruned_metrics, job.data.task, " (pruned, before fine-tuning)")
        report.notes.append(f"fine-tuned {finetune_epochs} epoch(s) as a training run of the pruned project: {run_dir}")
    report.rows += metric_rows(job.before, final, job.data.task)
    job.step("measure", "counting MACs and measuring latency", 0.85)
    example = job.data.example(1)
    report.rows.append(Measure("MACs per sample", "MACs", count_macs(job.compiled.module, example),
                               count_macs(compiled.module, example), "ratio", "torch.utils.flop_counter"))
    report.rows.append(Measure("parameters", "params", job.compiled.total_params, compiled.total_params))
    report.rows.append(Measure("weights file", "bytes", len(save_bytes(state)),
                               len(save_bytes(state_tensors(compiled.module))), "ratio", "safetensors"))
    job.refuse_if_broken(report, final)
    report.rows += job.latency(job.compiled.module, compiled.module)
    report.notes.append(speed_note([r for r in report.rows if r.name.startswith("latency")]))
    job.write(new, compiled.module, report)
    return report


def recalibrate_batchnorm(module: nn.Module, data: EvalData, batch: int = 64) -> int:
    """Re-estimate every BatchNorm's running mean and variance on the training split, the rest of
    the model in evaluation mode; returns how many there were.

    The mean is the split's (each batch weighs by its size); the variance the size-weighted
    average of the batches' variances, as training would estimate it."""
    norms = [m for m in module.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm) and m.track_running_stats]
    if not norms:
        return 0
    module.eval()
    momenta = [m.momentum for m in norms]
    for m in norms:
        m.reset_running_stats()
        m.train()
    seen = 0
    with torch.no_grad():
        for inputs, _ in data.batches("train", batch):
            size = int(inputs[0].shape[0])
            seen += size
            for m in norms:
                m.momentum = size / seen  # a running average weighted by batch size, not an exponential one
            module(*inputs)
    for m, momentum in zip(norms, momenta, strict=True):
        m.momentum = momentum
    module.eval()
    return len(norms)


def _choose(project: Project, groups: list[ChannelGroup], nodes: list[str] | None,
            include_linear: bool) -> list[ChannelGroup]:
    graph = project.graph
    if not nodes:
        chosen = [g for g in groups if g.prunable]
        if not chosen:
            if not groups:
                what = "convolution or Linear layer" if include_linear else "convolution"
                raise CompressError(f"the model has no {what} whose output channels can be pruned"
                                    + ("" if include_linear else " (include_linear also prunes Linear layers)"))
            reasons = "; ".join(f"{describe(graph, g)}: {g.blockers[0]}" for g in groups)
            raise CompressError(f"no channels can be pruned: {reasons}")
        return chosen
    chosen = []
    for name in nodes:
        try:
            node = graph.by_name(name)
        except NodeNotFoundError:
            raise CompressError(f'nodes: no node named "{name}"') from None
        group = next((g for g in groups if node.id in g.producers), None)
        if group is None:
            raise CompressError(f'node "{name}" ({node.type}): not a layer whose output channels can be pruned '
                                "(convolutions with groups=1" + (", Linear on [N, features]" if include_linear else
                                                                 "; include_linear adds Linear layers") + ")")
        if not group.prunable:
            raise CompressError(f'node "{name}": its channels cannot be removed: {"; ".join(group.blockers)}')
        if all(g is not group for g in chosen):
            chosen.append(group)
    return chosen


def _finetune(job: _Job, new: Project, compiled: Compiled, epochs: int, lr: float | None
              ) -> tuple[dict[str, torch.Tensor], Path]:
    """Train the pruned project from its pruned weights (a run of its own); returns the last weights."""
    from ..training import Control, Trainer
    from ..training.runs import new_run_dir, runs_root

    control = Control()

    def listen(event: dict[str, Any]) -> None:
        if job.stop():
            control.stop.set()
        if event.get("type") == "epoch":
            job.progress(Progress("finetune", f"fine-tuning: epoch {event['epoch']} of {epochs}, validation accuracy "
                                  f"{100 * event.get('val_accuracy', float('nan')):.2f} %",
                                  0.25 + 0.6 * event["epoch"] / epochs))

    job.step("finetune", f"fine-tuning {epochs} epoch(s)", 0.25)
    run_dir = new_run_dir(runs_root(new.path), new.name)
    with tempfile.TemporaryDirectory(prefix="workbench-prune-") as tmp:
        start = Path(tmp) / "pruned.safetensors"
        save_checkpoint(start, compiled.module, None, {"epoch": 0, "step": 0, "project": new.name})
        trainer = Trainer(new, {"epochs": epochs, "lr": lr}, run_dir=run_dir, resume=start, listeners=[listen],
                          control=control)
        summary = trainer.run()
    if summary["status"] == "stopped":
        raise Cancelled(f"cancelled by the user during fine-tuning; nothing was written (the partial run is in "
                        f"{run_dir})")
    tensors, _, _ = read_checkpoint(run_dir / "checkpoints" / "last.safetensors")
    return tensors, run_dir


# --------------------------------------------------------------------------- unstructured

_WEIGHTED = (nn.Conv1d, nn.Conv2d, nn.Conv3d, nn.ConvTranspose1d, nn.ConvTranspose2d, nn.ConvTranspose3d, nn.Linear)


def _weight_tensors(compiled: Compiled) -> list[tuple[str, str, nn.Parameter]]:
    """(node path, layer kind, weight) of every convolution and Linear layer, blocks included."""
    names = compiled.node_name_of_attr()
    out = []
    for path, module in compiled.module.named_modules():
        if isinstance(module, _WEIGHTED) and isinstance(getattr(module, "weight", None), torch.Tensor):
            head, _, rest = path.partition(".")
            label = "/".join([names.get(head, head), *([p for p in rest.split(".") if p] if rest else [])])
            out.append((label, type(module).__name__, module.weight))
    return out


def prune_unstructured(project: Project, out: str | Path, checkpoint: Path | None = None, amount: float = 0.5,
                       scope: str = "global", max_drop: float | None = None, threads: int | None = None,
                       progress: ProgressFn = no_progress, stop: StopFn = never_stop) -> CompressReport:
    """Set the ``amount`` of convolution and Linear weights with the smallest magnitude to zero
    (over all of them, ``scope="global"``, or in each layer, ``"layer"``) and write the project
    ``out`` with the sparse weights ``out.safetensors``.

    The report says what such sparsity does here, measured: the dense file and dense kernels
    carry every zero (no smaller file, no speed-up); only compression of the file shows it.
    """
    if scope not in SCOPES:
        raise CompressError(f"scope: expected one of {', '.join(SCOPES)}, got {scope!r}")
    job = _Job(project, out, checkpoint, amount, max_drop, threads, progress, stop)
    job.load()
    dense_before = save_bytes(state_tensors(job.compiled.module))
    compiled, _ = model_with_weights(project, checkpoint)
    weights = _weight_tensors(compiled)
    if not weights:
        raise CompressError("the model has no convolution or Linear weights to prune")
    job.step("prune", f"zeroing the smallest {amount:g} of the weights ({scope})", 0.2)
    with torch.no_grad():
        if scope == "global":
            flat = torch.cat([w.detach().abs().flatten() for _, _, w in weights])
            k = round(amount * flat.numel())
            mask = torch.ones_like(flat, dtype=torch.bool)
            mask[flat.topk(k, largest=False).indices] = False
            offset = 0
            for _, _, w in weights:
                w.mul_(mask[offset:offset + w.numel()].reshape(w.shape))
                offset += w.numel()
        else:
            for _, _, w in weights:
                k = round(amount * w.numel())
                if k:
                    w.view(-1)[w.detach().abs().flatten().topk(k, largest=False).indices] = 0
    table = []
    zeros = total = 0
    for label, kind, w in weights:
        z = int((w == 0).sum())
        zeros, total = zeros + z, total + w.numel()
        table.append({"node": label, "type": kind, "weights": w.numel(), "zeros": z,
                      "sparsity": f"{100 * z / w.numel():.1f} %"})
    job.step("evaluate", "measuring the sparse model", 0.4)
    after = evaluate(torch_runner(compiled.module), job.data)
    report = CompressReport(f"unstructured magnitude pruning ({scope})", nodes=table)
    report.rows += metric_rows(job.before, after, job.data.task)
    report.rows.append(Measure("zero weights (convolutions and Linear)", "%",
                               100 * sum(int((w == 0).sum()) for w in _dense_weights(job.compiled)) / total,
                               100 * zeros / total, "diff"))
    dense_after = save_bytes(state_tensors(compiled.module))
    report.rows.append(Measure("weights file (dense)", "bytes", len(dense_before), len(dense_after), "ratio",
                               "safetensors, as written"))
    report.rows.append(Measure("weights file, zlib-compressed", "bytes", len(zlib.compress(dense_before, 6)),
                               len(zlib.compress(dense_after, 6)), "ratio", "what the zeros would save compressed"))
    job.refuse_if_broken(report, after)
    job.step("measure", "measuring latency", 0.6)
    report.rows += job.latency(job.compiled.module, compiled.module)
    report.notes.append(speed_note([r for r in report.rows if r.name.startswith("latency")]))
    report.notes.append("unstructured sparsity does not shrink the dense weights file (every zero is stored) nor "
                        "speed up dense kernels (they multiply by the zeros too): the measurements above show it; "
                        "it pays off with sparse storage or sparse kernels, or as a step before structured pruning")
    new = job.copy({}, f"{project.name} (sparse)")
    job.write(new, compiled.module, report)
    return report


def _dense_weights(compiled: Compiled) -> list[torch.Tensor]:
    return [w for _, _, w in _weight_tensors(compiled)]


__all__ = ["CRITERIA", "SCOPES", "TRANSPOSED", "prune_structured", "prune_unstructured"]
