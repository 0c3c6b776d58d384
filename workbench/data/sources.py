"""Dataset sources: built-in digits, synthetic sets, CSV, image folders, IDX files, torchvision."""

from __future__ import annotations

import csv
import gzip
import io
import math
import struct
from pathlib import Path
from typing import Any

import numpy as np
import torch

from .base import BOS, EOS, PAD, DataError, Samples, source

DATA_DIR = Path(__file__).resolve().parent


# --------------------------------------------------------------------------- built-in


@source("none")
def no_dataset(cfg: dict[str, Any]) -> Samples:
    """No data yet (an imported model): checking the model needs none, training refuses."""
    raise DataError("data.dataset: no dataset is set (none, as for an imported model); choose one to train")


@source("digits")
def digits(cfg: dict[str, Any]) -> Samples:
    """The UCI 8x8 handwritten digits (1,797 images, 10 classes), shipped with the package."""
    with gzip.open(DATA_DIR / "digits.csv.gz", "rt") as fh:
        arr = np.loadtxt(fh, delimiter=",", dtype=np.float32)
    x = torch.from_numpy(arr[:, :64] / 16.0).reshape(-1, 1, 8, 8)
    y = torch.from_numpy(arr[:, 64].astype(np.int64))
    return Samples(x, y, "classification", "digits (8x8)", [str(i) for i in range(10)], image=True)


@source("synthetic_blobs")
def blobs(cfg: dict[str, Any]) -> Samples:
    """Gaussian blobs: 4 classes in 8 dimensions, separable but not trivially."""
    g = torch.Generator().manual_seed(int(cfg.get("seed", 0)))
    n, classes, dims = int(cfg.get("num_samples", 1000)), 4, 8
    centres = torch.randn(classes, dims, generator=g) * 3
    y = torch.randint(0, classes, (n,), generator=g)
    x = centres[y] + torch.randn(n, dims, generator=g)
    return Samples(x, y, "classification", "synthetic blobs", [f"blob {i}" for i in range(classes)])


@source("synthetic_regression")
def regression(cfg: dict[str, Any]) -> Samples:
    """y = a smooth non-linear function of 8 inputs, plus noise."""
    g = torch.Generator().manual_seed(int(cfg.get("seed", 0)))
    n = int(cfg.get("num_samples", 1000))
    x = torch.randn(n, 8, generator=g)
    w = torch.randn(8, generator=g)
    y = (torch.sin(x @ w) + 0.5 * x[:, 0] * x[:, 1] + 0.05 * torch.randn(n, generator=g)).unsqueeze(1)
    return Samples(x, y, "regression", "synthetic regression")


@source("synthetic_sequence")
def sequences(cfg: dict[str, Any]) -> Samples:
    """Sequences of 16 steps x 4 features; the class is which feature carries a sine wave."""
    g = torch.Generator().manual_seed(int(cfg.get("seed", 0)))
    n, steps, feats = int(cfg.get("num_samples", 1000)), 16, 4
    y = torch.randint(0, feats, (n,), generator=g)
    x = 0.5 * torch.randn(n, steps, feats, generator=g)
    phase = torch.rand(n, generator=g) * 2 * math.pi
    wave = torch.sin(torch.arange(steps).float()[None, :] * 0.8 + phase[:, None])
    x[torch.arange(n), :, y] += wave
    return Samples(x, y, "classification", "synthetic sequences", [f"feature {i}" for i in range(feats)])


# --------------------------------------------------------------------------- CSV


