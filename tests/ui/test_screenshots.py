"""Render the main window (and each dock) with a sample to PNG and check it is not blank.
The images are kept in artifacts/screenshots/ for a person to look at."""

from __future__ import annotations

from PySide6.QtGui import QImage

from tests.ui.conftest import ROOT, SAMPLES

OUT = ROOT / "artifacts" / "screenshots"


def distinct_colours(img: QImage, step: int = 7) -> int:
    seen = set()
    for y in range(0, img.height(), step):
        for x in range(0, img.width(), step):
            seen.add(img.pixel(x, y))
    return len(seen)


def test_main_window_renders_a_sample(window, qtbot) -> None:
    OUT.mkdir(parents=True, exist_ok=True)
    sample = next(s for s in SAMPLES if "resnet" in s.name)
    assert window.open_path(sample)
    window.scene.select_nodes([window.doc.graph.by_name("block1").id])
    qtbot.wait(50)
    shots = {
        "main_window": window,
        "canvas": window.view,
        "palette": window.palette_dock,
        "inspector": window.inspector_dock,
        "problems": window.problems_dock,
    }
    for name, widget in shots.items():
        path = OUT / f"{name}.png"
        assert widget.grab().save(str(path))
        img = QImage(str(path))
        assert img.width() > 100 and img.height() > 100, name
        assert distinct_colours(img) > 12, f"{name} looks blank"
    # the canvas shows nodes: its accent colours are in the picture
    canvas = QImage(str(OUT / "canvas.png"))
    assert distinct_colours(canvas, step=3) > 40
