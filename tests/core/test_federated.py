"""Federated training with Flower: partitions, Flower's aggregation against the weighted mean of
the clients' own updates, FedProx's mu, the run folder the dashboard reads, the CLI."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from workbench.federated import (
    FederatedError,
    FederatedSettings,
    PartitionError,
    deployment_commands,
    label_histograms,
    parse_partitioning,
    partition,
)
from workbench.project import save_project
from workbench.samples import digits_mlp

LABELS = np.repeat(np.arange(10), 60)  # 600 samples, 10 balanced classes


@pytest.mark.parametrize("how", ["iid", "dirichlet:0.5"])
def test_partitions_cover_every_sample_once(how: str) -> None:
    parts = partition(LABELS, 7, parse_partitioning(how), seed=3)
    joined = np.concatenate(parts)
    assert len(parts) == 7 and sum(len(p) for p in parts) == len(LABELS)
    assert np.array_equal(np.sort(joined), np.arange(len(LABELS)))
    if how == "iid":
        assert max(len(p) for p in parts) - min(len(p) for p in parts) <= 1


def _skew(alpha: float, seed: int = 0) -> float:
    """Mean total-variation distance between a client's label distribution and the global one."""
    parts = partition(LABELS, 10, parse_partitioning(f"dirichlet:{alpha}"), seed)
    hist = label_histograms(LABELS, parts, 10).astype(float)
    dist = hist / hist.sum(1, keepdims=True)
    return float(np.abs(dist - 0.1).sum(1).mean() / 2)


def test_dirichlet_alpha_sets_the_label_skew() -> None:
    iid = partition(LABELS, 10, parse_partitioning("iid"), 0)
    iid_hist = label_histograms(LABELS, iid, 10) / 60
    iid_skew = float(np.abs(iid_hist / iid_hist.sum(1, keepdims=True) - 0.1).sum(1).mean() / 2)
    skews = [_skew(a) for a in (0.1, 0.5, 100.0)]
    assert skews[0] > skews[1] > skews[2]
    assert skews[0] > 0.5 and skews[2] < 0.15 and iid_skew < skews[1]


def test_the_same_seed_gives_the_same_partition() -> None:
    how = parse_partitioning("dirichlet:0.5")
    a, b, c = (partition(LABELS, 5, how, s) for s in (1, 1, 2))
    assert all(np.array_equal(x, y) for x, y in zip(a, b, strict=True))
    assert not all(np.array_equal(x, y) for x, y in zip(a, c, strict=True))


@pytest.mark.parametrize("text", ["dirichlet", "dirichlet:-1", "dirichlet:x", "shards:2", "iid:3"])
def test_a_bad_partition_is_refused_by_name(text: str) -> None:
    with pytest.raises(PartitionError, match="--partition"):
        parse_partitioning(text)


def test_more_clients_than_samples_is_refused() -> None:
    with pytest.raises(PartitionError, match="fewer clients"):
        partition(LABELS[:10], 8, parse_partitioning("iid"), 0)


@pytest.mark.parametrize(("change", "word"), [({"clients": 1}, "--clients"), ({"strategy": "fedsgd"}, "--strategy"),
                                              ({"strategy": "fedprox", "mu": 0.0}, "mu"),
                                              ({"fraction_fit": 0.1}, "--fraction-fit")])
def test_settings_that_cannot_run_are_refused(change: dict, word: str) -> None:
    with pytest.raises(FederatedError, match=word):
        FederatedSettings("p.json", **{"clients": 4, **change}).check()


def test_the_printed_commands_name_flowers_apps_and_every_setting(tmp_path: Path) -> None:
    pytest.importorskip("flwr", reason="the federated extra (flwr) is not installed")
    settings = FederatedSettings(str(tmp_path / "p.json"), clients=4, rounds=7, partition="dirichlet:0.3")
    text = deployment_commands(settings, "10.0.0.5")
    assert "flower-superlink" in text and "10.0.0.5:9092" in text and "num-partitions=4" in text
    assert 'clientapp = "workbench.federated.app:client_app"' in text and "rounds = 7" in text
    assert 'partition = "dirichlet:0.3"' in text
    from flwr.clientapp import ClientApp
    from flwr.serverapp import ServerApp

    from workbench.federated import app

    assert isinstance(app.client_app, ClientApp) and isinstance(app.server_app, ServerApp)


