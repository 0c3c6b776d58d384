"""What a study holds, for the command line and the dock: the project's declared sweep, Optuna's
best trials (the Pareto front with several objectives), and a trial's values written into a project."""

from __future__ import annotations

from typing import Any

from ..project import Project
from .apply import apply_values, targets_of
from .spec import SweepError, SweepSpec
from .study import optuna_module


def sweep_spec_of(project: Project) -> SweepSpec:
    """The project's declared sweep (an empty one when it declares none)."""
    from .spec import sweep_from_dict

    return sweep_from_dict(project.sweep) if project.sweep is not None else SweepSpec()


def best_trials(study: Any) -> list[Any]:
    """Optuna's best: the best trial (single objective) or the Pareto front (several)."""
    optuna = optuna_module()
    complete = [t for t in study.get_trials(deepcopy=False) if t.state == optuna.trial.TrialState.COMPLETE]
    if not complete:
        return []
    return list(study.best_trials) if len(study.directions) > 1 else [study.best_trial]


def apply_trial(project: Project, study: Any, number: int) -> Project:
    """A copy of ``project`` with trial ``number``'s values.

    Raises:
        SweepError: no such trial, or a value the project refuses now.
    """
    trials = {t.number: t for t in study.get_trials(deepcopy=False)}
    if number not in trials:
        raise SweepError(f"the study has no trial {number} (trials 0 to {max(trials, default=-1)})", "--apply")
    params = trials[number].params
    if not params:
        raise SweepError(f"trial {number} has no values (it never started)", "--apply")
    return apply_values(project, targets_of(project, list(params)), params)
