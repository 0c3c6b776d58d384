"""The ONNX converters and recognisers, one module per family; importing this package registers them."""

from ..registry import TARGETS
from . import (  # noqa: F401  (registration side effects)
    activation,
    attention,
    conv,
    dense,
    elementwise,
    modules,
    norm,
    patterns,
    pool,
    recurrent,
    select,
    shape,
)

__all__ = ["TARGETS"]
