"""No code from data: user text reaches generated source only as escaped literals or sanitised
identifiers; files an ONNX model references are confined to its folder; terminal output carries
no escape sequences from a project."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from workbench.builder import GraphBuilder
from workbench.compiler import compile_graph
from workbench.export.python_source import doc_text, export_python
from workbench.project import Project

CANARY = "CANARY_WRITTEN"


def _payload(tmp: Path) -> str:
    """Python that, if it ever runs, leaves a file behind."""
    target = str(tmp / CANARY)
    return f"__import__('pathlib').Path({target!r}).write_text('pwned')"


def _hostile_texts(tmp: Path) -> list[str]:
    code = _payload(tmp)
    return [
        f'x"""+{code}+"""',                       # closes a docstring on one line
        f'"""\n{code}\n"""',                      # closes it across lines
        f"'''\n{code}\n'''",
        f'\\"""+{code}+"""\\',                    # backslashes around the quotes
        f'a\\\nb"""{code}',                        # a line continuation
        f"\ud800\"\"\"{code}",                     # a lone surrogate before the quotes
        "\x1b[2J\x1b]0;title\x07",                 # terminal escapes
        "\u202e}; " + code + " #",                 # a bidi override (Trojan Source)
        "\\N{BULLET} \\x41 \\u0041",               # escapes that must stay text
        f"{{{code}}}",                             # braces (f-string syntax)
    ]


def _hostile_project(text: str, i: int) -> Project:
    b = GraphBuilder()
    x = b.input((4,), name="in_put")
    x = b.layer("Linear", x, out_features=3, name="hidden")
    x = b.layer("ReLU", x, name="act")
    b.output(x, name="logits")
    p = Project(b.graph, name=f"P{i}")
    # Set the text directly on the model, bypassing name validation: the exporter's own
    # escaping must hold even for text that validation would refuse today.
    for n in p.graph:
        n.name = f"{text}{n.name}"
    p.name = text
    p.description = text
    return p


def _import_in_subprocess(module: Path, tmp: Path) -> subprocess.CompletedProcess[str]:
    code = (f"import importlib.util, sys; spec = importlib.util.spec_from_file_location('m', {str(module)!r}); "
            "m = importlib.util.module_from_spec(spec); spec.loader.exec_module(m); "
            "cls = [c for c in vars(m).values() if isinstance(c, type) and c.__module__ == 'm'][-1]; "
            "model = cls(); print(type(model).__doc__ is not None)")
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, cwd=tmp)


def test_hostile_names_never_become_code_in_exported_source(tmp_path: Path) -> None:
    for i, text in enumerate(_hostile_texts(tmp_path)):
        project = _hostile_project(text, i)
        out = tmp_path / f"model{i}.py"
        result = export_python(project, out)
        source = out.read_text(encoding="utf-8")  # valid UTF-8 (no lone surrogate written)
        compile(source, str(out), "exec")
        proc = _import_in_subprocess(result.source, tmp_path)
        assert proc.returncode == 0, proc.stderr
        assert not (tmp_path / CANARY).exists(), f"importing the export ran code from the name {text!r}"
        assert "\x1b" not in source and "\u202e" not in source and "\r" not in source


