"""Self-supervised tasks: views, NT-Xent against a reference, masks, probe and k-NN, the encoder without its head."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

from workbench.builder import GraphBuilder
from workbench.compiler import compile_graph
from workbench.config import DATA_FIELDS, TRAINING_FIELDS, validate_section
from workbench.data import load_data
from workbench.project import Project, load_project
from workbench.shapes import ShapeInference
from workbench.training import Trainer
from workbench.training.preflight import PreflightError, check_issues
from workbench.training.self_supervised import SelfSupervisedError, encoder_graph, preview_views
from workbench.training.ssl_ops import (
    ViewPipeline,
    knn_accuracy,
    linear_probe,
    masked_mse,
    nt_xent,
    patch_mask,
    token_mask,
)
from workbench.weights import load_weights, read_checkpoint


def reference_nt_xent(z1: torch.Tensor, z2: torch.Tensor, t: float) -> float:
    """Written from the SimCLR paper's definition, one anchor at a time, in float64."""
    z = torch.cat([z1, z2]).double()
    n, b = z.shape[0], z1.shape[0]
    total = 0.0
    for i in range(n):
        j = (i + b) % n
        sims = [float(z[i] @ z[k] / (z[i].norm() * z[k].norm())) / t for k in range(n)]
        denominator = sum(math.exp(sims[k]) for k in range(n) if k != i)
        total += -math.log(math.exp(sims[j]) / denominator)
    return total / n


@pytest.mark.parametrize("t", [0.1, 0.5, 2.0])
def test_nt_xent_equals_the_definition(t: float) -> None:
    g = torch.Generator().manual_seed(0)
    z1, z2 = torch.randn(6, 5, generator=g), torch.randn(6, 5, generator=g)
    assert float(nt_xent(z1, z2, t)) == pytest.approx(reference_nt_xent(z1, z2, t), rel=1e-5)


def test_nt_xent_rewards_matching_views() -> None:
    z = torch.randn(8, 16, generator=torch.Generator().manual_seed(1))
    assert float(nt_xent(z, z + 0.01 * torch.randn(8, 16), 0.5)) < float(nt_xent(z, torch.randn(8, 16), 0.5))


def images(n: int = 6) -> torch.Tensor:
    return torch.rand(n, 1, 8, 8, generator=torch.Generator().manual_seed(3))


def test_views_are_seeded_and_each_setting_acts() -> None:
    x = images()
    full = ViewPipeline(0.5, True, 0.4, 0.1)
    a = full(x, torch.Generator().manual_seed(5))
    assert torch.equal(a, full(x, torch.Generator().manual_seed(5)))
    assert not torch.allclose(a, full(x, torch.Generator().manual_seed(6)))
    assert torch.allclose(ViewPipeline(1.0, False, 0.0, 0.0)(x, torch.Generator()), x, atol=1e-6)  # all off: x
    flipped = ViewPipeline(1.0, True, 0.0, 0.0)(x, torch.Generator().manual_seed(0))
    same = [torch.allclose(v, o, atol=1e-6) for v, o in zip(flipped, x, strict=True)]
    mirrored = [torch.allclose(v, o.flip(-1), atol=1e-6) for v, o in zip(flipped, x, strict=True)]
    assert all(s or m for s, m in zip(same, mirrored, strict=True)) and any(mirrored) and any(same)
    noisy = ViewPipeline(1.0, False, 0.0, 0.5)(x, torch.Generator().manual_seed(0))
    assert float((noisy - x).std()) == pytest.approx(0.5 * float(x.std()), rel=0.15)
    jittered = ViewPipeline(1.0, False, 0.4, 0.0)(x, torch.Generator().manual_seed(0))
    for v, o in zip(jittered, x, strict=True):  # one contrast and brightness per image: an exact affine map
        c = ((v - v.mean()) * (o - o.mean())).sum() / ((o - o.mean()) ** 2).sum()
        assert 0.6 - 1e-5 <= float(c) <= 1.4 + 1e-5 and torch.allclose(v, c * o + (v - c * o).mean(), atol=1e-5)
    cropped = ViewPipeline(0.3, False, 0.0, 0.0)(x, torch.Generator().manual_seed(0))
    assert cropped.shape == x.shape and not torch.allclose(cropped, x, atol=1e-3)


