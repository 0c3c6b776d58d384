"""Export and import from the GUI: background jobs with a report, errors in a dialog."""

from __future__ import annotations

from pathlib import Path

import onnx

from tests.ui.conftest import CNN


def test_export_onnx_and_python_from_the_gui(window, asker, tmp_path: Path) -> None:
    window.open_path(CNN)
    assert window.export_onnx(tmp_path / "m.onnx")
    title, text = asker.asked[-1]
    assert title == "ONNX export verified" and "max abs diff" in text
    onnx.checker.check_model(onnx.load(str(tmp_path / "m.onnx")))
    assert window.export_python(tmp_path / "m.py")
    assert (tmp_path / "m.py").exists() and (tmp_path / "m.safetensors").exists()


def test_import_onnx_opens_the_project(window, tmp_path: Path) -> None:
    window.open_path(CNN)
    assert window.export_onnx(tmp_path / "m.onnx")
    assert window.import_onnx(tmp_path / "m.onnx", tmp_path / "imported.json")
    assert window.doc.project.path == (tmp_path / "imported.json").resolve()
    assert window.doc.project.weights == "imported.safetensors"
    assert "lossless" in window.statusBar().currentMessage()


def test_a_failed_import_is_a_dialog_and_the_editor_stays(window, asker, tmp_path: Path) -> None:
    window.open_path(CNN)
    (tmp_path / "bad.onnx").write_bytes(b"garbage")
    assert not window.import_onnx(tmp_path / "bad.onnx", tmp_path / "x.json")
    assert asker.asked[-1][0] == "Import failed" and "not a valid ONNX file" in asker.asked[-1][1]
    assert not (tmp_path / "x.json").exists()
    assert window.doc.project.path == CNN.resolve()
