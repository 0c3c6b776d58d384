"""Running a sweep: an Optuna study whose trials are ordinary training runs.

Optuna does all the searching (its TPE, random and grid samplers, its median and Hyperband
pruners, its Pareto front); this module only turns a trial into a training run: sample the
values, apply them to a copy of the project, run the pre-flight, train with the engine while
reporting the validation metric each epoch, and write ``trial.json`` into the run folder.

The study lives in Optuna's RDB storage (an SQLite file beside the project by default), so a
rerun resumes it and several worker processes (or machines, on a shared database) fill it.
``trials`` counts the finished trials of the study: complete, pruned, and failed for a reason of
their own; a trial cut short by the user or a killed process does not count, so a resumed sweep
ends with as many trials as asked.
"""

from __future__ import annotations

import json
import math
import multiprocessing as mp
import signal
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from ..errors import WorkbenchError
from ..fileio import atomic_write_text
from ..project import Project, project_from_dict
from .apply import Target, apply_values, resolve, with_overrides
from .spec import SweepError, SweepSpec, check_objective

Event = dict[str, Any]
#: seconds between a running trial's heartbeats; a trial silent for GRACE is a killed one
HEARTBEAT, GRACE = 5, 20
#: trials the median pruner lets finish before it compares
MEDIAN_STARTUP = 3
TRIAL_FILE = "trial.json"


def optuna_module() -> Any:
    """Optuna, or a clear error naming the extra to install."""
    try:
        import optuna
    except ImportError:
        raise SweepError("sweeps need Optuna: pip install 'neural-workbench[sweep]' (or pip install optuna)") from None
    # our own line per trial says what Optuna would warn about (a failed trial, with a traceback)
    optuna.logging.set_verbosity(optuna.logging.ERROR)
    return optuna


@dataclass
class SweepOptions:
    """How to run a sweep (what is not part of the search space).

    Attributes:
        storage: an Optuna storage URL (None: ``sqlite:///<project>.sweep.db`` beside the project).
        study: the study's name (None: the project file's stem).
        trials: finished trials the study should hold (None: the spec's, else the grid size, else 20).
        jobs: worker processes running trials at the same time.
        threads: torch threads per worker (None: the cores shared among the workers).
        overrides: settings every trial starts from (epochs, device, ...); a sampled value of the same
            setting wins over them.
    """

    storage: str | None = None
    study: str | None = None
    trials: int | None = None
    jobs: int = 1
    threads: int | None = None
    overrides: dict[str, Any] = field(default_factory=dict)


def default_storage(project_path: Path | None) -> str:
    base = project_path if project_path is not None else Path.cwd() / "untitled.json"
    return f"sqlite:///{base.with_suffix('.sweep.db')}"


def study_name(project: Project, options: SweepOptions) -> str:
    return options.study or (project.path.stem if project.path is not None else "untitled")


def open_storage(url: str) -> Any:
    """Optuna's RDB storage with heartbeats (a killed worker's trial is failed, then retried once).

    SQLite gets a long lock timeout: worker processes share the file and wait for each other's
    short writes instead of failing with 'database is locked'.
    """
    import warnings

    optuna = optuna_module()
    from optuna.storages import RDBStorage, RetryHeartbeatStaleTrialCallback

    kwargs: dict[str, Any] = {}
    if url.startswith("sqlite"):
        kwargs["engine_kwargs"] = {"connect_args": {"timeout": 60}}
    for attempt in range(4):
        try:
            with warnings.catch_warnings():  # heartbeats are "experimental" in Optuna since 2.8; they are what we need
                warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
                return RDBStorage(url, heartbeat_interval=HEARTBEAT, grace_period=GRACE,
                                  heartbeat_stale_trial_callback=RetryHeartbeatStaleTrialCallback(max_retry=1),
                                  **kwargs)
        except (ImportError, ModuleNotFoundError) as exc:
            raise SweepError(f"the storage {url.split('://')[0]} needs a database driver: {exc}", "--storage") from None
        except Exception as exc:  # sqlalchemy's errors are many
            # two processes that create the same new database at once: one of them loses the race to
            # write the schema ("table ... already exists", or its version: IntegrityError) and finds the
            # schema made when it tries again
            text = type(exc).__name__ + str(exc)
            if ("IntegrityError" in text or "already exists" in text) and attempt < 3:
                time.sleep(0.5)
                continue
            first = (str(exc).strip().splitlines() or [type(exc).__name__])[0][:200]
            raise SweepError(f"cannot open the storage: {first}", "--storage") from None
    raise AssertionError("unreachable")


