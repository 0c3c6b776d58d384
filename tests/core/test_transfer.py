"""Transfer learning: frozen nodes, per-node learning rates, weights loaded by name and shape."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from workbench.builder import GraphBuilder
from workbench.compiler import compile_graph
from workbench.config import DATA_FIELDS, TRAINING_FIELDS, validate_section
from workbench.errors import ParamError, ProjectError
from workbench.project import Project, load_project, loads_project, save_project
from workbench.shapes import ShapeInference
from workbench.training import Trainer
from workbench.training.preflight import PreflightError, check_issues
from workbench.training.transfer import TransferSourceError, read_source, transfer
from workbench.weights import read_checkpoint, save_weights


def mlp(classes: int = 10, head: str = "head", epochs: int = 2, **training) -> Project:
    b = GraphBuilder()
    x = b.input((64,), name="pixels")
    x = b.layer("Linear", x, out_features=32, name="fc1")
    x = b.layer("BatchNorm1d", x, name="bn1")
    x = b.layer("ReLU", x, name="relu1")
    x = b.layer("Linear", x, out_features=16, name="fc2")
    x = b.layer("ReLU", x, name="relu2")
    x = b.layer("Linear", x, out_features=classes, name=head)
    b.output(x, name="logits")
    return Project(b.auto_layout(), "mlp", "", validate_section(DATA_FIELDS, {"dataset": "digits", "batch_size": 128}),
                   validate_section(TRAINING_FIELDS, {"epochs": epochs, "lr": 0.01, **training}))


def node_id(p: Project, name: str) -> str:
    return p.graph.by_name(name).id


def start_and_end(p: Project, tmp: Path, **overrides) -> tuple[dict, dict, Trainer]:
    """The model's weights before the first step and after training (the same seed gives the same start)."""
    trainer = Trainer(p, overrides, run_dir=tmp)
    trainer.prepare()
    before = {k: v.clone() for k, v in trainer.model.state_dict().items()}
    t2 = Trainer(p, overrides, run_dir=tmp / "b")
    t2.run()
    return before, dict(t2.model.state_dict()), t2


def test_frozen_nodes_keep_their_weights_and_the_others_change(tmp_path: Path) -> None:
    p = mlp()
    p.graph.set_train(node_id(p, "fc1"), {"frozen": True})
    p.graph.set_train(node_id(p, "bn1"), {"frozen": True})
    before, after, trainer = start_and_end(p, tmp_path)
    for key in ("fc1.weight", "fc1.bias", "bn1.weight", "bn1.running_mean", "bn1.running_var"):
        assert torch.equal(before[key], after[key]), key  # frozen BatchNorm keeps its statistics too
    for key in ("fc2.weight", "head.weight"):
        assert not torch.allclose(before[key], after[key]), key
    in_optimizer = {id(q) for g in trainer.optimizer.param_groups for q in g["params"]}
    assert id(trainer.model.fc1.weight) not in in_optimizer and not trainer.model.fc1.weight.requires_grad
    assert id(trainer.model.fc2.weight) in in_optimizer


def test_without_freezing_the_same_weights_change(tmp_path: Path) -> None:  # the test above can fail
    before, after, _ = start_and_end(mlp(), tmp_path)
    assert not torch.allclose(before["fc1.weight"], after["fc1.weight"])
    assert not torch.equal(before["bn1.running_mean"], after["bn1.running_mean"])


@pytest.mark.parametrize("schedule", ["none", "cosine", "step"])
def test_lr_scale_groups_follow_the_schedule(tmp_path: Path, schedule: str) -> None:
    p = mlp(epochs=3, schedule=schedule, step_size=1, gamma=0.5)
    p.graph.set_train(node_id(p, "fc1"), {"lr_scale": 0.1})
    p.graph.set_train(node_id(p, "fc2"), {"lr_scale": 0.1})
    p.graph.set_train(node_id(p, "head"), {"lr_scale": 2.0})
    seen: list[tuple[float, dict[float, float]]] = []
    trainer = Trainer(p, {}, run_dir=tmp_path)
    real_step = torch.optim.Adam.step

    def spy(opt, *a, **k):
        seen.append((trainer.schedule.lr(trainer.step), {g["lr_scale"]: g["lr"] for g in opt.param_groups}))
        return real_step(opt, *a, **k)

    torch.optim.Adam.step = spy
    try:
        trainer.run()
    finally:
        torch.optim.Adam.step = real_step
    groups = {scale: set(nodes) for scale, nodes in trainer.group_nodes.items()}
    assert groups == {0.1: {"fc1", "fc2"}, 2.0: {"head"}, 1.0: {"bn1"}}
    base_lrs = {base for base, _ in seen}
    assert len(base_lrs) > (1 if schedule != "none" else 0)
    for base, lrs in seen:
        assert lrs[0.1] == pytest.approx(base * 0.1) and lrs[2.0] == pytest.approx(base * 2.0)
        assert lrs[1.0] == pytest.approx(base)