def test_a_crop_shows_part_of_the_image_enlarged() -> None:
    x = torch.zeros(1, 1, 8, 8)
    x[..., :4, :] = 1.0  # top half white
    crops = ViewPipeline(0.1, False, 0.0, 0.0)(x.repeat(400, 1, 1, 1), torch.Generator().manual_seed(0))
    # some crops fall inside the white half (all white), some inside the black one: a view zooms in
    assert (crops.flatten(1).min(1).values > 0.99).any() and (crops.flatten(1).max(1).values < 0.01).any()


def test_patch_mask_hides_whole_patches_in_the_asked_share() -> None:
    m = patch_mask(torch.Size([5, 1, 8, 8]), 2, 0.5, torch.Generator().manual_seed(0))
    assert m.shape == (5, 1, 8, 8)
    blocks = m.reshape(5, 4, 2, 4, 2)
    assert torch.equal(blocks.all(4).all(2), blocks.any(4).any(2))  # a patch is masked whole or not at all
    assert (m.flatten(1).sum(1) == 8 * 4).all()  # 8 of 16 patches x 4 pixels
    assert (patch_mask(torch.Size([5, 1, 8, 8]), 4, 0.25, torch.Generator()).flatten(1).sum(1) == 16).all()
    assert (token_mask(torch.Size([3, 10]), 0.3, torch.Generator()).sum(1) == 3).all()


def test_masked_mse_ignores_what_was_not_masked() -> None:
    x = images(2)
    mask = patch_mask(x.shape, 2, 0.5, torch.Generator().manual_seed(0))
    out = torch.rand_like(x)
    changed = out.masked_fill(~mask, 100.0)  # other values where nothing was masked
    assert float(masked_mse(out, x, mask)) == pytest.approx(float(masked_mse(changed, x, mask)))
    assert float(masked_mse(out, x, mask)) == pytest.approx(float(((out - x)[mask] ** 2).mean()))


def test_knn_equals_a_brute_force_vote() -> None:
    g = torch.Generator().manual_seed(0)
    train, test = torch.randn(60, 4, generator=g), torch.randn(25, 4, generator=g)
    ytr, yte = torch.randint(0, 3, (60,), generator=g), torch.randint(0, 3, (25,), generator=g)
    right = 0
    for q, y in zip(test, yte, strict=True):
        sims = [float(F.cosine_similarity(q, a, dim=0)) for a in train]
        nearest = sorted(range(60), key=lambda i: -sims[i])[:7]
        votes = [sum(1 for i in nearest if ytr[i] == c) for c in range(3)]
        right += int(votes.index(max(votes)) == int(y))
    assert knn_accuracy(train, ytr, test, yte, 3, k=7) == pytest.approx(right / 25)


def test_linear_probe_separates_what_is_linear_and_not_noise() -> None:
    g = torch.Generator().manual_seed(0)
    x = torch.randn(300, 6, generator=g)
    y = (x[:, 0] + x[:, 1] > 0).long() + 2 * (x[:, 2] > 0).long()
    assert linear_probe(x[:200], y[:200], x[200:], y[200:], 4) > 0.93
    noise = torch.randint(0, 4, (300,), generator=g)
    assert linear_probe(x[:200], noise[:200], x[200:], noise[200:], 4) < 0.45


def contrastive_project(**training: object) -> Project:
    b = GraphBuilder()
    x = b.input((1, 8, 8), name="image")
    x = b.layer("ReLU", b.layer("Conv2d", x, out_channels=8, kernel_size=[3, 3], padding=[1, 1], name="conv"))
    x = b.layer("Linear", b.layer("Flatten", b.layer("MaxPool2d", x)), out_features=16, name="embed")
    p1 = b.layer("Linear", x, out_features=16, name="proj1")
    p2 = b.layer("Linear", b.layer("ReLU", p1, name="proj_relu"), out_features=8, name="proj2")
    b.output(p2, name="z")
    for name in ("proj1", "proj_relu", "proj2"):
        b.graph.set_train(b.graph.by_name(name).id, {"role": "projection_head"})
    return Project(b.graph, "c", data=validate_section(DATA_FIELDS, {"dataset": "digits", "batch_size": 128}),
                   training=validate_section(TRAINING_FIELDS, {"task": "contrastive", "epochs": 1, "lr": 0.01,
                                                               **training}))


