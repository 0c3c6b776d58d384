"""MACs and FLOPs per node from the shapes, checked against torch.utils.flop_counter; parameter and
activation bytes against real tensors; the latency profile; the cost columns of ``workbench check``.

The reference is ``FlopCounterMode`` run on the compiled module, one generated operation at a
time, so every node is compared on its own.  It counts 2 FLOPs per MAC of matrix products and
convolutions; two CPU kernels it has no formula for (fused attention, oneDNN LSTM) get torch's
own formulas through ``custom_mapping`` (``flop_counter_mapping``), and a test shows what torch
alone counts there.
"""

from __future__ import annotations

import json
import re
from typing import Any

import pytest
import torch
import torch.fx as fx
from torch.utils.flop_counter import FlopCounterMode

from tests.core.test_layer_conformance import CASES, single_layer_graph
from workbench.analysis.cost import cost_table
from workbench.analysis.macs import DATA_MOVEMENT, concrete, flop_counter_mapping, format_count, symbol_value
from workbench.analysis.profile import ProfileCancelled, profile_graph
from workbench.blocks import BlockCall
from workbench.builder import GraphBuilder
from workbench.cli import check_report, main
from workbench.compiler import Compiled, compile_graph
from workbench.graph import Graph
from workbench.layers import REGISTRY, LayerSpec
from workbench.layers.spec import Example
from workbench.samples import SAMPLES
from workbench.shapes import ShapeInference
from workbench.templates import TEMPLATES
from workbench.training.devices import DeviceError

SEQ = 6  # the size symbolic lengths take in these tests


class Measured:
    """Per node id: what torch's flop counter counts and the bytes of the values the node hands on."""

    def __init__(self) -> None:
        self.flops: dict[str, int] = {}
        self.bytes: dict[str, int] = {}


def _owners(compiled: Compiled, graph: Graph) -> dict[str, str]:
    by_name = {n.name: n.id for n in graph}
    owner = {fx_name: by_name[name] for fx_name, name in compiled.owner.items() if name in by_name}
    owner.update({spec.arg: by_name[spec.node] for spec in compiled.inputs})
    return owner


def measure(compiled: Compiled, graph: Graph, inputs: tuple[Any, ...], mapping: dict | None = None) -> Measured:
    """Run ``compiled`` one fx operation at a time under a fresh FlopCounterMode each; a block
    instance's bytes are measured inside it (its own compiled inside, fed the same tensors)."""
    owner = _owners(compiled, graph)
    result = Measured()
    mapping = flop_counter_mapping() if mapping is None else mapping

    def exported(n: fx.Node) -> bool:  # a value another node (or the model's output) reads
        return any(u.op == "output" or owner.get(u.name) != owner.get(n.name) for u in n.users)

    class Probe(fx.Interpreter):
        def run_node(self, n: fx.Node) -> Any:
            nid = owner.get(n.name)
            with FlopCounterMode(display=False, custom_mapping=mapping) as counter:
                out = super().run_node(n)
            if nid is None:
                return out
            result.flops[nid] = result.flops.get(nid, 0) + counter.get_total_flops()
            call = compiled.calls.get(str(n.target)) if n.op == "call_module" else None
            if isinstance(call, BlockCall):
                args = self.fetch_args_kwargs_from_env(n)[0]
                with torch.device(args[0].device):  # the meta device stays meta inside
                    inner = call.compile()
                inside = measure(inner, call.graph, tuple(args), mapping)
                inner_inputs = {i.id for i in call.graph.inputs()}
                result.bytes[nid] = sum(b for k, b in inside.bytes.items() if k not in inner_inputs)
            elif exported(n) or n.op == "placeholder":
                values = out if isinstance(out, (tuple, list)) else (out,)
                result.bytes[nid] = result.bytes.get(nid, 0) + sum(
                    v.numel() * v.element_size() for v in values if torch.is_tensor(v))
            return out

    # gradients on: without them torch's attention takes a fused inference path its counter does not see
    Probe(compiled.module.eval()).run(*inputs)
    return result


