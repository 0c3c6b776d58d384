"""Parameter editors: one table (:data:`EDITORS`) maps a parameter kind to its editor.

The inspector and the data and training set-up forms build their fields here.

A typed field (numbers, tuples, shapes, text) stores only what the user finished
typing: it commits on Enter or when the focus leaves it, checks as you type (the
reason shows under the field and nothing is stored while it is invalid), and
Escape puts back the stored value.  A number shows exactly what was stored
(``1e-4`` stays ``1e-4``; ``0.00005`` is stored as ``5e-05``, not rounded), and
ints have no size limit.  Arrow buttons, Up/Down and the wheel (once the field
has the focus) step a number and commit at once; the steps of one gesture merge
into one undo step.  Check boxes and lists commit on each change.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from decimal import Decimal, InvalidOperation
from typing import Any

from PySide6.QtCore import QEvent, QObject, Qt, Signal
from PySide6.QtGui import QColor, QKeyEvent, QPainter, QPaintEvent, QPen, QWheelEvent
from PySide6.QtWidgets import (
    QAbstractSpinBox,
    QApplication,
    QCheckBox,
    QComboBox,
    QLabel,
    QLineEdit,
    QVBoxLayout,
    QWidget,
)

from workbench.layers.spec import Param, ParamValueError

from .wheel import forward_wheel, guard_wheel

ERROR_COLOR = "#d32f2f"


class ParamEditor(QWidget):
    """Wraps one editor widget for one parameter.

    Signals:
        committed(object, bool): a validated value the user chose, and whether it may merge
            with the previous change of this field into one undo step (steps of one gesture).
    """

    committed = Signal(object, bool)

    def __init__(self, param: Param, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.param = param
        self.stored: Any = param.default
        """The value the project holds (what Escape goes back to)."""
        self.mixed = False
        """Several selected nodes hold different values."""
        self._setting = False
        self.error = QLabel(self)
        self.error.setStyleSheet(f"color: {ERROR_COLOR}; font-size: 11px;")
        self.error.setWordWrap(True)
        self.error.hide()
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.setSpacing(1)
        self.widget = self.build()
        self.widget.setToolTip(param.doc)
        layout.addWidget(self.widget)
        layout.addWidget(self.error)

    def build(self) -> QWidget:  # overridden per kind
        raise TypeError(self.param.kind)

    def _show(self, value: Any, mixed: bool) -> None:  # overridden per kind
        raise TypeError(self.param.kind)

    def set_value(self, value: Any, mixed: bool = False) -> None:
        """Show the stored value (dropping anything typed and not committed)."""
        self.stored, self.mixed = value, mixed
        self._setting = True
        try:
            self._show(value, mixed)
        finally:
            self._setting = False
        self.show_error("")

    def sync(self, value: Any, mixed: bool = False) -> None:
        """Follow the stored value after an edit, undo or redo (typed fields keep what is being typed)."""
        self.set_value(value, mixed)

    def commit(self) -> bool:
        """Store what the field holds, if it changed; False when it is invalid (the reason is shown)."""
        return True  # check boxes and lists commit as they change

    def show_error(self, text: str) -> None:
        """Explain why the field's content is not stored ("" clears)."""
        self.error.setText(text)
        self.error.setVisible(bool(text))
        self.widget.setProperty("invalid", bool(text))
        if isinstance(self.widget, NumberBox):
            self.widget.update()  # it paints its own red frame: a style sheet would break its arrows
        else:
            self.widget.setStyleSheet(f"border: 1px solid {ERROR_COLOR};" if text else "")

    def _offer(self, raw: Any, merge: bool = False) -> bool:
        """Validate and emit ``committed`` when the value differs from the stored one."""
        if self._setting:
            return False
        try:
            value = self.param.validate(raw)
        except ParamValueError as exc:
            self.show_error(str(exc))
            return False
        self.show_error("")
        if self.mixed or value != self.stored:
            self.committed.emit(value, merge)
        return True


