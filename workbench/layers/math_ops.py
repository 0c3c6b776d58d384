"""Element-wise arithmetic: binary operations on two tensors, unary functions, and operations
with a constant operand."""

from __future__ import annotations
