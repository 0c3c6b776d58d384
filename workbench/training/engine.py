"""The training engine: one loop for the CLI (in-process) and the GUI (in a worker process).

The engine emits plain-dict events to listeners (run folder writer, progress
line, the worker's queue).  Pause and stop are flags checked at batch
boundaries; stop finishes the step and writes a consistent checkpoint.
Everything that can be decided before the first step (device, shapes, data) is.
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
import torch.fx as fx
from torch.utils.data import DataLoader, TensorDataset

from ..compiler import Compiled, compile_graph
from ..config import TRAINING_FIELDS, validate_section
from ..data import DataBundle, load_data
from ..errors import InputError
from ..project import Project
from ..weights import WeightsError, apply_state, graph_hash, load_checkpoint, restore_optimizer, save_checkpoint
from .adversarial import GanParts, gan_step, gan_validate, noise
from .devices import DeviceError, autocast_dtype, resolve_device
from .distributed import epoch_seeds
from .errors import TrainingError
from .runs import RunWriter, new_run_dir, runs_root
from .schedule import Schedule
from .self_supervised import make_task
from .seq2seq import greedy_decode, pairs_text
from .tasks import CLASSIFYING, MetricAccumulator, loss_fn, model_inputs, primary_metric
from .transfer import prepare_model, set_group_lrs

Event = dict[str, Any]
Listener = Callable[[Event], None]


class Control:
    """Pause and stop flags (threading or multiprocessing events both work)."""

    def __init__(self, pause: Any = None, stop: Any = None) -> None:
        self.pause = pause if pause is not None else threading.Event()
        self.stop = stop if stop is not None else threading.Event()


def _optimizer(cfg: dict[str, Any], params: Any) -> torch.optim.Optimizer:
    kind, lr, wd = cfg["optimizer"], cfg["lr"], cfg["weight_decay"]
    if kind == "sgd":  # nesterov without momentum is refused by config.cross_check (in the pre-flight)
        return torch.optim.SGD(params, lr=lr, momentum=cfg["momentum"], nesterov=cfg["nesterov"], weight_decay=wd)
    betas = (cfg["momentum"], 0.999)  # Adam's beta1 is its momentum (the default 0.9 is torch's)
    if kind == "adam":
        return torch.optim.Adam(params, lr=lr, betas=betas, weight_decay=wd)
    if kind == "adamw":
        return torch.optim.AdamW(params, lr=lr, betas=betas, weight_decay=wd)
    return torch.optim.RMSprop(params, lr=lr, momentum=cfg["momentum"], weight_decay=wd)


def first_nonfinite_node(compiled: Compiled, *inputs: torch.Tensor) -> str | None:
    """Run the module node by node and name the first node whose output is NaN or Inf."""
    found: list[str] = []

    class Probe(fx.Interpreter):
        def run_node(self, n: fx.Node) -> Any:
            result = super().run_node(n)
            if not found and torch.is_tensor(result) and result.is_floating_point() and not torch.isfinite(result).all():
                found.append(compiled.owner.get(n.name, n.name))
            return result

    with torch.no_grad():
        Probe(compiled.module).run(*inputs)
    return found[0] if found else None


class Trainer:
    """Trains a project's graph on its dataset.

    Args:
        project: the project (graph, data and training sections).
        overrides: training settings to replace (epochs, lr, seed, device, batch_size...).
        run_dir: where to write the run (default: a new folder under the project's ``runs/``).
        resume: a checkpoint to continue from (its run folder is reused unless ``run_dir`` is given).
        listeners: called with every event.
        control: pause/stop flags.
        stats_interval: seconds between per-layer statistics events.
        distributed: this process is one rank of a torchrun job (see :mod:`.distributed`): only rank 0
            writes the run folder and emits events.
    """

    def __init__(self, project: Project, overrides: dict[str, Any] | None = None, run_dir: Path | None = None,
                 resume: Path | None = None, listeners: list[Listener] | None = None,
                 control: Control | None = None, stats_interval: float = 0.25, distributed: bool = False) -> None:
        self.project = project
        overrides = {k: v for k, v in (overrides or {}).items() if v is not None}
        self.data_cfg = dict(project.data)
        if "batch_size" in overrides:
            self.data_cfg["batch_size"] = overrides.pop("batch_size")
        try:
            self.cfg = validate_section(TRAINING_FIELDS, {**project.training, **overrides})
        except ValueError as exc:
            raise TrainingError(f"training settings: {exc}") from None
        self.resume = Path(resume) if resume else None
        self.run_dir = run_dir
        self.listeners = list(listeners or [])
        self.control = control or Control()
        self.stats_interval = stats_interval
        self.status = "idle"
        self.distributed = distributed
        self.dist: Any = None  # a DistRun once prepared

    # ------------------------------------------------------------------ events
    def emit(self, event: Event) -> None:
        for listener in self.listeners:
            listener(event)

    # ------------------------------------------------------------------ set-up (all checks before the first step)
    def prepare(self) -> None:
        cfg = self.cfg
        if self.distributed:
            self._join()
        self.device = self.dist.device if self.dist is not None else resolve_device(cfg["device"])
        torch.manual_seed(cfg["seed"])
        from .preflight import preflight_training  # every located problem before anything is allocated

        preflight_training(self.project, cfg, self.data_cfg)
        self.compiled = compile_graph(self.project.graph)
        task = cfg["task"]
        wanted = 2 if task == "seq2seq" else 1  # seq2seq: the source, then the shifted target
        if len(self.compiled.inputs) != wanted:
            raise TrainingError(f"the {task} task needs {'exactly one Input' if wanted == 1 else 'two Inputs'}; this "
                                f"graph has {len(self.compiled.inputs)}")
        spec = self.compiled.inputs[0]
        self.gan: GanParts | None = None
        if task == "adversarial":
            spec = self._prepare_discriminator()
        noise_shape = tuple(int(d) for d in self.compiled.inputs[0].shape[1:]) if task == "adversarial" else ()
        self.data: DataBundle = load_data(self.data_cfg, spec.shape[1:], spec.dtype)
        kind = self.data.samples.kind
        if task in CLASSIFYING and kind != "classification":
            raise TrainingError(f"the task is {task} but {self.data.samples.name} has "
                                f"{kind} targets; choose the {'language_model' if kind == 'sequence' else 'regression'} task")
        if (task == "seq2seq") != (kind == "seq2seq"):
            raise TrainingError(f"the {task} task does not fit {self.data.samples.name}, which has {kind} targets")
        if task == "language_model" and kind != "sequence":
            raise TrainingError(f"a language model needs text data (the 'text' dataset); {self.data.samples.name} "
                                f"has {kind} targets")
        if self.data.val is None and (cfg["schedule"] == "plateau" or cfg["early_stopping"]):
            raise TrainingError(f"the {'plateau schedule' if cfg['schedule'] == 'plateau' else 'early stopping'} "
                                f"watches the validation split, but it is empty ({len(self.data.samples)} samples x "
                                f"val_fraction {self.data_cfg['val_fraction']} rounds to 0): raise data.val_fraction")
        self.val_labels = (self.data.val.tensors[1] if self.data.val is not None and kind == "classification"
                           else None)
        if task == "reconstruction":  # the target is the input itself
            self.data.train = TensorDataset(self.data.train.tensors[0], self.data.train.tensors[0])
            for split in ("val", "test"):
                ds = getattr(self.data, split)
                if ds is not None:
                    setattr(self.data, split, TensorDataset(ds.tensors[0], ds.tensors[0]))
        self.num_classes = (self.data.samples.num_classes if task in CLASSIFYING
                            else len(self.data.samples.class_names) if task in ("language_model", "seq2seq")
                            else 0)
        self.model = self.compiled.module.to(self.device)
        self.teacher = None
        if task == "distillation":  # the pre-flight has checked it; loading it here cannot surprise
            from .distill import load_teacher

            x = self.data.samples.x
            channels = int(x.shape[1]) if self.data.samples.image and x.ndim == 4 else None
            self.teacher = load_teacher(self.project, cfg, self.data_cfg, self.data.sample_shape, channels, self.device)
        self.optimizer = _optimizer(cfg, prepare_model(self))  # init_from, frozen nodes, per-node lr_scale
        if task == "adversarial":
            d = self.disc.module.to(self.device)
            self.gan = GanParts(self.model, d, self.optimizer, _optimizer(cfg, d.parameters()), noise_shape)
        self.privacy: Any = None
        if cfg["privacy"]:  # Opacus: per-sample clipping, noise, Poisson-sampled batches (see privacy.py)
            from .privacy import PrivateTraining

            self.privacy = PrivateTraining(self)
            self.optimizer = self.privacy.optimizer
        bs = int(self.data_cfg["batch_size"])
        self.steps_per_epoch = max(1, math.ceil(len(self.data.train) / bs))
        self.schedule = Schedule(cfg["schedule"], cfg["lr"], self.steps_per_epoch * cfg["epochs"],
                                 self.steps_per_epoch, cfg["warmup_epochs"] * self.steps_per_epoch,
                                 cfg["step_size"], cfg["gamma"])
        try:
            self.amp = autocast_dtype(self.device, cfg["precision"])
        except DeviceError as exc:
            raise TrainingError(f"training.precision: {exc}") from None
        self.scaler = torch.amp.GradScaler(self.device.type) if self.amp == torch.float16 else None
        self._check_precision()
        self.start_epoch, self.step = 0, 0
        self.start_step = 0  # the step this run began at (a resumed run's first step is not the first update)
        self._epochs_done = 0
        self.best: float | None = None
        self.metric_name, self.metric_mode = primary_metric(task)
        self.ssl = make_task(self)  # a self-supervised task's loss and evaluation (None for the others)
        if self.resume is not None:
            self._restore(self.resume)
        self.train_module: torch.nn.Module = self.model
        if self.dist is not None:  # every rank holds the same weights (the same seed, the same checkpoint)
            self.train_module = self.dist.wrap(self.model, unused=len(self.compiled.outputs) > 1)
        self.writer: RunWriter | None = None
        if self.dist is None or self.dist.is_main:
            if self.run_dir is None:
                self.run_dir = (self.resume.parent.parent if self.resume is not None
                                else new_run_dir(runs_root(self.project.path), self.project.name))
            self.writer = RunWriter(self.run_dir, {"project": self.project.to_dict(), "training": cfg,
                                                   "data": self.data_cfg, "device": str(self.device)})
            self.listeners.insert(0, self.writer)
        self._attr_names = self.compiled.node_name_of_attr()
        if self.writer is not None and cfg["tensorboard"]:
            from .tensorboard import MISSING_NOTE, tensorboard_logger

            board = tensorboard_logger(self.run_dir, self.model, self._attr_names,
                                       {"training": cfg, "data": self.data_cfg})
            if board is None:
                self.emit({"type": "log", "message": MISSING_NOTE})
            else:
                self.listeners.insert(1, board)

    def _join(self) -> None:
        """Refuse what data parallelism cannot do, then join the other ranks (device, backend, flags)."""
        from .distributed import DistRun, SyncedControl, refuse

        refuse(self.cfg["task"], int(self.data_cfg["batch_size"]), bool(self.cfg.get("privacy")))
        self.dist = DistRun.from_env(self.cfg["device"])
        if not self.dist.is_main:  # rank 0 alone reports and writes
            self.listeners, self.run_dir = [], None
        self.control = SyncedControl(self.control, self.dist.device)  # type: ignore[assignment]

    def _check_precision(self) -> None:
        """Run the model once under autocast, so a layer that cannot compute in the chosen precision on
        this device (an LSTM in fp16 on the CPU) is refused before the first step."""
        if self.amp is None or self.gan is not None:
            return
        was_training = self.model.training
        self.model.eval()  # no BatchNorm statistics are updated, no dropout randomness drawn
        try:
            with torch.no_grad(), torch.autocast(self.device.type, dtype=self.amp):
                x, y = (t[:2].to(self.device) for t in self.data.train.tensors)
                self.model(*model_inputs(self.cfg["task"], x, y)[0])
        except RuntimeError as exc:
            first = (str(exc).strip().splitlines() or [type(exc).__name__])[0][:200]
            raise TrainingError(f"training.precision: {self.cfg['precision']} cannot be used on {self.device} "
                                f"with this model ({first}); use fp32 or another precision") from None
        finally:
            self.model.train(was_training)

    def _gan_nonfinite(self, real: torch.Tensor) -> str:
        """Where a GAN's non-finite values first appear: the generator on fresh noise, else the
        discriminator on the real batch ("" when neither shows any now)."""
        assert self.gan is not None
        where = first_nonfinite_node(self.compiled, noise(self.gan, real.shape[0], self.device))
        if where:
            return f'; the first non-finite values come from node "{where}"'
        where = first_nonfinite_node(self.disc, real)
        return f'; the first non-finite values come from node "{where}" of the discriminator' if where else ""

    def _prepare_discriminator(self) -> Any:
        """Compile the discriminator; the generator's output must be what it reads."""
        graph = self.project.graphs.get("discriminator")
        if graph is None:
            raise TrainingError("the adversarial task needs a discriminator graph (graphs.discriminator)")
        self.disc = compile_graph(graph)
        dspec = self.disc.inputs[0]
        produced = tuple(self.compiled.output_shapes[0][1:])
        if produced != tuple(dspec.shape[1:]):
            raise TrainingError(f"the generator makes samples of shape {list(produced)} but the discriminator's "
                                f"Input expects {list(dspec.shape[1:])}")
        if any(isinstance(d, str) for d in self.compiled.inputs[0].shape[1:]):
            raise TrainingError("the generator's Input (the noise) needs a fixed shape")
        return dspec

    def _restore(self, path: Path) -> None:
        ckpt = load_checkpoint(path)  # an unreadable file or invalid metadata is a WeightsFileError (exit 2)
        meta = ckpt.meta
        parts = [("model", self.model, self.optimizer)]
        if self.gan is not None:
            parts.append(("discriminator", self.gan.discriminator, self.gan.opt_d))
        try:
            for part, module, optimizer in parts:
                state = ckpt.state(part)
                if part != "model" and not state:
                    raise WeightsError(f"{path} holds no {part} (it was not saved by an adversarial run)")
                apply_state(module, {k: v.to(self.device) for k, v in state.items()}, f"{path} ({part})")
                restore_optimizer(optimizer, ckpt.optimizer_tensors(part), ckpt.optimizer_meta(part), str(path))
            if self.privacy is not None:  # the accountant goes on from the steps already taken
                self.privacy.load_state(meta.get("privacy"), str(path))
        except WeightsError as exc:
            if isinstance(exc, InputError):
                raise
            raise TrainingError(f"cannot resume: {exc}") from None
        self.start_epoch = self._epochs_done = int(meta.get("epoch", 0))
        self.step = self.start_step = int(meta.get("step", 0))
        self.schedule.load_state(meta.get("schedule", {}))
        self.best = meta.get("best")

    # ------------------------------------------------------------------ the loop
    def run(self) -> dict[str, Any]:
        """Train; returns the summary (also written to ``summary.json``).

        Raises:
            TrainingError, DeviceError, DataError, CompileError: with a located message.
        """
        self.prepare()
        cfg = self.cfg
        self.status = "running"
        t0 = time.perf_counter()
        self.emit({"type": "start", "run_dir": str(self.run_dir), "device": str(self.device),
                   "epochs": cfg["epochs"], "steps_per_epoch": self.steps_per_epoch,
                   "train_samples": len(self.data.train), "val_samples": len(self.data.val or []),
                   "start_epoch": self.start_epoch, "params": self.compiled.total_params,
                   "layers": list(self._attr_names.values()), "task": cfg["task"],
                   "processes": self.dist.world_size if self.dist is not None else 1})
        last_val: dict[str, float] = {}
        bad_epochs = 0
        samples_seen = 0
        try:
            for epoch in range(self.start_epoch, cfg["epochs"]):
                train_loss = self._train_epoch(epoch)
                if train_loss is None:  # stopped
                    self.status = "stopped"
                    self._checkpoint("last", epoch, last_val)
                    break
                samples_seen += len(self.data.train)
                last_val = self._validate(epoch) if self.data.val is not None else {}
                metrics = {"train_loss": train_loss, **{f"val_{k}": v for k, v in last_val.items()}}
                if self.privacy is not None:  # spent so far, from Opacus' accountant
                    metrics["epsilon"] = self.privacy.epsilon()
                lr_used = self.schedule.lr(max(0, self.step - 1))  # before a plateau reduction changes it
                self.schedule.end_epoch(last_val.get("loss"), epoch)
                score = last_val.get(self.metric_name, train_loss if self.metric_name == "loss" else None)
                improved = score is not None and (self.best is None or (
                    score > self.best if self.metric_mode == "max" else score < self.best))
                if improved:
                    self.best = score
                    bad_epochs = 0
                else:
                    bad_epochs += 1
                self.emit({"type": "epoch", "epoch": epoch + 1, "step": self.step,
                           "lr": lr_used, "time": time.perf_counter() - t0,
                           **metrics})
                self._checkpoint("last", epoch + 1, metrics)
                if improved:
                    self._checkpoint("best", epoch + 1, metrics)
                if cfg["early_stopping"] and bad_epochs >= cfg["early_stopping"]:
                    self.emit({"type": "log", "message": f"early stopping after epoch {epoch + 1}: no improvement "
                               f"in {bad_epochs} epochs"})
                    break
            if self.status == "running":
                self.status = "finished"
            if self.data.test is not None and self.status in ("finished", "stopped"):
                self.test_metrics = self._evaluate(self.data.test)
                self.emit({"type": "test", "metrics": self.test_metrics})
            if self.status in ("finished", "stopped") and hasattr(self.ssl, "finish"):
                self.ssl.finish(self.run_dir)  # contrastive: the encoder without its head, beside the checkpoints
        except torch.cuda.OutOfMemoryError:
            self.status = "failed"
            raise TrainingError(f"{self.device} ran out of memory at step {self.step}; "
                                "lower the batch size or the model size") from None
        except RuntimeError as exc:
            self.status = "failed"
            if self.dist is not None:  # a collective failed: another rank died or hung past the timeout
                from .distributed import DistributedError

                first = (str(exc).strip().splitlines() or [type(exc).__name__])[0][:300]
                raise DistributedError(f"rank {self.dist.rank} lost the other processes at step {self.step} "
                                       f"({first}); the launcher's report names the rank that failed") from None
            if self.device.type != "cpu":
                raise TrainingError(f"device {self.device} failed at step {self.step}: {exc}") from None
            raise
        finally:
            summary: dict[str, Any] = {"status": self.status if self.status != "running" else "failed",
                       "test": getattr(self, "test_metrics", None),
                       "epochs_done": self._epochs_done, "steps": self.step, "device": str(self.device),
                       "threads": torch.get_num_threads(), "time_s": time.perf_counter() - t0, "final": last_val,
                       f"best_{self.metric_name}": self.best, "params": self.compiled.total_params,
                       "project_hash": graph_hash(self.project.graph)}
            if getattr(self, "privacy", None) is not None:
                summary["epsilon"], summary["delta"] = self.privacy.epsilon(), self.privacy.delta
            if samples_seen:
                summary["train_samples_per_s"] = samples_seen / max(1e-9, summary["time_s"])
            if self.dist is not None:
                from .distributed import describe

                summary["distributed"] = describe(self.dist, int(self.data_cfg["batch_size"]))
            if self.writer is not None:
                self.writer.write_summary(summary)
                self.writer.close()
            self.emit({"type": "done", "summary": summary})
        return summary

    def _train_epoch(self, epoch: int) -> float | None:
        cfg = self.cfg
        self.model.train()
        for module in self.frozen:  # a frozen BatchNorm keeps its statistics, a frozen Dropout is off
            module.eval()
        torch.manual_seed(cfg["seed"] * 1000 + epoch)  # dropout: the same per epoch, resumed or not
        # shuffling and augmentation follow the data seed, also the same per epoch and number of processes
        shuffle_seed, augment_seed = epoch_seeds(int(self.data_cfg["seed"]), epoch)
        augment_gen = torch.Generator().manual_seed(augment_seed)
        if self.dist is not None:  # this rank's share of the same global batches
            loader = self.dist.loader(self.data.train, int(self.data_cfg["batch_size"]),
                                      bool(self.data_cfg["shuffle"]), int(self.data_cfg["seed"]), epoch)
        else:
            loader = DataLoader(self.data.train, batch_size=int(self.data_cfg["batch_size"]),
                                shuffle=bool(self.data_cfg["shuffle"]),
                                generator=torch.Generator().manual_seed(shuffle_seed))
        if self.privacy is not None:  # Poisson sampling (from the seeded global generator), as the accountant assumes
            loader = self.privacy.loader
        total, count = 0.0, 0
        window_t, window_n = time.perf_counter(), 0
        last_stats = 0.0
        for i, (x, y) in enumerate(loader):
            self._sync()
            while self.control.pause.is_set() and not self.control.stop.is_set():
                if self.status != "paused":
                    self.status = "paused"
                    self.emit({"type": "status", "status": "paused"})
                time.sleep(0.05)
                self._sync()
            if self.status == "paused":
                self.status = "running"
                self.emit({"type": "status", "status": "running"})
                window_t = time.perf_counter()
            if self.data.augment is not None:  # training batches only; validation and test stay as they are
                x = (self.dist.augment(self.data.augment, x, augment_gen, i) if self.dist is not None
                     else self.data.augment(x, augment_gen))
                if cfg["task"] == "reconstruction":
                    y = x
            x, y = x.to(self.device, non_blocking=True), y.to(self.device, non_blocking=True)
            lr = self.schedule.lr(self.step)
            if self.gan is not None:
                value, d_loss = gan_step(self.gan, x, lr, cfg["grad_clip"], cfg["d_lr_scale"], cfg["d_steps"])
                if not (math.isfinite(value) and math.isfinite(d_loss)):
                    self.status = "failed"
                    raise TrainingError(f"the GAN losses became non-finite at epoch {epoch + 1}, step {self.step + 1}"
                                        + self._gan_nonfinite(x))
                self.step += 1
                total += value * x.shape[0]
                count += x.shape[0]
                window_n += x.shape[0]
                elapsed = time.perf_counter() - window_t
                self.emit({"type": "batch", "epoch": epoch + 1, "step": self.step, "loss": value, "d_loss": d_loss,
                           "lr": lr, "samples_per_s": window_n / elapsed if elapsed > 0 else 0.0,
                           "progress": (epoch * self.steps_per_epoch + i + 1)
                           / (self.cfg["epochs"] * self.steps_per_epoch)})
                if self.control.stop.is_set():
                    self.emit({"type": "log", "message": f"stopped by the user at epoch {epoch + 1}, step {self.step}"})
                    return None
                continue
            set_group_lrs(self.optimizer, lr)
            self.optimizer.zero_grad(set_to_none=True)
            with torch.autocast(self.device.type, dtype=self.amp, enabled=self.amp is not None):
                inputs, target = model_inputs(cfg["task"], x, y)
                if self.ssl is not None:
                    loss = self.ssl.loss(self.train_module, x, augment_gen)
                else:
                    out = self.train_module(*inputs)
                    out = out[0] if isinstance(out, tuple) else out
                    loss = (self.teacher.loss(out, inputs[0], target, self.num_classes) if self.teacher is not None
                            else loss_fn(cfg["task"], out, target, self.num_classes))
            shown, n = loss, x.shape[0]
            if self.dist is not None:  # the global batch's mean, the same on every rank
                loss, shown, n = self.dist.global_mean(loss, i)
            if not torch.isfinite(shown):
                where = first_nonfinite_node(self.compiled, *inputs)
                self.status = "failed"
                # before any update the weights are the initial ones: the learning rate cannot be the cause
                hint = ("; no update has happened yet, so the learning rate is not the cause: the values reach that "
                        "node outside its domain (log or sqrt of negative values, a division by zero) or its weights "
                        "are not finite"
                        if self.step == self.start_step else "; try a lower learning rate or gradient clipping")
                raise TrainingError(f"the loss became {shown.item()} at epoch {epoch + 1}, step {self.step + 1}"
                                    + (f"; the first non-finite values come from node \"{where}\"" if where else "")
                                    + hint)
            if self.scaler is not None:
                self.scaler.scale(loss).backward()
                self.scaler.unscale_(self.optimizer)
            else:
                loss.backward()
            if cfg["grad_clip"] > 0:
                torch.nn.utils.clip_grad_norm_(self.model.parameters(), cfg["grad_clip"])
            now = time.perf_counter()
            if now - last_stats >= self.stats_interval:  # gradients exist only until the next step
                self.emit({"type": "layers", "step": self.step + 1, **self._layer_stats()})
                last_stats = now
            if self.scaler is not None:
                self.scaler.step(self.optimizer)
                self.scaler.update()
            else:
                self.optimizer.step()
            self.step += 1
            value = float(shown.detach())
            total += value * n
            count += n
            window_n += n
            elapsed = time.perf_counter() - window_t
            self.emit({"type": "batch", "epoch": epoch + 1, "step": self.step, "loss": value, "lr": lr,
                       "samples_per_s": window_n / elapsed if elapsed > 0 else 0.0,
                       "progress": (epoch * self.steps_per_epoch + i + 1) / (self.cfg["epochs"] * self.steps_per_epoch)})
            if elapsed > 1.0:
                window_t, window_n = time.perf_counter(), 0
            if self.control.stop.is_set():
                self.emit({"type": "log", "message": f"stopped by the user at epoch {epoch + 1}, step {self.step}"})
                return None
        self._epochs_done = epoch + 1
        return total / max(1, count)

    def _validate(self, epoch: int) -> dict[str, float]:
        assert self.data.val is not None
        if self.gan is not None:
            metrics, samples = gan_validate(self.gan, self.data.val.tensors[0].to(self.device),
                                            self.cfg["seed"] * 1000 + epoch)
            self.emit({"type": "validation", "epoch": epoch + 1, "metrics": metrics, "task": "adversarial",
                       "samples": {"outputs": samples}, "generated": samples})
            return metrics
        if self.ssl is not None:
            metrics, extra = self.ssl.validate(self.data.val, epoch)
            self.emit({"type": "validation", "epoch": epoch + 1, "metrics": metrics, "task": self.cfg["task"],
                       "samples": {}, **extra})
            return metrics
        acc, latents = self._measure(self.data.val)
        result = acc.result()
        event: Event = {"type": "validation", "epoch": epoch + 1, "metrics": result, "task": self.cfg["task"],
                        "samples": acc.samples}
        if acc.confusion is not None:
            event["confusion"] = acc.confusion.tolist()
            event["classes"] = self.data.samples.class_names or [str(i) for i in range(self.num_classes)]
        if self.cfg["task"] == "reconstruction":
            event["inputs"] = self.data.val.tensors[0][:16].float()
        if latents:
            event["latent"] = torch.cat(latents)[:1000]
            if self.val_labels is not None:
                event["latent_labels"] = self.val_labels[:1000]
        if self.cfg["task"] == "language_model":
            event["text"] = self.generate(epoch)
        if acc.examples is not None:  # seq2seq: a few sources with what the model wrote for them
            event["text"] = pairs_text(self.data.samples.class_names, *acc.examples)
        self.emit(event)
        return result

    def generate(self, epoch: int, length: int = 160, temperature: float = 0.8) -> str:
        """Sample text from the model, starting from a validation window (seeded per epoch)."""
        assert self.data.val is not None
        chars = self.data.samples.class_names
        window = self.data.val.tensors[0].shape[1]
        ids = self.data.val.tensors[0][0].tolist()
        gen = torch.Generator().manual_seed(self.cfg["seed"] * 1000 + epoch)
        self.model.eval()
        with torch.no_grad():
            for _ in range(length):
                x = torch.tensor([ids[-window:]], device=self.device)
                out = self.model(x)
                logits = (out[0] if isinstance(out, tuple) else out)[0, -1].float().cpu() / temperature
                ids.append(int(torch.multinomial(torch.softmax(logits, -1), 1, generator=gen)))
        return "".join(chars[i] for i in ids)

    def _measure(self, dataset: TensorDataset) -> tuple[MetricAccumulator, list[torch.Tensor]]:
        """One pass over a held-out split: accumulated metrics, and any 2-D latent codes."""
        if self.dist is not None:  # every rank measures rank 0's model, so all take the same decisions
            self.dist.sync_buffers(self.model)
        self.model.eval()
        acc = MetricAccumulator(self.cfg["task"], self.num_classes, self.cfg["top_k"])
        latents: list[torch.Tensor] = []
        loader = DataLoader(dataset, batch_size=max(256, int(self.data_cfg["batch_size"])))
        with torch.no_grad():
            for x, y in loader:
                x, y = x.to(self.device), y.to(self.device)
                with torch.autocast(self.device.type, dtype=self.amp, enabled=self.amp is not None):
                    inputs, y = model_inputs(self.cfg["task"], x, y)
                    out = self.model(*inputs)
                    if isinstance(out, tuple):
                        # a second 2-D output (an autoencoder's latent code) is plotted as a scatter
                        if len(out) > 1 and out[1].ndim == 2 and out[1].shape[1] == 2:
                            latents.append(out[1].float().cpu())
                        out = out[0]
                    loss = loss_fn(self.cfg["task"], out, y, self.num_classes)
                acc.add(out, y, float(loss))
                if self.cfg["task"] == "seq2seq":
                    acc.add_decoded(self._decode(x, y.shape[1]), y, x)
        return acc, latents

    def _decode(self, source: torch.Tensor, steps: int) -> torch.Tensor:
        """seq2seq: the targets the model writes by itself (greedy), in the run's precision."""
        fixed = isinstance(self.compiled.inputs[1].shape[1], int)  # a fixed-size target Input is fed at its size
        self.model.eval()
        with torch.no_grad(), torch.autocast(self.device.type, dtype=self.amp, enabled=self.amp is not None):
            return greedy_decode(self.model, source, steps, fixed)

    def _evaluate(self, dataset: TensorDataset) -> dict[str, float]:
        """Metrics on a held-out split (the test split, once, at the end of the run)."""
        if self.ssl is not None:
            return self.ssl.validate(dataset, -1)[0]
        return self._measure(dataset)[0].result()

    def _layer_stats(self) -> dict[str, dict[str, float]]:
        grads, weights = {}, {}
        for attr, module in self.model.named_children():
            params = [p for p in module.parameters() if p.requires_grad]
            if not params:
                continue
            name = self._attr_names.get(attr, attr)
            weights[name] = float(torch.sqrt(sum((p.detach().float() ** 2).sum() for p in params)))
            gs = [p.grad for p in params if p.grad is not None]
            if gs:
                grads[name] = float(torch.sqrt(sum((g.detach().float() ** 2).sum() for g in gs)))
        return {"grad_norm": grads, "weight_norm": weights}

    def _sync(self) -> None:
        """Distributed: take rank 0's pause and stop flags (a batch boundary on every rank)."""
        if self.dist is not None:
            self.control.sync()  # type: ignore[attr-defined]

    def _checkpoint(self, kind: str, epoch: int, metrics: dict[str, Any]) -> Path | None:
        if self.run_dir is None:  # a rank other than 0: rank 0 writes the one checkpoint
            return None
        path = self.run_dir / "checkpoints" / f"{kind}.safetensors"
        meta = {"epoch": epoch, "step": self.step, "metrics": metrics, "best": self.best,
                "project_hash": graph_hash(self.project.graph), "schedule": self.schedule.state(),
                "project": self.project.name}
        if self.privacy is not None:
            meta["privacy"] = self.privacy.state()
        # one file: the generator is the model, the discriminator a part of the same checkpoint
        parts = {"discriminator": (self.gan.discriminator, self.gan.opt_d)} if self.gan is not None else None
        save_checkpoint(path, self.model, self.optimizer, meta, parts)
        self.emit({"type": "checkpoint", "kind": kind, "path": str(path), "epoch": epoch})
        return path
