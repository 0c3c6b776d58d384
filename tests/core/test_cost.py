"""The per-node cost table and the memory refusals built on it (compile, check, training)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from workbench.analysis.cost import cost_table, format_bytes, machine_memory, training_bytes
from workbench.builder import GraphBuilder
from workbench.cli import check_report
from workbench.compiler import compile_graph
from workbench.errors import CompileError
from workbench.layers.spec import ModuleCall
from workbench.project import Project, load_project
from workbench.training import Trainer

SAMPLES = sorted((Path(__file__).resolve().parents[2] / "samples").glob("*.json"))


@pytest.mark.parametrize("sample", SAMPLES, ids=lambda p: p.name)
def test_table_matches_the_compiled_module(sample: Path) -> None:
    """Parameters per node = numel of the submodule's parameters; activations = real output sizes."""
    project = load_project(sample)
    compiled = compile_graph(project.graph)
    table = cost_table(project.graph, batch=3, symbol_size=5)
    assert table.params == sum(p.numel() for p in compiled.module.parameters())
    for row in table.nodes:
        attr = compiled.attr_of[row.node_id]
        module = getattr(compiled.module, attr, None)
        want = sum(p.numel() for p in module.parameters()) if module is not None else 0
        assert row.params == want, row.name
        assert row.param_bytes == 4 * want
    # activation bytes: every fx value a node produces, measured on a real batch of 3
    sizes: dict[str, int] = {}

    class Probe(torch.fx.Interpreter):
        def run_node(self, n: torch.fx.Node):  # type: ignore[no-untyped-def]
            out = super().run_node(n)
            if n.op in ("call_module", "placeholder") and torch.is_tensor(out):
                sizes[n.name] = out.numel() * out.element_size()  # token ids are int64
            return out

    Probe(compiled.module).run(*compiled.example_inputs(batch=3, seq=5, vocab=2))
    for row in table.nodes:
        attr = compiled.attr_of[row.node_id]
        node = project.graph.nodes[row.node_id]  # a block instance counts its inside (tests/core/test_macs.py)
        if attr in sizes and node.type not in ("LSTM", "GRU") and not node.is_block:
            assert row.activation_bytes == sizes[attr], row.name


def test_compile_refuses_parameters_beyond_memory_before_allocating(monkeypatch: pytest.MonkeyPatch) -> None:
    b = GraphBuilder()
    x = b.input((2**24,), name="x")
    x = b.layer("Linear", x, out_features=2**24, name="fc1")  # 2**48 parameters: 1 PB
    b.output(b.layer("Linear", x, out_features=10, name="fc2"))

    def refuse(self: ModuleCall) -> None:
        raise AssertionError(f"{self.cls} was allocated")

    monkeypatch.setattr(ModuleCall, "instantiate", refuse)
    with pytest.raises(CompileError) as info:
        compile_graph(b.graph)
    err = info.value.errors[0]
    assert err.node == "fc1"
    assert "the model needs 1.0 PB for its parameters (this machine has" in str(err)
    assert 'biggest: "fc1" Linear 1.0 PB, "fc2" Linear 640.0 MB' in str(err)


def test_check_reports_a_step_that_does_not_fit_and_training_refuses_it(tmp_path: Path) -> None:
    """Parameters that fit, activations at the configured batch size that do not."""
    project = load_project(SAMPLES[[p.name for p in SAMPLES].index("digits_cnn.json")])
    project.graph.set_param(project.graph.by_name("conv1").id, "out_channels", 4096)
    project.data["batch_size"] = 1_000_000
    report = check_report(project)
    [err] = report["errors"]
    assert err["path"] == "data.batch_size" and err["node"] == "conv1"
    assert "for one training step at batch size 1000000" in err["message"]
    with pytest.raises(Exception) as info:
        Trainer(project, {"epochs": 1}, run_dir=tmp_path / "run").run()
    assert "one training step at batch size 1000000" in str(info.value)
    assert not (tmp_path / "run").exists()  # refused before anything was written or allocated


def test_training_bytes_counts_gradients_and_optimizer_state() -> None:
    b = GraphBuilder()
    b.output(b.layer("Linear", b.input((10,)), out_features=5))
    table = cost_table(b.graph, batch=2)
    assert table.params == 55 and table.param_bytes == 220
    assert table.activation_bytes == (2 * 10 + 2 * 5) * 4
    assert training_bytes(table, "adam") == 220 * 4 + 2 * table.activation_bytes
    assert training_bytes(table, "sgd") == 220 * 3 + 2 * table.activation_bytes


def test_format_and_machine_memory() -> None:
    assert format_bytes(512) == "512 B"
    assert format_bytes(1536) == "1.5 KB"
    assert format_bytes(8 * 2**60) == "8.0 EB"
    mem = machine_memory()
    assert mem is None or mem > 2**26


def test_check_json_keeps_the_error_shape_for_shape_errors() -> None:
    b = GraphBuilder()
    x = b.input((1, 28, 28), name="img")
    b.output(b.layer("Conv2d", b.layer("Flatten", x, name="flatten1"), name="conv2"))
    report = check_report(Project(b.graph, "broken"))
    assert json.loads(json.dumps(report["errors"])) == [
        {"node": "conv2", "param": None, "message": 'Conv2d "conv2": expects [N, C, H, W], got [N, 784] from "flatten1"'}
    ]
