"""Mutated projects and the load -> check -> compile -> train -> export pipeline they go through.

Shared by the property test (``test_fuzz_pipeline.py``, driven by hypothesis) and by
``python -m tests.core.fuzz_mutants N`` (plain random mutants, counted by outcome).
A mutation edits a project's JSON the way a hand-edited file, an old version or a
hostile file could: odd values of the right and wrong types in params, names,
shapes, data and training fields; edges rewired; nodes removed, retyped or inserted.
"""

from __future__ import annotations

import copy
import importlib.util
import json
import random
import re
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, Protocol

SAMPLES = sorted((Path(__file__).resolve().parents[2] / "samples").glob("*.json"))

INTS: tuple[Any, ...] = (0, 1, -1, 2, 3, 5, 7, 16, 64, 1000, 2**31 - 1, 2**31, 2**53, 2**63, -(2**63), 10**21)
FLOATS: tuple[Any, ...] = (0.0, -0.0, 0.5, 0.999, 1.5, 1e-300, 1e308, -1.0, 2.0, 1e6)
STRINGS: tuple[Any, ...] = ("", "T", "N", "relu", "mean", "learned", "float32", "int64", "x", "é", "\ud800",
                            "a" * 300, "\x1b[2J", "text", "csv")
LISTS: tuple[Any, ...] = ([], [1], [2, 2], [1, 1], [0, 0], [3, 3], [-1], [1, -1], [2**40, 1], ["T"], ["T", 4],
                          [1, 8, 8], [64], [8, 8], [4, 16], [1, 2, 3, 4, 5, 6, 7, 8, 9], [True, 1], [1.5], [2**63],
                          [16, 16, 16, 16, 16], ["T", "T"], [2, -1])
OTHER: tuple[Any, ...] = (None, True, False, {}, {"a": 1})

NAMES: tuple[str, ...] = (
    # nn.Module / GraphModule attributes (class and instance), fx's own names and globals
    "training", "meta", "_modules", "_parameters", "_buffers", "forward", "self", "torch", "nn", "operator",
    "getattr", "_tensor_constant0", "code", "graph", "_code", "_graph", "__init__", "__class__", "__dict__",
    "call_module", "placeholder", "output", "input", "x", "size", "device", "dtype", "inf", "nan", "math",
    "load_weights", "register_buffer", "cuda", "float", "dump_patches", "call_super_init", "_root",
    "_is_full_backward_hook", "_forward_hooks", "_state_dict_hooks", "_version", "_tracer_cls", "print", "len",
    # keywords and odd identifiers
    "class", "None", "True", "match", "_", "__", "1x", "a b", "a.b", "a-b", "conv1", "conv_1", "conv 1",
    # unicode, control characters, surrogates, lengths
    "ü", "中文", "\ud800", "\udfff", "a\ud800b", "", " ", "x" * 2000, "\x1b[31mred", "a\nb", "\t", "\u200b",
    "\u202e", "\x85", "o'k", 'q"q', '"""', "\\", "{}", "%s",
)

PROJECT_TEXT: tuple[Any, ...] = ("", "ok", "\ud800", "a\x1b[2Jb", "line\nbreak", "tab\tok", "x" * 5000, "中文",
                                 '"""', 5, None)

DATA_VALUES: dict[str, tuple[Any, ...]] = {
    "dataset": ("digits", "synthetic_blobs", "synthetic_regression", "synthetic_sequence", "csv", "text",
                "image_folder", "idx", "torchvision", "nope"),
    "path": ("", "/nonexistent/file.csv", "\ud800", 3),
    "layout": ("auto", "image", "flat", "rows", "bad"),
    "batch_size": (1, 2, 0, 3, 10**9, "2"),
    "val_fraction": (0.0, 0.5, 0.9, 1.0, -0.1),
    "test_fraction": (0.0, 0.2, 0.9),
    "num_samples": (10, 11, 9, 10**8),
    "seq_len": (2, 3, 8, 5000, 1),
    "seed": (0, 1, -1, 2**63),
    "shuffle": (True, False, 1),
}
TRAINING_VALUES: dict[str, tuple[Any, ...]] = {
    "task": ("classification", "regression", "reconstruction", "language_model", "adversarial", "nope"),
    "optimizer": ("sgd", "adam", "adamw", "rmsprop", "lbfgs"),
    "lr": (0.0, 1e-3, 10.0, 11.0, -1.0),
    "epochs": (1, 0, 2),
    # bf16/fp16 on a CPU are probed on the device when training starts (an LSTM has no fp16 kernel
    # there); check cannot know which device a run will get, so precision stays fp32 here
    "precision": ("fp32",),
    "grad_clip": (0.0, 1.0, -1.0),
    "schedule": ("none", "step", "cosine", "onecycle", "plateau"),
    "top_k": (1, 5, 100, 0),
    "device": ("cpu", "auto", "cuda", "", "tpu"),
}


