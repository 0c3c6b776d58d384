"""Explanations and activations: each method against Captum called directly on an independently
loaded copy of the model (within 1e-5), node addressing (blocks, probes, ports), located errors,
every setting changing the result, and the ``workbench explain`` command."""

from __future__ import annotations

import json
import struct
import sys
import zlib
from pathlib import Path

import numpy as np
import pytest
import torch

from workbench.builder import GraphBuilder
from workbench.compiler import compile_graph
from workbench.project import Project, load_project, save_project
from workbench.weights import apply_state, load_checkpoint, save_checkpoint

captum_attr = pytest.importorskip("captum.attr", reason="the explain extra (Captum) is not installed")

from workbench.analysis.activations import (  # noqa: E402
    ExplainError,
    SampleChoice,
    activations,
    feature_maps,
    load_model,
    parse_indices,
    select_samples,
)
from workbench.analysis.explain import ExplainOptions, MissingExtraError, explain  # noqa: E402
from workbench.analysis.overlay import explanation_grid, overlay  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]
TOL = dict(atol=1e-5, rtol=1e-5)


def _saved(tmp: Path, sample: str, seed: int = 0) -> tuple[Path, Path]:
    """The sample project (copied) and a checkpoint of seeded random weights."""
    project = load_project(ROOT / "samples" / f"{sample}.json")
    path = save_project(project, tmp / f"{sample}.json")
    torch.manual_seed(seed)
    module = compile_graph(project.graph).module
    ckpt = save_checkpoint(tmp / f"{sample}.safetensors", module, None, {"epoch": 1})
    return path, ckpt


def _reference(project_path: Path, ckpt: Path) -> torch.nn.Module:
    """The same model loaded on its own: nothing the explainer does to its copy reaches it."""
    module = compile_graph(load_project(project_path).graph).module
    apply_state(module, load_checkpoint(ckpt).state(), str(ckpt))
    return module.eval()


@pytest.fixture(scope="module")
def cnn(tmp_path_factory: pytest.TempPathFactory):
    tmp = tmp_path_factory.mktemp("cnn")
    path, ckpt = _saved(tmp, "digits_cnn")
    model = load_model(load_project(path), ckpt)
    idx, x, labels = select_samples(model, SampleChoice(count=5))
    return model, _reference(path, ckpt), x, idx, labels, path, ckpt


@pytest.fixture(scope="module")
def resnet(tmp_path_factory: pytest.TempPathFactory):
    tmp = tmp_path_factory.mktemp("resnet")
    path, ckpt = _saved(tmp, "digits_resnet", seed=1)
    model = load_model(load_project(path), ckpt)
    _, x, _ = select_samples(model, SampleChoice(count=3))
    return model, _reference(path, ckpt), x


def _pred(ref: torch.nn.Module, x: torch.Tensor) -> torch.Tensor:
    with torch.no_grad():
        return ref(x).argmax(1)


# --------------------------------------------------------------------------- each method against Captum


def test_saliency_matches_captum(cnn) -> None:
    model, ref, x, idx, labels, *_ = cnn
    e = explain(model, x, ExplainOptions("saliency"), idx, labels, "val")
    want = captum_attr.Saliency(ref).attribute(x.clone().requires_grad_(), target=_pred(ref, x))
    np.testing.assert_allclose(e.attributions, want.detach().numpy(), **TOL)
    np.testing.assert_allclose(e.maps, want.detach().sum(1).numpy(), **TOL)
    assert e.targets == e.predicted == _pred(ref, x).tolist()
    assert e.indices == idx and e.labels == labels


def test_integrated_gradients_matches_captum(cnn) -> None:
    model, ref, x, *_ = cnn
    e = explain(model, x, ExplainOptions("integrated_gradients", batch=2))  # batches do not change the result
    want = captum_attr.IntegratedGradients(ref).attribute(x, baselines=0.0, target=_pred(ref, x), n_steps=50)
    np.testing.assert_allclose(e.attributions, want.detach().numpy(), **TOL)
    assert e.signed


