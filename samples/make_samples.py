"""Writes the sample projects of ``workbench/samples.py`` into this folder.

Run ``python samples/make_samples.py``; ``tests/core/test_samples_and_schema.py`` checks that the
committed JSON files equal what the code produces.
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from workbench.samples import SAMPLES

HERE = Path(__file__).resolve().parent


def main() -> None:
    for file, make in SAMPLES.items():
        (HERE / file).write_text(make().to_json())
        print(f"wrote samples/{file}")


if __name__ == "__main__":
    main()
