"""The mouse wheel belongs to the panel under it, not to a field the pointer passes over.

A spin box, combo box or slider changes with the wheel only once the user has put
the focus in it (clicked or tabbed into it); over any other such widget the wheel
scrolls the panel around it.  Qt alone does the opposite: an unfocused spin box
swallows the wheel and changes its value while the user scrolls the form.
"""

from __future__ import annotations

from PySide6.QtCore import QEvent, QObject, QPointF, Qt
from PySide6.QtGui import QWheelEvent
from PySide6.QtWidgets import QAbstractScrollArea, QApplication, QWidget


def scroll_area_for(widget: QWidget, vertical: bool = True) -> QAbstractScrollArea | None:
    """The nearest enclosing scroll area (not ``widget`` itself) that can scroll that way."""
    parent = widget.parentWidget()
    while parent is not None:
        if isinstance(parent, QAbstractScrollArea):
            bar = parent.verticalScrollBar() if vertical else parent.horizontalScrollBar()
            if bar.maximum() > bar.minimum():
                return parent
        parent = parent.parentWidget()
    return None


def forward_wheel(widget: QWidget, event: QWheelEvent) -> None:
    """Give a wheel event over ``widget`` to the panel that scrolls around it (or to nobody).

    The event is re-sent rather than ignored: Qt propagates only spontaneous wheel events
    to parents, and an ignored event could still reach a parent that changes a value.
    """
    delta = event.angleDelta()
    area = scroll_area_for(widget, vertical=abs(delta.y()) >= abs(delta.x()))
    if area is None:
        event.accept()  # nothing to scroll: the wheel does nothing here
        return
    viewport = area.viewport()
    pos = QPointF(viewport.mapFrom(widget, event.position().toPoint()))
    copy = QWheelEvent(pos, event.globalPosition(), event.pixelDelta(), delta, event.buttons(), event.modifiers(),
                       event.phase(), event.inverted(), event.source())
    QApplication.sendEvent(viewport, copy)
    event.accept()


class _WheelGuard(QObject):
    """Event filter: the wheel over its (unfocused) widget scrolls the panel instead."""

    def eventFilter(self, watched: QObject, event: QEvent) -> bool:
        if event.type() == QEvent.Type.Wheel and isinstance(watched, QWidget) and not watched.hasFocus():
            forward_wheel(watched, event)  # type: ignore[arg-type]
            return True
        return False


def guard_wheel(*widgets: QWidget) -> None:
    """Let the wheel change these widgets only while they have the focus.

    The focus policy becomes ``StrongFocus`` (click or Tab), so scrolling over a widget
    never gives it the focus either.  The filter is a child of its widget and dies with it.
    """
    for w in widgets:
        w.setFocusPolicy(Qt.FocusPolicy.StrongFocus)
        w.installEventFilter(_WheelGuard(w))