def _expected(settings: FederatedSettings, mu: float) -> tuple[dict[str, torch.Tensor], list[float]]:
    """The global weights after each round, computed here: every client trains with the same code
    and seeds, and the new global model is the mean of their weights weighted by their sample counts."""
    from workbench.federated.app import _CACHE, client_data, local_train

    _CACHE.clear()
    data = client_data(settings)
    state = {k: v.clone() for k, v in data.module.state_dict().items()}
    accuracies = []
    for rnd in range(1, settings.rounds + 1):
        results = [local_train(data, state, c, settings, rnd, mu) for c in range(settings.clients)]
        total = sum(m["num-examples"] for _, m in results)
        state = {k: sum(w[k].double() * m["num-examples"] / total for w, m in results).to(state[k].dtype)
                 for k in state}
        from workbench.federated.app import evaluate

        accuracies.append(evaluate(data, state)["accuracy"])
    return state, accuracies


def test_a_short_simulation_aggregates_as_fedprox_says(tmp_path: Path) -> None:
    """Two clients of unequal size, two rounds of Flower's FedProx: the global model is the weighted
    mean of the clients' proximal updates (and differs from FedAvg's), each round has global and
    per-client metrics in the run folder."""
    pytest.importorskip("flwr", reason="the federated extra (flwr) is not installed")
    from workbench.federated import simulate
    from workbench.weights import load_checkpoint

    path = tmp_path / "p.json"
    save_project(digits_mlp(), path)
    settings = FederatedSettings(str(path), clients=2, rounds=2, partition="dirichlet:0.3", strategy="fedprox",
                                 mu=1.0, seed=5)
    summary = simulate(settings, tmp_path / "run")
    assert summary["status"] == "finished" and len(set(summary["client_samples"])) == 2
    want, accuracies = _expected(settings, mu=1.0)
    got = load_checkpoint(tmp_path / "run" / "checkpoints" / "last.safetensors").state("model")
    for k, v in want.items():
        torch.testing.assert_close(got[k], v, rtol=1e-4, atol=1e-5)
    fedavg, _ = _expected(settings, mu=0.0)
    assert max(float((fedavg[k] - want[k]).abs().max()) for k in want) > 1e-3  # mu changes the result
    rounds = [json.loads(line) for line in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    assert [r["round"] for r in rounds] == [1, 2]
    assert [r["val_accuracy"] for r in rounds] == pytest.approx(accuracies, abs=1e-6)
    assert set(rounds[0]["clients"]) == {"0", "1"}
    assert sorted(c["num-examples"] for c in rounds[0]["clients"].values()) == sorted(summary["client_samples"])
    assert json.loads((tmp_path / "run" / "summary.json").read_text())["final"]["accuracy"] == rounds[-1][
        "val_accuracy"]


def test_cli_refuses_bad_settings_before_starting(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from workbench.cli import main

    path = tmp_path / "p.json"
    save_project(digits_mlp(), path)
    assert main(["federate", str(path), "--clients", "3", "--partition", "dirichlet:zero"]) == 1
    assert "--partition" in capsys.readouterr().err
    assert main(["federate", str(path), "--clients", "3", "--print-commands"]) == 0
    assert "num-partitions=3" in capsys.readouterr().out
    assert not (tmp_path / "runs").exists()


@pytest.mark.parametrize(("setting", "value"), [("privacy", True), ("schedule", "cosine"), ("precision", "bf16")])
def test_project_settings_clients_cannot_honour_are_refused(tmp_path: Path, setting: str, value: object) -> None:
    from workbench.federated.app import _CACHE, client_data

    project = digits_mlp()
    project.training[setting] = value
    save_project(project, tmp_path / "p.json")
    _CACHE.clear()
    with pytest.raises(FederatedError, match=f"training.{setting}") as refused:
        client_data(FederatedSettings(str(tmp_path / "p.json"), clients=3))
    # per-sample DP-SGD stays refused inside clients; the message points to client-level DP (--dp)
    assert ("--dp" in str(refused.value)) == (setting == "privacy")


@pytest.mark.slow
def test_fedavg_two_clients_one_round_is_the_weighted_mean_of_their_updates(tmp_path: Path) -> None:
    pytest.importorskip("flwr", reason="the federated extra (flwr) is not installed")
    from workbench.federated import simulate
    from workbench.weights import load_checkpoint

    path = tmp_path / "p.json"
    save_project(digits_mlp(), path)
    settings = FederatedSettings(str(path), clients=2, rounds=1, partition="dirichlet:0.3", seed=1)
    simulate(settings, tmp_path / "run")
    want, _ = _expected(settings, mu=0.0)
    got = load_checkpoint(tmp_path / "run" / "checkpoints" / "last.safetensors").state("model")
    for k, v in want.items():
        torch.testing.assert_close(got[k], v, rtol=1e-4, atol=1e-5)


@pytest.mark.slow
def test_clients_that_all_fail_fail_the_run(tmp_path: Path) -> None:
    pytest.importorskip("flwr", reason="the federated extra (flwr) is not installed")
    from workbench.federated import simulate

    path = save_project(digits_mlp(), tmp_path / "p.json")

    def spoil(event: dict) -> None:  # once the run has started: the clients cannot read the project
        if event["type"] == "start":
            path.write_text("{ not json")

    with pytest.raises(FederatedError, match="no client returned an update"):
        simulate(FederatedSettings(str(path), clients=2, rounds=1), tmp_path / "run", [spoil])
    assert json.loads((tmp_path / "run" / "summary.json").read_text())["status"] == "failed"


class _Grid:
    """Just what Flower's strategies ask a grid while choosing the clients of a round."""

    def __init__(self, nodes: int) -> None:
        self.nodes = list(range(100, 100 + nodes))

    def get_node_ids(self) -> list[int]:
        return self.nodes


@pytest.mark.parametrize(("strategy", "fraction", "trained"), [("fedavg", 1.0, 10), ("fedavg", 0.5, 5),
                                                                ("fedprox", 0.3, 3)])
def test_fraction_fit_and_mu_reach_flowers_strategy(strategy: str, fraction: float, trained: int,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    pytest.importorskip("flwr", reason="the federated extra (flwr) is not installed")
    from flwr.app import ArrayRecord, ConfigRecord
    from flwr.supercore.task_identity import TaskIdentity

    for key in ("_task_id", "_run_id", "_node_id"):  # what a running ServerApp has (messages name their run)
        monkeypatch.setattr(TaskIdentity, key, 1)

    from workbench.federated.app import make_strategy

    settings = FederatedSettings("p.json", clients=10, strategy=strategy, mu=0.25, fraction_fit=fraction)
    messages = list(make_strategy(settings).configure_train(1, ArrayRecord({"w": torch.zeros(2)}),
                                                            ConfigRecord({"seed": 0}), _Grid(10)))
    assert len(messages) == trained and len({m.metadata.dst_node_id for m in messages}) == trained
    config = messages[0].content["config"]
    assert ("proximal-mu" in config) == (strategy == "fedprox")
    if strategy == "fedprox":
        assert config["proximal-mu"] == 0.25


def test_local_epochs_and_seed_change_a_clients_update(tmp_path: Path) -> None:
    from workbench.federated.app import _CACHE, client_data, local_train

    path = save_project(digits_mlp(), tmp_path / "p.json")
    _CACHE.clear()
    base = FederatedSettings(str(path), clients=4, local_epochs=1)
    data = client_data(base)
    state = {k: v.clone() for k, v in data.module.state_dict().items()}
    one, m1 = local_train(data, state, 0, base, 1, 0.0)
    again, _ = local_train(data, state, 0, base, 1, 0.0)
    two, m2 = local_train(data, state, 0, FederatedSettings(str(path), clients=4, local_epochs=2), 1, 0.0)
    other, _ = local_train(data, state, 0, FederatedSettings(str(path), clients=4, local_epochs=1, seed=9), 1, 0.0)
    assert all(torch.equal(one[k], again[k]) for k in one)  # the same seed: the same update
    assert any(not torch.equal(one[k], two[k]) for k in one) and m2["train_loss"] < m1["train_loss"]
    assert any(not torch.equal(one[k], other[k]) for k in one)
