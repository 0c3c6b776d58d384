"""What a compression job reports: measured values before and after, notes, and why a result was
refused.  Plain data (picklable, JSON-able), so the CLI prints it, the GUI's worker sends it and
a test reads it alike."""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any

from ..errors import WorkbenchError


class CompressError(WorkbenchError):
    """A compression job cannot run (bad settings, a model it cannot handle); nothing was written."""


class Cancelled(CompressError):
    """The user stopped the job; nothing was written."""


class ResultRefused(CompressError):
    """The compressed model breaks the user's limit (accuracy drop); nothing was written.

    Attributes:
        report: what was measured, with ``refused`` saying why.
    """

    def __init__(self, report: CompressReport) -> None:
        super().__init__(f"{report.refused}\n{report.text()}")
        self.report = report


@dataclass(frozen=True)
class Progress:
    """A step of a job: ``phase`` (export, calibrate, quantize, evaluate, measure, prune, finetune,
    write), a sentence, and the share of the job done when it is known."""

    phase: str
    message: str
    fraction: float | None = None


ProgressFn = Callable[[Progress], None]
StopFn = Callable[[], bool]


def no_progress(_p: Progress) -> None:
    """The default listener: progress goes nowhere."""


def never_stop() -> bool:
    return False


@dataclass
class Measure:
    """One measured quantity before and after.

    ``change`` is ``after - before`` for ``kind="diff"`` (accuracy in points) and ``after / before``
    for ``kind="ratio"`` (size, latency, MACs).
    """

    name: str
    unit: str
    before: float | None
    after: float | None
    kind: str = "ratio"
    note: str = ""
    ratio: float | None = None
    """A measured ratio that replaces ``after / before`` (latency: the median of per-round ratios)."""
    spread: list[float] | None = None
    """The ratio's interquartile range over the rounds, when it was measured in rounds."""

    @property
    def change(self) -> float | None:
        if self.kind == "ratio" and self.ratio is not None:
            return self.ratio
        if self.before is None or self.after is None:
            return None
        if self.kind == "diff":
            return self.after - self.before
        return self.after / self.before if self.before else None

    def cells(self) -> list[str]:
        """The row as text: measure, before, after, change, note."""
        change = self.change
        if change is None:
            text = "-"
        elif self.kind == "diff":
            text = f"{change:+.2f} {'points' if self.unit == '%' else self.unit}"
        else:
            text = f"{change:.3f}x"
        return [self.name, _fmt(self.before, self.unit), _fmt(self.after, self.unit), text, self.note]


def _fmt(value: float | None, unit: str) -> str:
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return "-"
    if unit == "%":
        return f"{value:.2f} %"
    if unit == "bytes":
        return f"{value:,.0f} B"
    if unit == "ms":
        return f"{value:.3f} ms"
    if unit in ("MACs", "params", "weights"):
        return f"{value:,.0f}"
    return f"{value:.4g} {unit}".rstrip()


@dataclass
class CompressReport:
    """The outcome of a compression job.

    Attributes:
        job: what was done ("static int8 quantization", "structured channel pruning"...).
        outputs: the files written (empty when refused or cancelled).
        rows: measured quantities before and after.
        nodes: a per-node table (channels kept, sparsity...), each row a dict of the same keys.
        notes: facts the user should know (what was detected, what was not claimed).
        refused: why the result was not written, or None.
    """

    job: str
    outputs: list[str] = field(default_factory=list)
    rows: list[Measure] = field(default_factory=list)
    nodes: list[dict[str, Any]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    refused: str | None = None

    def row(self, name: str) -> Measure:
        """The measure called ``name``.

        Raises:
            KeyError: no such row.
        """
        for r in self.rows:
            if r.name == name:
                return r
        raise KeyError(name)

    def text(self) -> str:
        """A plain-text table for the terminal."""
        lines = [self.job]
        table = [["measure", "before", "after", "change", "note"], *[r.cells() for r in self.rows]]
        widths = [max(len(r[i]) for r in table) for i in range(5)]
        for j, cells in enumerate(table):
            lines.append("  " + "  ".join(c.ljust(w) for c, w in zip(cells, widths, strict=True)).rstrip())
            if j == 0:
                lines.append("  " + "  ".join("-" * w for w in widths))
        if self.nodes:
            keys = list(self.nodes[0])
            rows = [keys, *[[str(n.get(k, "")) for k in keys] for n in self.nodes]]
            w2 = [max(len(r[i]) for r in rows) for i in range(len(keys))]
            lines.append("")
            for j, cells in enumerate(rows):
                lines.append("  " + "  ".join(c.ljust(w) for c, w in zip(cells, w2, strict=True)).rstrip())
                if j == 0:
                    lines.append("  " + "  ".join("-" * w for w in w2))
        lines += [f"note: {n}" for n in self.notes]
        lines += [f"wrote {o}" for o in self.outputs]
        if self.refused:
            lines.append(f"refused: {self.refused}")
        return "\n".join(lines)

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        for r, d in zip(self.rows, out["rows"], strict=True):
            d["change"] = r.change
        return out

    @classmethod
    def from_dict(cls, doc: dict[str, Any]) -> CompressReport:
        rows = [Measure(**{k: v for k, v in r.items() if k != "change"}) for r in doc.get("rows", [])]
        return cls(doc["job"], list(doc.get("outputs", [])), rows, list(doc.get("nodes", [])),
                   list(doc.get("notes", [])), doc.get("refused"))