class TypedEditor(ParamEditor):
    """A field the user types into: committed on Enter or focus-out, reverted by Escape."""

    _typed = False  # text typed and not committed yet

    def __init__(self, param: Param, parent: QWidget | None = None) -> None:
        super().__init__(param, parent)
        self.line().textEdited.connect(self._edited)
        self.widget.installEventFilter(self)

    def line(self) -> QLineEdit:
        """The line edit the user types into."""
        w = self.widget
        return w.lineEdit() if isinstance(w, QAbstractSpinBox) else w  # type: ignore[return-value]

    def text(self) -> str:
        return self.line().text()

    def parse(self, text: str) -> Any:
        """Text to a raw value for the declaration to validate (ParamValueError: not of this kind)."""
        return text

    def format(self, value: Any) -> str:
        return str(value)

    def value_of(self, text: str) -> Any:
        """The validated value ``text`` stands for (ParamValueError with the reason)."""
        return self.param.validate(self.parse(text))

    def _show(self, value: Any, mixed: bool) -> None:
        line = self.line()
        line.setText("" if mixed else self.format(value))
        line.setPlaceholderText("(several values)" if mixed else "")
        self._typed = False

    def editing(self) -> bool:
        """The user is typing here (text not committed, or refused and still being fixed)."""
        return self.widget.hasFocus() and (self._typed or self.error.isVisible())

    def _means(self, value: Any) -> bool:
        try:
            return self.value_of(self.text()) == value
        except ParamValueError:
            return False

    def sync(self, value: Any, mixed: bool = False) -> None:
        changed = (value, mixed) != (self.stored, self.mixed)
        if self.editing() or (self.error.isVisible() and not changed):
            # what the user is typing stays, and so does refused input with its reason (until this
            # field's own value changes, by undo or redo): an edit elsewhere must not wipe it
            self.stored, self.mixed = value, mixed
            return
        if not mixed and not self.mixed and self._means(value) and not self.error.isVisible():
            self.stored = value  # already shown, as the user typed it (1e-4 stays 1e-4)
            return
        self.set_value(value, mixed)

    def _edited(self, text: str) -> None:
        """Check as you type: the reason shows at once, nothing is stored."""
        self._typed = True
        if self.mixed and not text.strip():
            self.show_error("")
            return
        try:
            self.value_of(text)
        except ParamValueError as exc:
            self.show_error(str(exc))
        else:
            self.show_error("")

    def commit(self) -> bool:
        text = self.text()
        if self.mixed and not text.strip():
            return True  # nothing typed over "(several values)"
        try:
            value = self.value_of(text)
        except ParamValueError as exc:
            self.show_error(str(exc))
            return False
        self._typed = False
        self.show_error("")
        if self.mixed or value != self.stored:
            self.committed.emit(value, False)
        return True

    def revert(self) -> None:
        """Escape: back to the stored value."""
        self.set_value(self.stored, self.mixed)
        self.line().selectAll()

    def eventFilter(self, watched: QObject, event: QEvent) -> bool:
        if watched is self.widget and event.type() in (QEvent.Type.ShortcutOverride, QEvent.Type.KeyPress):
            assert isinstance(event, QKeyEvent)
            if event.key() == Qt.Key.Key_Escape and (self._typed or self.error.isVisible()):
                if event.type() == QEvent.Type.ShortcutOverride:
                    event.accept()  # Escape is ours while there is something to revert
                else:
                    self.revert()
                return True
        return super().eventFilter(watched, event)


