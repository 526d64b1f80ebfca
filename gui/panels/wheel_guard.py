"""Spin boxes and combo boxes that take the mouse wheel only when focused: a wheel over an unfocused one
scrolls the panel around it instead of changing its value (batch 2 -> 8 unnoticed, issue 13).

``guard_wheel(panel)`` installs one shared event filter on every spin box and combo box under ``panel``
(call it after the panel's widgets are made) and stops the wheel from focusing them: a click or Tab
focuses one, then the wheel changes it as usual.
"""

from __future__ import annotations

from PySide6.QtCore import QEvent, QObject, Qt
from PySide6.QtWidgets import QAbstractScrollArea, QAbstractSpinBox, QApplication, QComboBox, QWidget

GUARDED = (QAbstractSpinBox, QComboBox)


class WheelGuard(QObject):
    """The event filter: an unfocused guarded widget never sees a wheel event. The scroll area it sits in
    gets it (its viewport, as if the wheel had been turned over the background); without one the event is
    left unaccepted, so that Qt passes it on to the widget's parents."""

    def eventFilter(self, watched: QObject, event: QEvent) -> bool:  # noqa: N802 - Qt's name
        if event.type() != QEvent.Type.Wheel or not isinstance(watched, GUARDED) or watched.hasFocus():
            return False
        area = scroll_area_of(watched)
        if area is not None:
            QApplication.sendEvent(area.viewport(), event)  # (Qt passes on only real events, not sent ones)
        else:
            event.ignore()
        return True


def scroll_area_of(widget: QWidget) -> QAbstractScrollArea | None:
    """The nearest scroll area ``widget`` sits in, or None."""
    parent = widget.parentWidget()
    while parent is not None and not isinstance(parent, QAbstractScrollArea):
        parent = parent.parentWidget()
    return parent


_GUARD: WheelGuard | None = None


def guard_wheel(panel: QWidget) -> int:
    """Guard every spin box and combo box under ``panel`` (``panel`` itself included); returns how many."""
    global _GUARD
    if _GUARD is None:
        _GUARD = WheelGuard()
    widgets = [panel] if isinstance(panel, GUARDED) else []
    widgets += panel.findChildren(QAbstractSpinBox) + panel.findChildren(QComboBox)
    for widget in widgets:
        if widget.focusPolicy() == Qt.FocusPolicy.WheelFocus:
            widget.setFocusPolicy(Qt.FocusPolicy.StrongFocus)  # the wheel does not focus it
        widget.removeEventFilter(_GUARD)
        widget.installEventFilter(_GUARD)
    return len(widgets)