def test_lr_scale_changes_training(tmp_path: Path) -> None:
    plain = mlp()
    slow = mlp()
    slow.graph.set_train(node_id(slow, "fc1"), {"lr_scale": 0.0})  # scale 0: the node does not move
    before, after, _ = start_and_end(slow, tmp_path / "slow")
    assert torch.equal(before["fc1.weight"], after["fc1.weight"])
    before, after, _ = start_and_end(plain, tmp_path / "plain")
    assert not torch.equal(before["fc1.weight"], after["fc1.weight"])


def test_train_flags_round_trip_and_bad_values_are_located(tmp_path: Path) -> None:
    p = mlp()
    p.graph.set_train(node_id(p, "fc1"), {"frozen": True, "lr_scale": 0.5})
    doc = json.loads(p.to_json())
    assert doc["graph"]["nodes"][1]["train"] == {"frozen": True, "lr_scale": 0.5}
    assert "train" not in doc["graph"]["nodes"][2]  # defaults are not written
    again = loads_project(p.to_json())
    assert again.graph.by_name("fc1").train == {"frozen": True, "lr_scale": 0.5}
    doc["graph"]["nodes"][1]["train"]["lr_scale"] = -1
    with pytest.raises(ProjectError) as err:
        loads_project(json.dumps(doc))
    assert "graph.nodes[1].train.lr_scale" in str(err.value)
    doc["graph"]["nodes"][1]["train"] = {"frozn": True}
    with pytest.raises(ProjectError, match=r"graph.nodes\[1\].train.frozn"):
        loads_project(json.dumps(doc))
    with pytest.raises(ParamError, match=r"fc2.*lr_scale"):
        p.graph.set_train(node_id(p, "fc2"), {"lr_scale": "fast"})
    assert p.graph.by_name("fc2").train == {}  # refused: nothing changed


def test_everything_frozen_is_refused_by_check_and_training(tmp_path: Path) -> None:
    p = mlp()
    for name in ("fc1", "bn1", "fc2", "head"):
        p.graph.set_train(node_id(p, name), {"frozen": True})
    si = ShapeInference(p.graph, live=False)
    si.update()
    issues, _ = check_issues(p, si)
    assert any("frozen" in i.message and i.param == "train.frozen" for i in issues)
    with pytest.raises(PreflightError, match="nothing would train"):
        Trainer(p, {}, run_dir=tmp_path).prepare()


def trained_source(tmp: Path) -> Path:
    src = mlp(epochs=1)
    save_project(src, tmp / "src.json")
    Trainer(load_project(tmp / "src.json")).run()
    return tmp / "src.json"


def test_transfer_loads_matching_nodes_and_reports_the_rest(tmp_path: Path) -> None:
    src_path = trained_source(tmp_path)
    ckpt = next((tmp_path / "runs" / "src").glob("*/checkpoints/best.safetensors"))
    model_state = read_checkpoint(ckpt)[0]
    target = mlp(classes=3)  # a new head: same name, other shape
    target.graph.rename(node_id(target, "fc2"), "other")  # a node the source does not have
    compiled = compile_graph(target.graph)
    init = {k: v.clone() for k, v in compiled.module.state_dict().items()}
    report = transfer(target.graph, compiled, compiled.module, read_source(src_path))
    assert set(report.matched) == {"fc1", "bn1"}
    assert "head" in report.mismatched and "[10, 16] vs model [3, 16]" in report.mismatched["head"][0]
    assert report.missing == ["other"] and report.unused == ["fc2"]
    state = compiled.module.state_dict()
    for key in ("fc1.weight", "bn1.running_mean", "bn1.weight"):
        assert torch.equal(state[key], model_state[key])
    assert torch.equal(state["head.weight"], init["head.weight"])  # not loaded: keeps its initialisation
    assert torch.equal(state["other.weight"], init["other.weight"])


