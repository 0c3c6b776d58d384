"""Every learning-rate schedule agrees step by step with its torch.optim.lr_scheduler reference."""

from __future__ import annotations

import json
import math
import random
import warnings

import pytest
import torch
from torch.optim import lr_scheduler as tls

from workbench.training.schedule import Schedule

BASE = 0.003
SPE, EPOCHS = 7, 12  # steps per epoch, epochs
TOTAL = SPE * EPOCHS


def _optimizer() -> torch.optim.Optimizer:
    return torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=BASE)


def torch_lrs(kind: str, warmup_epochs: int, step_size: int = 3, gamma: float = 0.5,
              val_losses: list[float] | None = None) -> list[float]:
    """The rate torch's schedulers give every step, configured as schedule.py documents."""
    opt = _optimizer()
    w = warmup_epochs * SPE
    lrs: list[float] = []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # SequentialLR passes an epoch to step() at the milestone (deprecated)
        if kind == "plateau":
            plateau = tls.ReduceLROnPlateau(opt, mode="min", factor=gamma, patience=2, threshold=1e-4,
                                            threshold_mode="rel", cooldown=0, min_lr=0, eps=1e-8)
            warm = tls.LinearLR(opt, start_factor=1 / (w + 1), end_factor=1.0, total_iters=w) if w else None
            assert val_losses is not None
            for epoch in range(EPOCHS):
                for _ in range(SPE):
                    lrs.append(opt.param_groups[0]["lr"])
                    opt.step()
                    if warm is not None and warm.last_epoch < w:
                        warm.step()
                if epoch >= warmup_epochs:
                    plateau.step(val_losses[epoch])
            return lrs
        if kind == "onecycle":
            sched: tls.LRScheduler = tls.OneCycleLR(opt, max_lr=BASE, total_steps=TOTAL,
                                                    pct_start=w / TOTAL if w else 0.3, anneal_strategy="cos",
                                                    div_factor=25.0, final_div_factor=1e4, three_phase=False,
                                                    cycle_momentum=False)
        else:
            main = {"none": lambda: tls.LambdaLR(opt, lambda _: 1.0),
                    "step": lambda: tls.StepLR(opt, step_size=step_size * SPE, gamma=gamma),
                    "cosine": lambda: tls.CosineAnnealingLR(opt, T_max=TOTAL - w, eta_min=0.0)}[kind]
            if w:
                warm = tls.LinearLR(opt, start_factor=1 / (w + 1), end_factor=1.0, total_iters=w)
                sched = tls.SequentialLR(opt, [warm, main()], milestones=[w])
            else:
                sched = main()
        for _ in range(TOTAL):
            lrs.append(opt.param_groups[0]["lr"])
            opt.step()
            sched.step()
    return lrs


def ours(kind: str, warmup_epochs: int, step_size: int = 3, gamma: float = 0.5,
         val_losses: list[float] | None = None) -> list[float]:
    s = Schedule(kind, BASE, TOTAL, SPE, warmup_epochs * SPE, step_size, gamma)
    lrs = []
    for epoch in range(EPOCHS):
        lrs += [s.lr(epoch * SPE + i) for i in range(SPE)]
        s.end_epoch(val_losses[epoch] if val_losses else None, epoch)
    return lrs


def assert_same(got: list[float], want: list[float]) -> None:
    assert len(got) == len(want)
    for step, (g, w) in enumerate(zip(got, want, strict=True)):
        assert math.isclose(g, w, rel_tol=1e-9, abs_tol=0.0), (step, g, w)


@pytest.mark.parametrize("warmup", [0, 1, 3])
@pytest.mark.parametrize("kind", ["none", "step", "cosine", "onecycle"])
def test_schedule_matches_torch_step_by_step(kind: str, warmup: int) -> None:
    assert_same(ours(kind, warmup), torch_lrs(kind, warmup))


def test_onecycle_ends_where_torch_ends_and_warms_up() -> None:
    lrs = ours("onecycle", 0)
    assert math.isclose(lrs[0], BASE / 25, rel_tol=1e-12)
    assert math.isclose(max(lrs), BASE, rel_tol=1e-3)
    assert math.isclose(lrs[-1], BASE / 25 / 1e4, rel_tol=1e-9)
    warm = ours("onecycle", 4)  # warm-up epochs set the first phase's length
    assert warm.index(max(warm)) == 4 * SPE - 1
    with pytest.raises(ValueError, match="onecycle warm-up"):
        Schedule("onecycle", BASE, TOTAL, SPE, TOTAL)


PLATEAU_LOSSES = [
    [1.0, 0.9, 0.95, 0.95, 0.95, 0.95, 0.8, 0.8, 0.8, 0.8, 0.79999, 0.7],  # reductions; a too-small gain
    [-1.0, -1.00005, -1.2, -1.2, -1.2, -1.2, -1.2, -1.3, -1.3, -1.3, -1.3, -1.3],  # negative losses: rel threshold
    [float("nan")] * 4 + [1.0] * 8,
]


@pytest.mark.parametrize("warmup", [0, 2])
@pytest.mark.parametrize("losses", PLATEAU_LOSSES, ids=["falling", "negative", "nan"])
def test_plateau_matches_reduce_lr_on_plateau(losses: list[float], warmup: int) -> None:
    assert_same(ours("plateau", warmup, val_losses=losses), torch_lrs("plateau", warmup, val_losses=losses))


def test_plateau_random_losses_and_tiny_rates() -> None:
    rng = random.Random(0)
    for _ in range(20):
        losses = [rng.choice([1.0, 0.5, rng.random()]) for _ in range(EPOCHS)]
        gamma = rng.choice([0.1, 0.5, 0.01])
        assert_same(ours("plateau", 0, gamma=gamma, val_losses=losses),
                    torch_lrs("plateau", 0, gamma=gamma, val_losses=losses))


def test_plateau_state_resumes_through_json() -> None:
    losses = PLATEAU_LOSSES[0]
    whole = ours("plateau", 1, val_losses=losses)
    first = Schedule("plateau", BASE, TOTAL, SPE, SPE, 3, 0.5)
    lrs = []
    for epoch in range(5):
        lrs += [first.lr(epoch * SPE + i) for i in range(SPE)]
        first.end_epoch(losses[epoch], epoch)
    second = Schedule("plateau", BASE, TOTAL, SPE, SPE, 3, 0.5)
    second.load_state(json.loads(json.dumps(first.state())))
    for epoch in range(5, EPOCHS):
        lrs += [second.lr(epoch * SPE + i) for i in range(SPE)]
        second.end_epoch(losses[epoch], epoch)
    assert lrs == whole
    fresh = Schedule("plateau", BASE, TOTAL, SPE)
    fresh.load_state(json.loads(json.dumps(fresh.state())))  # "no best yet" survives JSON
    assert fresh.plateau_best == math.inf
