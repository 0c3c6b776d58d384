"""TensorBoard event files of a run, read back with TensorBoard's own reader and compared with the
run's own metrics (events, metrics.jsonl, summary.json)."""

from __future__ import annotations

import io
import json
import sys
from pathlib import Path

import numpy as np
import pytest

from workbench.builder import GraphBuilder
from workbench.config import DATA_FIELDS, TRAINING_FIELDS, validate_section
from workbench.project import Project
from workbench.training import Trainer
from workbench.training.tensorboard import MISSING_NOTE, confusion_image

pytest.importorskip("tensorboard", reason="the tensorboard extra is not installed")


def project(**training: object) -> Project:
    b = GraphBuilder()
    x = b.input((64,), name="pixels")
    x = b.layer("ReLU", b.layer("Linear", x, out_features=16, name="hidden"), name="relu")
    b.output(b.layer("Linear", x, out_features=10, name="classifier"), name="logits")
    return Project(b.auto_layout(), "tb", "",
                   validate_section(DATA_FIELDS, {"dataset": "digits", "batch_size": 128, "test_fraction": 0.1}),
                   validate_section(TRAINING_FIELDS, {"epochs": 2, "lr": 0.01, "device": "cpu", **training}))


def train(tmp: Path, **training: object) -> tuple[Trainer, dict, list[dict]]:
    events: list[dict] = []
    trainer = Trainer(project(**training), run_dir=tmp / "run", listeners=[events.append])
    return trainer, trainer.run(), events


def accumulator(run: Path):  # type: ignore[no-untyped-def]
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    acc = EventAccumulator(str(run), size_guidance={"scalars": 0, "histograms": 0, "images": 0, "tensors": 0})
    return acc.Reload()


def test_event_files_hold_the_runs_own_metrics(tmp_path: Path) -> None:
    trainer, summary, events = train(tmp_path)
    acc = accumulator(tmp_path / "run")
    batches = [e for e in events if e["type"] == "batch"]
    epochs = [e for e in events if e["type"] == "epoch"]

    loss = acc.Scalars("train/loss")
    assert [s.step for s in loss] == [e["step"] for e in batches]
    assert [s.value for s in loss] == pytest.approx([e["loss"] for e in batches], rel=1e-6)  # stored as float32
    assert [s.value for s in acc.Scalars("train/lr")] == pytest.approx([e["lr"] for e in batches], rel=1e-6)
    for key in ("train_loss", "val_loss", "val_accuracy", "lr"):
        assert [s.value for s in acc.Scalars(f"epoch/{key}")] == pytest.approx([e[key] for e in epochs], rel=1e-6)
        assert [s.step for s in acc.Scalars(f"epoch/{key}")] == [1, 2]
    test = {s: acc.Scalars(f"test/{s}")[0].value for s in summary["test"]}
    assert test == pytest.approx(summary["test"], rel=1e-6)

    # per layer (named as on the canvas), weights and gradients; the last weights are the trained ones
    tags = set(acc.Tags()["histograms"])
    for node in ("hidden", "classifier"):
        for param in ("weight", "bias"):
            assert {f"weights/{node}/{param}", f"gradients/{node}/{param}"} <= tags
    last = acc.Histograms("weights/hidden/weight")[-1]
    w = trainer.model.get_submodule("hidden").weight.detach()
    assert last.step == 2 and last.histogram_value.num == w.numel()
    assert last.histogram_value.sum == pytest.approx(float(w.sum()), rel=1e-4, abs=1e-4)

    # the confusion matrix, as an image of the validation event's counts
    from PIL import Image

    images = acc.Images("validation/confusion_matrix")
    assert [i.step for i in images] == [1, 2]
    shown = np.asarray(Image.open(io.BytesIO(images[-1].encoded_image_string)).convert("RGB"))
    confusion = [e for e in events if e["type"] == "validation"][-1]["confusion"]
    assert np.array_equal(shown, confusion_image(confusion))
    assert shown.shape == (10 * 32, 10 * 32, 3)

    # hyperparameters and final metrics, in this run (no second, phantom run)
    from tensorboard.backend.event_processing.plugin_event_multiplexer import EventMultiplexer
    from tensorboard.plugins.hparams import plugin_data_pb2

    content = acc.PluginTagToContent("hparams")
    data = {tag: plugin_data_pb2.HParamsPluginData.FromString(raw) for tag, raw in content.items()}
    start = next(d.session_start_info for d in data.values() if d.HasField("session_start_info"))
    assert start.hparams["training.lr"].number_value == pytest.approx(0.01)
    assert start.hparams["training.optimizer"].string_value == "adam"
    assert start.hparams["data.batch_size"].number_value == 128
    experiment = next(d.experiment for d in data.values() if d.HasField("experiment"))
    metric_tags = {m.name.tag for m in experiment.metric_infos}
    assert {"hparam/final_accuracy", "hparam/final_loss", "hparam/best_accuracy", "hparam/test_accuracy"} <= metric_tags
    assert acc.Scalars("hparam/final_accuracy")[0].value == pytest.approx(summary["final"]["accuracy"], rel=1e-6)
    assert acc.Scalars("hparam/best_accuracy")[0].value == pytest.approx(summary["best_accuracy"], rel=1e-6)
    mux = EventMultiplexer().AddRunsFromDirectory(str(tmp_path))
    assert set(mux.Runs()) == {"run"}
    assert json.loads((tmp_path / "run" / "summary.json").read_text())["final"] == summary["final"]


def test_the_setting_turns_them_off(tmp_path: Path) -> None:
    _, summary, _ = train(tmp_path, tensorboard=False)
    assert summary["status"] == "finished"
    assert not list((tmp_path / "run").rglob("events.out.tfevents*"))


def test_without_the_package_the_run_goes_on_with_a_note(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "tensorboard", None)  # import tensorboard raises ImportError
    _, summary, events = train(tmp_path)
    assert summary["status"] == "finished"
    assert [e["message"] for e in events if e["type"] == "log"] == [MISSING_NOTE]
    assert not list((tmp_path / "run").rglob("events.out.tfevents*"))
