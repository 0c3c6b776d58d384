"""The Flower apps: a ``ClientApp`` that trains the project's model on one partition of its data,
and the server side that runs Flower's own strategy (FedAvg or FedProx) over the clients.

The same apps serve the simulation on this machine (:func:`workbench.federated.simulate`) and a
real deployment (``flwr run`` with the components ``workbench.federated.app:client_app`` and
``workbench.federated.app:server_app``).  Everything a client needs to know (the project file,
the partition, the seed, the local epochs, FedProx's mu) travels in the training message's
config, so clients hold no settings of their own besides their partition id.

Flower is imported by the functions that need it (the ``federated`` extra).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import torch
from torch.utils.data import DataLoader, TensorDataset

from ..errors import InputError
from .errors import FederatedError
from .partition import Partitioning, parse_partitioning, partition

_INSTALL = "pip install 'neural-workbench[federated]'"
STRATEGIES = ("fedavg", "fedprox")
#: the tasks federated training supports (a loss per sample over labelled data)
FEDERATED_TASKS = ("classification", "regression")

Event = dict[str, Any]


class MissingFlowerError(FederatedError, InputError):
    """Flower (with its simulation engine) is not installed."""


def flwr() -> Any:
    """The ``flwr`` package, or an error naming the extra to install."""
    try:
        import flwr as module
        from flwr.serverapp.strategy import FedAvg  # noqa: F401  (1.21+: the Message API strategies)
    except ImportError:
        raise MissingFlowerError(f"federated training needs Flower 1.21 or newer; install it with {_INSTALL}") from None
    return module


@dataclass(frozen=True)
class FederatedSettings:
    """One federated run.

    Attributes:
        project: the project file (every client reads it, and the data it names).
        clients: how many clients (one partition each).
        rounds: how many rounds of train-and-aggregate.
        partition: ``iid`` or ``dirichlet:ALPHA``.
        strategy: ``fedavg`` or ``fedprox``.
        mu: FedProx's proximal weight.
        fraction_fit: the share of clients trained in each round (at least two).
        local_epochs: passes over its partition a client makes per round.
        seed: seeds the partition, the initial weights and each client's shuffling.
        dp: client-level differential privacy with Flower's server-side fixed clipping
            (:mod:`workbench.federated.dp`).
        dp_noise: DP's noise multiplier (0: clipping only, no privacy).
        dp_clip: DP's clipping norm of a client's model update.
        delta: the delta of the (epsilon, delta) the accountant reports.
    """

    project: str
    clients: int = 10
    rounds: int = 20
    partition: str = "iid"
    strategy: str = "fedavg"
    mu: float = 0.01
    fraction_fit: float = 1.0
    local_epochs: int = 2
    seed: int = 0
    dp: bool = False
    dp_noise: float = 0.0
    dp_clip: float = 0.0
    delta: float = 1e-5

    def check(self) -> Partitioning:
        """Refuse what cannot run; returns the parsed partitioning.

        Raises:
            FederatedError: naming the setting.
        """
        if self.clients < 2:
            raise FederatedError(f"--clients: federated training needs at least 2 clients, got {self.clients}")
        if self.rounds < 1:
            raise FederatedError(f"--rounds must be at least 1, got {self.rounds}")
        if self.strategy not in STRATEGIES:
            raise FederatedError(f"--strategy {self.strategy!r}: choose {' or '.join(STRATEGIES)}")
        if self.strategy == "fedprox" and not self.mu > 0:
            raise FederatedError(f"--strategy fedprox:{self.mu:g}: mu must be above 0 (fedprox with mu 0 is fedavg)")
        if not 0 < self.fraction_fit <= 1:
            raise FederatedError(f"--fraction-fit must be in (0, 1], got {self.fraction_fit}")
        if self.clients * self.fraction_fit < 2 - 1e-9:
            raise FederatedError(f"--fraction-fit {self.fraction_fit:g} of {self.clients} clients trains fewer than 2 "
                                 "clients per round")
        if self.local_epochs < 1:
            raise FederatedError(f"--local-epochs must be at least 1, got {self.local_epochs}")
        from .dp import check_dp

        check_dp(self)
        return parse_partitioning(self.partition)

    def to_config(self) -> dict[str, Any]:
        """As a Flower ``ConfigRecord`` / run config (strings and numbers only)."""
        return asdict(self)

    @classmethod
    def from_config(cls, config: Any) -> FederatedSettings:
        keys = cls.__dataclass_fields__
        return cls(**{k: config[k] for k in keys if k in config})


# --------------------------------------------------------------------------- one client's data and training

_CACHE: dict[tuple[Any, ...], Any] = {}


@dataclass
class ClientData:
    """What every client of a run shares: the project, its model and the training split's partition."""

    project: Any
    module: torch.nn.Module
    x: torch.Tensor
    y: torch.Tensor
    parts: list[np.ndarray]
    num_classes: int
    val: TensorDataset | None