# --------------------------------------------------------------------------- every catalogue layer


@pytest.mark.parametrize(("spec", "index", "example"), CASES, ids=[f"{s.id}-{i}" for s, i, _ in CASES])
def test_every_layer_counts_what_torch_counts(spec: LayerSpec, index: int, example: Example) -> None:
    """MACs x 2 equal FlopCounterMode's count for every conformance example of every layer, and the
    activation bytes equal the tensors the layer hands on."""
    g, nid = single_layer_graph(spec, example)
    compiled = compile_graph(g)
    torch.manual_seed(0)
    xs = tuple(torch.randint(0, 3, s) if example.int_input else torch.randn(s) for s in example.inputs)
    got = measure(compiled, g, xs)
    row = cost_table(g, batch=example.inputs[0][0]).by_id()[nid]
    assert row.flop_counter_flops == got.flops.get(nid, 0)  # an Identity emits no code of its own
    assert row.flops >= 2 * row.macs >= 0
    if nid in got.bytes:  # an Identity hands on its input itself: no value of its own
        assert row.activation_bytes == got.bytes[nid]


def test_the_fallback_is_no_macs_and_one_flop_per_element_or_none_for_data_movement() -> None:
    undeclared = [s for s in REGISTRY.values() if s.ops is None and s.role == "layer"]
    moving = [s.id for s in undeclared if s.category in DATA_MOVEMENT]
    elementwise = [s.id for s in undeclared if s.category not in DATA_MOVEMENT]
    assert "Flatten" in moving and "ReLU" in elementwise and "Linear" not in elementwise + moving
    b = GraphBuilder()
    x = b.input((3, 4, 5))
    relu = b.layer("ReLU", x)
    b.output(b.layer("Flatten", relu))
    rows = {r.type: r for r in cost_table(b.graph, batch=2).nodes}
    assert (rows["ReLU"].macs, rows["ReLU"].flops) == (0, 2 * 3 * 4 * 5)
    assert (rows["Flatten"].macs, rows["Flatten"].flops) == (0, 0)
    assert (rows["Input"].flops, rows["Output"].flops) == (0, 0)


# --------------------------------------------------------------------------- samples and templates


def _graphs(make: Any) -> list[tuple[str, Graph]]:
    project = make()
    return [("main", project.graph), *project.graphs.items()]


SAMPLE_GRAPHS = [(f"{name}:{role}", g) for name, make in SAMPLES.items() for role, g in _graphs(make)]


@pytest.mark.parametrize(("label", "graph"), SAMPLE_GRAPHS, ids=[label for label, _ in SAMPLE_GRAPHS])
def test_samples_agree_with_flop_counter_node_by_node(label: str, graph: Graph) -> None:
    batch = 3
    table = cost_table(graph, batch=batch, symbol_size=SEQ)
    compiled = compile_graph(graph)
    torch.manual_seed(0)
    got = measure(compiled, graph, compiled.example_inputs(batch=batch, seq=SEQ))
    for row in table.nodes:
        assert row.flop_counter_flops == got.flops.get(row.node_id, 0), row.name
    assert table.flop_counter_flops == sum(got.flops.values()) > 0
    params = {name: p.numel() for name, p in compiled.module.named_parameters()}
    for row in table.nodes:
        attr = compiled.attr_of[row.node_id]
        want = sum(n for key, n in params.items() if key.split(".")[0] == attr)
        assert (row.params, row.param_bytes) == (want, 4 * want), row.name
    wired = {e.src for e in graph.edges}
    for row in table.nodes:
        node = graph.nodes[row.node_id]
        every_port_used = all(graph.edges_from(node.id) and any(e.src_port == p for e in graph.edges_from(node.id))
                              for p in node.output_ports)
        if row.node_id in got.bytes and row.node_id in wired and every_port_used:
            assert row.activation_bytes == got.bytes[row.node_id], row.name


