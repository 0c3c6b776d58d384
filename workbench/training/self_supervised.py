"""Self-supervised tasks: contrastive (SimCLR), masked image modelling, masked-token prediction.

Each is a step strategy the engine asks for the training loss of a batch and for the validation
metrics; the loop itself does not change (see ``Trainer._train_epoch``).

- ``contrastive``: two views of every image (``ssl_ops.ViewPipeline``) go through the whole model;
  its output (the projection head's) is scored by NT-Xent.  Nodes marked ``role: projection_head``
  form the head; everything before them is the **encoder**, which is what is evaluated (a linear
  probe and a k-NN vote on its features, fitted on the labelled training split and scored on the
  validation split, every epoch, beside the same encoder at random initialisation) and what is
  kept (``encoder.json`` + ``encoder.safetensors`` in the run folder: the head is dropped).
- ``masked_image``: a share (``mask_ratio``) of each image's ``patch_size`` patches is blanked (set to
  0, the mean of standardised data) and the model must restore the image; the loss is the squared error
  on the masked patches only (SimMIM-style: the encoder sees the blanks, it does not drop them).
- ``masked_tokens``: a share of the tokens of each text window is replaced by a mask token (id =
  the vocabulary size, so the Embedding needs one row more) and the model must name the originals;
  cross-entropy and accuracy on the masked positions only.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F

from ..compiler import compile_graph
from ..errors import WorkbenchError
from ..graph import Graph
from ..node_training import flag
from .ssl_ops import ViewPipeline, knn_accuracy, linear_probe, masked_mse, nt_xent, patch_mask, token_mask

SSL_TASKS = ("contrastive", "masked_image", "masked_tokens")


class SelfSupervisedError(WorkbenchError):
    """The graph or data do not fit a self-supervised task; the message names the node or setting."""


def head_nodes(graph: Graph) -> list[str]:
    """Ids of the nodes marked as the projection head."""
    return [n.id for n in graph if flag(n.train, "role") == "projection_head"]


def encoder_graph(graph: Graph) -> Graph:
    """The graph without its projection head: the head's nodes are removed and the Output reads what
    the head read (the representation).

    Raises:
        SelfSupervisedError: no head, or the head is not one chain between the encoder and one Output.
    """
    heads = set(head_nodes(graph))
    if not heads:
        raise SelfSupervisedError("the contrastive task needs a projection head: mark its nodes with "
                                  "role projection_head (inspector: Training > role)")
    outputs = graph.outputs()
    into = [e for h in heads for e in graph.edges_into(h) if e.src not in heads]
    fed = [o for o in outputs if any(e.src in heads for e in graph.edges_into(o.id))]
    names = ", ".join(graph.node(h).name for h in sorted(heads, key=graph.index_of))
    if len(into) != 1 or len(fed) != 1 or len(outputs) != 1:
        raise SelfSupervisedError(f"the projection head ({names}) must be one chain read by the model's only Output "
                                  f"and fed by exactly one wire from the encoder (found {len(into)} wire(s) in, "
                                  f"{len(outputs)} Output(s))")
    leaks = [graph.node(e.dst).name for h in heads for e in graph.edges_from(h) if e.dst not in heads
             and e.dst != fed[0].id]
    if leaks:
        raise SelfSupervisedError(f"the projection head ({names}) feeds {', '.join(leaks)}, which is not part of it")
    g = graph.copy()
    for h in heads:
        g.remove_node(h)
    g.connect(into[0].src, into[0].src_port, fed[0].id, g.node(fed[0].id).input_ports[0])
    return g


def _features(module: torch.nn.Module, x: torch.Tensor, device: torch.device) -> torch.Tensor:
    module.eval()
    out = []
    with torch.no_grad():
        for start in range(0, x.shape[0], 512):
            f = module(x[start:start + 512].to(device))
            out.append((f[0] if isinstance(f, tuple) else f).float().flatten(1).cpu())
    return torch.cat(out)


class Contrastive:
    """SimCLR on the trainer's model (see the module docstring)."""

    def __init__(self, trainer: Any) -> None:
        cfg = trainer.cfg
        self.trainer = trainer
        self.views = ViewPipeline(cfg["view_crop"], cfg["view_flip"], cfg["view_jitter"], cfg["view_noise"])
        self.temperature = float(cfg["ssl_temperature"])
        self.knn_k = int(cfg["knn_k"])
        train_x = trainer.data.train.tensors[0]
        if train_x.ndim != 4:
            raise SelfSupervisedError(f"the contrastive task makes views of images: the Input must be an image "
                                      f"[C, H, W] (the batches are {list(train_x.shape[1:])})")
        self.enc_graph = encoder_graph(trainer.project.graph)
        self.encoder = compile_graph(self.enc_graph).module.to(trainer.device)
        samples = trainer.data.samples
        self.labelled = samples.kind == "classification" and trainer.data.val is not None
        self.classes = samples.num_classes
        self.baseline: dict[str, float] = {}
        if self.labelled:
            torch.manual_seed(cfg["seed"])  # the same initialisation the run started from
            fresh = compile_graph(self.enc_graph).module.to(trainer.device)
            self.baseline = {f"{k}_random": v for k, v in self._scores(fresh, trainer.data.val).items()}
            trainer.metric_name, trainer.metric_mode = "probe_accuracy", "max"
        else:
            trainer.metric_name, trainer.metric_mode = "loss", "min"

    def loss(self, model: torch.nn.Module, x: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
        v1, v2 = self.views(x, gen), self.views(x, gen)
        out = model(torch.cat([v1, v2]))
        z = out[0] if isinstance(out, tuple) else out
        return nt_xent(z[: x.shape[0]], z[x.shape[0]:], self.temperature)

    def _scores(self, encoder: torch.nn.Module, split: Any) -> dict[str, float]:
        t = self.trainer
        xtr, ytr = t.data.train.tensors
        xte, yte = split.tensors
        ftr, fte = _features(encoder, xtr, t.device), _features(encoder, xte, t.device)
        return {"probe_accuracy": linear_probe(ftr, ytr, fte, yte, self.classes),
                "knn_accuracy": knn_accuracy(ftr, ytr, fte, yte, self.classes, self.knn_k)}

    def sync_encoder(self) -> torch.nn.Module:
        """The encoder with the model's current weights (its state is a subset of the model's)."""
        state = self.trainer.model.state_dict()
        self.encoder.load_state_dict({k: state[k] for k in self.encoder.state_dict()})
        return self.encoder

    def validate(self, split: Any, epoch: int) -> tuple[dict[str, float], dict[str, Any]]:
        t = self.trainer
        gen = torch.Generator().manual_seed(12345)  # the same views every epoch: comparable losses
        t.model.eval()
        total, n = 0.0, 0
        x = split.tensors[0]
        with torch.no_grad():
            for start in range(0, x.shape[0], 256):
                xb = x[start:start + 256].to(t.device)
                if xb.shape[0] < 2:
                    continue
                total += float(self.loss(t.model, xb, gen)) * xb.shape[0]
                n += xb.shape[0]
        metrics = {"loss": total / max(1, n)}
        if self.labelled:
            metrics.update(self._scores(self.sync_encoder(), split))
            metrics.update(self.baseline)
        first = x[:8]
        views = torch.cat([first, self.views(first.to(t.device), torch.Generator().manual_seed(7)).cpu(),
                           self.views(first.to(t.device), torch.Generator().manual_seed(8)).cpu()])
        return metrics, {"views": views}

    def finish(self, run_dir: Any) -> None:
        """Keep the encoder without its head beside the run's checkpoints."""
        from ..project import Project, save_project
        from ..weights import load_checkpoint, save_weights

        best = run_dir / "checkpoints" / "best.safetensors"
        if best.is_file():
            state = load_checkpoint(best).state()
            self.encoder.load_state_dict({k: state[k].to(self.trainer.device) for k in self.encoder.state_dict()})
        else:
            self.sync_encoder()
        p = self.trainer.project
        enc = Project(self.enc_graph, f"{p.name} encoder", f"The encoder of {p.name} without its projection head.",
                      dict(p.data), {**p.training, "task": "contrastive"}, "encoder.safetensors", blocks=p.blocks)
        save_weights(self.encoder, run_dir / "encoder.safetensors", {"project": p.name})
        save_project(enc, run_dir / "encoder.json")


class MaskedImage:
    """Masked image modelling (see the module docstring)."""

    def __init__(self, trainer: Any) -> None:
        cfg = trainer.cfg
        self.trainer = trainer
        self.patch, self.ratio = int(cfg["patch_size"]), float(cfg["mask_ratio"])
        x = trainer.data.train.tensors[0]
        if x.ndim != 4:
            raise SelfSupervisedError(f"the masked_image task masks image patches: the Input must be an image "
                                      f"[C, H, W] (the batches are {list(x.shape[1:])})")
        h, w = x.shape[2:]
        if h % self.patch or w % self.patch:
            raise SelfSupervisedError(f"training.patch_size: {self.patch} must divide the images' height and width "
                                      f"({h} x {w})")
        trainer.metric_name, trainer.metric_mode = "loss", "min"

    def _masked(self, model: torch.nn.Module, x: torch.Tensor, gen: torch.Generator
                ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        mask = patch_mask(x.shape, self.patch, self.ratio, gen).to(x.device)
        seen = x.masked_fill(mask, 0.0)
        out = model(seen)
        out = out[0] if isinstance(out, tuple) else out
        if out.shape != x.shape:
            raise SelfSupervisedError(f"masked_image needs the Output to have the Input's shape {list(x.shape[1:])}, "
                                      f"got {list(out.shape[1:])}")
        return out, mask, seen

    def loss(self, model: torch.nn.Module, x: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
        out, mask, _ = self._masked(model, x, gen)
        return masked_mse(out, x, mask)

    def validate(self, split: Any, epoch: int) -> tuple[dict[str, float], dict[str, Any]]:
        t = self.trainer
        gen = torch.Generator().manual_seed(12345)  # the same masks every epoch
        t.model.eval()
        total, whole, n = 0.0, 0.0, 0
        x = split.tensors[0]
        shown: dict[str, Any] = {}
        with torch.no_grad():
            for start in range(0, x.shape[0], 256):
                xb = x[start:start + 256].to(t.device)
                out, mask, seen = self._masked(t.model, xb, gen)
                total += float(masked_mse(out, xb, mask)) * xb.shape[0]
                whole += float(F.mse_loss(out.float(), xb.float())) * xb.shape[0]
                n += xb.shape[0]
                if not shown:
                    shown = {"inputs": seen[:16].float().cpu(), "samples": {"outputs": out[:16].float().cpu()}}
        return {"loss": total / max(1, n), "mse_all": whole / max(1, n)}, shown


class MaskedTokens:
    """Masked-token prediction on text (see the module docstring)."""

    def __init__(self, trainer: Any) -> None:
        cfg = trainer.cfg
        self.trainer = trainer
        self.ratio = float(cfg["mask_ratio"])
        samples = trainer.data.samples
        if samples.kind != "sequence":
            raise SelfSupervisedError(f"the masked_tokens task needs text (the 'text' dataset); {samples.name} has "
                                      f"{samples.kind} targets")
        self.vocab = len(samples.class_names)
        self.mask_id = self.vocab
        trainer.metric_name, trainer.metric_mode = "accuracy", "max"
        probe = trainer.data.train.tensors[0][:2].clone()
        probe[:, 0] = self.mask_id
        try:
            trainer.model.eval()
            with torch.no_grad():
                out = trainer.model(probe.to(trainer.device))
        except (IndexError, RuntimeError):
            raise SelfSupervisedError(f"masked_tokens feeds a mask token with id {self.mask_id} (the vocabulary has "
                                      f"{self.vocab} tokens): set the Embedding's num_embeddings to "
                                      f"{self.vocab + 1}") from None
        out = out[0] if isinstance(out, tuple) else out
        if out.ndim != 3 or out.shape[2] != self.vocab:
            raise SelfSupervisedError(f"masked_tokens needs the Output to be [N, T, {self.vocab}] (a score per "
                                      f"token), got {list(out.shape)}; end with a Linear layer of "
                                      f"out_features={self.vocab}")

    def _scored(self, model: torch.nn.Module, x: torch.Tensor, gen: torch.Generator
                ) -> tuple[torch.Tensor, torch.Tensor]:
        mask = token_mask(x.shape, self.ratio, gen).to(x.device)
        out = model(x.masked_fill(mask, self.mask_id))
        out = out[0] if isinstance(out, tuple) else out
        return out[mask], x[mask]

    def loss(self, model: torch.nn.Module, x: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
        logits, target = self._scored(model, x, gen)
        return F.cross_entropy(logits.float(), target)

    def validate(self, split: Any, epoch: int) -> tuple[dict[str, float], dict[str, Any]]:
        t = self.trainer
        gen = torch.Generator().manual_seed(12345)
        t.model.eval()
        loss, right, n = 0.0, 0, 0
        x = split.tensors[0]
        with torch.no_grad():
            for start in range(0, x.shape[0], 256):
                logits, target = self._scored(t.model, x[start:start + 256].to(t.device), gen)
                loss += float(F.cross_entropy(logits.float(), target, reduction="sum"))
                right += int((logits.argmax(-1) == target).sum())
                n += int(target.numel())
        return {"loss": loss / max(1, n), "accuracy": right / max(1, n)}, {}


def preview_views(x: torch.Tensor, training: dict[str, Any], count: int = 8) -> torch.Tensor | None:
    """What the task makes of the first ``count`` images, for the data preview: the originals, then two
    contrastive views of each (rows of ``count``), or the originals and their masked versions; None for
    tasks that do not change their inputs (or data that are not images)."""
    if x.ndim != 4 or training["task"] not in ("contrastive", "masked_image"):
        return None
    first = x[:count].float()
    if training["task"] == "contrastive":
        views = ViewPipeline(training["view_crop"], training["view_flip"], training["view_jitter"],
                             training["view_noise"])
        return torch.cat([first, views(first, torch.Generator().manual_seed(1)),
                          views(first, torch.Generator().manual_seed(2))])
    h, w = first.shape[2:]
    patch = int(training["patch_size"])
    if h % patch or w % patch:
        return None
    mask = patch_mask(first.shape, patch, float(training["mask_ratio"]), torch.Generator().manual_seed(1))
    return torch.cat([first, first.masked_fill(mask, 0.0)])


def make_task(trainer: Any) -> Contrastive | MaskedImage | MaskedTokens | None:
    """The trainer's self-supervised strategy, or None for the other tasks.

    Raises:
        SelfSupervisedError: the graph or data do not fit (named).
    """
    task = trainer.cfg["task"]
    kinds = {"contrastive": Contrastive, "masked_image": MaskedImage, "masked_tokens": MaskedTokens}
    return kinds[task](trainer) if task in kinds else None


def ssl_issues(project: Any, training: dict[str, Any]) -> list[Any]:
    """For ``workbench check`` and the pre-flight: a contrastive project without a usable projection head."""
    from .issues import Issue

    if training["task"] == "contrastive":
        try:
            encoder_graph(project.graph)
        except SelfSupervisedError as exc:
            heads = head_nodes(project.graph)
            return [Issue(str(exc), project.graph.node(heads[0]).name if heads else None,
                          "train.role" if heads else None, None if heads else "training.task")]
    if training["task"] == "masked_image":
        patch = int(training["patch_size"])
        for node in project.graph.inputs():
            dims = list(node.params.get("shape", ()))[-2:]
            if len(dims) == 2 and all(isinstance(d, int) for d in dims) and any(d % patch for d in dims):
                return [Issue(f"training.patch_size: {patch} must divide the images' height and width "
                              f"({dims[0]} x {dims[1]}, Input \"{node.name}\")", node.name, path="training.patch_size")]
    return []
