"""Convolution, pooling, upsampling and normalisation semantics the generated conformance examples
cannot show: asymmetric ``pads`` against onnxruntime running hand-built ONNX nodes, output-size
rules (ceil_mode, dilation, symbolic lengths) against torch, Upsample's size vs scale, old project
values, and the settings that must change behaviour or be refused with a located reason."""

from __future__ import annotations

import json
import math
import random
import re
from pathlib import Path
from typing import Any

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch
import torch.nn.functional as F
from onnx import TensorProto, helper, numpy_helper
from torch import nn

from workbench.compiler import compile_graph
from workbench.errors import CompileError
from workbench.export.onnx_export import ExportError, export_onnx
from workbench.graph import Graph
from workbench.layers import REGISTRY
from workbench.layers.dims import window_out
from workbench.layers.spec import Example, LayerShapeError
from workbench.project import Project, load_project
from workbench.shapes import infer

from .test_layer_conformance import single_layer_graph

ROOT = Path(__file__).resolve().parents[2]


# --------------------------------------------------------------------------- helpers


def onnxruntime_node(op: str, attrs: dict[str, Any], x: np.ndarray, inits: dict[str, np.ndarray]) -> np.ndarray:
    """Run one hand-built ONNX node (opset 19) on ``x`` under onnxruntime."""
    node = helper.make_node(op, ["x", *inits], ["y"], **attrs)
    graph = helper.make_graph(
        [node], "one_node", [helper.make_tensor_value_info("x", TensorProto.FLOAT, x.shape)],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [None] * x.ndim)],
        initializer=[numpy_helper.from_array(v, k) for k, v in inits.items()],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 19)])
    onnx.checker.check_model(model)
    options = ort.SessionOptions()
    options.log_severity_level = 3  # onnx's own shape inference disagrees with the kernel on ceil_mode: noise
    session = ort.InferenceSession(model.SerializeToString(), options, providers=["CPUExecutionProvider"])
    return session.run(None, {"x": x})[0]


def compiled_layer(type_id: str, params: dict[str, Any], shape: tuple[int, ...]) -> tuple[nn.Module, tuple]:
    """The layer compiled alone, and its inferred output shape for batch ``shape[0]``."""
    g, nid = single_layer_graph(REGISTRY[type_id], Example(params, (shape,)))
    info = infer(g).info(nid)
    assert info.status == "ok", info.error
    out = tuple(shape[0] if d == "N" else d for d in info.outputs["y"])
    return compile_graph(g).module.eval(), out


def shape_error(type_id: str, params: dict[str, Any], shape: list[Any]) -> Any:
    """The located error inference gives the layer fed ``[N, *shape]``."""
    g = Graph()
    src = g.add_node("Input", {"shape": shape})
    node = g.add_node(type_id, params, name="layer")
    g.connect(src.id, "y", node.id, "x")
    info = infer(g).info(node.id)
    assert info.status == "error", f"{type_id} {params} accepted {shape}"
    return info.error


def one_param(nd: int, values: list[int]) -> Any:
    return values[0] if nd == 1 else tuple(values)


def split(begin: list[int], end: list[int], torch_part: bool, kernel: list[int] | None = None
          ) -> tuple[list[int], tuple[int, ...]]:
    """ONNX pads as (padding, pads): the symmetric part in torch's ``padding`` or all in ``pads``."""
    nd = len(begin)
    pad = [min(begin[i], end[i]) if torch_part else 0 for i in range(nd)]
    if kernel is not None:  # pooling: torch's own padding is at most half the window
        pad = [p if 2 * p <= kernel[i] else 0 for i, p in enumerate(pad)]
    return pad, tuple([begin[i] - pad[i] for i in range(nd)] + [end[i] - pad[i] for i in range(nd)])


def run(module: nn.Module, x: np.ndarray) -> np.ndarray:
    with torch.no_grad():
        return module(torch.from_numpy(x)).numpy()


# --------------------------------------------------------------------------- pads vs onnxruntime

# (nd, kernel, stride, dilation, begin, end, ceil_mode, input spatial size)
POOL_CASES = {
    "caffe-alexnet-3x3s2-pads-0011": (2, [3, 3], [2, 2], [1, 1], [0, 0], [1, 1], False, [13, 13]),
    "tf-same-2x2s2-end-only": (2, [2, 2], [2, 2], [1, 1], [0, 0], [1, 1], False, [7, 5]),
    "1d-begin-only-dilated": (1, [3], [2], [2], [2], [0], False, [9]),
    "3d-mixed": (3, [2, 3, 2], [2, 1, 2], [1, 1, 1], [1, 0, 1], [0, 2, 1], False, [5, 4, 6]),
    "ceil-window-starting-in-end-pad": (2, [2, 3], [4, 2], [1, 1], [1, 0], [1, 2], True, [3, 5]),
    "ceil-1d": (1, [3], [2], [1], [1], [2], True, [8]),
}


