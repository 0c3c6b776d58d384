"""Project files: round trip, atomic save, located errors, version checks, fuzzing."""

from __future__ import annotations

import copy
import json
import os
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from workbench.errors import OutputError, ProjectError
from workbench.project import VERSION, load_project, loads_project, project_from_dict, save_project

SAMPLES = Path(__file__).resolve().parents[2] / "samples"
RESNET_DOC = json.loads((SAMPLES / "digits_resnet.json").read_text())


@pytest.fixture
def cnn_doc() -> dict[str, Any]:
    return json.loads((SAMPLES / "digits_cnn.json").read_text())


def test_round_trip_is_identical(tmp_path: Path, cnn_doc: dict[str, Any]) -> None:
    project = project_from_dict(cnn_doc)
    out = save_project(project, tmp_path / "p.json")
    assert json.loads(out.read_text()) == cnn_doc
    again = load_project(out)
    assert again.to_dict() == cnn_doc
    assert again.path == out.resolve()


def test_save_is_atomic_and_leaves_no_temp_files(tmp_path: Path, cnn_doc: dict[str, Any], monkeypatch) -> None:
    target = tmp_path / "p.json"
    target.write_text("old content")
    project = project_from_dict(cnn_doc)

    def boom(*args: Any, **kwargs: Any) -> None:
        raise OSError("disk full")

    monkeypatch.setattr(os, "replace", boom)
    with pytest.raises(OutputError, match=f"cannot write {target}: disk full"):  # the file asked for, not the temp
        save_project(project, target)
    assert target.read_text() == "old content"  # nothing half-written
    assert sorted(p.name for p in tmp_path.iterdir()) == ["p.json"]


@pytest.mark.parametrize(
    ("mutate", "expected"),
    [
        (lambda d: d["graph"]["nodes"][4].__setitem__("params", {"kernel_size": -1}),
         "graph.nodes[4].params.kernel_size: expected 2 positive ints (or one for all), got -1"),
        (lambda d: d["graph"]["nodes"][3].__setitem__("params", {"kernel_size": 3}),
         "graph.nodes[3].params.kernel_size: ReLU has no parameter 'kernel_size'"),
        (lambda d: d["graph"]["nodes"][1]["params"].__setitem__("out_channels", -1),
         "graph.nodes[1].params.out_channels: expected a positive int, got -1"),
        (lambda d: d["graph"]["nodes"][2].__setitem__("type", "Conv9d"),
         "graph.nodes[2].type: unknown layer type 'Conv9d'"),
        (lambda d: d["graph"]["nodes"][2].__setitem__("name", d["graph"]["nodes"][1]["name"]),
         "graph.nodes[2].name: the name 'conv1' is already used by another node"),
        (lambda d: d["graph"]["edges"].__setitem__(13, {"from": ["n5", "y"], "to": ["n2", "x"]}),
         "graph.edges[13]: connecting \"pool1\" to \"conv1\" would create a cycle"),
        (lambda d: d["graph"]["edges"][0].__setitem__("to", ["n1", "y"]),
         "graph.edges[0]: \"image\" has no input port 'y'"),
        (lambda d: d["graph"]["edges"].append({"from": ["n1", "y"], "to": ["nX", "x"]}),
         "graph.edges[14].to: no node with id 'nX'"),
        (lambda d: d["data"].__setitem__("batch_size", 0), "data.batch_size: expected an int in [1, 1000000], got 0"),
        (lambda d: d["training"].__setitem__("optimizer", "adamax"),
         "training.optimizer: expected one of sgd, adam, adamw, rmsprop, got 'adamax'"),
        (lambda d: d.__setitem__("weights", "../../etc/passwd"),
         "weights: expected a file name beside the project (no folders), got '../../etc/passwd'"),
        (lambda d: d.__setitem__("format", "something-else"), "format: expected 'neural-workbench-project'"),
    ],
)
def test_errors_name_the_json_path(cnn_doc: dict[str, Any], mutate, expected: str) -> None:
    mutate(cnn_doc)
    with pytest.raises(ProjectError) as exc:
        project_from_dict(cnn_doc)
    assert str(exc.value).startswith(expected)


