"""Text bound for a terminal carries no escape sequences.

Names and messages come from files (a project, an ONNX model); printed raw, an ESC byte in them
would drive the user's terminal (clear it, retitle it, fake output), and a bidirectional override
would make printed text read differently from what it is.  :class:`TerminalSafe` wraps a stream
and shows such characters as visible escapes (``\\x1b``, ``\\u202e``); line breaks and tabs pass.
"""

from __future__ import annotations

import re
from typing import Any, TextIO

# C0 controls but \t and \n, DEL, C1 controls, bidi embeddings/overrides/isolates and marks,
# line/paragraph separators, lone surrogates
_UNSAFE = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f\u061c\u200e\u200f\u2028\u2029\u202a-\u202e\u2066-\u2069"
                     "\ud800-\udfff]")


def _escape(match: re.Match[str]) -> str:
    code = ord(match.group())
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"


def terminal_safe(text: str) -> str:
    """``text`` with every character that could act on a terminal shown as an escape."""
    return _UNSAFE.sub(_escape, text)


class TerminalSafe:
    """A text stream wrapper whose ``write`` passes text through :func:`terminal_safe`."""

    def __init__(self, stream: TextIO) -> None:
        self._stream = stream

    def write(self, text: str) -> int:
        # a carriage return that starts a write is the progress line redrawing itself; anywhere
        # else it could hide what was printed before it on the line, so it is shown
        if text.startswith("\r"):
            return self._stream.write("\r" + terminal_safe(text[1:]))
        return self._stream.write(terminal_safe(text))

    def __getattr__(self, name: str) -> Any:  # flush, fileno, isatty, encoding...
        return getattr(self._stream, name)
