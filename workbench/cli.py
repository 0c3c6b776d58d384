"""The ``workbench`` command line: thin over the same functions the GUI uses.

Exit status: 0 success, 1 the project or run has errors (listed), 2 a file
cannot be read, an output cannot be written (or would overwrite an input), or the
arguments are wrong.  Everything printed passes through a filter that shows
terminal control characters as escapes (names come from files).
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from typing import Any

from .bulk import gc_paused
from .cli_common import (
    EXIT_INVALID,
    EXIT_OK,
    EXIT_UNREADABLE,
    _fail,
    _load,
    _positive_int,
    _Unreadable,
    format_table,
)
from .errors import InputError, OutputError, WorkbenchError
from .layers.dims import fmt_shape

# --------------------------------------------------------------------------- check


@gc_paused()
def check_report(project: Any, batch: int = 1, symbol_size: int | None = None,
                 latency: dict[str, float] | None = None) -> dict[str, Any]:
    """The ``check --json`` document for a loaded project; costs per node at ``batch`` (other
    symbols take ``symbol_size``, by default the data's ``seq_len``), with ``latency`` (node id ->
    ms) when a profile measured it."""
    from .analysis.cost import cost_table
    from .node_training import parameter_split
    from .shapes import infer

    si = infer(project.graph)
    infos = si.all()
    table = cost_table(project.graph, si, batch, symbol_size or int(project.data.get("seq_len", 1)))
    table.attach(latency or {})
    costs = table.by_id()
    nodes = []
    for node in project.graph:
        info = infos[node.id]
        shapes = {port: fmt_shape(s) for port, s in info.outputs.items()}
        if node.spec.role == "output" and info.status == "ok":
            shapes = {"x": fmt_shape(info.inputs["x"])}  # type: ignore[arg-type]
        nodes.append(
            {
                "id": node.id,
                "name": node.name,
                "type": node.type,
                "status": info.status,
                "output_shapes": shapes,
                "params": info.params,
                **costs[node.id].as_dict(),
            }
        )
    errors = [{"node": e.node, "message": str(e), "param": e.param} for e in si.errors()]
    if not project.graph.inputs():
        errors.append({"node": None, "message": "the graph has no Input node", "param": None})
    if not project.graph.outputs():
        errors.append({"node": None, "message": "the graph has no Output node", "param": None})
    warnings = [{"node": w.node, "message": w.message} for w in si.warnings()]
    from .training.preflight import check_issues  # training's own checks: what check accepts, training accepts

    more, notes = check_issues(project, si)
    errors += [i.as_dict() for i in more]
    warnings += [{"node": None, "message": m} for m in notes]
    if project.sweep is not None:  # a name left stale by a rename: said here, refused when a sweep starts
        from .sweep.apply import sweep_problems

        warnings += [{"node": None, "message": m} for m in sweep_problems(project)]
    blocks = []
    instances: dict[str, list[str]] = {}  # block id -> its instances, as blocks.uses() lists them
    if len(project.blocks):  # one pass over the graphs, not one per block
        for g in project.blocks.graphs().values():
            for n in g:
                instances.setdefault(n.type, []).append(n.name)
    for block in project.blocks:
        inside = [str(e) for e in infer(block.graph).errors()]  # the block alone, with its example inputs
        uses = instances.get(block.id, [])
        blocks.append({"id": block.id, "name": block.name, "uses": uses, "errors_inside": inside})
        warnings += [{"node": None, "message": f"block {block.id} (with its example inputs): {e}"} for e in inside]
    return {
        "project": project.name,
        "nodes": nodes,
        "total_params": si.total_params(),
        "frozen_params": parameter_split(project.graph, {nid: i.params for nid, i in si.all().items()})[1],
        "cost": table.totals(),
        "errors": errors,
        "warnings": warnings,
        "blocks": blocks,
    }


def cmd_check(args: argparse.Namespace) -> int:
    from .analysis.cost import format_bytes
    from .analysis.macs import format_count

    project = _load(args.project)
    profile = _profile(project, args) if args.profile else None
    latency = profile.node_ms if profile is not None else None
    report = check_report(project, args.batch, args.seq, latency)
    if profile is not None:  # how the latencies were measured
        report["profile"] = {k: v for k, v in profile.to_dict().items() if k != "node_ms"}
    if args.json:
        print(json.dumps(report, indent=2))
    else:
        rows = [["name", "type", "output shape(s)", "params", "MACs", "memory"] + (["latency"] if latency else [])]
        for n in report["nodes"]:
            shapes = ", ".join(
                s if len(n["output_shapes"]) == 1 else f"{p}: {s}" for p, s in n["output_shapes"].items()
            ) or ("(error)" if n["status"] == "error" else "?")
            rows.append([n["name"], n["type"], shapes, f"{n['params']:,}", format_count(n["macs"]),
                         format_bytes(n["activation_bytes"])]
                        + ([f"{n['latency_ms']:.3f} ms" if "latency_ms" in n else "-"] if latency else []))
        print(f"{report['project']}")
        print(format_table(rows, {3, 4, 5, 6}))
        cost = report["cost"]
        frozen = report["frozen_params"]
        split = f"; {report['total_params'] - frozen:,} trainable, {frozen:,} frozen" if frozen else ""
        print(f"\ntotal parameters: {report['total_params']:,} ({format_bytes(cost['param_bytes'])} as float32{split})")
        symbolic = any(isinstance(d, str) for i in project.graph.inputs() for d in i.params["shape"])
        print(f"total MACs: {format_count(cost['macs'])}; FLOPs: {format_count(cost['flops'])} "
              f"(torch.utils.flop_counter counts {format_count(cost['flop_counter_flops'])}); activation memory: "
              f"{format_bytes(cost['activation_bytes'])}; at batch {cost['batch']}"
              + (f", length {cost['symbol_size']}" if symbolic else ""))
        if profile is not None:
            print(f"latency on {profile.device} ({profile.threads} threads): {profile.forward_ms:.3f} ms per forward "
                  f"pass; the node medians add up to {profile.total_ms:.3f} ms (timing each node adds overhead)")
        for w in report["warnings"]:
            print(f"warning: {w['message']}")
        for e in report["errors"]:
            print(f"error: {e['message']}")
    return EXIT_INVALID if report["errors"] else EXIT_OK


def _profile(project: Any, args: argparse.Namespace) -> Any:
    """Median latency per node (ms) on the chosen device, with a progress line; Ctrl+C stops it."""
    from .analysis.profile import profile_graph

    device = args.device or str(project.training.get("device", "auto"))
    shown = [-1]  # tenths printed so far: a line that grows, as the output filter lets no carriage return through

    def progress(done: int, total: int) -> None:
        if shown[0] < 0:  # the first pass ran: the device exists and the model compiled
            print(f"profiling on {device}:", end="", file=sys.stderr, flush=True)
            shown[0] = 0
        while shown[0] < 10 * done // total:
            shown[0] += 1
            print(f" {10 * shown[0]}%", end="\n" if shown[0] == 10 else "", file=sys.stderr, flush=True)

    symbols = args.seq or int(project.data.get("seq_len", 1))
    return profile_graph(project.graph, args.batch, symbols, device, iterations=args.iterations, progress=progress)


# --------------------------------------------------------------------------- layers


def cmd_layers(args: argparse.Namespace) -> int:
    from .layers import by_category

    groups = by_category()
    if args.json:
        doc = {
            c: [
                {"id": s.id, "name": s.name, "doc": s.doc, "params": [p.describe() for p in s.params]}
                for s in specs
            ]
            for c, specs in groups.items()
        }
        print(json.dumps(doc, indent=2, default=list))
        return EXIT_OK
    for category, specs in groups.items():
        print(f"{category}:")
        for s in specs:
            print(f"  {s.id:<24} {s.doc}")
    return EXIT_OK


# --------------------------------------------------------------------------- train


def cmd_train(args: argparse.Namespace) -> int:
    import os
    import signal
    from pathlib import Path

    from .cli_distributed import launch, rank_control, wants_launch

    if wants_launch(args):  # re-run under torchrun (this process imports no torch)
        return launch(args)
    from .launch import under_torchrun
    from .training import Control, Trainer
    from .training.progress import ProgressLine

    project = _load(args.project)
    if args.out:  # a run folder is new (or empty): a run never writes over other files
        out = Path(args.out)
        if out.exists() and not out.is_dir():
            raise OutputError(f"{out}: the run folder is an existing file, not a folder")
        if out.is_dir() and any(out.iterdir()) and not args.resume:
            raise OutputError(f"{out}: the run folder exists and is not empty; give a new folder "
                              "(or --resume a checkpoint to continue a run)")
    distributed = under_torchrun()
    rank = int(os.environ.get("RANK", "0"))
    control = rank_control(args) if distributed else Control()
    if args.threads:
        import torch

        torch.set_num_threads(args.threads)

    def stop(_sig: int, _frame: Any) -> None:
        if control.stop.is_set():
            raise KeyboardInterrupt
        print("\nstopping after this step (Ctrl+C again to abort)...", file=sys.stderr)
        control.stop.set()

    previous = signal.signal(signal.SIGINT, stop)
    overrides = {"device": args.device, "epochs": args.epochs, "batch_size": args.batch_size, "lr": args.lr,
                 "seed": args.seed, "init_from": args.init_from}
    listeners = [] if args.quiet or rank else [ProgressLine()]
    if distributed:  # a rank the editor started: rank 0 relays its events
        from .training.relay import rank_listeners

        listeners += rank_listeners(project)
    trainer = None
    try:
        trainer = Trainer(project, overrides, run_dir=Path(args.out) if args.out else None,
                          resume=Path(args.resume) if args.resume else None, listeners=listeners, control=control,
                          distributed=distributed)
        summary = trainer.run()
    except (InputError, OutputError) as exc:  # an unreadable checkpoint, an unwritable run folder
        return _fail(str(exc), EXIT_UNREADABLE)
    except WorkbenchError as exc:
        return _fail(str(exc), EXIT_INVALID)
    finally:
        signal.signal(signal.SIGINT, previous)
        if trainer is not None and trainer.dist is not None:
            trainer.dist.close()
    if rank:  # rank 0 reports for every process
        return EXIT_OK if summary["status"] in ("finished", "stopped") else EXIT_INVALID
    if args.json:
        print(json.dumps({**summary, "run_dir": str(trainer.run_dir)}, indent=2))
    else:
        final = "  ".join(f"{k} {v:.4f}" for k, v in summary["final"].items())
        print(f"{summary['status']}: {final}\nrun folder: {trainer.run_dir}")
    return EXIT_OK if summary["status"] in ("finished", "stopped") else EXIT_INVALID


def cmd_export(args: argparse.Namespace) -> int:
    from pathlib import Path

    from .export.onnx_export import export_onnx
    from .export.python_source import export_python
    from .fileio import refuse_overwriting_inputs
    from .weights import save_weights

    project = _load(args.project)
    if not (args.onnx or args.python or args.weights):
        return _fail("nothing to export: give --onnx OUT.onnx, --python OUT.py and/or --weights OUT.safetensors",
                     EXIT_UNREADABLE)
    ckpt = Path(args.checkpoint) if args.checkpoint else None
    refuse_overwriting_inputs(
        [("the ONNX file", args.onnx), ("the Python source", args.python),
         ("the source's weights", Path(args.python).with_suffix(".safetensors") if args.python else None),
         ("the weights file", args.weights)],
        [("the project", args.project), ("the project's weights", project.weights_path()), ("the checkpoint", ckpt)])
    if args.onnx:
        print(f"exporting ONNX to {args.onnx} ...", file=sys.stderr, flush=True)
        report = export_onnx(project, args.onnx, checkpoint=ckpt, opset=args.opset, verify=not args.no_verify)
        print(report.text())
    if args.python:
        result = export_python(project, args.python, checkpoint=ckpt)
        print(f"wrote {result.source} (class {result.class_name}) and {result.weights}")
    if args.weights:
        from .export.onnx_export import model_with_weights

        compiled, note = model_with_weights(project, ckpt)
        save_weights(compiled.module, args.weights, {"project": project.name})
        print(f"wrote {args.weights} (weights: {note})")
    return EXIT_OK


def cmd_import(args: argparse.Namespace) -> int:
    from pathlib import Path

    from .fileio import refuse_overwriting_inputs
    from .importers.onnx_import import import_onnx, write_import
    from .importers.selfcheck import check_import

    out = Path(args.output)
    weights = out.with_suffix(".safetensors")
    refuse_overwriting_inputs([("the project", out), ("its weights", weights)], [("the model", args.model)])
    if not args.force:
        for path in (out, weights):
            if path.exists() or path.is_symlink():
                raise OutputError(f"{path} exists; give --force to replace it (or choose another -o)")
    result = import_onnx(args.model, allow_partial=args.allow_partial)
    report = check_import(result)  # compiled and compared with the original under onnxruntime
    print(report.text())
    if not report.ok and not args.allow_mismatch:
        return _fail(f"{report.summary()}. Nothing was written (give --allow-mismatch to write it anyway)",
                     EXIT_INVALID)
    out = write_import(result, args.output)
    kind = "lossless (a Neural Workbench export)" if result.lossless else "mapped op by op"
    print(f"wrote {out} ({len(result.project.graph)} nodes, {kind})"
          + (f" and {result.project.weights}" if result.project.weights else ""))
    for op, names in sorted(result.unsupported.items()):
        print(f"unsupported: {op} x{len(names)}: {', '.join(names[:6])}", file=sys.stderr)
    for note in result.notes:
        print(f"note: {note}", file=sys.stderr)
    return EXIT_OK


def cmd_weights(args: argparse.Namespace) -> int:
    from pathlib import Path

    from .fileio import refuse_overwriting_inputs
    from .project import save_project
    from .weights import attach_weights

    project = _load(args.project)
    refuse_overwriting_inputs([("the project's weights", Path(args.project).with_suffix(".safetensors"))],
                              [("the file to load", args.load), ("the project", args.project)])
    target = attach_weights(project, args.load)
    save_project(project)
    print(f"loaded {args.load} into {target.name}; {project.path.name} now uses it")
    return EXIT_OK


def cmd_diff(args: argparse.Namespace) -> int:
    """Compare two models: exit 0 when equal, 1 when different (2: a file cannot be read)."""
    from .diff import diff_files

    result = diff_files(args.a, args.b)
    print(result.to_json() if args.json else result.text())
    return EXIT_OK if result.equal else EXIT_INVALID


def cmd_devices(args: argparse.Namespace) -> int:
    from .training import best_device, list_devices

    devices = list_devices()
    best = best_device(devices)
    for d in devices:
        print(("* " if d.id == best else "  ") + d.label() + ("" if d.available else "  [unavailable]"))
    return EXIT_OK


# --------------------------------------------------------------------------- gui


def cmd_gui(args: argparse.Namespace) -> int:
    """Start the GUI, found as the ``workbench.gui`` entry point (the core never imports it)."""
    from importlib.metadata import entry_points

    found = list(entry_points(group="workbench.gui"))
    if not found:
        return _fail("the GUI is not installed (no 'workbench.gui' entry point); reinstall the package", EXIT_UNREADABLE)
    try:
        gui_main = found[0].load()
    except ImportError as exc:  # PySide6 missing or broken
        hint = " (install the editor with: pip install 'neural-workbench[gui]')" if isinstance(
            exc, ModuleNotFoundError) else ""
        return _fail(f"the GUI cannot start: {exc}{hint}", EXIT_UNREADABLE)
    return int(gui_main([args.project] if getattr(args, "project", None) else []))


# --------------------------------------------------------------------------- entry



def _setting(section: str, name: str, parse: Any) -> Any:
    """An argparse type that parses a value and validates it by the setting's own declaration
    (so ``--batch-size 0`` is refused like ``data.batch_size: 0`` in a project file)."""
    from .config import DATA_FIELDS, TRAINING_FIELDS
    from .layers.spec import ParamValueError

    decl = next(f for f in (DATA_FIELDS if section == "data" else TRAINING_FIELDS) if f.name == name)

    def convert(text: str) -> Any:
        try:
            return decl.validate(parse(text))
        except (ValueError, ParamValueError) as exc:
            detail = str(exc) if isinstance(exc, ParamValueError) else f"expected {parse.__name__}, got {text!r}"
            raise argparse.ArgumentTypeError(f"{section}.{name}: {detail}") from None

    convert.__name__ = name  # argparse names the type in its messages
    return convert


def cmd_new(args: argparse.Namespace) -> int:
    from pathlib import Path

    from .project import Project, save_project
    from .templates import starting_points

    points = starting_points()
    if args.list:
        print(format_table([["template", "what it is"], *[[k, title] for k, (title, _) in points.items()]]))
        return EXIT_OK
    if not args.output:
        return _fail("give -o FILE (the project to write), or --list", EXIT_UNREADABLE)
    if args.template is not None and args.template not in points:
        return _fail(f"no template {args.template!r} (templates: {', '.join(points)})", EXIT_UNREADABLE)
    out = Path(args.output)
    if (out.exists() or out.is_symlink()) and not args.force:
        raise OutputError(f"{out} exists; give --force to replace it")
    project = points[args.template][1]() if args.template else Project()
    path = save_project(project, out)
    print(f"wrote {path} ({project.name}: {len(project.graph)} nodes)")
    return EXIT_OK


def build_parser() -> argparse.ArgumentParser:
    from . import __version__

    parser = argparse.ArgumentParser(
        prog="workbench", description="Neural Workbench: design, train and export neural networks."
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    p = sub.add_parser("new", help="write a new project from a template (a sample or a known architecture)")
    p.add_argument("--template", metavar="NAME", help="see --list (default: an empty project)")
    p.add_argument("-o", "--output", metavar="FILE", help="project file to write (.json)")
    p.add_argument("--list", action="store_true", help="list the templates")
    p.add_argument("--force", action="store_true", help="replace FILE if it exists")
    p.set_defaults(func=cmd_new)

    p = sub.add_parser("check", help="infer shapes and parameter counts; list errors")
    p.add_argument("project", help="project file (.json)")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.add_argument("--batch", type=_positive_int, default=1, metavar="N",
                   help="batch size of the costs: MACs, FLOPs and activation memory (default 1)")
    p.add_argument("--seq", type=_positive_int, metavar="N",
                   help="size of symbolic lengths such as T (default: the data's seq_len)")
    p.add_argument("--profile", action="store_true", help="also measure each node's latency on the device")
    p.add_argument("--device", help="device of the profile: auto, cpu, cuda, cuda:N or mps (default: the "
                   "project's training device)")
    p.add_argument("--iterations", type=_positive_int, default=20, metavar="N",
                   help="timed passes of the profile; each node reports its median (default 20)")
    p.set_defaults(func=cmd_check)

    p = sub.add_parser("layers", help="list the layer catalogue")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_layers)

    # no abbreviations: the launcher passes train's own words on to every rank
    p = sub.add_parser("train", help="train a project headless (same engine as the GUI)", allow_abbrev=False)
    p.add_argument("project", help="project file (.json)")
    p.add_argument("--device", help="auto, cpu, cuda, cuda:N or mps (default: the project's setting)")
    p.add_argument("--epochs", type=_setting("training", "epochs", int), metavar="N")
    p.add_argument("--batch-size", type=_setting("data", "batch_size", int), dest="batch_size", metavar="N")
    p.add_argument("--lr", type=_setting("training", "lr", float), metavar="LR")
    p.add_argument("--seed", type=_setting("training", "seed", int), metavar="N")
    p.add_argument("--init-from", dest="init_from", metavar="SOURCE",
                   help="start from these weights (see workbench transfer); '' for random initialisation")
    p.add_argument("--threads", type=_positive_int, metavar="N",
                   help="CPU threads for torch (default: all cores; fewer on a shared machine)")
    p.add_argument("--out", metavar="RUN_DIR", help="run folder (default: runs/<project>/<time> beside the project)")
    p.add_argument("--resume", metavar="CKPT", help="checkpoint (.safetensors) to continue from")
    p.add_argument("--json", action="store_true", help="print the summary as JSON")
    p.add_argument("--quiet", action="store_true", help="no progress line")
    from .cli_distributed import add_arguments as add_distributed_arguments

    add_distributed_arguments(p, _positive_int)
    p.set_defaults(func=cmd_train)

    p = sub.add_parser("export", help="export to ONNX (verified with onnxruntime), PyTorch source, or weights")
    p.add_argument("project", help="project file (.json)")
    p.add_argument("--onnx", metavar="OUT.onnx")
    p.add_argument("--python", metavar="OUT.py", help="standalone module; weights go to OUT.safetensors")
    p.add_argument("--weights", metavar="OUT.safetensors")
    p.add_argument("--checkpoint", metavar="CKPT", help="weights from a training checkpoint")
    p.add_argument("--opset", type=int, help="ONNX opset (default: newest the exporter and onnxruntime share)")
    p.add_argument("--no-verify", action="store_true", help="skip the onnxruntime comparison")
    p.set_defaults(func=cmd_export)

    p = sub.add_parser("import", help="import an ONNX model into an editable project")
    p.add_argument("model", help="model file (.onnx)")
    p.add_argument("-o", "--output", required=True, help="project file to write (.json); weights go beside it")
    p.add_argument("--allow-partial", action="store_true", help="import what can be mapped, leaving out the "
                   "unsupported nodes and what depends on them, instead of failing")
    p.add_argument("--allow-mismatch", action="store_true", help="write the project even when the self-check "
                   "finds it computes something else than the original (the report says where)")
    p.add_argument("--force", action="store_true", help="replace the project (and its weights) if they exist")
    p.set_defaults(func=cmd_import)

    p = sub.add_parser("weights", help="load a weights file or checkpoint (safetensors) into a project")
    p.add_argument("project", help="project file (.json)")
    p.add_argument("--load", required=True, metavar="FILE", help=".safetensors weights or training checkpoint")
    p.set_defaults(func=cmd_weights)

    p = sub.add_parser("diff", help="compare two models (projects or ONNX files): nodes matched by name, then "
                       "structure; exit 0 equal, 1 different")
    p.add_argument("a", help="first model (.json project or .onnx)")
    p.add_argument("b", help="second model (.json project or .onnx)")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.set_defaults(func=cmd_diff)

    from .cli_blocks import add_parser as add_block_parser

    add_block_parser(sub)

    from .cli_explain import add_parser as add_explain_parser

    add_explain_parser(sub)

    from .federated.cli import add_parser as add_federate_parser

    add_federate_parser(sub)

    from .cli_privacy import add_parser as add_privacy_parser

    add_privacy_parser(sub)

    from .cli_transfer import add_parser as add_transfer_parser

    add_transfer_parser(sub)

    from .compress.cli import add_parser as add_compress_parser

    add_compress_parser(sub)

    from .sweep.cli import add_parser as add_sweep_parser

    add_sweep_parser(sub)

    p = sub.add_parser("devices", help="list the devices training can use")
    p.set_defaults(func=cmd_devices)

    p = sub.add_parser("gui", help="start the graphical editor")
    p.add_argument("project", nargs="?", help="project file to open")
    p.set_defaults(func=cmd_gui)

    for extra in _EXTRA_COMMANDS:
        extra(sub)
    return parser


#: functions adding further subcommands (train, export, import) to the parser
_EXTRA_COMMANDS: list[Any] = []


def main(argv: Sequence[str] | None = None) -> int:
    from .terminal import TerminalSafe

    out, err = sys.stdout, sys.stderr
    sys.stdout, sys.stderr = TerminalSafe(out), TerminalSafe(err)  # type: ignore[assignment]
    try:
        return _main(argv)
    finally:
        sys.stdout, sys.stderr = out, err


def _main(argv: Sequence[str] | None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    args.raw_argv = list(sys.argv[1:] if argv is None else argv)
    if args.command is None:
        args.project = None
        return cmd_gui(args)
    try:
        return int(args.func(args))
    except (_Unreadable, InputError, OutputError) as exc:
        return _fail(str(exc), EXIT_UNREADABLE)
    except KeyboardInterrupt:
        return _fail("interrupted", 130)
    except BrokenPipeError:  # output piped into `head`
        sys.stderr.close()
        return EXIT_OK
    except WorkbenchError as exc:
        return _fail(str(exc), EXIT_INVALID)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