@source("csv", standardized=True)
def csv_file(cfg: dict[str, Any]) -> Samples:
    """Numeric features (raw: :func:`load_data` standardises them with the training split's statistics);
    the target column (default: the last) encoded when categorical.  Missing or non-finite values are
    refused, naming the line and the column."""
    path = Path(cfg.get("path") or "")
    if not cfg.get("path") or not path.is_file():
        raise DataError(f"CSV file not found: {cfg.get('path') or '(no path set)'}")
    try:
        with open(path, newline="", encoding="utf-8-sig") as fh:
            reader = csv.reader(fh)
            rows = [(reader.line_num, r) for r in reader]  # line_num: the physical line, blank lines included
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        raise DataError(f"{path}: cannot read CSV ({exc})") from None
    if len(rows) < 2:
        raise DataError(f"{path}: needs a header row and at least one data row")
    header = rows[0][1]
    lines, body = [ln for ln, r in rows[1:] if r], [r for _, r in rows[1:] if r]
    if not body:
        raise DataError(f"{path}: needs a header row and at least one data row")
    target = cfg.get("target_column") or header[-1]
    if target not in header:
        raise DataError(f"{path}: no column {target!r} (columns: {', '.join(header)})")
    t = header.index(target)
    for line, r in zip(lines, body, strict=True):
        if len(r) != len(header):
            raise DataError(f"{path}, line {line}: {len(r)} values, the header has {len(header)}")
    feats, cols = [], [c for c in range(len(header)) if c != t]
    for c in cols:
        column = []
        for line, r in zip(lines, body, strict=True):
            value = _float_or_none(r[c])
            if value is None or not math.isfinite(value):
                what = ("is empty (missing values are not supported: fill or drop the row)" if not r[c].strip()
                        else "is not a finite number (fill or drop the row)" if value is not None
                        else "is not a number (only numeric features are supported)")
                raise DataError(f"{path}, line {line}, column {header[c]!r}: {r[c]!r} {what}")
            column.append(value)
        feats.append(column)
    x = torch.tensor(feats, dtype=torch.float32).reshape(len(cols), len(body)).T.contiguous()
    values = [r[t] for r in body]
    for line, v in zip(lines, values, strict=True):
        number = _float_or_none(v)
        if not v.strip() or (number is not None and not math.isfinite(number)):
            raise DataError(f"{path}, line {line}, column {target!r}: the target {v!r} is missing or not finite "
                            "(fill or drop the row)")
    if all(_is_float(v) for v in values) and len(set(values)) > 20:
        y = torch.tensor([float(v) for v in values]).unsqueeze(1)
        return Samples(x, y, "regression", path.name, standardize=True)
    classes = sorted(set(values), key=lambda v: (not _is_float(v), float(v) if _is_float(v) else 0, v))
    index = {c: i for i, c in enumerate(classes)}
    y = torch.tensor([index[v] for v in values])
    return Samples(x, y, "classification", path.name, classes, standardize=True)


def _float_or_none(v: str) -> float | None:
    try:
        return float(v)
    except ValueError:
        return None


def _is_float(v: str) -> bool:
    try:
        float(v)
    except ValueError:
        return False
    return True


# --------------------------------------------------------------------------- IDX (MNIST format)


def read_idx(path: Path) -> np.ndarray:
    """Read an IDX file (optionally gzipped), as used by MNIST, Fashion-MNIST and EMNIST."""
    raw = path.read_bytes()
    if raw[:2] == b"\x1f\x8b":
        raw = gzip.decompress(raw)
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0:
        raise DataError(f"{path}: not an IDX file (bad magic number)")
    dtypes = {0x08: np.uint8, 0x09: np.int8, 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}
    if raw[2] not in dtypes:
        raise DataError(f"{path}: unknown IDX element type 0x{raw[2]:02x}")
    ndim = raw[3]
    dims = struct.unpack(f">{ndim}I", raw[4 : 4 + 4 * ndim])
    data = np.frombuffer(raw, dtype=dtypes[raw[2]], offset=4 + 4 * ndim)
    if data.size != math.prod(dims):
        raise DataError(f"{path}: truncated ({data.size} values, header says {math.prod(dims)})")
    return data.reshape(dims)