def test_hostile_names_survive_an_onnx_round_trip_as_text(tmp_path: Path) -> None:
    from workbench.export.onnx_export import export_onnx
    from workbench.importers.onnx_import import import_onnx

    text = _hostile_texts(tmp_path)[0]
    project = _hostile_project(text, 0)
    # names that also pass the project's validation travel through the ONNX metadata
    for n in project.graph:
        n.name = n.name.replace("\n", " ")
    export_onnx(project, tmp_path / "m.onnx", verify=False)
    back = import_onnx(tmp_path / "m.onnx")
    assert back.lossless
    out = tmp_path / "again.py"
    export_python(back.project, out)
    proc = _import_in_subprocess(out, tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert not (tmp_path / CANARY).exists()


def test_exported_source_with_hostile_names_computes_what_the_model_computes(tmp_path: Path) -> None:
    import importlib.util

    project = _hostile_project('q"""\\ é ²ﬁ 中', 0)
    out = tmp_path / "m.py"
    export_python(project, out)
    spec = importlib.util.spec_from_file_location("m_exported", out)
    assert spec is not None and spec.loader is not None
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    model = next(c for c in vars(mod).values() if isinstance(c, type) and c.__module__ == "m_exported")()
    model.load_weights(out.with_suffix(".safetensors")).eval()
    compiled = compile_graph(project.graph)
    compiled.module.load_state_dict(model.state_dict())
    x = torch.randn(5, 4)
    torch.testing.assert_close(model(x), compiled.module.eval()(x))


@pytest.mark.parametrize("text", ['a"""b', "x\\y", "l1\nl2", "\ud800", "\x1b[31m", "\u202e", "é中"])
def test_doc_text_is_inert_inside_a_docstring(text: str) -> None:
    escaped = doc_text(text)
    value = eval(f'"""{escaped}"""')  # the point: it stays a plain string
    assert isinstance(value, str)
    assert '"""' not in escaped
    assert all(ch.isprintable() for ch in value)
    if text.isprintable() and '"' not in text and "\\" not in text:
        assert value == text  # readable text is kept as is


def test_identifiers_are_ascii_and_never_name_mangled() -> None:
    from workbench.graph import python_identifier

    for name in ["ﬁlter²", "卷积", "__secret", "class", "9lives", "a b-c", "é"]:
        ident = python_identifier(name)
        assert ident.isascii() and ident.isidentifier() and not ident.startswith("__"), (name, ident)


# --------------------------------------------------------------------------- ONNX external data


def _model_with_external_data(folder: Path, location: str) -> Path:
    """A one-Linear ONNX model whose weight lives in an external file named ``location``."""
    from onnx import TensorProto, helper, numpy_helper

    w = numpy_helper.from_array(np.arange(12, dtype=np.float32).reshape(3, 4), "fc.weight")
    b = numpy_helper.from_array(np.zeros(3, dtype=np.float32), "fc.bias")
    graph = helper.make_graph(
        [helper.make_node("Gemm", ["x", "fc.weight", "fc.bias"], ["y"], transB=1, name="fc")], "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 4])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", 3])], [w, b])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 9
    raw = w.raw_data
    w.ClearField("raw_data")
    w.data_location = TensorProto.EXTERNAL
    for key, value in (("location", location), ("offset", "0"), ("length", str(len(raw)))):
        entry = w.external_data.add()
        entry.key, entry.value = key, value
    model.graph.initializer[0].CopyFrom(w)
    path = folder / "model.onnx"
    path.write_bytes(model.SerializeToString())
    return path


def test_external_data_is_read_from_the_models_own_folder_whatever_the_cwd(tmp_path: Path, monkeypatch) -> None:
    from workbench.importers.onnx_import import import_onnx

    folder = tmp_path / "models"
    folder.mkdir()
    path = _model_with_external_data(folder, "weights.bin")
    (folder / "weights.bin").write_bytes(np.arange(12, dtype=np.float32).tobytes())
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    result = import_onnx(path)
    weights = [t for k, t in result.tensors.items() if k.endswith("weight")]
    assert weights and torch.equal(weights[0], torch.arange(12, dtype=torch.float32).reshape(3, 4))


@pytest.mark.parametrize("how", ["from_the_cwd", "dotdot", "absolute", "symlink", "symlinked_dir"])
def test_external_data_cannot_reach_outside_the_models_folder(tmp_path: Path, monkeypatch, how: str) -> None:
    from workbench.errors import InputError
    from workbench.importers.onnx_import import import_onnx

    secret = tmp_path / ".aws" / "credentials"
    secret.parent.mkdir()
    secret.write_bytes(b"S" * 48)  # as many bytes as the weight: a read would succeed silently
    folder = tmp_path / "models"
    folder.mkdir()
    location = {"from_the_cwd": ".aws/credentials", "dotdot": "../.aws/credentials", "absolute": str(secret),
                "symlink": "link.bin", "symlinked_dir": "sub/.aws/credentials"}[how]
    if how == "symlink":
        (folder / "link.bin").symlink_to(secret)
    if how == "symlinked_dir":
        (folder / "sub").symlink_to(tmp_path)
    path = _model_with_external_data(folder, location)
    monkeypatch.chdir(tmp_path)  # where onnx's own loader looked (a home folder holds .aws/credentials)
    with pytest.raises(InputError, match="is missing" if how == "from_the_cwd" else "model's own folder") as info:
        import_onnx(path)
    assert "fc.weight" in str(info.value)
