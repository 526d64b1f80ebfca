"""Tools that draw a new shape: polygon (click vertices), box (drag), cut line (drag across a mask)."""

from __future__ import annotations

from PySide6.QtCore import QPointF, Qt

from gui.canvas.view import Canvas
from gui.editing.tools.base import EditorTool, ToolHost
from gui.session.session import Session


class PolygonTool(EditorTool):
    """Click vertices; click the first vertex again (or press Enter) to close; Backspace removes the last
    vertex, Esc drops the polygon. Dragging still pans."""

    name = "polygon"
    cursor = Qt.CursorShape.CrossCursor

    def __init__(self, session: Session, editor: ToolHost) -> None:
        super().__init__(session, editor)
        self.points: list[tuple[float, float]] = []
        self.cursor_point: tuple[float, float] | None = None

    def click(self, canvas: Canvas, point: QPointF, event) -> bool:  # noqa: ANN001
        if event.button() != Qt.MouseButton.LeftButton or canvas.image_shape is None:
            return False
        canvas.setFocus()
        x, y = self.xy(point)
        if len(self.points) >= 3:
            fx, fy = self.points[0]
            if (x - fx) ** 2 + (y - fy) ** 2 <= self.near(canvas) ** 2:
                self.finish(canvas)
                return True
        self.points.append((x, y))
        self._draw(canvas)
        return True

    def hover(self, canvas: Canvas, point: QPointF) -> bool:
        self.cursor_point = self.xy(point)
        if self.points:
            self._draw(canvas)
        return bool(self.points)  # while drawing, predictions under the mouse are not highlighted

    def key(self, canvas: Canvas, event) -> bool:  # noqa: ANN001
        if self.is_enter(event) and self.points:
            self.finish(canvas)
            return True
        if self.is_escape(event) and self.points:
            self.cancel(canvas)
            return True
        if event.key() == Qt.Key.Key_Backspace and self.points:
            self.points.pop()
            self._draw(canvas)
            return True
        return False

    def finish(self, canvas: Canvas) -> None:
        points, self.points = self.points, []
        canvas.layers["rubber"].clear()
        if len(points) >= 3:
            self.editor.add_polygon(points)
        else:
            self.editor.say("A polygon needs at least 3 vertices")

    def cancel(self, canvas: Canvas) -> None:
        self.points = []
        canvas.layers["rubber"].clear()

    def _draw(self, canvas: Canvas) -> None:
        shapes = [(self.points, False)]
        if self.cursor_point is not None and self.points:
            shapes.append(([self.points[-1], self.cursor_point], False))
        project = self.session.project
        color = project.category_style(self.editor.category_id or -1)[0] if project else None
        canvas.layers["rubber"].set_shapes(shapes, color or (255, 255, 255), handles=True)


class _DragTool(EditorTool):
    """Press, drag, release: a rubber shape from the press point to the mouse."""

    def __init__(self, session: Session, editor: ToolHost) -> None:
        super().__init__(session, editor)
        self.start: tuple[float, float] | None = None
        self.end: tuple[float, float] | None = None

    def press(self, canvas: Canvas, point: QPointF, event) -> bool:  # noqa: ANN001
        if canvas.image_shape is None:
            return False
        canvas.setFocus()
        self.start = self.end = self.xy(point)
        return True

    def move(self, canvas: Canvas, point: QPointF, event) -> bool:  # noqa: ANN001
        if self.start is None:
            return False
        self.end = self.xy(point)
        canvas.layers["rubber"].set_shapes([(self.outline(), self.closed)], (255, 255, 255), dashed=True)
        return True

    def release(self, canvas: Canvas, point: QPointF, event) -> bool:  # noqa: ANN001
        if self.start is None:
            return False
        self.end = self.xy(point)
        start, end = self.start, self.end
        self.cancel(canvas)
        self.done(start, end)
        return True

    def key(self, canvas: Canvas, event) -> bool:  # noqa: ANN001
        if self.is_escape(event) and self.start is not None:
            self.cancel(canvas)
            return True
        return False

    def cancel(self, canvas: Canvas) -> None:
        self.start = self.end = None
        canvas.layers["rubber"].clear()

    closed = False

    def outline(self) -> list[tuple[float, float]]:
        return [self.start, self.end]

    def done(self, start: tuple[float, float], end: tuple[float, float]) -> None:
        raise NotImplementedError


class BoxTool(_DragTool):
    """Drag a rectangle: the model's mask for it (or the rectangle itself without a model)."""

    name = "box"
    cursor = Qt.CursorShape.CrossCursor
    closed = True

    def outline(self) -> list[tuple[float, float]]:
        (x0, y0), (x1, y1) = self.start, self.end
        return [(x0, y0), (x1, y0), (x1, y1), (x0, y1)]

    def done(self, start: tuple[float, float], end: tuple[float, float]) -> None:
        if abs(end[0] - start[0]) < 2 or abs(end[1] - start[1]) < 2:
            self.editor.say("Box too small: drag a rectangle around the object")
            return
        (xa, xb), (ya, yb) = sorted((start[0], end[0])), sorted((start[1], end[1]))
        self.editor.box_drawn((xa, ya, xb, yb))


class LineTool(_DragTool):
    """Drag a line across a mask (the selected one, else the one under the line) to cut it in two."""

    name = "line"
    cursor = Qt.CursorShape.CrossCursor

    def done(self, start: tuple[float, float], end: tuple[float, float]) -> None:
        self.editor.split_by_line([start, end])
