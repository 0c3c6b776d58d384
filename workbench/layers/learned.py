"""Learned tensors: a Parameter node (a class token, a position table, a layer scale) and a
per-channel scale and bias."""

from __future__ import annotations
