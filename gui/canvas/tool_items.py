"""Graphics items for the editing tools' feedback: polygons with vertex handles, a brush circle.

A shape can be marked a hole (vertex mode's hole rings): drawn dashed in ``HOLE_COLOR``. Both draw with
cosmetic pens and handles in screen pixels, so they read the same at any zoom.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import QPointF, QRectF, Qt
from PySide6.QtGui import QColor, QPainter, QPen, QPolygonF

HANDLE_PX = 7.0
HOLE_COLOR = (255, 160, 60)  # orange: a hole ring is told from an outer ring at a glance


def _pen(color: QColor, width: float, dashed: bool = False) -> QPen:
    pen = QPen(color, width)
    pen.setCosmetic(True)
    if dashed:
        pen.setStyle(Qt.PenStyle.DashLine)
    return pen


class ShapeItem(pg.GraphicsObject):
    """Polylines (open or closed) in image coordinates, optionally with square handles at the vertices."""

    def __init__(self) -> None:
        super().__init__()
        self.shapes: list[tuple[np.ndarray, bool]] = []
        self.color = QColor(255, 255, 255)
        self.handles = False
        self.highlighted: tuple[int, int] | None = None  # (shape, vertex) drawn larger
        self.dashed = False
        self.holes: list[bool] = []  # per shape: drawn as a hole
        self._bounds = QRectF()

    def set_shapes(
        self,
        shapes: Sequence[tuple[Sequence, bool]],
        color: tuple[int, int, int] = (255, 255, 255),
        handles: bool = False,
        highlighted: tuple[int, int] | None = None,
        dashed: bool = False,
        holes: Sequence[bool] | None = None,
    ) -> None:
        """``shapes``: (points (N,2) x, y; closed) each; ``holes``: which of them are holes (none by default)."""
        self.prepareGeometryChange()
        self.shapes = [(np.asarray(points, dtype=float).reshape(-1, 2), closed) for points, closed in shapes]
        self.holes = [bool(h) for h in holes] if holes is not None else [False] * len(self.shapes)
        self.color, self.handles, self.highlighted, self.dashed = QColor(*color), handles, highlighted, dashed
        points = [p for p, _ in self.shapes if len(p)]
        if points:
            every = np.concatenate(points)
            (x0, y0), (x1, y1) = every.min(0), every.max(0)
            self._bounds = QRectF(x0, y0, max(x1 - x0, 1e-3), max(y1 - y0, 1e-3))
        else:
            self._bounds = QRectF()
        self.update()

    def clear(self) -> None:
        self.set_shapes([])

    def boundingRect(self) -> QRectF:  # noqa: N802 - Qt API
        if self._bounds.isNull():
            return QRectF()
        view = self.getViewBox()
        margin = 8.0
        if view is not None:  # handles are drawn in screen pixels: leave room for them at any zoom
            size = view.viewPixelSize()
            margin = max(size) * (HANDLE_PX + 4) if size[0] > 0 else margin
        return self._bounds.adjusted(-margin, -margin, margin, margin)

    def paint(self, painter: QPainter, option, widget=None) -> None:  # noqa: ANN001
        if not self.shapes:
            return
        transform = painter.transform()
        painter.save()
        painter.resetTransform()
        painter.setRenderHint(QPainter.RenderHint.Antialiasing, True)
        painter.setBrush(Qt.BrushStyle.NoBrush)
        for s, (points, closed) in enumerate(self.shapes):
            mapped = QPolygonF([transform.map(QPointF(x, y)) for x, y in points])
            painter.setPen(_pen(QColor(0, 0, 0, 160), 3.5))
            self._draw(painter, mapped, closed)
            hole = s < len(self.holes) and self.holes[s]
            color = QColor(*HOLE_COLOR) if hole else self.color
            painter.setPen(_pen(color, 1.5, self.dashed or hole))
            self._draw(painter, mapped, closed)
            if self.handles:
                for v, point in enumerate(mapped):
                    big = self.highlighted == (s, v)
                    half = (HANDLE_PX + (4 if big else 0)) / 2
                    square = QRectF(point.x() - half, point.y() - half, 2 * half, 2 * half)
                    painter.fillRect(square, QColor(255, 255, 255) if big else color)
                    painter.setPen(_pen(QColor(0, 0, 0), 1.0))
                    painter.drawRect(square)
        painter.restore()

    @staticmethod
    def _draw(painter: QPainter, polygon: QPolygonF, closed: bool) -> None:
        if closed and len(polygon) > 2:
            painter.drawPolygon(polygon)
        else:
            painter.drawPolyline(polygon)


class CircleItem(pg.GraphicsObject):
    """The brush outline: a circle of ``radius`` image pixels around the cursor."""

    def __init__(self) -> None:
        super().__init__()
        self.center: tuple[float, float] | None = None
        self.radius = 0.0
        self.color = QColor(255, 255, 255)

    def set_circle(self, x: float, y: float, radius: float, color: tuple[int, int, int] = (255, 255, 255)) -> None:
        self.prepareGeometryChange()
        self.center, self.radius, self.color = (x, y), float(radius), QColor(*color)
        self.update()

    def clear(self) -> None:
        self.prepareGeometryChange()
        self.center = None
        self.update()

    def boundingRect(self) -> QRectF:  # noqa: N802
        if self.center is None:
            return QRectF()
        x, y = self.center
        r = self.radius + 2
        return QRectF(x - r, y - r, 2 * r, 2 * r)

    def paint(self, painter: QPainter, option, widget=None) -> None:  # noqa: ANN001
        if self.center is None:
            return
        x, y = self.center
        painter.setBrush(Qt.BrushStyle.NoBrush)
        painter.setPen(_pen(QColor(0, 0, 0, 160), 3.0))
        painter.drawEllipse(QPointF(x, y), self.radius, self.radius)
        painter.setPen(_pen(self.color, 1.5))
        painter.drawEllipse(QPointF(x, y), self.radius, self.radius)
