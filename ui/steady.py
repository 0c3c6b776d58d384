"""Keep a graphics view's scene where it is while the widgets around it change size."""

from __future__ import annotations

from PySide6.QtCore import QObject, QTimer
from PySide6.QtWidgets import QGraphicsView

#: how long a hold lasts: the docks are laid out a few event-loop turns after they are asked to change
HOLD_MS = 600


class _Hold(QObject):
    """The view's own resize anchor, put back when the hold ends."""

    def __init__(self, view: QGraphicsView) -> None:
        super().__init__(view)
        self.setObjectName("holdStill")
        self.view = view
        self.anchor = view.resizeAnchor()
        self.timer = QTimer(self)
        self.timer.setSingleShot(True)
        self.timer.timeout.connect(self.release)
        view.setResizeAnchor(QGraphicsView.ViewportAnchor.NoAnchor)

    def release(self) -> None:
        self.view.setResizeAnchor(self.anchor)
        self.setParent(None)
        self.deleteLater()


def hold_still(view: QGraphicsView, ms: int = HOLD_MS) -> None:
    """For the next ``ms`` milliseconds a resize of ``view`` (a dock opening beside it) trims the
    view's bottom or right edge instead of re-centring the scene, so the node under the cursor
    stays under it.  Qt lays docks out later, in the event loop: hence a time window, not a scope.
    A second call while held extends the hold."""
    hold = view.findChild(_Hold, "holdStill")
    if hold is None:
        hold = _Hold(view)
    hold.timer.start(ms)
