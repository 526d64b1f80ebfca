"""Brush (B) and eraser (E): paint into the selected annotation's mask.

The brush starts a new mask when nothing is selected; the eraser works on the selected mask, else the
one under the stroke's start. A stroke is one undoable edit; ``[`` and ``]`` change the radius (image
pixels)."""

from __future__ import annotations

import numpy as np
from PySide6.QtCore import QPointF, QRectF, Qt

from engine.data import Instance
from gui.canvas.view import Canvas
from gui.editing.masks import paint_disk, paint_stroke
from gui.editing.tools.base import EditorTool, ToolHost
from gui.session.session import Session

ERASED_RGBA = (0, 0, 0, 170)


class BrushTool(EditorTool):
    cursor = Qt.CursorShape.CrossCursor

    def __init__(self, session: Session, editor: ToolHost, erase: bool) -> None:
        super().__init__(session, editor)
        self.erase = erase
        self.name = "eraser" if erase else "brush"
        self.target: Instance | None = None
        self.mask: np.ndarray | None = None  # the working (H,W) mask of the stroke under way
        self.before: np.ndarray | None = None
        self.last: tuple[float, float] | None = None
        self.region: list[int] = [0, 0, 0, 0]  # x0, y0, x1, y1 touched so far (for the preview)
        self.color = (255, 255, 255)

    # ----- gestures -----
    def press(self, canvas: Canvas, point: QPointF, event) -> bool:  # noqa: ANN001
        record = self.session.record
        if canvas.image_shape is None or record is None:
            return False
        canvas.setFocus()
        x, y = self.xy(point)
        selection = self.selection
        self.target = selection[0] if len(selection) == 1 else None
        if self.target is None and self.erase:
            self.target = self.editor.annotation_at(x, y)
            if self.target is None:
                self.editor.say("Eraser: select a mask, or start the stroke on one")
                return True
        if self.target is not None:
            # the target's crop (decoded once, kept by the project) placed in an empty mask: decoding its RLE
            # again took 25 ms at 3000x3000 (~0.3 s at 10k x 10k); np.zeros costs nothing until written
            crop = self.editor.crop_of(self.target)
            self.mask = np.zeros((record.height, record.width), dtype=bool)
            h, w = crop.mask.shape
            x0, y0 = max(crop.x0, 0), max(crop.y0, 0)
            x1, y1 = min(crop.x0 + w, record.width), min(crop.y0 + h, record.height)
            if x1 > x0 and y1 > y0:
                self.mask[y0:y1, x0:x1] = crop.mask[y0 - crop.y0 : y1 - crop.y0, x0 - crop.x0 : x1 - crop.x0]
            self.region = [crop.x0, crop.y0, crop.x0 + crop.mask.shape[1], crop.y0 + crop.mask.shape[0]]
        else:
            self.mask = np.zeros((record.height, record.width), dtype=bool)
            self.region = [int(x), int(y), int(x) + 1, int(y) + 1]
        self.before = self.mask.copy() if self.erase else None
        category = self.target.category_id if self.target is not None else self.editor.category_id
        self.color = self.session.project.category_style(category if category is not None else -1)[0]
        self.last = (x, y)
        self._paint((x, y))
        return True

    def move(self, canvas: Canvas, point: QPointF, event) -> bool:  # noqa: ANN001
        self._cursor(canvas, point)
        if self.mask is not None:
            self._paint(self.xy(point))
        return True  # a brush drag never pans

    def release(self, canvas: Canvas, point: QPointF, event) -> bool:  # noqa: ANN001
        if self.mask is None:
            self.last = None
            return True
        self._paint(self.xy(point))
        self.finish(canvas)
        return True

    def click(self, canvas: Canvas, point: QPointF, event) -> bool:  # noqa: ANN001
        if event.button() != Qt.MouseButton.LeftButton:
            return False
        if self.press(canvas, point, event) and self.mask is not None:
            self.finish(canvas)
        return True

    def hover(self, canvas: Canvas, point: QPointF) -> bool:
        self._cursor(canvas, point)
        return True

    def key(self, canvas: Canvas, event) -> bool:  # noqa: ANN001
        if self.is_escape(event) and self.selection:
            self.editor.clear_selection()  # the next brush stroke starts a new mask
            return True
        return False

    def brush_changed(self, canvas: Canvas) -> None:
        circle = canvas.layers["cursor"]
        if circle.center is not None:
            circle.set_circle(*circle.center, self.editor.brush_radius, circle.color)

    def cancel(self, canvas: Canvas) -> None:
        self.mask = self.before = self.target = self.last = None
        canvas.layers["preview"].clear()
        canvas.layers["cursor"].clear()

    # ----- painting -----
    def finish(self, canvas: Canvas) -> None:
        mask, target = self.mask, self.target
        self.cancel(canvas)
        self.editor.commit_mask(target, mask, "Erase" if self.erase else "Brush")

    def _paint(self, point: tuple[float, float]) -> None:
        radius = self.editor.brush_radius
        if self.last is not None and self.last != point:
            paint_stroke(self.mask, self.last, point, radius, not self.erase)
        else:
            paint_disk(self.mask, *point, radius, not self.erase)
        self.last = point
        height, width = self.mask.shape
        x, y = point
        r = int(np.ceil(radius)) + 1
        x0, y0, x1, y1 = self.region
        self.region = [max(0, min(x0, int(x) - r)), max(0, min(y0, int(y) - r)), min(width, max(x1, int(x) + r)),
                       min(height, max(y1, int(y) + r))]  # fmt: skip
        self._preview()

    def _preview(self) -> None:
        x0, y0, x1, y1 = self.region
        if x1 <= x0 or y1 <= y0:
            return
        layer = self.editor.canvas.layers["preview"]
        rgba = np.zeros((y1 - y0, x1 - x0, 4), dtype=np.uint8)
        if self.erase:
            rgba[self.before[y0:y1, x0:x1] & ~self.mask[y0:y1, x0:x1]] = ERASED_RGBA
        else:
            rgba[self.mask[y0:y1, x0:x1]] = (*self.color, 150)
        layer.setImage(rgba, autoLevels=False, levels=None)
        layer.setRect(QRectF(x0, y0, x1 - x0, y1 - y0))

    def _cursor(self, canvas: Canvas, point: QPointF) -> None:
        canvas.layers["cursor"].set_circle(point.x(), point.y(), self.editor.brush_radius, (255, 255, 255))
