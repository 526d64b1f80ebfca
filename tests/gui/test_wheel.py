"""Issue 13, bug 3: the mouse wheel over the Train panel's options scrolls them; a spin box or combo box
takes the wheel only once focused (clicked or tabbed into)."""

from __future__ import annotations

from PySide6.QtCore import QPoint, QPointF, Qt
from PySide6.QtGui import QWheelEvent
from PySide6.QtWidgets import QApplication, QScrollArea

from tests.gui.test_editing import CTRL


def wheel(widget, notches: int = -1) -> None:  # noqa: ANN001
    """A mouse wheel turn over the middle of ``widget`` (negative: towards the user, scrolls down)."""
    centre = QPointF(widget.rect().center())
    event = QWheelEvent(
        centre, QPointF(widget.mapToGlobal(centre.toPoint())), QPoint(), QPoint(0, 120 * notches),
        Qt.MouseButton.NoButton, Qt.KeyboardModifier.NoModifier, Qt.ScrollPhase.NoScrollPhase, False,
    )  # fmt: skip
    QApplication.sendEvent(widget, event)


def test_the_wheel_over_an_unfocused_spin_box_scrolls_the_train_panel_and_changes_nothing(driver):
    app = driver
    app.window.resize(1000, 520)  # the options column is taller than the dock: it scrolls
    app.press(Qt.Key.Key_T, CTRL)  # Model > Train
    panel = app.window.train_panel
    app.wait_until(lambda: app.window.train_dock.isVisible() and panel.batch_size.isVisible())
    scroll = next(w for w in panel.findChildren(QScrollArea))
    bar = scroll.verticalScrollBar()
    app.wait_until(lambda: bar.maximum() > 0)
    bar.setValue(0)
    batch, unit = panel.batch_size.value(), panel.unit.currentText()
    assert not panel.batch_size.hasFocus()

    wheel(panel.batch_size, -1)
    wheel(panel.unit, -1)
    assert panel.batch_size.value() == batch and panel.unit.currentText() == unit  # nothing changed
    assert bar.value() > 0  # the options scrolled instead

    panel.batch_size.setFocus(Qt.FocusReason.MouseFocusReason)  # clicked into: now the wheel is its
    app.wait_until(panel.batch_size.hasFocus)
    wheel(panel.batch_size, 1)
    assert panel.batch_size.value() == batch + 1
