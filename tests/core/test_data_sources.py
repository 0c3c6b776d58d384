"""Dataset sources: real files in temporary folders, and the errors they give."""

from __future__ import annotations

import gzip
import struct
from pathlib import Path

import numpy as np
import pytest
import torch

from workbench.config import DATA_FIELDS, validate_section
from workbench.data import DataError, fit_to_input, load_data, load_samples


def cfg(**kw):
    return validate_section(DATA_FIELDS, kw)


def test_digits_are_the_real_uci_set() -> None:
    s = load_samples(cfg(dataset="digits"))
    assert s.x.shape == (1797, 1, 8, 8) and s.num_classes == 10
    assert torch.bincount(s.y).tolist()[:3] == [178, 182, 177]
    assert 0.0 <= float(s.x.min()) and float(s.x.max()) <= 1.0


def test_csv_standardises_features_and_encodes_a_categorical_target(tmp_path: Path) -> None:
    rows = ["a,b,species"] + [f"{i},{i * 2 + 1},{'cat' if i % 2 else 'dog'}" for i in range(30)]
    (tmp_path / "d.csv").write_text("\n".join(rows))
    s = load_samples(cfg(dataset="csv", path=str(tmp_path / "d.csv")))
    assert s.kind == "classification" and s.class_names == ["cat", "dog"]
    assert s.x.shape == (30, 2) and s.standardize  # raw features: load_data standardises the splits
    train = load_data(cfg(dataset="csv", path=str(tmp_path / "d.csv")), (2,)).train.tensors[0]
    torch.testing.assert_close(train.mean(0), torch.zeros(2), atol=1e-5, rtol=0)
    regression = ["x,y"] + [f"{i},{i * 0.37}" for i in range(50)]
    (tmp_path / "r.csv").write_text("\n".join(regression))
    assert load_samples(cfg(dataset="csv", path=str(tmp_path / "r.csv"), target_column="y")).kind == "regression"


def test_csv_errors_name_line_and_column(tmp_path: Path) -> None:
    (tmp_path / "bad.csv").write_text("a,b,t\n1,2,x\n3,oops,y\n")
    with pytest.raises(DataError, match=r"bad.csv, line 3, column 'b': 'oops' is not a number"):
        load_samples(cfg(dataset="csv", path=str(tmp_path / "bad.csv")))
    with pytest.raises(DataError, match="no column 'zzz'"):
        load_samples(cfg(dataset="csv", path=str(tmp_path / "bad.csv"), target_column="zzz"))
    with pytest.raises(DataError, match="CSV file not found"):
        load_samples(cfg(dataset="csv", path=str(tmp_path / "none.csv")))


def _idx(path: Path, array: np.ndarray, code: int, zipped: bool) -> None:
    head = struct.pack(">BBBB", 0, 0, code, array.ndim) + struct.pack(f">{array.ndim}I", *array.shape)
    data = head + array.astype(">u1").tobytes()
    path.write_bytes(gzip.compress(data) if zipped else data)


@pytest.mark.parametrize("zipped", [False, True])
def test_idx_folder_reads_mnist_format(tmp_path: Path, zipped: bool) -> None:
    images = np.random.default_rng(0).integers(0, 256, (12, 28, 28), dtype=np.uint8)
    labels = np.arange(12, dtype=np.uint8) % 10
    suffix = ".gz" if zipped else ""
    _idx(tmp_path / f"train-images-idx3-ubyte{suffix}", images, 0x08, zipped)
    _idx(tmp_path / f"train-labels-idx1-ubyte{suffix}", labels, 0x08, zipped)
    s = load_samples(cfg(dataset="idx", path=str(tmp_path)))
    assert s.x.shape == (12, 1, 28, 28) and s.y.tolist() == labels.tolist()
    np.testing.assert_allclose(s.x[3, 0].numpy(), images[3] / 255.0, rtol=1e-6)


def test_truncated_idx_is_refused(tmp_path: Path) -> None:
    _idx(tmp_path / "train-images-idx3-ubyte", np.zeros((4, 2, 2), np.uint8), 0x08, False)
    data = (tmp_path / "train-images-idx3-ubyte").read_bytes()
    (tmp_path / "train-images-idx3-ubyte").write_bytes(data[:-3])
    _idx(tmp_path / "train-labels-idx1-ubyte", np.zeros(4, np.uint8), 0x08, False)
    with pytest.raises(DataError, match="truncated"):
        load_samples(cfg(dataset="idx", path=str(tmp_path)))


def test_image_folder_one_subfolder_per_class(tmp_path: Path) -> None:
    from PIL import Image

    for ci, name in enumerate(("circle", "square")):
        (tmp_path / name).mkdir()
        for k in range(3):
            Image.fromarray(np.full((10, 12), 40 * ci + k, np.uint8)).save(tmp_path / name / f"{k}.png")
    s = load_samples(cfg(dataset="image_folder", path=str(tmp_path), image_size=8))
    assert s.class_names == ["circle", "square"] and s.x.shape == (6, 1, 8, 8)
    assert s.y.tolist() == [0, 0, 0, 1, 1, 1]


def test_rows_layout_and_mismatch_message() -> None:
    x = torch.zeros(5, 1, 8, 8)
    assert fit_to_input(x, (8, 8), "rows").shape == (5, 8, 8)
    assert fit_to_input(x, (64,)).shape == (5, 64)
    with pytest.raises(DataError, match=r"samples of shape \[1, 8, 8\] \(64 values\), but the Input expects \[3, 8, 8\]"):
        fit_to_input(x, (3, 8, 8))


def test_splits_are_seeded_and_disjoint() -> None:
    a = load_data(cfg(dataset="digits", val_fraction=0.2, test_fraction=0.1, seed=3), (64,))
    b = load_data(cfg(dataset="digits", val_fraction=0.2, test_fraction=0.1, seed=3), (64,))
    assert len(a.train) + len(a.val) + len(a.test) == 1797
    torch.testing.assert_close(a.val.tensors[0], b.val.tensors[0])
    c = load_data(cfg(dataset="digits", val_fraction=0.2, test_fraction=0.1, seed=4), (64,))
    assert not torch.equal(a.val.tensors[0], c.val.tensors[0])


def test_the_test_split_is_evaluated_at_the_end(tmp_path: Path) -> None:
    from workbench.project import load_project
    from workbench.training import Trainer

    project = load_project(Path(__file__).resolve().parents[2] / "samples" / "digits_mlp.json")
    project.data["test_fraction"] = 0.1
    summary = Trainer(project, {"epochs": 2}, run_dir=tmp_path / "r").run()
    assert summary["test"]["accuracy"] > 0.5
