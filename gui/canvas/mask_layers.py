"""Instance masks drawn as ONE RGBA fill image and ONE RGBA outline image, with a level of detail.

Up to ``MAX_OVERLAY_PIXELS`` the overlay covers the union of the instances at full resolution. Beyond
(a 6000x4000 image full of detections) it covers what is on screen (plus a margin) and samples every
``stride``-th pixel so that it stays that small; zooming in re-renders the visible part finer.

An edit changes a few instances of thousands (issue 12, item 5: 5,000 annotations, one deleted, undone or
brushed): when the new list is the old one with a few crops taken out, put in or replaced (found by
identity: unchanged instances keep their crop objects), only the area of those crops is drawn again
(``_patch``); the labels after them are renumbered by one lookup, their colours do not move.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import QRectF

from gui.canvas import overlay

MAX_OVERLAY_PIXELS = 2_000_000
PATCH_LIMIT = 32  # at most this many crops taken out plus put in are patched; more redraw everything


def crop_boxes(crops: Sequence) -> np.ndarray:
    """(N,4) int64 x0, y0, x1, y1 of each crop; an empty crop gets an empty box (x1 = x0)."""
    rows = [(c.x0, c.y0, c.x0 + c.mask.shape[1] * (c.mask.size > 0), c.y0 + c.mask.shape[0]) for c in crops]
    return np.array(rows, dtype=np.int64).reshape(-1, 4)


def _same_run(a: np.ndarray, b: np.ndarray) -> int:
    """How many leading entries of ``a`` and ``b`` (of one length) are equal."""
    differ = np.flatnonzero(a != b)
    return int(differ[0]) if len(differ) else len(a)


_NEIGHBOURS = ((-1, 0), (1, 0), (0, -1), (0, 1))


def _outline_at(labels: np.ndarray, ys: np.ndarray, xs: np.ndarray, thickness: int) -> np.ndarray:
    """``overlay.boundary(labels, thickness)[ys, xs]``, worked out at those pixels only."""
    rows, cols = labels.shape
    values = labels[ys, xs]
    if thickness <= 1:
        edge = np.zeros(len(ys), dtype=bool)
        for dy, dx in _NEIGHBOURS:
            ny, nx = ys + dy, xs + dx
            inside = (ny >= 0) & (ny < rows) & (nx >= 0) & (nx < cols)
            neighbour = np.zeros(len(ys), dtype=labels.dtype)  # outside the map: 0, as boundary's padding
            neighbour[inside] = labels[ny[inside], nx[inside]]
            edge |= neighbour != values
        return edge & (values != 0)
    grown = _outline_at(labels, ys, xs, thickness - 1)
    for dy, dx in _NEIGHBOURS:  # a neighbour inside the map on the thinner outline (boundary's growing)
        ny, nx = ys + dy, xs + dx
        inside = np.flatnonzero((ny >= 0) & (ny < rows) & (nx >= 0) & (nx < cols))
        grown[inside] |= _outline_at(labels, ny[inside], nx[inside], thickness - 1)
    return grown & (values != 0)


class MaskLayers:
    def __init__(self, fill: pg.ImageItem, edges: pg.ImageItem | None, fill_alpha: int = 255) -> None:
        self.fill, self.edges, self.fill_alpha = fill, edges, fill_alpha
        self.crops: list = []
        self.colors = np.zeros((0, 3), np.uint8)  # RGB of instance i in row i
        self.labels = overlay.LabelMap(np.zeros((0, 0), np.uint16))
        self.image_size = (0, 0)
        self._union = (0, 0, 0, 0)
        self._boxes = np.zeros((0, 4), np.int64)  # crop_boxes(self.crops)
        self._fill_rgba: np.ndarray | None = None  # what the items show, kept for patching
        self._edge_rgba: np.ndarray | None = None
        self.patched = 0  # how many set() calls were patches (for tests and benchmarks)

    def set(self, crops: Sequence, colors: Sequence, height: int, width: int, visible: QRectF) -> None:
        crops = list(crops)
        colors = np.asarray(colors, dtype=np.uint8).reshape(-1, 3)
        if (height, width) == self.image_size and self._patch(crops, colors, visible):
            self.patched += 1
            return
        self.crops, self.colors, self.image_size = crops, colors, (height, width)
        self._boxes = crop_boxes(crops)
        self._union = self._union_of(self._boxes)
        self.render(visible)

    def _union_of(self, boxes: np.ndarray) -> tuple[int, int, int, int]:
        """``overlay.union_box`` from the boxes array (the same numbers)."""
        height, width = self.image_size
        boxes = boxes[boxes[:, 2] > boxes[:, 0]]
        if not len(boxes):
            return 0, 0, 0, 0
        x0, y0 = max(int(boxes[:, 0].min()), 0), max(int(boxes[:, 1].min()), 0)
        x1, y1 = min(int(boxes[:, 2].max()), width), min(int(boxes[:, 3].max()), height)
        return x0, y0, max(x1, x0), max(y1, y0)

    def plan(self, visible: QRectF) -> tuple[tuple[int, int, int, int], int]:
        """(region, stride) to draw for the view rectangle ``visible`` (image coordinates)."""
        return self._plan(self._union, visible)

    @staticmethod
    def _plan(union: tuple[int, int, int, int], visible: QRectF) -> tuple[tuple[int, int, int, int], int]:
        x0, y0, x1, y1 = union
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
            fill[overlay.boundary(self.labels.labels, self._thickness()), 3] = 255
            self._edge_rgba = None
        else:
            self._edge_rgba = overlay.outline_rgba(self.labels.labels, overlay.palette(self.colors))
            self._show(self.edges, self._edge_rgba)
        self._fill_rgba = fill
        self._show(self.fill, fill)

    def _thickness(self) -> int:
        """The outline's width in overlay pixels: 2 for annotations at full resolution, else 1."""
        return 2 if self.edges is None and self.labels.stride == 1 else 1

    # ----- a few crops changed -----
    def _patch(self, crops: list, colors: np.ndarray, visible: QRectF) -> bool:
        """Draw only what changed between ``self.crops`` and ``crops``; False when that is not worth it (or
        not possible: the overlay's region or resolution would change), and nothing was done."""
        old = self.crops
        labels = self.labels.labels
        if not old or not crops or labels.size == 0 or self._fill_rgba is None:
            return False
        if (self.edges is not None) != (self._edge_rgba is not None):
            return False
        n_old, n_new = len(old), len(crops)
        if labels.dtype == np.uint16 and n_new >= 65535:
            return False
        limit = min(n_old, n_new)
        # the same objects at the start and at the end, compared by id in numpy (both lists hold them alive):
        # the loops of `is` over 5,000 crops were ~1 ms of each edit and slider move
        old_ids = np.fromiter(map(id, old), np.uint64, n_old)
        new_ids = np.fromiter(map(id, crops), np.uint64, n_new)
        first = _same_run(old_ids[:limit], new_ids[:limit])
        if first == n_old == n_new:  # the same crops: only colours can differ
            return self._recolour(colors)
        if first == limit:  # one list starts the other: a score slider move (best first) shows more or fewer
            return self._patch_tail(crops, colors, visible)
        last = _same_run(old_ids[::-1][: limit - first], new_ids[::-1][: limit - first])
        out_old, put_in = n_old - first - last, n_new - first - last
        if out_old + put_in > PATCH_LIMIT:
            return False
        kept = np.r_[0:first, n_old - last : n_old]
        kept_new = np.r_[0:first, n_new - last : n_new]
        if not np.array_equal(self.colors[kept], colors[kept_new]):
            return False
        new_boxes = np.concatenate(
            [self._boxes[:first], crop_boxes(crops[first : n_new - last]), self._boxes[n_old - last :]]
        )
        union = self._union_of(new_boxes)
        if not self._fits(union, visible):
            return False
        changed = np.concatenate([self._boxes[first : n_old - last], new_boxes[first : n_new - last]])
        # renumber: the labels of the crops taken out go (their area is drawn again below), the later ones
        # move by the count put in minus the count taken out
        shift = put_in - out_old
        if shift or out_old:
            remap = np.arange(n_old + 1, dtype=np.int64)
            remap[first + 1 : first + 1 + out_old] = 0
            remap[first + 1 + out_old :] += shift
            if shift:
                labels = remap.astype(labels.dtype)[labels]
        self.crops, self.colors, self._boxes, self._union = crops, colors, new_boxes, union
        self.labels = overlay.LabelMap(labels, self.labels.x0, self.labels.y0, self.labels.stride)
        for box in changed[changed[:, 2] > changed[:, 0]]:
            self._redraw(box)
        self._show(self.fill, self._fill_rgba)
        if self.edges is not None:
            self._show(self.edges, self._edge_rgba)
        return True

    def _patch_tail(self, crops: list, colors: np.ndarray, visible: QRectF) -> bool:
        """The last crops taken away or added (the worst scores, drawn under all others): the map needs no
        new drawing of the crops kept. Taken away: their pixels had no kept crop under them, so they clear.
        Added: they show where no kept crop is. Colours and outlines are then made again from the map."""
        n_old, n_new = len(self.crops), len(crops)
        if not np.array_equal(self.colors[: min(n_old, n_new)], colors[: min(n_old, n_new)]):
            return False
        labels = self.labels.labels
        if n_new < n_old:
            boxes = self._boxes[:n_new]
        else:
            boxes = np.concatenate([self._boxes, crop_boxes(crops[n_old:])])
        union = self._union_of(boxes)
        if not self._fits(union, visible):
            return False
        if n_new < n_old:
            ys, xs = np.nonzero(labels > n_new)
            labels[ys, xs] = 0
        else:
            height, width = self.image_size
            lx, ly, lw, lh = self.labels.rect()
            added = overlay.label_map(crops[n_old:], height, width, (lx, ly, lx + lw, ly + lh), self.labels.stride)
            ys, xs = np.nonzero((labels == 0) & (added.labels > 0))
            labels[ys, xs] = added.labels[ys, xs] + n_old
        self.crops, self.colors, self._boxes, self._union = crops, colors, boxes, union
        self._recolour_at(ys, xs)
        return True

    def _recolour_at(self, ys: np.ndarray, xs: np.ndarray) -> None:
        """Colours and outlines again at the overlay pixels (ys, xs) only, whose labels a tail patch changed.

        Only those pixels can look different: each changed from 0 to a new label or from a label to 0, and a
        kept pixel next to one had a neighbour of another label before and after (so it was and stays on
        its outline, of either width). Recolouring the whole map (two palette look-ups and the outline of
        ~1 M overlay pixels) was most of a score slider move's overlay time."""
        labels = self.labels.labels
        if self._fill_rgba is None or self._fill_rgba.shape[:2] != labels.shape:
            self.render_colours()
            return
        values = labels[ys, xs]
        on_edge = _outline_at(labels, ys, xs, self._thickness())
        fill = overlay.palette(self.colors, self.fill_alpha)[values]
        if self.edges is None:
            fill[on_edge, 3] = 255
        else:
            edges = overlay.palette(self.colors)[values]
            edges[~on_edge] = 0
            self._edge_rgba[ys, xs] = edges
            self._show(self.edges, self._edge_rgba)
        self._fill_rgba[ys, xs] = fill
        self._show(self.fill, self._fill_rgba)

    def _fits(self, union: tuple[int, int, int, int], visible: QRectF) -> bool:
        """The overlay drawn now still serves the crops' union ``union``: same resolution, region inside."""
        (x0, y0, x1, y1), stride = self._plan(union, visible)
        lx, ly, lw, lh = self.labels.rect()
        return stride == self.labels.stride and x0 >= lx and y0 >= ly and x1 <= lx + lw and y1 <= ly + lh

    def _recolour(self, colors: np.ndarray) -> bool:
        if np.array_equal(colors, self.colors):
            return True
        self.colors = colors
        self.render_colours()
        return True

    def render_colours(self) -> None:
        """The same labels in the current colours (a class's colour changed)."""
        labels = self.labels.labels
        fill = overlay.colorize(labels, overlay.palette(self.colors, self.fill_alpha))
        if self.edges is None:
            fill[overlay.boundary(labels, self._thickness()), 3] = 255
        else:
            self._edge_rgba = overlay.outline_rgba(labels, overlay.palette(self.colors))
            self._show(self.edges, self._edge_rgba)
        self._fill_rgba = fill
        self._show(self.fill, fill)

    def _redraw(self, box: np.ndarray) -> None:
        """Draw again the labels and colours of the overlay pixels that image box (x0, y0, x1, y1) covers,
        from every crop that reaches there (earlier ones on top, as ``overlay.label_map`` draws them)."""
        labels, lx, ly, s = self.labels.labels, self.labels.x0, self.labels.y0, self.labels.stride
        rows, cols = labels.shape
        c0, c1 = max(0, (int(box[0]) - lx) // s), min(cols, -(-(int(box[2]) - lx) // s))
        r0, r1 = max(0, (int(box[1]) - ly) // s), min(rows, -(-(int(box[3]) - ly) // s))
        if c1 <= c0 or r1 <= r0:
            return
        region = (lx + c0 * s, ly + r0 * s, lx + c1 * s, ly + r1 * s)
        b = self._boxes
        near = np.flatnonzero(
            (b[:, 0] < region[2]) & (b[:, 2] > region[0]) & (b[:, 1] < region[3]) & (b[:, 3] > region[1])
        )
        height, width = self.image_size
        local = overlay.label_map([self.crops[i] for i in near.tolist()], height, width, region, s).labels
        lookup = np.concatenate([[0], near + 1]).astype(labels.dtype)
        labels[r0:r1, c0:c1] = lookup[local]
        # colours and outlines: an outline pixel depends on its neighbours within the outline's width, so a
        # window that much wider is recomputed and the part it can decide is written back
        thick = self._thickness()
        w0, w1 = max(0, r0 - 2 * thick - 1), min(rows, r1 + 2 * thick + 1)
        v0, v1 = max(0, c0 - 2 * thick - 1), min(cols, c1 + 2 * thick + 1)
        a0, a1 = max(0, r0 - thick), min(rows, r1 + thick)
        b0, b1 = max(0, c0 - thick), min(cols, c1 + thick)
        window = labels[w0:w1, v0:v1]
        inner = (slice(a0 - w0, a1 - w0), slice(b0 - v0, b1 - v0))
        fill = overlay.colorize(window, overlay.palette(self.colors, self.fill_alpha))
        if self.edges is None:
            fill[overlay.boundary(window, thick), 3] = 255
        else:
            edges = overlay.outline_rgba(window, overlay.palette(self.colors))
            self._edge_rgba[a0:a1, b0:b1] = edges[inner]
        self._fill_rgba[a0:a1, b0:b1] = fill[inner]

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
