"""Validation metrics against direct numpy computations: R² per output column, top-k only when it says something."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from workbench.training.tasks import MetricAccumulator


def r2_uniform_average(y: np.ndarray, pred: np.ndarray) -> float:
    """sklearn's r2_score(..., multioutput='uniform_average'), written out (constant columns as sklearn does)."""
    y, pred = y.reshape(len(y), -1).astype(np.float64), pred.reshape(len(pred), -1).astype(np.float64)
    sse = ((y - pred) ** 2).sum(0)
    sst = ((y - y.mean(0)) ** 2).sum(0)
    scores = np.where(sst > 0, 1 - sse / np.where(sst > 0, sst, 1), np.where(sse == 0, 1.0, 0.0))
    return float(scores.mean())


def accumulate(y: torch.Tensor, pred: torch.Tensor, batch: int) -> dict[str, float]:
    acc = MetricAccumulator("regression")
    for i in range(0, len(y), batch):
        acc.add(pred[i : i + batch], y[i : i + batch], 0.0)
    return acc.result()


def test_r2_is_per_output_column_and_averaged() -> None:
    g = torch.Generator().manual_seed(0)
    y = torch.randn(200, 2, generator=g) * torch.tensor([1.0, 5.0]) + torch.tensor([0.0, 10.0])
    pred = torch.stack([y[:, 0], torch.full((200,), float(y[:, 1].mean()))], 1)  # one perfect, one constant
    r = accumulate(y, pred, batch=32)
    assert r["r2"] == pytest.approx(0.5, abs=1e-9)
    assert r["r2"] == pytest.approx(r2_uniform_average(y.numpy(), pred.numpy()), abs=1e-9)


@pytest.mark.parametrize("shape", [(1,), (3,), (2, 4)])
@pytest.mark.parametrize("batch", [1, 7, 500])
def test_r2_matches_numpy_over_batches(shape: tuple[int, ...], batch: int) -> None:
    g = torch.Generator().manual_seed(len(shape) * 100 + batch)
    y = torch.randn(300, *shape, generator=g) * 3 + 1000.0  # a large offset: no cancellation allowed
    pred = y + torch.randn(300, *shape, generator=g) * torch.linspace(0.1, 4.0, int(np.prod(shape))).reshape(shape)
    r = accumulate(y, pred, batch)
    assert r["r2"] == pytest.approx(r2_uniform_average(y.numpy(), pred.numpy()), abs=1e-6)
    assert r["mse"] == pytest.approx(float(((y - pred) ** 2).double().mean()), rel=1e-6)
    assert r["mae"] == pytest.approx(float((y - pred).abs().double().mean()), rel=1e-6)


def test_r2_constant_target_column_follows_sklearn() -> None:
    y = torch.stack([torch.arange(10.0), torch.full((10,), 2.0)], 1)
    exact = accumulate(y, y.clone(), batch=3)["r2"]
    off = accumulate(y, y + torch.tensor([0.0, 1.0]), batch=3)["r2"]
    assert exact == pytest.approx(1.0) and off == pytest.approx(0.5)
    assert off == pytest.approx(r2_uniform_average(y.numpy(), (y + torch.tensor([0.0, 1.0])).numpy()))


@pytest.mark.parametrize(("classes", "top_k", "reported"), [(4, 5, False), (5, 5, False), (6, 5, True), (4, 2, True)])
def test_top_k_only_when_k_is_below_the_class_count(classes: int, top_k: int, reported: bool) -> None:
    g = torch.Generator().manual_seed(classes)
    y = torch.randint(0, classes, (50,), generator=g)
    logits = torch.randn(50, classes, generator=g)
    acc = MetricAccumulator("classification", classes, top_k)
    acc.add(logits, y, 0.0)
    r = acc.result()
    assert (f"top{top_k}_accuracy" in r) is reported
    if reported:
        want = float((logits.topk(top_k, 1).indices == y[:, None]).any(1).float().mean())
        assert r[f"top{top_k}_accuracy"] == pytest.approx(want)
