"""Edit mode (Ctrl+J): select annotations and predictions, and reshape polygon annotations.

- click an annotation to select it, Ctrl+click to add it to (or take it out of) the selection;
  click a prediction to select it (then Space accepts it, a digit accepts it as that class);
- with one polygon annotation selected: drag a vertex to move it, click on an edge to insert a
  vertex there, Shift+click a vertex to delete it (a part keeps at least 3 vertices);
- dragging anywhere else pans; Esc clears the selection.
"""

from __future__ import annotations

import numpy as np
from PySide6.QtCore import QPointF, Qt

from engine.data import Instance
from gui.canvas.view import Canvas
from gui.editing.tools.base import EditorTool, ToolHost
from gui.session.session import Session


def nearest_vertex(polygons: list[np.ndarray], x: float, y: float) -> tuple[int, int, float]:
    """(part, vertex, distance) of the vertex closest to (x, y)."""
    best = (-1, -1, np.inf)
    for p, points in enumerate(polygons):
        d = np.hypot(points[:, 0] - x, points[:, 1] - y)
        v = int(np.argmin(d))
        if d[v] < best[2]:
            best = (p, v, float(d[v]))
    return best


def nearest_edge(polygons: list[np.ndarray], x: float, y: float) -> tuple[int, int, float, tuple[float, float]]:
    """(part, index of the edge's first vertex, distance, closest point) of the closest edge."""
    best = (-1, -1, np.inf, (x, y))
    for p, a in enumerate(polygons):
        b = np.roll(a, -1, axis=0)
        ab = b - a
        t = np.clip(((x - a[:, 0]) * ab[:, 0] + (y - a[:, 1]) * ab[:, 1]) / np.maximum((ab**2).sum(1), 1e-12), 0, 1)
        closest = a + t[:, None] * ab
        d = np.hypot(closest[:, 0] - x, closest[:, 1] - y)
        e = int(np.argmin(d))
        if d[e] < best[2]:
            best = (p, e, float(d[e]), (float(closest[e, 0]), float(closest[e, 1])))
    return best


class EditTool(EditorTool):
    name = "edit"
    cursor = Qt.CursorShape.ArrowCursor

    def __init__(self, session: Session, editor: ToolHost) -> None:
        super().__init__(session, editor)
        self.dragging: tuple[int, int] | None = None  # (part, vertex)
        self.polygons: list[np.ndarray] = []  # the selected polygon's parts while it is edited
        self.hovered: tuple[int, int] | None = None

    def target(self) -> Instance | None:
        """The one selected polygon annotation, if that is what is selected."""
        selection = self.selection
        if len(selection) == 1 and not selection[0].is_rle:
            return selection[0]
        return None

    def selection_changed(self, canvas: Canvas) -> None:
        target = self.target()
        self.polygons = [np.asarray(p, float).reshape(-1, 2) for p in target.mask] if target is not None else []
        self.dragging = self.hovered = None
        self._draw(canvas)

    def deactivate(self, canvas: Canvas) -> None:
        self.polygons, self.dragging = [], None
        canvas.layers["shapes"].clear()

    def click(self, canvas: Canvas, point: QPointF, event) -> bool:  # noqa: ANN001
        if event.button() != Qt.MouseButton.LeftButton:
            return False
        canvas.setFocus()
        x, y = self.xy(point)
        modifiers = event.modifiers()
        if self.polygons and self._edit_vertices(canvas, x, y, bool(modifiers & Qt.KeyboardModifier.ShiftModifier)):
            return True
        instance = self.editor.annotation_at(x, y)
        if instance is not None:
            self.editor.select([instance], toggle=bool(modifiers & Qt.KeyboardModifier.ControlModifier))
            return True
        self.editor.select([])
        return False  # the canvas selects the prediction under the mouse (or none)

    def _edit_vertices(self, canvas: Canvas, x: float, y: float, delete: bool) -> bool:
        near = self.near(canvas)
        part, vertex, distance = nearest_vertex(self.polygons, x, y)
        if distance <= near:
            if delete:
                polygons = [p.copy() for p in self.polygons]
                if len(polygons[part]) > 3:
                    polygons[part] = np.delete(polygons[part], vertex, axis=0)
                elif len(polygons) > 1:
                    del polygons[part]
                else:
                    self.editor.say("A polygon keeps at least 3 vertices (Delete removes the whole mask)")
                    return True
                self._commit(polygons, "Delete vertex")
            return True  # a plain click on a vertex keeps the selection
        if delete:
            return False
        part, edge, distance, closest = nearest_edge(self.polygons, x, y)
        if distance <= near:
            polygons = [p.copy() for p in self.polygons]
            polygons[part] = np.insert(polygons[part], edge + 1, closest, axis=0)
            self._commit(polygons, "Insert vertex")
            return True
        return False

    def press(self, canvas: Canvas, point: QPointF, event) -> bool:  # noqa: ANN001
        if not self.polygons:
            return False
        part, vertex, distance = nearest_vertex(self.polygons, *self.xy(point))
        if distance > self.near(canvas):
            return False  # not on a vertex: pan
        self.dragging = (part, vertex)
        return True

    def move(self, canvas: Canvas, point: QPointF, event) -> bool:  # noqa: ANN001
        if self.dragging is None:
            return False
        part, vertex = self.dragging
        self.polygons[part][vertex] = self.xy(point)
        self._draw(canvas)
        return True

    def release(self, canvas: Canvas, point: QPointF, event) -> bool:  # noqa: ANN001
        if self.dragging is None:
            return False
        self.move(canvas, point, event)
        self.dragging = None
        self._commit([p.copy() for p in self.polygons], "Move vertex")
        return True

    def hover(self, canvas: Canvas, point: QPointF) -> bool:
        if not self.polygons or self.dragging is not None:
            return False
        part, vertex, distance = nearest_vertex(self.polygons, *self.xy(point))
        hovered = (part, vertex) if distance <= self.near(canvas) else None
        if hovered != self.hovered:
            self.hovered = hovered
            self._draw(canvas)
        return hovered is not None

    def key(self, canvas: Canvas, event) -> bool:  # noqa: ANN001
        if self.is_escape(event) and self.session.selection:
            self.editor.clear_selection()
            return True
        return False

    def cancel(self, canvas: Canvas) -> None:
        if self.dragging is not None:
            self.dragging = None
            self.selection_changed(canvas)

    def _commit(self, polygons: list[np.ndarray], text: str) -> None:
        target = self.target()
        if target is not None:
            self.editor.set_polygons(target, [[round(float(v), 2) for v in p.ravel()] for p in polygons], text)

    def _draw(self, canvas: Canvas) -> None:
        layer = canvas.layers["shapes"]
        if not self.polygons:
            layer.clear()
            return
        shapes = [(p, True) for p in self.polygons]
        layer.set_shapes(shapes, (255, 255, 255), handles=True, highlighted=self.dragging or self.hovered)
