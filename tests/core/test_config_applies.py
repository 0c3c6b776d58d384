"""Which settings apply to which configuration (``workbench.config.applies``): the set-up form
shows only those.  Checked against the declarations (every setting is shown somewhere, every rule
names a setting) and against what the code does (a hidden setting changes nothing measured)."""

from __future__ import annotations

from typing import Any

import pytest
import torch

from workbench.config import (
    APPLIES,
    DATA_FIELDS,
    TRAINING_FIELDS,
    applies,
    default_data,
    default_training,
    field_label,
    validate_section,
)
from workbench.data import load_samples
from workbench.layers.spec import BoolParam, ChoiceParam, Param
from workbench.training.schedule import Schedule
from workbench.training.tasks import MetricAccumulator

SECTIONS: dict[str, tuple[Param, ...]] = {"data": DATA_FIELDS, "training": TRAINING_FIELDS}


def configurations() -> list[tuple[dict[str, Any], dict[str, Any]]]:
    """From the declarations: the defaults, then each choice and each switch set to each of its
    values in turn (the rules read one setting each)."""
    out = [(default_data(), default_training())]
    for section, fields in SECTIONS.items():
        for f in fields:
            values = f.choices if isinstance(f, ChoiceParam) else (False, True) if isinstance(f, BoolParam) else ()
            for v in values:
                data, training = default_data(), default_training()
                (data if section == "data" else training)[f.name] = v
                out.append((data, training))
    return out


def test_every_setting_is_shown_in_some_configuration() -> None:
    configs = configurations()
    for section, fields in SECTIONS.items():
        for f in fields:
            key = f"{section}.{f.name}"
            assert any(applies(key, d, t) for d, t in configs), f"{key} is never shown"


def test_every_rule_names_a_declared_setting() -> None:
    declared = {f"{s}.{f.name}" for s, fields in SECTIONS.items() for f in fields}
    assert set(APPLIES) <= declared, set(APPLIES) - declared
    # and each rule hides its setting somewhere (else it is no rule)
    configs = configurations()
    for key in APPLIES:
        assert any(not applies(key, d, t) for d, t in configs), f"{key} is shown everywhere"


@pytest.mark.parametrize(("training", "shown", "hidden"), [
    ({"optimizer": "sgd"}, {"momentum", "nesterov"}, set()),
    ({"optimizer": "adam"}, {"momentum"}, {"nesterov"}),
    ({"schedule": "step"}, {"step_size", "gamma"}, set()),
    ({"schedule": "plateau"}, {"gamma"}, {"step_size"}),
    ({"schedule": "cosine"}, set(), {"step_size", "gamma"}),
    ({"task": "adversarial"}, {"d_lr_scale", "d_steps"}, {"top_k", "precision"}),
    ({"task": "regression"}, {"precision"}, {"d_lr_scale", "d_steps", "top_k"}),
    ({"task": "contrastive"}, {"ssl_temperature", "view_crop", "view_flip", "view_jitter", "view_noise", "knn_k"},
     {"mask_ratio", "patch_size", "top_k"}),
    ({"task": "masked_image"}, {"mask_ratio", "patch_size"}, {"ssl_temperature", "view_crop", "knn_k"}),
    ({"task": "masked_tokens"}, {"mask_ratio"}, {"patch_size", "view_noise"}),
    ({"task": "classification"}, {"top_k"}, {"ssl_temperature", "view_flip", "mask_ratio", "patch_size"}),
])
def test_training_rules(training: dict[str, Any], shown: set[str], hidden: set[str]) -> None:
    t = validate_section(TRAINING_FIELDS, training)
    d = default_data()
    assert all(applies(f"training.{k}", d, t) for k in shown)
    assert not any(applies(f"training.{k}", d, t) for k in hidden)


@pytest.mark.parametrize(("dataset", "shown"), [
    ("digits", {"augment", "label_fraction"}),
    ("csv", {"path", "target_column", "label_fraction"}),
    ("image_folder", {"path", "image_size", "grayscale", "augment", "label_fraction"}),
    ("idx", {"path", "augment", "label_fraction"}),
    ("torchvision", {"path", "name", "augment", "label_fraction"}),
    ("text", {"path", "seq_len"}),
    ("synthetic_blobs", {"num_samples", "label_fraction"}),
    ("numbers_to_words", {"num_samples"}),
])
def test_data_rules(dataset: str, shown: set[str]) -> None:
    d = validate_section(DATA_FIELDS, {"dataset": dataset})
    t = default_training()
    ruled = {k.split(".")[1] for k in APPLIES if k.startswith("data.")}
    assert {k for k in ruled if applies(f"data.{k}", d, t)} == shown | {"shuffle"}  # shuffle: unless private


@pytest.mark.parametrize(("training", "shown", "hidden"), [
    ({}, {"shuffle"}, {"noise_multiplier", "max_grad_norm", "target_epsilon", "target_delta", "accountant"}),
    ({"privacy": True}, {"noise_multiplier", "max_grad_norm", "target_epsilon", "target_delta", "accountant"},
     {"shuffle"}),
    ({"privacy": True, "target_epsilon": 3.0}, {"max_grad_norm", "target_epsilon"}, {"noise_multiplier", "shuffle"}),
])
def test_privacy_rules(training: dict[str, Any], shown: set[str], hidden: set[str]) -> None:
    t = validate_section(TRAINING_FIELDS, training)
    d = default_data()
    where = {f.name: "data" for f in DATA_FIELDS}
    assert all(applies(f"{where.get(k, 'training')}.{k}", d, t) for k in shown)
    assert not any(applies(f"{where.get(k, 'training')}.{k}", d, t) for k in hidden)


