"""The layer catalogue: one declaration per layer type.

Importing this package registers every layer; ``REGISTRY`` maps type ids to
:class:`LayerSpec`.  Add a layer by declaring it in one of the modules below;
the palette, inspector, shape inference, compiler and tests pick it up.
"""

from __future__ import annotations

from . import (  # noqa: F401  (registration side effects)
    conv,
    core,
    learned,
    math_ops,
    merge,
    norm,
    norm_act,
    pooling,
    reductions,
    sequence,
    tensor_ops,
    transformer,
)
from .spec import (
    REGISTRY,
    Dim,
    Example,
    LayerShapeError,
    LayerSpec,
    ModuleCall,
    Param,
    ParamValueError,
    Shape,
    get_spec,
    register,
)

CATEGORY_ORDER = (
    "Input/Output",
    "Dense",
    "Convolution",
    "Pooling",
    "Normalization",
    "Activation",
    "Regularization",
    "Reshape",
    "Tensor",
    "Merge",
    "Math",
    "Reduction",
    "Learned",
    "Embedding",
    "Recurrent",
    "Attention",
)


def by_category() -> dict[str, list[LayerSpec]]:
    """Layer specs grouped by category, in palette order."""
    groups: dict[str, list[LayerSpec]] = {c: [] for c in CATEGORY_ORDER}
    for spec in REGISTRY.values():
        groups.setdefault(spec.category, []).append(spec)
    return {c: sorted(v, key=lambda s: s.name.lower()) for c, v in groups.items() if v}


__all__ = [
    "CATEGORY_ORDER",
    "REGISTRY",
    "Dim",
    "Example",
    "LayerShapeError",
    "LayerSpec",
    "ModuleCall",
    "Param",
    "ParamValueError",
    "Shape",
    "by_category",
    "get_spec",
    "register",
]
