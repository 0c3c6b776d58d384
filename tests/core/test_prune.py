"""Pruning (workbench.compress.prune, .channels): structured pruning removes whole channels and gives
the model a removed channel's absence would give (checked against the original with those channels
cut off), joins what a residual Add ties, refuses with the node that stops it; unstructured pruning
reports its sparsity and, measured, that it neither shrinks the dense file nor speeds it up."""

from __future__ import annotations

import json
import re
import zlib
from pathlib import Path
from typing import Any

import pytest
import torch
from safetensors.torch import save as save_bytes

from workbench.builder import GraphBuilder
from workbench.cli import main
from workbench.compiler import compile_graph
from workbench.compress.channels import channel_groups, importance, keep_count, slice_state
from workbench.compress.evaluate import count_macs, load_eval_data
from workbench.compress.prune import prune_structured, prune_unstructured, recalibrate_batchnorm
from workbench.compress.report import CompressError, ResultRefused
from workbench.config import DATA_FIELDS, TRAINING_FIELDS, validate_section
from workbench.errors import OutputError
from workbench.graph import Graph
from workbench.project import Project, load_project, save_project
from workbench.ready_blocks import add_ready
from workbench.training import Trainer
from workbench.weights import apply_state, read_checkpoint, read_tensors, state_tensors


def cnn() -> Graph:
    b = GraphBuilder()
    x = b.input((1, 8, 8), name="image")
    x = b.layer("ReLU", b.layer("BatchNorm2d", b.layer("Conv2d", x, out_channels=8, padding=[1, 1], name="conv1"),
                                name="bn1"))
    x = b.layer("MaxPool2d", x, kernel_size=[2, 2], name="pool1")
    x = b.layer("ReLU", b.layer("BatchNorm2d", b.layer("Conv2d", x, out_channels=12, padding=[1, 1], name="conv2"),
                                name="bn2"))
    x = b.layer("Flatten", x, name="flatten")
    x = b.layer("ReLU", b.layer("Linear", x, out_features=16, name="fc"))
    b.output(b.layer("Linear", x, out_features=10, name="classifier"), name="logits")
    return b.graph


def residual() -> Graph:
    """conv_a's output is added to conv_b's: the two must keep the same channels."""
    b = GraphBuilder()
    x = b.input((1, 8, 8), name="image")
    a = b.layer("ReLU", b.layer("Conv2d", x, out_channels=6, padding=[1, 1], name="conv_a"), name="relu_a")
    y = b.layer("BatchNorm2d", b.layer("Conv2d", a, out_channels=6, padding=[1, 1], name="conv_b"), name="bn_b")
    s = b.layer("ReLU", b.layer("Add", y, a, name="add"), name="relu_s")
    x = b.layer("Flatten", b.layer("AdaptiveAvgPool2d", s, output_size=[2, 2]))
    b.output(b.layer("Linear", x, out_features=10, name="classifier"), name="logits")
    return b.graph


def _project(graph: Graph, folder: Path, name: str, epochs: int = 2) -> tuple[Project, Path]:
    folder.mkdir(parents=True, exist_ok=True)
    p = Project(graph, name, data=validate_section(DATA_FIELDS, {"dataset": "digits"}),
                training=validate_section(TRAINING_FIELDS, {"epochs": epochs, "lr": 0.01}))
    save_project(p, folder / f"{name}.json")
    torch.manual_seed(0)
    Trainer(p, run_dir=folder / "run").run()
    return p, folder / "run" / "checkpoints" / "last.safetensors"


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> tuple[Project, Path]:
    return _project(cnn(), tmp_path_factory.mktemp("cnn"), "cnn")


def _randomised(graph: Graph) -> tuple[Any, dict[str, torch.Tensor]]:
    torch.manual_seed(1)
    module = compile_graph(graph).module.eval()
    with torch.no_grad():  # BatchNorm statistics that are not the identity
        for m in module.modules():
            if isinstance(m, torch.nn.BatchNorm2d):
                m.running_mean.uniform_(-0.5, 0.5)
                m.running_var.uniform_(0.5, 2.0)
                m.weight.uniform_(0.5, 1.5)
    return module, state_tensors(module)


def _cut_off(graph: Graph, state: dict[str, torch.Tensor], keep: dict[int, Any]) -> dict[str, torch.Tensor]:
    """The original weights with the removed channels read by nobody: their sinks' weights zeroed."""
    out = {k: v.clone() for k, v in state.items()}
    for group, idx in keep.values():
        gone = torch.tensor([c for c in range(group.size) if c not in set(idx.tolist())], dtype=torch.long)
        for nid in group.sinks:
            out[f"{graph.nodes[nid].name}.weight"][:, gone] = 0
        for nid, block in group.flat_sinks:
            for c in gone.tolist():
                out[f"{graph.nodes[nid].name}.weight"][:, c * block:(c + 1) * block] = 0
    return out


