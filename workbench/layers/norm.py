"""Further normalisation layers (batch, group, instance, local response, RMS)."""

from __future__ import annotations