def test_smoothgrad_matches_captum_noise_tunnel(cnn) -> None:
    model, ref, x, *_ = cnn
    e = explain(model, x[:3], ExplainOptions("smoothgrad", noise=0.3, noise_samples=8, seed=4))
    target = _pred(ref, x[:3])
    for i in range(3):
        torch.manual_seed(4)
        want = captum_attr.NoiseTunnel(captum_attr.Saliency(ref)).attribute(
            x[i:i + 1], nt_type="smoothgrad", nt_samples=8, stdevs=0.3, target=target[i:i + 1])
        np.testing.assert_allclose(e.attributions[i:i + 1], want.detach().numpy(), **TOL)


def test_smoothgrad_default_noise_is_a_share_of_the_input_range(cnn) -> None:
    model, ref, x, *_ = cnn
    train_x, _ = model.split("train")
    sd = 0.15 * float(train_x.max() - train_x.min())
    e = explain(model, x[:1], ExplainOptions("smoothgrad", noise_samples=4))
    torch.manual_seed(0)
    want = captum_attr.NoiseTunnel(captum_attr.Saliency(ref)).attribute(
        x[:1], nt_type="smoothgrad", nt_samples=4, stdevs=sd, target=_pred(ref, x[:1]))
    np.testing.assert_allclose(e.attributions, want.detach().numpy(), **TOL)


def test_occlusion_matches_captum_with_its_default_window(cnn) -> None:
    model, ref, x, *_ = cnn
    e = explain(model, x, ExplainOptions("occlusion"))
    want = captum_attr.Occlusion(ref).attribute(x, sliding_window_shapes=(1, 2, 2), strides=(1, 1, 1), baselines=0.0,
                                                target=_pred(ref, x))
    np.testing.assert_allclose(e.attributions, want.detach().numpy(), **TOL)


def test_gradcam_matches_captum_upsampled_to_the_input(cnn) -> None:
    model, ref, x, *_ = cnn
    e = explain(model, x, ExplainOptions("gradcam", node="conv2"))
    cam = captum_attr.LayerGradCam(ref, ref.conv2).attribute(x, target=_pred(ref, x), relu_attributions=True)
    up = captum_attr.LayerAttribution.interpolate(cam, (8, 8), "bilinear")
    np.testing.assert_allclose(e.maps, up[:, 0].detach().numpy(), **TOL)
    np.testing.assert_allclose(e.layer_maps, cam[:, 0].detach().numpy(), **TOL)
    assert e.layer_maps.shape == (len(x), 4, 4) and e.node == "conv2"


def test_gradcam_without_a_node_takes_the_last_spatial_one(cnn) -> None:
    model, _ref, x, *_ = cnn
    assert explain(model, x[:1], ExplainOptions("gradcam")).node == "pool2"  # [N, 32, 2, 2]; flatten is not


@pytest.mark.parametrize("address, layer, to_input", [
    ("block1/conv1", "block1.conv1", False),  # a submodule inside a block instance
    ("block1/add", "block1.relu2", True),  # a function (a probe is inserted): the input of the next module
    ("block1", "block1", False),  # the instance's output
    ("block2/relu1", "block2.relu1", False),
])
def test_gradcam_inside_blocks_matches_captum(resnet, address: str, layer: str, to_input: bool) -> None:
    model, ref, x = resnet
    e = explain(model, x, ExplainOptions("gradcam", node=address))
    cam = captum_attr.LayerGradCam(ref, ref.get_submodule(layer)).attribute(
        x, target=_pred(ref, x), relu_attributions=True, attribute_to_layer_input=to_input)
    up = captum_attr.LayerAttribution.interpolate(cam, (8, 8), "bilinear")
    np.testing.assert_allclose(e.maps, up[:, 0].detach().numpy(), **TOL)


def test_probes_leave_the_model_output_unchanged(resnet) -> None:
    model, ref, x = resnet
    for address in ("flatten", "block1/add", "block2/x", "image"):
        model.layer(address)
    with torch.no_grad():
        torch.testing.assert_close(model.forward(x), ref(x))
    assert not any("probe" in k for k in model.module.state_dict())  # probes carry no weights


# --------------------------------------------------------------------------- sequences and tokens