def _prune_by_hand(graph: Graph, state: dict[str, torch.Tensor], amount: float) -> tuple[Graph, dict, dict]:
    groups = [g for g in channel_groups(graph) if g.prunable]
    keep = {}
    small = graph.copy()
    for i, g in enumerate(groups):
        k = keep_count(g.size, amount)
        keep[i] = (g, importance(graph, g, state, "l1").topk(k).indices.sort().values)
        for nid in g.producers:
            small.set_params(nid, {"out_channels": k})
    return small, keep, slice_state(graph, state, keep)


@pytest.mark.parametrize("build", [cnn, residual], ids=["chain", "residual"])
def test_the_pruned_model_computes_what_the_original_computes_without_those_channels(build: Any) -> None:
    graph = build()
    module, state = _randomised(graph)
    small, keep, sliced = _prune_by_hand(graph, state, 0.5)
    pruned = compile_graph(small).module.eval()
    apply_state(pruned, sliced, "sliced")  # strict: every tensor has the new model's shape
    reference = compile_graph(graph).module.eval()
    apply_state(reference, _cut_off(graph, state, keep), "cut off")
    x = torch.randn(16, 1, 8, 8)
    with torch.no_grad():
        assert torch.allclose(pruned(x), reference(x), atol=1e-5)
        assert not torch.allclose(pruned(x), module(x), atol=1e-3)  # the channels did matter
    sizes = sorted(g.size for g, _ in keep.values())
    assert sizes == ([8, 12] if build is cnn else [6])


def test_a_residual_add_prunes_both_sides_alike() -> None:
    graph = residual()
    (group,) = channel_groups(graph)
    names = {graph.nodes[n].name for n in group.producers}
    assert names == {"conv_a", "conv_b"} and group.prunable
    assert {graph.nodes[n].name for n in group.sinks} == {"conv_b"}
    assert {graph.nodes[n].name for n in group.members} == {"bn_b"}


def test_what_stops_pruning_is_named() -> None:
    b = GraphBuilder()
    x = b.input((1, 8, 8), name="image")
    c = b.layer("Conv2d", x, out_channels=4, padding=[1, 1], name="to_output")
    b.output(c, name="maps")
    d = b.layer("Conv2d", x, out_channels=1, padding=[1, 1], name="joined")
    b.output(b.layer("Add", d, x, name="skip"), name="sum")
    e = b.layer("Conv2d", x, out_channels=4, padding=[1, 1], name="softmaxed")
    b.output(b.layer("Softmax", e, dim=1, name="soft"), name="probs")
    reasons = {" ".join(sorted(b.graph.nodes[p].name for p in g.producers)): g.blockers
               for g in channel_groups(b.graph)}
    assert reasons["to_output"] == ['Output "maps" reads these channels: the model\'s output would change']
    assert 'Add "skip" joins these channels with Input "image"' in reasons["joined"][0]
    assert "Softmax \"soft\" reads these channels; pruning through Softmax is not supported" in reasons["softmaxed"]


def test_a_block_stops_pruning_with_a_hint(tmp_path: Path) -> None:
    p = Project()
    ids = add_ready(p.blocks, ["ResBlock"])
    b = GraphBuilder(p.graph)
    x = b.layer("Conv2d", b.input((1, 8, 8)), out_channels=8, padding=[1, 1], name="stem")
    x = b.layer(ids["ResBlock"], x, channels=8, name="block1")
    b.output(b.layer("Linear", b.layer("Flatten", x), out_features=10))
    (group,) = channel_groups(p.graph)
    assert group.blockers == ['block "block1" (ResBlock) reads these channels: ungroup it (Edit > Ungroup Block) to '
                              "prune through it"]