def test_skip_keeps_a_matching_node_initialised(tmp_path: Path) -> None:
    src_path = trained_source(tmp_path)
    target = mlp()
    compiled = compile_graph(target.graph)
    init = compiled.module.head.weight.detach().clone()
    report = transfer(target.graph, compiled, compiled.module, read_source(src_path), skip=("head",))
    assert report.skipped == ["head"] and "head" not in report.matched
    assert torch.equal(compiled.module.head.weight, init)


def test_transfer_from_weights_file_and_onnx(tmp_path: Path) -> None:
    src = mlp()
    module = compile_graph(src.graph).module
    save_weights(module, tmp_path / "w.safetensors")
    target = mlp(classes=5)
    compiled = compile_graph(target.graph)
    report = transfer(target.graph, compiled, compiled.module, read_source(tmp_path / "w.safetensors"))
    assert set(report.matched) == {"fc1", "bn1", "fc2"} and list(report.mismatched) == ["head"]
    assert torch.equal(compiled.module.fc2.weight, module.fc2.weight)
    pytest.importorskip("onnxruntime")
    from workbench.export.onnx_export import export_onnx

    save_project(src, tmp_path / "src.json")
    src.weights = "w.safetensors"
    export_onnx(src, tmp_path / "m.onnx")
    target = mlp(classes=5)
    compiled = compile_graph(target.graph)
    report = transfer(target.graph, compiled, compiled.module, read_source(tmp_path / "m.onnx"))
    assert set(report.matched) == {"fc1", "bn1", "fc2"} and list(report.mismatched) == ["head"]
    assert torch.equal(compiled.module.fc1.weight, module.fc1.weight)


def test_bad_sources_are_located(tmp_path: Path) -> None:
    with pytest.raises(TransferSourceError, match="not found"):
        read_source(tmp_path / "nope.safetensors")
    (tmp_path / "junk.safetensors").write_bytes(b"not a file")
    with pytest.raises(TransferSourceError, match=r"junk\.safetensors"):
        read_source(tmp_path / "junk.safetensors")
    (tmp_path / "broken.json").write_text("{")
    with pytest.raises(TransferSourceError, match=r"broken\.json"):
        read_source(tmp_path / "broken.json")
    (tmp_path / "bad.onnx").write_bytes(b"not onnx")
    with pytest.raises(TransferSourceError, match=r"bad\.onnx"):
        read_source(tmp_path / "bad.onnx")
    save_project(mlp(), tmp_path / "untrained.json")
    with pytest.raises(TransferSourceError, match="no trained run"):
        read_source(tmp_path / "untrained.json")
    p = mlp(init_from="nope.json")
    save_project(p, tmp_path / "p.json")
    si = ShapeInference(p.graph, live=False)
    si.update()
    assert any(i.path == "training.init_from" for i in check_issues(load_project(tmp_path / "p.json"), si)[0])
    with pytest.raises(PreflightError, match=r"training\.init_from"):
        Trainer(load_project(tmp_path / "p.json"), {}, run_dir=tmp_path / "r").prepare()


def test_init_from_starts_training_from_the_source(tmp_path: Path) -> None:
    trained_source(tmp_path)
    events: list[dict] = []
    p = mlp(classes=10, init_from="src.json", init_skip="head")
    save_project(p, tmp_path / "dst.json")
    p = load_project(tmp_path / "dst.json")
    p.graph.set_train(node_id(p, "fc1"), {"frozen": True})
    trainer = Trainer(p, {}, run_dir=tmp_path / "run", listeners=[events.append])
    trainer.run()
    src_state = read_checkpoint(next((tmp_path / "runs" / "src").glob("*/checkpoints/best.safetensors")))[0]
    assert torch.equal(trainer.model.fc1.weight.detach(), src_state["fc1.weight"])  # loaded, then frozen
    assert trainer.transfer_report.skipped == ["head"]
    assert any(e["type"] == "log" and "3 node(s) loaded" in e["message"] for e in events)