@source("idx")
def idx_folder(cfg: dict[str, Any]) -> Samples:
    """A folder with train images/labels in IDX format (``*images*`` and ``*labels*`` files)."""
    folder = Path(cfg.get("path") or "")
    if not cfg.get("path") or not folder.is_dir():
        raise DataError(f"IDX folder not found: {cfg.get('path') or '(no path set)'}")
    images = sorted(p for p in folder.iterdir() if "images" in p.name and "t10k" not in p.name and "test" not in p.name)
    labels = sorted(p for p in folder.iterdir() if "labels" in p.name and "t10k" not in p.name and "test" not in p.name)
    if not images or not labels:
        raise DataError(f"{folder}: expected IDX files named like train-images-idx3-ubyte(.gz) and "
                        "train-labels-idx1-ubyte(.gz)")
    x = read_idx(images[0]).astype(np.float32) / 255.0
    y = read_idx(labels[0]).astype(np.int64)
    if len(x) != len(y):
        raise DataError(f"{folder}: {len(x)} images but {len(y)} labels")
    xt = torch.from_numpy(x.copy()).unsqueeze(1)
    return Samples(xt, torch.from_numpy(y.copy()), "classification", folder.name, image=True)


# --------------------------------------------------------------------------- image folder


@source("image_folder")
def image_folder(cfg: dict[str, Any]) -> Samples:
    """One sub-folder per class; images resized, grayscale or RGB, scaled to [0, 1]."""
    try:
        from PIL import Image
    except ImportError:
        raise DataError("reading image folders needs Pillow: pip install pillow") from None
    folder = Path(cfg.get("path") or "")
    if not cfg.get("path") or not folder.is_dir():
        raise DataError(f"image folder not found: {cfg.get('path') or '(no path set)'}")
    classes = sorted(p.name for p in folder.iterdir() if p.is_dir())
    if not classes:
        raise DataError(f"{folder}: expected one sub-folder per class")
    size = int(cfg.get("image_size", 0)) or None
    mode = "L" if cfg.get("grayscale", True) else "RGB"
    xs, ys = [], []
    for ci, c in enumerate(classes):
        for f in sorted((folder / c).iterdir()):
            if f.suffix.lower() not in (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".webp"):
                continue
            try:
                img = Image.open(io.BytesIO(f.read_bytes())).convert(mode)
            except Exception as exc:
                raise DataError(f"{f}: cannot read image ({exc})") from None
            if size:
                img = img.resize((size, size))
            arr = np.asarray(img, dtype=np.float32) / 255.0
            xs.append(arr[None] if arr.ndim == 2 else arr.transpose(2, 0, 1))
            ys.append(ci)
    if not xs:
        raise DataError(f"{folder}: no images found")
    if len({a.shape for a in xs}) > 1:
        raise DataError(f"{folder}: images have different sizes; set image_size to resize them")
    return Samples(torch.from_numpy(np.stack(xs)), torch.tensor(ys), "classification", folder.name, classes,
                   image=True)


# --------------------------------------------------------------------------- torchvision


@source("torchvision")
def torchvision_dataset(cfg: dict[str, Any]) -> Samples:
    """MNIST, FashionMNIST or CIFAR10 through torchvision (optional extra), downloaded to ``path``."""
    name = cfg.get("name") or "MNIST"
    if name not in ("MNIST", "FashionMNIST", "CIFAR10"):
        raise DataError(f"torchvision dataset {name!r} is not supported (MNIST, FashionMNIST, CIFAR10)")
    try:
        import torchvision
    except Exception as exc:
        raise DataError(f"torchvision is not installed or does not load ({exc}); "
                        "install the 'vision' extra, or use the 'idx' source with MNIST files") from None
    root = cfg.get("path") or str(Path.home() / ".cache" / "neural-workbench" / "datasets")
    try:
        ds = getattr(torchvision.datasets, name)(root, train=True, download=True)
    except Exception as exc:
        raise DataError(f"cannot download {name} to {root} ({exc}); are you offline?") from None
    data = torch.as_tensor(np.asarray(ds.data), dtype=torch.float32) / 255.0
    x = data.unsqueeze(1) if data.ndim == 3 else data.permute(0, 3, 1, 2)
    return Samples(x, torch.as_tensor(np.asarray(ds.targets)), "classification", name, list(ds.classes), image=True)


