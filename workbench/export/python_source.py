"""Standalone PyTorch source: a readable module file that imports only torch, plus
the weights as safetensors beside it.

``__init__`` is generated from the layers' ``ModuleCall`` declarations and
``forward`` is the compiler's fx code, so the file computes exactly what the
workbench module computes.
"""

from __future__ import annotations

import re
import textwrap
import unicodedata
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .. import __version__
from ..compiler import Compiled
from ..fileio import atomic_write_text, refuse_overwriting_inputs
from ..layers.dims import fmt_shape
from ..project import Project
from ..weights import save_weights
from .onnx_export import export_inputs, model_with_weights
from .preprocess import input_standardization, with_input_standardization


@dataclass
class SourceExport:
    source: Path
    weights: Path
    class_name: str


def doc_text(text: str) -> str:
    """``text`` made safe inside a ``\"\"\"`` docstring of generated source, and readable.

    Backslashes and double quotes are escaped, so the text can never close the docstring
    (``\"\"\"``) or start an escape; line breaks, control and format characters (bidi
    overrides included) and lone surrogates are shown as ``\\uXXXX``-style text, so the text stays
    on its line, the file stays valid UTF-8 and the docstring never holds such a character.
    Printable characters (accents, CJK) are kept.
    """
    out = []
    for ch in text:
        if ch == "\\":
            out.append("\\\\")
        elif ch == '"':
            out.append('\\"')
        elif ch.isprintable() and not ("\ud800" <= ch <= "\udfff") and unicodedata.category(ch) != "Cf":
            out.append(ch)
        else:
            code = ord(ch)
            # a doubled backslash: the docstring shows the escape as text and never holds the character
            out.append(f"\\\\x{code:02x}" if code < 0x100 else f"\\\\u{code:04x}" if code < 0x10000
                       else f"\\\\U{code:08x}")
    return "".join(out)


def class_name_for(project: Project) -> str:
    words = re.findall(r"[A-Za-z0-9]+", project.name) or ["Model"]
    name = "".join(w[:1].upper() + w[1:] for w in words)
    return name if name[0].isalpha() else f"Model{name}"


class _BlockClasses:
    """Classes for block instances, written once per distinct inside (dependencies first).

    Two instances of a block with the same parameters and input shapes share a
    class; an instance that differs gets ``<Block>_2``.
    """

    def __init__(self) -> None:
        self.texts: list[str] = []
        self._by_body: dict[str, str] = {}
        self._taken: set[str] = set()

    def init_lines(self, compiled: Compiled) -> str:
        lines = []
        for attr, call in compiled.calls.items():
            ctor = self.class_for(call) + "()" if hasattr(call, "compile") else call.source()
            lines.append(f"        self.{attr} = {ctor}")
        return "\n".join(lines) or "        pass"

    def class_for(self, call: Any) -> str:
        nested: Compiled = call.compile()
        body = f"""    def __init__(self):
        super().__init__()
{self.init_lines(nested)}

{textwrap.indent(nested.module.code.strip(), "    ")}
"""
        name = self._by_body.get(body)
        if name is None:
            name, i = call.class_name, 2
            while name in self._taken:
                name, i = f"{call.class_name}_{i}", i + 1
            self._taken.add(name)
            self._by_body[body] = name
            doc = f'    """Block {doc_text(call.block_id)} (a node on the canvas; its layers inside)."""\n\n'
            self.texts.append(f"class {name}(nn.Module):\n{doc}{body}")
        return name


def module_source(compiled: Compiled, class_name: str, title: str, weights_name: str, description: str = "") -> str:
    """The text of the module file.

    User text (project title and description, node names, the weights file name) reaches it only
    through :func:`doc_text` (inside docstrings) or as a ``repr`` literal; identifiers are sanitised
    by the compiler.  Nothing a project holds can become code.
    """
    args = ", ".join(s.arg for s in compiled.inputs)
    inputs_doc = "\n".join(f"        {s.arg}: {s.dtype} tensor of shape {doc_text(fmt_shape(s.shape))} "
                           f'(Input "{doc_text(s.node)}")' for s in compiled.inputs)
    outputs_doc = "\n".join(f'        "{doc_text(name)}": shape {doc_text(fmt_shape(shape))}'
                            for name, shape in zip(compiled.outputs, compiled.output_shapes, strict=True))
    symbols = sorted({str(d) for s in compiled.inputs for d in s.shape if isinstance(d, str) and d != "N"})
    sym_doc = f" {doc_text(', '.join(symbols))}: variable length." if symbols else ""
    blocks = _BlockClasses()
    init = blocks.init_lines(compiled)
    buffers = [f"        self.register_buffer({name!r}, torch.zeros({list(buf.shape)}))"
               for name, buf in compiled.module.named_buffers(recurse=False)]
    if buffers:  # the input standardisation (export.preprocess): shapes here, values in the weights file
        init = "\n".join([init, "        # forward standardises raw features with these", *buffers])
    if any(s.dtype == "float64" for s in compiled.inputs):
        init = "\n".join([init, "        self.double()  # a float64 Input: the whole model computes in float64"])
    block_classes = "".join(f"{text}\n\n" for text in blocks.texts)
    forward = compiled.module.code.strip()
    forward = re.sub(r"^def forward\(self, ([^)]*)\):", f"def forward(self, {args}):", forward)
    body = textwrap.indent(forward, "    ")
    names = [f'"{doc_text(n)}"' for n in compiled.outputs]
    returns = "a tuple (" + ", ".join(names) + ")" if len(names) > 1 else names[0]
    about = f"\n{doc_text(description)}\n" if description else ""
    return f'''"""{doc_text(title)}: generated by Neural Workbench {__version__}.
{about}
Standalone: needs only PyTorch (and the safetensors package to load the weights).
Weights: {doc_text(weights_name)} (state_dict keys follow the node names).
"""

import torch
import torch.nn as nn


{block_classes}class {class_name}(nn.Module):
    """Inputs (N is the batch size).{sym_doc}
{inputs_doc}

    Returns {returns}:
{outputs_doc}
    """

    def __init__(self):
        super().__init__()
{init}

{body}

    def load_weights(self, path):
        """Load weights saved as safetensors (default: the file written beside this module)."""
        from safetensors.torch import load_file

        self.load_state_dict(load_file(str(path)))
        return self


if __name__ == "__main__":
    import pathlib

    model = {class_name}().load_weights(pathlib.Path(__file__).with_name({weights_name!r})).eval()
    print(model)
'''


def export_python(project: Project, out: str | Path, checkpoint: Path | None = None) -> SourceExport:
    """Write ``out`` (.py) and ``out``.safetensors (weights), both atomically."""
    out = Path(out)
    refuse_overwriting_inputs([("the Python source", out), ("its weights", out.with_suffix(".safetensors"))],
                              export_inputs(project, checkpoint))
    compiled, _ = model_with_weights(project, checkpoint)
    pre = input_standardization(project, compiled)
    if pre is not None:  # raw features in, as in the data file: the module repeats training's standardisation
        with_input_standardization(compiled, pre)
    class_name = class_name_for(project)
    weights = out.with_suffix(".safetensors")
    text = module_source(compiled, class_name, project.name, weights.name, project.description)
    compile(text, str(out), "exec")  # a syntax error here is our bug: fail before writing
    save_weights(compiled.module, weights, {"class": class_name})
    atomic_write_text(out, text)
    return SourceExport(out, weights, class_name)