# --------------------------------------------------------------------------- objectives


@dataclass(frozen=True)
class Objectives:
    """The values a trial returns: the validation metric, then costs; and their directions."""

    names: tuple[str, ...]
    directions: tuple[str, ...]

    @property
    def metric(self) -> str:
        return self.names[0]

    @property
    def multi(self) -> bool:
        return len(self.names) > 1


def objectives_of(spec: SweepSpec, task: str) -> Objectives:
    from ..training.tasks import primary_metric

    metric, mode = primary_metric(task)
    raw = spec.objectives or (f"val_{metric}",)
    names, directions = [], []
    for i, text in enumerate(raw):
        name, direction = check_objective(text, i, f"sweep.objectives[{i}]")
        if direction is None:
            direction = ("max" if (name == f"val_{metric}" and mode == "max") or "accuracy" in name or name == "val_r2"
                         else "min")
        names.append(name)
        directions.append("maximize" if direction == "max" else "minimize")
    return Objectives(tuple(names), tuple(directions))


def pruner_of(spec: SweepSpec, objectives: Objectives, epochs: int) -> Any:
    optuna = optuna_module()
    kind = spec.pruner if spec.pruner is not None else ("none" if objectives.multi else "median")
    if kind != "none" and objectives.multi:
        raise SweepError(f"pruning ({kind}) needs a single objective; Optuna cannot prune a multi-objective "
                         "study: set the pruner to none", "sweep.pruner")
    if kind == "median":
        return optuna.pruners.MedianPruner(n_startup_trials=MEDIAN_STARTUP, n_warmup_steps=0)
    if kind == "hyperband":
        return optuna.pruners.HyperbandPruner(min_resource=1, max_resource=max(1, epochs), reduction_factor=3)
    return optuna.pruners.NopPruner()


def sampler_of(spec: SweepSpec, worker: int = 0) -> Any:
    optuna = optuna_module()
    seed = None if spec.seed is None else spec.seed + worker  # workers must not all draw the same values
    if spec.sampler == "grid":
        return optuna.samplers.GridSampler(spec.grid_space(), seed=seed)
    if spec.sampler == "random":
        return optuna.samplers.RandomSampler(seed=seed)
    return optuna.samplers.TPESampler(seed=seed)


def suggest(trial: Any, spec: SweepSpec) -> dict[str, Any]:
    values = {}
    for p in spec.params:
        if p.kind == "choice":
            values[p.name] = trial.suggest_categorical(p.name, list(p.choices))
        elif p.kind == "int":
            values[p.name] = trial.suggest_int(p.name, int(p.low), int(p.high), step=int(p.step or 1), log=p.log)
        else:
            values[p.name] = trial.suggest_float(p.name, p.low, p.high, step=p.step, log=p.log)
    return values


def trial_costs(project: Project, latency_on: str | None = None) -> dict[str, float]:
    """The cost objectives of a trial's project (batch 1); the latency only when ``latency_on`` names
    the device to measure it on (the median forward pass of 20, after 3 warm-up passes)."""
    from ..analysis.cost import cost_table

    table = cost_table(project.graph)
    costs: dict[str, float] = {"params": table.params, "macs": table.macs}
    if latency_on is not None:
        from ..analysis.profile import profile_graph

        costs["latency_ms"] = profile_graph(project.graph, device=latency_on).forward_ms
    return costs


# --------------------------------------------------------------------------- the study