def test_encoder_graph_drops_the_head_and_reads_the_representation() -> None:
    p = contrastive_project()
    enc = encoder_graph(p.graph)
    assert not {"proj1", "proj_relu", "proj2"} & {n.name for n in enc}
    out = enc.outputs()[0]
    assert enc.node(enc.edges_into(out.id)[0].src).name == "embed"
    assert {"proj1", "proj2"} <= {n.name for n in p.graph}  # the project's own graph is untouched


def test_a_head_that_is_not_one_chain_is_refused_where_it_is() -> None:
    p = contrastive_project()
    p.graph.set_train(p.graph.by_name("proj_relu").id, {"role": ""})  # a hole in the head
    with pytest.raises(SelfSupervisedError, match="one chain"):
        encoder_graph(p.graph)
    none = contrastive_project()
    for n in list(none.graph):
        none.graph.set_train(n.id, {"role": ""})
    si = ShapeInference(none.graph, live=False)
    si.update()
    issues, _ = check_issues(none, si)
    assert any(i.path == "training.task" and "projection head" in i.message for i in issues)
    with pytest.raises(PreflightError, match="projection head"):
        Trainer(none, {}, run_dir=Path("/nonexistent/never")).prepare()


def test_contrastive_run_reports_probe_knn_beside_the_random_encoder_and_keeps_the_encoder(tmp_path: Path) -> None:
    events: list[dict] = []
    trainer = Trainer(contrastive_project(), {}, run_dir=tmp_path / "run", listeners=[events.append])
    summary = trainer.run()
    epoch = [e for e in events if e["type"] == "epoch"][-1]
    for key in ("val_loss", "val_probe_accuracy", "val_knn_accuracy", "val_probe_accuracy_random",
                "val_knn_accuracy_random"):
        assert 0 <= epoch[key] < 20, key
    assert epoch["val_probe_accuracy_random"] > 0.3  # a real probe on real features, not chance
    assert "best_probe_accuracy" in summary
    views = [e for e in events if e["type"] == "validation"][-1]["views"]
    assert views.shape == (24, 1, 8, 8)
    enc = load_project(tmp_path / "run" / "encoder.json")
    assert "proj1" not in {n.name for n in enc.graph}
    module = compile_graph(enc.graph).module
    load_weights(module, tmp_path / "run" / "encoder.safetensors")  # strict: exactly the encoder's tensors
    best = read_checkpoint(tmp_path / "run" / "checkpoints" / "best.safetensors")[0]
    assert torch.equal(module.embed.weight, best["embed.weight"]) and "proj1.weight" in best


def test_contrastive_needs_images() -> None:
    p = contrastive_project()
    p.data = validate_section(DATA_FIELDS, {"dataset": "synthetic_blobs"})
    si = ShapeInference(p.graph, live=False)
    si.update()
    assert any(i.path == "training.task" and "images" in i.message for i in check_issues(p, si)[0])


def masked_image_project(**training: object) -> Project:
    b = GraphBuilder()
    x = b.input((1, 8, 8), name="image")
    x = b.layer("ReLU", b.layer("Conv2d", x, out_channels=8, kernel_size=[3, 3], padding=[1, 1]))
    b.output(b.layer("Conv2d", x, out_channels=1, kernel_size=[3, 3], padding=[1, 1]), name="out")
    return Project(b.graph, "m", data=validate_section(DATA_FIELDS, {"dataset": "digits", "batch_size": 128}),
                   training=validate_section(TRAINING_FIELDS, {"task": "masked_image", "epochs": 2, "lr": 0.01,
                                                               **training}))


