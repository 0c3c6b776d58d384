"""Running a federated project: Flower's simulation on this machine, or the commands for real ones."""

from __future__ import annotations

import json
import logging
import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

from ..training.runs import RunWriter, new_run_dir, runs_root
from ..weights import graph_hash, save_checkpoint
from .app import Event, FederatedError, FederatedSettings, client_data, flwr, make_client_app, make_server_app


def _backend_config(settings: FederatedSettings) -> dict[str, Any]:
    """Ray: one CPU per client actor, as many actors as cores (Flower hands the workers this
    process's ``sys.path``, so they import this very package)."""
    cores = max(1, min(os.cpu_count() or 1, settings.clients))
    return {"client_resources": {"num_cpus": 1, "num_gpus": 0.0},
            "init_args": {"num_cpus": cores, "include_dashboard": False, "log_to_driver": False}}


def simulate(settings: FederatedSettings, run_dir: Path | None = None,
             listeners: list[Callable[[Event], None]] | None = None, verbose: bool = False) -> dict[str, Any]:
    """Simulate ``settings.clients`` Flower clients on this machine and train for ``settings.rounds``.

    Writes a run folder (``config.json``, ``metrics.jsonl`` with one ``epoch`` event per round,
    ``summary.json``, ``checkpoints/last.safetensors`` with the final global model).

    Returns:
        the summary.

    Raises:
        FederatedError, PartitionError, MissingFlowerError: with the place and the reason.
    """
    flwr()
    from flwr.simulation import run_simulation

    settings.check()
    data = client_data(settings)  # refuses a bad project or partition before Ray starts
    if settings.dp:
        from .dp import ClientLevelAccountant

        ClientLevelAccountant(settings.dp_noise, settings.delta)  # and a missing Opacus, by the extra to install
    project = data.project
    if run_dir is None:
        run_dir = new_run_dir(runs_root(Path(settings.project)), f"{project.name}-federated")
    writer = RunWriter(run_dir, {"project": project.to_dict(), "training": project.training, "data": project.data,
                                 "federated": settings.to_config(), "device": "cpu"})
    sizes = [len(p) for p in data.parts]
    events: list[Event] = []

    def emit(event: Event) -> None:
        events.append(event)
        for listener in [writer, *(listeners or [])]:
            listener(event)

    final: dict[str, dict[str, torch.Tensor]] = {}
    emit({"type": "start", "run_dir": str(run_dir), "device": "cpu", "epochs": settings.rounds,
          "steps_per_epoch": 1, "train_samples": sum(sizes), "val_samples": len(data.val or []), "start_epoch": 0,
          "params": sum(p.numel() for p in data.module.parameters()), "layers": [], "task": project.training["task"],
          "federated": {**settings.to_config(), "client_samples": sizes}})
    t0 = time.perf_counter()
    status = "failed"
    try:
        quiet = None if verbose else _quiet_flower()
        try:
            run_simulation(make_server_app(settings, emit, lambda w: final.update(w=w)),
                           make_client_app(), num_supernodes=settings.clients,
                           backend_config=_backend_config(settings), verbose_logging=verbose)
        finally:
            if quiet is not None:
                quiet()
        rounds = [e for e in events if e["type"] == "epoch"]
        empty = [e["round"] for e in rounds if not e["clients"]]
        if empty:  # Flower carries on without the clients that failed; no client at all is a failure
            raise FederatedError(f"round {empty[0]}: no client returned an update (their errors are in Flower's log; "
                                 "rerun with --verbose)")
        if len(rounds) != settings.rounds or "w" not in final:
            raise FederatedError(f"the simulation ended after {len(rounds)} of {settings.rounds} rounds; rerun with "
                                 "--verbose to see Flower's log")
        status = "finished"
        data.module.load_state_dict(final["w"])
        last = rounds[-1]
        meta = {"epoch": settings.rounds, "step": settings.rounds, "metrics": {k: v for k, v in last.items()
                                                                                if k.startswith(("val_", "train_"))},
                "best": None, "project_hash": graph_hash(project.graph), "schedule": {}, "project": project.name,
                "federated": settings.to_config()}
        save_checkpoint(run_dir / "checkpoints" / "last.safetensors", data.module, None, meta)
    finally:
        rounds = [e for e in events if e["type"] == "epoch"]
        final_metrics = {k[4:]: v for k, v in rounds[-1].items() if k.startswith("val_")} if rounds else {}
        summary = {"status": status, "epochs_done": len(rounds), "steps": len(rounds), "device": "cpu",
                   "time_s": time.perf_counter() - t0, "final": final_metrics, "test": None,
                   "params": sum(p.numel() for p in data.module.parameters()),
                   "project_hash": graph_hash(project.graph), "federated": settings.to_config(),
                   "client_samples": sizes}
        if settings.dp:  # the epsilon after the last released round (None without noise: no privacy)
            spent = [e["epsilon"] for e in rounds if "epsilon" in e]
            summary["epsilon"], summary["delta"] = (spent[-1] if spent else None), settings.delta
        writer.write_summary(summary)
        writer.close()
        emit({"type": "done", "summary": summary})
    return summary


def _quiet_flower() -> Callable[[], None]:
    """Silence Flower's per-round INFO log (our own progress lines say the same); returns the undo."""
    logger = logging.getLogger("flwr")
    level = logger.level
    logger.setLevel(logging.WARNING)
    return lambda: logger.setLevel(level)


def deployment_commands(settings: FederatedSettings, server: str = "SERVER_HOST") -> str:
    """The commands running the same project as real Flower clients and a server on other machines."""
    settings.check()
    project = Path(settings.project).name
    lines = [
        "# Every machine: Python with Neural Workbench and Flower (pip install 'neural-workbench[federated]'),",
        f"# the project file ({project}) and the data it names at the same path.",
        "# Each client trains on its own partition (partition-id); with real private data, point each",
        "# client's project at its own data instead.",
        "",
        "# 1. The server machine: Flower's SuperLink (add TLS certificates instead of --insecure in production)",
        "flower-superlink --insecure",
        "",
        f"# 2. Each of the {settings.clients} client machines, with its own i = 0 .. {settings.clients - 1}:",
        "i=0",
        f"flower-supernode --insecure --superlink {server}:9092 "
        f"--node-config \"partition-id=$i num-partitions={settings.clients}\"",
        "",
        "# 3. Anywhere: a Flower app folder holding this pyproject.toml",
        "cat > pyproject.toml <<'TOML'",
        "[build-system]",
        'requires = ["hatchling"]',
        'build-backend = "hatchling.build"',
        "[project]",
        'name = "workbench-federated"',
        'version = "1.0.0"',
        'dependencies = ["neural-workbench[federated]"]',
        "[tool.hatch.build.targets.wheel]",
        'packages = ["."]',
        "[tool.flwr.app]",
        'publisher = "neural-workbench"',
        "[tool.flwr.app.components]",
        'serverapp = "workbench.federated.app:server_app"',
        'clientapp = "workbench.federated.app:client_app"',
        "[tool.flwr.app.config]",
        *(f"{k} = {json.dumps(v)}" for k, v in settings.to_config().items()),
        "[tool.flwr.federations]",
        'default = "remote"',
        "[tool.flwr.federations.remote]",
        f'address = "{server}:9093"',
        "insecure = true",
        "TOML",
        "",
        "# 4. Start the run from that folder (flwr moves the federation into its own configuration);",
        "#    its settings can be changed with --run-config, e.g. --run-config \"rounds=50\":",
        "flwr run . remote",
    ]
    return "\n".join(lines)
