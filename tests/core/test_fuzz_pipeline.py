"""Property: mutated projects go through load -> check -> compile -> one training step -> export.

Only the project's own errors (``WorkbenchError``) come out, each naming a node, a
parameter or a JSON path; and whatever ``workbench check`` accepts compiles, takes a
training step and exports (PyTorch source, imported and compared with the compiled
module).  The mutations are in ``fuzz_mutants.py``; every crash found becomes an
``@example`` below and a regression test beside the fix.

ONNX export is left to ``test_accepted_mutants_export_onnx`` (a few cases): the
dynamo exporter takes 0.6-3.8 s a model, which 500 cases cannot afford.

Run the long version with ``pytest -m slow tests/core/test_fuzz_pipeline.py`` (10,000 cases).
"""

from __future__ import annotations

import copy
import tempfile
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from .fuzz_mutants import SAMPLES, mutant, run_pipeline, seed_docs
from .sample_deps import doc_with_init_from

SEEDS = seed_docs()


class _Drawer:
    """A :class:`~tests.core.fuzz_mutants.Chooser` over hypothesis data (so failures shrink)."""

    def __init__(self, draw: Any) -> None:
        self.draw = draw

    def index(self, n: int) -> int:
        return self.draw(st.integers(0, n - 1)) if n > 1 else 0


@st.composite
def mutants(draw: Any) -> dict[str, Any]:
    return mutant(_Drawer(draw), SEEDS)


def _seed(name: str) -> dict[str, Any]:
    index = [p.name for p in SAMPLES].index(name)
    return copy.deepcopy(SEEDS[index])


def _node(doc: dict[str, Any], name: str, graph: str = "graph") -> dict[str, Any]:
    g = doc["graphs"][graph.split(".")[1]] if graph.startswith("graphs.") else doc[graph]
    return next(n for n in g["nodes"] if n["name"] == name)


def _with(name: str, change: Any) -> dict[str, Any]:
    doc = _seed(name)
    change(doc)
    return doc


# Crashes the fuzzer found before the fixes (each also has a regression test of its own).
FOUND = {
    # GraphModule sets `meta` on the instance: "cannot assign 'dict' as child module 'meta'"
    "node named meta": _with("digits_mlp.json", lambda d: _node(d, "fc1").update(name="meta")),
    # instance attributes of nn.Module: "attribute '_parameters' already exists"
    "node named _parameters": _with("digits_cnn.json", lambda d: _node(d, "relu1").update(name="_parameters")),
    "node named training": _with("digits_cnn.json", lambda d: _node(d, "bn1").update(name="training")),
    # "DefaultCPUAllocator: can't allocate memory" / "Storage size calculation overflowed"
    "out_features 2**31": _with("digits_mlp.json", lambda d: _node(d, "fc1")["params"].update(out_features=2**31)),
    "out_features 2**24": _with("digits_mlp.json", lambda d: _node(d, "fc1")["params"].update(out_features=2**24)),
    # 16 logits for 10 classes: a TaskError after the first batch
    "Output wider than the classes": _with("digits_mlp.json",
                                           lambda d: _node(d, "classifier")["params"].update(out_features=16)),
    # the Input no longer fits the samples: a DataError when training loads them
    "Input shape off": _with("digits_cnn.json", lambda d: d["graph"]["nodes"][0]["params"].update(shape=[1, 8, 9])),
    # an Embedding fed pixels: "Expected tensor for argument #1 'indices' to have ... Long"
    "Embedding fed floats": _with("digits_mlp.json", lambda d: _node(d, "fc1").update(
        type="Embedding", params={"num_embeddings": 10, "embedding_dim": 8})),
    # a lone surrogate in the text path: UnicodeEncodeError opening it; in the project name, the
    # same error when ONNX export wrote its metadata
    "surrogate in the data path": _with("char_language_model.json", lambda d: d["data"].update(path="\ud800")),
    "surrogate in the name": _with("digits_mlp.json", lambda d: d.update(name="a\ud800b")),
    # the adversarial task evaluated its generator on test images: "mat1 and mat2 shapes cannot be multiplied"
    "GAN with a test split": _with("digits_gan.json", lambda d: d["data"].update(test_fraction=0.2)),
    # a broken discriminator passed check (check looked at the main graph only)
    "discriminator broken": _with("digits_gan.json", lambda d: _node(d, "down1", "graphs.discriminator")["params"]
                                  .update(kernel_size=[20, 20])),
    # seven scores per sample where the adversarial loss reshapes to one
    "discriminator gives 7 values": _with("digits_gan.json", lambda d: _node(
        d, "real_or_fake", "graphs.discriminator")["params"].update(out_features=7)),
    # the regression target is [1] per sample; the Output gave [16]
    "regression Output wrong": _with("digits_mlp.json", lambda d: (
        d["data"].update(dataset="synthetic_regression"), d["training"].update(task="regression"))),
    # torch.manual_seed(2**63): "Overflow when unpacking long long" at the first step
    "seed 2**63": _with("digits_mlp.json", lambda d: d["training"].update(seed=2**63)),
    # a batch of one sample into BatchNorm1d ("Expected more than 1 value per channel")
    "BatchNorm1d with batch 1": _with("digits_gan.json", lambda d: d["data"].update(batch_size=1)),
    # the square root of the generator's Gaussian noise: "the GAN losses became non-finite" named no node
    "GAN noise through Sqrt": _with("digits_gan.json", lambda d: (
        d["graph"]["nodes"].append({"id": "fz_sqrt", "type": "Sqrt", "name": "sqrt_fz", "params": {},
                                    "position": [0, 0]}),
        d["graph"]["edges"].remove({"from": ["n1", "y"], "to": ["n2", "x"]}),
        d["graph"]["edges"].extend([{"from": ["n1", "y"], "to": ["fz_sqrt", "x"]},
                                    {"from": ["fz_sqrt", "y"], "to": ["n2", "x"]}]))),
}


