"""``workbench sweep``: run (or resume) an Optuna study over a project's settings and node parameters.

    workbench sweep P --param lr=float:1e-4:1e-1:log --param conv1.out_channels=int:8:64:log \\
        --trials 30 --jobs 2 --pruner median
    workbench sweep P --apply 12 -o best.json

Progress (a line per trial) goes to stderr, like ``workbench train``'s; stdout holds the final table
(or ``--json``).  The search space is the project's ``sweep`` section plus every ``--param`` (which replaces a declared
parameter of the same name).  Ctrl+C stops the running trials at a batch boundary; the same command
resumes the study.
"""

from __future__ import annotations

import argparse
import json
import signal
import sys
from pathlib import Path
from typing import Any

from ..cli_common import EXIT_INVALID, EXIT_OK, _load, format_table
from ..errors import OutputError
from .spec import COST_OBJECTIVES, PRUNERS, SAMPLERS, SweepError, parse_param


def _param(text: str) -> Any:
    try:
        return parse_param(text)
    except SweepError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _seed(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = -1
    if not 0 <= value < 2**32:
        raise argparse.ArgumentTypeError(f"expected an integer from 0 to 2**32 - 1, got {text!r}")
    return value


def add_parser(sub: Any) -> None:
    """The ``sweep`` subcommand."""
    from ..cli_common import _positive_int

    p = sub.add_parser("sweep", help="search training settings and node parameters with Optuna (each trial a run; "
                       "the study in SQLite beside the project, resumable)")
    p.add_argument("project", help="project file (.json)")
    p.add_argument("--param", action="append", type=_param, default=[], metavar="NAME=SPEC",
                   help="a dimension of the search space: lr=float:1e-4:1e-1:log, conv1.out_channels=int:8:64:log, "
                   "batch_size=int:16:128:step=16, optimizer=adam,sgd (repeat; replaces the project's of that name)")
    p.add_argument("--objective", action="append", default=[], metavar="NAME",
                   help=f"the validation metric first (val_accuracy, val_loss; NAME:max or NAME:min), then any of "
                   f"{', '.join(COST_OBJECTIVES)} for a multi-objective study with a Pareto front (repeat)")
    p.add_argument("--sampler", choices=SAMPLERS, help="Optuna's TPE, random or grid sampler (default: the project's, "
                   "else tpe)")
    p.add_argument("--pruner", choices=PRUNERS, help="prune poor trials from their per-epoch validation metric "
                   "(default: median for one objective, none for several)")
    p.add_argument("--trials", type=_positive_int, metavar="N", help="finished trials the study should hold "
                   "(default: the project's, else the grid's size, else 20)")
    p.add_argument("--jobs", type=_positive_int, default=1, metavar="K", help="trials at the same time, in K worker "
                   "processes sharing the storage (default 1)")
    p.add_argument("--seed", type=_seed, metavar="N", help="the sampler's seed")
    p.add_argument("--storage", metavar="URL", help="Optuna storage URL, e.g. postgresql://user@host/db to share a "
                   "study between machines (default: sqlite:///<project>.sweep.db beside the project)")
    p.add_argument("--study", metavar="NAME", help="the study's name (default: the project file's name)")
    p.add_argument("--epochs", type=_positive_int, metavar="N", help="epochs of every trial (default: the project's)")
    p.add_argument("--device", help="auto, cpu, cuda, cuda:N or mps (default: the project's setting)")
    p.add_argument("--threads", type=_positive_int, metavar="N", help="torch threads per worker")
    p.add_argument("--apply", type=int, metavar="TRIAL", help="write trial TRIAL's values into a copy of the project "
                   "(-o) instead of running trials")
    p.add_argument("-o", "--output", metavar="OUT.json", help="with --apply: the project file to write")
    p.add_argument("--force", action="store_true", help="with --apply: replace OUT.json if it exists")
    p.add_argument("--json", action="store_true", help="print the best trial(s) as JSON at the end")
    p.set_defaults(func=cmd_sweep)


def _spec(project: Any, args: argparse.Namespace) -> Any:
    from dataclasses import replace

    from .results import sweep_spec_of

    spec = sweep_spec_of(project).with_params(args.param)
    changes: dict[str, Any] = {}
    if args.objective:
        from .spec import check_objective

        for i, o in enumerate(args.objective):
            check_objective(o, i, "--objective")
        changes["objectives"] = tuple(args.objective)
    for key in ("sampler", "pruner", "seed"):
        if getattr(args, key) is not None:
            changes[key] = getattr(args, key)
    return replace(spec, **changes)


def _options(project: Any, args: argparse.Namespace) -> Any:
    from .study import SweepOptions

    overrides = {k: v for k, v in (("epochs", args.epochs), ("device", args.device)) if v is not None}
    return SweepOptions(storage=args.storage, study=args.study, trials=args.trials, jobs=args.jobs,
                        threads=args.threads, overrides=overrides)


def cmd_sweep(args: argparse.Namespace) -> int:
    project = _load(args.project)
    if args.apply is not None:
        return _apply(project, args)
    if args.output:
        raise SweepError("-o/--output goes with --apply TRIAL", "-o")
    from .study import SweepStop, run_sweep, trial_line

    spec, options = _spec(project, args), _options(project, args)
    if args.threads:
        import torch

        torch.set_num_threads(args.threads)
    stop = SweepStop()

    def on_signal(_sig: int, _frame: Any) -> None:
        if stop.requests and options.jobs == 1:
            raise KeyboardInterrupt
        stop.request()
        print("\nstopping the running trial(s) after this step (again to abort); the study stays resumable...",
              file=sys.stderr)

    def on_start(e: dict[str, Any]) -> None:
        if e["type"] == "sweep_start":
            print(f"study {e['study']!r} in {e['storage']}: {', '.join(e['objectives'])} "
                  f"({', '.join(e['directions'])}); {e['done']} trial(s) done, {e['remaining']} to run"
                  + (f" in {e['jobs']} workers" if e["jobs"] > 1 else ""), file=sys.stderr, flush=True)

    previous = {s: signal.signal(s, on_signal) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        study = run_sweep(project, spec, options, [on_start, trial_line(sys.stderr)], stop)
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler)
    return _report(study, args, stopped=bool(stop.requests))


def _report(study: Any, args: argparse.Namespace, stopped: bool) -> int:
    from .results import best_trials
    from .study import counted, optuna_module

    optuna = optuna_module()
    trials = study.get_trials(deepcopy=False)
    states = {s: sum(t.state.name.lower() == s for t in trials) for s in ("complete", "pruned", "fail", "running")}
    best = best_trials(study)
    names = study.user_attrs.get("objectives") or [f"value{i}" for i in range(len(study.directions))]
    if args.json:
        print(json.dumps({"study": study.study_name, "trials": len(trials), **states,
                          "best": [{"trial": t.number, "values": dict(zip(names, t.values, strict=True)),
                                    "params": t.params, "run_dir": t.user_attrs.get("run_dir")} for t in best]},
                         indent=2))
    else:
        done = sum(counted(t, optuna) for t in trials)
        print(f"\n{done} trial(s) finished: {states['complete']} complete, {states['pruned']} pruned, "
              f"{states['fail']} failed or interrupted")
        if best:
            print("the Pareto front (best trade-offs):" if len(names) > 1 else "the best trial:")
            keys = sorted({k for t in best for k in t.params})
            rows = [["trial", *names, *keys, "run folder"]]
            for t in sorted(best, key=lambda t: t.number):
                rows.append([str(t.number), *(f"{v:.4g}" for v in t.values),
                             *(_cell(t.params.get(k)) for k in keys), Path(t.user_attrs.get("run_dir", "")).name])
            print(format_table(rows))
    if stopped:
        print("stopped: run the same command again to resume the study", file=sys.stderr)
    return EXIT_OK if best or stopped else EXIT_INVALID


def _cell(v: Any) -> str:
    return f"{v:.4g}" if isinstance(v, float) else str(v)


def _apply(project: Any, args: argparse.Namespace) -> int:
    from ..project import save_project
    from .results import apply_trial
    from .study import default_storage, open_storage, optuna_module, study_name

    if not args.output:
        raise SweepError("--apply needs -o OUT.json (the project file to write)", "--apply")
    out = Path(args.output)
    if out.exists() and not args.force:
        raise OutputError(f"{out}: exists; give --force to replace it")
    url = args.storage or default_storage(project.path)
    storage = open_storage(url)
    name = study_name(project, _options(project, args))
    try:
        study = optuna_module().load_study(study_name=name, storage=storage)
    except KeyError:
        raise SweepError(f"no study named {name!r} in {url}", "--study") from None
    applied = apply_trial(project, study, args.apply)
    save_project(applied, out)
    params = next(t.params for t in study.get_trials(deepcopy=False) if t.number == args.apply)
    print(f"trial {args.apply}'s values written to {out}: " + ", ".join(f"{k}={_cell(v)}" for k, v in params.items()))
    return EXIT_OK