def _token_classifier(tmp: Path) -> tuple[Path, Path]:
    b = GraphBuilder()
    x = b.input((12,), name="tokens", dtype="int64")
    h = b.layer("Embedding", x, num_embeddings=20, embedding_dim=6, name="embed")
    h = b.layer("SequencePool", h, name="pool")
    b.output(b.layer("Linear", h, out_features=3, name="head"), name="logits")
    project = Project(b.graph, "Tokens")
    path = save_project(project, tmp / "tokens.json")
    torch.manual_seed(3)
    ckpt = save_checkpoint(tmp / "tokens.safetensors", compile_graph(project.graph).module, None, {})
    return path, ckpt


@pytest.fixture(scope="module")
def tokens(tmp_path_factory: pytest.TempPathFactory):
    path, ckpt = _token_classifier(tmp_path_factory.mktemp("tok"))
    x = torch.randint(1, 20, (4, 12), generator=torch.Generator().manual_seed(0))
    return load_model(load_project(path), ckpt), _reference(path, ckpt), x


def test_token_integrated_gradients_are_captum_layer_ig_per_token(tokens) -> None:
    model, ref, x = tokens
    e = explain(model, x, ExplainOptions("integrated_gradients", baseline=0))
    want = captum_attr.LayerIntegratedGradients(ref, ref.embed).attribute(
        x, baselines=torch.zeros_like(x), target=_pred(ref, x), n_steps=50)
    assert e.kind == "tokens" and e.maps.shape == (4, 12)
    np.testing.assert_allclose(e.per_step, want.sum(-1).detach().numpy(), **TOL)


def test_token_saliency_and_occlusion_match_captum(tokens) -> None:
    model, ref, x = tokens
    target = _pred(ref, x)
    grads = captum_attr.LayerGradientXActivation(ref, ref.embed, multiply_by_inputs=False).attribute(x, target=target)
    np.testing.assert_allclose(explain(model, x, ExplainOptions("saliency")).maps,
                               grads.abs().sum(-1).detach().numpy(), **TOL)
    occ = captum_attr.Occlusion(ref).attribute(x, sliding_window_shapes=(1,), strides=(1,), baselines=5, target=target)
    np.testing.assert_allclose(explain(model, x, ExplainOptions("occlusion", baseline=5)).maps, occ.numpy(), **TOL)


def test_smoothgrad_and_gradcam_are_refused_for_tokens(tokens) -> None:
    model, _ref, x = tokens
    with pytest.raises(ExplainError, match="token ids cannot take noise"):
        explain(model, x, ExplainOptions("smoothgrad"))
    with pytest.raises(ExplainError, match="spatial output"):
        explain(model, x, ExplainOptions("gradcam", node="embed"))


def test_language_model_is_explained_at_a_time_step_per_token(tmp_path: Path) -> None:
    path, ckpt = _saved(tmp_path, "char_language_model")
    model = load_model(load_project(path), ckpt)
    ref = _reference(path, ckpt)
    idx, x, labels = select_samples(model, SampleChoice(count=2))
    e = explain(model, x, ExplainOptions("integrated_gradients", position=5, steps=8), idx, labels)
    with torch.no_grad():
        target = ref(x)[:, 5].argmax(-1)
    # the embedding node is a sum of two lookups: its value is what block1 reads
    want = captum_attr.LayerIntegratedGradients(ref, ref.block1).attribute(
        x, baselines=torch.zeros_like(x), target=[(5, int(k)) for k in target], n_steps=8,
        attribute_to_layer_input=True)
    np.testing.assert_allclose(e.per_step, want.sum(-1).detach().numpy(), **TOL)
    assert e.position == 5 and e.targets == target.tolist()
    assert e.labels == [lab[5] for lab in labels]  # the true next character at that step
    assert abs(e.per_step[:, 6:]).max() == 0  # a causal model: later characters play no part
    summary = e.summary()
    assert len(summary["samples"][0]["tokens"]) == x.shape[1]


def test_sequences_get_a_value_per_time_step(tmp_path: Path) -> None:
    path, ckpt = _saved(tmp_path, "digits_lstm")
    model = load_model(load_project(path), ckpt)
    ref = _reference(path, ckpt)
    _, x, _ = select_samples(model, SampleChoice(count=3))
    e = explain(model, x, ExplainOptions("integrated_gradients", steps=16))
    want = captum_attr.IntegratedGradients(ref).attribute(x, baselines=0.0, target=_pred(ref, x), n_steps=16)
    np.testing.assert_allclose(e.attributions, want.detach().numpy(), **TOL)
    np.testing.assert_allclose(e.per_step, want.sum(-1).detach().numpy(), **TOL)
    occ = explain(model, x, ExplainOptions("occlusion"))
    assert np.allclose(occ.maps, occ.maps[:, :, :1])  # one window per time step: equal along the features
    assert model.site("lstm").fx_name == model.site("lstm:h").fx_name
    with pytest.raises(ExplainError, match='port "y" of "lstm" is not wired'):
        model.site("lstm:y")