class NumberBox(QAbstractSpinBox):
    """A spin box whose text is the truth: no rounding, no size limit, any spelling Python reads
    (``1e-4``, ``0.00005``, ``12_000``).  Steps change the last digit typed (``0.001`` -> ``0.002``).

    Signals:
        stepped(): an arrow, Up/Down, Page Up/Down or wheel step changed the text.
    """

    stepped = Signal()

    def __init__(self, integer: bool, minimum: float | None, maximum: float | None,
                 parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.integer = integer
        self.minimum = None if minimum is None else Decimal(str(minimum))
        self.maximum = None if maximum is None else Decimal(str(maximum))
        self.setFocusPolicy(Qt.FocusPolicy.StrongFocus)  # the wheel never takes the focus
        self.setAccelerated(True)

    def number(self) -> Decimal | None:
        try:
            d = Decimal(self.text().strip())
        except InvalidOperation:
            return None
        return d if d.is_finite() else None

    def stepEnabled(self) -> QAbstractSpinBox.StepEnabledFlag:
        F = QAbstractSpinBox.StepEnabledFlag
        d = self.number()
        flags = F.StepNone
        if d is None or self.isReadOnly():
            return flags
        if self.maximum is None or d < self.maximum:
            flags |= F.StepUpEnabled
        if self.minimum is None or d > self.minimum:
            flags |= F.StepDownEnabled
        return flags

    def stepBy(self, steps: int) -> None:
        d = self.number()
        if d is None:
            return
        exponent = d.as_tuple().exponent
        unit = Decimal(1) if self.integer or not isinstance(exponent, int) else Decimal(1).scaleb(exponent)
        new = d + steps * unit
        if self.maximum is not None and new > self.maximum:
            new = self.maximum
        if self.minimum is not None and new < self.minimum:
            new = self.minimum
        self.lineEdit().setText(str(int(new)) if self.integer else str(new))
        self.stepped.emit()

    def wheelEvent(self, event: QWheelEvent) -> None:
        if not self.hasFocus():
            forward_wheel(self, event)  # over an unfocused field the wheel scrolls the panel
            return
        super().wheelEvent(event)

    def paintEvent(self, event: QPaintEvent) -> None:
        super().paintEvent(event)
        if self.property("invalid"):
            painter = QPainter(self)
            painter.setPen(QPen(QColor(ERROR_COLOR), 1))
            painter.drawRect(self.rect().adjusted(0, 0, -1, -1))
            painter.end()


class NumberEditor(TypedEditor):
    """Int and float parameters (``kind`` "int" or "float")."""

    def build(self) -> QWidget:
        box = NumberBox(self.param.kind == "int", getattr(self.param, "minimum", None),
                        getattr(self.param, "maximum", None), self)
        box.editingFinished.connect(self.commit)
        box.stepped.connect(self._step)
        return box

    def parse(self, text: str) -> Any:
        t = text.strip()
        if not t:
            raise ParamValueError("enter a number")
        try:
            number = Decimal(t)  # reads 1e-4, 0.00005 and 12_000 exactly
        except InvalidOperation:
            hint = " (use a point for decimals)" if "," in t else ""
            raise ParamValueError(f"not a number: {t!r}{hint}") from None
        if self.param.kind == "int" and number.is_finite() and number == number.to_integral_value():
            return int(number)  # exact, however large (a float would round 12345678901234567890)
        return float(number)

    def format(self, value: Any) -> str:
        return str(value) if self.param.kind == "int" else repr(float(value))

    def _step(self) -> None:
        if self._setting:
            return
        self._typed = False
        try:
            raw = self.parse(self.text())
        except ParamValueError as exc:
            self.show_error(str(exc))
            return
        self._offer(raw, merge=True)


class BoolEditor(ParamEditor):
    def build(self) -> QWidget:
        w = QCheckBox(self)
        w.toggled.connect(self._offer)
        return w

    def _show(self, value: Any, mixed: bool) -> None:
        self.widget.setChecked(bool(value))  # type: ignore[attr-defined]


class ChoiceEditor(ParamEditor):
    def build(self) -> QWidget:
        w = QComboBox(self)
        w.addItems(list(self.param.choices))  # type: ignore[attr-defined]
        w.currentTextChanged.connect(self._offer)
        guard_wheel(w)
        return w

    def _show(self, value: Any, mixed: bool) -> None:
        self.widget.setCurrentText(str(value))  # type: ignore[attr-defined]


class TextEditor(TypedEditor):
    """Free text, int and float tuples (``3, 3``, ``2, 1.5``) and shapes (``T, 64``)."""

    def build(self) -> QWidget:
        w = QLineEdit(self)
        w.editingFinished.connect(self.commit)
        return w

    def parse(self, text: str) -> Any:
        if self.param.kind == "str":
            return text
        # "3, 3", "[3, 3]", "3x3" and "T, 64" are all accepted
        parts = [p for p in re.split(r"[,\s\[\]]+|(?<=\d)x(?=\d)", text) if p]
        out: list[Any] = []
        for p in parts:
            try:
                out.append(int(p))
            except ValueError:
                out.append(self._float(p) if self.param.kind == "float_tuple" else p)
        return out

    @staticmethod
    def _float(text: str) -> Any:
        try:
            return float(Decimal(text))  # read as NumberEditor reads numbers (1e-4, 1.5, 12_000)
        except InvalidOperation:
            return text

    def format(self, value: Any) -> str:
        return ", ".join(str(v) for v in value) if isinstance(value, (tuple, list)) else str(value)


EDITORS: dict[str, Callable[[Param, QWidget], ParamEditor]] = {
    "int": NumberEditor,
    "float": NumberEditor,
    "bool": BoolEditor,
    "choice": ChoiceEditor,
    "int_tuple": TextEditor,
    "float_tuple": TextEditor,
    "shape": TextEditor,
    "str": TextEditor,
}


def commit_focused_field() -> bool:
    """Commit what the user typed in the focused field (before Save, Train, Open or Quit act on
    the project); False when it is invalid (it then stays with its reason, nothing stored)."""
    w = QApplication.focusWidget()
    while w is not None and not isinstance(w, ParamEditor):
        w = w.parentWidget()
    return w.commit() if w is not None else True
