"""``workbench explain``: attribution maps (Captum) and activations of a trained model, for scripts.

    workbench explain P --checkpoint C --method gradcam --node conv2 --samples 16 -o maps.png

writes a grid of (input, map over the input) pairs atomically; ``--json`` prints the samples, their
classes and each map's statistics (and values, when small).  ``--method activations --node N``
draws the node's feature maps for each chosen sample instead.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

import numpy as np

ACTIVATIONS = "activations"


def _int_list(text: str) -> list[int]:
    """``3,5,9-12`` -> [3, 5, 9, 10, 11, 12]."""
    from .analysis.activations import ExplainError, parse_indices

    try:
        return parse_indices(text)
    except ExplainError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _dims(text: str) -> tuple[int, ...]:
    try:
        dims = tuple(int(p) for p in text.replace("x", ",").split(",") if p.strip())
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected sizes such as 2,2, got {text!r}") from None
    if not dims or any(d < 1 for d in dims):
        raise argparse.ArgumentTypeError(f"expected positive sizes such as 2,2, got {text!r}")
    return dims


def _count(text: str) -> int:
    from .cli_common import _positive_int

    return _positive_int(text)


def add_parser(sub: Any) -> None:
    """The ``explain`` subcommand."""
    from .analysis.explain import METHODS

    p = sub.add_parser("explain", help="attribution maps (saliency, integrated gradients, SmoothGrad, occlusion, "
                       "Grad-CAM; Captum) or a node's activations for dataset samples")
    p.add_argument("project", help="project file (.json)")
    p.add_argument("--checkpoint", metavar="CKPT", help="trained weights (default: the project's weights file)")
    p.add_argument("--method", default="saliency", metavar="METHOD",
                   help=f"{', '.join(METHODS)} or {ACTIVATIONS} (default: saliency)")
    p.add_argument("--node", metavar="NODE", help="Grad-CAM's or the activations' node; inside a block instance: "
                   "instance/node (default for Grad-CAM: the last node with an [N, C, H, W] output)")
    p.add_argument("--split", choices=("train", "val", "test"), default="val", help="samples from (default: val)")
    p.add_argument("--samples", type=_count, default=16, metavar="N", help="how many samples (default 16)")
    p.add_argument("--indices", type=_int_list, metavar="LIST", help="samples by position in the split: 3,5,9-12")
    p.add_argument("--label", type=int, metavar="K", help="only samples whose true class is K")
    p.add_argument("--predicted", type=int, metavar="K", help="only samples the model assigns to class K")
    p.add_argument("--misclassified", action="store_true", help="only samples the model gets wrong")
    p.add_argument("--class", type=int, dest="target", metavar="K", help="explain class K (default: the predicted one)")
    p.add_argument("--position", type=int, metavar="T", help="models scoring each time step: which (default: last)")
    p.add_argument("--steps", type=_count, default=50, metavar="N", help="integrated gradients' steps (default 50)")
    p.add_argument("--noise-samples", type=_count, default=16, dest="noise_samples", metavar="N",
                   help="SmoothGrad's noisy copies (default 16)")
    p.add_argument("--noise", type=float, metavar="SD", help="SmoothGrad's noise (default: 0.15 x the input range)")
    p.add_argument("--window", type=_dims, metavar="DIMS", help="occlusion window, e.g. 2,2 (images: H,W)")
    p.add_argument("--stride", type=_dims, metavar="DIMS", help="occlusion stride (default: half the window)")
    p.add_argument("--baseline", type=float, default=0.0, metavar="X",
                   help="reference input value, a token id for token inputs (default 0)")
    p.add_argument("--seed", type=int, default=0, metavar="N", help="SmoothGrad's seed")
    p.add_argument("--cols", type=_count, default=4, metavar="N", help="samples a row in the picture (default 4)")
    p.add_argument("--threads", type=_count, metavar="N", help="CPU threads for torch")
    p.add_argument("-o", "--output", metavar="OUT.png", help="picture to write")
    p.add_argument("--json", action="store_true", help="print the results as JSON")
    p.set_defaults(func=cmd_explain)


def cmd_explain(args: argparse.Namespace) -> int:
    from .analysis.activations import ExplainError, SampleChoice, load_model, select_samples
    from .cli_common import EXIT_UNREADABLE, _fail, _load
    from .fileio import refuse_overwriting_inputs

    if not args.output and not args.json:
        return _fail("nothing to write: give -o OUT.png and/or --json", EXIT_UNREADABLE)
    if args.output:
        refuse_overwriting_inputs([("the picture", args.output)],
                                  [("the project", args.project), ("the checkpoint", args.checkpoint)])
        if Path(args.output).is_dir():
            return _fail(f"{args.output}: is a folder; give a file name such as maps.png", EXIT_UNREADABLE)
    if args.threads:
        import torch

        torch.set_num_threads(args.threads)
    project = _load(args.project)
    choice = SampleChoice(args.split, args.indices, args.samples, args.label, args.predicted, args.misclassified)
    try:
        model = load_model(project, args.checkpoint)
        indices, x, labels = select_samples(model, choice)
        if args.method.strip().lower() == ACTIVATIONS:
            return _activations(args, model, indices, x)
        return _explain(args, model, indices, x, labels)
    except ExplainError as exc:  # the request does not fit the model: an argument is wrong
        return _fail(str(exc), EXIT_UNREADABLE)


def _explain(args: argparse.Namespace, model: Any, indices: list[int], x: Any, labels: list[int | None]) -> int:
    from .analysis.explain import ExplainOptions, explain
    from .analysis.overlay import save_explanation_png
    from .cli_common import EXIT_OK

    options = ExplainOptions(method=args.method, node=args.node, target=args.target, position=args.position,
                             steps=args.steps, noise_samples=args.noise_samples, noise=args.noise,
                             window=args.window, stride=args.stride, baseline=args.baseline, seed=args.seed)
    quiet = args.json or not sys.stderr.isatty()

    def progress(done: int, total: int) -> None:
        if not quiet:
            print(f"\r{done}/{total} samples", end="" if done < total else "\n", file=sys.stderr, flush=True)

    result = explain(model, x, options, indices, labels, args.split, progress=progress)
    if args.output:
        save_explanation_png(result, args.output, cols=args.cols)
    if args.json:
        doc = result.summary()
        if args.output:
            doc["output"] = args.output
        print(json.dumps(doc, indent=2))
    else:
        where = f" at {result.node}" if result.node else ""
        print(f"{result.method}{where} for {len(indices)} {args.split} sample(s), weights: {result.weights}")
        for i in range(len(indices)):
            print(f"  {result.caption(i)}")
        for note in result.notes:
            print(f"note: {note}", file=sys.stderr)
        if args.output:
            print(f"wrote {args.output}")
    return EXIT_OK


def _activations(args: argparse.Namespace, model: Any, indices: list[int], x: Any) -> int:
    from .analysis.activations import ExplainError, activations, feature_maps
    from .cli_common import EXIT_OK
    from .imaging import save_png

    if not args.node:
        raise ExplainError("--method activations needs --node NODE (inside a block instance: instance/node)")
    value = activations(model, x, args.node).float().cpu().numpy()
    if args.output:
        pictures = [np.nan_to_num(feature_maps(v), nan=1.0) for v in value]
        width = max(p.shape[1] for p in pictures)
        rows = []
        for p in pictures:  # one sample under the other, a white line between
            rows.append(np.pad(p, ((0, 1), (0, width - p.shape[1])), constant_values=1.0))
        mosaic = np.concatenate(rows)[:-1]
        side = max(1, min(pictures[0].shape))
        save_png(mosaic, args.output, scale=max(1, min(16, 256 // side)))
    if args.json:
        samples = []
        for i, v in zip(indices, value, strict=True):
            entry: dict[str, Any] = {"index": i, "shape": list(v.shape), "min": float(v.min()), "max": float(v.max()),
                                     "mean": float(v.mean())}
            if v.ndim == 3:
                entry["channel_means"] = np.round(v.mean(axis=(1, 2)).astype(np.float64), 7).tolist()
            if v.size <= 4096:
                entry["values"] = np.round(v.astype(np.float64), 7).tolist()
            samples.append(entry)
        print(json.dumps({"node": args.node, "split": args.split, "weights": model.weights, "samples": samples},
                         indent=2))
    else:
        print(f"activations of {args.node} for {len(indices)} {args.split} sample(s): {['N', *value.shape[1:]]}")
        if args.output:
            print(f"wrote {args.output}")
    return EXIT_OK
