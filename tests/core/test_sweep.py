"""Sweeps on Optuna: the sweep section and --param syntax, trials as runs, samplers, pruning, resume,
multi-objective Pareto fronts, failures, parallel workers and --apply.

Each trial trains a small MLP on the built-in digits for 1-3 epochs, so the file runs in well under
a minute on two cores."""

from __future__ import annotations

import itertools
import json
import subprocess
import sys
from pathlib import Path

import pytest
from safetensors import safe_open

from workbench.errors import ProjectError
from workbench.project import load_project, loads_project, save_project
from workbench.samples import digits_mlp
from workbench.sweep.apply import resolve
from workbench.sweep.spec import SweepError, SweepSpec, parse_param, sweep_from_dict

optuna = pytest.importorskip("optuna", reason="the sweep extra (optuna) is not installed")

from workbench.sweep.results import best_trials  # noqa: E402
from workbench.sweep.study import SweepOptions, SweepStop, run_sweep  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(autouse=True)
def one_thread() -> object:
    """Tiny models train fastest on one thread on a shared machine."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def tiny(tmp_path: Path, epochs: int = 1, sweep: dict | None = None) -> Path:
    project = digits_mlp()
    for name, width in (("fc1", 16), ("fc2", 16)):
        project.graph.set_params(project.graph.by_name(name).id, {"out_features": width})
    project.training.update(epochs=epochs, device="cpu", lr=0.01, schedule="none")
    project.data.update(batch_size=128, val_fraction=0.3)  # 10 steps an epoch
    project.sweep = sweep
    path = tmp_path / "p.json"
    save_project(project, path)
    return path


def space(*texts: str, **kw: object) -> SweepSpec:
    return SweepSpec(tuple(parse_param(t) for t in texts), **kw)  # type: ignore[arg-type]


def sweep(path: Path, spec: SweepSpec, trials: int | None = None, **kw: object) -> optuna.Study:
    return run_sweep(load_project(path), spec, SweepOptions(trials=trials, **kw))  # type: ignore[arg-type]


def run_folder(trial: optuna.trial.FrozenTrial) -> Path:
    return Path(trial.user_attrs["run_dir"])


# --------------------------------------------------------------------------- the spec


@pytest.mark.parametrize(("doc", "where", "words"), [
    ({"params": [{"name": "lr", "type": "float", "low": 0.1, "high": 0.01}]}, "sweep.params[0].low", "must be < high"),
    ({"params": [{"name": "lr", "type": "float", "low": 0.0, "high": 1.0, "log": True}]}, "sweep.params[0].low",
     "log scale needs low > 0"),
    ({"params": [{"name": "lr", "type": "float", "low": 0.1}]}, "sweep.params[0].high", "missing"),
    ({"params": [{"name": "fc1.out_features", "type": "int", "low": 2.5, "high": 9}]}, "sweep.params[0].low",
     "integer"),
    ({"params": [{"name": "lr", "type": "choice", "choices": []}]}, "sweep.params[0].choices", "non-empty"),
    ({"params": [{"name": "lr", "type": "cube", "low": 1, "high": 2}]}, "sweep.params[0].type", "int, float, choice"),
    ({"params": [{"name": "nothing", "type": "int", "low": 1, "high": 2}]}, "sweep.params[0].name", "node.parameter"),
    ({"params": [{"name": "lr", "type": "float", "low": 0.1, "high": 0.2, "stride": 1}]},
     "sweep.params[0].stride", "unknown key"),
    ({"params": [{"name": "lr", "type": "choice", "choices": [1]}, {"name": "lr", "type": "choice", "choices": [2]}]},
     "sweep.params[1].name", "already declared"),
    ({"sampler": "bayes"}, "sweep.sampler", "tpe, random, grid"),
    ({"pruner": "asha"}, "sweep.pruner", "none, median, hyperband"),
    ({"trials": 0}, "sweep.trials", "positive"),
    ({"objectives": ["params"]}, "sweep.objectives[0]", "validation metric"),
    ({"objectives": ["val_accuracy", "speed"]}, "sweep.objectives[1]", "params, macs, latency_ms"),
    ({"objectives": ["val_accuracy:up"]}, "sweep.objectives[0]", "max or min"),
    ({"colour": 1}, "sweep.colour", "unknown key"),
])
def test_a_bad_sweep_section_is_refused_at_its_json_path(tmp_path: Path, doc: dict, where: str, words: str) -> None:
    path = tiny(tmp_path)
    raw = json.loads(path.read_text())
    raw["sweep"] = doc
    path.write_text(json.dumps(raw))
    with pytest.raises(ProjectError) as info:
        load_project(path)
    assert info.value.path == where
    assert words in info.value.detail


def test_the_sweep_section_round_trips_and_old_projects_open(tmp_path: Path) -> None:
    declared = {"params": [{"name": "lr", "type": "float", "low": 1e-4, "high": 0.1, "log": True},
                           {"name": "fc1.out_features", "type": "int", "low": 8, "high": 64, "step": 8},
                           {"name": "optimizer", "type": "choice", "choices": ["adam", "sgd"]}],
                "sampler": "random", "pruner": "hyperband", "trials": 7, "seed": 3,
                "objectives": ["val_accuracy", "params"]}
    path = tiny(tmp_path, sweep=declared)
    project = load_project(path)
    assert sweep_from_dict(project.sweep) == sweep_from_dict(declared)
    assert loads_project(project.to_json()).sweep == project.sweep
    old = json.loads((ROOT / "samples" / "digits_cnn.json").read_text())
    assert "sweep" not in old and loads_project(json.dumps(old)).sweep is None
    import jsonschema

    jsonschema.validate(json.loads(path.read_text()), json.loads((ROOT / "docs" / "project.schema.json").read_text()))


def test_param_syntax() -> None:
    p = parse_param("conv1.out_channels=int:8:64:log")
    assert (p.name, p.kind, p.low, p.high, p.log, p.step) == ("conv1.out_channels", "int", 8, 64, True, None)
    p = parse_param("lr=float:1:10:step=0.5")
    assert (p.kind, p.low, p.high, p.step, p.log) == ("float", 1.0, 10.0, 0.5, False)
    assert parse_param("optimizer=adam,sgd").choices == ("adam", "sgd")
    assert parse_param("fc1.bias=choice:true,false").choices == (True, False)
    assert parse_param("batch_size=16,32").choices == (16, 32)
    for bad, words in (("lr", "expected NAME="), ("lr=float:1", "LOW:HIGH"), ("lr=float:0.1:0.01", "< high"),
                       ("lr=float:0.1:1:cubic", "unknown option"), ("lr=float:1e-3:1:log:step=0.1", "cannot be combined")):
        with pytest.raises(SweepError) as info:
            parse_param(bad)
        assert info.value.path.startswith("--param ") and words in str(info.value)


@pytest.mark.parametrize(("text", "words"), [
    ("conv9.out_channels=int:8:16", 'no node named "conv9"'),
    ("fc1.kernel=int:8:16", "has no parameter 'kernel'"),
    ("fc1.out_features=float:8:16", "does not fit this int parameter"),
    ("lr=float:0.1:20", "high 20.0 is refused"),
    ("seed=1,2", "write training.seed or data.seed"),
    ("optimizer=adam,lbfgs", "the choice 'lbfgs' is refused"),
])
def test_names_and_ranges_are_checked_against_the_project(tmp_path: Path, text: str, words: str) -> None:
    with pytest.raises(SweepError) as info:
        resolve(load_project(tiny(tmp_path)), space(text))
    assert words in str(info.value) and info.value.path == text.split("=")[0]


def test_check_warns_about_a_stale_sweep_name(tmp_path: Path) -> None:
    from workbench.cli import check_report

    bad = {"params": [{"name": "conv9.out_channels", "type": "int", "low": 4, "high": 8}]}
    report = check_report(load_project(tiny(tmp_path, sweep=bad)))
    assert ['sweep: conv9.out_channels: no node named "conv9"' in w["message"] for w in report["warnings"]].count(True) == 1
    good = {"params": [{"name": "fc1.out_features", "type": "int", "low": 4, "high": 8}]}
    assert not any("sweep" in w["message"] for w in check_report(load_project(tiny(tmp_path, sweep=good)))["warnings"])


def test_data_seed_and_training_seed_are_told_apart(tmp_path: Path) -> None:
    targets = resolve(load_project(tiny(tmp_path)), space("data.seed=1,2", "training.seed=1,2", "batch_size=8,16"))
    assert [(t.section, t.key) for t in targets.values()] == [("data", "seed"), ("training", "seed"),
                                                               ("data", "batch_size")]


# --------------------------------------------------------------------------- trials are runs


def test_grid_enumerates_exactly_the_grid_and_values_reach_the_model(tmp_path: Path) -> None:
    path = tiny(tmp_path)
    study = sweep(path, space("fc1.out_features=8,24", "lr=0.0,0.05", sampler="grid"))
    trials = study.get_trials()
    assert len(trials) == 4  # the default number of trials of a grid is its size
    assert sorted((t.params["fc1.out_features"], t.params["lr"]) for t in trials) == sorted(
        itertools.product([8, 24], [0.0, 0.05]))
    for t in trials:
        folder = run_folder(t)
        record = json.loads((folder / "trial.json").read_text())
        assert record["trial"] == t.number and record["params"] == t.params and record["state"] == "complete"
        config = json.loads((folder / "config.json").read_text())
        fc1 = next(n for n in config["project"]["graph"]["nodes"] if n["name"] == "fc1")
        assert fc1["params"]["out_features"] == t.params["fc1.out_features"]
        assert config["training"]["lr"] == t.params["lr"]
        with safe_open(str(folder / "checkpoints" / "last.safetensors"), "pt") as f:
            assert f.get_slice("model.fc1.weight").get_shape()[0] == t.params["fc1.out_features"]
        summary = json.loads((folder / "summary.json").read_text())
        assert t.value == summary["final"]["accuracy"] and t.user_attrs["params"] == summary["params"]
    # lr changes the result: lr 0 leaves the initial weights (chance level), 0.05 learns
    by = {(t.params["fc1.out_features"], t.params["lr"]): t.value for t in trials}
    for width in (8, 24):
        assert by[(width, 0.0)] < 0.2 < by[(width, 0.05)]


def good_then_bad(path: Path, study_name: str, pruner: str) -> optuna.Study:
    """3 trials that learn, then 3 that cannot (lr 0): a deterministic case for a pruner."""
    from workbench.sweep.study import default_storage, open_storage

    storage = open_storage(default_storage(path))
    study = optuna.create_study(storage=storage, study_name=study_name, direction="maximize")
    for lr in (0.01, 0.012, 0.014, 0.0, 0.0, 0.0):
        study.enqueue_trial({"lr": lr})
    return sweep(path, space("lr=float:0:0.1", sampler="random", pruner=pruner, seed=0), trials=6,
                 study=study_name)


def test_the_median_pruner_prunes_poor_trials_and_none_does_not(tmp_path: Path) -> None:
    path = tiny(tmp_path, epochs=3)
    pruned = good_then_bad(path, "median", "median")
    states = [t.state for t in pruned.get_trials()]
    assert states == [optuna.trial.TrialState.COMPLETE] * 3 + [optuna.trial.TrialState.PRUNED] * 3
    for t in pruned.get_trials()[3:]:
        assert list(t.intermediate_values) == [1]  # stopped after its first epoch's report
        assert json.loads((run_folder(t) / "trial.json").read_text())["state"] == "pruned"
        assert json.loads((run_folder(t) / "summary.json").read_text())["epochs_done"] <= 2
    kept = good_then_bad(path, "none", "none")
    assert all(t.state == optuna.trial.TrialState.COMPLETE for t in kept.get_trials())
    assert all(len(t.intermediate_values) == 3 for t in kept.get_trials())


@pytest.mark.slow
def test_hyperband_prunes_too(tmp_path: Path) -> None:
    study = good_then_bad(tiny(tmp_path, epochs=3), "hb", "hyperband")
    assert isinstance(study.pruner, optuna.pruners.HyperbandPruner)
    states = [t.state for t in study.get_trials()]
    assert optuna.trial.TrialState.PRUNED in states[3:]
    assert optuna.trial.TrialState.PRUNED not in states[:1]


def test_an_interrupted_sweep_resumes_the_same_study_to_n_trials(tmp_path: Path) -> None:
    path = tiny(tmp_path)
    spec = space("lr=float:0.001:0.05:log", seed=1)
    stop = SweepStop()

    def interrupt(e: dict) -> None:
        if e["type"] == "trial_start" and e["trial"] == 1:
            stop.request()  # as Ctrl+C does: trial 1 stops at a batch boundary, no trial 2 starts

    first = run_sweep(load_project(path), spec, SweepOptions(trials=3), [interrupt], stop)
    trials = first.get_trials()
    assert [t.state for t in trials] == [optuna.trial.TrialState.COMPLETE, optuna.trial.TrialState.FAIL]
    assert trials[1].user_attrs["interrupted"] is True
    again = sweep(path, spec, trials=3)
    assert again.study_name == first.study_name and again._study_id == first._study_id
    states = [t.state for t in again.get_trials()]
    assert states.count(optuna.trial.TrialState.COMPLETE) == 3 and len(states) == 4
    retry = again.get_trials()[2]  # the stopped trial's values run first when the sweep resumes
    assert retry.user_attrs["retry_of"] == 1 and retry.params == trials[1].params
    assert sweep(path, spec, trials=3).get_trials() == again.get_trials()  # done: a rerun adds nothing


def test_overrides_are_the_base_and_sampled_values_win(tmp_path: Path) -> None:
    path = tiny(tmp_path, epochs=5)
    study = run_sweep(load_project(path), space("epochs=1,2", sampler="grid"), SweepOptions(overrides={"epochs": 3}))
    for t in study.get_trials():
        assert json.loads((run_folder(t) / "summary.json").read_text())["epochs_done"] == t.params["epochs"]
    study = run_sweep(load_project(path), space("lr=0.01,0.02", sampler="grid"),
                      SweepOptions(study="other", overrides={"epochs": 1}))
    for t in study.get_trials():
        assert json.loads((run_folder(t) / "config.json").read_text())["training"]["epochs"] == 1
    with pytest.raises(SweepError) as info:
        run_sweep(load_project(path), space("lr=0.01,0.02"), SweepOptions(overrides={"epochs": 0}))
    assert info.value.path == "--epochs"


def test_a_stopped_grid_point_is_run_when_the_sweep_resumes(tmp_path: Path) -> None:
    path = tiny(tmp_path)
    spec = space("fc1.out_features=4,8,12", sampler="grid", seed=0)
    stop = SweepStop()

    def interrupt(e: dict) -> None:
        if e["type"] == "trial_start" and e["trial"] == 1:
            stop.request()

    run_sweep(load_project(path), spec, SweepOptions(), [interrupt], stop)
    study = sweep(path, spec)
    done = [t.params["fc1.out_features"] for t in study.get_trials() if t.state == optuna.trial.TrialState.COMPLETE]
    assert sorted(done) == [4, 8, 12]


def test_a_killed_workers_trial_fails_by_heartbeat_and_is_retried_with_its_values(tmp_path: Path,
                                                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    import time

    from workbench.sweep import study as study_module

    monkeypatch.setattr(study_module, "GRACE", 1)
    monkeypatch.setattr(study_module, "HEARTBEAT", 1)
    path = tiny(tmp_path)
    spec = space("lr=float:0.001:0.05:log", seed=3)
    storage = study_module.open_storage(study_module.default_storage(path))
    objectives = study_module.objectives_of(spec, "classification")
    with pytest.warns(UserWarning, match="Heartbeat"):  # Optuna: ask() is not how workers use heartbeats
        orphan = study_module.load_or_create(storage, "p", objectives, spec, 1).ask()
    lr = orphan.suggest_float("lr", 0.001, 0.05, log=True)
    storage.record_heartbeat(orphan._trial_id)  # as a worker does, then it is killed: no more heartbeats
    import datetime

    beat = datetime.datetime.now()
    while datetime.datetime.now() - beat < datetime.timedelta(seconds=2.5):  # heartbeats are wall-clock times,
        time.sleep(0.1)  # and a virtual machine's wall clock may lag its sleep: wait on the clock itself
    study = sweep(path, spec, trials=2)
    trials = study.get_trials()
    assert trials[0].state == optuna.trial.TrialState.FAIL and "failure" not in trials[0].user_attrs
    retried = [t for t in trials if t.system_attrs.get("failed_trial") == 0]
    assert len(retried) == 1 and retried[0].params["lr"] == lr and retried[0].state.is_finished()
    assert sum(t.state == optuna.trial.TrialState.COMPLETE for t in trials) == 2  # the lost trial does not count


@pytest.mark.slow
def test_processes_creating_one_new_sqlite_study_at_once_both_open_it(tmp_path: Path) -> None:
    """The dock and the sweep, or two sweeps, may create the same new database together."""
    code = ("import sys, time; from workbench.sweep.study import open_storage; t = float(sys.argv[2]);"
            "time.sleep(max(0.0, t - time.time())); open_storage(sys.argv[1]); print('ok')")
    import time

    for round_ in range(3):
        url = f"sqlite:///{tmp_path / f'race{round_}.db'}"
        start = str(time.time() + 4)  # both start their schema at the same moment, after their imports
        procs = [subprocess.Popen([sys.executable, "-c", code, url, start], cwd=ROOT, stdout=subprocess.PIPE,
                                  stderr=subprocess.PIPE, text=True) for _ in range(2)]
        for p in procs:
            out, err = p.communicate(timeout=60)
            assert p.returncode == 0 and out.strip() == "ok", err


def test_a_trial_that_cannot_train_fails_with_its_reason_and_the_sweep_goes_on(tmp_path: Path) -> None:
    study = sweep(tiny(tmp_path), space("classifier.out_features=10,7", sampler="grid"))
    by = {t.params["classifier.out_features"]: t for t in study.get_trials()}
    assert by[10].state == optuna.trial.TrialState.COMPLETE
    assert by[7].state == optuna.trial.TrialState.FAIL
    assert 'Output "logits"' in by[7].user_attrs["failure"] and "10 classes" in by[7].user_attrs["failure"]
    assert "run_dir" not in by[7].user_attrs  # refused by the pre-flight: no run folder


def test_multi_objective_front_is_optunas(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tiny(tmp_path)
    study = sweep(path, space("fc1.out_features=int:4:64:log", "lr=float:0.001:0.05:log", sampler="random", seed=2,
                              objectives=("val_accuracy", "params")), trials=5)
    assert [d.name for d in study.directions] == ["MAXIMIZE", "MINIMIZE"]
    trials = [t for t in study.get_trials() if t.state == optuna.trial.TrialState.COMPLETE]
    assert len(trials) == 5

    def dominated(t: optuna.trial.FrozenTrial) -> bool:
        return any(o.values[0] >= t.values[0] and o.values[1] <= t.values[1] and o.values != t.values for o in trials)

    front = {t.number for t in trials if not dominated(t)}
    assert {t.number for t in best_trials(study)} == front == {t.number for t in study.best_trials}
    for t in trials:  # the cost objective is the trained model's parameter count
        assert t.values[1] == json.loads((run_folder(t) / "summary.json").read_text())["params"]
    code, out, err = run_main(capsys, str(path), "--objective", "val_accuracy", "--objective", "params", "--param",
                              "fc1.out_features=int:4:64:log", "--param", "lr=float:0.001:0.05:log", "--trials", "5",
                              "--json")
    assert code == 0, err  # the study is done: the command only reports it
    assert "0 to run" in err
    report = json.loads(out)  # progress goes to stderr: stdout is the JSON alone
    assert {b["trial"] for b in report["best"]} == front


def test_latency_objective_is_the_profiled_forward_pass(tmp_path: Path) -> None:
    study = sweep(tiny(tmp_path), space("fc1.out_features=4,256", sampler="grid",
                                         objectives=("val_accuracy", "latency_ms")))
    by = {t.params["fc1.out_features"]: t for t in study.get_trials()}
    for t in by.values():
        record = json.loads((run_folder(t) / "trial.json").read_text())
        assert t.values[1] == record["costs"]["latency_ms"] == t.user_attrs["latency_ms"] > 0
    assert [d.name for d in study.directions] == ["MAXIMIZE", "MINIMIZE"]
    assert "latency_ms" not in sweep(tiny(tmp_path / "b"), space("lr=0.01,0.02", sampler="grid")).trials[0].user_attrs


def test_without_optuna_the_message_names_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    from workbench.sweep.study import optuna_module

    monkeypatch.setitem(sys.modules, "optuna", None)  # what a missing package looks like to import
    with pytest.raises(SweepError, match=r"neural-workbench\[sweep\]"):
        optuna_module()


def test_pruning_a_multi_objective_study_is_refused(tmp_path: Path) -> None:
    with pytest.raises(SweepError, match="needs a single objective"):
        sweep(tiny(tmp_path), space("lr=0.01,0.02", objectives=("val_accuracy", "macs"), pruner="median"))


# --------------------------------------------------------------------------- the command line


def cli(*args: str, cwd: Path = ROOT) -> subprocess.CompletedProcess[str]:
    """The command in a process of its own (what a user runs; worker processes and signals are real)."""
    return subprocess.run([sys.executable, "-m", "workbench", "sweep", *args], capture_output=True, text=True, cwd=cwd)


def run_main(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    """The same command in this process (no second torch import: fast)."""
    from workbench.cli import main

    try:
        code = main(["sweep", *args])
    except SystemExit as exc:  # argparse refuses an option
        code = int(exc.code or 0)
    out, err = capsys.readouterr()
    return code, out, err


@pytest.mark.slow
def test_cli_parallel_workers_share_the_sqlite_study_and_apply_writes_a_trial(tmp_path: Path) -> None:
    path = tiny(tmp_path, sweep={"params": [{"name": "fc2.out_features", "type": "int", "low": 4, "high": 32}]})
    out = cli(str(path), "--param", "lr=float:0.001:0.05:log", "--trials", "4", "--jobs", "2", "--threads", "1",
              "--seed", "5")
    assert out.returncode == 0, out.stderr
    assert "in 2 workers" in out.stderr and "[worker 2] trial" in out.stderr and "the best trial:" in out.stdout
    study = optuna.load_study(study_name="p", storage=f"sqlite:///{tmp_path / 'p.sweep.db'}")
    trials = study.get_trials()
    assert len(trials) == 4 and all(t.state == optuna.trial.TrialState.COMPLETE for t in trials)
    assert sorted(t.number for t in trials) == [0, 1, 2, 3]
    best = study.best_trial
    target = tmp_path / "best.json"
    out = cli(str(path), "--apply", str(best.number), "-o", str(target))
    assert out.returncode == 0, out.stderr
    applied = load_project(target)
    assert applied.training["lr"] == best.params["lr"]
    assert applied.graph.by_name("fc2").params["out_features"] == best.params["fc2.out_features"]
    again = cli(str(path), "--apply", str(best.number), "-o", str(target))
    assert again.returncode == 2 and "exists" in again.stderr
    assert target.read_text() == applied.to_json()
    missing = cli(str(path), "--apply", "99", "-o", str(tmp_path / "x.json"))
    assert missing.returncode == 1 and "no trial 99" in missing.stderr and not (tmp_path / "x.json").exists()


def test_cli_errors_are_located(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tiny(tmp_path)
    for args, status, words in (
        (["--param", "lr=float:0.5:0.1"], 2, ["--param lr", "< high"]),
        (["--param", "conv1.out_channels=8,16"], 1, ['conv1.out_channels: no node named "conv1"']),
        ([], 1, ["search space is empty"]),
        (["--param", "lr=float:0.001:0.1", "--sampler", "grid"], 1, ["lr: the grid sampler needs a step"]),
        (["--param", "lr=0.1,0.2", "--objective", "params"], 1, ["--objective", "validation metric"]),
        (["--param", "lr=0.1,0.2", "--storage", "nosuchdb://x"], 1, ["--storage: cannot open the storage"]),
        (["--apply", "0"], 1, ["--apply needs -o"]),
        (["--param", "lr=0.1,0.2", "--seed", "-3"], 2, ["--seed", "0 to 2**32 - 1"]),
    ):
        code, _out, err = run_main(capsys, str(path), *args)
        assert code == status and all(w in err for w in words) and "Traceback" not in err, (args, err)
    assert not list(tmp_path.glob("runs/**/trial.json"))