@pytest.mark.parametrize("torch_part", [False, True], ids=["all-in-pads", "symmetric-part-in-padding"])
@pytest.mark.parametrize("case", list(POOL_CASES), ids=list(POOL_CASES))
def test_max_pool_pads_match_onnxruntime(case: str, torch_part: bool) -> None:
    nd, k, s, d, begin, end, ceil, size = POOL_CASES[case]
    pad, pads = split(begin, end, torch_part, k)
    x = np.random.RandomState(0).randn(2, 3, *size).astype(np.float32) - 5  # all negative: 0-padding would win
    module, shape = compiled_layer(f"MaxPool{nd}d", {
        "kernel_size": one_param(nd, k), "stride": one_param(nd, s), "dilation": one_param(nd, d),
        "padding": one_param(nd, pad), "pads": pads, "ceil_mode": ceil}, x.shape)
    want = onnxruntime_node("MaxPool", {"kernel_shape": k, "strides": s, "dilations": d, "pads": begin + end,
                                        "ceil_mode": int(ceil)}, x, {})
    got = run(module, x)
    assert got.shape == want.shape == shape
    np.testing.assert_array_equal(got, want)


@pytest.mark.parametrize("count_include_pad", [0, 1])
@pytest.mark.parametrize("torch_part", [False, True], ids=["all-in-pads", "symmetric-part-in-padding"])
@pytest.mark.parametrize("case", list(POOL_CASES), ids=list(POOL_CASES))
def test_average_pool_pads_follow_onnx_count_include_pad(case: str, torch_part: bool, count_include_pad: int) -> None:
    nd, k, s, _, begin, end, ceil, size = POOL_CASES[case]
    pad, pads = split(begin, end, torch_part, k)
    x = np.random.RandomState(1).rand(2, 3, *size).astype(np.float32) + 1
    module, shape = compiled_layer(f"AvgPool{nd}d", {
        "kernel_size": one_param(nd, k), "stride": one_param(nd, s), "padding": one_param(nd, pad), "pads": pads,
        "ceil_mode": ceil, "count_include_pad": bool(count_include_pad)}, x.shape)
    want = onnxruntime_node("AveragePool", {"kernel_shape": k, "strides": s, "pads": begin + end,
                                            "ceil_mode": int(ceil), "count_include_pad": count_include_pad}, x, {})
    got = run(module, x)
    assert got.shape == want.shape == shape
    np.testing.assert_allclose(got, want, rtol=1e-6, atol=1e-6)


def test_count_include_pad_changes_the_average_at_the_padded_border() -> None:
    x = np.ones((1, 1, 4, 4), np.float32)
    outs = [run(compiled_layer("AvgPool2d", {"kernel_size": (3, 3), "stride": (1, 1), "pads": (0, 0, 1, 1),
                                             "count_include_pad": cip}, x.shape)[0], x) for cip in (True, False)]
    assert outs[0][0, 0, -1, -1] == pytest.approx(4 / 9)  # 4 ones and 5 padded zeros, over 9
    assert outs[1][0, 0, -1, -1] == pytest.approx(1.0)  # over the 4 input elements only


CONV_CASES = {
    "tf-same-3x3s2-end-only": (2, [3, 3], [2, 2], [1, 1], 1, [0, 0], [1, 1], [8, 7]),
    "begin-heavy-grouped": (2, [3, 2], [1, 2], [1, 1], 2, [2, 0], [1, 1], [5, 6]),
    "1d-dilated": (1, [3], [2], [2], 1, [3], [1], [9]),
    "3d-depthwise": (3, [2, 2, 3], [1, 2, 1], [1, 1, 2], 4, [1, 0, 2], [0, 1, 1], [4, 5, 6]),
}


