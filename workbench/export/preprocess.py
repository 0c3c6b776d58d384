"""Input preprocessing built into exported models.

When the data layer transformed the features before training (a CSV's columns are
standardised with the training split's mean and std), the exported ONNX model and the
exported PyTorch source do the same as their first operation, so they take raw
features, like the file they came from, and predict what the trained model predicts.
The mean and std become buffers of the module (``input_mean``, ``input_std``) and
two operations at the top of its fx graph, so ``forward``'s code, the ONNX graph and
the weights file all carry them.
"""

from __future__ import annotations

import operator

from ..compiler import Compiled
from ..data import DataError
from ..data.base import Standardize, input_preprocessing
from ..project import Project
from .errors import ExportError


class PreprocessingError(ExportError):
    """The preprocessing the model was trained with cannot be recovered (the data cannot be read)."""


def input_standardization(project: Project, compiled: Compiled) -> Standardize | None:
    """The standardisation training applied to the Input, or None.

    Raises:
        PreprocessingError: the dataset standardises its features but cannot be loaded to compute them.
    """
    if len(compiled.inputs) != 1:
        return None
    try:
        return input_preprocessing(project.data, compiled.inputs[0].shape[1:])
    except DataError as exc:
        raise PreprocessingError(f"the model was trained on standardised features, and the export must "
                                 f"standardise its input the same way, but the data cannot be read: {exc}") from None


def _free_name(compiled: Compiled, base: str) -> str:
    name, i = base, 2
    while hasattr(compiled.module, name):
        name, i = f"{base}_{i}", i + 1
    return name


def with_input_standardization(compiled: Compiled, pre: Standardize) -> Compiled:
    """``compiled`` with ``(x - input_mean) / input_std`` as the first operation of ``forward`` (in place)."""
    gm = compiled.module
    mean_name, std_name = _free_name(compiled, "input_mean"), _free_name(compiled, "input_std")
    gm.register_buffer(mean_name, pre.mean.detach().clone().float())
    gm.register_buffer(std_name, pre.std.detach().clone().float())
    graph = gm.graph
    placeholder = next(n for n in graph.nodes if n.op == "placeholder")
    with graph.inserting_after(placeholder):
        mean = graph.get_attr(mean_name)
    with graph.inserting_after(mean):
        std = graph.get_attr(std_name)
    with graph.inserting_after(std):
        centred = graph.call_function(operator.sub, (placeholder, mean))
    with graph.inserting_after(centred):
        scaled = graph.call_function(operator.truediv, (centred, std))
    placeholder.replace_all_uses_with(scaled, delete_user_cb=lambda user: user is not centred)
    graph.lint()
    gm.recompile()
    return compiled


def describe(pre: Standardize) -> str:
    """One line for an export report."""
    return (f"the model standardises its input ((x - input_mean) / input_std, fitted on {pre.source}): "
            "give it raw features")
