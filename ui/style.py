"""Colours, icons and light/dark themes (following the system colour scheme)."""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import cache
from pathlib import Path

from PySide6.QtCore import Qt
from PySide6.QtGui import QColor, QGuiApplication, QIcon, QPalette
from PySide6.QtWidgets import QApplication

RESOURCES = Path(__file__).resolve().parent.parent / "resources"

CATEGORY_COLORS = {
    "Input/Output": "#2e7d32",
    "Dense": "#1565c0",
    "Convolution": "#6a1b9a",
    "Pooling": "#00838f",
    "Normalization": "#ef6c00",
    "Activation": "#c62828",
    "Regularization": "#546e7a",
    "Reshape": "#5d4037",
    "Merge": "#ad1457",
    "Embedding": "#283593",
    "Recurrent": "#00695c",
    "Attention": "#f9a825",
    "Blocks": "#37474f",
}


def category_slug(category: str) -> str:
    return re.sub(r"[^a-z0-9]+", "_", category.lower()).strip("_")


@cache
def icon(name: str) -> QIcon:
    """An icon from ``resources/icons`` (``name`` without extension)."""
    path = RESOURCES / "icons" / f"{name}.svg"
    return QIcon(str(path)) if path.exists() else QIcon()


def category_icon(category: str) -> QIcon:
    return icon(category_slug(category))


@dataclass(frozen=True)
class CanvasColors:
    background: QColor
    grid: QColor
    grid_major: QColor
    node: QColor
    node_border: QColor
    text: QColor
    subtext: QColor
    wire: QColor
    wire_hover: QColor
    error: QColor
    selection: QColor
    port: QColor
    port_ok: QColor


def is_dark(palette: QPalette | None = None) -> bool:
    pal = palette or QGuiApplication.palette()
    return pal.color(QPalette.ColorRole.Window).lightness() < 128


def canvas_colors() -> CanvasColors:
    if is_dark():
        return CanvasColors(
            QColor("#1d2127"), QColor("#262b33"), QColor("#2f3540"), QColor("#2b313a"), QColor("#48505c"),
            QColor("#e8eaed"), QColor("#a0a7b1"), QColor("#8a96a8"), QColor("#64b5f6"), QColor("#ef5350"),
            QColor("#64b5f6"), QColor("#9aa5b4"), QColor("#66bb6a"),
        )
    return CanvasColors(
        QColor("#f6f7f9"), QColor("#eceef2"), QColor("#dfe3e8"), QColor("#ffffff"), QColor("#c3c9d1"),
        QColor("#1f2328"), QColor("#5b6470"), QColor("#7d8896"), QColor("#1e88e5"), QColor("#d32f2f"),
        QColor("#1e88e5"), QColor("#7d8896"), QColor("#43a047"),
    )


def dark_palette() -> QPalette:
    p = QPalette()
    roles = {
        QPalette.ColorRole.Window: "#23272e",
        QPalette.ColorRole.WindowText: "#e8eaed",
        QPalette.ColorRole.Base: "#1b1f24",
        QPalette.ColorRole.AlternateBase: "#262b32",
        QPalette.ColorRole.ToolTipBase: "#2b313a",
        QPalette.ColorRole.ToolTipText: "#e8eaed",
        QPalette.ColorRole.Text: "#e8eaed",
        QPalette.ColorRole.Button: "#2b313a",
        QPalette.ColorRole.ButtonText: "#e8eaed",
        QPalette.ColorRole.Highlight: "#1e88e5",
        QPalette.ColorRole.HighlightedText: "#ffffff",
        QPalette.ColorRole.PlaceholderText: "#7d8590",
    }
    for role, color in roles.items():
        p.setColor(role, QColor(color))
    p.setColor(QPalette.ColorGroup.Disabled, QPalette.ColorRole.Text, QColor("#6b727c"))
    p.setColor(QPalette.ColorGroup.Disabled, QPalette.ColorRole.ButtonText, QColor("#6b727c"))
    return p


def apply_theme(app: QApplication, theme: str = "system") -> str:
    """Apply ``"light"``, ``"dark"`` or ``"system"`` (the OS colour scheme); returns the one applied."""
    app.setStyle("Fusion")
    if theme == "system":
        scheme = app.styleHints().colorScheme()
        theme = "dark" if scheme == Qt.ColorScheme.Dark else "light"
    app.setPalette(dark_palette() if theme == "dark" else app.style().standardPalette())
    return theme