@pytest.mark.parametrize("torch_part", [False, True], ids=["all-in-pads", "symmetric-part-in-padding"])
@pytest.mark.parametrize("case", list(CONV_CASES), ids=list(CONV_CASES))
def test_conv_pads_match_onnxruntime(case: str, torch_part: bool) -> None:
    nd, k, s, d, groups, begin, end, size = CONV_CASES[case]
    pad, pads = split(begin, end, torch_part)
    x = np.random.RandomState(2).randn(2, 4, *size).astype(np.float32)
    module, shape = compiled_layer(f"Conv{nd}d", {
        "out_channels": 4, "kernel_size": one_param(nd, k), "stride": one_param(nd, s), "dilation": one_param(nd, d),
        "groups": groups, "padding": one_param(nd, pad), "pads": pads}, x.shape)
    sd = {key.rsplit(".", 1)[1]: v.detach().numpy() for key, v in module.state_dict().items()}
    want = onnxruntime_node("Conv", {"kernel_shape": k, "strides": s, "dilations": d, "group": groups,
                                     "pads": begin + end}, x, {"W": sd["weight"], "B": sd["bias"]})
    got = run(module, x)
    assert got.shape == want.shape == shape
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("torch_part", [False, True], ids=["all-in-pads", "symmetric-part-in-padding"])
def test_conv_transpose_pads_crop_as_onnxruntime(torch_part: bool) -> None:
    begin, end = [0, 2, 1], [1, 1, 0]
    pad, pads = split(begin, end, torch_part)
    x = np.random.RandomState(3).randn(2, 4, 3, 4, 2).astype(np.float32)
    module, shape = compiled_layer("ConvTranspose3d", {
        "out_channels": 6, "kernel_size": (3, 3, 2), "stride": (2, 2, 3), "dilation": (1, 2, 1), "groups": 2,
        "output_padding": (1, 0, 2), "padding": tuple(pad), "pads": pads}, x.shape)
    sd = {key.rsplit(".", 1)[1]: v.detach().numpy() for key, v in module.state_dict().items()}
    want = onnxruntime_node("ConvTranspose", {"kernel_shape": [3, 3, 2], "strides": [2, 2, 3], "dilations": [1, 2, 1],
                                              "group": 2, "output_padding": [1, 0, 2], "pads": begin + end},
                            x, {"W": sd["weight"], "B": sd["bias"]})
    got = run(module, x)
    assert got.shape == want.shape == shape
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5)


def _reaches_input(size: int, k: int, s: int, d: int, begin: int, out: int) -> bool:
    """Every window of a dilated max pool holds an input element (else torch gives -inf and
    onnxruntime its lowest float: a window of padding alone has no maximum)."""
    return all(any(0 <= o * s - begin + j * d < size for j in range(k)) for o in range(out))


