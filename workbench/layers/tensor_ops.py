"""Tensor operations: padding, pixel shuffles, splitting, slicing, selecting, squeezing, transposing,
expanding and repeating, and reductions."""

from __future__ import annotations
