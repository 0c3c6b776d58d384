"""Application entry point: ``workbench gui [PROJECT]``."""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence

os.environ.setdefault("PYQTGRAPH_QT_LIB", "PySide6")  # pyqtgraph must not pick another binding

from PySide6.QtCore import QTimer
from PySide6.QtWidgets import QApplication

from .mainwindow import APP_NAME, MainWindow
from .style import apply_theme, icon


def create_app(argv: Sequence[str] = ()) -> QApplication:
    app = QApplication.instance() or QApplication([sys.argv[0], *argv])
    app.setOrganizationName("NeuralWorkbench")
    app.setApplicationName(APP_NAME)
    app.setWindowIcon(icon("app"))
    return app  # type: ignore[return-value]


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="workbench gui")
    parser.add_argument("project", nargs="?")
    args = parser.parse_args(list(argv) if argv is not None else sys.argv[1:])
    app = create_app()
    window = MainWindow()
    apply_theme(app, str(window.settings.value("theme", "system")))
    window.set_theme(str(window.settings.value("theme", "system")))
    if args.project:
        window.open_path(args.project, ask_save=False)
    else:
        window.offer_recovery()
    window.fit_to_screen()
    window.show()
    window.view.fit()
    # and again once the window system has sized the window and the docks have taken their first-run
    # sizes (under X that comes after show): a fit to the provisional canvas opened at 9%
    QTimer.singleShot(400, window.view.fit)
    return app.exec()


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
