"""Tiny image helpers for reports (no Qt, no Pillow): sample grids as grayscale PNG."""

from __future__ import annotations

import struct
import zlib
from pathlib import Path

import numpy as np

from .fileio import atomic_write_bytes


def grid(images: np.ndarray, cols: int = 8, pad: int = 1, fill: float = 1.0) -> np.ndarray:
    """[K, (C,) H, W] in [0, 1] (or flat square images [K, H*W]) -> one 2-D mosaic, channels
    averaged; gaps get ``fill`` (NaN leaves them transparent in a plot)."""
    arr = np.asarray(images, dtype=np.float32)
    if arr.ndim == 2:
        side = round(arr.shape[1] ** 0.5)
        arr = arr.reshape(-1, side, side) if side * side == arr.shape[1] else arr[:, None, :]
    if arr.ndim == 4:
        arr = arr.mean(1)
    k, h, w = arr.shape
    rows = -(-k // cols)
    out = np.full((rows * (h + pad) + pad, cols * (w + pad) + pad), fill, np.float32)
    for i in range(k):
        r, c = divmod(i, cols)
        out[pad + r * (h + pad): pad + r * (h + pad) + h, pad + c * (w + pad): pad + c * (w + pad) + w] = arr[i]
    return out


def save_png(image: np.ndarray, path: str | Path, scale: int = 8) -> Path:
    """Write an array in [0, 1] as an 8-bit PNG, each pixel scaled up ``scale`` times: [H, W] grayscale,
    [H, W, 3] colour (RGB)."""
    pixels = (np.clip(np.nan_to_num(image), 0, 1) * 255).astype(np.uint8)
    colour = pixels.ndim == 3
    pixels = np.kron(pixels, np.ones((scale, scale, 1) if colour else (scale, scale), np.uint8))
    h, w = pixels.shape[:2]
    raw = b"".join(b"\x00" + pixels[y].tobytes() for y in range(h))

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    png = (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 8, 2 if colour else 0, 0, 0, 0))
           + chunk(b"IDAT", zlib.compress(raw, 9)) + chunk(b"IEND", b""))
    atomic_write_bytes(path, png)
    return Path(path)