class Chooser(Protocol):
    """Where a mutation's choices come from (hypothesis data, or a seeded Random)."""

    def index(self, n: int) -> int: ...


class RandomChooser:
    def __init__(self, seed: int) -> None:
        self.rng = random.Random(seed)

    def index(self, n: int) -> int:
        return self.rng.randrange(n)


def pick(c: Chooser, items: Sequence[Any]) -> Any:
    return items[c.index(len(items))]


# --------------------------------------------------------------------------- seeds


def seed_docs() -> list[dict[str, Any]]:
    """Every sample, plus the templates that are cheap to train (LeNet-5)."""
    from workbench.templates import lenet5

    docs = [json.loads(p.read_text(encoding="utf-8")) for p in SAMPLES]
    docs.append(lenet5().to_dict())
    for doc in docs:  # small steps keep a case fast; mutations still reach batch_size
        doc["data"]["batch_size"] = 5  # (4 would leave the GAN a last batch of one for its BatchNorm)
    return docs


def _graphs(doc: dict[str, Any]) -> list[dict[str, Any]]:
    """The graph objects of a document: the model, further graphs, and block insides."""
    out = []
    for g in [doc.get("graph"), *(doc.get("graphs") or {}).values(),
              *(b.get("graph") for b in (doc.get("blocks") or {}).values() if isinstance(b, dict))]:
        if isinstance(g, dict) and isinstance(g.get("nodes"), list) and isinstance(g.get("edges"), list):
            out.append(g)
    return out


# --------------------------------------------------------------------------- mutations


