"""Samples and the documented schema stay in sync with the code that makes them."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import jsonschema
import pytest

from workbench.compiler import compile_graph
from workbench.project import load_project
from workbench.schema import schema_json

ROOT = Path(__file__).resolve().parents[2]
SAMPLES = sorted((ROOT / "samples").glob("*.json"))


def _generator():
    spec = importlib.util.spec_from_file_location("make_samples", ROOT / "samples" / "make_samples.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_committed_samples_equal_the_generator() -> None:
    gen = _generator()
    assert sorted(gen.SAMPLES) == [p.name for p in SAMPLES]
    for name, make in gen.SAMPLES.items():
        assert json.loads((ROOT / "samples" / name).read_text()) == json.loads(make().to_json()), name


def test_documented_schema_is_current() -> None:
    assert (ROOT / "docs" / "project.schema.json").read_text() == schema_json()


@pytest.mark.parametrize("sample", SAMPLES, ids=lambda p: p.name)
def test_samples_validate_against_schema_and_compile(sample: Path) -> None:
    schema = json.loads((ROOT / "docs" / "project.schema.json").read_text())
    jsonschema.validate(json.loads(sample.read_text()), schema)
    project = load_project(sample)
    compiled = compile_graph(project.graph)
    out = compiled.module(*compiled.example_inputs(batch=3, seq=5, vocab=2))
    outs = out if isinstance(out, tuple) else (out,)
    for y, shape in zip(outs, compiled.output_shapes, strict=True):
        assert tuple(y.shape) == tuple(3 if d == "N" else 5 if isinstance(d, str) else d for d in shape)


def test_schema_rejects_a_bad_param() -> None:
    schema = json.loads((ROOT / "docs" / "project.schema.json").read_text())
    doc = json.loads(SAMPLES[0].read_text())
    doc["graph"]["nodes"][1]["params"]["bogus"] = 1
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(doc, schema)
