"""A parameter kind spec.py does not have yet: a tuple of floats (per-dimension scale factors).

It belongs beside :class:`~workbench.layers.spec.IntTupleParam`; it lives here until spec.py's
owner moves it.  The inspector edits it as text (``2, 1.5``) and the schema documents it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, ClassVar

from .spec import Param, ParamValueError


def _number(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


@dataclass(frozen=True)
class FloatTupleParam(Param):
    """``min_length`` to ``max_length`` finite numbers; a bare number is a tuple of one.

    ``minimum`` bounds every element (exclusively when ``exclusive_minimum``), ``maximum`` too.
    Ints are accepted and stored as floats (``2`` -> ``(2.0,)``).
    """

    minimum: float | None = None
    maximum: float | None = None
    exclusive_minimum: bool = False
    min_length: int = 1
    max_length: int = 8
    kind: ClassVar[str] = "float_tuple"

    def validate(self, value: Any) -> tuple[float, ...]:
        if _number(value):
            value = (value,)
        if not isinstance(value, (list, tuple)) or not all(_number(v) for v in value):
            raise ParamValueError(f"expected {self._text()}, got {value!r}")
        if not self.min_length <= len(value) <= self.max_length:
            raise ParamValueError(f"expected {self._text()}, got {list(value)}")
        for v in value:
            low = self.minimum is not None and (v <= self.minimum if self.exclusive_minimum else v < self.minimum)
            if low or (self.maximum is not None and v > self.maximum):
                raise ParamValueError(f"expected {self._text()}, got {list(value)}")
        return tuple(float(v) for v in value)

    def _text(self) -> str:
        n = f"{self.min_length} to {self.max_length}" if self.min_length != self.max_length else str(self.min_length)
        bounds = []
        if self.minimum is not None:
            bounds.append(f"{'>' if self.exclusive_minimum else '>='} {self.minimum:g}")
        if self.maximum is not None:
            bounds.append(f"<= {self.maximum:g}")
        return f"{n} finite numbers" + (f" ({' and '.join(bounds)})" if bounds else "")

    def describe(self) -> dict[str, Any]:
        return {**super().describe(), "default": list(self.default), "minimum": self.minimum,
                "maximum": self.maximum, "exclusive_minimum": self.exclusive_minimum,
                "min_length": self.min_length, "max_length": self.max_length}
