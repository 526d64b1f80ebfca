"""The image item's level of detail: a huge image is shown as the part on screen at the screen's resolution.

Up to ``MAX_FULL_PIXELS`` the image item holds the whole image (as before). A larger one (a 10,000 x 10,000
slide: 300 MB of RGB, 400 MB once pyqtgraph has made it a QImage, and every paint scaled it down again) is
shown as the region in view plus a margin, sampled every ``stride``-th pixel, the stride the power of two
that brings it near one image pixel per screen pixel (the levels of a pyramid, taken from the image when
asked for rather than stored: one level's region costs what the screen's pixels cost). Qt draws a scaled
image by sampling too (no smoothing is set), so what the user sees stays what it was, at a fraction of the
cost. A pan within the margin moves the item; leaving it, or zooming in past the stride, draws the region
again (``Canvas`` asks ``needs_render`` after the view settles).
"""

from __future__ import annotations

import math

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import QRectF

from gui.canvas import levels

MAX_FULL_PIXELS = 16_000_000  # 4,000 x 4,000: shown whole, as always
MARGIN = 0.25  # of the view's width and height, on each side: pans this far need no new region


class ImageDetail:
    """What the image item shows of ``pixels`` (the display's output: (H,W,3) or (H,W) uint8)."""

    def __init__(self, item: pg.ImageItem) -> None:
        self.item = item
        self.pixels: np.ndarray | None = None
        self.table: np.ndarray | None = None  # a display lookup applied to the part drawn only (None: none)
        self.region = (0, 0, 0, 0)  # x0, y0, x1, y1 of the image that the item holds (all of it when small)
        self.stride = 1

    @property
    def whole(self) -> bool:
        """The item holds the whole image at full resolution."""
        return self.pixels is None or self.fits_whole(self.pixels)

    @staticmethod
    def fits_whole(pixels: np.ndarray) -> bool:
        """An image this size is shown whole."""
        return pixels.shape[0] * pixels.shape[1] <= MAX_FULL_PIXELS

    def show(self, pixels: np.ndarray, visible: QRectF, pixel_size: float, table: np.ndarray | None = None) -> None:
        """New pixels (another image, or the same through a new contrast), drawn for the view ``visible``;
        ``table``: a 256-entry display lookup to apply to what is drawn (a huge image's contrast: the part
        drawn costs what the screen costs, where the whole image took seconds)."""
        self.pixels, self.table = pixels, table
        if self.whole:
            self.region, self.stride = (0, 0, pixels.shape[1], pixels.shape[0]), 1
            shown = pixels if table is None else levels.apply_table(pixels, table)
            self.item.setImage(shown, autoLevels=False, levels=None)
            self.item.setRect(QRectF(0, 0, pixels.shape[1], pixels.shape[0]))
            return
        self.render(visible, pixel_size)

    def clear(self) -> None:
        self.pixels = self.table = None
        self.region, self.stride = (0, 0, 0, 0), 1
        self.item.clear()

    def plan(self, visible: QRectF, pixel_size: float) -> tuple[tuple[int, int, int, int], int]:
        """(region, stride) for a view rectangle (image coordinates) at ``pixel_size`` image pixels per screen
        pixel; the region's corner lies on the stride's grid, so that panning keeps the samples in place."""
        height, width = self.pixels.shape[:2]
        stride = 2 ** max(0, math.floor(math.log2(max(pixel_size, 1.0))))
        mx, my = MARGIN * visible.width(), MARGIN * visible.height()
        x0 = max(0, math.floor((visible.left() - mx) / stride) * stride)
        y0 = max(0, math.floor((visible.top() - my) / stride) * stride)
        x1 = min(width, math.ceil(visible.right() + mx))
        y1 = min(height, math.ceil(visible.bottom() + my))
        return (x0, y0, max(x0, x1), max(y0, y1)), stride

    def needs_render(self, visible: QRectF, pixel_size: float) -> bool:
        """The view left the region held, or it is zoomed in past (or out 4x beyond) the held stride."""
        if self.pixels is None or self.whole:
            return False
        height, width = self.pixels.shape[:2]
        x0, y0, x1, y1 = self.region
        left, top = max(0.0, visible.left()), max(0.0, visible.top())
        right, bottom = min(float(width), visible.right()), min(float(height), visible.bottom())
        covers = x0 <= left and y0 <= top and x1 >= right and y1 >= bottom
        _, stride = self.plan(visible, pixel_size)
        return not covers or stride < self.stride or stride >= 4 * self.stride

    def render(self, visible: QRectF, pixel_size: float) -> None:
        (x0, y0, x1, y1), stride = self.plan(visible, pixel_size)
        if x1 <= x0 or y1 <= y0:  # the view is off the image: keep a corner so that the item exists
            x0, y0, x1, y1 = 0, 0, min(stride, self.pixels.shape[1]), min(stride, self.pixels.shape[0])
        part = sample(self.pixels, (x0, y0, x1, y1), stride)
        if self.table is not None:
            part = levels.apply_table(part, self.table)
        self.region, self.stride = (x0, y0, x1, y1), stride
        self.item.setImage(part, autoLevels=False, levels=None)
        self.item.setRect(QRectF(x0, y0, part.shape[1] * stride, part.shape[0] * stride))


def sample(pixels: np.ndarray, region: tuple[int, int, int, int], stride: int) -> np.ndarray:
    """The region (x0, y0, x1, y1) sampled at the centre of each stride x stride square (a square cut by the
    region's edge: at that edge), as a new contiguous array: a strided copy, which reads only the samples."""
    x0, y0, x1, y1 = region
    off = stride // 2
    rows, cols = -(-(y1 - y0) // stride), -(-(x1 - x0) // stride)
    part = pixels[y0 + off : y1 : stride, x0 + off : x1 : stride]
    if part.shape[0] < rows:  # the last square's centre lies past the edge: its edge row stands for it
        part = np.concatenate([part, pixels[y1 - 1 : y1, x0 + off : x1 : stride]], axis=0)
    if part.shape[1] < cols:
        edge = pixels[y0 + off : y1 : stride, x1 - 1 : x1]
        if edge.shape[0] < rows:
            edge = np.concatenate([edge, pixels[y1 - 1 : y1, x1 - 1 : x1]], axis=0)
        part = np.concatenate([part, edge], axis=1)
    return np.ascontiguousarray(part)
