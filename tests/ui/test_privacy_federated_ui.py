"""Private and federated training in the GUI: the privacy settings typed in the set-up form, the
BatchNorm problem and its one-step fix, the epsilon curve, and a federated run in the dashboard."""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import pytest
from PySide6.QtCore import Qt
from PySide6.QtTest import QTest

from tests.ui.conftest import CNN
from workbench.training.runs import RunWriter

LEFT, NO = Qt.MouseButton.LeftButton, Qt.KeyboardModifier.NoModifier


def type_into(widget, text: str) -> None:
    QTest.mouseClick(widget, LEFT, NO, widget.rect().center())
    QTest.keyClick(widget, Qt.Key.Key_A, Qt.KeyboardModifier.ControlModifier)
    QTest.keyClicks(widget, text)
    QTest.keyClick(widget, Qt.Key.Key_Return)


def test_privacy_settings_are_typed_and_batchnorm_is_fixed_in_one_step(window, tmp_path: Path) -> None:
    assert window.open_path(CNN, ask_save=False)
    window.setup_dock.show()
    window.setup_dock.raise_()
    form = window.setup.training_form
    training = window.doc.project.training
    assert not form.is_shown("noise_multiplier") and not window.problems.privacy_fix.isVisibleTo(window.problems)
    box = form.editors["privacy"].widget
    box.setFocus()
    QTest.keyClick(box, Qt.Key.Key_Space)  # as a user tabbing through the form toggles it
    assert training["privacy"] is True
    assert all(form.is_shown(k) for k in ("noise_multiplier", "max_grad_norm", "target_epsilon", "target_delta"))
    type_into(form.editors["target_epsilon"].widget, "2.5")
    assert training["target_epsilon"] == 2.5
    assert not form.is_shown("noise_multiplier")  # Opacus chooses the noise for a target epsilon
    type_into(form.editors["max_grad_norm"].widget, "-1")
    assert training["max_grad_norm"] == 1.0  # refused, the field says why
    assert form.editors["max_grad_norm"].error.isVisible()
    # the Problems list names both BatchNorm nodes; the button replaces them in one undo step
    problems = [window.problems.list.item(i).text() for i in range(window.problems.list.count())]
    assert sum("BatchNorm" in t and "Opacus" in t for t in problems) == 2
    fix = window.problems.privacy_fix
    assert fix.isVisibleTo(window.problems)
    window.problems_dock.show()
    window.problems_dock.raise_()
    window.problems.setCurrentIndex(0)
    window.grab().save(str(tmp_path / "privacy_problems.png"))
    QTest.mouseClick(fix, LEFT, NO, fix.rect().center())
    graph = window.doc.project.graph
    assert [graph.by_name(n).type for n in ("bn1", "bn2")] == ["GroupNorm", "GroupNorm"]
    assert window.doc.undo_stack.undoText() == "Replace 2 BatchNorm by GroupNorm"
    assert not fix.isVisibleTo(window.problems)
    window.doc.undo_stack.undo()
    assert [graph.by_name(n).type for n in ("bn1", "bn2")] == ["BatchNorm2d", "BatchNorm2d"]
    assert fix.isVisibleTo(window.problems)


def test_the_dashboard_plots_the_spent_epsilon_of_a_private_run(window, tmp_path: Path) -> None:
    pytest.importorskip("opacus", reason="the privacy extra (opacus) is not installed")
    from tests.core.test_privacy import blobs_mlp
    from workbench.training import Trainer

    project = blobs_mlp()
    project.training.update(privacy=True, epochs=3, noise_multiplier=1.0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        Trainer(project, run_dir=tmp_path / "dp").run()
    panel = window.training
    window.training_dock.show()
    window.training_dock.raise_()
    assert not panel.privacy_plot.isVisibleTo(panel)
    assert panel.show_run(tmp_path / "dp")
    epochs = [json.loads(line) for line in (tmp_path / "dp" / "metrics.jsonl").read_text().splitlines()]
    want = [e["epsilon"] for e in epochs if e["type"] == "epoch"]
    assert panel.privacy_plot.isVisibleTo(panel)
    assert list(panel.epsilon.values()[1]) == pytest.approx(want) and want[0] < want[1] < want[2]
    window.grab().save(str(tmp_path / "epsilon.png"))


def test_the_dashboard_shows_a_federated_runs_rounds_and_clients(window, tmp_path: Path) -> None:
    """The run folder as ``workbench federate`` writes it (its format is checked in
    tests/core/test_federated.py): global validation per round and each client's accuracy."""
    writer = RunWriter(tmp_path / "fed", {"federated": {"clients": 2}})
    for r in (1, 2, 3):
        writer({"type": "epoch", "epoch": r, "step": r, "round": r, "lr": 0.01, "train_loss": 1.0 / r,
                "val_loss": 1.2 / r, "val_accuracy": 0.5 + 0.1 * r,
                "clients": {"0": {"train_loss": 1.0 / r, "num-examples": 30.0, "train_accuracy": 0.4 + 0.1 * r},
                            "1": {"train_loss": 0.9 / r, "num-examples": 50.0, "train_accuracy": 0.45 + 0.1 * r}}})
    writer.close()
    panel = window.training
    assert panel.show_run(tmp_path / "fed")
    assert set(panel.metric_series) == {"val_accuracy", "client 0", "client 1"}
    assert list(panel.metric_series["client 1"].values()[1]) == pytest.approx([0.55, 0.65, 0.75])
    assert list(panel.val_loss_series.values()[1]) == pytest.approx([1.2, 0.6, 0.4])
    assert "3 rounds" in panel.status.text()


def test_the_dashboard_draws_a_private_federated_runs_epsilon_per_round(window, tmp_path: Path) -> None:
    """A ``workbench federate --dp`` run folder (its events are checked in
    tests/core/test_federated_dp.py): the epsilon of each round on the privacy plot."""
    writer = RunWriter(tmp_path / "fed-dp", {"federated": {"clients": 2, "dp": True}})
    spent = [4.7, 6.9, 8.5]
    for r, eps in zip((1, 2, 3), spent, strict=True):
        writer({"type": "epoch", "epoch": r, "step": r, "round": r, "lr": 0.01, "train_loss": 1.0 / r,
                "val_loss": 1.2 / r, "val_accuracy": 0.5 + 0.1 * r, "epsilon": eps, "delta": 1e-5,
                "clients": {"0": {"train_loss": 1.0 / r, "num-examples": 30.0, "train_accuracy": 0.4 + 0.1 * r}}})
    writer.close()
    panel = window.training
    window.training_dock.show()
    window.training_dock.raise_()
    assert not panel.privacy_plot.isVisibleTo(panel)
    assert panel.show_run(tmp_path / "fed-dp")
    assert panel.privacy_plot.isVisibleTo(panel)
    assert list(panel.epsilon.values()[0]) == [1, 2, 3] and list(panel.epsilon.values()[1]) == pytest.approx(spent)
    window.grab().save(str(tmp_path / "federated-epsilon.png"))
