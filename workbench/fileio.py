"""Files in and out, safely.

Writes are atomic (a reader never sees a half-written file), never replace something that is not
a regular file (a directory, a device node, a pipe), never write through a symlink (the link
itself is replaced; the file it points to is untouched), follow the umask, and leave no temporary
file behind on any failure a process can see.  A failure is one :class:`~workbench.errors.OutputError`
naming the file the user asked for, never the hidden temporary.

Reads are bounded: :func:`read_input` refuses a directory and stops at a size limit, so
``check /dev/zero`` is an error, not an endless read.
"""

from __future__ import annotations

import contextlib
import os
import stat
import tempfile
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any

from .errors import InputError, OutputError

#: size limits of inputs read whole into memory
PROJECT_LIMIT = 256 * 2**20
"""A 100,000-node project is about 25 MB of JSON."""
MODEL_LIMIT = 2**31
"""Protobuf (ONNX) cannot hold more than 2 GiB in one message."""


def _umask_mode() -> int:
    umask = os.umask(0)
    os.umask(umask)
    return 0o666 & ~umask


def check_output_target(target: Path) -> None:
    """Refuse a target that must not be replaced by a file (a directory, device, pipe, socket).

    Raises:
        OutputError: naming the target and what it is.
    """
    try:
        st = os.lstat(target)
    except FileNotFoundError:
        return
    except OSError as exc:
        raise OutputError(f"cannot write {target}: {exc.strerror or exc}") from None
    mode = st.st_mode
    if stat.S_ISDIR(mode):
        raise OutputError(f"cannot write {target}: it is a directory (give a file name)")
    if not (stat.S_ISREG(mode) or stat.S_ISLNK(mode)):
        kind = ("a device" if stat.S_ISCHR(mode) or stat.S_ISBLK(mode) else "a pipe" if stat.S_ISFIFO(mode)
                else "a socket" if stat.S_ISSOCK(mode) else "not a regular file")
        raise OutputError(f"cannot write {target}: it is {kind}; only regular files are replaced")


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike[str]) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; on success, fsync and rename over it.

    On an exception the temporary file is removed and ``path`` is untouched.  A symlink at
    ``path`` is replaced by the new file (what it pointed to is not written).

    Raises:
        OutputError: the target cannot be written (the reason names ``path``, not the temporary).
    """
    target = Path(path)
    check_output_target(target)
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    except OSError as exc:
        raise OutputError(f"cannot write {target}: {exc.strerror or exc}") from None
    os.close(fd)
    tmp_path = Path(tmp)
    try:
        # mkstemp makes 0600 files: give the result the mode a normal write would (or the old file's)
        try:
            mode = target.stat().st_mode & 0o777 if target.is_file() else _umask_mode()
        except OSError:
            mode = _umask_mode()
        os.chmod(tmp_path, mode)
        yield tmp_path
        with open(tmp_path, "rb+") as fh:
            os.fsync(fh.fileno())
        check_output_target(target)  # it may have changed while we wrote
        os.replace(tmp_path, target)
    except OSError as exc:
        with contextlib.suppress(OSError):
            tmp_path.unlink()
        raise OutputError(f"cannot write {target}: {exc.strerror or exc}") from None
    except BaseException:
        with contextlib.suppress(OSError):
            tmp_path.unlink()
        raise
    with contextlib.suppress(OSError):  # not every platform can fsync a directory
        dir_fd = os.open(target.parent, os.O_RDONLY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)


def atomic_write_bytes(path: str | os.PathLike[str], data: bytes) -> None:
    with atomic_path(path) as tmp:
        tmp.write_bytes(data)


def atomic_write_text(path: str | os.PathLike[str], text: str) -> None:
    atomic_write_bytes(path, text.encode("utf-8"))


def atomic_write_with(path: str | os.PathLike[str], writer: Callable[[Path], None]) -> None:
    """Let ``writer`` fill a temporary file, then move it into place."""
    with atomic_path(path) as tmp:
        writer(tmp)


def open_append(path: str | os.PathLike[str]) -> Any:
    """Open a log for appending, refusing a symlink (a planted link must not redirect the writes).

    Raises:
        OutputError: the file is a symlink, not a regular file, or cannot be opened.
    """
    target = Path(path)
    check_output_target(target)
    flags = os.O_WRONLY | os.O_APPEND | os.O_CREAT | getattr(os, "O_NOFOLLOW", 0)
    try:
        fd = os.open(target, flags, 0o666)
    except OSError as exc:
        why = "it is a symlink" if target.is_symlink() else exc.strerror or str(exc)
        raise OutputError(f"cannot write {target}: {why}") from None
    return os.fdopen(fd, "a", encoding="utf-8")


# --------------------------------------------------------------------------- inputs


def read_input(path: str | os.PathLike[str], limit: int, what: str = "file") -> bytes:
    """The whole content of an input file, at most ``limit`` bytes.

    Raises:
        InputError: the file is missing, a directory, unreadable or larger than ``limit``.
    """
    p = Path(path)
    try:
        if p.is_dir():
            raise InputError(f"{p}: is a directory, not a {what}", str(p))
        with open(p, "rb") as fh:
            data = fh.read(limit + 1)
    except OSError as exc:
        raise InputError(f"{p}: cannot read the {what}: {exc.strerror or exc}", str(p)) from None
    if len(data) > limit:
        raise InputError(f"{p}: larger than {limit / 2**20:,.0f} MiB; not a {what}?", str(p))
    return data


def decode_text(data: bytes, path: str | os.PathLike[str], what: str = "file") -> str:
    """UTF-8 text (a byte-order mark is accepted and dropped).

    Raises:
        InputError: the bytes are not UTF-8, naming the offset.
    """
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise InputError(f"{path}: the {what} is not UTF-8 text (byte {exc.start})", str(path)) from None


def same_file(a: str | os.PathLike[str], b: str | os.PathLike[str]) -> bool:
    """Whether two paths name the same file (through symlinks and hard links too)."""
    pa, pb = Path(a), Path(b)
    try:
        if os.path.samefile(pa, pb):
            return True
    except OSError:
        pass
    try:
        return pa.resolve() == pb.resolve()
    except OSError:
        return False


def refuse_overwriting_inputs(outputs: Iterable[tuple[str, str | os.PathLike[str] | None]],
                              inputs: Iterable[tuple[str, str | os.PathLike[str] | None]]) -> None:
    """Refuse an output that is one of the inputs, or two outputs that are the same file.

    Args:
        outputs: (what, path) pairs, e.g. ``("the ONNX file", "m.onnx")``; None paths are skipped.
        inputs: (what, path) pairs, e.g. ``("the project", "p.json")``.

    Raises:
        OutputError: naming both.
    """
    outs = [(w, p) for w, p in outputs if p]
    ins = [(w, p) for w, p in inputs if p]
    for what, out in outs:
        for in_what, src in ins:
            if same_file(out, src):
                raise OutputError(f"{out}: {what} would overwrite {in_what} ({src}); choose another output path")
    for i, (what, out) in enumerate(outs):
        for other_what, other in outs[i + 1:]:
            if same_file(out, other):
                raise OutputError(f"{out}: {what} and {other_what} would be the same file; choose other paths")
