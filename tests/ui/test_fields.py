"""Fields store what the user typed, and only that: driven with real keys, clicks and wheel events.

Numbers commit on Enter or when the focus leaves, are stored exactly (no 6-decimal rounding, no
32-bit limit), show invalid input with its reason and store nothing then; Escape reverts.  The
wheel changes a field only once it has the focus; over anything else it scrolls the panel, and it
never switches a plot's auto-range off by passing over it."""

from __future__ import annotations

from typing import Any

from PySide6.QtCore import QPoint, QPointF, Qt
from PySide6.QtGui import QWheelEvent
from PySide6.QtTest import QTest
from PySide6.QtWidgets import QApplication, QWidget

from tests.ui.conftest import CNN

LEFT, NO, CTRL = Qt.MouseButton.LeftButton, Qt.KeyboardModifier.NoModifier, Qt.KeyboardModifier.ControlModifier


def field(window, section: str, key: str) -> Any:
    """A field of the set-up panel (brought to the front)."""
    window.setup_dock.show()
    window.setup_dock.raise_()
    form = window.setup.training_form if section == "training" else window.setup.data_form
    return form.editors[key]


def click_into(widget: QWidget) -> None:
    QTest.mouseClick(widget, LEFT, NO, widget.rect().center())
    assert widget.hasFocus()


def type_text(widget: QWidget, text: str, enter: bool = True) -> None:
    """Click into the field, select all, type ``text`` (and press Enter)."""
    click_into(widget)
    QTest.keyClick(widget, Qt.Key.Key_A, CTRL)
    QTest.keyClicks(widget, text)
    if enter:
        QTest.keyClick(widget, Qt.Key.Key_Return)


def auto_ranging(plot: Any) -> bool:
    return all(plot.getPlotItem().getViewBox().autoRangeEnabled())


def wheel(widget: QWidget, notches: int = -1) -> None:
    """One wheel turn over the middle of ``widget`` (negative: towards the user, scrolls down)."""
    pos = QPointF(widget.rect().center())
    event = QWheelEvent(pos, QPointF(widget.mapToGlobal(pos.toPoint())), QPoint(), QPoint(0, 120 * notches),
                        Qt.MouseButton.NoButton, NO, Qt.ScrollPhase.NoScrollPhase, False)
    QApplication.sendEvent(widget, event)


# ---------------------------------------------------------------- 1. typed numbers


def test_the_learning_rate_stores_exactly_what_was_typed_one_undo_step_per_edit(window) -> None:
    training, stack = window.doc.project.training, window.doc.undo_stack
    lr = field(window, "training", "lr")
    count = stack.count()
    type_text(lr.widget, "1e-4")
    assert training["lr"] == 0.0001
    assert lr.widget.text() == "1e-4"  # shown as typed, not rounded to 0.000100
    assert stack.count() == count + 1 and stack.undoText() == "Set training lr"
    type_text(lr.widget, "0.00005")
    assert training["lr"] == 5e-05 and lr.widget.text() == "0.00005"
    assert stack.count() == count + 2  # a second edit of the same field is a second step
    QTest.keyClick(lr.widget, Qt.Key.Key_Tab)  # leaving it changes nothing more
    type_text(lr.widget, "5e-5")  # the same value, spelled otherwise: no step
    assert stack.count() == count + 2
    stack.undo()
    assert training["lr"] == 0.0001 and lr.widget.text() == "0.0001"
    stack.undo()
    assert training["lr"] == 0.001 and lr.widget.text() == "0.001"


def test_focus_out_commits_escape_reverts_and_large_ints_are_exact(window) -> None:
    data, training, stack = window.doc.project.data, window.doc.project.training, window.doc.undo_stack
    epochs = field(window, "training", "epochs")
    type_text(epochs.widget, "7", enter=False)
    assert training["epochs"] == 10  # typed, not stored
    QTest.keyClick(epochs.widget, Qt.Key.Key_Tab)  # the focus leaves: stored
    assert training["epochs"] == 7 and not epochs.widget.hasFocus()
    count = stack.count()
    type_text(epochs.widget, "99", enter=False)
    QTest.keyClick(epochs.widget, Qt.Key.Key_Escape)
    assert epochs.widget.text() == "7" and training["epochs"] == 7
    QTest.keyClick(epochs.widget, Qt.Key.Key_Tab)
    assert training["epochs"] == 7 and stack.count() == count
    # ints beyond a 32-bit spin box (2,147,483,647) are stored exactly, up to the declared maximum
    seed = field(window, "data", "seed")
    big = seed.param.maximum or 12345678901234567890
    assert big > 2**31 - 1
    type_text(seed.widget, str(big))
    assert data["seed"] == big and seed.widget.text() == str(big)
    type_text(seed.widget, "1e3")
    assert data["seed"] == 1000 and isinstance(data["seed"], int)


