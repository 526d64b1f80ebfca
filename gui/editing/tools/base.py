"""What every editing tool shares: the editor it works for, hit tolerances in screen pixels."""

from __future__ import annotations

from typing import TYPE_CHECKING

from PySide6.QtCore import QPointF, Qt

from gui.canvas.view import Canvas, CanvasTool

if TYPE_CHECKING:
    from gui.editing.editor import Editor

NEAR_PX = 8.0  # how close (screen pixels) a click must be to a vertex or an edge


class EditorTool(CanvasTool):
    def __init__(self, editor: Editor) -> None:
        self.editor = editor

    def deactivate(self, canvas: Canvas) -> None:
        self.cancel(canvas)

    def cancel(self, canvas: Canvas) -> None:
        """Drop whatever is half-drawn."""

    def selection_changed(self, canvas: Canvas) -> None:
        """The editor's selection changed (redraw handles, ...)."""

    def brush_changed(self, canvas: Canvas) -> None:
        """The brush radius changed."""

    @staticmethod
    def near(canvas: Canvas) -> float:
        """NEAR_PX in image pixels at the current zoom."""
        return NEAR_PX * canvas.pixel_size()

    @staticmethod
    def xy(point: QPointF) -> tuple[float, float]:
        return float(point.x()), float(point.y())

    @staticmethod
    def is_escape(event) -> bool:  # noqa: ANN001
        return event.key() == Qt.Key.Key_Escape

    @staticmethod
    def is_enter(event) -> bool:  # noqa: ANN001
        return event.key() in (Qt.Key.Key_Return, Qt.Key.Key_Enter)
