"""The self-check's report: what was compared, how close, and the first node that differs."""

from __future__ import annotations

from dataclasses import dataclass, field

ATOL, RTOL = 1e-4, 1e-3
"""Tolerance: ``|ours - original| <= ATOL * max(1, max|original|) + RTOL * |original|``."""


@dataclass(frozen=True)
class Probe:
    """One comparison: its inputs, and the largest differences over every output."""

    label: str
    max_abs: float
    max_rel: float
    ok: bool
    problem: str = ""


@dataclass(frozen=True)
class Divergence:
    """The first ONNX node whose output the project does not reproduce."""

    onnx_node: str
    tensor: str
    layer: str
    probe: str
    max_abs: float
    problem: str = ""


@dataclass
class CheckReport:
    """What the self-check compared and found.

    Attributes:
        reference: what ran the original (onnxruntime, after an opset upgrade, or onnx.reference).
        probes: one per input setting.
        divergence: the first node that differs (when one does).
        notes: remarks (a batch size the model fixes...).
        skipped: why nothing could be compared ("" when the check ran).
    """

    reference: str = ""
    probes: list[Probe] = field(default_factory=list)
    divergence: Divergence | None = None
    notes: list[str] = field(default_factory=list)
    skipped: str = ""

    @property
    def ok(self) -> bool:
        return not self.skipped and bool(self.probes) and all(p.ok for p in self.probes)

    @property
    def max_abs(self) -> float:
        return max((p.max_abs for p in self.probes), default=0.0)

    def summary(self) -> str:
        """One line: why the check did not pass (or that it did)."""
        if self.skipped:
            return f"the import could not be checked: {self.skipped}"
        if self.ok:
            return f"the imported project matches the original (max abs diff {self.max_abs:.1e})"
        bad = next(p for p in self.probes if not p.ok) if self.probes else None
        where = ""
        if self.divergence is not None:
            d = self.divergence
            where = (f"; the first difference is at ONNX node {d.onnx_node} (imported as \"{d.layer}\"): "
                     f"{d.problem or f'max abs diff {d.max_abs:.3e}'}")
        size = f"{bad.problem or f'max abs diff {bad.max_abs:.3e}'} on {bad.label}" if bad is not None else ""
        return f"the imported project differs from the original ({size}){where}"

    def text(self) -> str:
        if self.skipped:
            return f"self-check not run: {self.skipped}"
        head = "matches the original" if self.ok else "DIFFERS from the original"
        lines = [f"self-check: the imported project {head} ({self.reference}; tolerance {ATOL:g} x max(1, |original|)"
                 f" + {RTOL:g} x |original|)"]
        for p in self.probes:
            verdict = "ok" if p.ok else f"MISMATCH{': ' + p.problem if p.problem else ''}"
            lines.append(f"  {p.label}: max abs diff {p.max_abs:.2e}, max rel diff {p.max_rel:.2e} - {verdict}")
        if self.divergence is not None:
            d = self.divergence
            lines.append(f"  first difference: ONNX node {d.onnx_node} (output {d.tensor!r}), imported as "
                         f"\"{d.layer}\": {d.problem or f'max abs diff {d.max_abs:.3e}'} ({d.probe})")
        lines += [f"  note: {n}" for n in self.notes]
        return "\n".join(lines)
