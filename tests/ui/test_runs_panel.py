"""The runs panel: a sortable table of runs and sweep trials; checked rows overlay their curves;
the table exports as CSV."""

from __future__ import annotations

import csv
from pathlib import Path

import pytest
from PySide6.QtCore import QPoint, Qt
from PySide6.QtTest import QTest

from workbench.project import load_project
from workbench.training import Trainer

optuna = pytest.importorskip("optuna", reason="the sweep extra (optuna) is not installed")

from tests.core.test_sweep import space, sweep, tiny  # noqa: E402


def test_sort_overlay_and_export(window, qtbot, tmp_path: Path) -> None:
    import torch

    torch.set_num_threads(1)
    path = tiny(tmp_path)
    Trainer(load_project(path)).run()
    sweep(path, space("fc1.out_features=6,12,20", sampler="grid"))
    window.open_path(path)
    panel = window.runs
    panel.refresh()
    table = panel.table
    assert table.rowCount() == 4
    col = panel.columns.index("fc1.out_features")
    header = table.horizontalHeader()
    x = header.sectionViewportPosition(col) + header.sectionSize(col) // 2
    QTest.mouseClick(header.viewport(), Qt.MouseButton.LeftButton, pos=QPoint(x, header.height() // 2))
    values = [table.item(i, col).text() for i in range(4)]
    ascending = ["6", "12", "20", ""]  # numbers as numbers, the plain run (no value) last
    assert values in (ascending, list(reversed(ascending)))
    if values != ascending:
        QTest.mouseClick(header.viewport(), Qt.MouseButton.LeftButton, pos=QPoint(x, header.height() // 2))
        assert [table.item(i, col).text() for i in range(4)] == ascending
    # check exactly the rows of widths 6 and 20 by clicking their check boxes
    for i in range(4):
        item = table.item(i, 0)
        want = table.item(i, col).text() in ("6", "20")
        if (item.checkState() == Qt.CheckState.Checked) != want:
            rect = table.visualItemRect(item)
            QTest.mouseClick(table.viewport(), Qt.MouseButton.LeftButton,
                             pos=QPoint(rect.left() + 10, rect.center().y()))
    by_path = {r.path: r for r in panel.rows}
    assert sorted(by_path[p].cell("fc1.out_features") for p in panel.checked_runs()) == [6, 20]
    panel.metric.setCurrentText("val_accuracy")
    names = [i.name() for i in panel.plot.listDataItems()]
    assert sorted(names) == sorted(p.name for p in panel.checked_runs())
    out = panel.export_csv(tmp_path / "runs.csv")
    lines = list(csv.DictReader(out.open()))
    assert len(lines) == 4 and {line["fc1.out_features"] for line in lines} == {"6", "12", "20", ""}
    window.runs_dock.raise_()
    qtbot.wait(50)
    assert window.grab().save(str(tmp_path / "runs.png"))