def test_masked_image_trains_on_masked_patches(tmp_path: Path) -> None:
    events: list[dict] = []
    Trainer(masked_image_project(), {}, run_dir=tmp_path / "r", listeners=[events.append]).run()
    epochs = [e for e in events if e["type"] == "epoch"]
    assert epochs[-1]["val_loss"] < epochs[0]["val_loss"] or epochs[-1]["val_loss"] < 0.2
    shown = [e for e in events if e["type"] == "validation"][-1]
    masked_share = float((shown["inputs"] == 0).float().mean())
    assert masked_share >= 0.5  # half the patches blanked (and digits' own zeros)
    bad = masked_image_project(patch_size=3)
    si = ShapeInference(bad.graph, live=False)
    si.update()
    assert any(i.path == "training.patch_size" for i in check_issues(bad, si)[0])  # check says it ...
    with pytest.raises(PreflightError, match=r"patch_size: 3 must divide the images' height and width \(8 x 8"):
        Trainer(bad, {}, run_dir=tmp_path / "bad").prepare()  # ... and training refuses it
    assert not (tmp_path / "bad").exists()  # before any run folder is made


def text_project(vocab_extra: int = 1, **training: object) -> Project:
    data = validate_section(DATA_FIELDS, {"dataset": "text", "seq_len": 16, "batch_size": 64, "val_fraction": 0.1})
    from workbench.data import load_samples

    vocab = len(load_samples(data).class_names)
    b = GraphBuilder()
    x = b.input(("T",), name="chars", dtype="int64")
    x = b.layer("TokenPositionEmbedding", x, vocab_size=vocab + vocab_extra, max_len=32, embedding_dim=32)
    x = b.layer("TransformerEncoderLayer", x, nhead=2, dim_feedforward=32, dropout=0.0)
    b.output(b.layer("Linear", x, out_features=vocab), name="logits")
    return Project(b.graph, "t", data=data, training=validate_section(
        TRAINING_FIELDS, {"task": "masked_tokens", "epochs": 1, "lr": 0.003, **training}))


def test_masked_tokens_scores_masked_positions_and_needs_a_mask_row(tmp_path: Path) -> None:
    events: list[dict] = []
    Trainer(text_project(), {}, run_dir=tmp_path / "r", listeners=[events.append]).run()
    metrics = [e for e in events if e["type"] == "validation"][-1]["metrics"]
    assert set(metrics) == {"loss", "accuracy"} and 0 <= metrics["accuracy"] <= 1
    small = text_project(vocab_extra=0)
    with pytest.raises(PreflightError, match=r"ids from 0 to 62 but vocab_size=62 .* set vocab_size to at least 63"):
        Trainer(small, {}, run_dir=tmp_path / "bad").prepare()


def test_label_fraction_keeps_that_share_of_every_class() -> None:
    cfg = validate_section(DATA_FIELDS, {"dataset": "digits", "label_fraction": 0.1})
    full = load_data(validate_section(DATA_FIELDS, {"dataset": "digits"}), (1, 8, 8))
    few = load_data(cfg, (1, 8, 8))
    counts, all_counts = (torch.bincount(d.train.tensors[1], minlength=10) for d in (few, full))
    assert ((counts - 0.1 * all_counts).abs() <= 1).all() and len(few.train) == pytest.approx(0.1 * len(full.train),
                                                                                               abs=10)
    assert torch.equal(few.val.tensors[0], full.val.tensors[0])  # validation stays whole
    assert torch.equal(few.train.tensors[0], load_data(cfg, (1, 8, 8)).train.tensors[0])  # seeded


def test_the_preview_shows_the_views_and_masks_the_task_makes() -> None:
    x = images(8)
    p = contrastive_project()
    views = preview_views(x, p.training)
    assert views is not None and views.shape == (24, 1, 8, 8) and torch.equal(views[:8], x)
    assert torch.equal(views, preview_views(x, p.training))  # seeded: the same picture each time
    assert not torch.allclose(views[8:16], x) and not torch.allclose(views[8:16], views[16:])
    masked = preview_views(x, masked_image_project(mask_ratio=0.25).training)
    assert masked is not None and float((masked[8:] == 0).float().mean()) >= 0.25
    assert preview_views(x, validate_section(TRAINING_FIELDS, {})) is None  # classification feeds them as they are