def client_data(settings: FederatedSettings) -> ClientData:
    """The project, its compiled model and the partitions (cached per process: a client process
    serves many rounds and, in the simulation, many clients)."""
    key = (settings.project, settings.clients, settings.partition, settings.seed)
    if key not in _CACHE:
        from ..compiler import compile_graph
        from ..data import load_data
        from ..project import load_project

        how = settings.check()
        project = load_project(settings.project)
        task = project.training["task"]
        if task not in FEDERATED_TASKS:
            raise FederatedError(f"training.task: federated training supports {', '.join(FEDERATED_TASKS)}, "
                                 f"not {task}")
        t = project.training
        for name, bad in (("privacy", t["privacy"]), ("schedule", t["schedule"] != "none"),
                          ("precision", t["precision"] != "fp32")):
            if bad:  # refused rather than silently ignored
                hint = (" (per-sample DP-SGD inside the clients); for client-level differential privacy use "
                        "workbench federate --dp NOISE:CLIP instead") if name == "privacy" else ""
                raise FederatedError(f"training.{name}: federated training does not support {name} {t[name]!r}"
                                     f"{hint or ' yet (clients train in fp32 at a constant learning rate)'}; change "
                                     "it to run federated")
        if how.kind == "dirichlet" and task != "classification":
            raise FederatedError(f"--partition {how}: Dirichlet partitions split by class; the {task} task has none")
        torch.manual_seed(settings.seed)  # the initial weights
        compiled = compile_graph(project.graph)
        if settings.dp:
            from .dp import check_model

            check_model(compiled.module)
        spec = compiled.inputs[0]
        data = load_data(project.data, spec.shape[1:], spec.dtype)
        x, y = data.train.tensors
        labels = y.numpy() if task == "classification" else np.zeros(len(y), dtype=np.int64)
        parts = partition(labels, settings.clients, how, settings.seed)
        classes = data.samples.num_classes if task == "classification" else 0
        _CACHE.clear()
        _CACHE[key] = ClientData(project, compiled.module, x, y, parts, classes, data.val)
    return _CACHE[key]


def local_train(data: ClientData, state: dict[str, torch.Tensor], client: int, settings: FederatedSettings,
                server_round: int, mu: float) -> tuple[dict[str, torch.Tensor], dict[str, float]]:
    """Train the global weights on one client's partition; FedProx adds (mu / 2) ||w - w_global||².

    Returns:
        the new weights, and the client's metrics (mean training loss, accuracy, samples).
    """
    from ..training.engine import _optimizer
    from ..training.tasks import loss_fn

    cfg = data.project.training
    model = data.module
    model.load_state_dict(state)
    model.train()
    anchor = [p.detach().clone() for p in model.parameters()]
    optimizer = _optimizer(cfg, model.parameters())
    idx = torch.as_tensor(data.parts[client])
    dataset = TensorDataset(data.x[idx], data.y[idx])
    seed = (settings.seed * 1_000_003 + server_round * 1_009 + client) % 2**63
    torch.manual_seed(seed)  # dropout
    loader = DataLoader(dataset, batch_size=int(data.project.data["batch_size"]), shuffle=True,
                        generator=torch.Generator().manual_seed(seed))
    total = correct = count = 0.0
    for _ in range(settings.local_epochs):
        for xb, yb in loader:
            optimizer.zero_grad(set_to_none=True)
            out = model(xb)
            out = out[0] if isinstance(out, tuple) else out
            loss = loss_fn(cfg["task"], out, yb, data.num_classes)
            if not torch.isfinite(loss):
                raise FederatedError(f"client {client}: the loss became {loss.item()} in round {server_round}; try "
                                     "a lower learning rate")
            objective = loss
            if mu > 0:
                objective = loss + mu / 2 * sum(((p - a) ** 2).sum() for p, a in zip(model.parameters(), anchor,
                                                                                     strict=True))
            objective.backward()
            if cfg["grad_clip"] > 0:
                torch.nn.utils.clip_grad_norm_(model.parameters(), cfg["grad_clip"])
            optimizer.step()
            total += float(loss.detach()) * len(xb)
            count += len(xb)
            if data.num_classes:
                correct += float((out.argmax(1) == yb).sum())
    metrics = {"train_loss": total / max(1.0, count), "num-examples": float(len(dataset)), "client": float(client)}
    if data.num_classes:
        metrics["train_accuracy"] = correct / max(1.0, count)
    return {k: v.detach().clone() for k, v in model.state_dict().items()}, metrics


