"""Vertex mode (V): any mask, from the model, a label image or the brush, edited as rings of vertex handles.

V on the selected mask (a selected prediction is accepted first) shows its rings (gui/editing/rings.py): one
outer ring per part, a dashed orange ring per hole. Then, as labelme users expect:
- drag a vertex to move it;
- double-click an edge, or Alt+click it, to insert a vertex there;
- right-click a vertex, or hover it and press Delete, to remove it (a ring keeps 3; a ring of 3 goes whole
  when the mask has another part);
- click another mask to edit that one; Esc, Enter or V again goes back to Edit mode.
Each change is one undoable edit (``edits.set_rings``: polygons when there is no hole, else the RLE of the
rings' even-odd fill), saved like every other edit. Entering vertex mode changes nothing. The rings an edit
made are remembered per instance, so undo and redo bring back the very vertices, not a re-traced outline.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol

import numpy as np
from PySide6.QtCore import QPointF, Qt

from engine.data import ImageRecord, Instance
from gui.canvas.view import Canvas
from gui.editing import edits
from gui.editing.rings import Ring, mask_to_rings
from gui.editing.tools.base import EditorTool, ToolHost
from gui.editing.tools.edit import nearest_edge, nearest_vertex
from gui.session.session import Session

REMEMBERED = 500  # instances whose rings are kept for undo / redo (the oldest are re-traced from their mask)
HINT = (
    "Vertex mode: drag a vertex · double-click or Alt+click an edge adds one · right-click or Delete removes one"
    " · Esc leaves"
)


class VertexHost(ToolHost, Protocol):
    """What vertex mode asks of the Editor besides ``ToolHost``."""

    record: ImageRecord | None

    def push_instances(self, record: ImageRecord, instances: list[Instance], text: str) -> None: ...

    def accept_selected(self) -> None: ...

    def set_tool(self, name: str) -> None: ...


class VertexTool(EditorTool):
    name = "vertex"
    cursor = Qt.CursorShape.CrossCursor

    def __init__(self, session: Session, editor: VertexHost) -> None:
        super().__init__(session, editor)
        self.editor: VertexHost = editor
        self.target: Instance | None = None
        self.rings: list[Ring] = []
        self.dragging: tuple[int, int] | None = None  # (ring, vertex)
        self.hovered: tuple[int, int] | None = None
        self._made: dict[int, tuple[Instance, list[Ring]]] = {}  # id -> (instance, the rings it was made from)

    # ----- entering, leaving, what is edited -----
    def activate(self, canvas: Canvas) -> None:
        if not self.selection and self.session.selection.prediction >= 0:
            self.editor.accept_selected()  # a prediction is edited as the mask it becomes
        if len(self.selection) != 1:
            self.editor.say("Vertex mode: select one mask (click it), then press V")
        else:
            self.editor.say(HINT)

    def deactivate(self, canvas: Canvas) -> None:
        self.target, self.rings, self.dragging, self.hovered = None, [], None, None
        canvas.layers["shapes"].clear()

    def selection_changed(self, canvas: Canvas) -> None:
        selection = self.selection
        target = selection[0] if len(selection) == 1 else None
        if target is not self.target:
            self.target = target
            self.rings = self._rings_of(target) if target is not None else []
        self.dragging = self.hovered = None
        self._draw(canvas)

    def _rings_of(self, instance: Instance) -> list[Ring]:
        made = self._made.get(id(instance))
        if made is not None and made[0] is instance:
            return [Ring(r.points.copy(), r.hole) for r in made[1]]
        if not instance.is_rle:  # polygons: their own vertices, each an outer ring (COCO joins them)
            return [Ring(np.asarray(p, float).reshape(-1, 2), False) for p in instance.mask]
        return mask_to_rings(self.editor.crop_of(instance))

    # ----- mouse -----
    def click(self, canvas: Canvas, point: QPointF, event) -> bool:  # noqa: ANN001
        x, y = self.xy(point)
        near = self.near(canvas)
        vertex = self._vertex_at(x, y, near)
        if event.button() == Qt.MouseButton.RightButton:
            if vertex is None:
                return False
            self.delete_vertex(canvas, *vertex)
            return True
        if event.button() != Qt.MouseButton.LeftButton:
            return False
        canvas.setFocus()
        if vertex is not None:
            return True  # on a handle: keep the selection (a drag moves it)
        edge = self._edge_at(x, y, near)
        if edge is not None:
            inserting = event.double() or bool(event.modifiers() & Qt.KeyboardModifier.AltModifier)
            if inserting:
                self._insert(canvas, *edge)
            return True  # a first click on an edge keeps the mask selected for the double-click's second
        instance = self.editor.annotation_at(x, y)
        if instance is not None:
            self.editor.select([instance])
            return True
        self.editor.select([])
        return False  # the canvas selects the prediction under the mouse (V accepts it and edits it)

    def press(self, canvas: Canvas, point: QPointF, event) -> bool:  # noqa: ANN001
        vertex = self._vertex_at(*self.xy(point), self.near(canvas))
        if vertex is None:
            return False  # not on a handle: pan
        self.dragging = vertex
        return True

    def move(self, canvas: Canvas, point: QPointF, event) -> bool:  # noqa: ANN001
        if self.dragging is None:
            return False
        ring, vertex = self.dragging
        self.rings[ring].points[vertex] = self._inside_image(*self.xy(point))
        self._draw(canvas)
        return True

    def release(self, canvas: Canvas, point: QPointF, event) -> bool:  # noqa: ANN001
        if self.dragging is None:
            return False
        self.move(canvas, point, event)
        self.dragging = None
        self._commit(canvas, "Move vertex")
        return True

    def hover(self, canvas: Canvas, point: QPointF) -> bool:
        if not self.rings or self.dragging is not None:
            return False
        hovered = self._vertex_at(*self.xy(point), self.near(canvas))
        if hovered != self.hovered:
            self.hovered = hovered
            self._draw(canvas)
        return hovered is not None

    # ----- keys -----
    def key(self, canvas: Canvas, event) -> bool:  # noqa: ANN001
        if self.is_escape(event) or self.is_enter(event):
            self.editor.set_tool("edit")  # the selection stays
            return True
        return False

    def delete_hovered(self, canvas: Canvas) -> bool:
        """Delete (the Edit menu's key): remove the vertex under the mouse; False when there is none."""
        if self.hovered is None or not self.rings:
            return False
        self.delete_vertex(canvas, *self.hovered)
        return True

    def cancel(self, canvas: Canvas) -> None:
        if self.dragging is not None:  # a drag cut short: the rings as they were
            self.dragging = None
            self.target = None
            self.selection_changed(canvas)

    def around_replay(self, step: Callable[[], object]) -> None:
        """Undo / redo while in vertex mode: the edited mask stays selected in its new (old) form, with the
        vertices it had."""
        record, target = self.session.record, self.target
        at = next((k for k, i in enumerate(record.instances) if i is target), -1) if record and target else -1
        step()
        if at < 0 or self.session.record is not record or self.selection or at >= len(record.instances):
            return
        instance = record.instances[at]
        made = self._made.get(id(instance))
        if made is not None and made[0] is instance:
            self.editor.select([instance])

    # ----- edits -----
    def delete_vertex(self, canvas: Canvas, ring: int, vertex: int) -> None:
        rings = [Ring(r.points.copy(), r.hole) for r in self.rings]
        if len(rings[ring].points) > 3:
            rings[ring] = Ring(np.delete(rings[ring].points, vertex, axis=0), rings[ring].hole)
        elif sum(not r.hole for k, r in enumerate(rings) if k != ring) >= 1:
            del rings[ring]  # a triangle goes whole while another part remains
        else:
            self.editor.say("A mask keeps at least 3 vertices (Delete with no vertex under the mouse removes the mask)")
            return
        self.rings, self.hovered = rings, None
        self._commit(canvas, "Delete vertex")

    def _insert(self, canvas: Canvas, ring: int, edge: int, point: tuple[float, float]) -> None:
        points = np.insert(self.rings[ring].points, edge + 1, point, axis=0)
        self.rings[ring] = Ring(points, self.rings[ring].hole)
        self._commit(canvas, "Insert vertex")

    def _commit(self, canvas: Canvas, text: str) -> None:
        record, target = self.editor.record, self.target
        if record is None or target is None:
            return
        edit = edits.set_rings(record.instances, target, self.rings, record.height, record.width)
        if edit is None:
            self.editor.say("Those vertices enclose no pixel: the change is dropped")
            self.target = None
            self.selection_changed(canvas)
            return
        edited = edit.selected[0]
        self._made.setdefault(id(target), (target, self._rings_of(target)))  # undo brings these back
        self._made[id(edited)] = (edited, [Ring(r.points.copy(), r.hole) for r in self.rings])
        while len(self._made) > REMEMBERED:
            del self._made[next(iter(self._made))]
        self.editor.push_instances(record, list(edit.instances), text)
        self.editor.select([edited])  # -> selection_changed: the rings just cached

    # ----- helpers -----
    def _vertex_at(self, x: float, y: float, near: float) -> tuple[int, int] | None:
        if not self.rings:
            return None
        ring, vertex, distance = nearest_vertex([r.points for r in self.rings], x, y)
        return (ring, vertex) if distance <= near else None

    def _edge_at(self, x: float, y: float, near: float) -> tuple[int, int, tuple[float, float]] | None:
        if not self.rings:
            return None
        ring, edge, distance, closest = nearest_edge([r.points for r in self.rings], x, y)
        return (ring, edge, closest) if distance <= near else None

    def _inside_image(self, x: float, y: float) -> tuple[float, float]:
        record = self.editor.record
        if record is None:
            return x, y
        return min(max(x, 0.0), float(record.width)), min(max(y, 0.0), float(record.height))

    def _draw(self, canvas: Canvas) -> None:
        layer = canvas.layers["shapes"]
        if not self.rings:
            layer.clear()
            return
        shapes = [(r.points, True) for r in self.rings]
        holes = [r.hole for r in self.rings]
        layer.set_shapes(shapes, (255, 255, 255), handles=True, highlighted=self.dragging or self.hovered, holes=holes)
