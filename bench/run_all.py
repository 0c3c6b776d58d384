"""Run every benchmark and print one table of measured values against targets.

Usage: ``python bench/run_all.py [--only core,gui] [--record]``.  ``--record``
appends the table, with the date and machine, to ``bench/RESULTS.md``.
"""

from __future__ import annotations

import argparse
import datetime
import importlib
import os
import platform
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
os.environ.setdefault("PYQTGRAPH_QT_LIB", "PySide6")

from bench.common import Row  # noqa: E402

SUITES = ["core", "gui", "training", "export", "families", "blocks", "scale", "diff", "explain", "cost", "import",
          "distributed", "compress", "privacy_federated",
          "sweep", "ssl"]


def machine() -> str:
    import torch

    return (f"{platform.node() or 'host'}: {os.cpu_count()} cores, {platform.machine()}, "
            f"Python {platform.python_version()}, torch {torch.__version__}")


def table(rows: list[Row]) -> str:
    lines = ["| issue | benchmark | measured | target | ratio to target | ok | note |", "|---|---|---|---|---|---|---|"]
    for r in rows:
        target = "-" if r.target is None else f"{'<=' if r.lower_is_better else '>='} {r.target:g} {r.unit}"
        ratio = "-" if not r.target else f"{r.value / r.target:.2f}"
        ok = {None: "-", True: "yes", False: "NO"}[r.ok]
        lines.append(f"| {r.issue} | {r.name} | {r.value:.4g} {r.unit} | {target} | {ratio} | {ok} | {r.note} |")
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--only", default="", help="comma-separated suites: " + ",".join(SUITES))
    parser.add_argument("--record", action="store_true", help="append the results to bench/RESULTS.md")
    args = parser.parse_args()
    wanted = [s for s in (args.only.split(",") if args.only else SUITES) if s]
    rows: list[Row] = []
    for suite in wanted:
        try:
            module = importlib.import_module(f"bench.bench_{suite}")
        except ModuleNotFoundError as exc:
            if exc.name == f"bench.bench_{suite}":
                print(f"(no benchmark suite {suite!r} yet)", file=sys.stderr)
                continue
            raise
        print(f"running {suite} ...", file=sys.stderr, flush=True)
        rows += module.run()
    text = table(rows)
    print(text)
    if args.record:
        stamp = datetime.datetime.now().strftime("%Y-%m-%d %H:%M")
        with open(ROOT / "bench" / "RESULTS.md", "a") as fh:
            fh.write(f"\n## {stamp} - {machine()}\n\nMedians; ratios measured side by side in one run.\n\n{text}\n")
    return 0 if all(r.ok is not False for r in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