@pytest.mark.parametrize("name", list(TEMPLATES))
def test_templates_agree_with_flop_counter_node_by_node(name: str) -> None:
    """On the meta device: torch counts from shapes alone, and nothing is allocated."""
    graph = TEMPLATES[name]().graph
    table = cost_table(graph, batch=1, symbol_size=16)
    with torch.device("meta"):
        compiled = compile_graph(graph)
        inputs = compiled.example_inputs(batch=1, seq=16)
    got = measure(compiled, graph, inputs)
    for row in table.nodes:
        assert row.flop_counter_flops == got.flops.get(row.node_id, 0), row.name
    assert table.flop_counter_flops == sum(got.flops.values())


def test_published_figures() -> None:
    """ResNet-50 at 224x224: 4.09 G MACs; VGG-16: 15.47 G; AlexNet (torchvision): 0.71 G."""
    macs = {name: cost_table(TEMPLATES[name]().graph).macs for name in ("ResNet-50", "VGG-16", "AlexNet")}
    assert 4.08e9 < macs["ResNet-50"] < 4.12e9
    assert 15.4e9 < macs["VGG-16"] < 15.6e9
    assert 0.70e9 < macs["AlexNet"] < 0.73e9


def test_torch_alone_misses_the_cpu_lstm_and_attention_kernels() -> None:
    """What ``flop_counter_mapping`` adds: without it torch counts nothing for a CPU LSTM and for the
    attention scores in evaluation mode; convolutions and linear layers need nothing added."""
    for make, node, short in ((SAMPLES["digits_lstm.json"], "lstm", True),
                              (SAMPLES["digits_transformer.json"], "encoder1", True),
                              (SAMPLES["digits_cnn.json"], "conv2", False)):
        graph = make().graph
        compiled = compile_graph(graph)
        xs = compiled.example_inputs(batch=2, seq=SEQ)
        nid = graph.by_name(node).id
        alone = measure(compiled, graph, xs, mapping={}).flops[nid]
        row = cost_table(graph, batch=2, symbol_size=SEQ).by_id()[nid]
        assert (alone < row.flop_counter_flops) is short, node


def test_batch_and_length_scale_the_counts() -> None:
    graph = SAMPLES["char_language_model.json"]().graph
    one = cost_table(graph, batch=1, symbol_size=8)
    assert cost_table(graph, batch=4, symbol_size=8).macs == 4 * one.macs
    longer = cost_table(graph, batch=1, symbol_size=16)
    assert 2 * one.macs < longer.macs < 4 * one.macs  # projections double, attention scores quadruple
    assert cost_table(graph, batch=4, symbol_size=8).activation_bytes == 4 * one.activation_bytes


def test_int64_inputs_take_eight_bytes_per_id() -> None:
    graph = SAMPLES["char_language_model.json"]().graph
    row = cost_table(graph, batch=2, symbol_size=10).by_id()[graph.inputs()[0].id]
    assert row.activation_bytes == 2 * 10 * 8


def test_a_block_instance_costs_its_inside() -> None:
    """The ResNet sample against the same model with its blocks ungrouped (the insides inline)."""
    project = SAMPLES["digits_resnet.json"]()
    table = cost_table(project.graph, batch=2)
    block = project.blocks.defs["ResBlock"]
    inst = project.graph.by_name("block1")
    resolved = block.resolve(inst.params, [("N", 32, 8, 8)])
    si = ShapeInference(resolved.graph, live=False, bound_inputs=resolved.bound)  # its Input fed [N, 32, 8, 8]
    inside = cost_table(resolved.graph, si, batch=2)
    row = table.by_id()[inst.id]
    inner_input = resolved.graph.inputs()[0].id
    rows = [r for r in inside.nodes if r.node_id != inner_input]
    assert row.macs == sum(r.macs for r in rows) > 0
    assert row.flops == sum(r.flops for r in rows)
    assert row.params == sum(r.params for r in rows)
    assert row.activation_bytes == sum(r.activation_bytes for r in rows)


# --------------------------------------------------------------------------- symbolic sizes


