"""Pooling layers: max and average over windows, adaptive (fixed output size) pooling."""

from __future__ import annotations