@pytest.mark.parametrize("op", ["MaxPool", "AveragePool", "Conv", "ConvTranspose"])
def test_random_windows_with_pads_match_onnxruntime(op: str) -> None:
    """A seeded sweep over ranks, kernels, strides, dilations, pads, ceil_mode and count_include_pad."""
    rng = random.Random(op)
    compared = 0
    while compared < 40:
        nd = rng.choice([1, 2, 3])
        k = [rng.randint(1, 4) for _ in range(nd)]
        s = [rng.randint(1, 3) for _ in range(nd)]
        d = [rng.randint(1, 3) if op != "AveragePool" else 1 for _ in range(nd)]
        ceil, cip, groups = rng.random() < 0.5, rng.random() < 0.5, rng.choice([1, 2])
        size = [rng.randint(1, 9) for _ in range(nd)]
        op_pad = [0] * nd
        if op == "ConvTranspose":
            op_pad = [rng.randint(0, s[i] - 1) for i in range(nd)]
            full = [(size[i] - 1) * s[i] + d[i] * (k[i] - 1) + op_pad[i] + 1 for i in range(nd)]
            begin = [rng.randint(0, (f - 1) // 2) for f in full]
            end = [rng.randint(0, (f - 1) // 2) for f in full]
        else:
            limit = [k[i] - 1 if op != "Conv" else 3 for i in range(nd)]  # onnxruntime: pool pads < kernel
            begin = [rng.randint(0, m) for m in limit]
            end = [rng.randint(0, m) for m in limit]
            size = [max(size[i], d[i] * (k[i] - 1) + 1 - begin[i] - end[i]) for i in range(nd)]
        pool = op in ("MaxPool", "AveragePool")
        pad, pads = split(begin, end, rng.random() < 0.5, k if pool else None)
        params: dict[str, Any] = {"kernel_size": one_param(nd, k), "stride": one_param(nd, s),
                                  "padding": one_param(nd, pad), "pads": pads}
        attrs: dict[str, Any] = {"kernel_shape": k, "strides": s, "pads": begin + end}
        channels = 2
        if pool:
            type_id = f"{'Max' if op == 'MaxPool' else 'Avg'}Pool{nd}d"
            params["ceil_mode"], attrs["ceil_mode"] = ceil, int(ceil)
            if op == "MaxPool":
                params["dilation"], attrs["dilations"] = one_param(nd, d), d
            else:
                params["count_include_pad"], attrs["count_include_pad"] = cip, int(cip)
        else:
            type_id = f"{op}{nd}d"
            params |= {"out_channels": 4, "dilation": one_param(nd, d), "groups": groups}
            attrs |= {"dilations": d, "group": groups}
            if op == "ConvTranspose":
                params["output_padding"], attrs["output_padding"] = one_param(nd, op_pad), op_pad
        x = np.random.RandomState(compared).randn(2, channels, *size).astype(np.float32)
        try:
            module, shape = compiled_layer(type_id, params, x.shape)
        except AssertionError:
            continue  # a window that does not fit: refused with its reason (tested elsewhere)
        if op == "MaxPool" and not all(_reaches_input(size[i], k[i], s[i], d[i], begin[i], shape[2 + i])
                                       for i in range(nd)):
            continue
        sd = {key.rsplit(".", 1)[1]: v.detach().numpy() for key, v in module.state_dict().items()}
        inits = {"W": sd["weight"], **({"B": sd["bias"]} if "bias" in sd else {})} if not pool else {}
        want = onnxruntime_node(op, attrs, x, inits)
        got = run(module, x)
        assert got.shape == want.shape == shape, (type_id, params, size)
        np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5, err_msg=f"{type_id} {params} {size}")
        compared += 1


# --------------------------------------------------------------------------- output sizes vs torch


def _symbolic_value(expr: Any, n: int) -> int:
    """Evaluate a symbolic size such as ``(T+1)//2`` or ``floor(T*1.5)`` at ``T = n``."""
    if isinstance(expr, int):
        return expr
    return eval(re.sub(r"[A-Za-z_]\w*", lambda m: m.group() if m.group() == "floor" else "T", expr),
                {"T": n, "floor": math.floor})


@pytest.mark.parametrize("type_id", ["MaxPool1d", "AvgPool1d"])
def test_pool_output_length_equals_torch_and_its_symbolic_form(type_id: str) -> None:
    """Every kernel, stride, padding, dilation and ceil_mode over small lengths: the rule's size equals
    torch's (including ceil_mode's rule that a last window may not start in the padding), torch's
    refusals are refusals, and the symbolic size evaluates to the same number."""
    spec = REGISTRY[type_id]
    fn = F.max_pool1d if type_id == "MaxPool1d" else F.avg_pool1d
    checked = 0
    for k in range(1, 5):
        for s in range(1, 4):
            for p in range(0, k // 2 + 1):
                for d in (1, 2, 3) if type_id == "MaxPool1d" else (1,):
                    for ceil in (False, True):
                        params = {"kernel_size": k, "stride": s, "padding": p, "ceil_mode": ceil, "pads": (0, 0),
                                  "count_include_pad": True} | ({"dilation": d} if type_id == "MaxPool1d" else {})
                        (sym,) = spec.infer(params, [("N", 2, "T")])
                        for length in range(1, 13):
                            kwargs = {"dilation": d} if type_id == "MaxPool1d" else {}
                            try:
                                want = fn(torch.zeros(1, 2, length), k, s, p, ceil_mode=ceil, **kwargs).shape[2]
                            except RuntimeError:
                                with pytest.raises(LayerShapeError):
                                    spec.infer(params, [("N", 2, length)])
                                continue
                            (out,) = spec.infer(params, [("N", 2, length)])
                            assert out[2] == want, (params, length)
                            assert _symbolic_value(sym[2], length) == want, (params, length, sym)
                            checked += 1
    assert checked > 500


def test_the_shared_window_helper_writes_a_symbolic_size_that_evaluates_right() -> None:
    """window_out's strided symbolic form was one short of the real size ((T-1)//2 for T//2 + ...)."""
    for k, s, p, d in [(3, 2, 1, 1), (2, 2, 0, 1), (3, 3, 0, 2), (1, 2, 0, 1), (5, 4, 2, 1)]:
        expr = window_out("T", k, s, p, d, "kernel_size")
        for n in range(d * (k - 1) + 1, 20):
            assert _symbolic_value(expr, n) == window_out(n, k, s, p, d, "kernel_size"), (k, s, p, d, n, expr)


@pytest.mark.parametrize(("type_id", "params"), [
    ("Conv1d", {"out_channels": 2, "kernel_size": 3, "stride": 2, "padding": 1, "dilation": 2}),
    ("Conv1d", {"out_channels": 2, "kernel_size": 4, "stride": 3, "pads": (2, 1), "padding_mode": "replicate"}),
    ("ConvTranspose1d", {"out_channels": 2, "kernel_size": 3, "stride": 2, "output_padding": 1, "pads": (1, 0)}),
    ("MaxPool1d", {"kernel_size": 3, "stride": 2, "ceil_mode": True, "pads": (2, 0)}),
    ("AvgPool1d", {"kernel_size": 3, "stride": 2, "padding": 1, "ceil_mode": True, "count_include_pad": False}),
    ("Upsample", {"scale_factor": 2.5, "mode": "linear"}),
])
def test_symbolic_lengths_stay_symbolic_and_evaluate_to_the_real_length(type_id: str, params: dict) -> None:
    g = Graph()
    src = g.add_node("Input", {"shape": [3, "T"]})
    node = g.add_node(type_id, params)
    g.connect(src.id, "y", node.id, "x")
    g.connect(node.id, "y", g.add_node("Output").id, "x")
    out = infer(g).info(node.id).outputs["y"]
    assert isinstance(out[2], str) and "T" in out[2]
    module = compile_graph(g).module.eval()
    for n in (6, 9, 10):
        with torch.no_grad():
            assert module(torch.randn(2, 3, n)).shape[2] == _symbolic_value(out[2], n), (n, out[2])


def test_ceil_mode_with_end_pads_needs_a_fixed_length_when_a_window_could_start_in_them() -> None:
    err = shape_error("MaxPool1d", {"kernel_size": 2, "stride": 3, "pads": (0, 1), "ceil_mode": True}, [3, "T"])
    assert err.param == "ceil_mode" and "symbolic size T" in str(err)


# --------------------------------------------------------------------------- Upsample


def test_upsample_by_scale_and_by_size_are_different_resamplings() -> None:
    """Scale 1.5 on 5 and size 7 give the same shape, but torch maps coordinates by the given
    scale, not by 7/5: the values differ, and each equals F.interpolate with that argument."""
    x = torch.randn(2, 3, 5, 5)
    by_scale, shape_a = compiled_layer("Upsample", {"scale_factor": 1.5, "mode": "bilinear"}, tuple(x.shape))
    by_size, shape_b = compiled_layer("Upsample", {"resize_by": "size", "size": (7,), "mode": "bilinear"},
                                      tuple(x.shape))
    assert shape_a == shape_b == (2, 3, 7, 7)
    with torch.no_grad():
        a, b = by_scale(x), by_size(x)
    torch.testing.assert_close(a, F.interpolate(x, scale_factor=1.5, mode="bilinear", align_corners=False))
    torch.testing.assert_close(b, F.interpolate(x, size=7, mode="bilinear", align_corners=False))
    assert (a - b).abs().max() > 1e-3


def test_upsample_per_dimension_scales_sizes_and_align_corners() -> None:
    x = torch.randn(1, 2, 3, 4, 5)
    module, shape = compiled_layer("Upsample", {"scale_factor": (2, 0.5, 1.3), "mode": "trilinear"}, tuple(x.shape))
    assert shape == (1, 2, 6, 2, 6)  # floor(5 * 1.3) = 6
    with torch.no_grad():
        torch.testing.assert_close(module(x), F.interpolate(x, scale_factor=(2.0, 0.5, 1.3), mode="trilinear"))
    outs = []
    for align in (False, True):
        module, shape = compiled_layer("Upsample", {"resize_by": "size", "size": (4, 6, 7), "mode": "trilinear",
                                                    "align_corners": align}, tuple(x.shape))
        assert shape == (1, 2, 4, 6, 7)
        with torch.no_grad():
            outs.append(module(x))
        torch.testing.assert_close(outs[-1], F.interpolate(x, size=(4, 6, 7), mode="trilinear", align_corners=align))
    assert (outs[0] - outs[1]).abs().max() > 1e-3


@pytest.mark.parametrize(("params", "shape", "param", "text"), [
    ({"mode": "nearest", "align_corners": True}, [2, 4, 4], "align_corners", "not to nearest"),
    ({"mode": "bilinear"}, [2, 8], "mode", "4-D input"),
    ({"mode": "trilinear"}, [2, 4, 4], "mode", "5-D input"),
    ({"scale_factor": (2, 3)}, [2, 4, 4, 4], "scale_factor", "1 value"),
    ({"resize_by": "size", "size": (4, 4)}, [2, 8], "size", "1 value"),
    ({"scale_factor": 0.1}, [2, 4, 4], "scale_factor", "into 0"),
])
def test_upsample_refuses_what_torch_cannot_do_naming_the_parameter(params, shape, param, text) -> None:
    err = shape_error("Upsample", params, shape)
    assert err.param == param and text in str(err)


def test_upsample_scale_must_be_positive_and_finite() -> None:
    from workbench.errors import ParamError

    for bad in (0, -1.5, float("nan"), [1, 2, 3, 4], "2", True):
        with pytest.raises(ParamError, match="scale_factor"):
            Graph().add_node("Upsample", {"scale_factor": bad})


def test_an_old_project_upsample_keeps_its_meaning(tmp_path: Path) -> None:
    """Before this change scale_factor was one int; such a file loads as the same float factor,
    computes what nn.Upsample(scale_factor=2.0) computes, and saves in the new form."""
    doc = json.loads((ROOT / "samples" / "digits_autoencoder.json").read_text())
    node = next(n for n in doc["graph"]["nodes"] if n["name"] == "dec_up1")
    node["type"], node["params"] = "Upsample", {"scale_factor": 2, "mode": "bilinear"}
    path = tmp_path / "old.json"
    path.write_text(json.dumps(doc))
    project = load_project(path)
    up = project.graph.by_name("dec_up1")
    assert up.params["scale_factor"] == (2.0,) and up.params["resize_by"] == "scale_factor"
    compiled = compile_graph(project.graph)
    sub = dict(compiled.module.named_modules())[compiled.attr_of[up.id]]
    x = torch.randn(2, 16, 2, 2)
    torch.testing.assert_close(sub(x), nn.Upsample(scale_factor=2.0, mode="bilinear", align_corners=False)(x))
    saved = json.loads(project.to_json())
    assert next(n for n in saved["graph"]["nodes"] if n["name"] == "dec_up1")["params"]["scale_factor"] == [2.0]


def test_older_projects_keep_their_generated_module_calls() -> None:
    """Options added at torch's defaults leave the constructor calls of old nodes as they were."""
    old = {
        "MaxPool2d": ({"kernel_size": [2, 2], "stride": [2, 2], "padding": [0, 0]}, (2, 3, 8, 8),
                      "nn.MaxPool2d((2, 2), stride=(2, 2), padding=(0, 0))"),
        "AvgPool2d": ({"kernel_size": [2, 2], "stride": [2, 2], "padding": [0, 0]}, (2, 3, 8, 8),
                      "nn.AvgPool2d((2, 2), stride=(2, 2), padding=(0, 0))"),
        "ConvTranspose2d": ({"out_channels": 16, "kernel_size": [2, 2], "stride": [2, 2], "padding": [0, 0],
                             "output_padding": [0, 0], "bias": True}, (2, 16, 2, 2),
                            "nn.ConvTranspose2d(16, 16, (2, 2), stride=(2, 2), padding=(0, 0), "
                            "output_padding=(0, 0), bias=True)"),
        "Conv2d": ({"out_channels": 16, "kernel_size": [3, 3], "stride": [1, 1], "padding": [1, 1],
                    "dilation": [1, 1], "groups": 1, "bias": True}, (2, 1, 8, 8),
                   "nn.Conv2d(1, 16, (3, 3), stride=(1, 1), padding=(1, 1), dilation=(1, 1), groups=1, bias=True)"),
        "Upsample": ({"scale_factor": 2, "mode": "nearest"}, (2, 3, 4, 4),
                     "nn.Upsample(scale_factor=2.0, mode='nearest')"),
    }
    for type_id, (params, shape, source) in old.items():
        g, _ = single_layer_graph(REGISTRY[type_id], Example(params, (shape,)))
        (call,) = compile_graph(g).calls.values()
        assert call.source() == source


# --------------------------------------------------------------------------- convolution settings


@pytest.mark.parametrize("mode", ["reflect", "replicate", "circular"])
def test_padding_mode_pads_with_what_it_names(mode: str) -> None:
    x = torch.randn(2, 2, 5, 6)
    outs = {}
    for m in ("zeros", mode):
        module, _ = compiled_layer("Conv2d", {"out_channels": 3, "kernel_size": (3, 3), "padding": (1, 2),
                                              "padding_mode": m}, tuple(x.shape))
        torch.manual_seed(0)
        for p in module.parameters():
            nn.init.normal_(p)
        with torch.no_grad():
            outs[m] = module(x)
        conv = dict(module.named_modules())["layer"]
        with torch.no_grad():
            padded = F.pad(x, (2, 2, 1, 1), mode="constant" if m == "zeros" else m)
            torch.testing.assert_close(outs[m], F.conv2d(padded, conv.weight, conv.bias))
    assert (outs["zeros"] - outs[mode]).abs().max() > 1e-3


def test_pads_use_the_padding_mode_too() -> None:
    x = torch.randn(1, 2, 6, 5)
    module, shape = compiled_layer("Conv2d", {"out_channels": 2, "kernel_size": (3, 3), "padding": (1, 0),
                                              "pads": (0, 2, 1, 0), "padding_mode": "reflect"}, tuple(x.shape))
    conv = dict(module.named_modules())["layer"]
    with torch.no_grad():
        want = F.conv2d(F.pad(x, (2, 0, 1, 2), mode="reflect"), conv.weight, conv.bias)
        assert module(x).shape == want.shape == shape
        torch.testing.assert_close(module(x), want)


@pytest.mark.parametrize(("type_id", "params", "shape", "param", "text"), [
    ("Conv2d", {"kernel_size": (3, 3), "padding": (3, 0), "padding_mode": "reflect"}, [2, 3, 9],
     "padding_mode", "smaller than the input size 3"),
    ("Conv1d", {"kernel_size": 3, "pads": (0, 6), "padding_mode": "circular"}, [2, 5], "padding_mode", "at most"),
    ("Conv3d", {"out_channels": 4, "groups": 3}, [6, 4, 4, 4], "groups", "must divide"),
    ("ConvTranspose3d", {"out_channels": 4, "groups": 4}, [6, 2, 2, 2], "groups", "must divide"),
    ("ConvTranspose2d", {"stride": (2, 2), "output_padding": (2, 0)}, [3, 4, 4], "output_padding", "smaller"),
    ("ConvTranspose1d", {"kernel_size": 2, "stride": 1, "padding": 1}, [3, 1], "padding", "crop away"),
    ("MaxPool2d", {"kernel_size": (2, 2), "padding": (2, 0)}, [3, 8, 8], "padding", "at most half"),
    ("AvgPool1d", {"kernel_size": 2, "pads": (0, 2)}, [3, 8], "pads", "smaller than kernel_size"),
    ("MaxPool3d", {}, [3, 8, 8], None, "[N, C, D, H, W]"),
])
def test_settings_torch_or_onnxruntime_refuse_are_refused_by_name(type_id, params, shape, param, text) -> None:
    err = shape_error(type_id, params, shape)
    assert err.param == param and text in str(err), str(err)


def test_ceil_mode_and_dilation_change_max_pooling() -> None:
    x = torch.randn(1, 1, 7, 7)
    _, floor_shape = compiled_layer("MaxPool2d", {}, tuple(x.shape))
    _, ceil_shape = compiled_layer("MaxPool2d", {"ceil_mode": True}, tuple(x.shape))
    assert floor_shape == (1, 1, 3, 3) and ceil_shape == (1, 1, 4, 4)
    plain, _ = compiled_layer("MaxPool2d", {"stride": (1, 1)}, tuple(x.shape))
    dilated, _ = compiled_layer("MaxPool2d", {"stride": (1, 1), "dilation": (2, 2)}, tuple(x.shape))
    with torch.no_grad():
        torch.testing.assert_close(dilated(x), F.max_pool2d(x, 2, 1, dilation=2))
        assert plain(x).shape != dilated(x).shape


# --------------------------------------------------------------------------- normalisation


def _train_then_eval(type_id: str, params: dict[str, Any], x: torch.Tensor) -> tuple[nn.Module, torch.Tensor]:
    module, _ = compiled_layer(type_id, params, tuple(x.shape))
    module.train()
    with torch.no_grad():
        module(x * 3 + 1)
    module.eval()
    with torch.no_grad():
        return module, module(x)


@pytest.mark.parametrize("nd", [1, 2, 3])
def test_instance_norm_running_stats_and_momentum_change_evaluation(nd: int) -> None:
    x = torch.randn(2, 3, *([4] * nd))
    _, own = _train_then_eval(f"InstanceNorm{nd}d", {}, x)
    torch.testing.assert_close(own, F.instance_norm(x, eps=1e-5))  # always the sample's own statistics
    slow, tracked = _train_then_eval(f"InstanceNorm{nd}d", {"track_running_stats": True, "momentum": 0.1}, x)
    fast, _ = _train_then_eval(f"InstanceNorm{nd}d", {"track_running_stats": True, "momentum": 0.9}, x)
    assert (own - tracked).abs().max() > 1e-2  # evaluation uses the running statistics
    means = [dict(m.named_buffers())["layer.running_mean"] for m in (slow, fast)]
    assert (means[0] - means[1]).abs().max() > 1e-2


def test_instance_norm_refuses_one_position_per_channel() -> None:
    err = shape_error("InstanceNorm2d", {}, [3, 1, 1])
    assert "only one" in str(err)


def test_group_norm_groups_must_divide_the_channels() -> None:
    err = shape_error("GroupNorm", {"num_groups": 4}, [6, 5])
    assert err.param == "num_groups" and "(6)" in str(err)
    x = torch.randn(2, 6, 5)
    module, _ = compiled_layer("GroupNorm", {"num_groups": 3, "affine": False}, tuple(x.shape))
    with torch.no_grad():
        torch.testing.assert_close(module(x), F.group_norm(x, 3))
        assert (module(x) - F.group_norm(x, 1)).abs().max() > 1e-2


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_rms_norm_eps_zero_is_torchs_eps_none(dtype: torch.dtype) -> None:
    x = torch.randn(3, 4, 6, dtype=dtype) * 1e-3  # small: eps matters
    default, _ = compiled_layer("RMSNorm", {}, tuple(x.shape))
    ref = nn.RMSNorm(6, eps=None)
    with torch.no_grad():
        torch.testing.assert_close(default.to(dtype)(x), ref.to(dtype)(x))
    explicit, _ = compiled_layer("RMSNorm", {"eps": 1e-4}, tuple(x.shape))
    with torch.no_grad():
        assert (explicit.to(dtype)(x) - ref.to(dtype)(x)).abs().max() > 1e-2


def test_local_response_norm_settings_reach_torch() -> None:
    x = torch.randn(2, 7, 3, 3)
    outs = []
    for params in ({}, {"size": 3, "alpha": 0.5, "beta": 0.5, "k": 2.0}):
        module, _ = compiled_layer("LocalResponseNorm", params, tuple(x.shape))
        p = {"size": 5, "alpha": 1e-4, "beta": 0.75, "k": 1.0} | params
        with torch.no_grad():
            outs.append(module(x))
        torch.testing.assert_close(outs[-1], F.local_response_norm(x, **p))
    assert (outs[0] - outs[1]).abs().max() > 1e-2


# --------------------------------------------------------------------------- export


@pytest.mark.parametrize(("type_id", "index"), [("MaxPool2d", 4), ("AvgPool2d", 4), ("Conv2d", 4),
                                                ("ConvTranspose2d", 2)])
def test_pads_export_to_onnx_and_verify(type_id: str, index: int, tmp_path: Path) -> None:
    """The F.pad / mask / crop forms export (torch.export) and match onnxruntime."""
    spec = REGISTRY[type_id]
    assert any(spec.examples[index].params.get("pads", ()))
    g, _ = single_layer_graph(spec, spec.examples[index])
    report = export_onnx(Project(g, type_id), tmp_path / "m.onnx")
    assert report.max_abs <= 1e-4


def test_adaptive_pooling_onnx_cannot_express_is_refused_with_the_reason(tmp_path: Path) -> None:
    """ONNX has no adaptive pooling: a max-pooling size that does not divide the input exports under
    neither exporter (torch's decomposition covers average pooling 1-D and 2-D only); the error says
    why and nothing is written.  A size that divides the input exports."""
    g, _ = single_layer_graph(REGISTRY["AdaptiveMaxPool2d"], Example({"output_size": (2, 3)}, ((2, 3, 6, 7),)))
    with pytest.raises(ExportError, match="adaptive_max_pool2d, output size that are not factor of input size"):
        export_onnx(Project(g, "adaptive"), tmp_path / "m.onnx")
    assert not (tmp_path / "m.onnx").exists()
    g, _ = single_layer_graph(REGISTRY["AdaptiveMaxPool2d"], Example({"output_size": (2, 3)}, ((2, 3, 6, 9),)))
    assert export_onnx(Project(g, "adaptive"), tmp_path / "m.onnx").max_abs == 0


def test_conv3d_without_bias_exports(tmp_path: Path) -> None:
    """torch 2.13's torch.export translation (optimize=False) gives a bias-less Conv3d a zero bias of
    shape [C_out, 2], which onnxruntime refuses: the export falls back to the TorchScript exporter
    and says so, instead of letting onnxruntime's error escape."""
    g, _ = single_layer_graph(REGISTRY["Conv3d"], Example({"out_channels": 2, "bias": False}, ((1, 2, 4, 4, 4),)))
    report = export_onnx(Project(g, "c3"), tmp_path / "m.onnx")
    assert report.exporter.startswith("TorchScript") and report.max_abs < 1e-4
    assert any("onnxruntime cannot run" in n for n in report.notes)


def test_compile_refuses_what_inference_refuses() -> None:
    g, _ = single_layer_graph(REGISTRY["AvgPool2d"], Example({"kernel_size": (2, 2), "pads": (2, 0, 0, 0)},
                                                             ((1, 1, 4, 4),)))
    with pytest.raises(CompileError, match="pads"):
        compile_graph(g)