def test_symbolic_sizes_are_evaluated_as_arithmetic_only() -> None:
    assert concrete(("N", 3, "T", "T*2-1", "(T+1)//2", "floor(T*1.5)", "T+S"), 4, 5) == (4, 3, 5, 9, 3, 7, 10)
    assert symbol_value("__import__('os').system('false')", 1, 7) == 7  # no code runs: the symbol size
    assert symbol_value("T-9", 1, 5) == 1  # never below one element


def test_format_count() -> None:
    assert format_count(4_089_184_256) == "4.09 G"
    assert format_count(15_470_264_320, "MAC") == "15.5 GMAC"
    assert format_count(812) == "812"
    assert format_count(0.25) == "0.25"


# --------------------------------------------------------------------------- the latency profile


def test_profile_times_every_node_and_reports_progress() -> None:
    graph = SAMPLES["digits_cnn.json"]().graph
    calls: list[tuple[int, int]] = []
    prof = profile_graph(graph, batch=8, warmup=2, iterations=3, progress=lambda d, t: calls.append((d, t)))
    assert calls == [(i, 8) for i in range(1, 9)]  # 2 warm-up + 3 timed per node + 3 whole forwards
    names = {graph.nodes[n].name for n in prof.node_ms}
    assert {"conv1", "bn1", "fc", "classifier", "image"} <= names
    assert all(ms >= 0 for ms in prof.node_ms.values()) and prof.node_ms[graph.by_name("conv1").id] > 0
    assert prof.forward_ms > 0 and prof.device == "cpu" and (prof.batch, prof.iterations) == (8, 3)


def test_profile_batch_changes_what_is_measured() -> None:
    graph = SAMPLES["digits_cnn.json"]().graph
    conv = graph.by_name("conv2").id
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # on a busy shared machine a thread waiting for a busy core swamps small timings
    try:
        small = profile_graph(graph, batch=1, warmup=2, iterations=9).node_ms[conv]
        large = profile_graph(graph, batch=1024, warmup=2, iterations=9).node_ms[conv]
    finally:
        torch.set_num_threads(threads)
    assert large > 10 * small  # 1,024 times the work


def test_profile_can_be_stopped_and_refuses_a_missing_device() -> None:
    graph = SAMPLES["digits_mlp.json"]().graph
    seen: list[int] = []
    with pytest.raises(ProfileCancelled):
        profile_graph(graph, iterations=50, progress=lambda d, t: seen.append(d), should_stop=lambda: len(seen) >= 3)
    assert len(seen) == 3
    if not torch.cuda.is_available():
        with pytest.raises(DeviceError, match="cuda"):
            profile_graph(graph, device="cuda")


# --------------------------------------------------------------------------- workbench check


def test_check_json_has_the_cost_columns_and_totals(tmp_path: Any, capsys: pytest.CaptureFixture[str]) -> None:
    project = SAMPLES["digits_cnn.json"]()
    report = check_report(project, batch=4)
    table = cost_table(project.graph, batch=4)
    conv1 = next(n for n in report["nodes"] if n["name"] == "conv1")
    row = table.by_id()[conv1["id"]]
    assert (conv1["macs"], conv1["flops"], conv1["activation_bytes"]) == (row.macs, row.flops, row.activation_bytes)
    assert conv1["param_bytes"] == 4 * conv1["params"] and conv1["flop_counter_flops"] == 2 * row.macs
    cost = report["cost"]
    assert (cost["batch"], cost["macs"], cost["flops"]) == (4, table.macs, table.flops)
    assert cost["activation_bytes"] == table.activation_bytes and cost["params"] == table.params
    path = tmp_path / "cnn.json"
    path.write_text(project.to_json())
    assert main(["check", str(path), "--json", "--batch", "4"]) == 0
    assert json.loads(capsys.readouterr().out)["cost"]["macs"] == table.macs


