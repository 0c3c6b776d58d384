"""Hyperparameter sweeps on Optuna: a search space over training settings and node parameters,
each trial an ordinary training run, the study in Optuna's storage (SQLite beside the project
by default).  Optuna is imported only by the functions that run a study (the ``sweep`` extra)."""

from .spec import SweepError, SweepParam, SweepSpec, parse_param, sweep_from_dict

__all__ = ["SweepError", "SweepParam", "SweepSpec", "parse_param", "sweep_from_dict"]
