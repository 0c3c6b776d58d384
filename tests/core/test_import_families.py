"""Hand-written torch models of every family, exported by both of torch's ONNX exporters, come back
as projects that check, export, and compute what the torch model computes.

For each family and exporter: export (TorchScript: ``dynamo=False``; torch.export: ``dynamo=True``,
optimised, and unoptimised in the slow set), import (op by op: no project metadata), the import's
self-check against onnxruntime, the parameter count where the export kept every BatchNorm, then the
product's own export of the imported project, run by onnxruntime on fresh inputs (another batch
size, and another length where the export left it free) and compared with the torch model.
"""

from __future__ import annotations

import contextlib
import io
import logging
import warnings
from pathlib import Path

import numpy as np
import onnxruntime as ort
import pytest
import torch
from torch import nn

from workbench.export.onnx_export import export_onnx
from workbench.importers.onnx_import import import_onnx, write_import
from workbench.importers.selfcheck import check_import
from workbench.project import load_project
from workbench.shapes import infer

from .import_family_models import FAMILIES, Family

logging.getLogger("torch.onnx").setLevel(logging.ERROR)
_BN = (nn.BatchNorm1d, nn.BatchNorm2d, nn.BatchNorm3d)
#: attention's lengths the TorchScript exporter cannot leave free (TECH-NOTES 3): exported fixed
_FIXED_LENGTH_UNDER_TORCHSCRIPT = {"transformer", "seq2seq"}


def prepared(family: Family) -> tuple[nn.Module, tuple[torch.Tensor, ...]]:
    """The model with every parameter and statistic moved off its initial value (zero biases would
    hide a bias read from the wrong place), and example inputs."""
    torch.manual_seed(0)
    model = family.make().eval()
    with torch.no_grad():
        for p in model.parameters():
            p.add_(torch.randn_like(p) * 0.1)
        for m in model.modules():
            if isinstance(m, _BN):
                m.running_mean.uniform_(-1, 1)
                m.running_var.uniform_(0.5, 2)
    return model, inputs(family, family.inputs)


def inputs(family: Family, shapes: tuple[tuple[int, ...], ...]) -> tuple[torch.Tensor, ...]:
    return tuple(torch.randint(0, family.int_input, s) if family.int_input else torch.randn(s) for s in shapes)


def export(family: Family, exporter: str, path: Path) -> bool:
    """Export with ``exporter``; returns whether the sequence lengths were left free (and stayed so)."""
    model, xs = prepared(family)
    names = [f"x{i}" for i in range(len(xs))]
    free = family.seq and not (exporter == "torchscript" and family.name in _FIXED_LENGTH_UNDER_TORCHSCRIPT)
    with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()):
        warnings.simplefilter("ignore")
        if exporter == "torchscript":
            axes = {n: {0: "N", 1: f"T{i}"} if free else {0: "N"} for i, n in enumerate(names)}
            torch.onnx.export(model, xs, str(path), dynamo=False, input_names=names, dynamic_axes=axes,
                              opset_version=17)
        else:
            batch = torch.export.Dim("batch")
            shapes = tuple({0: batch, 1: torch.export.Dim(f"T{i}", min=2, max=64)} if free else {0: batch}
                           for i in range(len(xs)))
            program = torch.onnx.export(model, xs, dynamo=True, optimize=exporter == "dynamo", verbose=False,
                                        input_names=names, dynamic_shapes=shapes)
            program.save(str(path))
    import onnx

    dims = onnx.load(str(path), load_external_data=False).graph.input[0].type.tensor_type.shape.dim
    return free and len(dims) > 1 and bool(dims[1].dim_param)  # torch.export may fix a recurrent layer's length


def fresh(family: Family, free: bool) -> tuple[torch.Tensor, ...]:
    """Inputs at another batch size (and another length, where it is free)."""
    shapes = tuple((3, s[1] + 2, *s[2:]) if free and len(s) > 1 else (3, *s[1:]) for s in family.inputs)
    torch.manual_seed(7)
    return inputs(family, shapes)


