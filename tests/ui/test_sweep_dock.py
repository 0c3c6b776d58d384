"""The Sweep dock: typed into its fields and clicked, it runs `workbench sweep` in a process of its
own, shows the live study (table, best-so-far, Pareto scatter, importances), stops it like Ctrl+C,
and applies a trial to the open project as one undo step."""

from __future__ import annotations

from pathlib import Path

import pytest
from PySide6.QtCore import Qt
from PySide6.QtTest import QTest

optuna = pytest.importorskip("optuna", reason="the sweep extra (optuna) is not installed")

from tests.core.test_sweep import tiny  # noqa: E402


def type_into(widget, text: str) -> None:
    widget.setFocus()
    QTest.keyClicks(widget, text)


def click(button) -> None:
    QTest.mouseClick(button, Qt.MouseButton.LeftButton)


def test_run_watch_and_apply_a_trial(window, qtbot, tmp_path: Path) -> None:
    path = tiny(tmp_path)
    window.open_path(path)
    dock = window.sweep
    window.sweep_dock.raise_()
    type_into(dock.params, "fc1.out_features=int:4:32")
    QTest.keyClick(dock.params, Qt.Key.Key_Return)
    type_into(dock.params, "lr=float:0.001:0.05:log")
    type_into(dock.objectives, "val_accuracy, params")
    type_into(dock.trials_edit, "4")
    dock.jobs_edit.selectAll()
    type_into(dock.jobs_edit, "1")
    assert dock.command()[2:] == ["--param", "fc1.out_features=int:4:32", "--param", "lr=float:0.001:0.05:log",
                                  "--objective", "val_accuracy", "--objective", "params", "--trials", "4",
                                  "--jobs", "1"]
    click(dock.start_button)
    assert dock.running and not dock.start_button.isEnabled()
    qtbot.waitUntil(lambda: not dock.running, timeout=180_000)
    assert "finished: 4" in dock.status.text(), dock.log.toPlainText()
    study = optuna.load_study(study_name="p", storage=f"sqlite:///{tmp_path / 'p.sweep.db'}")
    trials = study.get_trials()
    assert dock.table.rowCount() == len(trials) == 4
    assert [dock.table.horizontalHeaderItem(j).text() for j in range(4)] == ["trial", "state", "val_accuracy",
                                                                              "params"]
    # the Pareto scatter shows every trial and Optuna's front
    xs, ys = dock.pareto_all.getData()
    assert sorted(zip(xs, ys, strict=True)) == sorted((t.values[1], t.values[0]) for t in trials)
    fx, _fy = dock.pareto_front.getData()
    assert sorted(fx) == sorted(t.values[1] for t in study.best_trials)
    bx, by = dock.best_curve.getData()
    assert list(bx) == sorted(t.number for t in trials)
    assert by[-1] == max(t.values[0] for t in trials)
    assert dock.importances.rowCount() == 2  # Optuna's importances of both parameters
    lines = dock.coords_plot.listDataItems()  # parallel coordinates: a line per trial across the parameters
    assert len(lines) == 4 and all(len(line.getData()[0]) == 3 for line in lines)
    assert all(0 <= v <= 1 for line in lines for v in line.getData()[1])
    with pytest.warns(UserWarning, match="low `target` values"):  # hence the negation: accuracy is maximised
        imp = optuna.importance.get_param_importances(study, target=lambda t: -t.values[0])
    shown = {dock.importances.item(i, 0).text(): float(dock.importances.item(i, 1).text().split()[0]) for i in range(2)}
    assert shown == pytest.approx({k: round(v, 3) for k, v in imp.items()}, abs=1e-3)
    # Apply trial: click its row, then the button; one undo step restores the project
    target = max(trials, key=lambda t: abs(t.params["fc1.out_features"] - 16))
    row = next(i for i in range(4) if dock.table.item(i, 0).text() == str(target.number))
    rect = dock.table.visualItemRect(dock.table.item(row, 0))
    QTest.mouseClick(dock.table.viewport(), Qt.MouseButton.LeftButton, pos=rect.center())
    assert dock.selected_trial() == target.number
    stack = window.doc.undo_stack
    before = stack.count()
    click(dock.apply_button)
    project = window.doc.project
    assert stack.count() == before + 1 and stack.undoText() == f"Apply trial {target.number}"
    assert project.graph.by_name("fc1").params["out_features"] == target.params["fc1.out_features"]
    assert project.training["lr"] == target.params["lr"]
    stack.undo()
    assert project.graph.by_name("fc1").params["out_features"] == 16 and project.training["lr"] == 0.01
    window.sweep_dock.raise_()
    dock.tabs.setCurrentWidget(dock.pareto_plot)
    qtbot.wait(50)
    assert window.grab().save(str(tmp_path / "sweep.png"))


@pytest.mark.slow
def test_stop_ends_the_sweep_resumably_and_an_unsaved_project_is_refused(window, qtbot, tmp_path: Path) -> None:
    path = tiny(tmp_path, epochs=200)
    window.open_path(path)
    dock = window.sweep
    type_into(dock.params, "lr=0.01,0.02")
    type_into(dock.trials_edit, "2")
    click(dock.start_button)
    qtbot.waitUntil(lambda: any(t.state.name == "RUNNING" for t in dock.trials), timeout=120_000)
    click(dock.stop_button)
    qtbot.waitUntil(lambda: not dock.running, timeout=60_000)
    assert "Stopped" in dock.status.text() and "resumes" in dock.status.text()
    states = [t.state.name for t in dock.trials]
    assert states == ["FAIL"] and dock.trials[0].user_attrs["interrupted"]
    assert dock.table.item(0, 1).text() == "interrupted"
    # an edit not saved yet: the sweep would not see it
    window.doc.undo_stack.push(__import__("ui.config_form", fromlist=["SetConfigCommand"]).SetConfigCommand(
        window.doc, "training", "lr", 0.5))
    click(dock.start_button)
    assert not dock.running and "Save the project first" in dock.status.text()
