"""Names that clash with torch's own, text that cannot be encoded or drives a terminal, absurd sizes."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest
import torch

from workbench.blocks import BlockError, BlockLibrary, define_block
from workbench.builder import GraphBuilder
from workbench.compiler import compile_graph
from workbench.errors import NameConflictError, ParamError, ProjectError
from workbench.export.python_source import export_python
from workbench.graph import Graph
from workbench.project import Project, loads_project
from workbench.weights import load_weights

SAMPLES = Path(__file__).resolve().parents[2] / "samples"

# instance attributes (missed by dir(nn.Module)), GraphModule's meta, fx's globals, the exported class's method
CLASHING = ["training", "meta", "_modules", "_parameters", "_buffers", "_forward_hooks", "_code", "getattr",
            "device", "inf", "load_weights", "__x", "_tensor_constant0", "print", "LOGITS", "MyInput"]


def _check_compiles_trains_exports(b: GraphBuilder, tmp_path: Path) -> None:
    compiled = compile_graph(b.graph)
    model = compiled.module
    assert isinstance(model.training, bool) and isinstance(model.meta, dict)
    inputs = compiled.example_inputs(batch=2)
    model(*inputs).sum().backward()  # trains
    result = export_python(Project(b.graph, "clash"), tmp_path / "m.py")
    spec = importlib.util.spec_from_file_location(f"exported_{tmp_path.name}", result.source)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    exported = getattr(mod, result.class_name)().load_weights(result.weights).eval()
    load_weights(model, result.weights)
    model.eval()
    with torch.no_grad():
        assert torch.allclose(exported(*inputs), model(*inputs))


@pytest.mark.parametrize("name", CLASHING)
def test_clashing_node_names_compile_train_and_export(name: str, tmp_path: Path) -> None:
    b = GraphBuilder()
    x = b.layer("Linear", b.input((6,), name="x"), out_features=5, name=name)
    b.output(b.layer("ReLU", x, name=f"{name}_"), name="out")
    _check_compiles_trains_exports(b, tmp_path)


@pytest.mark.parametrize("name", CLASHING)
def test_clashing_input_names_compile_train_and_export(name: str, tmp_path: Path) -> None:
    b = GraphBuilder()
    b.output(b.layer("Linear", b.input((6,), name=name), out_features=5, name="fc"), name="out")
    _check_compiles_trains_exports(b, tmp_path)


@pytest.mark.parametrize(("name", "arg"), [("getattr", "getattr"), ("input", "input"), ("torch", "torch_"),
                                         ("device", "device_"), ("inf", "inf_")])
def test_forward_arguments_avoid_the_globals_of_forward(name: str, arg: str) -> None:
    """forward's code refers to torch, and fx's own globals (device, inf): an argument may not
    shadow them; other names stay as typed (they become ONNX input names)."""
    b = GraphBuilder()
    b.output(b.layer("PositionalEncoding", b.input(("T", 8), name=name), name="pe"))
    compiled = compile_graph(b.graph)
    assert compiled.module(torch.zeros(2, 3, 8)).shape == (2, 3, 8)
    assert [s.arg for s in compiled.inputs] == [arg]


def test_clashing_names_inside_a_block() -> None:
    """A block instance compiles to a nested GraphModule: the same names must be safe there."""
    lib = BlockLibrary()

    def build(b: GraphBuilder) -> None:
        x = b.layer("Linear", b.input((4,), name="getattr"), out_features=4, name="meta")
        b.output(b.layer("ReLU", x, name="training"), name="_modules")

    define_block(lib, "Odd", "Odd", build)
    g = Graph(lib)
    b = GraphBuilder(g)
    b.output(b.layer("Odd", b.input((4,), name="x"), name="_parameters"))
    compiled = compile_graph(g)
    assert compiled.module(torch.randn(2, 4)).shape == (2, 4)
    assert "_parameters_.meta_.weight" in compiled.module.state_dict()


@pytest.mark.parametrize("value", [2**24 + 1, 2**31, 2**63, 10**21])
def test_absurd_sizes_are_refused_with_the_parameter(value: int) -> None:
    doc = json.loads((SAMPLES / "digits_mlp.json").read_text())
    doc["graph"]["nodes"][1]["params"]["out_features"] = value
    with pytest.raises(ProjectError) as info:
        loads_project(json.dumps(doc))
    assert info.value.path == "graph.nodes[1].params.out_features"
    assert "expected an int in [1, 16,777,216]" in str(info.value)


@pytest.mark.parametrize(("layer", "key", "value"), [
    ("Conv2d", "kernel_size", [2**40, 1]), ("Conv2d", "padding", 2**31), ("Reshape", "shape", [2**63]),
    ("Unflatten", "sizes", [1] * 9), ("AdaptiveAvgPool2d", "output_size", [2**30, 2]),
])
def test_absurd_tuples_are_refused(layer: str, key: str, value: object) -> None:
    with pytest.raises(ParamError) as info:
        Graph().add_node(layer, {key: value}, name="n")
    assert info.value.param == key and info.value.node == "n"


@pytest.mark.parametrize("shape", [[2**63], [1, 2**24 + 1], ["中文"], ["class"], ["batch"], [1] * 9])
def test_absurd_input_shapes_are_refused(shape: list) -> None:
    with pytest.raises(ParamError) as info:
        Graph().add_node("Input", {"shape": shape}, name="x")
    assert info.value.param == "shape"


@pytest.mark.parametrize("name", ["\ud800", "a\udfffb", "\x1b[31mred", "a\nb", "tab\there", "\x85", "\x7f"])
def test_node_names_refuse_surrogates_and_control_characters(name: str) -> None:
    g = Graph()
    with pytest.raises(NameConflictError, match="node name"):
        g.add_node("ReLU", name=name)
    node = g.add_node("ReLU", name="ok")
    with pytest.raises(NameConflictError):
        g.rename(node.id, name)
    assert g.node(node.id).name == "ok"


def _doc() -> dict:
    return json.loads((SAMPLES / "digits_resnet.json").read_text())


@pytest.mark.parametrize(("where", "value", "path"), [
    (lambda d, v: d["graph"]["nodes"][2].update(name=v), "x\ud800", "graph.nodes[2].name"),
    (lambda d, v: d["graph"]["nodes"][2].update(name=v), "\x1b]0;owned\x07", "graph.nodes[2].name"),
    (lambda d, v: d["graph"]["nodes"][2].update(id=v), "n\x1b", "graph.nodes[2].id"),
    (lambda d, v: d.update(name=v), "\ud800", "name"),
    (lambda d, v: d.update(name=v), "a\x1b[2Jb", "name"),
    (lambda d, v: d.update(description=v), "line\ud800", "description"),
    (lambda d, v: d.update(description=v), "clear \x1b[2J", "description"),
    (lambda d, v: d["blocks"]["ResBlock"].update(name=v), "\udc00", "blocks.ResBlock.name"),
    (lambda d, v: d["blocks"]["ResBlock"].update(doc=v), "\x1b[1m", "blocks.ResBlock.doc"),
    (lambda d, v: d["blocks"]["ResBlock"]["graph"]["nodes"][1].update(name=v), "\ud800",
     "blocks.ResBlock.graph.nodes[1].name"),
    (lambda d, v: d["data"].update(path=v), "\ud800.csv", "data.path"),
])
def test_loading_refuses_bad_text_by_json_path(where, value: str, path: str) -> None:  # type: ignore[no-untyped-def]
    doc = _doc()
    where(doc, value)
    with pytest.raises(ProjectError) as info:
        loads_project(json.dumps(doc))  # JSON escapes carry the lone surrogate, as a hand-edited file may
    assert info.value.path == path


def test_descriptions_keep_line_breaks_and_tabs() -> None:
    doc = _doc()
    doc["description"] = "first line\n\tindented"
    doc["blocks"]["ResBlock"]["doc"] = "two\nlines"
    project = loads_project(json.dumps(doc))
    assert project.description == "first line\n\tindented"
    project.to_json().encode("utf-8")


def test_block_names_and_ids() -> None:
    lib = BlockLibrary()
    define_block(lib, "Ok", "Ok", lambda b: b.output(b.layer("ReLU", b.input((4,)))))
    with pytest.raises(BlockError, match="surrogate"):
        lib.set_info("Ok", name="\ud800")
    with pytest.raises(BlockError, match="control character"):
        lib.set_info("Ok", doc="\x1b[2J")
    assert lib.defs["Ok"].name == "Ok"
    with pytest.raises(BlockError):
        lib.validate_id("Res\n")  # `$` matched before a trailing newline
    doc = _doc()
    doc["blocks"]["ResBlock\n"] = doc["blocks"].pop("ResBlock")
    with pytest.raises(ProjectError):
        loads_project(json.dumps(doc))


@pytest.mark.parametrize("section", ["data", "training"])
def test_seeds_beyond_what_torch_takes_are_refused(section: str) -> None:
    """torch.manual_seed(2**63) raised "Overflow when unpacking long long" at the first step."""
    doc = json.loads((SAMPLES / "digits_mlp.json").read_text())
    doc[section]["seed"] = 2**63
    with pytest.raises(ProjectError) as info:
        loads_project(json.dumps(doc))
    assert info.value.path == f"{section}.seed"
    doc[section]["seed"] = 2**32 - 1
    loads_project(json.dumps(doc))
