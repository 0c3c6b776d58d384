"""Training-time image augmentation and mixed precision do what they say (or are refused with the reason)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from workbench.builder import GraphBuilder
from workbench.config import DATA_FIELDS, TRAINING_FIELDS, validate_section
from workbench.data import DataError, load_data
from workbench.errors import WorkbenchError
from workbench.project import Project, loads_project
from workbench.training import Trainer, TrainingError


def digits_mlp(features: int = 64, classes: int = 10, **data: object) -> Project:
    b = GraphBuilder()
    x = b.input((features,), name="pixels")
    b.output(b.layer("Linear", b.layer("ReLU", b.layer("Linear", x, out_features=16, name="fc1")),
                     out_features=classes, name="fc2"))
    # a small training split (180 images, 3 steps) keeps every run here well under a second
    cfg = {"dataset": "digits", "val_fraction": 0.85, "test_fraction": 0.05, "shuffle": False, **data}
    return Project(b.graph, "digits", data=validate_section(DATA_FIELDS, cfg),
                   training=validate_section(TRAINING_FIELDS, {"epochs": 1, "lr": 0.01}))


def seen_inputs(project: Project, tmp: Path, **overrides: object) -> tuple[Trainer, list[torch.Tensor], list[torch.Tensor]]:
    """Every batch the model received in training mode and in evaluation mode."""
    train: list[torch.Tensor] = []
    held_out: list[torch.Tensor] = []
    trainer = Trainer(project, {"epochs": 1, **overrides}, run_dir=tmp)

    def hook(module: torch.nn.Module, args: tuple[torch.Tensor, ...]) -> None:
        (train if module.training else held_out).append(args[0].detach().clone())

    trainer.prepare()
    trainer.model.register_forward_pre_hook(hook)
    trainer.prepare = lambda: None  # type: ignore[method-assign]  # keep the hooked model
    trainer.run()
    return trainer, train, held_out


def _is_shifted(aug: torch.Tensor, raw: torch.Tensor, flips: bool) -> bool:
    """``aug`` is ``raw`` moved by at most one pixel (zero fill), perhaps mirrored."""
    padded = torch.nn.functional.pad(raw, (1, 1, 1, 1))
    for image in (padded, padded.flip(-1)) if flips else (padded,):
        for dy in range(3):
            for dx in range(3):
                if torch.equal(image[dy : dy + 8, dx : dx + 8], aug):
                    return True
    return False


def test_augment_off_the_model_sees_the_raw_data(tmp_path: Path) -> None:
    trainer, train, held_out = seen_inputs(digits_mlp(), tmp_path / "off")
    assert torch.equal(torch.cat(train), trainer.data.train.tensors[0])
    assert torch.equal(torch.cat(held_out)[: len(trainer.data.val)], trainer.data.val.tensors[0])


@pytest.mark.parametrize("mode", ["shift", "shift_flip"])
def test_augment_changes_training_batches_only(tmp_path: Path, mode: str) -> None:
    trainer, train, held_out = seen_inputs(digits_mlp(augment=mode), tmp_path / mode)
    raw = trainer.data.train.tensors[0]
    seen = torch.cat(train)
    assert seen.shape == raw.shape and not torch.equal(seen, raw)
    changed = (seen != raw).any(1).float().mean()
    assert changed > 0.5  # 8 of 9 shifts move the image
    for a, r in zip(seen.reshape(-1, 8, 8), raw.reshape(-1, 8, 8), strict=True):
        assert _is_shifted(a, r, flips=mode == "shift_flip")
    if mode == "shift_flip":
        mirrored_only = sum(_is_shifted(a, r, True) and not _is_shifted(a, r, False)
                            for a, r in zip(seen.reshape(-1, 8, 8), raw.reshape(-1, 8, 8), strict=True))
        assert mirrored_only > len(raw) // 5
    val = torch.cat(held_out)
    n_val = len(trainer.data.val)
    assert torch.equal(val[:n_val], trainer.data.val.tensors[0])  # validation untouched
    assert torch.equal(val[n_val : n_val + len(trainer.data.test)], trainer.data.test.tensors[0])  # so is test


def test_augment_is_seeded_per_epoch_and_resumes(tmp_path: Path) -> None:
    project = digits_mlp(augment="shift")
    _, a, _ = seen_inputs(project, tmp_path / "a", epochs=2)
    _, b, _ = seen_inputs(project, tmp_path / "b", epochs=2)
    assert all(torch.equal(x, y) for x, y in zip(a, b, strict=True))  # reproducible
    steps = len(a) // 2
    assert not torch.equal(torch.cat(a[:steps]), torch.cat(a[steps:]))  # a new draw every epoch
    seen_inputs(project, tmp_path / "part", epochs=1)
    resumed = Trainer(project, {"epochs": 2}, resume=tmp_path / "part" / "checkpoints" / "last.safetensors",
                      run_dir=tmp_path / "c")
    seen: list[torch.Tensor] = []
    resumed.prepare()
    resumed.model.register_forward_pre_hook(lambda m, args: seen.append(args[0].clone()) if m.training else None)
    resumed.prepare = lambda: None  # type: ignore[method-assign]
    resumed.run()
    assert all(torch.equal(x, y) for x, y in zip(seen, a[steps:], strict=True)) and len(seen) == steps
    other = digits_mlp(augment="shift", seed=1)
    _, c, _ = seen_inputs(other, tmp_path / "d")
    assert not torch.equal(torch.cat(c), torch.cat(a[:steps]))  # the data seed draws the shifts


def test_augment_is_refused_for_non_image_data(tmp_path: Path) -> None:
    project = digits_mlp(8, 4, dataset="synthetic_blobs", augment="shift", num_samples=20)
    events: list[dict] = []
    with pytest.raises(WorkbenchError, match=r"data.augment: augment 'shift' changes images, but the "
                                             r"synthetic_blobs dataset has none"):
        Trainer(project, {}, run_dir=tmp_path / "r", listeners=[events.append]).run()
    assert not events and not (tmp_path / "r").exists()
    with pytest.raises(DataError, match=r"augment 'shift' changes images, but synthetic blobs has no images"):
        load_data(project.data, (8,))  # the data layer checks the samples themselves


def test_the_image_datasets_are_the_ones_with_image_samples(tmp_path: Path) -> None:
    from PIL import Image

    from workbench.config import DATASETS, IMAGE_DATASETS
    from workbench.data import load_samples

    (tmp_path / "c").mkdir()
    Image.new("L", (4, 4)).save(tmp_path / "c" / "a.png")
    (tmp_path / "d.csv").write_text("a,b\n1,2\n3,4\n")
    paths = {"image_folder": tmp_path, "csv": tmp_path / "d.csv"}
    for name in DATASETS:
        if name in ("idx", "torchvision"):  # need downloads: their sources set image=True (see sources.py)
            assert name in IMAGE_DATASETS
            continue
        if name == "none":  # no samples at all (an imported model's)
            with pytest.raises(DataError, match="no dataset is set"):
                load_samples(validate_section(DATA_FIELDS, {"dataset": name}))
            continue
        cfg = validate_section(DATA_FIELDS, {"dataset": name, "path": str(paths.get(name, "")), "num_samples": 10})
        assert load_samples(cfg).image == (name in IMAGE_DATASETS), name


def test_augment_keeps_rgb_rows_layout_channels_together() -> None:
    cfg = validate_section(DATA_FIELDS, {"dataset": "digits", "augment": "shift"})
    data = load_data(cfg, (8, 8))
    assert data.augment is not None and data.augment.image_shape == (1, 8, 8) and data.augment.max_shift == 1
    # an RGB image read row by row: [H, W x C] with the channels of a pixel side by side
    from workbench.data.base import ImageAugment

    img = torch.rand(5, 3, 16, 16)
    rows = img.permute(0, 2, 3, 1).reshape(5, 16, 48)
    aug = ImageAugment("shift", (3, 16, 16), channels_last=True)
    gen = torch.Generator().manual_seed(0)
    out_rows = aug(rows, gen)
    out_img = ImageAugment("shift", (3, 16, 16))(img, torch.Generator().manual_seed(0))
    assert aug.max_shift == 2
    assert torch.equal(out_rows, out_img.permute(0, 2, 3, 1).reshape(5, 16, 48))


def test_old_boolean_augment_loads() -> None:
    doc = json.loads(Project(name="old").to_json())
    doc["data"]["augment"] = True
    assert loads_project(json.dumps(doc)).data["augment"] == "shift"
    doc["data"]["augment"] = False
    assert loads_project(json.dumps(doc)).data["augment"] == "none"


# --------------------------------------------------------------------------- precision


def first_batch(project: Project, tmp: Path, precision: str) -> tuple[float, torch.dtype]:
    events: list[dict] = []
    dtypes: list[torch.dtype] = []
    trainer = Trainer(project, {"precision": precision, "seed": 0}, run_dir=tmp, listeners=[events.append])
    trainer.prepare()
    trainer.model.fc1.register_forward_hook(lambda m, a, out: dtypes.append(out.dtype))
    trainer.prepare = lambda: None  # type: ignore[method-assign]
    trainer.run()
    return next(e["loss"] for e in events if e["type"] == "batch"), dtypes[0]


def test_bf16_on_the_cpu_computes_in_bfloat16(tmp_path: Path) -> None:
    project = digits_mlp()
    loss32, dtype32 = first_batch(project, tmp_path / "fp32", "fp32")
    loss16, dtype16 = first_batch(project, tmp_path / "bf16", "bf16")
    assert dtype32 == torch.float32 and dtype16 == torch.bfloat16
    assert loss16 != loss32 and abs(loss16 - loss32) < 0.05 * loss32  # the same model, rounded differently


def test_fp16_on_the_cpu_scales_the_loss(tmp_path: Path) -> None:
    trainer = Trainer(digits_mlp(), {"precision": "fp16"}, run_dir=tmp_path / "r")
    trainer.run()
    assert trainer.amp is torch.float16 and trainer.scaler is not None and trainer.scaler.get_scale() > 1


def test_a_precision_the_model_cannot_run_is_refused_before_the_first_step(tmp_path: Path) -> None:
    b = GraphBuilder()
    x = b.input((8, 8), name="rows")
    h = b.layer("LSTM", x, hidden_size=8, name="lstm")
    b.output(b.layer("Linear", b.port(h, "h"), out_features=10, name="classifier"))
    project = Project(b.graph, data=validate_section(DATA_FIELDS, {"dataset": "digits", "layout": "rows"}),
                      training=validate_section(TRAINING_FIELDS, {"precision": "fp16", "epochs": 1}))
    events: list[dict] = []
    with pytest.raises(TrainingError, match=r"training.precision: fp16 cannot be used on cpu with this model"):
        Trainer(project, {}, run_dir=tmp_path / "r", listeners=[events.append]).run()
    assert not events


def test_cuda_without_bf16_and_gan_precision_are_refused(tmp_path: Path) -> None:
    project = digits_mlp()
    project.training["task"] = "adversarial"
    with pytest.raises(WorkbenchError, match="the adversarial task trains in fp32; precision bf16 is not supported"):
        Trainer(project, {"precision": "bf16"}, run_dir=tmp_path / "r").prepare()
