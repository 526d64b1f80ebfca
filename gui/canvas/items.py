"""Custom pyqtgraph items that draw many rectangles in one paint call (no item per box)."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import QPointF, QRectF, Qt
from PySide6.QtGui import QColor, QFont, QFontMetrics, QPainter, QPen


def _pen(color: QColor, width: float) -> QPen:
    pen = QPen(color, width)
    pen.setCosmetic(True)  # width in screen pixels, whatever the zoom
    return pen


class RectsItem(pg.GraphicsObject):
    """(N,4) xyxy rectangles in image pixels, one colour per rectangle (or one for all), cosmetic pens."""

    def __init__(self, width: float = 1.0) -> None:
        super().__init__()
        self._rects: list[QRectF] = []
        self._colors: list[QColor] = []
        self._width = width
        self._bounds = QRectF()

    def set_rects(self, boxes: np.ndarray, colors: Sequence[QColor] | QColor, bounds: QRectF | None = None) -> None:
        boxes = np.asarray(boxes, dtype=float).reshape(-1, 4)
        self.prepareGeometryChange()
        self._rects = [QRectF(x0, y0, x1 - x0, y1 - y0) for x0, y0, x1, y1 in boxes.tolist()]
        self._colors = [colors] * len(self._rects) if isinstance(colors, QColor) else list(colors)
        if bounds is not None:
            self._bounds = QRectF(bounds)
        elif self._rects:
            x0, y0 = boxes[:, :2].min(0)
            x1, y1 = boxes[:, 2:].max(0)
            self._bounds = QRectF(x0, y0, x1 - x0, y1 - y0)
        else:
            self._bounds = QRectF()
        self.update()

    def count(self) -> int:
        return len(self._rects)

    def boundingRect(self) -> QRectF:  # noqa: N802 - Qt API
        return self._bounds.adjusted(-2, -2, 2, 2)

    def paint(self, painter: QPainter, option, widget=None) -> None:  # noqa: ANN001
        if not self._rects:
            return
        groups: dict[int, list[QRectF]] = {}
        colors: dict[int, QColor] = {}
        for rect, color in zip(self._rects, self._colors):
            groups.setdefault(color.rgba(), []).append(rect)
            colors[color.rgba()] = color
        painter.setBrush(Qt.BrushStyle.NoBrush)
        for rgba, rects in groups.items():
            painter.setPen(_pen(colors[rgba], self._width))
            painter.drawRects(rects)


class BoxesItem(RectsItem):
    """Detection boxes with 'class score' labels drawn in screen pixels (readable at any zoom).

    A label is drawn when its box is at least ``min_label_px`` wide on screen, or when it is highlighted."""

    def __init__(self, width: float = 1.5, min_label_px: float = 28.0) -> None:
        super().__init__(width)
        self._labels: list[str] = []
        self.highlighted = -1
        self.min_label_px = min_label_px
        self.font = QFont()
        self.font.setPointSizeF(8.5)

    def set_boxes(self, boxes: np.ndarray, colors: Sequence[QColor], labels: Sequence[str], bounds: QRectF) -> None:
        self._labels = list(labels)
        self.set_rects(boxes, colors, bounds)

    def set_highlighted(self, index: int) -> None:
        if index != self.highlighted:
            self.highlighted = index
            self.update()

    def paint(self, painter: QPainter, option, widget=None) -> None:  # noqa: ANN001
        super().paint(painter, option, widget)
        if not self._rects:
            return
        if 0 <= self.highlighted < len(self._rects):
            painter.setPen(_pen(QColor(255, 255, 255), 3.0))
            painter.drawRect(self._rects[self.highlighted])
        transform = painter.transform()
        painter.save()
        painter.resetTransform()
        painter.setFont(self.font)
        metrics = QFontMetrics(self.font)
        order = [i for i in range(len(self._rects)) if i != self.highlighted]
        if 0 <= self.highlighted < len(self._rects):
            order.append(self.highlighted)  # drawn last: on top
        for i in order:
            self._paint_label(painter, transform, metrics, i)
        painter.restore()

    def _paint_label(self, painter: QPainter, transform, metrics: QFontMetrics, i: int) -> None:  # noqa: ANN001
        rect = transform.mapRect(self._rects[i])
        if rect.width() < self.min_label_px and i != self.highlighted:
            return
        text = self._labels[i] if i < len(self._labels) else ""
        width, height = metrics.horizontalAdvance(text) + 6, metrics.height() + 2
        limits = transform.mapRect(self._bounds)  # stay inside the image, i.e. inside boundingRect
        above = rect.top() - height >= limits.top()
        left = max(limits.left(), min(rect.left(), limits.right() - width))
        top_left = QPointF(left, rect.top() - height if above else rect.top())
        background = QRectF(top_left, QPointF(top_left.x() + width, top_left.y() + height))
        color = self._colors[i]
        painter.fillRect(background, color)
        light = 0.299 * color.red() + 0.587 * color.green() + 0.114 * color.blue() > 140
        painter.setPen(QColor(0, 0, 0) if light else QColor(255, 255, 255))
        align = Qt.AlignmentFlag.AlignLeft | Qt.AlignmentFlag.AlignVCenter
        painter.drawText(background.adjusted(3, 1, -3, -1), align, text)
