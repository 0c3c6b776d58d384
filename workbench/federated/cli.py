"""``workbench federate``: federated training of a project with Flower, simulated on this machine.

    workbench federate P --clients 10 --rounds 20 --partition dirichlet:0.5 --strategy fedprox:0.01
    workbench federate P --clients 10 --dp 1.0:0.5 --delta 1e-5  # client-level differential privacy
    workbench federate P --clients 10 --print-commands     # the same run on real machines
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from ..cli_common import EXIT_INVALID, EXIT_OK, _fail, _load


def _strategy(text: str) -> tuple[str, float | None]:
    name, _, arg = text.strip().lower().partition(":")
    if name not in ("fedavg", "fedprox") or (arg and name == "fedavg"):
        raise argparse.ArgumentTypeError(f"expected fedavg or fedprox[:MU], got {text!r}")
    if not arg:
        return name, None
    try:
        return name, float(arg)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected fedprox:MU with a number, got {text!r}") from None


def add_parser(sub: Any) -> None:
    p = sub.add_parser("federate", help="federated training with Flower: simulate N clients on this machine (or "
                       "print the commands for real ones)")
    p.add_argument("project")
    p.add_argument("--clients", type=int, default=10, help="number of clients, one partition each (default 10)")
    p.add_argument("--rounds", type=int, default=20, help="rounds of local training and aggregation (default 20)")
    p.add_argument("--partition", default="iid", help="iid, or dirichlet:ALPHA for label skew (smaller: more skew)")
    p.add_argument("--strategy", type=_strategy, default=("fedavg", None),
                   help="fedavg, or fedprox[:MU] (Flower's strategies; MU defaults to 0.01)")
    p.add_argument("--fraction-fit", type=float, default=1.0, help="share of the clients trained per round")
    p.add_argument("--local-epochs", type=int, default=2, help="passes over its partition per client and round "
                   "(default 2)")
    p.add_argument("--seed", type=int, default=None, help="seeds partitions, initial weights and shuffling "
                   "(default: the project's data seed)")
    p.add_argument("--dp", metavar="NOISE:CLIP",
                   help="client-level differential privacy with Flower's server-side fixed clipping: each client's "
                   "model update is clipped to the L2 norm CLIP and their unweighted mean gets Gaussian noise of NOISE * CLIP / "
                   "(clients per round); the epsilon spent is reported per round (Opacus' RDP accountant)")
    p.add_argument("--delta", type=float, default=None, help="with --dp: the delta of the reported (epsilon, delta) "
                   "(default 1e-5; keep it well below 1 / clients)")
    p.add_argument("--out", help="run folder (default: a new one under the project's runs/)")
    p.add_argument("--print-commands", action="store_true",
                   help="print the commands running this project as real Flower clients and server, and exit")
    p.add_argument("--server", default="SERVER_HOST", help="the server's address in the printed commands")
    p.add_argument("--verbose", action="store_true", help="show Flower's own log")
    p.set_defaults(func=cmd_federate)


def cmd_federate(args: argparse.Namespace) -> int:
    from . import FederatedSettings, deployment_commands, simulate
    from .app import FederatedError, _print_event
    from .dp import parse_dp

    project = _load(args.project)  # an unreadable project is reported before anything starts
    name, mu = args.strategy
    if args.delta is not None and args.dp is None:
        raise FederatedError("--delta: only used with --dp (the delta of the client-level privacy guarantee)")
    noise, clip = parse_dp(args.dp) if args.dp is not None else (0.0, 0.0)
    settings = FederatedSettings(str(Path(args.project).resolve()), args.clients, args.rounds, args.partition, name,
                                 mu if mu is not None else 0.01, args.fraction_fit, args.local_epochs,
                                 int(project.data["seed"]) if args.seed is None else args.seed,
                                 dp=args.dp is not None, dp_noise=noise, dp_clip=clip,
                                 delta=1e-5 if args.delta is None else args.delta)
    settings.check()  # refused by name before a run folder is made
    if args.print_commands:
        print(deployment_commands(settings, args.server))
        return EXIT_OK
    out = Path(args.out) if args.out else None
    if out is not None and out.exists() and any(out.iterdir()):
        return _fail(f"--out {out}: the folder is not empty; a run never writes over other files", EXIT_INVALID)
    summary = simulate(settings, out, [_print_event], verbose=args.verbose)
    print(f"federated run {summary['status']}: {summary['epochs_done']} rounds, {args.clients} clients "
          f"(samples {summary['client_samples']}), final {summary['final']}")
    if settings.dp:
        eps = summary.get("epsilon")
        print(f"client-level differential privacy: epsilon {eps:.3f} at delta {settings.delta:g}" if eps is not None
              else "client-level differential privacy: noise 0, no privacy (epsilon infinite)")
    return EXIT_OK if summary["status"] == "finished" else EXIT_INVALID
