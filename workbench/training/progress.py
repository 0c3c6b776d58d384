"""A one-line progress display for terminals (the CLI's listener)."""

from __future__ import annotations

import sys
import time
from typing import Any, TextIO


def _fmt_time(seconds: float) -> str:
    seconds = int(max(0, seconds))
    return f"{seconds // 3600}:{seconds // 60 % 60:02d}:{seconds % 60:02d}"


class ProgressLine:
    """Redraws one status line (at most 10 times a second) and prints a line per epoch."""

    def __init__(self, stream: TextIO | None = None, interval: float = 0.1) -> None:
        self.stream = stream or sys.stderr
        self.interval = interval
        self.tty = hasattr(self.stream, "isatty") and self.stream.isatty()
        self._last = 0.0
        self._t0 = time.perf_counter()
        self.epochs = 0

    def __call__(self, e: dict[str, Any]) -> None:
        kind = e["type"]
        if kind == "start":
            self.epochs = e["epochs"]
            self._t0 = time.perf_counter()
            where = f"{e['device']} x {e['processes']} processes" if e.get("processes", 1) > 1 else e["device"]
            self._write(f"training on {where}: {e['train_samples']} training / {e['val_samples']} validation "
                        f"samples, {e['params']:,} parameters -> {e['run_dir']}\n")
        elif kind == "batch":
            now = time.perf_counter()
            if now - self._last < self.interval:
                return
            self._last = now
            p = e["progress"]
            eta = (now - self._t0) * (1 - p) / p if p > 0 else 0
            bar = "#" * int(p * 20) + "." * (20 - int(p * 20))
            line = (f"epoch {e['epoch']}/{self.epochs} [{bar}] {p * 100:5.1f}% step {e['step']} "
                    f"loss {e['loss']:.4f} lr {e['lr']:.2e} {e['samples_per_s']:,.0f} samples/s ETA {_fmt_time(eta)}")
            if self.tty:
                self._write("\r" + line.ljust(110))
        elif kind == "epoch":
            metrics = "  ".join(f"{k} {v:.4f}" for k, v in e.items()
                                if k not in ("type", "epoch", "step", "time", "lr") and isinstance(v, float))
            self._write(("\r" if self.tty else "") + f"epoch {e['epoch']}/{self.epochs}  {metrics}".ljust(110) + "\n")
        elif kind == "log":
            self._write(("\r" if self.tty else "") + e["message"] + "\n")
        elif kind == "done":
            s = e["summary"]
            self._write(f"{s['status']} after {s['epochs_done']} epoch(s), {_fmt_time(s['time_s'])}\n")

    def _write(self, text: str) -> None:
        self.stream.write(text)
        self.stream.flush()