def counted(trial: Any, optuna: Any) -> bool:
    """Whether a trial counts toward ``trials``: it finished, or failed for a reason of its own."""
    state = trial.state
    return (state in (optuna.trial.TrialState.COMPLETE, optuna.trial.TrialState.PRUNED)
            or (state == optuna.trial.TrialState.FAIL and "failure" in trial.user_attrs))


def load_or_create(storage: Any, name: str, objectives: Objectives, spec: SweepSpec, epochs: int,
                   worker: int = 0) -> Any:
    """The study (created or resumed); a stored study that optimises something else is refused."""
    optuna = optuna_module()
    study = optuna.create_study(storage=storage, study_name=name, load_if_exists=True,
                                directions=list(objectives.directions), sampler=sampler_of(spec, worker),
                                pruner=pruner_of(spec, objectives, epochs))
    stored = [d.name.lower() for d in study.directions]
    old_names = study.user_attrs.get("objectives")
    if stored != list(objectives.directions) or (old_names is not None and tuple(old_names) != objectives.names):
        raise SweepError(f"the study {name!r} in this storage optimises {old_names or stored}, not "
                         f"{list(objectives.names)}: give another --study name", "--study")
    if old_names is None:
        study.set_user_attr("objectives", list(objectives.names))
    return study


@dataclass
class SweepStop:
    """The user's stop (Ctrl+C, the GUI's cancel): the running trial stops at a batch boundary
    and no further trial starts.  ``requests`` counts the asks (a second one aborts at once)."""

    user: threading.Event = field(default_factory=threading.Event)
    trial: Any = None
    requests: int = 0

    def request(self) -> None:
        self.requests += 1
        self.user.set()
        if self.trial is not None:
            self.trial.stop.set()