# --------------------------------------------------------------------------- activations


def test_activations_equal_the_layers_run_by_hand(resnet) -> None:
    model, ref, x = resnet
    with torch.no_grad():
        h = ref.stem_relu(ref.stem_bn(ref.stem(x)))
        b = ref.block1
        add = b.bn2(b.conv2(b.relu1(b.bn1(b.conv1(h))))) + h
        flat = ref.gap(ref.block2(b.relu2(add))).flatten(1)
        torch.testing.assert_close(activations(model, x, "block1/conv1"), b.conv1(h))
        torch.testing.assert_close(activations(model, x, "block1/add"), add)
        torch.testing.assert_close(activations(model, x, "block1/x"), h)
        torch.testing.assert_close(activations(model, x, "flatten"), flat)
        torch.testing.assert_close(activations(model, x, "image"), x)
        torch.testing.assert_close(activations(model, x, "logits"), ref(x))


def test_feature_maps_make_a_grid_each_map_on_its_own_scale() -> None:
    value = np.stack([np.arange(16.0).reshape(4, 4), 100 + np.zeros((4, 4)), -np.arange(16.0).reshape(4, 4)])
    pic = feature_maps(value, cols=3)
    assert pic.shape == (6, 16)  # one row of three 4x4 maps, 1-pixel gaps
    first = pic[1:5, 1:5]
    np.testing.assert_allclose(first, np.arange(16).reshape(4, 4) / 15)
    assert np.all(pic[1:5, 6:10] == 0.5)  # a constant map is mid-grey, not a division by zero
    assert np.isnan(pic[0]).all()
    assert feature_maps(np.array([1.0, 3.0])).shape == (1, 2)


# --------------------------------------------------------------------------- settings change results


@pytest.mark.parametrize("method, change", [
    ("integrated_gradients", {"steps": 3}),
    ("integrated_gradients", {"baseline": 0.5}),
    ("smoothgrad", {"noise": 0.05}),
    ("smoothgrad", {"noise_samples": 3}),
    ("smoothgrad", {"seed": 9}),
    ("occlusion", {"window": (3, 3)}),
    ("occlusion", {"stride": (2, 2)}),
    ("occlusion", {"baseline": 1.0}),
    ("gradcam", {"node": "conv1"}),
    ("saliency", {"target": "another class than predicted"}),
])
def test_each_setting_changes_the_maps(cnn, method: str, change: dict) -> None:
    model, _ref, x, *_ = cnn
    base = explain(model, x[:2], ExplainOptions(method, noise=0.2 if method == "smoothgrad" else None))
    options = ExplainOptions(method, noise=0.2 if method == "smoothgrad" else None)
    for k, v in change.items():
        setattr(options, k, (base.predicted[0] + 1) % 10 if k == "target" else v)
    changed = explain(model, x[:2], options)
    assert not np.allclose(base.maps, changed.maps)


def test_the_class_explained_is_the_one_asked(cnn) -> None:
    model, ref, x, *_ = cnn
    other = (int(_pred(ref, x[:1])[0]) + 1) % 10
    e = explain(model, x[:2], ExplainOptions("saliency", target=other))
    assert e.targets == [other, other]
    want = captum_attr.Saliency(ref).attribute(x[:2].clone().requires_grad_(), target=other)
    np.testing.assert_allclose(e.attributions, want.detach().numpy(), **TOL)
    with torch.no_grad():
        assert e.probabilities == pytest.approx(torch.softmax(ref(x[:2]), 1)[:, other].tolist(), abs=1e-6)


# --------------------------------------------------------------------------- located errors