def _near(c: Chooser, value: Any) -> Any:
    """A value near a valid one: off by one, doubled, halved, huge, an element changed."""
    if isinstance(value, bool):
        return not value
    if isinstance(value, int):
        return pick(c, (value + 1, value - 1, value * 2, value // 2, 0, -value, value * 1000, 2**31, 2**62))
    if isinstance(value, float):
        return pick(c, (value * 2, value / 2, 0.0, 1.0, -value, value + 1.0))
    if isinstance(value, list) and value:
        out = list(value)
        i = c.index(len(out))
        op = c.index(4)
        if op == 0:
            out[i] = _near(c, out[i])
        elif op == 1:
            out.append(pick(c, (1, 2, 3, "T")))
        elif op == 2:
            del out[i]
        else:
            out = out[::-1]
        return out
    return pick(c, STRINGS)


def _odd_value(c: Chooser, current: Any) -> Any:
    kind = c.index(6)
    if kind == 0:
        return _near(c, current)
    return pick(c, (INTS, FLOATS, STRINGS, LISTS, OTHER)[kind - 1])


def mutate_param(c: Chooser, doc: dict[str, Any]) -> None:
    nodes = [n for g in _graphs(doc) for n in g["nodes"] if isinstance(n, dict)]
    if not nodes:
        return
    node = pick(c, nodes)
    params = node.setdefault("params", {})
    if not isinstance(params, dict):
        return
    keys = [*sorted(params), "not_a_param"]
    key = pick(c, keys)
    params[key] = _odd_value(c, params.get(key))


def mutate_name(c: Chooser, doc: dict[str, Any]) -> None:
    nodes = [n for g in _graphs(doc) for n in g["nodes"] if isinstance(n, dict)]
    if not nodes:
        return
    node = pick(c, nodes)
    if c.index(4) == 0:  # another node's name, exactly or as the same identifier
        other = pick(c, nodes).get("name", "x")
        node["name"] = pick(c, (other, f"{other} ", re.sub(r"\w", "_", str(other)), str(other).upper()))
    else:
        node["name"] = pick(c, NAMES)


def mutate_type(c: Chooser, doc: dict[str, Any]) -> None:
    from workbench.layers import REGISTRY

    nodes = [n for g in _graphs(doc) for n in g["nodes"] if isinstance(n, dict)]
    if not nodes:
        return
    node = pick(c, nodes)
    node["type"] = pick(c, sorted(REGISTRY))
    if c.index(2):
        node["params"] = {}  # the new type's defaults


def mutate_remove_node(c: Chooser, doc: dict[str, Any]) -> None:
    graphs = _graphs(doc)
    if not graphs:
        return
    g = pick(c, graphs)
    if not g["nodes"]:
        return
    node = g["nodes"].pop(c.index(len(g["nodes"])))
    if c.index(3):  # usually the edges go with it (else the file names a missing node)
        nid = node.get("id") if isinstance(node, dict) else None
        g["edges"] = [e for e in g["edges"] if not (isinstance(e, dict) and nid in (e.get("from", [None])[0],
                                                                                  e.get("to", [None])[0]))]


def mutate_edge(c: Chooser, doc: dict[str, Any]) -> None:
    graphs = _graphs(doc)
    if not graphs:
        return
    g = pick(c, graphs)
    ids = [n.get("id") for n in g["nodes"] if isinstance(n, dict)]
    if not ids:
        return
    ports = ("x", "y", "h", "in1", "in2", "in3", "x2")
    op = c.index(3)
    if op == 0 or not g["edges"]:
        g["edges"].append({"from": [pick(c, ids), pick(c, ports)], "to": [pick(c, ids), pick(c, ports)]})
        return
    e = pick(c, g["edges"])
    if not isinstance(e, dict):
        return
    if op == 1:
        e["from"] = [pick(c, ids), pick(c, ports)]
    else:
        g["edges"].remove(e)


def mutate_insert(c: Chooser, doc: dict[str, Any]) -> None:
    """Put a new node of any catalogue type (defaults or an odd param) in the middle of an edge."""
    from workbench.layers import REGISTRY

    graphs = _graphs(doc)
    if not graphs:
        return
    g = pick(c, graphs)
    edges = [e for e in g["edges"] if isinstance(e, dict) and isinstance(e.get("to"), list)]
    if not edges:
        return
    e = pick(c, edges)
    typ = pick(c, sorted(t for t in REGISTRY if t not in ("Input", "Output")))
    spec = REGISTRY[typ]
    params: dict[str, Any] = {}
    if spec.params and c.index(2):
        p = pick(c, spec.params)
        params[p.name] = _near(c, list(p.default) if isinstance(p.default, tuple) else p.default)
    nid = f"fz{len(g['nodes'])}_{c.index(1000)}"
    name = pick(c, (f"{typ.lower()}_fz", *NAMES[:12]))
    g["nodes"].append({"id": nid, "type": typ, "name": name, "params": params, "position": [0, 0]})
    first_in = spec.input_ports({**spec.defaults(), **params}) if not callable(spec.inputs) else ("in1",)
    outs = spec.output_ports(spec.defaults())  # a function of params for Split and Chunk
    out_port = outs[0] if outs else "y"
    old_to = e["to"]
    e["to"] = [nid, first_in[0] if first_in else "x"]
    g["edges"].append({"from": [nid, out_port], "to": old_to})


def mutate_data(c: Chooser, doc: dict[str, Any]) -> None:
    section = doc.setdefault("data", {})
    key = pick(c, sorted(DATA_VALUES))
    section[key] = pick(c, DATA_VALUES[key])


def mutate_training(c: Chooser, doc: dict[str, Any]) -> None:
    section = doc.setdefault("training", {})
    key = pick(c, sorted(TRAINING_VALUES))
    section[key] = pick(c, TRAINING_VALUES[key])


def mutate_text(c: Chooser, doc: dict[str, Any]) -> None:
    key = pick(c, ("name", "description", "block_name", "block_doc"))
    value = pick(c, PROJECT_TEXT)
    blocks = [b for b in (doc.get("blocks") or {}).values() if isinstance(b, dict)]
    if key.startswith("block_"):
        if blocks:
            pick(c, blocks)[key[6:]] = value
        return
    doc[key] = value


def mutate_input_shape(c: Chooser, doc: dict[str, Any]) -> None:
    inputs = [n for g in _graphs(doc) for n in g["nodes"] if isinstance(n, dict) and n.get("type") == "Input"]
    if not inputs:
        return
    node = pick(c, inputs)
    params = node.setdefault("params", {})
    params["shape"] = pick(c, (*LISTS, _near(c, params.get("shape", [1, 8, 8]))))
    if c.index(3) == 0:
        params["dtype"] = pick(c, ("float32", "int64"))


MUTATIONS: tuple[Callable[[Chooser, dict[str, Any]], None], ...] = (
    mutate_param, mutate_param, mutate_param, mutate_name, mutate_type, mutate_remove_node, mutate_edge,
    mutate_insert, mutate_insert, mutate_data, mutate_training, mutate_text, mutate_input_shape,
)


def mutant(c: Chooser, seeds: list[dict[str, Any]]) -> dict[str, Any]:
    """One seed document with one to three mutations."""
    doc = copy.deepcopy(pick(c, seeds))
    for _ in range(1 + c.index(3)):
        pick(c, MUTATIONS)(c, doc)
    return doc


# --------------------------------------------------------------------------- the pipeline


class PipelineFailure(AssertionError):
    """What the property forbids: a foreign exception, an unlocated error, or a refusal after check accepted."""


def located(exc: BaseException) -> bool:
    """Does the error name a place: a node, a parameter, a JSON path (attribute or message)?"""
    from workbench.errors import CompileError

    if isinstance(exc, CompileError):
        return all(located(e) or e.node == "(graph)" for e in exc.errors)
    for attr in ("node", "param", "path"):
        if getattr(exc, attr, None):
            return True
    text = str(exc)
    return bool(re.search(r'"[^"]+"|\b(data|training|graph|graphs|blocks)\.[a-z_]+|\bInput\b|\bOutput\b', text))


#: layers whose result leaves the numbers for part of their input (log or sqrt of a negative, 1/0, exp
#: overflowing float32, a constant operand such as x ** 0.5): values, not shapes, decide, so check cannot;
#: training stops at the first step naming the node, which is the located refusal we ask for
NUMERIC_DOMAIN = frozenset({"Log", "Sqrt", "Reciprocal", "Exp", "Power", "Divide", "ScalarOp"})


def _numeric_domain_refusal(project: Any, exc: BaseException) -> bool:
    """A training error that names, as the source of non-finite values, a layer of NUMERIC_DOMAIN."""
    found = re.search(r'first non-finite values come from node "([^"]+)"', str(exc))
    if found is None:
        return False
    graph = project.graph
    return graph.has_name(found.group(1)) and graph.by_name(found.group(1)).type in NUMERIC_DOMAIN


def _foreign(stage: str, exc: BaseException) -> PipelineFailure:
    import traceback

    tb = "".join(traceback.format_exception(exc)[-6:])
    return PipelineFailure(f"{stage} raised {type(exc).__name__}: {str(exc)[:500]}\n{tb}")


def run_pipeline(doc: dict[str, Any], tmp: Path, onnx: bool = False) -> str:
    """Take ``doc`` through the whole pipeline; returns where it stopped.

    Returns:
        "load" (refused by loading), "check" (refused by check), "data" (check warned the data
        is not there and training said so), "numeric" (a layer of NUMERIC_DOMAIN made the first
        loss non-finite, and training named it) or "accepted" (trained one step and exported).

    Raises:
        PipelineFailure: a non-workbench exception, an error without a location, or a stage
            after an accepting check that failed.
    """
    from workbench.cli import check_report
    from workbench.compiler import compile_graph
    from workbench.data import DataError
    from workbench.errors import WorkbenchError
    from workbench.project import loads_project

    text = json.dumps(doc)  # escapes lone surrogates as \udXXX, as a file written by another tool may
    try:
        project = loads_project(text)
    except WorkbenchError as exc:
        if not located(exc):
            raise PipelineFailure(f"load error without a location: {exc}") from None
        return "load"
    except Exception as exc:
        raise _foreign("load", exc) from None
    try:
        report = check_report(project)
    except Exception as exc:
        raise _foreign("check", exc) from None
    if report["errors"]:
        for e in report["errors"]:
            if not (e.get("node") or e.get("param") or e.get("path")) and "graph" not in e["message"]:
                raise PipelineFailure(f"check error without a location: {e}")
        try:
            compile_graph(project.graph)
        except WorkbenchError as exc:
            if not located(exc):
                raise PipelineFailure(f"compile error without a location: {exc}") from None
        except Exception as exc:
            raise _foreign("compile (after check refused)", exc) from None
        return "check"
    try:
        compiled = compile_graph(project.graph)
    except Exception as exc:
        raise _foreign("compile (check accepted)", exc) from None
    try:
        _one_step(project, tmp)
    except DataError as exc:
        if any("data" in w["message"] for w in report["warnings"]):
            return "data"
        raise _foreign("train (check accepted)", exc) from None
    except Exception as exc:
        if _numeric_domain_refusal(project, exc):
            return "numeric"
        raise _foreign("train (check accepted)", exc) from None
    try:
        _export_source(project, compiled, tmp)
    except Exception as exc:
        raise _foreign("export python (check accepted)", exc) from None
    if onnx:
        from workbench.export.onnx_export import export_onnx

        try:
            export_onnx(project, tmp / "model.onnx")
        except Exception as exc:
            raise _foreign("export onnx (check accepted)", exc) from None
    return "accepted"


def _one_step(project: Any, tmp: Path) -> None:
    from workbench.training import Control, Trainer

    control = Control()
    control.stop.set()  # the first step finishes, then the loop stops and checkpoints
    trainer = Trainer(project, run_dir=tmp / "run", control=control)  # the stop flag ends it after one step
    summary = trainer.run()
    if summary["status"] != "stopped" or summary["steps"] != 1:
        raise PipelineFailure(f"training took {summary['steps']} steps and ended {summary['status']!r}")


def _export_source(project: Any, compiled: Any, tmp: Path) -> None:
    """Export the PyTorch source, import it, load its weights: it must compute what the compiled module does."""
    import torch

    from workbench.export.python_source import export_python

    result = export_python(project, tmp / "model.py")
    spec = importlib.util.spec_from_file_location(f"fuzz_export_{id(tmp)}", result.source)
    assert spec is not None and spec.loader is not None
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    model = getattr(mod, result.class_name)().load_weights(result.weights).eval()
    from workbench.weights import load_weights

    load_weights(compiled.module, result.weights)
    compiled.module.eval()
    torch.manual_seed(0)
    inputs = compiled.example_inputs(batch=2, seq=3)
    with torch.no_grad():
        want, got = compiled.module(*inputs), model(*inputs)
    want = want if isinstance(want, tuple) else (want,)
    got = got if isinstance(got, tuple) else (got,)
    for a, b in zip(want, got, strict=True):
        if not torch.allclose(a, b, atol=1e-5, equal_nan=True):
            raise PipelineFailure("the exported source computes something else than the compiled module")


# --------------------------------------------------------------------------- counting (python -m)


def count(n: int, start: int = 0, verbose: bool = False) -> dict[str, Any]:
    """Run ``n`` random mutants (seeds start..start+n-1); tally outcomes and failures."""
    import tempfile

    seeds = seed_docs()
    tally: dict[str, int] = {}
    failures: dict[str, list[int]] = {}
    for i in range(start, start + n):
        doc = mutant(RandomChooser(i), seeds)
        with tempfile.TemporaryDirectory() as d:
            try:
                outcome = run_pipeline(doc, Path(d))
            except PipelineFailure as exc:
                outcome = "FAIL"
                key = str(exc).splitlines()[0][:160]
                key = re.sub(r"\d+", "#", key)
                failures.setdefault(key, []).append(i)
                if verbose:
                    print(i, str(exc)[:2000], file=sys.stderr)
        tally[outcome] = tally.get(outcome, 0) + 1
    return {"tally": tally, "failures": failures}


if __name__ == "__main__":
    import resource

    resource.setrlimit(resource.RLIMIT_AS, (8 << 30, 8 << 30))  # an absurd allocation fails instead of swapping
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 200
    start = int(sys.argv[2]) if len(sys.argv) > 2 else 0
    result = count(n, start, verbose="-v" in sys.argv)
    print(json.dumps(result["tally"]))
    for key, ids in sorted(result["failures"].items(), key=lambda kv: -len(kv[1])):
        print(f"{len(ids):4d}  {key}   e.g. {ids[:5]}")
