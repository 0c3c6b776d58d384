"""Reading an ONNX file safely: a bounded read, and external data confined to the model's folder.

A model may keep its tensors in other files ("external data"), named inside the model.  Those
names are data from the file, not instructions: each is resolved relative to the folder the model
really lives in (symlinks of the model path resolved), and refused when it is absolute, climbs out
with ``..``, or leads out of that folder through a symlink.  Only then are the bytes read, by us,
within the file's size.  onnx's own loader resolves them against the current directory, so a
hostile model could pull any file under it (``.aws/credentials``) into the imported weights, and a
legitimate model failed unless run from its own folder.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path, PurePosixPath, PureWindowsPath

import onnx
from google.protobuf.message import DecodeError

from ..errors import InputError
from ..fileio import MODEL_LIMIT, read_input


class OnnxFileError(InputError):
    """The file is not a readable ONNX model, or references data it may not read (exit status 2)."""


def _tensors(graph: onnx.GraphProto) -> Iterator[onnx.TensorProto]:
    """Every tensor a graph holds: initializers, sparse initializers, Constant values, subgraphs."""
    yield from graph.initializer
    for sparse in graph.sparse_initializer:
        yield sparse.values
        yield sparse.indices
    for node in graph.node:
        for attr in node.attribute:
            if attr.HasField("t"):
                yield attr.t
            yield from attr.tensors
            if attr.HasField("sparse_tensor"):
                yield attr.sparse_tensor.values
                yield attr.sparse_tensor.indices
            if attr.HasField("g"):
                yield from _tensors(attr.g)
            for g in attr.graphs:
                yield from _tensors(g)


def _confined(folder: Path, location: str, model: Path, tensor: str) -> Path:
    """The file ``location`` names, when it is inside ``folder``; else an error naming the tensor."""

    def refuse(why: str) -> OnnxFileError:
        return OnnxFileError(f"{model}: tensor {tensor!r} keeps its data in {location!r}, which {why}; "
                             "external data must be a file in the model's own folder", str(model))

    if not location or "\x00" in location:
        raise refuse("is not a file name")
    for pure in (PurePosixPath(location), PureWindowsPath(location)):
        if pure.is_absolute() or pure.drive or pure.root:
            raise refuse("is an absolute path")
        if ".." in pure.parts:
            raise refuse("climbs out of the folder ('..')")
    candidate = folder / location
    try:
        real = candidate.resolve(strict=True)
    except (OSError, RuntimeError):
        raise OnnxFileError(f"{model}: tensor {tensor!r} keeps its data in {location!r}, which is missing "
                            f"(looked in {folder})", str(model)) from None
    if not real.is_relative_to(folder):
        raise refuse("leads out of the folder through a symlink")
    if not real.is_file():
        raise refuse("is not a regular file")
    return real


def load_external_data(model: onnx.ModelProto, path: Path) -> None:
    """Read every tensor's external data into the model, confined to the model's folder.

    Raises:
        OnnxFileError: a location outside the folder, a missing file, a range past its end.
    """
    folder = path.resolve().parent
    for tensor in _tensors(model.graph):
        if tensor.data_location != onnx.TensorProto.EXTERNAL:
            continue
        info = {e.key: e.value for e in tensor.external_data}
        name = tensor.name or "(unnamed)"
        real = _confined(folder, info.get("location", ""), path, name)
        try:
            offset = int(info.get("offset", "0") or 0)
            size = real.stat().st_size
            length = int(info["length"]) if info.get("length") else size - offset
        except (ValueError, OSError) as exc:
            raise OnnxFileError(f"{path}: tensor {name!r}: bad external data offset/length ({exc})", str(path)) from None
        if offset < 0 or length < 0 or offset + length > size:
            raise OnnxFileError(f"{path}: tensor {name!r} reads bytes {offset}..{offset + length} of "
                                f"{info.get('location')!r}, which has {size}", str(path))
        with open(real, "rb") as fh:
            fh.seek(offset)
            data = fh.read(length)
        tensor.raw_data = data
        del tensor.external_data[:]
        tensor.data_location = onnx.TensorProto.DEFAULT


def read_onnx(path: str | os.PathLike[str]) -> onnx.ModelProto:
    """Parse an ONNX file (bounded read), with its external data loaded safely.

    Raises:
        OnnxFileError: unreadable, not ONNX, or external data it may not read.
    """
    p = Path(path)
    try:
        data = read_input(p, MODEL_LIMIT, "ONNX model")
    except InputError as exc:
        raise OnnxFileError(str(exc), str(p)) from None
    try:
        model = onnx.load_from_string(data)  # never follows external data by itself
    except (DecodeError, ValueError, RuntimeError) as exc:
        raise OnnxFileError(f"{p}: not a valid ONNX file (corrupt or truncated: {exc})", str(p)) from None
    if not model.graph.node and not model.graph.output:
        raise OnnxFileError(f"{p}: not a valid ONNX file (no graph; corrupt or truncated?)", str(p))
    load_external_data(model, p)
    return model