def imported(family: Family, exporter: str, tmp_path: Path) -> tuple[nn.Module, object, bool]:
    """Export, import, check against onnxruntime, count parameters; returns the model, the import
    and whether the lengths were left free."""
    model, _ = prepared(family)
    free = export(family, exporter, tmp_path / "orig.onnx")
    result = import_onnx(tmp_path / "orig.onnx")
    assert not result.lossless
    report = check_import(result)
    assert report.ok, report.text()
    counts = infer(result.project.graph).total_params()
    kept = sum(n.type.startswith("BatchNorm") for n in result.project.graph) == sum(isinstance(m, _BN) for m in
                                                                                   model.modules())
    if kept:  # every BatchNorm kept (not folded into a convolution): the same parameters, exactly
        assert counts == sum(p.numel() for p in model.parameters())
    return model, result, free


def compare(model: nn.Module, run: object, xs: tuple[torch.Tensor, ...]) -> None:
    with torch.no_grad():
        expected = model(*xs).numpy()
    np.testing.assert_allclose(run(xs), expected, atol=1e-4, rtol=1e-3)  # type: ignore[operator]


#: torch.export runs that take long (a recurrent or attention model: 10-20 s each on two cores): slow set
_SLOW_DYNAMO = {"seq2seq", "lstm_mean_bi", "gru_mean"}
IMPORTS = [pytest.param(f, e, id=f"{f.name}-{e}", marks=[pytest.mark.slow] if e == "dynamo_noopt" or (
    e == "dynamo" and f.name in _SLOW_DYNAMO) else []) for f in FAMILIES for e in ("torchscript", "dynamo",
                                                                                  "dynamo_noopt")]


@pytest.mark.parametrize(("family", "exporter"), IMPORTS)
def test_family_imports_checks_and_computes_what_torch_computes(family: Family, exporter: str,
                                                                 tmp_path: Path) -> None:
    from workbench.compiler import compile_graph
    from workbench.importers.onnx_import import _load_state

    model, result, free = imported(family, exporter, tmp_path)
    compiled = compile_graph(result.project.graph)  # type: ignore[attr-defined]
    _load_state(compiled.module, result.tensors)  # type: ignore[attr-defined]

    def run(xs: tuple[torch.Tensor, ...]) -> np.ndarray:
        with torch.no_grad():
            return compiled.module.eval()(*xs).numpy()

    compare(model, run, fresh(family, free))


_DEFAULT_ROUND_TRIPS = {("cnn", "torchscript"), ("vit", "torchscript"), ("lstm_last", "torchscript")}
ROUND_TRIPS = [pytest.param(f, e, id=f"{f.name}-{e}", marks=[] if (f.name, e) in _DEFAULT_ROUND_TRIPS else
                            [pytest.mark.slow]) for f in FAMILIES for e in ("torchscript", "dynamo", "dynamo_noopt")]


@pytest.mark.parametrize(("family", "exporter"), ROUND_TRIPS)
def test_family_round_trips_through_the_products_export(family: Family, exporter: str, tmp_path: Path) -> None:
    """Imported, written, loaded, exported by the product (verified by onnxruntime), run again."""
    model, result, free = imported(family, exporter, tmp_path)
    write_import(result, tmp_path / "imported.json")  # type: ignore[arg-type]
    export_onnx(load_project(tmp_path / "imported.json"), tmp_path / "again.onnx")
    session = ort.InferenceSession(str(tmp_path / "again.onnx"), providers=["CPUExecutionProvider"])

    def run(xs: tuple[torch.Tensor, ...]) -> np.ndarray:
        return session.run(None, {i.name: x.numpy() for i, x in zip(session.get_inputs(), xs, strict=True)})[0]

    compare(model, run, fresh(family, free))


def test_recurrent_layers_stay_recurrent_and_attention_stays_attention(tmp_path: Path) -> None:
    """The patterns come back as the layers they were, not as op-level graphs."""
    expected = {"lstm_mean_bi": ("LSTM", 2), "transformer": ("TransformerEncoderLayer", 2), "vit": ("Parameter", 2),
                "seq2seq": ("TransformerDecoderLayer", 1), "mobilenet": ("Hardswish", 5)}
    for family in FAMILIES:
        if family.name not in expected:
            continue
        export(family, "torchscript", tmp_path / f"{family.name}.onnx")
        types = [n.type for n in import_onnx(tmp_path / f"{family.name}.onnx").project.graph]
        layer, count = expected[family.name]
        assert types.count(layer) == count, (family.name, types)
