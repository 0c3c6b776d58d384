"""The command line loses nothing and says what is wrong: outputs never overwrite inputs,
unreadable input exits 2 everywhere, arguments are validated by the settings' declarations,
reads are bounded, terminal output carries no escape sequences."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from workbench import __version__
from workbench.cli import main

ROOT = Path(__file__).resolve().parents[2]
MLP = ROOT / "samples" / "digits_mlp.json"


def cli(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    code = main(list(args))
    out, err = capsys.readouterr()
    return code, out, err


@pytest.fixture
def project(tmp_path: Path) -> Path:
    p = tmp_path / "p.json"
    shutil.copy(MLP, p)
    return p


def _unchanged(path: Path, before: bytes) -> None:
    assert path.read_bytes() == before, f"{path} was changed"


# --------------------------------------------------------------------------- outputs are never inputs


@pytest.mark.parametrize("flag", ["--onnx", "--python", "--weights"])
def test_export_refuses_to_write_over_the_project(capsys, project: Path, flag: str) -> None:
    before = project.read_bytes()
    code, _, err = cli(capsys, "export", str(project), flag, str(project))
    assert code == 2 and "would overwrite the project" in err
    _unchanged(project, before)


def test_export_refuses_the_projects_weights_and_the_checkpoint_and_itself(capsys, project: Path,
                                                                          tmp_path: Path) -> None:
    assert cli(capsys, "export", str(project), "--weights", str(tmp_path / "w.safetensors"))[0] == 0
    assert cli(capsys, "weights", str(project), "--load", str(tmp_path / "w.safetensors"))[0] == 0
    own = tmp_path / "p.safetensors"
    before = own.read_bytes()
    code, _, err = cli(capsys, "export", str(project), "--python", str(tmp_path / "p.py"))  # writes p.safetensors
    assert code == 2 and "the project's weights" in err
    _unchanged(own, before)
    assert not (tmp_path / "p.py").exists()
    code, _, err = cli(capsys, "export", str(project), "--checkpoint", str(tmp_path / "w.safetensors"),
                       "--weights", str(tmp_path / "w.safetensors"))
    assert code == 2 and "the checkpoint" in err
    code, _, err = cli(capsys, "export", str(project), "--python", str(tmp_path / "m.py"),
                       "--weights", str(tmp_path / "m.safetensors"))
    assert code == 2 and "same file" in err


def test_weights_refuses_to_load_the_file_it_would_write(capsys, project: Path, tmp_path: Path) -> None:
    assert cli(capsys, "export", str(project), "--weights", str(tmp_path / "p.safetensors"))[0] == 0
    code, _, err = cli(capsys, "weights", str(project), "--load", str(tmp_path / "p.safetensors"))
    assert code == 2 and "would overwrite the file to load" in err


def test_import_asks_for_force_and_never_writes_over_the_model(capsys, project: Path, tmp_path: Path) -> None:
    model = tmp_path / "m.onnx"
    assert cli(capsys, "export", str(project), "--onnx", str(model), "--no-verify")[0] == 0
    before = project.read_bytes()
    code, _, err = cli(capsys, "import", str(model), "-o", str(project))
    assert code == 2 and "--force" in err
    _unchanged(project, before)
    code, _, err = cli(capsys, "import", str(model), "-o", str(model), "--force")
    assert code == 2 and "would overwrite the model" in err
    assert cli(capsys, "import", str(model), "-o", str(project), "--force")[0] == 0
    assert json.loads(project.read_text())["weights"] == "p.safetensors"


def test_train_never_writes_a_run_into_an_existing_folder(capsys, project: Path, tmp_path: Path) -> None:
    busy = tmp_path / "busy"
    busy.mkdir()
    (busy / "config.json").write_text("mine")
    code, _, err = cli(capsys, "train", str(project), "--epochs", "1", "--out", str(busy), "--quiet")
    assert code == 2 and "not empty" in err
    assert (busy / "config.json").read_text() == "mine"
    code, _, err = cli(capsys, "train", str(project), "--epochs", "1", "--out", str(project), "--quiet")
    assert code == 2 and "not a folder" in err


# --------------------------------------------------------------------------- unreadable input: exit 2


def test_unreadable_inputs_exit_2_everywhere(capsys, project: Path, tmp_path: Path) -> None:
    missing = str(tmp_path / "missing.safetensors")
    junk = tmp_path / "junk.safetensors"
    junk.write_bytes(b"\xff" * 64)
    for args in (
        ("import", str(tmp_path / "missing.onnx"), "-o", str(tmp_path / "x.json")),
        ("weights", str(project), "--load", missing),
        ("weights", str(project), "--load", str(junk)),
        ("train", str(project), "--epochs", "1", "--resume", missing, "--quiet", "--out", str(tmp_path / "r1")),
        ("train", str(project), "--epochs", "1", "--resume", str(junk), "--quiet", "--out", str(tmp_path / "r2")),
        ("export", str(project), "--weights", str(tmp_path / "o.safetensors"), "--checkpoint", missing),
        ("check", str(tmp_path / "nope.json")),
        ("check", str(tmp_path)),
    ):
        code, _, err = cli(capsys, *args)
        assert code == 2, (args, code, err)
        assert err.startswith("workbench: error: ") and "Traceback" not in err, (args, err)


@pytest.mark.parametrize(("flag", "value", "says"), [
    ("--batch-size", "0", "data.batch_size"),
    ("--epochs", "0", "training.epochs"),
    ("--epochs", "many", "training.epochs"),
    ("--lr", "-1", "training.lr"),
    ("--lr", "nan", "training.lr"),
    ("--seed", "-4", "training.seed"),
])
def test_training_arguments_are_validated_by_their_declarations(capsys, project: Path, flag: str, value: str,
                                                                says: str) -> None:
    with pytest.raises(SystemExit) as info:
        main(["train", str(project), flag, value])
    assert info.value.code == 2
    assert says in capsys.readouterr().err


def test_check_of_an_endless_file_is_an_error_not_a_hang() -> None:
    r = subprocess.run([sys.executable, "-m", "workbench", "check", "/dev/zero"], capture_output=True, text=True,
                       timeout=120)
    assert r.returncode == 2 and "larger than" in r.stderr and "Traceback" not in r.stderr


def test_a_utf8_byte_order_mark_is_accepted(capsys, project: Path) -> None:
    project.write_bytes(b"\xef\xbb\xbf" + project.read_bytes())
    assert cli(capsys, "check", str(project))[0] == 0


def test_an_unwritable_output_is_one_line_and_exit_2() -> None:
    r = subprocess.run([sys.executable, "-m", "workbench", "export", str(MLP), "--weights",
                        str(MLP) + "/inside/w.safetensors"], capture_output=True, text=True, timeout=120)
    assert r.returncode == 2, r.stderr
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and "cannot write" in lines[0] and ".tmp" not in lines[0]


# --------------------------------------------------------------------------- terminal, version, new


def test_names_from_files_cannot_drive_the_terminal(capsys, tmp_path: Path) -> None:
    doc = json.loads(MLP.read_text())
    doc["name"] = "evil\x1b]0;pwned\x07\x1b[2J"
    doc["graph"]["nodes"][0]["name"] = "fc\x1b[31mred"
    path = tmp_path / "evil.json"
    path.write_text(json.dumps(doc))
    code, out, err = cli(capsys, "check", str(path))
    assert "\x1b" not in out + err and "\x07" not in out + err
    assert code == 2 and ("\\x1b" in err or "U+001B" in err)


def test_terminal_filter_shows_controls_as_escapes() -> None:
    from workbench.terminal import terminal_safe

    assert terminal_safe("a\x1b[2Jb\u202ec\td\ne\ud800") == "a\\x1b[2Jb\\u202ec\td\ne\\ud800"


def test_version(capsys) -> None:
    with pytest.raises(SystemExit) as info:
        main(["--version"])
    assert info.value.code == 0 and capsys.readouterr().out.strip() == f"workbench {__version__}"


def test_new_writes_every_template_and_check_accepts_it(capsys, tmp_path: Path) -> None:
    from workbench.templates import starting_points

    code, out, _ = cli(capsys, "new", "--list")
    ids = list(starting_points())
    assert code == 0 and all(i in out for i in ids)
    for template in ids:
        out_path = tmp_path / f"{template}.json"
        code, _, err = cli(capsys, "new", "--template", template, "-o", str(out_path))
        assert code == 0, err
        code, _, err = cli(capsys, "check", str(out_path))
        assert code == 0, (template, err)
    sample = json.loads((tmp_path / "digits_cnn.json").read_text())
    assert sample["graph"] == json.loads((ROOT / "samples" / "digits_cnn.json").read_text())["graph"]
    code, _, err = cli(capsys, "new", "--template", "digits_cnn", "-o", str(tmp_path / "digits_cnn.json"))
    assert code == 2 and "--force" in err
    code, _, err = cli(capsys, "new", "--template", "nonsense", "-o", str(tmp_path / "x.json"))
    assert code == 2 and "digits_cnn" in err
    torch.manual_seed(0)


def test_the_progress_line_may_redraw_itself_but_text_cannot_hide_behind_a_carriage_return() -> None:
    import io

    from workbench.terminal import TerminalSafe

    out = io.StringIO()
    TerminalSafe(out).write("\repoch 1 [####] loss 0.1\rfake")  # type: ignore[arg-type]
    assert out.getvalue() == "\repoch 1 [####] loss 0.1\\x0dfake"
