"""Learning-rate schedules as pure functions of the step, plus a tiny plateau state.

Being pure makes a resumed run continue exactly where it stopped: only the
plateau schedule has state, and it is saved in the checkpoint's JSON.

Each schedule is defined as a configuration of ``torch.optim.lr_scheduler``
stepped once per optimizer step (``tests/core/test_schedules.py`` checks
them against torch step by step).  ``W`` is the warm-up in steps
(``warmup_epochs x steps per epoch``) and ``T`` the run's total steps:

- warm-up (``W > 0``, every schedule but onecycle): ``LinearLR(start_factor=1/(W+1),
  end_factor=1, total_iters=W)`` for the first ``W`` steps, so the rate climbs
  ``lr/(W+1), 2 lr/(W+1), ...`` and reaches ``lr`` when the schedule proper starts;
  the schedule is joined with ``SequentialLR(milestones=[W])`` and so starts
  counting its own steps after the warm-up;
- ``none``: constant ``lr`` (after the warm-up, if any);
- ``step``: ``StepLR(step_size=step_size x steps per epoch, gamma)``: decays every
  ``step_size`` epochs;
- ``cosine``: ``CosineAnnealingLR(T_max=T - W, eta_min=0)``;
- ``onecycle``: ``OneCycleLR(max_lr=lr, total_steps=T, pct_start=W/T if W else 0.3,
  anneal_strategy="cos", div_factor=25, final_div_factor=1e4, three_phase=False,
  cycle_momentum=False)``: its first phase *is* its warm-up, so ``warmup_epochs`` sets
  its length (it must end before the run does); momentum is the user's setting and
  is not cycled;
- ``plateau``: ``ReduceLROnPlateau(mode="min", factor=gamma, patience=2,
  threshold=1e-4, threshold_mode="rel", cooldown=0, min_lr=0, eps=1e-8)`` stepped
  with the validation loss at the end of every epoch after the warm-up epochs.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

ONECYCLE_PCT_START = 0.3
ONECYCLE_DIV_FACTOR = 25.0
ONECYCLE_FINAL_DIV_FACTOR = 1e4
PLATEAU_THRESHOLD = 1e-4
PLATEAU_EPS = 1e-8
_JSON_INF = 1e308  # JSON has no infinity; the plateau's "no best yet" is stored as this


@dataclass
class Schedule:
    """The learning rate of every step of a run (see the module docstring for the reference)."""

    kind: str  # none | step | cosine | onecycle | plateau
    base_lr: float
    total_steps: int
    steps_per_epoch: int
    warmup_steps: int = 0
    step_size: int = 10  # epochs
    gamma: float = 0.1
    plateau_patience: int = 2
    plateau_factor: float = 1.0
    plateau_best: float = math.inf
    plateau_bad: int = 0

    def __post_init__(self) -> None:
        if self.kind == "onecycle" and self.warmup_steps >= self.total_steps:
            raise ValueError(f"the onecycle warm-up ({self.warmup_steps} steps) must end before the run "
                             f"({self.total_steps} steps)")

    def lr(self, step: int) -> float:
        """Learning rate for global ``step`` (0-based)."""
        step = max(0, step)
        if self.kind == "onecycle":
            return self._onecycle(min(step, self.total_steps - 1))
        w = self.warmup_steps
        if step < w:
            return self.base_lr * (step + 1) / (w + 1)
        t = step - w  # the schedule's own step, counted after the warm-up
        if self.kind == "step":
            return self.base_lr * self.gamma ** (t // (max(1, self.step_size) * max(1, self.steps_per_epoch)))
        if self.kind == "cosine":
            span = max(1, self.total_steps - w)
            return self.base_lr * (1 + math.cos(math.pi * min(t, span) / span)) / 2
        if self.kind == "plateau":
            return self.base_lr * self.plateau_factor
        return self.base_lr

    def _onecycle(self, step: int) -> float:
        # the same arithmetic as torch.optim.lr_scheduler.OneCycleLR.get_lr (two phases, cosine)
        total = self.total_steps
        pct_start = self.warmup_steps / total if self.warmup_steps else ONECYCLE_PCT_START
        initial = self.base_lr / ONECYCLE_DIV_FACTOR
        minimum = initial / ONECYCLE_FINAL_DIV_FACTOR
        phases = ((float(pct_start * total) - 1, initial, self.base_lr), (total - 1, self.base_lr, minimum))
        start_step = 0.0
        for i, (end_step, start, end) in enumerate(phases):
            if step <= end_step or i == len(phases) - 1:
                pct = (step - start_step) / (end_step - start_step)
                return end + (start - end) / 2.0 * (math.cos(math.pi * pct) + 1)
            start_step = end_step
        raise AssertionError("unreachable")

    def end_epoch(self, val_loss: float | None, epoch: int | None = None) -> None:
        """Reduce on plateau after ``epoch`` (0-based): after more than ``plateau_patience`` epochs
        without a relative improvement of 1e-4, multiply the rate by gamma.  Warm-up epochs do not count."""
        if self.kind != "plateau" or val_loss is None:
            return
        if epoch is not None and (epoch + 1) * self.steps_per_epoch <= self.warmup_steps:
            return
        if val_loss < self.plateau_best * (1.0 - PLATEAU_THRESHOLD):
            self.plateau_best, self.plateau_bad = val_loss, 0
        else:
            self.plateau_bad += 1
        if self.plateau_bad > self.plateau_patience:
            old = self.base_lr * self.plateau_factor
            if old - old * self.gamma > PLATEAU_EPS:
                self.plateau_factor *= self.gamma
            self.plateau_bad = 0

    def state(self) -> dict[str, float]:
        """What a checkpoint must keep to resume the schedule (JSON-safe)."""
        return {"plateau_factor": self.plateau_factor, "plateau_best": self.plateau_best
                if math.isfinite(self.plateau_best) else _JSON_INF, "plateau_bad": self.plateau_bad}

    def load_state(self, state: dict[str, float]) -> None:
        """Continue from :meth:`state`."""
        self.plateau_factor = float(state.get("plateau_factor", 1.0))
        best = float(state.get("plateau_best", math.inf))
        self.plateau_best = math.inf if best >= _JSON_INF else best
        self.plateau_bad = int(state.get("plateau_bad", 0))