class TrialRunner:
    """Optuna's objective: one trial = one training run of a copy of the project."""

    def __init__(self, project: Project, spec: SweepSpec, objectives: Objectives, targets: dict[str, Target],
                 options: SweepOptions, study: str, listeners: list[Callable[[Event], None]] | None = None,
                 stop: SweepStop | None = None) -> None:
        self.project, self.spec, self.objectives, self.targets = project, spec, objectives, targets
        self.options, self.study = options, study
        self.listeners = list(listeners or [])
        self.stop = stop or SweepStop()

    def emit(self, event: Event) -> None:
        for listener in self.listeners:
            listener(event)

    def __call__(self, trial: Any) -> float | tuple[float, ...]:
        optuna = optuna_module()
        from ..training import Control, Trainer
        from ..training.preflight import preflight_training
        from ..training.runs import new_run_dir, runs_root

        if self.stop.user.is_set():
            return self._interrupted(trial)
        t0 = time.perf_counter()
        values = suggest(trial, self.spec)
        self.emit({"type": "trial_start", "trial": trial.number, "params": values})
        try:
            project = apply_values(self.project, self.targets, values)
            trainer = Trainer(project)
            preflight_training(project, trainer.cfg, trainer.data_cfg)  # what `workbench check` says, first
            costs = trial_costs(project, trainer.cfg["device"] if "latency_ms" in self.objectives.names else None)
        except (WorkbenchError, ValueError) as exc:
            return self._fail(trial, values, str(exc), None, t0)
        for name, value in costs.items():
            trial.set_user_attr(name, value)
        run_dir = new_run_dir(runs_root(project.path), f"{self.study}-trial-{trial.number}")
        trial.set_user_attr("run_dir", str(run_dir))
        record = {"study": self.study, "trial": trial.number, "params": values, "state": "running",
                  "objectives": list(self.objectives.names), "costs": costs}
        atomic_write_text(run_dir / TRIAL_FILE, json.dumps(record, indent=2))
        control = Control()
        self.stop.trial = control
        if self.stop.user.is_set():  # Ctrl+C came between the check above and here
            control.stop.set()
        pruned_at: list[int] = []
        metric = self.objectives.metric

        last_epoch = int(trainer.cfg["epochs"])

        def report(event: Event) -> None:
            if event["type"] != "epoch" or pruned_at or self.objectives.multi:  # Optuna prunes one objective only
                return
            value = event.get(metric)
            if value is None:
                return
            trial.report(float(value), int(event["epoch"]))
            # after the last epoch there is nothing left to save: the trial completes
            if int(event["epoch"]) < last_epoch and trial.should_prune():
                pruned_at.append(int(event["epoch"]))
                control.stop.set()  # the engine finishes the step and writes a consistent checkpoint

        trainer.run_dir = run_dir
        trainer.listeners.append(report)
        trainer.control = control
        try:
            summary = trainer.run()
        except (WorkbenchError, RuntimeError, ValueError) as exc:
            return self._fail(trial, values, str(exc), run_dir, t0, record)
        finally:
            self.stop.trial = None
        trial.set_user_attr("time_s", summary["time_s"])
        trial.set_user_attr("overhead_s", max(0.0, time.perf_counter() - t0 - summary["time_s"]))
        if pruned_at:
            self._finish(run_dir, record, "pruned", None, t0, trial, values, f"pruned after epoch {pruned_at[0]}")
            raise optuna.TrialPruned(f"pruned after epoch {pruned_at[0]}")
        if summary["status"] == "stopped":  # by the user (a run that reached its end completes)
            self._finish(run_dir, record, "interrupted", None, t0, trial, values, "stopped before its end")
            return self._interrupted(trial)
        final = summary.get("final") or {}
        key = metric[4:]
        if key not in final or not math.isfinite(float(final[key])):
            known = ", ".join(f"val_{k}" for k in final) or "none: is data.val_fraction 0?"
            return self._fail(trial, values, f"the run reports no {metric} (validation metrics: {known})", run_dir,
                              t0, record)
        result = [float(final[key])] + [float(costs[n]) for n in self.objectives.names[1:]]
        self._finish(run_dir, record, "complete", result, t0, trial, values)
        return result[0] if len(result) == 1 else tuple(result)

    def _nan(self) -> Any:
        """How Optuna records a failed trial without an exception (and its traceback in the log)."""
        return math.nan if not self.objectives.multi else tuple(math.nan for _ in self.objectives.names)

    def _interrupted(self, trial: Any) -> Any:
        """A trial the user stopped fails without counting (see :func:`counted`): a rerun makes up for it."""
        trial.set_user_attr("interrupted", True)
        return self._nan()

    def _fail(self, trial: Any, values: dict[str, Any], reason: str, run_dir: Path | None, t0: float,
              record: dict[str, Any] | None = None) -> Any:
        """A trial that cannot train (an invalid graph, a refused value) fails with its reason;
        the sweep goes on."""
        trial.set_user_attr("failure", reason)
        if run_dir is not None and record is not None:
            self._finish(run_dir, record, "failed", None, t0, trial, values, reason)
        else:
            self.emit({"type": "trial", "trial": trial.number, "state": "failed", "params": values, "values": None,
                       "reason": reason, "time_s": time.perf_counter() - t0, "run_dir": None})
        return self._nan()

    def _finish(self, run_dir: Path, record: dict[str, Any], state: str, result: list[float] | None, t0: float,
                trial: Any, values: dict[str, Any], reason: str = "") -> None:
        record = {**record, "state": state, "values": result, **({"reason": reason} if reason else {})}
        atomic_write_text(run_dir / TRIAL_FILE, json.dumps(record, indent=2))
        self.emit({"type": "trial", "trial": trial.number, "state": state, "params": values, "values": result,
                   "reason": reason, "time_s": time.perf_counter() - t0, "run_dir": str(run_dir)})


# --------------------------------------------------------------------------- running


@dataclass
class Prepared:
    """Everything a worker needs, checked once before any trial."""

    spec: SweepSpec
    objectives: Objectives
    targets: dict[str, Target]
    storage_url: str
    study: str
    epochs: int