def evaluate(data: ClientData, state: dict[str, torch.Tensor]) -> dict[str, float]:
    """The global model on the project's validation split (the server's held-out data)."""
    from ..training.tasks import MetricAccumulator, loss_fn

    if data.val is None:
        return {}
    task = data.project.training["task"]
    model = data.module
    model.load_state_dict(state)
    model.eval()
    acc = MetricAccumulator(task, data.num_classes, data.project.training["top_k"])
    with torch.no_grad():
        for xb, yb in DataLoader(data.val, batch_size=512):
            out = model(xb)
            out = out[0] if isinstance(out, tuple) else out
            acc.add(out, yb, float(loss_fn(task, out, yb, data.num_classes)))
    return acc.result()


# --------------------------------------------------------------------------- the Flower apps


def make_client_app() -> Any:
    """A ``ClientApp`` that trains on its partition (``partition-id`` of its node config)."""
    flwr()
    from flwr.app import ArrayRecord, Message, MetricRecord, RecordDict
    from flwr.clientapp import ClientApp

    app = ClientApp()

    @app.train()
    def train(msg: Any, context: Any) -> Any:
        torch.set_num_threads(1)  # one core per simulated client
        config = msg.content["config"]
        settings = FederatedSettings.from_config(config)
        client = int(context.node_config["partition-id"])
        data = client_data(settings)
        state = msg.content["arrays"].to_torch_state_dict()
        mu = float(config["proximal-mu"]) if "proximal-mu" in config else 0.0
        new, metrics = local_train(data, state, client, settings, int(config["server-round"]), mu)
        if settings.dp:  # DP averages the clipped updates unweighted (see workbench.federated.dp)
            from .dp import DP_WEIGHT

            metrics[DP_WEIGHT] = 1.0
        return Message(content=RecordDict({"arrays": ArrayRecord(new), "metrics": MetricRecord(metrics)}),
                       reply_to=msg)

    return app


def strategy_class(name: str) -> Any:
    """Flower's strategy class, observed: each round's per-client metrics are kept before Flower
    aggregates them (the aggregation itself is Flower's)."""
    flwr()
    from flwr.serverapp.strategy import FedAvg, FedProx

    base = FedProx if name == "fedprox" else FedAvg

    class Observed(base):  # type: ignore[misc, valid-type]
        clients_of_round: dict[int, list[dict[str, float]]]

        def aggregate_train(self, server_round: int, replies: Any) -> Any:
            replies = list(replies)
            self.clients_of_round = getattr(self, "clients_of_round", {})
            self.clients_of_round[server_round] = [
                dict(next(iter(m.content.metric_records.values()))) for m in replies if m.has_content()]
            return super().aggregate_train(server_round, replies)

    Observed.__name__ = base.__name__
    return Observed


def make_strategy(settings: FederatedSettings) -> Any:
    """Flower's FedAvg or FedProx for these settings (clients sampled per round: ``fraction_fit``; the
    evaluation is central, on the project's validation split), inside Flower's DP wrapper with ``dp``."""
    from .dp import DP_WEIGHT, private_strategy

    cls = strategy_class(settings.strategy)
    common = {"fraction_train": settings.fraction_fit, "fraction_evaluate": 0.0,
              "min_train_nodes": 2, "min_available_nodes": settings.clients,
              "weighted_by_key": DP_WEIGHT if settings.dp else "num-examples"}
    strategy = cls(**common, proximal_mu=settings.mu) if settings.strategy == "fedprox" else cls(**common)
    return private_strategy(strategy, settings) if settings.dp else strategy


