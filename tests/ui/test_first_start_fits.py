"""On a first start the window fits the screen it opens on (its default size is larger than a
1280x800 screen, which cut off the Inspector and the status bar); a saved geometry wins."""

from __future__ import annotations

from PySide6.QtCore import QRect

from ui.mainwindow import MainWindow


def test_a_first_start_fits_a_small_screen_and_a_saved_geometry_wins(window, qtbot) -> None:
    window.resize(1400, 860)  # the default size
    screen = QRect(0, 0, 1280, 800)
    window.fit_to_screen(screen)
    assert window.width() <= 1280 and window.height() <= 800
    assert screen.contains(window.frameGeometry())
    window.fit_to_screen(QRect(0, 0, 2560, 1440))  # a large screen: the default size stays
    assert (window.width(), window.height()) == (1280 - (window.frameGeometry().width() - window.width()),
                                                  800 - (window.frameGeometry().height() - window.height()))
    window.resize(1000, 700)
    window.close()  # saves the geometry
    again = MainWindow(ask=window.ask, prompt=window.prompt)
    qtbot.addWidget(again)
    restored = again.size()
    assert restored.height() == 700  # the saved size (Qt clamps it to the screen it restores on)
    again.fit_to_screen(QRect(0, 0, 640, 480))
    assert again.size() == restored  # the user's size, not the screen's
