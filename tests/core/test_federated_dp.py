"""Client-level differential privacy in federated runs (``workbench federate --dp NOISE:CLIP``):
Flower's server-side fixed-clipping wrapper against the unweighted mean of the clients' updates each
clipped by hand, its noise against the same seeded draws, the epsilon against Opacus' RDP accountant
called directly, and the refusals naming the flag."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from workbench.federated import FederatedError, FederatedSettings
from workbench.project import save_project
from workbench.samples import digits_mlp

pytest.importorskip("flwr", reason="the federated extra (flwr) is not installed")
pytest.importorskip("opacus", reason="the privacy extra (opacus) is not installed")


def _clip(update: dict[str, np.ndarray], norm: float) -> dict[str, np.ndarray]:
    """FlatClip by hand: the whole update scaled so that its L2 norm is at most ``norm``."""
    total = float(np.sqrt(sum(float((u.astype(np.float64) ** 2).sum()) for u in update.values())))
    scale = min(1.0, norm / total)
    return {k: u * scale for k, u in update.items()}


def _opacus_epsilon(noise: float, rounds: int, delta: float) -> float:
    from opacus.accountants import RDPAccountant

    accountant = RDPAccountant()
    for _ in range(rounds):
        accountant.step(noise_multiplier=noise, sample_rate=1.0)
    return float(accountant.get_epsilon(delta))


class _Grid:
    """Just what Flower's strategies ask a grid while choosing the clients of a round."""

    def __init__(self, nodes: int) -> None:
        self.nodes = list(range(100, 100 + nodes))

    def get_node_ids(self) -> list[int]:
        return self.nodes


def _one_round(settings: FederatedSettings, updates: list[dict[str, np.ndarray]], sizes: list[float],
               monkeypatch: pytest.MonkeyPatch, seed: int) -> tuple[dict[str, np.ndarray], object]:
    """One round of our strategy (Flower's DP wrapper around FedAvg) on known client replies."""
    from flwr.app import ArrayRecord, ConfigRecord, Message, MetricRecord, RecordDict
    from flwr.supercore.task_identity import TaskIdentity

    from workbench.federated.app import make_strategy
    from workbench.federated.dp import DP_WEIGHT

    for key in ("_task_id", "_run_id", "_node_id"):  # what a running ServerApp has (messages name their run)
        monkeypatch.setattr(TaskIdentity, key, 1)
    strategy = make_strategy(settings)
    current = {"w": torch.ones(3, 4), "b": torch.zeros(4)}
    messages = list(strategy.configure_train(1, ArrayRecord(current), ConfigRecord({"seed": 0}),
                                             _Grid(settings.clients)))
    assert len(messages) == len(updates)
    replies = []
    for msg, update, size in zip(messages, updates, sizes, strict=True):
        new = {k: current[k] + torch.from_numpy(update[k]) for k in current}
        metrics = {"num-examples": size, "train_loss": 1.0, "client": 0.0, DP_WEIGHT: 1.0}
        replies.append(Message(content=RecordDict({"arrays": ArrayRecord(new), "metrics": MetricRecord(metrics)}),
                               reply_to=msg))
    np.random.seed(seed)  # Flower draws its noise from NumPy's global generator
    arrays, _ = strategy.aggregate_train(1, replies)
    return {k: v.numpy() - current[k].numpy() for k, v in arrays.to_torch_state_dict().items()}, strategy


def _updates(rng: np.random.Generator, n: int) -> list[dict[str, np.ndarray]]:
    return [{"w": rng.normal(0, 1.0 + i, (3, 4)).astype(np.float32), "b": rng.normal(0, 1, 4).astype(np.float32)}
            for i in range(n)]


