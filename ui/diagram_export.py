"""File > Export Diagram: the graph on the canvas as a PNG or SVG picture.

The picture is the scene drawn once more without the grid and without the selection, so it
shows the model, not the editing session.  It is written atomically and never over the
project it shows (``workbench.fileio``).
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import TYPE_CHECKING

from PySide6.QtCore import QBuffer, QByteArray, QIODevice, QRectF, QSize, Qt
from PySide6.QtGui import QColor, QImage, QPainter
from PySide6.QtSvg import QSvgGenerator
from PySide6.QtWidgets import QFileDialog, QMessageBox

from workbench.errors import OutputError
from workbench.fileio import atomic_write_bytes, refuse_overwriting_inputs

from .canvas.scene import GraphScene
from .editors import commit_focused_field

if TYPE_CHECKING:
    from .mainwindow import MainWindow

FILTERS = {"png": "PNG image (*.png)", "svg": "SVG image (*.svg)"}
MARGIN = 24.0
"""Scene pixels of background around the graph."""
PNG_SCALE = 2.0
"""Device pixels per scene pixel: sharp on high-density screens and in print."""
MAX_SIDE = 16384
MAX_PIXELS = 64 * 2**20
"""A bigger picture is scaled down to fit (a 10,000-node graph would otherwise need gigabytes)."""


def diagram_rect(scene: GraphScene) -> QRectF:
    """What the picture shows: every node and wire, with a margin.

    Raises:
        OutputError: the canvas is empty.
    """
    rect = scene.itemsBoundingRect()
    if not scene.nodes or rect.isEmpty():
        raise OutputError("the canvas is empty: there is no diagram to export")
    return rect.adjusted(-MARGIN, -MARGIN, MARGIN, MARGIN)


class _Clean:
    """The scene as a picture shows it: no grid, no selection, every item drawn (not the quick
    overview a view far out draws instead); all put back afterwards."""

    def __init__(self, scene: GraphScene) -> None:
        self.scene = scene

    def __enter__(self) -> None:
        scene = self.scene
        self.grid, self.selected = scene.show_grid, scene.selectedItems()
        self.overview = bool(getattr(scene, "overview_on", False))
        scene.show_grid = False
        for item in self.selected:
            item.setSelected(False)
        if self.overview:
            scene.set_overview(False)

    def __exit__(self, *exc: object) -> None:
        scene = self.scene
        scene.show_grid = self.grid
        for item in self.selected:
            item.setSelected(True)
        if self.overview:
            scene.set_overview(True)


def png_scale(rect: QRectF) -> float:
    """Device pixels per scene pixel for a PNG of ``rect`` (less than :data:`PNG_SCALE` when huge)."""
    w, h = rect.width(), rect.height()
    return min(PNG_SCALE, MAX_SIDE / max(w, h), (MAX_PIXELS / (w * h)) ** 0.5)


def render_png(scene: GraphScene) -> bytes:
    """The diagram as PNG bytes."""
    rect = diagram_rect(scene)
    scale = png_scale(rect)
    size = QSize(max(1, round(rect.width() * scale)), max(1, round(rect.height() * scale)))
    image = QImage(size, QImage.Format.Format_ARGB32_Premultiplied)
    image.fill(QColor(scene.colors.background))
    painter = QPainter(image)
    painter.setRenderHints(QPainter.RenderHint.Antialiasing | QPainter.RenderHint.TextAntialiasing)
    with _Clean(scene):
        scene.render(painter, QRectF(0, 0, size.width(), size.height()), rect, Qt.AspectRatioMode.IgnoreAspectRatio)
    painter.end()
    data = QByteArray()
    buffer = QBuffer(data)
    buffer.open(QIODevice.OpenModeFlag.WriteOnly)
    if not image.save(buffer, "PNG"):
        raise OutputError("the diagram could not be encoded as PNG")
    buffer.close()
    return bytes(data.data())


def render_svg(scene: GraphScene, title: str = "") -> bytes:
    """The diagram as SVG bytes (vector shapes and real text, one scene pixel per SVG unit)."""
    rect = diagram_rect(scene)
    data = QByteArray()
    buffer = QBuffer(data)
    buffer.open(QIODevice.OpenModeFlag.WriteOnly)
    generator = QSvgGenerator()
    generator.setOutputDevice(buffer)
    generator.setSize(QSize(round(rect.width()), round(rect.height())))
    generator.setViewBox(QRectF(0, 0, rect.width(), rect.height()))
    generator.setResolution(96)  # the width and height it writes in mm are then CSS pixels in a browser
    generator.setTitle(title)
    generator.setDescription("A neural network diagram made with Neural Workbench")
    painter = QPainter(generator)
    painter.setRenderHints(QPainter.RenderHint.Antialiasing | QPainter.RenderHint.TextAntialiasing)
    with _Clean(scene):
        scene.render(painter, QRectF(0, 0, rect.width(), rect.height()), rect, Qt.AspectRatioMode.IgnoreAspectRatio)
    painter.end()
    buffer.close()
    # Qt names the font's family only ("Sans Serif" here): a browser without it would fall back to a
    # serif face, so a generic family follows it
    return re.sub(rb'font-family="([^"]*)"', rb'font-family="\1, sans-serif"', bytes(data.data()))


def export_diagram(scene: GraphScene, path: str | Path, title: str = "",
                   inputs: tuple[tuple[str, str | Path | None], ...] = ()) -> str:
    """Write the diagram to ``path`` (PNG or SVG by its suffix), atomically; returns the format.

    Args:
        inputs: (what, path) pairs the picture must never replace, e.g. the project file.

    Raises:
        OutputError: an unknown suffix, an empty canvas, ``path`` is one of ``inputs`` or
            cannot be written (naming it).
    """
    out = Path(path)
    fmt = out.suffix.lower().lstrip(".")
    if fmt not in FILTERS:
        raise OutputError(f"{out}: a diagram is written as .png or .svg, not {out.suffix or 'a file without suffix'}")
    refuse_overwriting_inputs([("the diagram", out)], list(inputs))
    data = render_png(scene) if fmt == "png" else render_svg(scene, title)
    atomic_write_bytes(out, data)
    return fmt


def export_diagram_dialog(window: MainWindow) -> bool:
    """Ask where (PNG or SVG), then write the diagram of the graph on the canvas."""
    commit_focused_field()
    project = window.doc.project
    start = (project.path or window._last_dir() / f"{project.name}.json").with_suffix(".png")
    path, chosen = QFileDialog.getSaveFileName(window, "Export diagram", str(start),
                                               ";;".join(FILTERS.values()))
    if not path:
        return False
    out = Path(path)
    if out.suffix.lower().lstrip(".") not in FILTERS:  # no suffix typed: the chosen filter's
        fmt = next((k for k, v in FILTERS.items() if v == chosen), "png")
        out = out.with_name(f"{out.name}.{fmt}")
    try:
        fmt = export_diagram(window.scene, out, project.name, (("the project", project.path),))
    except OutputError as exc:
        window.ask("Cannot export the diagram", str(exc), QMessageBox.StandardButton.Ok)
        return False
    window.show_message(f"Diagram written to {out} ({fmt.upper()})")
    return True
