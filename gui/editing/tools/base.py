"""What every editing tool shares: the Session it reads, the ``ToolHost`` it hands its gestures to.

The Session says what is open and selected; ``ToolHost`` is what the tools see of the Editor (a Protocol,
so that the tools do not import the editor); hit tolerances are in screen pixels."""

from __future__ import annotations

from typing import Protocol

import numpy as np
from PySide6.QtCore import QPointF, Qt

from engine.data import Instance
from engine.structures import InstanceMask
from gui.canvas.view import Canvas, CanvasTool
from gui.session.session import Session

NEAR_PX = 8.0  # how close (screen pixels) a click must be to a vertex or an edge


class ToolHost(Protocol):
    """What the tools ask of the editor (gui/editing/editor.py): the drawing state and the edits."""

    canvas: Canvas
    category_id: int | None
    brush_radius: int

    def say(self, text: str) -> None: ...

    def annotation_at(self, x: float, y: float) -> Instance | None: ...

    def crop_of(self, instance: Instance) -> InstanceMask: ...

    def select(self, instances: list[Instance], toggle: bool = False) -> None: ...

    def clear_selection(self) -> None: ...

    def add_polygon(self, points: list[tuple[float, float]]) -> Instance | None: ...

    def set_polygons(self, instance: Instance, polygons: list[list[float]], text: str = "") -> None: ...

    def commit_mask(self, target: Instance | None, mask: np.ndarray, text: str) -> Instance | None: ...

    def box_drawn(self, box: tuple[float, float, float, float]) -> None: ...

    def split_by_line(self, points: list[tuple[float, float]]) -> None: ...


class EditorTool(CanvasTool):
    def __init__(self, session: Session, editor: ToolHost) -> None:
        self.session = session
        self.editor = editor

    @property
    def selection(self) -> tuple[Instance, ...]:
        """The selected annotations."""
        return self.session.selection.annotations

    def deactivate(self, canvas: Canvas) -> None:
        self.cancel(canvas)

    def cancel(self, canvas: Canvas) -> None:
        """Drop whatever is half-drawn."""

    def selection_changed(self, canvas: Canvas) -> None:
        """The selection changed (redraw handles, ...)."""

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