def test_a_value_refused_where_hidden_stays_shown_to_be_fixed() -> None:
    # cross_check refuses augment on a dataset without images and nesterov without sgd: shown then
    d = validate_section(DATA_FIELDS, {"dataset": "synthetic_blobs", "augment": "shift"})
    assert applies("data.augment", d, default_training())
    t = validate_section(TRAINING_FIELDS, {"optimizer": "adam", "nesterov": True})
    assert applies("training.nesterov", default_data(), t)
    t = validate_section(TRAINING_FIELDS, {"task": "adversarial", "precision": "bf16"})
    assert applies("training.precision", default_data(), t)


def test_momentum_is_named_beta1_for_adam() -> None:
    d = default_data()
    for opt, label in (("sgd", "momentum"), ("rmsprop", "momentum"), ("adam", "beta1"), ("adamw", "beta1")):
        assert field_label("training.momentum", d, validate_section(TRAINING_FIELDS, {"optimizer": opt})) == label
    assert field_label("data.target_column", d, default_training()) == "target column"


# --------------------------------------------------------------------------- hidden means no effect

def _changed(f: Param, value: Any) -> Any:
    """Another valid value of ``f``."""
    if isinstance(f, BoolParam):
        return not value
    if isinstance(f, ChoiceParam):
        return next(c for c in f.choices if c != value)
    if f.kind == "str":
        return "elsewhere"
    if f.kind == "int":
        return value + 3 if f.maximum is None or value + 3 <= f.maximum else value - 3  # type: ignore[attr-defined]
    if f.kind == "float":
        return value / 2 if value else 0.05
    raise AssertionError(f.kind)


@pytest.mark.parametrize("dataset", ["digits", "synthetic_blobs", "synthetic_regression", "synthetic_sequence",
                                     "numbers_to_words", "text"])
def test_a_hidden_data_setting_does_not_change_the_samples(dataset: str) -> None:
    base = validate_section(DATA_FIELDS, {"dataset": dataset, "num_samples": 60})
    t = default_training()
    reference = load_samples(base)
    checked = 0
    for f in DATA_FIELDS:
        key = f"data.{f.name}"
        if applies(key, base, t) or f.name in ("layout", "augment"):  # (those two act after loading)
            continue
        other = {**base, f.name: _changed(f, base[f.name])}
        if applies(key, other, t):  # the new value shows the setting (e.g. a refused one)
            continue
        samples = load_samples(other)
        assert torch.equal(samples.x, reference.x) and torch.equal(samples.y, reference.y), key
        checked += 1
    assert checked >= 4


@pytest.mark.parametrize(("dataset", "setting", "value"), [
    ("synthetic_blobs", "num_samples", 30), ("numbers_to_words", "num_samples", 30), ("text", "seq_len", 12)])
def test_a_shown_data_setting_changes_the_samples(dataset: str, setting: str, value: Any) -> None:
    base = validate_section(DATA_FIELDS, {"dataset": dataset})
    assert applies(f"data.{setting}", base, default_training())
    a, b = load_samples(base), load_samples({**base, setting: value})
    assert a.x.shape != b.x.shape


def _lrs(kind: str, step_size: int, gamma: float) -> list[float]:
    s = Schedule(kind, 0.1, 60, 4, 0, step_size, gamma)
    out = []
    for step in range(60):
        out.append(s.lr(step))
        if step % 4 == 3:
            s.end_epoch(1.0, step // 4)  # a flat validation loss: a plateau
    return out


@pytest.mark.parametrize("kind", ["none", "step", "cosine", "onecycle", "plateau"])
def test_hidden_schedule_settings_do_not_change_the_rates(kind: str) -> None:
    t = validate_section(TRAINING_FIELDS, {"schedule": kind})
    d = default_data()
    ref = _lrs(kind, 3, 0.5)
    for name, args in (("step_size", (5, 0.5)), ("gamma", (3, 0.2))):
        same = _lrs(kind, *args) == ref
        assert same != applies(f"training.{name}", d, t), (kind, name)


@pytest.mark.parametrize("task", ["regression", "reconstruction", "language_model"])
def test_top_k_is_hidden_where_it_changes_no_metric(task: str) -> None:
    t = validate_section(TRAINING_FIELDS, {"task": task})
    assert not applies("training.top_k", default_data(), t)
    torch.manual_seed(0)
    if task == "language_model":
        out, y = torch.randn(4, 6, 10), torch.randint(0, 10, (4, 6))
    else:
        out, y = torch.randn(4, 10), torch.randn(4, 10)
    results = []
    for k in (1, 5):
        acc = MetricAccumulator(task, 10, k)
        acc.add(out, y, 0.5)
        results.append(acc.result())
    assert results[0] == results[1]
    # where it is shown it does change one
    acc1, acc5 = MetricAccumulator("classification", 10, 1), MetricAccumulator("classification", 10, 5)
    logits, labels = torch.randn(32, 10), torch.randint(0, 10, (32,))
    for acc in (acc1, acc5):
        acc.add(logits, labels, 0.5)
    assert acc1.result() != acc5.result()
