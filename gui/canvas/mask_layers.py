"""Instance masks drawn as ONE RGBA fill image and ONE RGBA outline image, with a level of detail.

Up to ``MAX_OVERLAY_PIXELS`` the overlay covers the union of the instances at full resolution. Beyond
(a 6000x4000 image full of detections) it covers what is on screen (plus a margin) and samples every
``stride``-th pixel so that it stays that small; zooming in re-renders the visible part finer.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import QRectF

from gui.canvas import overlay

MAX_OVERLAY_PIXELS = 2_000_000


class MaskLayers:
    def __init__(self, fill: pg.ImageItem, edges: pg.ImageItem | None, fill_alpha: int = 255) -> None:
        self.fill, self.edges, self.fill_alpha = fill, edges, fill_alpha
        self.crops: list = []
        self.colors: list[tuple[int, int, int]] = []
        self.labels = overlay.LabelMap(np.zeros((0, 0), np.uint16))
        self.image_size = (0, 0)
        self._union = (0, 0, 0, 0)

    def set(self, crops: Sequence, colors: Sequence, height: int, width: int, visible: QRectF) -> None:
        self.crops, self.colors, self.image_size = list(crops), list(colors), (height, width)
        self._union = overlay.union_box(self.crops, height, width)
        self.render(visible)

    def plan(self, visible: QRectF) -> tuple[tuple[int, int, int, int], int]:
        """(region, stride) to draw for the view rectangle ``visible`` (image coordinates)."""
        x0, y0, x1, y1 = self._union
        if (x1 - x0) * (y1 - y0) > MAX_OVERLAY_PIXELS:
            margin_x, margin_y = 0.25 * visible.width(), 0.25 * visible.height()
            x0 = max(x0, math.floor(visible.left() - margin_x))
            y0 = max(y0, math.floor(visible.top() - margin_y))
            x1 = max(x0, min(x1, math.ceil(visible.right() + margin_x)))
            y1 = max(y0, min(y1, math.ceil(visible.bottom() + margin_y)))
        area = (x1 - x0) * (y1 - y0)
        return (x0, y0, x1, y1), max(1, math.ceil(math.sqrt(area / MAX_OVERLAY_PIXELS)))

    def needs_render(self, visible: QRectF) -> bool:
        """True when the view moved out of the drawn region or zoomed in past its resolution."""
        if not self.crops:
            return False
        (x0, y0, x1, y1), stride = self.plan(visible)
        dx, dy, dw, dh = self.labels.rect()
        covers = dx <= x0 and dy <= y0 and dx + dw >= x1 and dy + dh >= y1
        return not covers or stride < self.labels.stride

    def render(self, visible: QRectF) -> None:
        height, width = self.image_size
        region, stride = self.plan(visible)
        self.labels = overlay.label_map(self.crops, height, width, region, stride)
        table = overlay.palette(self.colors, self.fill_alpha)
        fill = overlay.colorize(self.labels.labels, table)
        if self.edges is None:  # annotations: the outline goes into the fill image, opaque
            fill[overlay.boundary(self.labels.labels, 2 if stride == 1 else 1), 3] = 255
        else:
            self._show(self.edges, overlay.outline_rgba(self.labels.labels, overlay.palette(self.colors)))
        self._show(self.fill, fill)

    def _show(self, item: pg.ImageItem, rgba: np.ndarray) -> None:
        if rgba.size == 0 or not self.crops:
            item.clear()
            return
        item.setImage(rgba, autoLevels=False, levels=None)
        item.setRect(QRectF(*self.labels.rect()))

    def full_rgba(self) -> np.ndarray:
        """The fill as drawn, on a full-image (H,W,4) canvas (stride 1 only; for tests)."""
        height, width = self.image_size
        full = np.zeros((height, width, 4), dtype=np.uint8)
        image = self.fill.image
        if image is not None and self.crops and not self.labels.empty and self.labels.stride == 1:
            y0, x0 = self.labels.y0, self.labels.x0
            full[y0 : y0 + image.shape[0], x0 : x0 + image.shape[1]] = image
        return full