# --------------------------------------------------------------------------- text


@source("text")
def text(cfg: dict[str, Any]) -> Samples:
    """Character-level next-token data: windows of ``seq_len`` characters and the same window
    shifted by one.  Default text: the opening chapter of Alice in Wonderland (public domain)."""
    path = Path(cfg.get("path") or DATA_DIR / "alice.txt")
    try:
        body = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise DataError(f"{path}: cannot read text ({exc})") from None
    t = int(cfg.get("seq_len", 32))
    if len(body) < t + 2:
        raise DataError(f"{path}: {len(body)} characters is too short for seq_len={t}")
    chars = sorted(set(body))
    ids = torch.tensor([chars.index(c) for c in body])
    starts = torch.arange(0, len(ids) - t - 1, max(1, t // 4))
    windows = torch.stack([ids[s : s + t + 1] for s in starts.tolist()])
    return Samples(windows[:, :-1], windows[:, 1:], "sequence", path.name, chars)


# --------------------------------------------------------------------------- sequence to sequence

_ONES = ("zero one two three four five six seven eight nine ten eleven twelve thirteen fourteen fifteen sixteen "
         "seventeen eighteen nineteen").split()
_TENS = "- - twenty thirty forty fifty sixty seventy eighty ninety".split()
_MOST_NUMBERS = 1_000_000


def number_words(n: int) -> str:
    """English words for ``0 <= n < 1,000,000``: 427 -> ``"four hundred twenty-seven"``."""
    if n < 20:
        return _ONES[n]
    if n < 100:
        return _TENS[n // 10] + (f"-{_ONES[n % 10]}" if n % 10 else "")
    if n < 1000:
        return f"{_ONES[n // 100]} hundred" + (f" {number_words(n % 100)}" if n % 100 else "")
    return f"{number_words(n // 1000)} thousand" + (f" {number_words(n % 1000)}" if n % 1000 else "")


#: one vocabulary for both sides: the reserved ids, then every character of numerals and their words
NUMBER_VOCABULARY = ["<pad>", "<s>", "</s>",
                     *sorted(set("0123456789" + " ".join([*_ONES, *_TENS[2:], "hundred", "thousand", "-"])))]


@source("numbers_to_words")
def numbers_to_words(cfg: dict[str, Any]) -> Samples:
    """A character-level translation: numerals into English words (``"427"`` -> ``"four hundred
    twenty-seven"``), for sequence-to-sequence models.

    ``num_samples`` distinct numbers drawn (seeded) below the smallest power of ten that holds them
    (at least 1,000: the default draws every number below 1,000 once, in a seeded order).  Sources are
    the digits then EOS; targets BOS, the words, EOS; both padded with PAD to the longest one.
    """
    n = int(cfg.get("num_samples", 1000))
    limit = 1000
    while limit < n:
        limit *= 10
    if limit > _MOST_NUMBERS:
        raise DataError(f"numbers_to_words has {_MOST_NUMBERS:,} numbers (0 to 999,999); num_samples={n:,} asks "
                        "for more")
    g = torch.Generator().manual_seed(int(cfg.get("seed", 0)))
    numbers = torch.randperm(limit, generator=g)[:n].tolist()
    index = {c: i for i, c in enumerate(NUMBER_VOCABULARY)}

    def ids(texts: list[str], start: list[int]) -> torch.Tensor:
        rows = [start + [index[c] for c in t] + [EOS] for t in texts]
        width = max(len(r) for r in rows)
        return torch.tensor([r + [PAD] * (width - len(r)) for r in rows])

    x = ids([str(k) for k in numbers], [])
    y = ids([number_words(k) for k in numbers], [BOS])
    return Samples(x, y, "seq2seq", "numbers to words", list(NUMBER_VOCABULARY))