def prepare(project: Project, spec: SweepSpec, options: SweepOptions) -> Prepared:
    """Check the sweep against the project (names, ranges, grid, objectives, pruner) before any trial.

    Raises:
        SweepError: located.
    """
    if options.overrides:
        raise ValueError("apply the overrides first (with_overrides): prepare checks the project trials start from")
    targets = resolve(project, spec)
    training = project.training
    objectives = objectives_of(spec, training["task"])
    if float(project.data["val_fraction"]) == 0:
        raise SweepError("a sweep compares trials on the validation split: set data.val_fraction above 0",
                         "data.val_fraction")
    if spec.sampler == "grid":
        spec.grid_size()  # a continuous range is refused here, not in trial 1
    epochs = max([int(training["epochs"])] + [int(p.high) for p in spec.params if p.name in ("epochs", "training.epochs")
                                               and p.high is not None]
                 + [int(c) for p in spec.params if p.name in ("epochs", "training.epochs") for c in p.choices])
    pruner_of(spec, objectives, epochs)
    return Prepared(spec, objectives, targets, options.storage or default_storage(project.path),
                    study_name(project, options), epochs)


def target_trials(spec: SweepSpec, options: SweepOptions) -> int:
    if options.trials is not None:
        return options.trials
    if spec.trials is not None:
        return spec.trials
    return spec.grid_size() if spec.sampler == "grid" else 20