def test_without_noise_the_global_update_is_the_unweighted_mean_of_the_clipped_updates(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """Every client's update is clipped to the norm, then averaged with equal weights (not by sample
    count: the noise is calibrated to one client's share of an unweighted mean)."""
    updates = _updates(np.random.default_rng(0), 3)
    sizes = [10.0, 200.0, 40.0]
    settings = FederatedSettings("p.json", clients=3, dp=True, dp_noise=0.0, dp_clip=0.5)
    got, _ = _one_round(settings, updates, sizes, monkeypatch, seed=0)
    clipped = [_clip(u, 0.5) for u in updates]
    assert all(float(np.sqrt(sum((c[k].astype(np.float64) ** 2).sum() for k in c))) <= 0.5 + 1e-6 for c in clipped)
    want = {k: sum(c[k] for c in clipped) / 3 for k in updates[0]}
    weighted = {k: sum(c[k] * s for c, s in zip(clipped, sizes, strict=True)) / sum(sizes) for k in updates[0]}
    for k in want:
        np.testing.assert_allclose(got[k], want[k], rtol=1e-5, atol=1e-6)
    assert max(float(np.abs(weighted[k] - want[k]).max()) for k in want) > 1e-3  # the weighting matters
    plain = {k: sum(u[k] for u in updates) / 3 for k in updates[0]}
    assert max(float(np.abs(plain[k] - want[k]).max()) for k in want) > 1e-2  # and so does the clipping


def test_noise_is_flowers_gaussian_of_noise_times_clip_over_clients(monkeypatch: pytest.MonkeyPatch) -> None:
    updates = _updates(np.random.default_rng(1), 3)
    settings = FederatedSettings("p.json", clients=3, dp=True, dp_noise=1.5, dp_clip=0.5, delta=1e-6)
    got, strategy = _one_round(settings, updates, [1.0, 1.0, 1.0], monkeypatch, seed=7)
    again, _ = _one_round(settings, updates, [1.0, 1.0, 1.0], monkeypatch, seed=8)
    clipped = [_clip(u, 0.5) for u in updates]
    mean = {k: sum(c[k] for c in clipped) / 3 for k in updates[0]}
    np.random.seed(7)  # the same draws, in the order Flower adds them (the arrays' order)
    std = 1.5 * 0.5 / 3
    noise = {k: np.random.normal(0, std, mean[k].shape).astype(np.float32) for k in ("w", "b")}
    for k in mean:
        np.testing.assert_allclose(got[k], mean[k] + noise[k], rtol=1e-5, atol=1e-6)
    assert max(float(np.abs(got[k] - again[k]).max()) for k in got) > 0.1 * std  # noise changes the result
    assert strategy.epsilon_of_round == {1: pytest.approx(_opacus_epsilon(1.5, 1, 1e-6), rel=1e-9)}


def test_the_reported_epsilon_is_opacus_rdp_per_round_without_sampling_amplification() -> None:
    """Flower samples a fixed number of clients without replacement: no Poisson amplification is
    claimed (as Flower's own accounting of this wrapper), so half the clients per round spends what
    all of them would, more than Opacus would say for Poisson sampling at rate 0.5."""
    from opacus.accountants import RDPAccountant

    from workbench.federated.dp import ClientLevelAccountant

    accountant = ClientLevelAccountant(0.9, 1e-5)
    assert accountant.epsilon() == 0.0
    for _ in range(5):
        accountant.step()
    assert accountant.epsilon() == pytest.approx(_opacus_epsilon(0.9, 5, 1e-5), rel=1e-9)
    poisson = RDPAccountant()
    for _ in range(5):
        poisson.step(noise_multiplier=0.9, sample_rate=0.5)
    assert accountant.epsilon() > poisson.get_epsilon(1e-5)
    assert ClientLevelAccountant(0.0, 1e-5).epsilon() is None  # no noise: no privacy, not a number


def test_a_short_private_simulation_clips_adds_noise_and_reports_epsilon(tmp_path: Path) -> None:
    """Two clients of unequal size, two rounds with --dp: the final global model is the initial one
    plus, per round, the unweighted mean of the clients' own updates (computed here with the same code
    and seeds) each clipped by hand, plus Flower's noise (the same seeded draws); epsilon per round in
    the run folder equals Opacus' accountant called directly."""
    from workbench.federated import simulate
    from workbench.federated.app import _CACHE, client_data, local_train
    from workbench.weights import load_checkpoint

    path = save_project(digits_mlp(), tmp_path / "p.json")
    noise, clip, delta = 0.3, 0.2, 1e-4
    settings = FederatedSettings(str(path), clients=2, rounds=2, partition="dirichlet:0.3", local_epochs=1, seed=3,
                                 dp=True, dp_noise=noise, dp_clip=clip, delta=delta)
    np.random.seed(11)  # the server (in this process) draws Flower's noise from NumPy's global generator
    summary = simulate(settings, tmp_path / "run")
    assert summary["status"] == "finished" and len(set(summary["client_samples"])) == 2
    got = load_checkpoint(tmp_path / "run" / "checkpoints" / "last.safetensors").state("model")

    _CACHE.clear()
    data = client_data(settings)
    state = {k: v.clone() for k, v in data.module.state_dict().items()}
    np.random.seed(11)
    clean = state
    for rnd in (1, 2):
        updates = [{k: (w[k] - state[k]).numpy() for k in state}
                   for w, _ in (local_train(data, state, c, settings, rnd, 0.0) for c in range(2))]
        mean = {k: sum(c[k] for c in (_clip(u, clip) for u in updates)) / 2 for k in state}
        draws = {k: np.random.normal(0, noise * clip / 2, mean[k].shape).astype(np.float32) for k in state}
        clean = {k: state[k] + torch.from_numpy(mean[k]) for k in state}
        state = {k: clean[k] + torch.from_numpy(draws[k]) for k in state}
    for k, v in state.items():
        torch.testing.assert_close(got[k], v, rtol=1e-4, atol=1e-5)
    assert max(float((got[k] - clean[k]).abs().max()) for k in got) > 0.01  # the last round's noise is there

    rounds = [json.loads(line) for line in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    want = [_opacus_epsilon(noise, r, delta) for r in (1, 2)]
    assert [r["epsilon"] for r in rounds] == pytest.approx(want, rel=1e-9) and want[0] < want[1]
    assert all(r["delta"] == delta and "dp-weight" not in r["clients"]["0"] for r in rounds)
    assert summary["epsilon"] == pytest.approx(want[1], rel=1e-9) and summary["delta"] == delta


@pytest.mark.parametrize(("argv", "flag"), [
    (["--dp", "1.0"], "--dp"), (["--dp", "one:0.5"], "--dp"), (["--dp=-1:0.5"], "--dp"), (["--dp", "1:0"], "--dp"),
    (["--dp", "1:-2"], "--dp"), (["--dp", "nan:1"], "--dp"), (["--dp", "1:0.5", "--delta", "1.5"], "--delta"),
    (["--dp", "1:0.5", "--delta", "0"], "--delta"), (["--delta", "1e-5"], "--delta")])
def test_bad_dp_settings_are_refused_by_flag_before_a_run_starts(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                                                argv: list[str], flag: str) -> None:
    from workbench.cli import main

    path = save_project(digits_mlp(), tmp_path / "p.json")
    assert main(["federate", str(path), "--clients", "3", *argv]) == 1
    err = capsys.readouterr().err
    assert flag in err and "Traceback" not in err
    assert not (tmp_path / "runs").exists()


@pytest.mark.parametrize(("change", "word"), [({"dp_noise": -0.5}, "noise multiplier"), ({"dp_clip": 0.0}, "clipping"),
                                              ({"delta": 1.0}, "--delta"), ({"dp": False}, "dp = false")])
def test_settings_refuse_what_flowers_wrapper_cannot_honour(change: dict, word: str) -> None:
    settings = {"clients": 4, "dp": True, "dp_noise": 1.0, "dp_clip": 0.5, **change}
    with pytest.raises(FederatedError, match=word):
        FederatedSettings("p.json", **settings).check()


def test_a_model_with_integer_state_is_refused_under_dp() -> None:
    from workbench.federated.dp import check_model

    check_model(torch.nn.Sequential(torch.nn.Linear(2, 2), torch.nn.GroupNorm(1, 2)))
    with pytest.raises(FederatedError, match=r"num_batches_tracked.*GroupNorm"):
        check_model(torch.nn.Sequential(torch.nn.Linear(2, 2), torch.nn.BatchNorm1d(2)))


def test_the_printed_commands_carry_the_dp_settings(tmp_path: Path) -> None:
    from workbench.federated import deployment_commands

    text = deployment_commands(FederatedSettings(str(tmp_path / "p.json"), clients=4, dp=True, dp_noise=1.2,
                                                 dp_clip=0.3, delta=1e-6))
    assert "dp = true" in text and "dp_noise = 1.2" in text and "dp_clip = 0.3" in text and "delta = 1e-06" in text


@pytest.mark.parametrize(("strategy", "fraction", "trained"), [("fedavg", 0.5, 5), ("fedprox", 1.0, 10)])
def test_the_wrapper_calibrates_its_noise_to_the_clients_flower_samples(strategy: str, fraction: float, trained: int,
                                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    from flwr.app import ArrayRecord, ConfigRecord
    from flwr.serverapp.strategy import DifferentialPrivacyServerSideFixedClipping
    from flwr.supercore.task_identity import TaskIdentity

    from workbench.federated.app import make_strategy

    for key in ("_task_id", "_run_id", "_node_id"):
        monkeypatch.setattr(TaskIdentity, key, 1)
    settings = FederatedSettings("p.json", clients=10, strategy=strategy, mu=0.25, fraction_fit=fraction, dp=True,
                                 dp_noise=1.0, dp_clip=0.5)
    wrapped = make_strategy(settings)
    assert isinstance(wrapped, DifferentialPrivacyServerSideFixedClipping)
    messages = list(wrapped.configure_train(1, ArrayRecord({"w": torch.zeros(2)}), ConfigRecord({"seed": 0}),
                                            _Grid(10)))
    assert len(messages) == trained == wrapped.num_sampled_clients  # Flower's noise std: NOISE * CLIP / this
    assert ("proximal-mu" in messages[0].content["config"]) == (strategy == "fedprox")


@pytest.mark.parametrize("epsilon", [3.21, None])
def test_the_cli_passes_the_dp_flags_on_and_prints_the_epsilon(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                                              monkeypatch: pytest.MonkeyPatch,
                                                              epsilon: float | None) -> None:
    """The command line's wiring only (the simulation is tested above): the flags reach the settings
    and the summary's epsilon is printed."""
    import workbench.federated as federated
    from workbench.cli import main

    seen: list[FederatedSettings] = []

    def simulate(settings: FederatedSettings, *args: object, **kwargs: object) -> dict:
        seen.append(settings)
        return {"status": "finished", "epochs_done": settings.rounds, "client_samples": [1, 1], "final": {},
                "epsilon": epsilon, "delta": settings.delta}

    monkeypatch.setattr(federated, "simulate", simulate)
    path = save_project(digits_mlp(), tmp_path / "p.json")
    noise = "1.5" if epsilon else "0"
    assert main(["federate", str(path), "--clients", "3", "--dp", f"{noise}:0.25", "--delta", "1e-6"]) == 0
    assert (seen[0].dp, seen[0].dp_noise, seen[0].dp_clip, seen[0].delta) == (True, float(noise), 0.25, 1e-6)
    out = capsys.readouterr().out
    assert ("epsilon 3.210 at delta 1e-06" in out) if epsilon else ("no privacy" in out)
    assert main(["federate", str(path), "--clients", "3"]) == 0
    assert not seen[1].dp and "differential privacy" not in capsys.readouterr().out


def test_each_round_prints_its_epsilon(capsys: pytest.CaptureFixture[str]) -> None:
    from workbench.federated.app import _print_event

    _print_event({"type": "epoch", "round": 4, "train_loss": 0.5, "val_accuracy": 0.9, "epsilon": 12.3456,
                  "delta": 1e-5})
    assert "round 4:" in (out := capsys.readouterr().out) and "epsilon 12.346 (delta 1e-05, client-level)" in out


def test_without_opacus_dp_names_the_extra_to_install(monkeypatch: pytest.MonkeyPatch) -> None:
    import sys

    from workbench.federated.dp import ClientLevelAccountant, MissingOpacusAccountantError

    monkeypatch.setitem(sys.modules, "opacus.accountants", None)  # as if Opacus were not installed
    with pytest.raises(MissingOpacusAccountantError, match=r"--dp.*neural-workbench\[privacy\]"):
        ClientLevelAccountant(1.0, 1e-5)
