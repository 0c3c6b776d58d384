"""Knowledge distillation: a trained teacher's softened predictions teach the student graph.

The ``distillation`` task trains the project's graph (the student) on classification data with

    loss = alpha x KL(softmax(teacher / T) || softmax(student / T)) x T² + (1 - alpha) x cross-entropy

(Hinton et al., 2015: the T² keeps the soft term's gradients on the scale of the hard one's as T
changes).  The teacher is another project with its trained weights (``training.teacher``, a path
beside the student's project or absolute, and ``training.teacher_checkpoint``, else the teacher
project's own weights file); it reads the same samples, reshaped to its Input, and is never trained.
Validation scores the student alone, as classification does.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from ..compiler import Compiled, compile_graph
from ..data import DataError, fit_to_input
from ..errors import CompileError, InputError, WorkbenchError
from .tasks import loss_fn

#: the tasks a teacher may have been trained for (its Output gives class scores)
TEACHER_TASKS = ("classification", "distillation")


class TeacherError(WorkbenchError):
    """The teacher cannot be used; ``path`` names the setting (``training.teacher``...), ``node`` the
    node when there is one."""

    def __init__(self, message: str, path: str, node: str | None = None) -> None:
        super().__init__(message)
        self.path = path
        self.node = node


def distillation_loss(student: torch.Tensor, teacher: torch.Tensor, y: torch.Tensor, temperature: float,
                      alpha: float, num_classes: int = 0) -> torch.Tensor:
    """``alpha`` x KL of the softened distributions x T² + (1 - ``alpha``) x cross-entropy with the labels."""
    hard = loss_fn("classification", student, y, num_classes)
    if alpha == 0:
        return hard
    t = float(temperature)
    soft = F.kl_div(F.log_softmax(student.float() / t, dim=1), F.log_softmax(teacher.float() / t, dim=1),
                    reduction="batchmean", log_target=True) * (t * t)
    return alpha * soft + (1 - alpha) * hard


def resolve(project: Any, value: str) -> Path:
    """A path setting: absolute, or relative to the student's project folder (the current folder
    for an unsaved project)."""
    p = Path(value).expanduser()
    if p.is_absolute():
        return p
    base = project.path.parent if getattr(project, "path", None) is not None else Path.cwd()
    return base / p


@dataclass
class LoadedTeacher:
    """The teacher project compiled with its weights."""

    name: str
    project: Any
    compiled: Compiled
    weights: str


def load_teacher_model(project: Any, training: dict[str, Any]) -> LoadedTeacher:
    """Load and compile the teacher with its trained weights.

    Raises:
        TeacherError: located at the setting at fault (no teacher set, unreadable, not a
            classifier, no weights, weights that do not fit).
    """
    from ..project import load_project
    from ..weights import apply_state, load_checkpoint

    if not training.get("teacher"):
        raise TeacherError("training.teacher: the distillation task needs a teacher: a trained project (path "
                           "beside this project, or absolute)", "training.teacher")
    path = resolve(project, training["teacher"])
    try:
        teacher = load_project(path)
    except InputError as exc:
        raise TeacherError(f"training.teacher: {exc}", "training.teacher") from None
    if teacher.training["task"] not in TEACHER_TASKS:
        raise TeacherError(f"training.teacher: {path.name} was set up for the {teacher.training['task']} task; a "
                           "teacher must be a classifier (its Output gives class scores)", "training.teacher")
    try:
        with torch.random.fork_rng(devices=[]):  # the teacher's throw-away initial weights must not move the
            compiled = compile_graph(teacher.graph)  # student's: a run is the same whether it has a teacher or not
    except CompileError as exc:
        raise TeacherError(f"training.teacher: the graph of {path.name} has errors: {exc.errors[0]}",
                           "training.teacher") from None
    if len(compiled.inputs) != 1:
        raise TeacherError(f"training.teacher: {path.name} has {len(compiled.inputs)} Inputs; a teacher reads the "
                           "samples through one", "training.teacher")
    if training.get("teacher_checkpoint"):
        ckpt, key = resolve(project, training["teacher_checkpoint"]), "training.teacher_checkpoint"
    elif teacher.weights_path() is not None:
        ckpt, key = teacher.weights_path(), "training.teacher"
    else:
        raise TeacherError(f"training.teacher_checkpoint: the teacher {path.name} has no weights file; give its "
                           "trained checkpoint (runs/.../checkpoints/best.safetensors)", "training.teacher_checkpoint")
    assert ckpt is not None
    try:
        apply_state(compiled.module, load_checkpoint(ckpt).state(), str(ckpt))
    except WorkbenchError as exc:  # unreadable, or tensors that do not fit the teacher's graph
        raise TeacherError(f"{key}: {exc}", key) from None
    compiled.module.eval()
    for p in compiled.module.parameters():
        p.requires_grad_(False)
    return LoadedTeacher(teacher.name, teacher, compiled, ckpt.name)


def teacher_input_shape(loaded: LoadedTeacher, student_sample: tuple[int, ...], layout: str,
                        image_channels: int | None) -> tuple[int, ...]:
    """The shape the teacher reads a sample in (the student's samples reshaped to its Input).

    Raises:
        TeacherError: the samples do not fit the teacher's Input (located at it).
    """
    spec = loaded.compiled.inputs[0]
    want = spec.shape[1:]
    if layout == "rows" and image_channels and image_channels > 1 and tuple(want) != tuple(student_sample):
        raise TeacherError(f'the teacher\'s Input "{spec.node}": the student reads {image_channels}-channel images row '
                           "by row (layout rows), so the teacher would get their values in another order; give the "
                           f"teacher an Input of shape {list(student_sample)}", "training.teacher", spec.node)
    try:
        fitted = fit_to_input(torch.zeros((1, *student_sample)), want, "auto", "the student's samples")
    except DataError as exc:
        raise TeacherError(f'the teacher\'s Input "{spec.node}": {exc}', "training.teacher", spec.node) from None
    return tuple(int(d) for d in fitted.shape[1:])


class Teacher:
    """A loaded teacher on a device: its logits for a batch of the student's samples, and the loss."""

    def __init__(self, loaded: LoadedTeacher, sample_shape: tuple[int, ...], temperature: float, alpha: float,
                 device: torch.device) -> None:
        self.loaded = loaded
        self.module: nn.Module = loaded.compiled.module.to(device).eval()
        self.sample_shape = sample_shape
        self.temperature, self.alpha = temperature, alpha
        self.float_input = loaded.compiled.inputs[0].dtype != "int64"

    def logits(self, x: torch.Tensor) -> torch.Tensor:
        x = x.reshape(x.shape[0], *self.sample_shape)
        x = x.float() if self.float_input else x.long()
        with torch.no_grad():
            out = self.module(x)
        return out[0] if isinstance(out, tuple) else out

    def loss(self, student: torch.Tensor, x: torch.Tensor, y: torch.Tensor, num_classes: int) -> torch.Tensor:
        teacher = self.logits(x)
        if teacher.shape != student.shape:
            raise TeacherError(f"training.teacher: the teacher gives {list(teacher.shape)} for the batch but the "
                               f"student gives {list(student.shape)}", "training.teacher")
        return distillation_loss(student, teacher, y, self.temperature, self.alpha, num_classes)


def load_teacher(project: Any, training: dict[str, Any], data_cfg: dict[str, Any], student_sample: tuple[int, ...],
                 image_channels: int | None, device: torch.device) -> Teacher:
    """The teacher, ready for :meth:`Teacher.loss` (what the trainer calls; the pre-flight has
    already reported what :func:`teacher_problems` finds)."""
    loaded = load_teacher_model(project, training)
    shape = teacher_input_shape(loaded, student_sample, data_cfg.get("layout", "auto"), image_channels)
    return Teacher(loaded, shape, float(training["temperature"]), float(training["alpha"]), device)


def teacher_problems(project: Any, training: dict[str, Any], data_cfg: dict[str, Any],
                     student_sample: tuple[int, ...] | None, image_channels: int | None,
                     student_output: tuple[Any, ...] | None, output_name: str) -> list[tuple[str, str | None, str]]:
    """What keeps the teacher from teaching: (message, node, JSON path) triples for the pre-flight."""
    try:
        loaded = load_teacher_model(project, training)
        if student_sample is None:
            return []
        shape = teacher_input_shape(loaded, student_sample, data_cfg.get("layout", "auto"), image_channels)
    except TeacherError as exc:
        return [(str(exc), exc.node, exc.path)]
    from ..shapes import ShapeInference

    graph = loaded.project.graph
    si = ShapeInference(graph, live=False, bound_inputs={graph.inputs()[0].id: ("N", *shape)})
    si.update()
    if si.errors():
        e = si.errors()[0]
        return [(f"training.teacher: with the student's samples as {list(shape)}, the teacher fails: {e}", None,
                 "training.teacher")]
    out = si.info(graph.outputs()[0].id).inputs.get("x")
    if student_output is not None and out is not None and tuple(out) != tuple(student_output):
        return [(f'Output "{output_name}": the teacher {loaded.name!r} gives {_fmt(out)} but the student gives '
                 f"{_fmt(student_output)}; both must score the same classes", output_name, "training.teacher")]
    return []


def _fmt(shape: tuple[Any, ...]) -> str:
    from ..layers.dims import fmt_shape

    return fmt_shape(shape)
