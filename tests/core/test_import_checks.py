"""The importer refuses what it cannot represent, and checks what it imports against onnxruntime.

Each of the silent wrongs the importer used to commit has a model here that onnxruntime runs;
the import must either equal it or be refused with a located reason.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch
from onnx import TensorProto, helper, numpy_helper

from workbench.cli import main as cli_main
from workbench.compiler import compile_graph
from workbench.importers.onnx_import import OnnxImportError, _load_state, import_onnx
from workbench.importers.selfcheck import check_import
from workbench.project import load_project


def save(tmp: Path, nodes: list, inputs: list, outputs: list, inits: list | None = None, opset: int = 17,
         name: str = "m.onnx") -> Path:
    graph = helper.make_graph(nodes, "g", inputs, outputs, inits or [])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    onnx.save(model, str(tmp / name))
    return tmp / name


def vi(name: str, shape: list, elem: int = TensorProto.FLOAT) -> onnx.ValueInfoProto:
    return helper.make_tensor_value_info(name, elem, shape)


def imported_outputs(path: Path, *xs: np.ndarray) -> list[np.ndarray]:
    result = import_onnx(path)
    compiled = compile_graph(result.project.graph)
    _load_state(compiled.module, result.tensors)
    with torch.no_grad():
        out = compiled.module.eval()(*[torch.from_numpy(x) for x in xs])
    return [o.numpy() for o in (out if isinstance(out, tuple) else (out,))]


def onnxruntime_outputs(path: Path, *xs: np.ndarray) -> list[np.ndarray]:
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    return session.run(None, {i.name: x for i, x in zip(session.get_inputs(), xs, strict=True)})


# --------------------------------------------------------------------------- the silent wrongs


@pytest.mark.parametrize("op", ["Softmax", "LogSoftmax"])
def test_softmax_before_opset_13_normalises_over_every_dimension_from_its_axis(op: str, tmp_path: Path) -> None:
    # opset < 13: the input is seen as 2-D [N, C*H*W] (axis 1 by default): one distribution per sample
    path = save(tmp_path, [helper.make_node(op, ["x"], ["y"])], [vi("x", ["N", 3, 2, 2])], [vi("y", ["N", 3, 2, 2])],
                opset=11)
    x = np.random.default_rng(0).standard_normal((2, 3, 2, 2)).astype(np.float32)
    (ours,), (ref,) = imported_outputs(path, x), onnxruntime_outputs(path, x)
    np.testing.assert_allclose(ours, ref, atol=1e-6)


def test_softmax_from_opset_13_normalises_over_its_axis_only(tmp_path: Path) -> None:
    path = save(tmp_path, [helper.make_node("Softmax", ["x"], ["y"], axis=1)], [vi("x", ["N", 3, 2, 2])],
                [vi("y", ["N", 3, 2, 2])], opset=13)
    x = np.random.default_rng(1).standard_normal((2, 3, 2, 2)).astype(np.float32)
    np.testing.assert_allclose(imported_outputs(path, x)[0], onnxruntime_outputs(path, x)[0], atol=1e-6)


def test_flatten_that_folds_dimensions_into_the_batch_is_refused(tmp_path: Path) -> None:
    # Flatten(axis=2) of [N, 3, 4] is [N*3, 4]: no layer mixes samples
    path = save(tmp_path, [helper.make_node("Flatten", ["x"], ["y"], axis=2, name="flat")], [vi("x", ["N", 3, 4])],
                [vi("y", ["N3", 4])], opset=11)
    with pytest.raises(OnnxImportError, match=r"Flatten \(flattening to 2-D at axis 2.*\) x1 \(flat\)"):
        import_onnx(path)


def test_flatten_past_size_one_dimensions_keeps_the_batch(tmp_path: Path) -> None:
    path = save(tmp_path, [helper.make_node("Flatten", ["x"], ["y"], axis=2)], [vi("x", ["N", 1, 4, 5])],
                [vi("y", ["N", 20])], opset=11)
    x = np.random.default_rng(2).standard_normal((3, 1, 4, 5)).astype(np.float32)
    np.testing.assert_array_equal(imported_outputs(path, x)[0], onnxruntime_outputs(path, x)[0])


def test_a_float64_model_is_read_as_float64_and_computes_in_float64(tmp_path: Path) -> None:
    # 1 + 1e-12 is 1 in float32: a float64 model read as float32 would lose it
    c = numpy_helper.from_array(np.full((1, 4), 1e-12, np.float64), "c")
    path = save(tmp_path, [helper.make_node("Add", ["x", "c"], ["a"]), helper.make_node("Relu", ["a"], ["y"])],
                [vi("x", ["N", 4], TensorProto.DOUBLE)], [vi("y", ["N", 4], TensorProto.DOUBLE)], [c])
    result = import_onnx(path)
    (node,) = [n for n in result.project.graph if n.type == "Input"]
    assert node.params["dtype"] == "float64"
    x = np.ones((3, 4), np.float64)
    (ours,), (ref,) = imported_outputs(path, x), onnxruntime_outputs(path, x)
    assert ours.dtype == np.float64 and (ours > 1).all()
    np.testing.assert_array_equal(ours, ref)
    assert check_import(result).ok


def test_a_rank_1_input_is_one_value_per_sample_not_given_a_dimension_it_did_not_have(tmp_path: Path) -> None:
    path = save(tmp_path, [helper.make_node("Relu", ["x"], ["y"])], [vi("x", [3])], [vi("y", [3])])
    result = import_onnx(path)
    (node,) = [n for n in result.project.graph if n.type == "Input"]
    assert list(node.params["shape"]) == []  # [N]: the model still takes a tensor of rank 1
    x = np.array([-1.0, 0.5, 2.0], np.float32)
    np.testing.assert_array_equal(imported_outputs(path, x)[0], onnxruntime_outputs(path, x)[0])


def test_a_rank_1_input_that_a_row_of_a_batch_broadcasts_against_is_read_as_shared(tmp_path: Path) -> None:
    # [2, 3] + [3]: the [3] is one row for every sample, not three samples of one value
    path = save(tmp_path, [helper.make_node("Add", ["x", "b"], ["y"], name="plus")],
                [vi("x", [2, 3]), vi("b", [3])], [vi("y", [2, 3])])
    result = import_onnx(path)
    shared = {n.name: n.params["batched"] for n in result.project.graph if n.type == "Input"}
    assert sorted(shared.values()) == [False, True] and result.shared == {"b"}
    assert any("'b' shared by every sample" in note for note in result.notes)
    x, b = np.arange(6, dtype=np.float32).reshape(2, 3), np.array([10, 20, 30], np.float32)
    np.testing.assert_array_equal(imported_outputs(path, x, b)[0], onnxruntime_outputs(path, x, b)[0])
    assert check_import(result).ok


def test_a_matrix_product_with_a_shared_right_operand_multiplies_each_sample(tmp_path: Path) -> None:
    path = save(tmp_path, [helper.make_node("Gemm", ["a", "b", "c"], ["y"])],
                [vi("a", [2, 3]), vi("b", [3, 4]), vi("c", [4])], [vi("y", [2, 4])])
    result = import_onnx(path)
    assert result.shared == {"b", "c"}
    report = check_import(result)
    assert report.ok, report.text()
    # the samples' batch is varied (the model fixed it at 2); the shared operands keep their shapes
    assert [p.label for p in report.probes] == ["batch 2", "batch 3"] and not report.notes
    rng = np.random.default_rng(4)
    xs = [rng.standard_normal(s).astype(np.float32) for s in ((2, 3), (3, 4), (4,))]
    np.testing.assert_allclose(imported_outputs(path, *xs)[0], onnxruntime_outputs(path, *xs)[0], atol=1e-6)


def test_a_fixed_size_input_that_a_constant_varies_along_its_first_dimension_is_read_as_one_shared_tensor(
        tmp_path: Path) -> None:
    # x [2, 2] + c [2, 2]: the first dimension of x is not a batch (c differs along it)
    c = numpy_helper.from_array(np.array([[1, 2], [3, 4]], np.float32), "c")
    path = save(tmp_path, [helper.make_node("Add", ["x", "c"], ["a"]), helper.make_node("Tanh", ["a"], ["y"])],
                [vi("x", [2, 2])], [vi("y", [2, 2])], [c])
    result = import_onnx(path)
    (node,) = [n for n in result.project.graph if n.type == "Input"]
    assert node.params["batched"] is False and list(node.params["shape"]) == [2, 2]
    x = np.array([[0.1, -0.2], [0.3, -4.0]], np.float32)
    np.testing.assert_allclose(imported_outputs(path, x)[0], onnxruntime_outputs(path, x)[0], atol=1e-7)
    report = check_import(result)
    assert report.ok and [p.label for p in report.probes] == ["fixed shapes, draw 1", "fixed shapes, draw 2"]
    assert not report.notes  # no batch to fix: nothing was left unchecked


def test_a_shared_input_read_by_an_op_with_axes_keeps_the_batch_first_refusal(tmp_path: Path) -> None:
    # Transpose(b) before the product: only element-wise ops and a product's right operand read a
    # shared tensor (an op with axes would take its first axis for a batch)
    path = save(tmp_path, [helper.make_node("Transpose", ["b"], ["r"], perm=[1, 0]),
                           helper.make_node("Gemm", ["a", "r"], ["y"])],
                [vi("a", [2, 3]), vi("b", [4, 3])], [vi("y", [2, 4])])
    with pytest.raises(OnnxImportError, match=r"Gemm \(a weight B computed at run time"):
        import_onnx(path)


def test_a_scalar_input_is_refused(tmp_path: Path) -> None:
    path = save(tmp_path, [helper.make_node("Relu", ["x"], ["y"])], [vi("x", [])], [vi("y", [])])
    with pytest.raises(OnnxImportError, match=r"^input 'x' is a scalar \(rank 0\).*\(in .*m\.onnx\)$"):
        import_onnx(path)


def test_a_5d_batchnorm_is_batchnorm3d(tmp_path: Path) -> None:
    rng = np.random.default_rng(3)
    stats = [numpy_helper.from_array(a.astype(np.float32), n) for a, n in (
        (rng.uniform(0.5, 1.5, 2), "s"), (rng.standard_normal(2), "b"), (rng.standard_normal(2), "m"),
        (rng.uniform(0.5, 2, 2), "v"))]
    path = save(tmp_path, [helper.make_node("BatchNormalization", ["x", "s", "b", "m", "v"], ["y"])],
                [vi("x", ["N", 2, 3, 4, 5])], [vi("y", ["N", 2, 3, 4, 5])], stats)
    assert "BatchNorm3d" in [n.type for n in import_onnx(path).project.graph]
    x = rng.standard_normal((2, 2, 3, 4, 5)).astype(np.float32)
    np.testing.assert_allclose(imported_outputs(path, x)[0], onnxruntime_outputs(path, x)[0], atol=1e-5)


# --------------------------------------------------------------------------- refusals name everything


def test_unsupported_ops_are_listed_by_name_and_count_reason_first(tmp_path: Path) -> None:
    nodes = [helper.make_node("Erf", ["x"], ["a"], name="erf_one"), helper.make_node("Erf", ["a"], ["b"]),
             helper.make_node("Sin", ["b"], ["c"]), helper.make_node("Relu", ["c"], ["y"])]
    path = save(tmp_path, nodes, [vi("x", ["N", 4])], [vi("y", ["N", 4])])
    with pytest.raises(OnnxImportError) as info:
        import_onnx(path)
    message = str(info.value)
    assert message.startswith("3 node(s) cannot be mapped onto catalogue layers: ")
    assert "Erf x2 (erf_one, #1 Erf)" in message and "Sin x1 (#2 Sin)" in message
    assert message.index("Erf x2") < message.index(str(path))  # the reason before the file
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.onnx"]


# --------------------------------------------------------------------------- the self-check


def _chain(tmp: Path) -> Path:
    rng = np.random.default_rng(4)
    w = numpy_helper.from_array(rng.standard_normal((4, 5)).astype(np.float32), "fc.weight")
    b = numpy_helper.from_array(rng.standard_normal(4).astype(np.float32), "fc.bias")
    nodes = [helper.make_node("Gemm", ["x", "fc.weight", "fc.bias"], ["h"], transB=1, name="/fc/Gemm"),
             helper.make_node("Relu", ["h"], ["r"], name="/act/Relu"),
             helper.make_node("Sigmoid", ["r"], ["y"], name="/out/Sigmoid")]
    return save(tmp, nodes, [vi("x", ["N", 5])], [vi("y", ["N", 4])], [w, b])


def test_the_self_check_passes_at_two_batch_sizes(tmp_path: Path) -> None:
    report = check_import(import_onnx(_chain(tmp_path)))
    assert report.ok and report.reference == "onnxruntime"
    assert [p.label for p in report.probes] == ["batch 2", "batch 3"]


@pytest.fixture
def relu_is_wrong(monkeypatch: pytest.MonkeyPatch) -> None:
    """A broken converter (Relu mapped to Tanh): what the self-check is there to catch."""
    from workbench.importers import (
        ops,  # noqa: F401  (registers the converters: run alone, nothing has imported them yet)
        registry,
    )

    entries = registry._CONVERTERS[("", "Relu")]
    monkeypatch.setitem(registry._CONVERTERS, ("", "Relu"),
                        [registry._Entry(lambda node: registry.one("Tanh", node), 1, None), *entries[1:]])


def test_a_mismatch_names_the_first_node_that_differs(tmp_path: Path, relu_is_wrong: None) -> None:
    report = check_import(import_onnx(_chain(tmp_path)))
    assert not report.ok
    assert report.divergence is not None and report.divergence.onnx_node == "/act/Relu"
    assert report.divergence.layer == "act" and report.divergence.max_abs > 0.01
    assert "first difference: ONNX node /act/Relu" in report.text()


def test_cli_refuses_a_mismatch_unless_allowed(tmp_path: Path, relu_is_wrong: None, capsys) -> None:
    model, out = _chain(tmp_path), tmp_path / "p.json"
    assert cli_main(["import", str(model), "-o", str(out)]) == 1
    captured = capsys.readouterr()
    assert "DIFFERS from the original" in captured.out and "/act/Relu" in captured.err
    assert "--allow-mismatch" in captured.err and not out.exists()
    assert cli_main(["import", str(model), "-o", str(out), "--allow-mismatch"]) == 0
    assert "DIFFERS" in capsys.readouterr().out and load_project(out).graph.by_name("act").type == "Tanh"


def test_cli_import_prints_the_check(tmp_path: Path, capsys) -> None:
    out = tmp_path / "p.json"
    assert cli_main(["import", str(_chain(tmp_path)), "-o", str(out)]) == 0
    text = capsys.readouterr().out
    assert "matches the original" in text and "batch 2" in text and "batch 3" in text and out.exists()


def test_an_old_opset_is_checked_on_the_upgraded_model(tmp_path: Path) -> None:
    # onnxruntime has no kernel for opset 6's Add; the check upgrades the model to run it
    path = save(tmp_path, [helper.make_node("Add", ["x", "x"], ["y"])], [vi("x", [2, 3])], [vi("y", [2, 3])], opset=6)
    with pytest.raises(Exception, match="NOT_IMPLEMENTED"):
        ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    report = check_import(import_onnx(path))
    assert report.ok and "upgraded from opset 6" in report.reference


def test_an_imported_model_has_no_dataset_so_check_passes_and_training_asks_for_one(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    # a model of [2, 3] inputs matches none of the built-in data; check must not fail on a dataset it never had
    path = save(tmp_path, [helper.make_node("Gemm", ["a", "b"], ["y"])], [vi("a", [2, 3]), vi("b", [3, 4])],
                [vi("y", [2, 4])])
    out = tmp_path / "p.json"
    assert cli_main(["import", str(path), "-o", str(out)]) == 0
    assert load_project(out).data["dataset"] == "none"
    capsys.readouterr()
    assert cli_main(["check", str(out)]) == 0
    assert "its fit to the model was not checked" in capsys.readouterr().out
    assert cli_main(["train", str(out), "--epochs", "1"]) != 0
    assert "data.dataset: no dataset is set" in capsys.readouterr().err


def test_the_check_reuses_the_import_compile_only_while_the_project_is_unchanged(tmp_path: Path,
                                                                                   monkeypatch) -> None:
    import workbench.importers.onnx_import as onnx_import

    result = import_onnx(_chain(tmp_path))
    compiles: list[int] = []
    real = onnx_import.compile_graph
    monkeypatch.setattr(onnx_import, "compile_graph", lambda g, *a, **k: compiles.append(1) or real(g, *a, **k))
    assert check_import(result).ok and compiles == []  # the module the import compiled
    first = result.compiled().module
    with torch.no_grad():
        first.fc.weight.zero_()  # what a caller does to the module does not reach the next one
    assert result.compiled().module is first and first.fc.weight.abs().sum() > 0 and compiles == []

    # an edit after the import: act -> Tanh -> out; the check compiles the project as it is now
    graph = result.project.graph
    act, out = graph.by_name("act"), graph.by_name("out")
    edge = graph.edge_into(out.id, "x")
    assert edge is not None and edge.src == act.id
    graph.disconnect(edge)
    tanh = graph.add_node("Tanh", {}, "extra")
    graph.connect(act.id, "y", tanh.id, "x")
    graph.connect(tanh.id, "y", out.id, "x")
    report = check_import(result)
    assert compiles == [1] and not report.ok
    assert report.divergence is not None and report.divergence.onnx_node == "/out/Sigmoid"


def test_the_check_runs_torch_on_one_thread_and_gives_the_count_back(tmp_path: Path, monkeypatch) -> None:
    from workbench.importers import selfcheck

    seen: list[int] = []
    real = selfcheck._ours
    monkeypatch.setattr(selfcheck, "_ours", lambda *a: seen.append(torch.get_num_threads()) or real(*a))
    threads = torch.get_num_threads()
    torch.set_num_threads(3)
    try:
        assert check_import(import_onnx(_chain(tmp_path))).ok
        assert seen == [1, 1] and torch.get_num_threads() == 3
    finally:
        torch.set_num_threads(threads)


def _fixed_batch(tmp: Path, reshape: bool = False) -> Path:
    """The chain exported at batch 2 (no symbolic batch); ``reshape``: a Reshape that fixes it for good."""
    rng = np.random.default_rng(4)
    inits = [numpy_helper.from_array(rng.standard_normal((4, 5)).astype(np.float32), "fc.weight"),
             numpy_helper.from_array(rng.standard_normal(4).astype(np.float32), "fc.bias"),
             numpy_helper.from_array(np.array([2, 2, 2], dtype=np.int64), "shape")]
    nodes = [helper.make_node("Gemm", ["x", "fc.weight", "fc.bias"], ["h"], transB=1, name="/fc/Gemm"),
             helper.make_node("Relu", ["h"], ["y"], name="/act/Relu")]
    if reshape:
        nodes.append(helper.make_node("Reshape", ["y", "shape"], ["z"], name="/view/Reshape"))
    out = vi("z", [2, 2, 2]) if reshape else vi("y", [2, 4])
    return save(tmp, nodes, [vi("x", [2, 5])], [out], inits[:3] if reshape else inits[:2])


def test_a_model_exported_at_a_fixed_batch_is_checked_at_another_too(tmp_path: Path, capfd) -> None:
    report = check_import(import_onnx(_fixed_batch(tmp_path)))
    assert report.ok and [p.label for p in report.probes] == ["batch 2", "batch 3"] and not report.notes
    report = check_import(import_onnx(_fixed_batch(tmp_path, reshape=True)))
    assert report.ok and [p.label for p in report.probes] == ["batch 2"]
    assert report.notes == ["the model fixes its batch size (2): checked at that size only"]
    assert "Reshape" not in capfd.readouterr().err  # the note says it; onnxruntime's log of the failure does not


def test_a_mismatch_at_a_fixed_batch_is_located(tmp_path: Path, relu_is_wrong: None) -> None:
    report = check_import(import_onnx(_fixed_batch(tmp_path)))
    assert [p.ok for p in report.probes] == [False, False]
    assert report.divergence is not None and report.divergence.onnx_node == "/act/Relu"
    assert report.divergence.probe == "batch 2"


def test_our_side_runs_again_when_the_reference_is_fed_otherwise(tmp_path: Path, monkeypatch) -> None:
    # our side runs early, on inputs made from the model; were the reference's not the same, it runs again
    from workbench.importers import selfcheck

    calls: list[int] = []
    real = selfcheck._ours
    monkeypatch.setattr(selfcheck, "_ours", lambda m, feeds: calls.append(1) or real(m, feeds))
    assert check_import(import_onnx(_chain(tmp_path))).ok and len(calls) == 2
    monkeypatch.setattr(selfcheck, "_same", lambda a, b: False)
    report = check_import(import_onnx(_chain(tmp_path)))
    assert report.ok and len(calls) == 2 + 4 and [p.label for p in report.probes] == ["batch 2", "batch 3"]


def test_a_free_batch_copy_that_cannot_be_built_leaves_the_check_at_the_fixed_size(tmp_path: Path,
                                                                                     monkeypatch) -> None:
    from workbench.importers import selfcheck

    def broken(model: onnx.ModelProto) -> onnx.ModelProto:
        raise ValueError("no free batch")

    monkeypatch.setattr(selfcheck, "_free_batch", broken)
    report = check_import(import_onnx(_fixed_batch(tmp_path)))
    assert report.ok and [p.label for p in report.probes] == ["batch 2"]
    assert report.notes == ["the model fixes its batch size (2): checked at that size only"]
