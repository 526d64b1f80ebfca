"""The canvas alone: level of detail for huge overlays, Ctrl+wheel zoom, wheel scroll, hover highlight."""

from __future__ import annotations

import numpy as np
import pytest
from engine.structures import InstanceMask
from PySide6.QtCore import QPoint, QPointF, Qt
from PySide6.QtGui import QWheelEvent

from gui.canvas import mask_layers
from gui.canvas.view import Canvas


@pytest.fixture
def canvas(qtbot):
    from gui.app import create_app

    create_app()
    widget = Canvas()
    qtbot.addWidget(widget)
    widget.resize(600, 400)
    widget.show()
    qtbot.waitExposed(widget)
    widget.set_image(np.full((400, 600, 3), 90, np.uint8))
    return widget


def squares(count: int = 12, size: int = 30) -> list[InstanceMask]:
    return [InstanceMask(10 + 45 * i, 10 + 30 * (i % 8), np.ones((size, size), bool)) for i in range(count)]


def wheel(canvas: Canvas, delta: int, modifiers=Qt.KeyboardModifier.NoModifier) -> None:  # noqa: ANN001
    center = QPointF(canvas.viewport().width() / 2, canvas.viewport().height() / 2)
    event = QWheelEvent(
        center, canvas.viewport().mapToGlobal(center), QPoint(0, 0), QPoint(0, delta),
        Qt.MouseButton.NoButton, modifiers, Qt.ScrollPhase.NoScrollPhase, False,
    )  # fmt: skip
    canvas.wheelEvent(event)


def test_huge_overlays_are_sampled_and_rerendered_finer_when_zoomed_in(canvas, monkeypatch):
    monkeypatch.setattr(mask_layers, "MAX_OVERLAY_PIXELS", 20_000)
    crops = squares()
    canvas.set_instances(crops, np.zeros((12, 4)), [(255, 0, 0)] * 12, [""] * 12)
    coarse = canvas.labels
    assert coarse.stride > 1 and coarse.labels.size <= 20_000
    assert canvas.labels.at(25, 25) == 0  # hover still finds instance 0
    canvas.view.setRange(xRange=(0, 100), yRange=(0, 70), padding=0)
    canvas._refresh_detail()
    fine = canvas.labels
    assert fine.stride < coarse.stride and fine.labels.size <= 20_000
    x, y, w, h = fine.rect()
    assert x == 10 and x + w <= 200  # the union starts at 10; only what is on screen (and a margin) is drawn
    assert fine.at(25, 25) == 0 and fine.at(5, 5) == -1


def test_ctrl_wheel_zooms_and_the_plain_wheel_scrolls(canvas):
    canvas.fit()
    before = canvas.view.viewRect()
    wheel(canvas, 120, Qt.KeyboardModifier.ControlModifier)
    zoomed = canvas.view.viewRect()
    assert zoomed.width() < before.width() * 0.95
    wheel(canvas, -120)
    scrolled = canvas.view.viewRect()
    assert scrolled.width() == pytest.approx(zoomed.width())
    assert scrolled.top() != pytest.approx(zoomed.top())


def test_hovering_an_instance_highlights_it(qtbot, canvas):
    crops = squares(3, size=60)
    boxes = np.array([[c.x0, c.y0, c.x0 + 60, c.y0 + 60] for c in crops], float)
    canvas.set_instances(crops, boxes, [(0, 200, 0)] * 3, ["a", "b", "c"])
    scene_point = canvas.view.mapViewToScene(QPointF(crops[1].x0 + 30, crops[1].y0 + 30))
    with qtbot.waitSignal(canvas.hovered, timeout=2000) as hovered:
        canvas.scene().sigMouseMoved.emit(scene_point)
    assert hovered.args == [1]
    assert canvas.layers["boxes"].highlighted == 1
    assert canvas.layers["highlight"].image.shape[:2] == (60, 60)
