"""Sequence to sequence: the bundled numbers-to-words data, teacher forcing, the loss that ignores
padding, greedy decoding and its exact-sequence accuracy, pre-flight errors located on the two
Inputs and the Output, and training from the command line."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from workbench.cli import check_report
from workbench.config import DATA_FIELDS, TRAINING_FIELDS, validate_section
from workbench.data import DataError, load_samples
from workbench.data.base import BOS, EOS, PAD
from workbench.data.sources import NUMBER_VOCABULARY, number_words
from workbench.graph import Graph
from workbench.project import Project, save_project
from workbench.samples import numbers_to_words
from workbench.training import Control, Trainer
from workbench.training.preflight import PreflightError, describe, preflight
from workbench.training.seq2seq import greedy_decode, pairs_text
from workbench.training.tasks import MetricAccumulator, loss_fn, model_inputs

DATA = {"dataset": "numbers_to_words"}


def text(ids: torch.Tensor) -> str:
    return "".join(NUMBER_VOCABULARY[i] for i in ids.tolist() if i not in (PAD, BOS, EOS))


# --------------------------------------------------------------------------- the data


def test_number_words() -> None:
    cases = {0: "zero", 13: "thirteen", 40: "forty", 42: "forty-two", 100: "one hundred", 101: "one hundred one",
             999: "nine hundred ninety-nine", 1000: "one thousand", 20_017: "twenty thousand seventeen",
             999_999: "nine hundred ninety-nine thousand nine hundred ninety-nine"}
    assert {n: number_words(n) for n in cases} == cases


def test_pairs_are_source_digits_and_target_words_seeded() -> None:
    s = load_samples(validate_section(DATA_FIELDS, {**DATA, "num_samples": 300}))
    assert s.kind == "seq2seq" and s.class_names == NUMBER_VOCABULARY and len(s) == 300
    assert s.x.dtype == s.y.dtype == torch.int64
    numbers = [int(text(row)) for row in s.x]
    assert len(set(numbers)) == 300 and max(numbers) < 1000  # distinct, below the smallest power of ten >= 1000
    for src, tgt in zip(s.x, s.y, strict=True):
        assert tgt[0] == BOS and text(tgt) == number_words(int(text(src)))
        for row in (src, tgt):  # EOS ends each sequence; only PAD follows it
            end = row.tolist().index(EOS)
            assert (row[end + 1:] == PAD).all() and not (row[:end] == PAD).any()
    again = load_samples(validate_section(DATA_FIELDS, {**DATA, "num_samples": 300}))
    other = load_samples(validate_section(DATA_FIELDS, {**DATA, "num_samples": 300, "seed": 1}))
    assert torch.equal(s.x, again.x) and not torch.equal(s.x, other.x)


def test_more_samples_reach_larger_numbers_up_to_a_million() -> None:
    s = load_samples(validate_section(DATA_FIELDS, {**DATA, "num_samples": 2000}))
    assert max(int(text(row)) for row in s.x) >= 1000
    with pytest.raises(DataError, match="num_samples=1,000,001 asks for more"):
        load_samples(validate_section(DATA_FIELDS, {**DATA, "num_samples": 1_000_001}))


# --------------------------------------------------------------------------- the task


def test_teacher_forcing_feeds_the_target_shifted_right_and_scores_it_shifted_left() -> None:
    x, y = torch.tensor([[5, 6, EOS]]), torch.tensor([[BOS, 20, 21, EOS, PAD]])
    inputs, target = model_inputs("seq2seq", x, y)
    assert [t.tolist() for t in inputs] == [[[5, 6, EOS]], [[BOS, 20, 21, EOS]]]
    assert target.tolist() == [[20, 21, EOS, PAD]]
    assert model_inputs("classification", x, y) == ((x,), y)


def test_loss_and_token_accuracy_ignore_padding() -> None:
    torch.manual_seed(0)
    y = torch.tensor([[7, 8, EOS, PAD, PAD], [9, EOS, PAD, PAD, PAD]])
    out = torch.randn(2, 5, 12)
    real = y != PAD
    want = F.cross_entropy(out[real], y[real])
    torch.testing.assert_close(loss_fn("seq2seq", out, y, 12), want)
    noisy = out.clone()
    noisy[~real] = torch.randn(int((~real).sum()), 12) * 10  # scores at padded steps change nothing
    torch.testing.assert_close(loss_fn("seq2seq", noisy, y, 12), want)
    acc = MetricAccumulator("seq2seq", 12)
    perfect = F.one_hot(y, 12).float() * 10
    perfect[0, 3] = F.one_hot(torch.tensor(5), 12) * 10.0  # a wrong guess on a padded step: not counted
    acc.add(perfect, y, 0.0)
    assert acc.result()["accuracy"] == 1.0
    with pytest.raises(Exception, match=r"seq2seq needs the Output to be \[N, 5, 12\]"):
        loss_fn("seq2seq", torch.randn(2, 5, 11), y, 12)


class _Copier(nn.Module):
    """A causal 'decoder' that predicts source[t] at step t, then EOS: reads only steps <= t."""

    def __init__(self, vocab: int = 12) -> None:
        super().__init__()
        self.vocab = vocab
        self.calls: list[int] = []

    def forward(self, source: torch.Tensor, fed: torch.Tensor) -> torch.Tensor:
        self.calls.append(fed.shape[1])
        want = torch.cat([source, torch.full((source.shape[0], 64), EOS)], 1)[:, : fed.shape[1]]
        return F.one_hot(want, self.vocab).float()


@pytest.mark.parametrize("fixed_length", [False, True])
def test_greedy_decoding_writes_until_eos_and_pads_after(fixed_length: bool) -> None:
    model = _Copier()
    source = torch.tensor([[5, 6, 7], [8, 9, 10]])
    written = greedy_decode(model, source, steps=6, fixed_length=fixed_length)
    assert written.tolist() == [[5, 6, 7, EOS, PAD, PAD], [8, 9, 10, EOS, PAD, PAD]]
    assert model.calls == ([6] * 4 if fixed_length else [1, 2, 3, 4])  # stops once every sequence ended


def test_sequence_accuracy_counts_whole_sequences() -> None:
    y = torch.tensor([[5, 6, EOS, PAD], [7, EOS, PAD, PAD], [8, 9, EOS, PAD]])
    written = torch.tensor([[5, 6, EOS, PAD], [7, 7, EOS, PAD], [8, 9, 9, EOS]])  # right, wrong token, too long
    acc = MetricAccumulator("seq2seq", 12)
    acc.add(F.one_hot(y, 12).float(), y, 0.0)
    acc.add_decoded(written, y)
    assert acc.result()["sequence_accuracy"] == pytest.approx(1 / 3)
    lines = pairs_text(NUMBER_VOCABULARY, torch.tensor([[6, 7]] * 3), written, y).splitlines()
    assert "(expected" not in lines[0] and "(expected" in lines[1] and "(expected" in lines[2]


# --------------------------------------------------------------------------- pre-flight


def project(graph: Graph | None = None, data: dict | None = None, training: dict | None = None) -> Project:
    p = numbers_to_words()
    if graph is not None:
        p.graph = graph
    p.data = validate_section(DATA_FIELDS, {**p.data, "num_samples": 200, **(data or {})})
    p.training = validate_section(TRAINING_FIELDS, {**p.training, **(training or {})})
    return p


def node(p: Project, name: str):
    return next(n for n in p.graph if n.name == name)


def errors_of(p: Project) -> list[dict]:
    return check_report(p)["errors"]


def test_the_sample_passes_check() -> None:
    assert errors_of(project()) == []


def test_a_float_target_input_is_located() -> None:
    p = project()
    p.graph.set_param(node(p, "target").id, "dtype", "float32")
    [err] = errors_of(p)  # the embedding it feeds refuses floats first (a compile error) ...
    assert err["node"] == "target_embed" and "expects integer token ids" in err["message"]
    issues = preflight(p, describe(load_samples(p.data)))  # ... and the task says what the Input is for
    assert any(i.node == "target" and i.param == "dtype" and "feeds it the target token ids" in i.message
               for i in issues), issues


def test_a_fixed_target_length_that_does_not_fit_is_located() -> None:
    p = project()
    steps = load_samples(p.data).y.shape[1] - 1
    p.graph.set_param(node(p, "target").id, "shape", [steps + 2])
    [err] = errors_of(p)
    assert err["node"] == "target" and err["param"] == "shape"
    assert f"targets (shifted) gives samples of shape [{steps}] ({steps} values), but the Input expects [{steps + 2}]" \
        in err["message"]


def test_an_output_that_misses_the_vocabulary_is_located() -> None:
    p = project()
    p.graph.set_param(node(p, "next_char").id, "out_features", 10)
    [err] = errors_of(p)
    assert err["node"] == "logits"
    steps = load_samples(p.data).y.shape[1] - 1  # the symbolic T bound to the data's length
    assert f"seq2seq needs the Output to be [N, {steps}, 34]" in err["message"]
    assert f"got [N, {steps}, 10]" in err["message"]


def test_one_input_is_refused_naming_what_is_needed() -> None:
    p = project()
    p.graph.remove_node(node(p, "target").id)
    p.graph.connect(node(p, "source").id, "y", node(p, "target_embed").id, "x")  # a whole model, one Input
    [err] = errors_of(p)
    assert err["path"] == "graph.nodes" and err["message"] == (
        'the seq2seq task needs two Inputs, the source token ids and then the shifted target token ids; the model '
        'has 1 ("source")')


def test_task_and_data_must_both_be_seq2seq() -> None:
    [err] = errors_of(project(data={"dataset": "digits"}))
    assert err["path"] == "training.task" and "needs (source, target) pairs" in err["message"]
    [err] = errors_of(project(training={"task": "classification"}))
    assert err["path"] == "training.task" and "choose the seq2seq task" in err["message"]


def test_a_vocabulary_too_small_for_the_ids_is_located() -> None:
    p = project()
    p.graph.set_param(node(p, "target_embed").id, "vocab_size", 20)
    errors = errors_of(p)
    top = int(load_samples(p.data).y.max())
    assert any(e["node"] == "target_embed" and e["param"] == "vocab_size" and f"holds ids from 0 to {top}" in e["message"]
               and f"set vocab_size to at least {top + 1}" in e["message"] for e in errors), errors


def test_training_refuses_what_check_refuses_before_any_step(tmp_path: Path) -> None:
    p = project()
    p.graph.set_param(node(p, "next_char").id, "out_features", 10)
    with pytest.raises(PreflightError) as info:
        Trainer(p, {"epochs": 1}, run_dir=tmp_path / "run").run()
    assert info.value.node == "logits" and not (tmp_path / "run").exists()


# --------------------------------------------------------------------------- training


def test_a_fixed_length_target_input_trains_and_decodes(tmp_path: Path) -> None:
    p = project()
    steps = load_samples(p.data).y.shape[1] - 1
    p.graph.set_param(node(p, "target").id, "shape", [steps])
    events: list[dict] = []
    summary = Trainer(p, {"epochs": 1}, run_dir=tmp_path / "run", listeners=[events.append]).run()
    assert summary["status"] == "finished" and 0.0 <= summary["final"]["sequence_accuracy"] <= 1.0
    [validation] = [e for e in events if e["type"] == "validation"]
    assert len(validation["text"].splitlines()) == 8 and " -> " in validation["text"]


def test_cli_trains_the_sample_and_it_learns(tmp_path: Path) -> None:
    path = tmp_path / "n2w.json"
    save_project(numbers_to_words(), path)
    r = subprocess.run([sys.executable, "-m", "workbench", "train", str(path), "--epochs", "6", "--out",
                        str(tmp_path / "run"), "--json", "--threads", "1"], capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stderr
    summary = json.loads(r.stdout)
    assert summary["status"] == "finished"
    epochs = [json.loads(line) for line in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()
              if json.loads(line)["type"] == "epoch"]
    first, last = epochs[0], epochs[-1]
    assert last["val_loss"] < first["val_loss"] / 2
    # a trivial model (always the most frequent character) is right on about 1 token in 6, on no sequence
    assert last["val_accuracy"] > 0.9 and last["val_sequence_accuracy"] > 0.2
    assert summary["best_sequence_accuracy"] == max(e["val_sequence_accuracy"] for e in epochs)


def test_one_step_and_stop_writes_a_checkpoint(tmp_path: Path) -> None:
    control = Control()
    control.stop.set()
    summary = Trainer(project(), {"epochs": 1}, run_dir=tmp_path / "run", control=control).run()
    assert summary["status"] == "stopped" and summary["steps"] == 1
    assert (tmp_path / "run" / "checkpoints" / "last.safetensors").exists()