def test_structured_pruning_writes_a_smaller_editable_project(trained: tuple[Project, Path], tmp_path: Path) -> None:
    project, ckpt = trained
    out = tmp_path / "small.json"
    report = prune_structured(project, out, ckpt, 0.5, threads=1)
    small = load_project(out)  # an ordinary project: it loads, compiles, and its weights fit it
    assert small.weights == "small.safetensors"
    assert [small.graph.by_name(n).params["out_channels"] for n in ("conv1", "conv2")] == [4, 6]
    module = compile_graph(small.graph).module
    apply_state(module, read_tensors(tmp_path / "small.safetensors"), "written")
    # what the report says is what the files are
    macs_before = count_macs(compile_graph(project.graph).module, (torch.zeros(1, 1, 8, 8),))
    assert report.row("MACs per sample").before == macs_before
    assert report.row("MACs per sample").after == count_macs(module, (torch.zeros(1, 1, 8, 8),))
    # conv1 1->8 (64 px) + conv2 8->12 (16 px) + fc 192->16 + classifier, by hand
    assert macs_before == 8 * 9 * 64 + 12 * 8 * 9 * 16 + 192 * 16 + 16 * 10
    assert report.row("MACs per sample").change < 0.55
    assert report.row("parameters").after == sum(t.numel() for k, t in module.state_dict().items()
                                                 if "running" not in k and "num_batches" not in k)
    assert {r["node"]: r["channels"] for r in report.nodes} == {"conv1": "8 -> 4", "conv2": "12 -> 6"}
    assert any("re-estimated" in n for n in report.notes)
    assert report.outputs == [str(out), str(tmp_path / "small.safetensors")]


def test_batchnorm_statistics_are_re_estimated_on_the_training_split(trained: tuple[Project, Path]) -> None:
    project, ckpt = trained
    compiled = compile_graph(project.graph)
    apply_state(compiled.module, read_checkpoint(ckpt)[0], "ckpt")
    data = load_eval_data(project, compiled)
    seen = []
    compiled.module.bn2.register_forward_hook(lambda m, a, o: seen.append(a[0].detach()))
    assert recalibrate_batchnorm(compiled.module, data) == 2
    x = torch.cat(seen)
    assert torch.allclose(compiled.module.bn2.running_mean, x.mean((0, 2, 3)), atol=1e-5)
    assert torch.allclose(compiled.module.bn2.running_var, x.var((0, 2, 3)), rtol=0.05)  # batches' variances
    assert compiled.module.bn2.momentum == 0.1 and not compiled.module.training


def test_nodes_criterion_and_linear_choose_what_is_pruned(trained: tuple[Project, Path], tmp_path: Path) -> None:
    project, ckpt = trained
    only = prune_structured(project, tmp_path / "a.json", ckpt, 0.5, nodes=["conv2"], threads=1)
    assert {r["node"]: r["channels"] for r in only.nodes} == {"conv1": "8", "conv2": "12 -> 6"}
    l1 = prune_structured(project, tmp_path / "l1.json", ckpt, 0.5, nodes=["conv2"], threads=1)
    bn = prune_structured(project, tmp_path / "bn.json", ckpt, 0.5, nodes=["conv2"], criterion="bn", threads=1)
    kept = [read_tensors(tmp_path / f"{n}.safetensors")["bn2.weight"] for n in ("l1", "bn")]
    gammas = read_checkpoint(ckpt)[0]["bn2.weight"]
    assert torch.equal(kept[1], gammas[gammas.abs().topk(6).indices.sort().values])  # bn keeps the largest |gamma|
    assert not torch.equal(kept[0], kept[1])  # another criterion, other channels
    assert l1.job == bn.job
    linear = prune_structured(project, tmp_path / "lin.json", ckpt, 0.5, include_linear=True, threads=1)
    assert {r["node"]: r["channels"] for r in linear.nodes}["fc"] == "16 -> 8"
    assert load_project(tmp_path / "lin.json").graph.by_name("fc").params["out_features"] == 8
    with pytest.raises(CompressError, match='node "fc" \\(Linear\\): not a layer whose output channels'):
        prune_structured(project, tmp_path / "x.json", ckpt, nodes=["fc"])
    with pytest.raises(CompressError, match='nodes: no node named "nope"'):
        prune_structured(project, tmp_path / "x.json", ckpt, nodes=["nope"])
    with pytest.raises(CompressError, match="criterion: expected one of l1, bn"):
        prune_structured(project, tmp_path / "x.json", ckpt, criterion="l2")


def test_fine_tuning_trains_the_pruned_project(trained: tuple[Project, Path], tmp_path: Path) -> None:
    project, ckpt = trained
    plain = prune_structured(project, tmp_path / "plain.json", ckpt, 0.5, threads=1)
    tuned = prune_structured(project, tmp_path / "tuned.json", ckpt, 0.5, finetune_epochs=1, threads=1)
    prune_structured(project, tmp_path / "slow.json", ckpt, 0.5, finetune_epochs=1, finetune_lr=1e-5,
                            threads=1)
    w = {n: read_tensors(tmp_path / f"{n}.safetensors")["conv2.weight"] for n in ("plain", "tuned", "slow")}
    assert not torch.equal(w["plain"], w["tuned"]) and not torch.equal(w["tuned"], w["slow"])
    assert (w["slow"] - w["plain"]).abs().max() < (w["tuned"] - w["plain"]).abs().max()
    runs = list((tmp_path / "runs" / "tuned").iterdir())
    assert len(runs) == 1 and (runs[0] / "checkpoints" / "last.safetensors").is_file()
    assert torch.equal(read_tensors(runs[0] / "checkpoints" / "last.safetensors")["model.conv2.weight"], w["tuned"])
    assert tuned.row("validation accuracy (pruned, before fine-tuning)").after == pytest.approx(
        plain.row("validation accuracy").after)
    assert "fine-tuned 1 epoch(s)" in " ".join(tuned.notes)


