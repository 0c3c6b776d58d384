"""Reusable blocks: group, ungroup, edit inside, exposed parameters, files, errors, export."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import onnxruntime as ort
import pytest
import torch
from torch import nn

from workbench.block_io import block_file_dict, import_block_file, read_block_file, save_block_file
from workbench.blocks import BlockError
from workbench.builder import GraphBuilder
from workbench.cli import main as cli
from workbench.compiler import compile_graph
from workbench.errors import CycleError, PortError, ProjectError
from workbench.export.onnx_export import export_onnx
from workbench.grouping import Grouping, Ungrouping, group, ungroup
from workbench.importers.onnx_import import import_onnx
from workbench.project import Project, load_project, loads_project, project_from_dict, save_project
from workbench.ready_blocks import add_ready, ready_library
from workbench.shapes import ShapeInference, infer

ROOT = Path(__file__).resolve().parents[2]
CNN = ROOT / "samples" / "digits_cnn.json"
RESNET = ROOT / "samples" / "digits_resnet.json"


def _same_weights(src: nn.Module, dst: nn.Module, rename: dict[str, str]) -> None:
    """Copy ``src``'s state into ``dst`` whose keys are ``src``'s, renamed by prefix."""
    state = src.state_dict()
    mapped = {}
    for key in dst.state_dict():
        old = key
        for new_prefix, old_prefix in rename.items():
            if key.startswith(new_prefix):
                old = old_prefix + key[len(new_prefix):]
        mapped[key] = state[old]
    dst.load_state_dict(mapped)


def _outputs(module: nn.Module, *xs: torch.Tensor) -> torch.Tensor:
    module.eval()
    with torch.no_grad():
        return module(*xs)


# --------------------------------------------------------------------------- group and ungroup


def test_grouping_keeps_the_computation_and_names_the_weights_after_the_block() -> None:
    project = load_project(CNN)
    g = project.graph
    before = compile_graph(g)
    names = ["conv2", "bn2", "relu2"]
    block, nid = group(g, [g.by_name(n).id for n in names], "Conv unit", "unit")
    assert block.id == "ConvUnit" and g.nodes[nid].name == "unit"
    assert {n.name for n in g} & set(names) == set()
    # the inside keeps the layers' names and gets one Input and one Output
    assert [n.name for n in block.graph] == ["x", "conv2", "bn2", "relu2", "y"]
    after = compile_graph(g)
    assert after.total_params == before.total_params
    keys = list(after.module.state_dict())
    assert "unit.conv2.weight" in keys and "unit.bn2.running_mean" in keys
    _same_weights(before.module, after.module, {"unit.": ""})
    x = torch.randn(5, 1, 8, 8)
    torch.testing.assert_close(_outputs(after.module, x), _outputs(before.module, x), rtol=0, atol=0)
    assert isinstance(after.module.unit, torch.fx.GraphModule)  # generated code, no interpreter
    assert "self.unit(" in after.module.code


def test_group_then_undo_restores_an_identical_project_and_redo_repeats_it() -> None:
    project = load_project(RESNET)
    start = project.to_json()
    g = project.graph
    change = Grouping(g, [g.by_name(n).id for n in ("stem", "stem_bn", "stem_relu")], "Stem")
    nid = change.apply()
    grouped = project.to_json()
    change.revert()
    assert project.to_json() == start
    assert change.apply() == nid  # the same node id again (later undo steps refer to it)
    assert project.to_json() == grouped


def test_ungroup_replaces_the_instance_by_its_layers_with_its_parameter_values() -> None:
    project = load_project(RESNET)
    g = project.graph
    before = compile_graph(g)
    g.set_params(g.by_name("block2").id, {"channels": 32})
    change = Ungrouping(g, g.by_name("block1").id)
    start = project.to_json()
    ids = change.apply()
    assert len(ids) == 7 and "ResBlock" in project.blocks  # the block stays in the library
    names = {g.nodes[i].name for i in ids}
    assert names == {"conv1", "bn1", "relu1", "conv2", "bn2", "add", "relu2"}
    assert g.by_name("conv1").params["out_channels"] == 32
    after = compile_graph(g)
    inner = {f"{n}.": f"block1.{n}." for n in names}
    _same_weights(before.module, after.module, inner)
    x = torch.randn(3, 1, 8, 8)
    torch.testing.assert_close(_outputs(after.module, x), _outputs(before.module, x), rtol=0, atol=0)
    change.revert()
    assert project.to_json() == start
    # ungrouping the second block where the first one's layer names are taken prefixes them
    change.apply()
    ids2 = ungroup(g, g.by_name("block2").id)
    assert {g.nodes[i].name for i in ids2} >= {"block2_conv1", "block2_add"}


def test_a_selection_with_several_inputs_and_outputs_becomes_a_block_with_several_ports() -> None:
    project = Project()
    b = GraphBuilder(project.graph)
    a = b.input((8,), name="a")
    c = b.input((8,), name="c")
    s = b.layer("Add", a, c, name="sum")
    h = b.layer("Linear", s, out_features=8, name="fc")
    m = b.layer("Multiply", h, a, name="gate")
    b.output(b.layer("ReLU", h, name="act"), name="out1")
    b.output(m, name="out2")
    g = project.graph
    before = compile_graph(g)
    _, nid = group(g, [g.by_name(n).id for n in ("sum", "fc", "gate")], "Gate")
    spec = g.nodes[nid].spec
    assert spec.inputs == ("x1", "x2") and spec.outputs == ("y1", "y2")
    # "a" feeds two nodes inside but is one port
    assert [e.src for e in g.edges_into(nid)] == [g.by_name("a").id, g.by_name("c").id]
    after = compile_graph(g)
    _same_weights(before.module, after.module, {f"{g.nodes[nid].name}.": ""})
    xs = (torch.randn(4, 8), torch.randn(4, 8))
    for y0, y1 in zip(_outputs(before.module, *xs), _outputs(after.module, *xs), strict=True):
        torch.testing.assert_close(y0, y1, rtol=0, atol=0)
    ungroup(g, nid)
    again = compile_graph(g)
    assert again.total_params == before.total_params


def test_grouping_refusals_say_why() -> None:
    project = load_project(CNN)
    g = project.graph
    with pytest.raises(BlockError, match='the selection has a gap: "pool1"'):
        Grouping(g, [g.by_name("relu1").id, g.by_name("conv2").id])
    with pytest.raises(BlockError, match='Input "image" cannot go into a block'):
        Grouping(g, [g.by_name("image").id, g.by_name("conv1").id])
    with pytest.raises(BlockError, match="select the nodes"):
        Grouping(g, [])
    with pytest.raises(BlockError, match='"fc" is a Linear, not a block'):
        Ungrouping(g, g.by_name("fc").id)
    g.disconnect(g.edge_into(g.by_name("conv2").id, "x"))
    with pytest.raises(BlockError, match='shape coming from "conv2" is not known'):
        Grouping(g, [g.by_name("bn2").id])


# --------------------------------------------------------------------------- editing a definition


def test_editing_inside_a_block_updates_every_instance_live() -> None:
    project = load_project(RESNET)
    g = project.graph
    si = ShapeInference(g)  # follows the graph, as the editor's does
    b1, b2, gap = (g.by_name(n).id for n in ("block1", "block2", "gap"))
    assert si.info(b1).params == 18_560
    inner = project.blocks.defs["ResBlock"].graph
    conv1 = inner.by_name("conv1").id
    inner.set_params(conv1, {"bias": True})  # an edit inside the definition
    assert si.info(b1).params == si.info(b2).params == 18_560 + 32
    assert si.total_params() == infer(g).total_params()
    # a shape change inside reaches everything downstream of every instance
    inner.set_params(inner.by_name("conv2").id, {"padding": [0, 0]})
    assert si.info(b1).status == "error"
    assert 'inside the block, Add "add"' in str(si.info(b1).error)
    assert si.info(gap).status == "unknown"
    inner.set_params(inner.by_name("conv2").id, {"padding": [1, 1]})
    assert si.info(gap).status == "ok"


def test_exposed_parameters_set_their_targets_per_instance() -> None:
    project = Project()
    add_ready(project.blocks, ["ConvBNReLU"])
    b = GraphBuilder(project.graph)
    x = b.input((3, 16, 16), name="image")
    x = b.layer("ConvBNReLU", x, channels=8, name="a")
    x = b.layer("ConvBNReLU", x, channels=24, stride=[2, 2], kernel_size=[5, 5], padding=[2, 2], name="b")
    b.output(x)
    si = infer(project.graph)
    g = project.graph
    assert si.info(g.by_name("a").id).outputs["y"] == ("N", 8, 16, 16)
    assert si.info(g.by_name("b").id).outputs["y"] == ("N", 24, 8, 8)
    assert si.info(g.by_name("b").id).params == 8 * 24 * 25 + 2 * 24
    module = compile_graph(g).module
    assert module.b.conv.stride == (2, 2) and module.b.conv.out_channels == 24
    assert module(torch.randn(2, 3, 16, 16)).shape == (2, 24, 8, 8)


def test_exposing_and_unexposing_keep_instances_valid_and_can_be_reverted() -> None:
    project = load_project(RESNET)
    lib, g = project.blocks, project.graph
    block = lib.defs["ResBlock"]
    bn1 = block.graph.by_name("bn1").id
    old = lib.expose("ResBlock", bn1, "momentum", "bn_momentum")
    assert [p.name for p in g.by_name("block1").spec.params] == ["channels", "bn_momentum"]
    assert g.by_name("block1").params["bn_momentum"] == 0.1  # the value inside is the default
    g.set_params(g.by_name("block1").id, {"bn_momentum": 0.01})
    assert compile_graph(g).module.block1.bn1.momentum == 0.01
    assert compile_graph(g).module.block2.bn1.momentum == 0.1
    olds = lib.set_params("ResBlock", old)  # back to the old list: the instances lose the key
    assert "bn_momentum" not in g.by_name("block1").params
    lib.expose("ResBlock", bn1, "momentum", "bn_momentum")  # what undo does: the list, then the values
    lib.restore_instance_params(olds)
    assert g.by_name("block1").params["bn_momentum"] == 0.01
    # a second target of the same kind joins an existing parameter; another kind is refused
    lib.expose("ResBlock", block.graph.by_name("bn2").id, "momentum", "bn_momentum")
    assert compile_graph(g).module.block1.bn2.momentum == 0.01
    with pytest.raises(BlockError, match="different kinds"):
        lib.expose("ResBlock", block.graph.by_name("bn2").id, "affine", "channels")
    with pytest.raises(BlockError, match="its shape comes from the instance"):
        lib.expose("ResBlock", block.graph.by_name("x").id, "shape", "shape")
    lib.unexpose("ResBlock", bn1, "momentum")
    assert compile_graph(g).module.block1.bn1.momentum == 0.1  # back to the value inside


def test_edits_that_would_break_an_instance_are_refused_with_the_reason() -> None:
    project = load_project(RESNET)
    lib = project.blocks
    inner = lib.defs["ResBlock"].graph
    with pytest.raises(PortError, match='"x" is the input port of ResBlock, wired at "block1" in the model'):
        inner.remove_node(inner.by_name("x").id)
    with pytest.raises(PortError, match="renaming \"y\" renames a port of ResBlock"):
        inner.rename(inner.by_name("y").id, "out")
    with pytest.raises(BlockError, match='"conv1" sets the block parameter "channels"'):
        inner.remove_node(inner.by_name("conv1").id)
    assert inner.can_remove([inner.by_name("conv1").id]) is not None
    with pytest.raises(CycleError, match='the block "ResBlock" cannot contain itself'):
        inner.add_node("ResBlock")
    with pytest.raises(BlockError, match='used by "block1" in the model and 1 more'):
        lib.remove("ResBlock")
    # renaming an inner layer or an unwired port is fine
    inner.rename(inner.by_name("relu2").id, "final")
    lib.defs["ResBlock"].graph.add_node("Input", {"shape": [32, 8, 8]}, "spare")
    inner.rename(inner.by_name("spare").id, "extra")
    assert project.graph.by_name("block1").input_ports == ("x", "extra")
    errors = infer(project.graph).errors()
    assert [str(e) for e in errors] == ['ResNet basic block "block1": input \'extra\' is not connected',
                                        'ResNet basic block "block2": input \'extra\' is not connected']


def test_an_error_inside_names_the_inner_node_and_the_exposed_parameter() -> None:
    project = Project()
    add_ready(project.blocks, ["EncoderBlock", "ResBlock"])
    b = GraphBuilder(project.graph)
    x = b.input(("T", 64), name="tokens")
    b.output(b.layer("EncoderBlock", x, heads=5, name="enc"))
    [err] = infer(project.graph).errors()
    assert str(err).startswith('Transformer encoder block (pre-norm) "enc": inside the block, Self-Attention '
                               '"attention": num_heads=5 must divide the embedding size 64')
    assert err.node == "enc" and err.param == "heads"
    project.graph.set_params(project.graph.by_name("enc").id, {"heads": 8})
    assert infer(project.graph).errors() == []


def test_blocks_nest_and_a_block_cannot_contain_itself_through_another() -> None:
    project = load_project(RESNET)
    g = project.graph
    outer, nid = group(g, [g.by_name("block1").id, g.by_name("block2").id], "Stage")
    assert outer.id == "Stage" and g.nodes[nid].name == "stage1"
    assert project.blocks.dependencies("Stage") == {"ResBlock"}
    compiled = compile_graph(g)
    assert "stage1.block1.conv1.weight" in compiled.module.state_dict()
    assert compiled.module(torch.randn(2, 1, 8, 8)).shape == (2, 10)
    with pytest.raises(CycleError, match='cannot contain "Stage", which contains it'):
        project.blocks.defs["ResBlock"].graph.add_node("Stage")
    text = project.to_json()
    assert loads_project(text).to_json() == text


# --------------------------------------------------------------------------- files


def test_a_project_with_blocks_saves_reloads_and_compiles_to_the_same_module(tmp_path: Path) -> None:
    project = load_project(RESNET)
    add_ready(project.blocks, ["EncoderBlock"])  # an unused block is kept too
    path = save_project(project, tmp_path / "p.json")
    again = load_project(path)
    assert again.to_json() == project.to_json()
    a, b = compile_graph(project.graph), compile_graph(again.graph)
    assert a.module.code == b.module.code and a.module.block1.code == b.module.block1.code
    b.module.load_state_dict(a.module.state_dict())
    x = torch.randn(4, 1, 8, 8)
    torch.testing.assert_close(_outputs(a.module, x), _outputs(b.module, x), rtol=0, atol=0)
    assert list(again.blocks.defs) == ["ResBlock", "EncoderBlock"]


@pytest.mark.parametrize(("mutate", "expected"), [
    (lambda d: d["blocks"]["ResBlock"]["graph"]["nodes"][1]["params"].update(out_channels=0),
     "blocks.ResBlock.graph.nodes[1].params.out_channels: expected a positive int"),
    (lambda d: d["blocks"].update(Conv2d=d["blocks"]["ResBlock"]),
     "blocks.Conv2d: \"Conv2d\" is a layer type of the catalogue"),
    (lambda d: d["blocks"]["ResBlock"]["params"][0]["targets"].append(["n99", "out_channels"]),
     "blocks.ResBlock.params: the block parameter \"channels\" targets no node with id 'n99'"),
    (lambda d: d["blocks"]["ResBlock"]["graph"]["nodes"].append({"id": "z", "type": "ResBlock", "name": "me"}),
     "blocks.ResBlock.graph: the block contains itself: ResBlock -> ResBlock"),
    (lambda d: d["graph"]["nodes"][4].update(type="ResBlok"), "graph.nodes[4].type: unknown layer type 'ResBlok'"),
    (lambda d: d["graph"]["nodes"][4]["params"].update(channels=-3),
     "graph.nodes[4].params.channels: expected a positive int, got -3"),
    (lambda d: d["blocks"]["ResBlock"].update(extra=1), "blocks.ResBlock.extra: unknown key"),
])
def test_block_errors_in_a_project_name_the_json_path(mutate: Any, expected: str) -> None:
    doc = json.loads(RESNET.read_text())
    mutate(doc)
    with pytest.raises(ProjectError) as exc:
        project_from_dict(doc)
    assert str(exc.value).startswith(expected), str(exc.value)


def test_block_files_round_trip_and_merge_without_clobbering(tmp_path: Path) -> None:
    project = load_project(RESNET)
    g = project.graph
    group(g, [g.by_name("block1").id, g.by_name("block2").id], "Stage")
    path = save_block_file(project.blocks, "Stage", tmp_path / "stage.json")
    doc = json.loads(path.read_text())
    assert doc["format"] == "neural-workbench-block" and list(doc["blocks"]) == ["ResBlock", "Stage"]
    lib, bid = read_block_file(path)
    assert bid == "Stage" and lib.defs["Stage"].to_dict() == project.blocks.defs["Stage"].to_dict()
    # into a project without it: both blocks arrive
    other = load_project(CNN)
    assert import_block_file(path, other.blocks) == ("Stage", ["ResBlock", "Stage"])
    # into a project whose ResBlock differs: that one is copied as ResBlock2 and Stage uses it
    changed = load_project(RESNET)
    inner = changed.blocks.defs["ResBlock"].graph
    inner.set_params(inner.by_name("conv1").id, {"bias": True})
    new_id, added = import_block_file(path, changed.blocks)
    assert new_id == "Stage" and added == ["ResBlock2", "Stage"]
    assert {n.type for n in changed.blocks.defs["Stage"].graph if n.spec.role == "layer"} == {"ResBlock2"}
    # importing the same file again adds nothing
    assert import_block_file(path, changed.blocks) == ("Stage", [])
    assert block_file_dict(changed.blocks, "Stage")["blocks"]["ResBlock2"]["name"] == "ResNet basic block"


def test_bad_block_files_give_located_errors(tmp_path: Path) -> None:
    bad = tmp_path / "b.json"
    bad.write_text(json.dumps({"format": "neural-workbench-block", "version": 1, "block": "A",
                               "blocks": {"A": {"graph": {"nodes": [{"id": "n1", "type": "B", "name": "b"}]}},
                                          "B": {"graph": {"nodes": [{"id": "n1", "type": "A", "name": "a"}]}}}}))
    with pytest.raises(ProjectError, match=r"b.json: blocks.A.graph: the block contains itself: A -> B -> A"):
        read_block_file(bad)
    bad.write_text(json.dumps({"format": "neural-workbench-project", "version": 3}))
    with pytest.raises(ProjectError, match="format: expected 'neural-workbench-block'"):
        read_block_file(bad)
    bad.write_text(json.dumps({"format": "neural-workbench-block", "version": 9, "block": "A", "blocks": {}}))
    with pytest.raises(ProjectError, match="newer Neural Workbench"):
        read_block_file(bad)
    bad.write_text(json.dumps({"format": "neural-workbench-block", "version": 1, "block": "Z", "blocks": {}}))
    with pytest.raises(ProjectError, match="block: expected the id of one of the file's blocks"):
        read_block_file(bad)
    with pytest.raises(ProjectError, match="cannot read the file"):
        read_block_file(tmp_path / "missing.json")


# --------------------------------------------------------------------------- ready blocks and export


@pytest.mark.parametrize("block_id", list(ready_library().defs))
def test_ready_blocks_infer_what_torch_computes(block_id: str) -> None:
    project = Project()
    add_ready(project.blocks, [block_id])
    spec = project.blocks.defs[block_id]
    example = spec.graph.inputs()[0].params["shape"]
    shape = [5 if d == "T" else d for d in example]
    b = GraphBuilder(project.graph)
    b.output(b.layer(block_id, b.input(shape, name="x"), name="blk"))
    si = infer(project.graph)
    assert si.errors() == []
    compiled = compile_graph(project.graph)
    y = compiled.module(torch.randn(3, *shape))
    assert tuple(y.shape) == (3, *si.info(project.graph.by_name("blk").id).outputs["y"][1:])
    assert sum(p.numel() for p in compiled.module.parameters()) == si.total_params()


def test_the_encoder_block_matches_torchs_pre_norm_encoder_layer_count() -> None:
    project = Project()
    add_ready(project.blocks, ["EncoderBlock"])
    b = GraphBuilder(project.graph)
    b.output(b.layer("EncoderBlock", b.input(("T", 96)), d_model=96, dim_feedforward=384, heads=6))
    reference = nn.TransformerEncoderLayer(96, 6, 384, activation="gelu", norm_first=True, batch_first=True)
    assert infer(project.graph).total_params() == sum(p.numel() for p in reference.parameters())


def test_blocks_export_to_onnx_and_reimport_losslessly(tmp_path: Path) -> None:
    project = load_project(RESNET)
    g = project.graph
    group(g, [g.by_name("block1").id, g.by_name("block2").id], "Stage")  # nested blocks
    report = export_onnx(project, tmp_path / "m.onnx")
    assert report.max_abs < 1e-4
    back = import_onnx(tmp_path / "m.onnx")
    assert back.lossless
    assert back.project.blocks.to_dict() == project.blocks.to_dict()
    assert back.project.graph.to_dict() == project.graph.to_dict()
    compiled = compile_graph(back.project.graph)
    compiled.module.load_state_dict(back.tensors)
    x = torch.randn(3, 1, 8, 8)
    session = ort.InferenceSession(str(tmp_path / "m.onnx"), providers=["CPUExecutionProvider"])
    np.testing.assert_allclose(_outputs(compiled.module, x).numpy(), session.run(None, {"image": x.numpy()})[0],
                               atol=1e-5)


# --------------------------------------------------------------------------- command line


def test_cli_groups_exposes_exports_imports_and_ungroups(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    proj = tmp_path / "cnn.json"
    proj.write_text(CNN.read_text())
    p = str(proj)
    assert cli(["block", "group", p, "conv1", "bn1", "relu1", "--name", "Conv unit", "--instance", "unit"]) == 0
    assert cli(["block", "expose", p, "ConvUnit", "conv1", "out_channels", "--as", "channels"]) == 0
    project = load_project(proj)
    assert project.graph.by_name("unit").params == {"channels": 16}
    assert cli(["block", "export", p, "ConvUnit", "-o", str(tmp_path / "unit.json")]) == 0
    assert cli(["block", "ungroup", p, "unit"]) == 0
    assert cli(["block", "remove", p, "ConvUnit"]) == 0
    assert cli(["block", "import", p, str(tmp_path / "unit.json")]) == 0
    assert cli(["block", "add", p, "ResBlock"]) == 0
    capsys.readouterr()
    assert cli(["block", "list", p, "--json"]) == 0
    listed = json.loads(capsys.readouterr().out)
    assert [b["id"] for b in listed] == ["ConvUnit", "ResBlock"]
    assert listed[0]["params"] == [{"name": "channels", "kind": "int", "default": 16}]
    capsys.readouterr()
    assert cli(["block", "group", p, "relu1", "conv2"]) == 1
    assert "the selection has a gap" in capsys.readouterr().err
    assert cli(["block", "add", p, "NoSuchBlock"]) == 2
    assert cli(["block", "ungroup", p, "fc", "--graph", "critic"]) == 1
    assert "no 'critic' graph" in capsys.readouterr().err
    assert cli(["check", p]) == 0


def test_a_value_one_target_refuses_is_an_error_on_the_instance_naming_the_parameter() -> None:
    from workbench.blocks import define_block

    project = Project()

    def build(b: GraphBuilder) -> None:
        x = b.layer("LeakyReLU", b.input((8,), name="x"), name="act")
        b.output(b.layer("Dropout", x, name="drop"), name="y")

    # one parameter sets a slope (any number >= 0) and a drop probability (at most 0.99)
    define_block(project.blocks, "Noisy", "Noisy", build, {"amount": [("act", "negative_slope"), ("drop", "p")]})
    b = GraphBuilder(project.graph)
    b.output(b.layer("Noisy", b.input((8,)), amount=1.5, name="n1"))
    [err] = infer(project.graph).errors()
    assert err.node == "n1" and err.param == "amount"
    assert str(err) == ('Noisy "n1": amount=1.5 does not suit "drop".p inside the block: expected a number in '
                        "[0.0, 0.99], got 1.5")
    project.graph.set_params(project.graph.by_name("n1").id, {"amount": 0.5})
    assert infer(project.graph).errors() == []


def test_check_reports_blocks_and_problems_inside_unused_ones(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    project = load_project(RESNET)
    add_ready(project.blocks, ["ConvBNReLU"])
    inner = project.blocks.defs["ConvBNReLU"].graph
    inner.disconnect(inner.edge_into(inner.by_name("bn").id, "x"))  # broken, but nothing uses it
    path = save_project(project, tmp_path / "p.json")
    assert cli(["check", str(path), "--json"]) == 0  # the model is fine: exit 0
    report = json.loads(capsys.readouterr().out)
    assert [(b["id"], b["uses"]) for b in report["blocks"]] == [("ResBlock", ["block1", "block2"]), ("ConvBNReLU", [])]
    assert report["blocks"][1]["errors_inside"] == ['BatchNorm2d "bn": its input is not connected']
    assert report["warnings"][-1]["message"].startswith("block ConvBNReLU (with its example inputs): BatchNorm2d")


def test_make_unique_gives_one_instance_its_own_copy_and_reverts() -> None:
    from workbench.grouping import MakeUnique

    project = load_project(RESNET)
    g = project.graph
    start = project.to_json()
    block2 = g.by_name("block2").id
    change = MakeUnique(g, block2)
    assert change.apply() == "ResBlock2"
    assert g.nodes[block2].type == "ResBlock2" and g.nodes[block2].params == {"channels": 32}
    assert project.blocks.defs["ResBlock2"].name == "ResNet basic block (copy)"
    inner = project.blocks.defs["ResBlock2"].graph
    inner.set_params(inner.by_name("conv1").id, {"bias": True})  # reaches block2 only
    si = infer(g)
    assert si.info(block2).params == si.info(g.by_name("block1").id).params + 32
    inner.set_params(inner.by_name("conv1").id, {"bias": False})
    change.revert()
    assert project.to_json() == start
    with pytest.raises(BlockError, match="not a block"):
        MakeUnique(g, g.by_name("stem").id)
