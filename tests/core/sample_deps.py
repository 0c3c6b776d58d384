"""A sample that starts from another sample's trained weights (``training.init_from``, the
fine-tuning sample) needs that project trained first.  For tests that take every sample through
loading, checking and training, this provides it: the project it names, copied beside the sample's
copy with a weights file of its own (initial weights: what is tested is that they load)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import torch

from workbench.compiler import compile_graph
from workbench.project import load_project, save_project
from workbench.weights import save_weights


def provide_init_from(sample: Path, folder: Path) -> Path:
    """Copy ``sample`` into ``folder``; the project its ``training.init_from`` names comes too, with
    weights.  Returns the copy's path (the sample itself when it names none)."""
    doc: dict[str, Any] = json.loads(sample.read_text())
    source = doc.get("training", {}).get("init_from")
    if not source:
        return sample
    folder.mkdir(parents=True, exist_ok=True)
    copy = folder / sample.name
    shutil.copy(sample, copy)
    dependency = load_project(sample.parent / source)
    torch.manual_seed(0)
    weights = Path(source).with_suffix(".safetensors").name
    save_weights(compile_graph(dependency.graph).module, folder / weights)
    dependency.weights = weights
    save_project(dependency, folder / Path(source).name)
    return copy


def doc_with_init_from(doc: dict[str, Any], sample: Path, folder: Path) -> dict[str, Any]:
    """``doc`` (the sample's JSON) with ``training.init_from`` pointing at a provided copy (absolute:
    a project read from text has no folder of its own)."""
    source = doc.get("training", {}).get("init_from")
    if source:
        provide_init_from(sample, folder)
        doc["training"]["init_from"] = str(folder / Path(source).name)
    return doc