def _run(doc: dict[str, Any]) -> str:
    with tempfile.TemporaryDirectory() as tmp:
        return run_pipeline(doc, Path(tmp))


_SETTINGS = {"deadline": None, "derandomize": True, "database": None, "print_blob": True,
             "suppress_health_check": [HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.filter_too_much]}


def _with_examples(test: Any) -> Any:
    for doc in FOUND.values():
        test = example(doc=doc)(test)
    return test


@settings(max_examples=500, **_SETTINGS)
@_with_examples
@given(doc=mutants())
def test_mutated_projects_fail_only_with_located_workbench_errors(doc: dict[str, Any]) -> None:
    _run(doc)


@pytest.mark.slow
@settings(max_examples=10_000, **_SETTINGS)
@given(doc=mutants())
def test_mutated_projects_many(doc: dict[str, Any]) -> None:
    _run(doc)


@pytest.mark.parametrize("sample", SAMPLES, ids=lambda p: p.name)
def test_every_sample_goes_through_unmutated(sample: Path, tmp_path: Path) -> None:
    assert _run(doc_with_init_from(_seed(sample.name), sample, tmp_path)) == "accepted"


def test_found_cases_are_refused_where_they_should_be() -> None:
    """The crashes above now stop at load or check (the fixed file passes, where it should)."""
    outcomes = {name: _run(doc) for name, doc in FOUND.items()}
    assert outcomes == {
        "node named meta": "accepted",
        "node named _parameters": "accepted",
        "node named training": "accepted",
        "out_features 2**31": "load",
        "out_features 2**24": "check",
        "Output wider than the classes": "check",
        "Input shape off": "check",
        "Embedding fed floats": "check",
        "surrogate in the data path": "load",
        "surrogate in the name": "load",
        "GAN with a test split": "check",
        "discriminator broken": "check",
        "discriminator gives 7 values": "check",
        "regression Output wrong": "check",
        "BatchNorm1d with batch 1": "check",
        "seed 2**63": "load",
        "GAN noise through Sqrt": "numeric",
    }


def test_accepted_mutants_export_onnx(tmp_path: Path) -> None:
    """ONNX export (verified by onnxruntime) for the accepted cases above whose names clash."""
    for name in ("node named meta", "node named training"):
        sub = tmp_path / name.replace(" ", "_")
        sub.mkdir()
        assert run_pipeline(FOUND[name], sub, onnx=True) == "accepted"