def test_cli_transfer_writes_weights_and_a_report(tmp_path: Path) -> None:
    src_path = trained_source(tmp_path)
    save_project(mlp(classes=4), tmp_path / "dst.json")
    run = subprocess.run([sys.executable, "-m", "workbench", "transfer", str(tmp_path / "dst.json"), "--from",
                          str(src_path), "--json"], capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stderr
    report = json.loads(run.stdout)
    assert set(report["matched"]) == {"fc1", "bn1", "fc2"} and list(report["mismatched"]) == ["head"]
    p = load_project(tmp_path / "dst.json")
    assert p.training["init_from"] == "src.json" and p.weights is None
    run = subprocess.run([sys.executable, "-m", "workbench", "transfer", str(tmp_path / "dst.json"), "--from",
                          str(src_path), "--head", "head=10", "--freeze", "fc1", "--lr-scale", "fc2,bn1=0.1",
                          "--weights"], capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stderr
    assert "skipped as asked: head" in run.stdout
    p = load_project(tmp_path / "dst.json")
    assert p.training["init_skip"] == "head" and p.weights == "dst.safetensors"
    assert p.graph.by_name("fc1").train == {"frozen": True} and p.graph.by_name("bn1").train == {"lr_scale": 0.1}
    saved = read_checkpoint(tmp_path / "dst.safetensors")[0]
    src_state = read_checkpoint(next((tmp_path / "runs" / "src").glob("*/checkpoints/best.safetensors")))[0]
    assert torch.equal(saved["fc2.weight"], src_state["fc2.weight"])
    bad = subprocess.run([sys.executable, "-m", "workbench", "transfer", str(tmp_path / "dst.json"), "--from",
                          str(tmp_path / "missing.json")], capture_output=True, text=True, timeout=120)
    assert bad.returncode == 2 and "missing.json" in bad.stderr and "Traceback" not in bad.stderr


def test_check_counts_trainable_and_frozen_parameters() -> None:
    from workbench.cli import check_report
    from workbench.node_training import split_text

    p = mlp()
    report = check_report(p)
    assert report["frozen_params"] == 0
    p.graph.set_train(node_id(p, "fc1"), {"frozen": True})
    report = check_report(p)
    assert report["frozen_params"] == 64 * 32 + 32
    si = ShapeInference(p.graph, live=False)
    si.update()
    assert split_text(p.graph, si) == f" ({report['total_params'] - 2080:,} trainable, 2,080 frozen)"


def test_training_settings_inside_a_block_are_refused_not_ignored() -> None:
    from workbench.grouping import group

    p = mlp()
    block, _ = group(p.graph, [node_id(p, "fc2"), node_id(p, "relu2")], "Unit")
    si = ShapeInference(p.graph, live=False)
    si.update()
    assert not [i for i in check_issues(p, si)[0] if "only apply" in i.message]
    block.graph.set_train(block.graph.by_name("fc2").id, {"frozen": True})  # as a hand-edited file could say
    issues = [i for i in check_issues(p, si)[0] if "only apply to nodes of the model" in i.message]
    assert len(issues) == 1 and issues[0].node == "fc2" and issues[0].param == "train.frozen"
    assert issues[0].path == f"blocks.{block.id}"


def test_grouping_keeps_training_settings_on_the_instance_and_refuses_a_mix() -> None:
    from workbench.errors import GraphError
    from workbench.grouping import group, ungroup

    p = mlp()
    p.graph.set_train(node_id(p, "fc2"), {"frozen": True})
    _, instance = group(p.graph, [node_id(p, "fc2"), node_id(p, "relu2")], "Unit")
    assert p.graph.node(instance).train == {"frozen": True}  # still frozen, now as a whole
    new = ungroup(p.graph, instance)
    assert [p.graph.node(n).train for n in new] == [{"frozen": True}, {"frozen": True}]
    mixed = mlp()
    mixed.graph.set_train(node_id(mixed, "fc2"), {"frozen": True})
    with pytest.raises(GraphError, match="different training settings"):
        group(mixed.graph, [node_id(mixed, n) for n in ("fc1", "bn1", "relu1", "fc2")], "Unit")
