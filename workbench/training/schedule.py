"""Learning-rate schedules as pure functions of (step, epoch) plus a tiny plateau state.

Being pure makes a resumed run continue exactly where it stopped: only the
plateau factor has state, and it is saved in the checkpoint's JSON.
"""

from __future__ import annotations

import math
from dataclasses import dataclass


@dataclass
class Schedule:
    kind: str  # none | step | cosine | onecycle | plateau
    base_lr: float
    total_steps: int
    steps_per_epoch: int
    warmup_steps: int = 0
    step_size: int = 10
    gamma: float = 0.1
    plateau_patience: int = 2
    plateau_factor: float = 1.0
    plateau_best: float = math.inf
    plateau_bad: int = 0

    def lr(self, step: int) -> float:
        """Learning rate for global ``step`` (0-based)."""
        warm = min(1.0, (step + 1) / self.warmup_steps) if self.warmup_steps else 1.0
        t = max(0, step - self.warmup_steps)
        span = max(1, self.total_steps - self.warmup_steps)
        if self.kind == "step":
            factor = self.gamma ** ((step // max(1, self.steps_per_epoch)) // self.step_size)
        elif self.kind == "cosine":
            factor = 0.5 * (1 + math.cos(math.pi * min(1.0, t / span)))
        elif self.kind == "onecycle":
            # warm up to the peak over 30 % of the run, then cosine down to 1/10^4 of it
            up = max(1, int(0.3 * self.total_steps))
            if step < up:
                return self.base_lr * (0.04 + 0.96 * step / up)
            frac = min(1.0, (step - up) / max(1, self.total_steps - up))
            return self.base_lr * (1e-4 + (1 - 1e-4) * 0.5 * (1 + math.cos(math.pi * frac)))
        elif self.kind == "plateau":
            factor = self.plateau_factor
        else:
            factor = 1.0
        return self.base_lr * factor * warm

    def end_epoch(self, val_loss: float | None) -> None:
        """Reduce on plateau: after ``plateau_patience`` epochs without improvement, multiply by gamma."""
        if self.kind != "plateau" or val_loss is None:
            return
        if val_loss < self.plateau_best - 1e-4 * abs(self.plateau_best):
            self.plateau_best, self.plateau_bad = val_loss, 0
        else:
            self.plateau_bad += 1
            if self.plateau_bad > self.plateau_patience:
                self.plateau_factor *= self.gamma
                self.plateau_bad = 0

    def state(self) -> dict[str, float]:
        return {"plateau_factor": self.plateau_factor, "plateau_best": self.plateau_best
                if math.isfinite(self.plateau_best) else 1e308, "plateau_bad": self.plateau_bad}

    def load_state(self, state: dict[str, float]) -> None:
        self.plateau_factor = float(state.get("plateau_factor", 1.0))
        self.plateau_best = float(state.get("plateau_best", math.inf))
        self.plateau_bad = int(state.get("plateau_bad", 0))
