"""Custom pyqtgraph items that draw many rectangles in one paint call (no item per box).

With thousands of boxes (issue 12, item 5: 5,000 instances on one image) a paint draws only the boxes in
the area being repainted, one ``drawRects`` per colour group (colours that differ by less than the eye sees
on a 1-2 px line share a pen when there are many), and at most ``MAX_LABELS`` labels: a hover or a
selection repaints only the boxes around the old and the new highlight."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import QPointF, QRectF, Qt
from PySide6.QtGui import QColor, QFont, QFontMetrics, QPainter, QPen
from PySide6.QtWidgets import QGraphicsItem

EXACT_COLORS = 64  # up to this many distinct colours each gets its own pen; more are grouped (4 bits a channel)
MAX_LABELS = 300  # labels drawn at most (the widest boxes on screen): more only cover each other
THIN_ABOVE = 500  # with more boxes in view they are drawn 1 px wide: Qt's fast path, 3x cheaper than 1.5 px


def _pen(color: QColor, width: float) -> QPen:
    pen = QPen(color, width)
    pen.setCosmetic(True)  # width in screen pixels, whatever the zoom
    return pen


def _rgba(colors: Sequence[QColor] | QColor | np.ndarray, count: int) -> np.ndarray:
    """Colours as given (QColors, one QColor, or an (N,3)/(N,4) array) -> (count,4) uint8 RGBA."""
    if isinstance(colors, QColor):
        return np.tile(np.array(colors.getRgb(), np.uint8), (count, 1))
    if isinstance(colors, np.ndarray):
        out = np.full((count, 4), 255, np.uint8)
        out[:, : colors.shape[1]] = colors[:count]
        return out
    return np.array([c.getRgb() for c in colors], np.uint8).reshape(-1, 4)


class RectsItem(pg.GraphicsObject):
    """(N,4) xyxy rectangles in image pixels, one colour per rectangle (or one for all), cosmetic pens."""

    def __init__(self, width: float = 1.0) -> None:
        super().__init__()
        self._boxes = np.zeros((0, 4))
        self._rects: list[QRectF] = []
        self._rgba = np.zeros((0, 4), np.uint8)
        self._groups: list[tuple[QColor, np.ndarray, list[QRectF]]] = []  # pen colour, members, their rects
        self._group_of = np.zeros(0, np.int64)
        self._pens: dict[float, list[QPen]] = {}  # pen width -> a pen per group, made when first painted
        self._width = width
        self._bounds = QRectF()
        # paint() gets the area being repainted as option.exposedRect: only the boxes there are drawn
        self.setFlag(QGraphicsItem.GraphicsItemFlag.ItemUsesExtendedStyleOption, True)

    def set_rects(
        self, boxes: np.ndarray, colors: Sequence[QColor] | QColor | np.ndarray, bounds: QRectF | None = None
    ) -> None:
        """``colors``: a QColor per rectangle, one QColor for all, or an (N,3) / (N,4) uint8 RGB(A) array."""
        boxes = np.asarray(boxes, dtype=float).reshape(-1, 4)
        self.prepareGeometryChange()
        self._boxes = boxes
        self._rects = [QRectF(x0, y0, x1 - x0, y1 - y0) for x0, y0, x1, y1 in boxes.tolist()]
        self._rgba = _rgba(colors, len(boxes))
        self._group()
        if bounds is not None:
            self._bounds = QRectF(bounds)
        elif len(boxes):
            x0, y0 = boxes[:, :2].min(0)
            x1, y1 = boxes[:, 2:].max(0)
            self._bounds = QRectF(x0, y0, x1 - x0, y1 - y0)
        else:
            self._bounds = QRectF()
        self.update()

    def _group(self) -> None:
        """Rectangles of one pen colour together (colours 4 bits a channel when there are many)."""
        rgba = self._rgba.astype(np.uint32)
        keys = (rgba[:, 0] << 24) | (rgba[:, 1] << 16) | (rgba[:, 2] << 8) | rgba[:, 3]
        unique, first, group_of = np.unique(keys, return_index=True, return_inverse=True)
        if len(unique) > EXACT_COLORS:
            coarse = rgba >> 4
            keys = (coarse[:, 0] << 24) | (coarse[:, 1] << 16) | (coarse[:, 2] << 8) | coarse[:, 3]
            unique, first, group_of = np.unique(keys, return_index=True, return_inverse=True)
        self._group_of = group_of.ravel()
        order = np.argsort(self._group_of, kind="stable")
        starts = np.searchsorted(self._group_of[order], np.arange(len(unique) + 1)).tolist()
        rects = self._rects
        in_order = [rects[i] for i in order.tolist()]  # one pass; each group is then a slice of it
        colors = self._rgba[first].tolist()  # the first member's colour stands for the group
        self._groups = [
            (QColor(*colors[g]), order[starts[g] : starts[g + 1]], in_order[starts[g] : starts[g + 1]])
            for g in range(len(colors))
        ]
        self._pens = {}

    def count(self) -> int:
        return len(self._rects)

    def boundingRect(self) -> QRectF:  # noqa: N802 - Qt API
        return self._bounds.adjusted(-2, -2, 2, 2)

    def _visible(self, area: QRectF) -> np.ndarray | None:
        """Indices of the rectangles that touch ``area`` (item coordinates, padded by the pen); None: all."""
        if not area.isValid() or area.contains(self.boundingRect()):
            return None
        pad = 4 * max(self.pixelWidth(), self.pixelHeight(), 0.0)
        b = self._boxes
        hit = (
            (b[:, 0] <= area.right() + pad) & (b[:, 2] >= area.left() - pad)
            & (b[:, 1] <= area.bottom() + pad) & (b[:, 3] >= area.top() - pad)
        )  # fmt: skip
        return np.flatnonzero(hit)

    def in_view(self) -> np.ndarray:
        """(N,) bool: the rectangles that touch the view (all when the item is in none). Decisions that change
        how boxes look (pen width, which get labels) follow this, never the area being repainted, so that a
        partial repaint draws the same pixels as a whole one."""
        view = self.getViewBox()
        b = self._boxes
        if view is None or not hasattr(view, "viewRect"):
            return np.ones(len(b), dtype=bool)
        r = self.mapRectFromView(view.viewRect())
        return (b[:, 0] <= r.right()) & (b[:, 2] >= r.left()) & (b[:, 1] <= r.bottom()) & (b[:, 3] >= r.top())

    def pen_width(self, in_view: np.ndarray) -> float:
        return self._width if int(np.count_nonzero(in_view)) <= THIN_ABOVE else min(self._width, 1.0)

    def paint(self, painter: QPainter, option, widget=None) -> None:  # noqa: ANN001
        if not self._rects:
            return
        self._paint_rects(painter, option, self.pen_width(self.in_view()))

    def _paint_rects(self, painter: QPainter, option, width: float) -> None:  # noqa: ANN001
        painter.setBrush(Qt.BrushStyle.NoBrush)
        pens = self._pens.get(width)
        if pens is None:  # (hundreds of groups: their pens are kept for the next paints)
            pens = self._pens[width] = [_pen(color, width) for color, _members, _rects in self._groups]
        visible = self._visible(option.exposedRect)
        if visible is None:
            for pen, (_color, _members, rects) in zip(pens, self._groups, strict=True):
                painter.setPen(pen)
                painter.drawRects(rects)
            return
        if not len(visible):
            return
        groups = self._group_of[visible]
        order = np.argsort(groups, kind="stable")
        visible, groups = visible[order], groups[order]
        cuts = np.flatnonzero(np.diff(groups)) + 1
        rects = self._rects
        for part in np.split(visible, cuts):
            painter.setPen(pens[int(self._group_of[part[0]])])
            painter.drawRects([rects[i] for i in part.tolist()])


class BoxesItem(RectsItem):
    """Detection boxes with 'class score' labels drawn in screen pixels (readable at any zoom).

    A label is drawn when its box is at least ``min_label_px`` wide on screen, or when it is highlighted; of
    the boxes in view, the ``MAX_LABELS`` widest on screen at most. ``labels`` may be any sequence (one that
    makes its texts when asked is read only for the labels drawn)."""

    def __init__(self, width: float = 1.5, min_label_px: float = 28.0) -> None:
        super().__init__(width)
        self._labels: Sequence[str] = []
        self.highlighted = -1
        self.min_label_px = min_label_px
        self.font = QFont()
        self.font.setPointSizeF(8.5)

    def set_boxes(
        self, boxes: np.ndarray, colors: Sequence[QColor] | np.ndarray, labels: Sequence[str], bounds: QRectF
    ) -> None:
        self._labels = labels
        self.set_rects(boxes, colors, bounds)

    def set_highlighted(self, index: int) -> None:
        if index != self.highlighted:
            old, self.highlighted = self.highlighted, index
            for i in (old, index):  # only around the two boxes (their labels included) is anything redrawn
                self.update(self._label_area(i)) if 0 <= i < len(self._rects) else None

    def _label_area(self, i: int) -> QRectF:
        """The box ``i`` with the room its label and the highlight pen may take (item coordinates)."""
        px, py = self.pixelWidth(), self.pixelHeight()
        if not (px > 0 and py > 0):
            return self.boundingRect()
        metrics = QFontMetrics(self.font)
        text = self._labels[i] if i < len(self._labels) else ""
        width, height = (metrics.horizontalAdvance(text) + 12) * px, (metrics.height() + 6) * py
        return self._rects[i].adjusted(-width, -height, width, height)

    def _labelled(self, transform, in_view: np.ndarray) -> np.ndarray:  # noqa: ANN001 - QTransform
        """The boxes that get a label: in view, wide enough on screen, the widest MAX_LABELS."""
        if not len(self._boxes):
            return np.zeros(0, np.int64)
        b = self._boxes
        scale = abs(transform.m11()) or 1.0
        chosen = np.flatnonzero(in_view & ((b[:, 2] - b[:, 0]) * scale >= self.min_label_px))
        if len(chosen) > MAX_LABELS:
            widths = b[chosen, 2] - b[chosen, 0]
            chosen = np.sort(chosen[np.argsort(-widths, kind="stable")[:MAX_LABELS]])
        return chosen

    def paint(self, painter: QPainter, option, widget=None) -> None:  # noqa: ANN001
        if not self._rects:
            return
        in_view = self.in_view()
        self._paint_rects(painter, option, self.pen_width(in_view))
        highlighted = 0 <= self.highlighted < len(self._rects)
        if highlighted:
            painter.setPen(_pen(QColor(255, 255, 255), 3.0))
            painter.drawRect(self._rects[self.highlighted])
        transform = painter.transform()
        labelled = self._labelled(transform, in_view)
        area = option.exposedRect
        if area.isValid() and not area.contains(self.boundingRect()) and len(labelled):
            # a partial repaint (a hover): only labels that can reach the repainted area
            px, py = self.pixelWidth(), self.pixelHeight()
            reach_x, reach_y = 200 * px, 30 * py
            b = self._boxes[labelled]
            near = (
                (b[:, 0] - reach_x <= area.right()) & (b[:, 2] + reach_x >= area.left())
                & (b[:, 1] - reach_y <= area.bottom()) & (b[:, 3] >= area.top() - reach_y)
            )  # fmt: skip
            labelled = labelled[near]
        order = [i for i in labelled.tolist() if i != self.highlighted]
        if highlighted:
            order.append(self.highlighted)  # drawn last: on top
        if not order:
            return
        painter.save()
        painter.resetTransform()
        painter.setFont(self.font)
        metrics = QFontMetrics(self.font)
        limits = transform.mapRect(self._bounds)  # stay inside the image, i.e. inside boundingRect
        for i in order:
            self._paint_label(painter, transform, metrics, limits, i)
        painter.restore()

    def _paint_label(self, painter: QPainter, transform, metrics: QFontMetrics, limits: QRectF, i: int) -> None:  # noqa: ANN001
        rect = transform.mapRect(self._rects[i])
        text = self._labels[i] if i < len(self._labels) else ""
        width, height = metrics.horizontalAdvance(text) + 6, metrics.height() + 2
        above = rect.top() - height >= limits.top()
        left = max(limits.left(), min(rect.left(), limits.right() - width))
        top_left = QPointF(left, rect.top() - height if above else rect.top())
        background = QRectF(top_left, QPointF(top_left.x() + width, top_left.y() + height))
        color = QColor(*(int(v) for v in self._rgba[i]))
        painter.fillRect(background, color)
        light = 0.299 * color.red() + 0.587 * color.green() + 0.114 * color.blue() > 140
        painter.setPen(QColor(0, 0, 0) if light else QColor(255, 255, 255))
        align = Qt.AlignmentFlag.AlignLeft | Qt.AlignmentFlag.AlignVCenter
        painter.drawText(background.adjusted(3, 1, -3, -1), align, text)
