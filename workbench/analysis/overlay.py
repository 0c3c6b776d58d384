"""Attribution maps drawn over their inputs, as RGB arrays (no Qt, no Pillow): the command line
writes them as PNG, the GUI shows the same pictures.

Each sample is a pair of tiles: the input, and the input in grey under its map.  A map is
scaled by its own largest magnitude (tiles compare places within a sample, not across samples);
positive values are red, negative ones blue, the opacity grows with the magnitude.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ..imaging import save_png
from .explain import Explanation

POSITIVE = np.array([0.86, 0.1, 0.05], np.float32)
NEGATIVE = np.array([0.1, 0.35, 0.95], np.float32)
OPACITY = 0.8


def _unit(a: np.ndarray) -> np.ndarray:
    lo, hi = float(np.min(a)), float(np.max(a))
    return (a - lo) / (hi - lo) if hi > lo else np.full_like(a, 0.5, dtype=np.float32)


def picture(sample: np.ndarray, kind: str) -> np.ndarray:
    """One input as an RGB picture [H, W, 3] in [0, 1]: an image as it is (its channels averaged
    unless there are three), a sequence [T, F] as T rows, features as a square when they are one
    (64 -> 8x8) else a row; token ids as a plain grey row (one cell per token)."""
    s = np.asarray(sample, np.float32)
    if kind == "tokens":
        return np.full((1, s.size, 3), 0.85, np.float32)
    if kind == "image":
        rgb = s.shape[0] == 3
        plane = np.transpose(s, (1, 2, 0)) if rgb else s.mean(0)
        plane = _unit(plane)
        return plane if rgb else np.repeat(plane[:, :, None], 3, 2)
    plane = _unit(map_plane(s, kind))
    return np.repeat(plane[:, :, None], 3, 2)


def map_plane(m: np.ndarray, kind: str) -> np.ndarray:
    """A sample's map (or input) as the 2-D array its picture shows."""
    m = np.asarray(m, np.float32)
    if kind in ("image", "sequence") and m.ndim == 2:
        return m
    flat = m.reshape(-1)
    side = round(flat.size ** 0.5)
    if kind == "features" and side * side == flat.size:
        return flat.reshape(side, side)
    return flat.reshape(1, -1)


def overlay(base: np.ndarray, m: np.ndarray) -> np.ndarray:
    """``base`` [H, W, 3] in grey with the map [H, W] over it (red positive, blue negative)."""
    grey = np.repeat(base.mean(2, keepdims=True), 3, 2) * 0.7 + 0.15
    peak = float(np.max(np.abs(m)))
    strength = np.clip(np.abs(m) / peak, 0, 1) if peak > 0 else np.zeros_like(m)
    colour = np.where((m >= 0)[:, :, None], POSITIVE, NEGATIVE)
    alpha = (OPACITY * strength)[:, :, None]
    return grey * (1 - alpha) + colour * alpha


def tiles(e: Explanation, i: int) -> tuple[np.ndarray, np.ndarray]:
    """Sample ``i``'s input picture and its overlay, both [H, W, 3]."""
    base = picture(e.inputs[i], e.kind)
    plane = map_plane(e.maps[i], e.kind)
    if plane.shape != base.shape[:2]:  # e.g. a map per token: drawn over the same row of cells
        plane = plane.reshape(base.shape[:2])
    return base, overlay(base, plane)


def explanation_grid(e: Explanation, cols: int = 4, pad: int = 1) -> np.ndarray:
    """Every sample as an (input, overlay) pair, ``cols`` pairs a row, white gaps: [H, W, 3]."""
    pairs = [tiles(e, i) for i in range(len(e.indices))]
    h, w = pairs[0][0].shape[:2]
    cols = max(1, min(cols, len(pairs)))
    rows = -(-len(pairs) // cols)
    pair_w = 2 * w + pad
    out = np.ones((rows * (h + 2 * pad) + 2 * pad, cols * (pair_w + 2 * pad) + 2 * pad, 3), np.float32)
    for k, (base, over) in enumerate(pairs):
        r, c = divmod(k, cols)
        y = 2 * pad + r * (h + 2 * pad)
        x = 2 * pad + c * (pair_w + 2 * pad)
        out[y:y + h, x:x + w] = base
        out[y:y + h, x + w + pad:x + 2 * w + pad] = over
    return out


def save_explanation_png(e: Explanation, path: str | Path, cols: int = 4) -> Path:
    """Write :func:`explanation_grid` as a PNG, atomically; small pictures are scaled up to about
    64 pixels a tile."""
    mosaic = explanation_grid(e, cols)
    h, w = picture(e.inputs[0], e.kind).shape[:2]
    scale = max(1, min(16, 64 // max(1, min(h, w)) if min(h, w) > 1 else 64 // max(1, w // 8)))
    return save_png(mosaic, path, scale=scale)
