"""Datasets behind one small interface.

Every source returns a :class:`Samples` (inputs, targets and what they mean);
:func:`load_data` splits it, fits it to the graph's Input and reports a shape
mismatch before any training step, naming both shapes.
"""

from . import sources  # noqa: F401  (registers the sources; base.py stays below them)
from .base import DataBundle, DataError, Samples, fit_to_input, load_data, load_samples, preview

__all__ = ["DataBundle", "DataError", "Samples", "fit_to_input", "load_data", "load_samples", "preview"]