def serve(grid: Any, settings: FederatedSettings, emit: Callable[[Event], None]) -> dict[str, torch.Tensor]:
    """Run the rounds with Flower's strategy; emits an ``epoch`` event per round (global validation
    metrics and every trained client's metrics).  Returns the final global weights."""
    from flwr.app import ArrayRecord, ConfigRecord, MetricRecord

    from .dp import DP_WEIGHT

    settings.check()
    data = client_data(settings)
    strategy = make_strategy(settings)
    observed = getattr(strategy, "strategy", strategy)  # the FedAvg/FedProx inside the DP wrapper
    initial = {k: v.detach().clone() for k, v in data.module.state_dict().items()}

    def privacy(server_round: int) -> dict[str, float]:
        """The epsilon spent once this round's aggregate was released (with noise only)."""
        epsilon = getattr(strategy, "epsilon_of_round", {}).get(server_round)
        return {} if epsilon is None else {"epsilon": epsilon, "delta": settings.delta}

    def central(server_round: int, arrays: Any) -> Any:
        metrics = evaluate(data, arrays.to_torch_state_dict())
        if server_round == 0:
            emit({"type": "log", "message": f"round 0 (initial weights): {metrics}"})
            return MetricRecord(metrics) if metrics else None
        clients = getattr(observed, "clients_of_round", {}).get(server_round, [])
        wanted = max(2, int(settings.clients * settings.fraction_fit))
        if len(clients) < wanted:
            emit({"type": "log", "message": f"round {server_round}: {wanted - len(clients)} of {wanted} clients "
                  "returned no update (see Flower's log)"})
        weights = [c["num-examples"] for c in clients]
        train_loss = (sum(c["train_loss"] * w for c, w in zip(clients, weights, strict=True)) / sum(weights)
                      if clients else math.nan)
        emit({"type": "epoch", "epoch": server_round, "step": server_round, "round": server_round,
              "lr": float(data.project.training["lr"]), "train_loss": train_loss,
              **{f"val_{k}": v for k, v in metrics.items()},
              **privacy(server_round),
              "clients": {str(int(c["client"])): {k: v for k, v in c.items() if k not in ("client", DP_WEIGHT)}
                          for c in clients}})
        return MetricRecord(metrics) if metrics else None

    if settings.dp and settings.dp_noise == 0:
        emit({"type": "log", "message": "--dp with noise 0: the updates are clipped but no noise is added, so no "
              "privacy is spent or gained (epsilon is infinite)"})
    config = ConfigRecord({k: v for k, v in settings.to_config().items()})
    result = strategy.start(grid=grid, initial_arrays=ArrayRecord(initial), num_rounds=settings.rounds,
                            train_config=config, evaluate_fn=central)
    return result.arrays.to_torch_state_dict()


def make_server_app(settings: FederatedSettings | None, emit: Callable[[Event], None],
                    done: Callable[[dict[str, torch.Tensor]], None] | None = None) -> Any:
    """A ``ServerApp`` running :func:`serve`; without ``settings`` it reads them from the run config
    (``flwr run ... --run-config "project='/path/p.json' clients=10 ..."``)."""
    flwr()
    from flwr.serverapp import ServerApp

    app = ServerApp()

    @app.main()
    def main(grid: Any, context: Any) -> None:
        chosen = settings or FederatedSettings.from_config(context.run_config)
        weights = serve(grid, chosen, emit)
        if done is not None:
            done(weights)

    return app


def _print_event(event: Event) -> None:
    if event["type"] == "epoch":
        acc = event.get("val_accuracy")
        eps = event.get("epsilon")
        print(f"round {event['round']}: train loss {event['train_loss']:.4f}"
              + (f", validation accuracy {acc:.4f}" if acc is not None else "")
              + (f", epsilon {eps:.3f} (delta {event['delta']:g}, client-level)" if eps is not None else ""),
              flush=True)


def __getattr__(name: str) -> Any:
    """``client_app`` and ``server_app`` for ``flwr run`` (made on first use: importing this module
    needs no Flower)."""
    if name == "client_app":
        return make_client_app()
    if name == "server_app":
        return make_server_app(None, _print_event)
    raise AttributeError(name)