def test_invalid_input_shows_the_reason_and_stores_nothing(window) -> None:
    training, stack = window.doc.project.training, window.doc.undo_stack
    lr = field(window, "training", "lr")
    count = stack.count()
    type_text(lr.widget, "abc")
    assert lr.error.isVisibleTo(window) and "not a number: 'abc'" in lr.error.text()
    assert training["lr"] == 0.001 and stack.count() == count
    QTest.keyClick(lr.widget, Qt.Key.Key_Tab)  # leaving an invalid field stores nothing either
    assert training["lr"] == 0.001 and lr.widget.text() == "abc" and lr.error.isVisibleTo(window)
    type_text(lr.widget, "20")
    assert "expected a number in [0.0, 10.0], got 20.0" in lr.error.text()
    assert training["lr"] == 0.001 and stack.count() == count
    epochs = field(window, "training", "epochs")
    type_text(epochs.widget, "2.5")
    assert "expected an int in [1, " in epochs.error.text() and "got 2.5" in epochs.error.text()
    assert training["epochs"] == 10
    type_text(epochs.widget, "12")  # fixing it stores it and clears the reason
    assert training["epochs"] == 12 and not epochs.error.isVisibleTo(window)
    assert stack.count() == count + 1
    # an edit elsewhere leaves the refused input and its reason in place
    assert lr.widget.text() == "20" and lr.error.isVisibleTo(window)
    click_into(lr.widget)
    QTest.keyClick(lr.widget, Qt.Key.Key_Escape)  # back to the stored value
    assert lr.widget.text() == "0.001" and not lr.error.isVisibleTo(window)


def test_the_inspector_stores_a_typed_number_on_enter_as_one_step(window) -> None:
    window.open_path(CNN)
    g, stack = window.doc.graph, window.doc.undo_stack
    conv = g.by_name("conv1").id
    window.scene.select_nodes([conv])
    editor = window.inspector.editors["out_channels"]
    count = stack.count()
    type_text(editor.widget, "128", enter=False)
    assert g.nodes[conv].params["out_channels"] == 16  # no intermediate 1 or 12 stored
    QTest.keyClick(editor.widget, Qt.Key.Key_Return)
    assert g.nodes[conv].params["out_channels"] == 128 and stack.count() == count + 1
    assert window.scene.nodes[conv].shape_text == "[N, 128, 8, 8]"
    type_text(editor.widget, "0")
    assert "got 0" in editor.error.text() and g.nodes[conv].params["out_channels"] == 128


def test_arrow_steps_store_at_once_and_one_gesture_is_one_undo_step(window) -> None:
    training, stack = window.doc.project.training, window.doc.undo_stack
    epochs = field(window, "training", "epochs")
    click_into(epochs.widget)
    count = stack.count()
    for _ in range(3):
        QTest.keyClick(epochs.widget, Qt.Key.Key_Up)
    assert training["epochs"] == 13 and epochs.widget.text() == "13"
    assert stack.count() == count + 1
    lr = field(window, "training", "lr")
    click_into(lr.widget)
    QTest.keyClick(lr.widget, Qt.Key.Key_Up)  # a step of the last digit typed: 0.001 -> 0.002
    assert training["lr"] == 0.002 and lr.widget.text() == "0.002"
    stack.undo()
    assert training["lr"] == 0.001
    stack.undo()
    assert training["epochs"] == 10


# ---------------------------------------------------------------- 2. the wheel


