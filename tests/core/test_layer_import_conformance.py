"""Import conformance over the whole catalogue: every layer's first example, exported by the product's
ONNX exporter with the project metadata stripped (so the op-by-op path runs, not the lossless one),
imports back and passes the self-check against onnxruntime.

A dynamo export costs seconds per layer, so the default suite runs the layers whose export needs a
recogniser (several ONNX ops for one layer, or a form only one exporter writes); ``-m slow`` runs all.
"""

from __future__ import annotations

from pathlib import Path

import onnx
import pytest

from workbench.export.onnx_export import PROJECT_KEY, export_onnx
from workbench.importers.onnx_import import import_onnx
from workbench.importers.selfcheck import check_import
from workbench.project import Project

from .test_layer_conformance import LAYERS, single_layer_graph

#: layers exported as patterns (attention, unrolled RNN, split sequences, Softplus's threshold...)
_DEFAULT = {"MultiheadAttention", "TransformerDecoderLayer", "RNN", "LSTM", "Softplus", "Split", "Parameter", "GLU",
            "Hardswish", "Conv2d", "Upsample", "ScaleBias"}
CASES = [pytest.param(s, id=s.id, marks=[] if s.id in _DEFAULT else [pytest.mark.slow]) for s in LAYERS]


@pytest.mark.parametrize("spec", CASES)
def test_layer_exported_by_the_product_imports_back_equal(spec, tmp_path: Path) -> None:
    graph, _ = single_layer_graph(spec, spec.examples[0])
    export_onnx(Project(graph, spec.id), tmp_path / "m.onnx")
    model = onnx.load(str(tmp_path / "m.onnx"))
    keep = [p for p in model.metadata_props if p.key != PROJECT_KEY]
    del model.metadata_props[:]
    model.metadata_props.extend(keep)
    onnx.save(model, str(tmp_path / "stripped.onnx"))
    result = import_onnx(tmp_path / "stripped.onnx")
    assert not result.lossless
    report = check_import(result)
    assert report.ok, report.text()