def test_newer_version_is_refused_clearly(cnn_doc: dict[str, Any]) -> None:
    cnn_doc["version"] = VERSION + 1
    with pytest.raises(ProjectError, match="newer Neural Workbench") as exc:
        project_from_dict(cnn_doc)
    assert exc.value.path == "version"


def test_unreadable_files_name_the_file(tmp_path: Path) -> None:
    bad = tmp_path / "bad.json"
    bad.write_text('{"format": "neural-workbench-project", "version": 1,')
    with pytest.raises(ProjectError, match=r"bad.json: not valid JSON: .*line 1") :
        load_project(bad)
    with pytest.raises(ProjectError, match="cannot read the file"):
        load_project(tmp_path / "missing.json")
    bad.write_bytes(b"\xff\xfe\x00")
    with pytest.raises(ProjectError, match="not UTF-8"):
        load_project(bad)


def test_nan_is_refused() -> None:
    with pytest.raises(ProjectError, match="NaN is not allowed"):
        loads_project('{"format": "neural-workbench-project", "version": 1, "x": NaN}')


# --------------------------------------------------------------------------- fuzzing

json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-5, 5) | st.floats(allow_nan=False, allow_infinity=False) | st.text(max_size=4),
    lambda children: st.lists(children, max_size=3) | st.dictionaries(st.text(max_size=6), children, max_size=3),
    max_leaves=8,
)


def _paths(doc: Any, prefix: tuple = ()) -> list[tuple]:
    out = [prefix]
    if isinstance(doc, dict):
        for k, v in doc.items():
            out += _paths(v, (*prefix, k))
    elif isinstance(doc, list):
        for i, v in enumerate(doc):
            out += _paths(v, (*prefix, i))
    return out


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_mutated_projects_only_raise_located_project_errors(cnn_doc: dict[str, Any], data: st.DataObject) -> None:
    # the CNN, and the ResNet whose residual blocks are reusable blocks (the "blocks" section)
    doc = copy.deepcopy(data.draw(st.sampled_from([cnn_doc, RESNET_DOC])))
    for _ in range(data.draw(st.integers(1, 3))):
        paths = [p for p in _paths(doc) if p]
        path = data.draw(st.sampled_from(paths))
        parent = doc
        for key in path[:-1]:
            parent = parent[key]
        action = data.draw(st.sampled_from(["replace", "delete"]))
        if action == "delete":
            del parent[path[-1]]
        else:
            parent[path[-1]] = data.draw(json_values)
    try:
        project_from_dict(doc)
    except ProjectError as exc:
        assert str(exc)  # a message, and for graph problems a JSON path
        if exc.path:
            assert exc.path.split(".")[0].split("[")[0] in {
                "format", "version", "name", "description", "graph", "data", "training", "weights", "blocks",
            } or exc.path in doc


@settings(max_examples=200, deadline=None)
@given(text=st.text(max_size=200) | st.binary(max_size=200).map(lambda b: b.decode("latin-1")))
def test_arbitrary_text_only_raises_project_error(text: str) -> None:
    try:
        loads_project(text)
    except ProjectError:
        pass


def test_version_1_files_migrate_and_extra_graphs_are_validated(cnn_doc: dict[str, Any]) -> None:
    old = {**cnn_doc, "version": 1}
    assert project_from_dict(old).to_dict()["version"] == VERSION
    doc = {**cnn_doc, "graphs": {"discriminator": {"nodes": [{"id": "a", "type": "Linear", "name": "x",
                                                              "params": {"out_features": 0}}]}}}
    with pytest.raises(ProjectError) as exc:
        project_from_dict(doc)
    assert str(exc.value).startswith("graphs.discriminator.nodes[0].params.out_features: expected a positive int")
    with pytest.raises(ProjectError, match="unknown graph role"):
        project_from_dict({**cnn_doc, "graphs": {"critic": {}}})