def run_sweep(project: Project, spec: SweepSpec, options: SweepOptions,
              listeners: list[Callable[[Event], None]] | None = None, stop: SweepStop | None = None) -> Any:
    """Run (or resume) the sweep until the study holds ``trials`` finished trials; returns the study.

    With ``jobs`` > 1 the trials run in that many worker processes sharing the storage; each
    prints its own progress lines.  ``stop`` ends the sweep after the running trials stop at a
    batch boundary (in the workers too: it is forwarded to them as SIGINT); the study stays resumable.

    Raises:
        SweepError: the sweep cannot start (located).
    """
    optuna = optuna_module()
    project = with_overrides(project, options.overrides)
    options = replace(options, overrides={})
    prep = prepare(project, spec, options)
    storage = open_storage(prep.storage_url)
    study = load_or_create(storage, prep.study, prep.objectives, spec, prep.epochs)
    trials = study.get_trials(deepcopy=False)
    done = sum(counted(t, optuna) for t in trials)
    remaining = max(0, target_trials(spec, options) - done)
    _retry_interrupted(study, trials, remaining)
    jobs = max(1, min(options.jobs, remaining))
    for listener in listeners or []:
        listener({"type": "sweep_start", "study": prep.study, "storage": _safe_url(prep.storage_url), "done": done,
                  "remaining": remaining, "jobs": jobs, "objectives": list(prep.objectives.names),
                  "directions": list(prep.objectives.directions)})
    if remaining == 0:
        return study
    stop = stop or SweepStop()
    if jobs == 1:
        _optimize(project, prep, options, study, remaining, listeners or [], stop)
        return study
    shares = [remaining // jobs + (i < remaining % jobs) for i in range(jobs)]
    ctx = mp.get_context("spawn")
    procs = [ctx.Process(target=_worker, args=(project.to_dict(), str(project.path) if project.path else None,
                                               spec.to_dict(), options, n, i), daemon=False)
             for i, n in enumerate(shares)]
    for p in procs:
        p.start()
    forwarded = 0
    try:
        while any(p.is_alive() for p in procs):
            while forwarded < min(stop.requests, 2):  # the workers have their own process group
                forwarded += 1
                for p in procs:
                    if p.is_alive() and p.pid is not None:
                        _interrupt(p.pid)
            time.sleep(0.1)
    finally:
        for p in procs:
            p.join()
    for i, p in enumerate(procs):
        if p.exitcode not in (0, None) and not stop.requests:  # killed (the OOM killer), crashed
            print(f"workbench: worker {i + 1} ended with exit status {p.exitcode}; its running trial fails once its "
                  f"heartbeat stops, and a rerun makes it up", file=sys.stderr)
    return optuna.load_study(study_name=prep.study, storage=storage)


def _retry_interrupted(study: Any, trials: list[Any], room: int) -> None:
    """Queue the values of trials the user stopped (once each): a resumed sweep tries them first, and
    a grid, which counts a stopped point as visited, gets it back."""
    retried = {t.user_attrs.get("retry_of") for t in trials}
    lost = [t for t in trials if t.user_attrs.get("interrupted") and t.params and t.number not in retried]
    for t in lost[:room]:
        study.enqueue_trial(t.params, user_attrs={"retry_of": t.number})
    grid = {t.number: t.system_attrs for t in lost[:room] if "grid_id" in t.system_attrs}
    if grid:  # the grid sampler expects its point's id on every trial it ends (as its own retries carry)
        for w in study.get_trials(deepcopy=False, states=(optuna_module().trial.TrialState.WAITING,)):
            attrs = grid.get(w.user_attrs.get("retry_of"))
            if attrs is not None and "grid_id" not in w.system_attrs:
                for key in ("grid_id", "search_space"):
                    study._storage.set_trial_system_attr(w._trial_id, key, attrs[key])


def _interrupt(pid: int) -> None:
    import os

    try:
        os.kill(pid, signal.SIGINT)
    except OSError:
        pass


def _safe_url(url: str) -> str:
    """A URL without its password (it goes into progress lines and logs)."""
    head, sep, rest = url.partition("://")
    if "@" in rest.split("/", 1)[0]:
        cred, _, host = rest.partition("@")
        return f"{head}{sep}{cred.split(':')[0]}:***@{host}"
    return url


def _optimize(project: Project, prep: Prepared, options: SweepOptions, study: Any, n: int,
              listeners: list[Callable[[Event], None]], stop: SweepStop) -> None:
    runner = TrialRunner(project, prep.spec, prep.objectives, prep.targets, options, prep.study, listeners, stop)

    def after(study: Any, _trial: Any) -> None:
        if stop.user.is_set():
            study.stop()

    study.optimize(runner, n_trials=n, callbacks=[after], gc_after_trial=False)


def _worker(project_doc: dict[str, Any], project_path: str | None, spec_doc: dict[str, Any], options: SweepOptions,
            n: int, index: int) -> None:
    """A worker process: resume the study and run its share of trials (SIGINT stops it cleanly)."""
    import os

    import torch

    from .spec import sweep_from_dict

    parent = os.getppid()
    os.setpgrp()  # a terminal's Ctrl+C reaches the parent alone, which forwards it once
    torch.set_num_threads(options.threads or max(1, (os.cpu_count() or 1) // max(1, options.jobs)))
    project = project_from_dict(project_doc)
    project.path = Path(project_path) if project_path else None
    spec = sweep_from_dict(spec_doc)
    stop = SweepStop()

    def on_sigint(_sig: int, _frame: Any) -> None:
        if stop.user.is_set():
            raise KeyboardInterrupt
        stop.request()

    signal.signal(signal.SIGINT, on_sigint)

    def watch_parent() -> None:  # a worker orphaned by a killed sweep stops at the next batch
        while os.getppid() == parent:
            time.sleep(1.0)
        stop.request()

    threading.Thread(target=watch_parent, daemon=True).start()
    try:
        prep = prepare(project, spec, options)
        study = load_or_create(open_storage(prep.storage_url), prep.study, prep.objectives, spec, prep.epochs, index)
        _optimize(project, prep, options, study, n, [trial_line(sys.stderr, f"[worker {index + 1}] ")], stop)
    except KeyboardInterrupt:
        pass
    except SweepError as exc:
        print(f"workbench: error: {exc}", file=sys.stderr)


def trial_line(stream: Any, prefix: str = "") -> Callable[[Event], None]:
    """A listener printing one line per finished trial."""

    def write(e: Event) -> None:
        if e["type"] != "trial":
            return
        values = "" if not e["values"] else " ".join(_fmt(v) for v in e["values"])
        params = ", ".join(f"{k}={_fmt(v)}" for k, v in e["params"].items())
        reason = f" ({e['reason']})" if e.get("reason") and e["state"] != "complete" else ""
        stream.write(f"{prefix}trial {e['trial']:>3} {e['state']:<11} {values:<22} {e['time_s']:6.1f} s  "
                     f"{params}{reason}\n")
        stream.flush()

    return write


def _fmt(v: Any) -> str:
    if isinstance(v, float):
        return f"{v:.4g}"
    return str(v)