def test_errors_name_the_node_and_what_does_not_fit(cnn, resnet) -> None:
    model, _ref, x, *_ = cnn
    with pytest.raises(ExplainError, match='no node "conv9" in the model') as err:
        explain(model, x, ExplainOptions("gradcam", node="conv9"))
    assert err.value.node == "conv9"
    with pytest.raises(ExplainError, match=r'"fc" gives \[N, 64\]'):
        explain(model, x, ExplainOptions("gradcam", node="fc"))
    with pytest.raises(ExplainError, match="class 10 is out of range"):
        explain(model, x, ExplainOptions("saliency", target=10))
    with pytest.raises(ExplainError, match="position applies"):
        explain(model, x, ExplainOptions("saliency", position=2))
    with pytest.raises(ExplainError, match="unknown method"):
        explain(model, x, ExplainOptions("lime"))
    with pytest.raises(ExplainError, match="window"):
        explain(model, x, ExplainOptions("occlusion", window=(9, 9)))
    rmodel = resnet[0]
    with pytest.raises(ExplainError, match='no node "block1/conv9" in block instance "block1"'):
        rmodel.site("block1/conv9")
    with pytest.raises(ExplainError, match='"stem" is a Conv2d, not a block'):
        rmodel.site("stem/x")


def test_a_model_without_weights_is_refused(tmp_path: Path) -> None:
    project = load_project(ROOT / "samples" / "digits_cnn.json")
    with pytest.raises(ExplainError, match="no trained weights"):
        load_model(project)


def test_missing_captum_names_the_extra(cnn, monkeypatch: pytest.MonkeyPatch) -> None:
    model, _ref, x, *_ = cnn
    monkeypatch.setitem(sys.modules, "captum.attr", None)  # importing it now fails, as when not installed
    with pytest.raises(MissingExtraError, match=r"neural-workbench\[explain\]"):
        explain(model, x, ExplainOptions("saliency"))


# --------------------------------------------------------------------------- samples


def test_a_confusion_cell_selects_exactly_its_samples(cnn) -> None:
    from workbench.training.tasks import MetricAccumulator

    model, ref, *_ = cnn
    x, y = model.split("val")
    with torch.no_grad():
        out = ref(x)
    acc = MetricAccumulator("classification", 10)
    acc.add(out, y, 0.0)
    cm = acc.confusion
    assert cm is not None
    true, pred = divmod(int(torch.argmax(cm - torch.diag(torch.diag(cm)))), 10)  # the largest off-diagonal cell
    idx, _xs, labels = select_samples(model, SampleChoice(label=true, predicted=pred, count=10_000))
    assert len(idx) == int(cm[true, pred]) > 0
    assert set(labels) == {true} and set(out[idx].argmax(1).tolist()) == {pred}
    wrong, _, _ = select_samples(model, SampleChoice(misclassified=True, count=10_000))
    assert len(wrong) == int(cm.sum() - cm.trace())
    assert select_samples(model, SampleChoice(indices=[5, 2]))[0] == [5, 2]
    with pytest.raises(ExplainError, match="outside the val split"):
        select_samples(model, SampleChoice(indices=[len(x)]))


def test_parse_indices() -> None:
    assert parse_indices("3, 5,9-11") == [3, 5, 9, 10, 11]
    for bad in ("a", "5-2", ""):
        with pytest.raises(ExplainError):
            parse_indices(bad)


# --------------------------------------------------------------------------- pictures


def _png_pixels(path: Path) -> tuple[int, int, int, np.ndarray]:
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    w, h, _depth, colour = struct.unpack(">IIBB", data[16:26])
    idat = data.index(b"IDAT")
    length = struct.unpack(">I", data[idat - 4:idat])[0]
    raw = zlib.decompress(data[idat + 4:idat + 4 + length])
    channels = 3 if colour == 2 else 1
    rows = np.frombuffer(raw, np.uint8).reshape(h, 1 + w * channels)[:, 1:]
    return w, h, colour, rows.reshape(h, w, channels)


def test_colour_png_holds_the_colours(tmp_path: Path) -> None:
    from workbench.imaging import save_png

    img = np.zeros((2, 3, 3), np.float32)
    img[0, 0] = (1, 0, 0)
    img[1, 2] = (0, 0, 1)
    w, h, colour, px = _png_pixels(save_png(img, tmp_path / "c.png", scale=2))
    assert (w, h, colour) == (6, 4, 2)
    assert tuple(px[0, 0]) == (255, 0, 0) and tuple(px[3, 5]) == (0, 0, 255) and tuple(px[0, 2]) == (0, 0, 0)


