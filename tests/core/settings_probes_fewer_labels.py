"""Probes (see ``test_settings.py``) for the transfer and self-supervised settings: each shows that changing
the setting changes what training does, or that a bad value is refused with its name."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
import torch

from workbench.config import DATA_FIELDS, validate_section
from workbench.data import load_data
from workbench.errors import WorkbenchError
from workbench.project import save_project
from workbench.training import Trainer
from workbench.training import self_supervised as ssl

from .test_self_supervised import contrastive_project, masked_image_project

PROBES: dict[tuple[str, str], Callable[[Path, pytest.MonkeyPatch], None]] = {}


def probe(section: str, name: str) -> Callable[[Callable[..., None]], Callable[..., None]]:
    def deco(fn: Callable[..., None]) -> Callable[..., None]:
        PROBES[(section, name)] = fn
        return fn

    return deco


def prepared(tmp: Path, project: object, **overrides: object) -> Trainer:
    t = Trainer(project, overrides, run_dir=tmp / f"run{len(list(tmp.glob('run*')))}")  # type: ignore[arg-type]
    t.prepare()
    return t


BATCH = torch.rand(16, 1, 8, 8, generator=torch.Generator().manual_seed(0))


def _view(tmp: Path, **training: object) -> torch.Tensor:
    t = prepared(tmp, contrastive_project(), **training)
    return t.ssl.views(BATCH, torch.Generator().manual_seed(1))


@probe("training", "ssl_temperature")
def _temperature(tmp: Path, mp: pytest.MonkeyPatch) -> None:
    losses = []
    for temperature in (0.5, 0.1):
        t = prepared(tmp, contrastive_project(), ssl_temperature=temperature)
        with torch.no_grad():
            losses.append(float(t.ssl.loss(t.model, BATCH, torch.Generator().manual_seed(1))))
    assert losses[0] != pytest.approx(losses[1])


@probe("training", "view_crop")
def _crop(tmp: Path, mp: pytest.MonkeyPatch) -> None:
    assert not torch.allclose(_view(tmp, view_crop=0.5), _view(tmp, view_crop=1.0))


@probe("training", "view_flip")
def _flip(tmp: Path, mp: pytest.MonkeyPatch) -> None:
    assert not torch.allclose(_view(tmp, view_flip=True), _view(tmp, view_flip=False))


@probe("training", "view_jitter")
def _jitter(tmp: Path, mp: pytest.MonkeyPatch) -> None:
    assert not torch.allclose(_view(tmp, view_jitter=0.0), _view(tmp, view_jitter=0.4))


@probe("training", "view_noise")
def _noise(tmp: Path, mp: pytest.MonkeyPatch) -> None:
    off = _view(tmp, view_noise=0.0, view_crop=1.0, view_jitter=0.0)
    assert torch.allclose(off, BATCH, atol=1e-6)
    assert not torch.allclose(_view(tmp, view_noise=0.3, view_crop=1.0, view_jitter=0.0), BATCH, atol=1e-3)


@probe("training", "knn_k")
def _knn_k(tmp: Path, mp: pytest.MonkeyPatch) -> None:
    seen: list[int] = []
    real = ssl.knn_accuracy
    mp.setattr(ssl, "knn_accuracy", lambda *a, **k: seen.append(a[-1]) or real(*a, **k))
    prepared(tmp, contrastive_project(), knn_k=3)
    prepared(tmp, contrastive_project(), knn_k=50)
    assert seen == [3, 50]


def _masked_share(tmp: Path, **training: object) -> torch.Tensor:
    t = prepared(tmp, masked_image_project(), **training)
    x = torch.ones(4, 1, 8, 8)
    _, mask, seen = t.ssl._masked(t.model, x, torch.Generator().manual_seed(0))
    assert torch.equal(seen == 0, mask.expand_as(seen))
    return mask


@probe("training", "mask_ratio")
def _mask_ratio(tmp: Path, mp: pytest.MonkeyPatch) -> None:
    assert float(_masked_share(tmp, mask_ratio=0.25).float().mean()) == 0.25
    assert float(_masked_share(tmp, mask_ratio=0.75).float().mean()) == 0.75


@probe("training", "patch_size")
def _patch_size(tmp: Path, mp: pytest.MonkeyPatch) -> None:
    mask = _masked_share(tmp, patch_size=4, mask_ratio=0.25)
    assert all(int(m.sum()) == 16 and bool(m[:, :4, :4].all() or m[:, :4, 4:].all() or m[:, 4:, :4].all()
                                                or m[:, 4:, 4:].all()) for m in mask)
    with pytest.raises(WorkbenchError, match="patch_size"):
        prepared(tmp, masked_image_project(), patch_size=3)


def _source(tmp: Path) -> Path:
    p = contrastive_project()
    path = save_project(p, tmp / "src.json")
    Trainer(p, {}).run()
    return path


@probe("training", "init_from")
def _init_from(tmp: Path, mp: pytest.MonkeyPatch) -> None:
    _source(tmp)
    target = contrastive_project()
    save_project(target, tmp / "dst.json")
    fresh = prepared(tmp, target)
    loaded = prepared(tmp, target, init_from="src.json")
    assert not torch.equal(fresh.model.conv.weight, loaded.model.conv.weight)
    best = next((tmp / "runs" / "src").glob("*/checkpoints/best.safetensors"))
    from workbench.weights import read_checkpoint

    assert torch.equal(loaded.model.conv.weight.detach(), read_checkpoint(best)[0]["conv.weight"])
    with pytest.raises(WorkbenchError, match=r"training\.init_from"):
        prepared(tmp, target, init_from="missing.json")


@probe("training", "init_skip")
def _init_skip(tmp: Path, mp: pytest.MonkeyPatch) -> None:
    _source(tmp)
    target = contrastive_project()
    save_project(target, tmp / "dst.json")
    fresh = prepared(tmp, target)
    skipped = prepared(tmp, target, init_from="src.json", init_skip="conv")
    assert torch.equal(fresh.model.conv.weight, skipped.model.conv.weight)
    assert not torch.equal(fresh.model.embed.weight, skipped.model.embed.weight)
    with pytest.raises(WorkbenchError, match=r"training\.init_skip"):
        prepared(tmp, target, init_from="src.json", init_skip="nope")


@probe("data", "label_fraction")
def _label_fraction(tmp: Path, mp: pytest.MonkeyPatch) -> None:
    sizes = [len(load_data(validate_section(DATA_FIELDS, {"dataset": "digits", "label_fraction": f}), (1, 8, 8)).train)
             for f in (1.0, 0.25)]
    assert sizes[1] == pytest.approx(sizes[0] / 4, abs=10)
    blobs = validate_section(DATA_FIELDS, {"dataset": "synthetic_regression", "label_fraction": 0.5})
    from workbench.config import cross_check, default_training

    with pytest.raises(ValueError, match=r"data\.label_fraction"):
        cross_check(blobs, default_training())
