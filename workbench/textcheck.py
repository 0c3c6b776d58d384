"""Which text may be a name or a description.

A lone surrogate (``"\\ud800"``, which a JSON escape can produce) cannot be encoded,
so it would pass loading and crash saving, exporting or printing.  Control
characters (ESC, C1 codes) in a name would let a file drive the user's terminal
when the CLI prints it, and make names that look alike but differ.
"""

from __future__ import annotations

import re

_SURROGATE = re.compile("[\ud800-\udfff]")
_CONTROL = re.compile("[\x00-\x1f\x7f-\x9f]")
_CONTROL_MULTILINE = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f]")  # keeps \t, \n and \r (\r\n)


def text_problem(text: str, multiline: bool = False) -> str | None:
    """Why ``text`` cannot be a name (or, ``multiline``, a description), or None.

    Args:
        multiline: allow tabs and line breaks, \\n or \\r\\n (descriptions, docs).
    """
    bad = _SURROGATE.search(text)
    if bad:
        return f"contains a lone surrogate U+{ord(bad.group()):04X} at position {bad.start()} (not valid Unicode)"
    bad = (_CONTROL_MULTILINE if multiline else _CONTROL).search(text)
    if bad:
        return f"contains the control character U+{ord(bad.group()):04X} at position {bad.start()}"
    return None