def test_check_table_shows_macs_and_memory_at_the_batch(tmp_path: Any, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "cnn.json"
    path.write_text(SAMPLES["digits_cnn.json"]().to_json())
    assert main(["check", str(path)]) == 0
    one = capsys.readouterr().out
    assert main(["check", str(path), "--batch", "10"]) == 0
    ten = capsys.readouterr().out
    header = next(line for line in one.splitlines() if line.startswith("name"))
    assert header.split()[-3:] == ["params", "MACs", "memory"]
    conv1 = next(line for line in ten.splitlines() if line.startswith("conv1"))
    assert re.split(r"\s{2,}", conv1)[-2:] == ["92.2 k", "40.0 KB"]  # 10 x 9,216 MACs; 10 x 16 x 8 x 8 floats
    assert "total MACs: 91.8 k" in one and "total MACs: 918 k" in ten
    with pytest.raises(SystemExit):
        main(["check", str(path), "--batch", "0"])
    assert "expected a positive int, got 0" in capsys.readouterr().err


def test_check_profile_adds_the_latency_column(tmp_path: Any, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "mlp.json"
    path.write_text(SAMPLES["digits_mlp.json"]().to_json())
    assert main(["check", str(path), "--profile", "--iterations", "3", "--device", "cpu", "--json"]) == 0
    captured = capsys.readouterr()
    report = json.loads(captured.out)
    fc1 = next(n for n in report["nodes"] if n["name"] == "fc1")
    assert fc1["latency_ms"] > 0 and report["cost"]["latency_ms"] >= fc1["latency_ms"]
    assert captured.err.startswith("profiling on cpu:") and captured.err.rstrip().endswith("100%")
    assert report["profile"]["iterations"] == 3 and report["profile"]["device"] == "cpu"
    assert report["profile"]["forward_ms"] > 0
    assert main(["check", str(path), "--profile", "--iterations", "2", "--device", "cpu"]) == 0
    table = capsys.readouterr().out
    assert next(line for line in table.splitlines() if line.startswith("name")).split()[-1] == "latency"
    assert "latency on cpu" in table
    assert main(["check", str(path), "--profile", "--device", "nonsense"]) == 1
    assert "unknown device 'nonsense'" in capsys.readouterr().err


def test_profile_job_reports_progress_from_its_process() -> None:
    """The GUI's way: a spawned job that reports (done, total) after every pass, then the result."""
    import time

    from workbench.analysis.profile import profile_job
    from workbench.jobs import Job

    project = SAMPLES["digits_cnn.json"]()
    job = Job(profile_job, project.to_json(), "main", 2, 1, "cpu", 1, 2, progress=True).start()
    messages: list[tuple[str, Any]] = []
    deadline = time.monotonic() + 120
    while not messages or messages[-1][0] == "progress":
        assert time.monotonic() < deadline, messages
        message = job.poll()
        if message is None:
            time.sleep(0.02)
        else:
            messages.append(message)
    assert [m for m in messages if m[0] == "progress"] == [("progress", (i, 5)) for i in range(1, 6)]
    status, result = messages[-1]
    assert status == "ok" and result["batch"] == 2 and result["iterations"] == 2
    assert set(result["node_ms"]) >= {project.graph.by_name("conv1").id}


def test_check_seq_sets_the_symbolic_length(tmp_path: Any, capsys: pytest.CaptureFixture[str]) -> None:
    project = SAMPLES["char_language_model.json"]()
    path = tmp_path / "lm.json"
    path.write_text(project.to_json())
    lengths = {}
    for seq in (None, 12, 24):
        assert main(["check", str(path), "--json"] + (["--seq", str(seq)] if seq else [])) == 0
        lengths[seq] = json.loads(capsys.readouterr().out)["cost"]
    assert lengths[None]["symbol_size"] == project.data["seq_len"] == 48  # the data's length by default
    assert lengths[12]["symbol_size"] == 12 and lengths[24]["macs"] > 2 * lengths[12]["macs"]
    assert lengths[24]["macs"] == cost_table(project.graph, batch=1, symbol_size=24).macs