def test_overlay_is_red_for_positive_blue_for_negative() -> None:
    base = np.full((1, 3, 3), 0.5, np.float32)
    out = overlay(base, np.array([[1.0, 0.0, -1.0]]))
    assert out[0, 0, 0] > out[0, 0, 2] and out[0, 2, 2] > out[0, 2, 0]
    np.testing.assert_allclose(out[0, 1], 0.5)  # no attribution: the grey input


def test_explanation_grid_has_a_pair_per_sample(cnn) -> None:
    model, _ref, x, *_ = cnn
    e = explain(model, x[:5], ExplainOptions("saliency"))
    mosaic = explanation_grid(e, cols=2)
    assert mosaic.shape == (3 * 10 + 2, 2 * (17 + 2) + 2, 3)  # 3 rows of 2 pairs of 8x8 tiles


# --------------------------------------------------------------------------- the command line


def _cli(*args: str) -> int:
    from workbench.cli import main

    return main(list(args))


def test_cli_writes_the_picture_and_json(cnn, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    *_, path, ckpt = cnn
    out = tmp_path / "maps.png"
    assert _cli("explain", str(path), "--checkpoint", str(ckpt), "--method", "gradcam", "--node", "conv2",
                "--samples", "6", "-o", str(out), "--json") == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["method"] == "gradcam" and doc["node"] == "conv2" and len(doc["samples"]) == 6
    assert np.array(doc["samples"][0]["map"]["values"]).shape == (8, 8)
    w, h, colour, _ = _png_pixels(out)
    assert colour == 2 and (w, h) == ((4 * 19 + 2) * 8, (2 * 10 + 2) * 8)  # 6 pairs, 4 a row, 8x scale
    assert sorted(p.name for p in tmp_path.iterdir()) == ["maps.png"]  # nothing left beside it
    assert _cli("explain", str(path), "--checkpoint", str(ckpt), "--split", "train", "--samples", "3", "--cols", "2",
                "-o", str(out), "--json") == 0
    doc = json.loads(capsys.readouterr().out)
    train_x = cnn[0].data.train.tensors[0]
    assert doc["split"] == "train" and np.allclose(doc["samples"][2]["map"]["shape"], [8, 8])
    assert _png_pixels(out)[:2] == ((2 * 19 + 2) * 8, (2 * 10 + 2) * 8)  # 2 pairs a row now
    one = explain(cnn[0], train_x[2:3], ExplainOptions("saliency"))
    np.testing.assert_allclose(doc["samples"][2]["map"]["values"], one.maps[0], atol=1e-6)  # the training sample
    assert _cli("explain", str(path), "--checkpoint", str(ckpt), "--method", "activations", "--node",
                "conv1", "--indices", "2", "--json") == 0
    act = json.loads(capsys.readouterr().out)
    assert act["samples"][0]["index"] == 2 and act["samples"][0]["shape"] == [16, 8, 8]


def test_cli_errors_are_located_and_lose_nothing(cnn, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    *_, path, ckpt = cnn
    out = tmp_path / "maps.png"
    out.write_bytes(b"keep me")
    base = ("explain", str(path), "--checkpoint", str(ckpt), "-o", str(out))
    assert _cli(*base, "--method", "gradcam", "--node", "conv9") == 2
    assert 'no node "conv9"' in capsys.readouterr().err
    assert _cli(*base, "--method", "gradcam", "--node", "fc") == 2
    assert "spatial output" in capsys.readouterr().err
    assert out.read_bytes() == b"keep me"
    before = ckpt.read_bytes()
    assert _cli("explain", str(path), "--checkpoint", str(ckpt), "-o", str(ckpt)) == 2
    assert "checkpoint" in capsys.readouterr().err and ckpt.read_bytes() == before
    assert _cli("explain", str(path), "--checkpoint", str(ckpt)) == 2  # neither -o nor --json
    assert _cli("explain", str(path), "--checkpoint", str(tmp_path / "none.safetensors"), "--json") == 2
    assert "not found" in capsys.readouterr().err