def test_unstructured_pruning_reports_honestly(trained: tuple[Project, Path], tmp_path: Path) -> None:
    project, ckpt = trained
    glob = prune_unstructured(project, tmp_path / "g.json", ckpt, 0.5, threads=1)
    layer = prune_unstructured(project, tmp_path / "l.json", ckpt, 0.5, scope="layer", threads=1)
    for report, name in ((glob, "g"), (layer, "l")):
        tensors = read_tensors(tmp_path / f"{name}.safetensors")
        for row in report.nodes:
            w = tensors[f"{row['node']}.weight"]
            assert row["zeros"] == int((w == 0).sum()) and row["weights"] == w.numel()
        assert report.row("zero weights (convolutions and Linear)").after == pytest.approx(50, abs=0.05)
        dense = report.row("weights file (dense)")
        assert dense.change == 1.0 and dense.before == dense.after == len(save_bytes(read_checkpoint(ckpt)[0]))
        assert report.row("weights file, zlib-compressed").after == len(zlib.compress(save_bytes(tensors), 6))
        assert report.row("weights file, zlib-compressed").change < 0.9
        assert "does not shrink the dense weights file" in " ".join(report.notes)
        assert report.row("latency, batch 64").before > 0
    per_layer = {r["node"]: r["zeros"] / r["weights"] for r in layer.nodes}
    assert all(abs(s - 0.5) < 0.01 for s in per_layer.values())
    per_global = {r["node"]: r["zeros"] / r["weights"] for r in glob.nodes}
    assert max(per_global.values()) - min(per_global.values()) > 0.1  # global: the layers differ
    assert load_project(tmp_path / "g.json").weights == "g.safetensors"


def test_refusals_write_nothing(trained: tuple[Project, Path], tmp_path: Path) -> None:
    project, ckpt = trained
    with pytest.raises(OutputError, match="would overwrite the project"):
        prune_structured(project, project.path, ckpt)
    with pytest.raises(CompressError, match="amount: expected a share"):
        prune_structured(project, tmp_path / "a.json", ckpt, 1.0)
    with pytest.raises(CompressError, match=r"ending in \.json"):
        prune_unstructured(project, tmp_path / "a.onnx", ckpt)
    untrained = Project(project.graph, "u", data=project.data, training=project.training)
    with pytest.raises(CompressError, match="no trained weights"):
        prune_structured(untrained, tmp_path / "a.json")
    with pytest.raises(ResultRefused) as info:
        prune_unstructured(project, tmp_path / "a.json", ckpt, 0.95, max_drop=0.5)
    assert "nothing was written" in info.value.report.refused
    assert not (tmp_path / "a.json").exists() and not (tmp_path / "a.safetensors").exists()
    mlp = GraphBuilder()
    mlp.output(mlp.layer("Linear", mlp.input((64,)), out_features=10))
    with pytest.raises(CompressError, match="no convolution whose output channels can be pruned"):
        prune_structured(Project(mlp.graph, "m", data=project.data, training=project.training),
                         tmp_path / "a.json", ckpt)


def test_cli_prune(trained: tuple[Project, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    project, ckpt = trained
    out = tmp_path / "small.json"
    code = main(["prune", str(project.path), "--checkpoint", str(ckpt), "--amount", "0.5", "--structured", "-o",
                 str(out), "--threads", "1", "--quiet"])
    text = capsys.readouterr().out
    assert code == 0 and out.is_file() and "MACs per sample" in text
    assert re.search(r"conv2 +Conv2d +12 -> 6 +pruned \(l1\)", text)
    assert main(["prune", str(project.path), "--checkpoint", str(ckpt), "-o", str(tmp_path / "s.json"),
                 "--finetune-epochs", "2"]) == 2
    assert "--finetune-epochs needs --structured" in capsys.readouterr().err
    code = main(["prune", str(project.path), "--checkpoint", str(ckpt), "-o", str(tmp_path / "s.json"), "--json",
                 "--quiet", "--threads", "1"])
    doc = json.loads(capsys.readouterr().out)
    assert code == 0 and doc["job"] == "unstructured magnitude pruning (global)"