def test_the_wheel_over_unfocused_fields_scrolls_the_panel_and_changes_nothing(window) -> None:
    window.resize(1280, 800)
    batch, dataset = field(window, "data", "batch_size"), field(window, "data", "dataset")
    window.view.setFocus()
    bar = window.setup.verticalScrollBar()
    assert bar.maximum() > 0, "the set-up panel should need scrolling at this size"
    stack, data = window.doc.undo_stack, window.doc.project.data
    count = stack.count()
    wheel(batch.widget)
    wheel(dataset.widget)
    assert data["batch_size"] == 64 and batch.widget.text() == "64"
    assert data["dataset"] == "digits" and dataset.widget.currentText() == "digits"
    assert stack.count() == count
    assert bar.value() > 0  # the panel scrolled instead
    # once the user clicks into the field, the wheel steps it (one undo step for the gesture)
    click_into(batch.widget)
    wheel(batch.widget, notches=1)
    wheel(batch.widget, notches=1)
    assert data["batch_size"] == 66 and stack.count() == count + 1


def test_the_wheel_over_an_unfocused_plot_scrolls_and_keeps_auto_range(window, qtbot) -> None:
    window.resize(1280, 800)
    window.show_training()
    # a dock too short for the plots (at 1280x800 they fit): the plots scroll, the run controls stay
    window.resizeDocks([window.training_dock], [230], Qt.Orientation.Vertical)
    plot = window.training.loss_plot
    area = window.training.curves_area
    bar = area.verticalScrollBar()
    qtbot.waitUntil(lambda: plot.isVisible() and bar.maximum() > 0)
    window.view.setFocus()
    assert auto_ranging(plot)
    wheel(plot.viewport())
    assert auto_ranging(plot)  # passing over a plot never zooms it
    assert bar.maximum() > 0 and bar.value() > 0  # the dashboard scrolled instead
    # the wheel over a preview plot in the set-up panel scrolls the panel too
    preview = window.setup.preview.balance
    field(window, "data", "batch_size")
    setup_bar = window.setup.verticalScrollBar()
    before = setup_bar.value()
    wheel(preview.viewport())
    assert auto_ranging(preview) and setup_bar.value() > before
    # a plot the user clicked zooms; a double-click follows the data again
    QTest.mouseClick(plot.viewport(), LEFT, NO, plot.viewport().rect().center())
    assert plot.hasFocus()
    wheel(plot.viewport(), notches=1)
    assert not auto_ranging(plot)
    QTest.mouseDClick(plot.viewport(), LEFT, NO, plot.viewport().rect().center())
    assert auto_ranging(plot)
    # ...and so does the next run (its dashboard starts clean)
    wheel(plot.viewport(), notches=1)
    assert not auto_ranging(plot)
    window.training.reset()
    assert auto_ranging(plot)


def test_text_left_typed_in_the_inspector_never_lands_on_the_next_selection(window, qtbot) -> None:
    window.open_path(CNN)
    g = window.doc.graph
    conv1, conv2 = g.by_name("conv1").id, g.by_name("conv2").id
    window.scene.select_nodes([conv1])
    editor = window.inspector.editors["out_channels"]
    with qtbot.captureExceptions() as exceptions:
        type_text(editor.widget, "99", enter=False)
        window.scene.select_nodes([conv2])  # the page is rebuilt under the focused field
        qtbot.wait(20)
    assert exceptions == []
    assert g.nodes[conv1].params["out_channels"] == 16 and g.nodes[conv2].params["out_channels"] == 32
    assert window.inspector.editors["out_channels"].widget.text() == "32"


def test_save_and_train_take_what_is_typed_in_the_focused_field(window, tmp_path) -> None:
    """F5 or Ctrl+S while the cursor is still in a field: the action uses what was typed."""
    training = window.doc.project.training
    lr = field(window, "training", "lr")
    type_text(lr.widget, "1e-4", enter=False)
    QTest.keyClick(lr.widget, Qt.Key.Key_F5)  # Run > Train (refused here: the empty graph)
    assert training["lr"] == 0.0001 and lr.widget.hasFocus()
    window.doc.project.path = tmp_path / "p.json"
    type_text(lr.widget, "2e-4", enter=False)
    QTest.keyClick(lr.widget, Qt.Key.Key_S, CTRL)
    assert '"lr": 0.0002' in (tmp_path / "p.json").read_text()
