"""``workbench quantize`` and ``workbench prune``: thin over :mod:`workbench.compress`.

Both print the report (``--json``: as JSON); a result refused by ``--max-drop`` prints the report
and the reason and exits 1, having written nothing; Ctrl+C stops at the next step (nothing written).
"""

from __future__ import annotations

import argparse
import json
import signal
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from .report import CompressReport, Progress, ResultRefused


def _number(kind: type, low: float | None = None, high: float | None = None, open_low: bool = False,
            open_high: bool = False, what: str = "a number") -> Callable[[str], Any]:
    def convert(text: str) -> Any:
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected {what}, got {text!r}") from None
        bad = (low is not None and (value <= low if open_low else value < low)) or (
            high is not None and (value >= high if open_high else value > high))
        if bad:
            raise argparse.ArgumentTypeError(f"expected {what}, got {text}")
        return value

    convert.__name__ = what
    return convert


def _run(args: argparse.Namespace, job: Callable[..., CompressReport], **kwargs: Any) -> int:
    from ..cli_common import EXIT_INVALID, EXIT_OK, _fail, _load

    project = _load(args.project)
    stopping: list[bool] = []

    def stop(_sig: int, _frame: Any) -> None:
        if stopping:
            raise KeyboardInterrupt
        print("\nstopping at the next step (Ctrl+C again to abort)...", file=sys.stderr)
        stopping.append(True)

    def show(p: Progress) -> None:
        if not args.quiet:
            print(f"[{p.phase}] {p.message}", file=sys.stderr, flush=True)

    previous = signal.signal(signal.SIGINT, stop)
    try:
        report = job(project, args.output, checkpoint=Path(args.checkpoint) if args.checkpoint else None,
                     threads=args.threads, progress=show, stop=lambda: bool(stopping), **kwargs)
    except ResultRefused as exc:
        print(json.dumps(exc.report.to_dict(), indent=2) if args.json else exc.report.text())
        return _fail(exc.report.refused or "refused", EXIT_INVALID)
    finally:
        signal.signal(signal.SIGINT, previous)
    print(json.dumps(report.to_dict(), indent=2) if args.json else report.text())
    return EXIT_OK


def cmd_quantize(args: argparse.Namespace) -> int:
    from .quantize import quantize

    return _run(args, quantize, mode=args.mode, max_drop=args.max_drop,
                calibration_samples=args.calibration_samples)


def cmd_prune(args: argparse.Namespace) -> int:
    from ..cli_common import EXIT_UNREADABLE, _fail
    from .prune import prune_structured, prune_unstructured

    if args.structured:
        if args.scope is not None:
            return _fail("--scope is for unstructured pruning (without --structured)", EXIT_UNREADABLE)
        nodes = [n.strip() for n in args.nodes.split(",") if n.strip()] if args.nodes else None
        return _run(args, prune_structured, amount=args.amount, criterion=args.criterion or "l1", nodes=nodes,
                    include_linear=args.include_linear, finetune_epochs=args.finetune_epochs or 0,
                    finetune_lr=args.finetune_lr, max_drop=args.max_drop)
    only = [flag for flag, value in (("--criterion", args.criterion), ("--nodes", args.nodes),
                                     ("--include-linear", args.include_linear), ("--finetune-lr", args.finetune_lr))
            if value]
    if args.finetune_epochs:
        return _fail("--finetune-epochs needs --structured: training the sparse model would fill its zeros again",
                     EXIT_UNREADABLE)
    if only:
        return _fail(f"{', '.join(only)}: only with --structured", EXIT_UNREADABLE)
    return _run(args, prune_unstructured, amount=args.amount, scope=args.scope or "global", max_drop=args.max_drop)


def add_parser(sub: Any) -> None:
    """Add the ``quantize`` and ``prune`` subcommands."""
    from .prune import CRITERIA, SCOPES
    from .quantize import MODES

    drop = _number(float, 0.0, what="accuracy points >= 0")
    positive = _number(int, 1, what="a positive int")

    def common(p: argparse.ArgumentParser, out: str) -> None:
        p.add_argument("project", help="project file (.json)")
        p.add_argument("--checkpoint", metavar="CKPT", help="trained weights (default: the project's weights file)")
        p.add_argument("-o", "--output", required=True, metavar=out)
        p.add_argument("--max-drop", type=drop, metavar="POINTS",
                       help="refuse (write nothing) when validation accuracy falls by more than this")
        p.add_argument("--threads", type=positive, metavar="N",
                       help="threads for the work and the latency measurements (default: all cores)")
        p.add_argument("--json", action="store_true", help="print the report as JSON")
        p.add_argument("--quiet", action="store_true", help="no progress lines")

    p = sub.add_parser("quantize", help="quantize the verified ONNX export (int8 calibrated on the project's data, "
                       "dynamic int8, fp16) and report accuracy, size and latency before and after")
    common(p, "OUT.onnx")
    p.add_argument("--mode", choices=MODES, default="int8",
                   help="int8: static, calibrated (dynamic for recurrent and attention models); dynamic; fp16")
    p.add_argument("--calibration-samples", type=positive, default=1024, metavar="N",
                   help="training samples the int8 ranges are calibrated on (default 1024)")
    p.set_defaults(func=cmd_quantize)

    p = sub.add_parser("prune", help="prune channels (--structured: a smaller editable project) or weights "
                       "(magnitude, unstructured) and report accuracy, MACs, size and latency before and after")
    common(p, "OUT.json")
    p.add_argument("--amount", type=_number(float, 0.0, 1.0, True, True, "a share in (0, 1)"), default=0.5,
                   help="share of the channels (structured) or weights (unstructured) to remove (default 0.5)")
    p.add_argument("--structured", action="store_true", help="remove whole channels: out_channels shrink")
    p.add_argument("--criterion", choices=CRITERIA, help="structured: rank filters by l1 norm (default) or by "
                   "the BatchNorm scale after them (bn)")
    p.add_argument("--nodes", metavar="A,B", help="structured: only these convolutions (default: all that can be)")
    p.add_argument("--include-linear", action="store_true", help="structured: also prune Linear hidden units")
    p.add_argument("--finetune-epochs", type=_number(int, 0, what="an int >= 0"), metavar="N",
                   help="structured: fine-tune the pruned project N epochs (a training run beside it)")
    p.add_argument("--finetune-lr", type=_number(float, 0.0, 10.0, True, False, "a learning rate in (0, 10]"),
                   metavar="LR", help="structured: the fine-tuning learning rate (default: the project's)")
    p.add_argument("--scope", choices=SCOPES, help="unstructured: the smallest weights over the whole model "
                   "(global, default) or in each layer (layer)")
    p.set_defaults(func=cmd_prune)
