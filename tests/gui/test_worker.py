"""The mailbox and the inference client: coalescing slider events, dropping stale results."""

from __future__ import annotations

import threading

import numpy as np

from engine.structures import PredictSettings
from gui.workers.inference_worker import Request
from gui.workers.latest import Mailbox


def request(i: int) -> Request:
    return Request(i, 1, "a.png", np.zeros((4, 4, 3), np.uint8), PredictSettings(score_threshold=i / 100))


def test_mailbox_keeps_only_the_latest_and_asks_for_one_wake_up():
    box = Mailbox()
    wakes = [box.put(request(i)) for i in range(1, 101)]
    assert wakes == [True] + [False] * 99
    assert box.take().id == 100
    assert box.take() is None
    assert box.put(request(101)) is True


def test_a_hundred_slider_moves_while_the_worker_is_busy_run_one_request(qtbot, loaded):
    window = loaded
    worker = window.inference.worker
    served: list[int] = []
    worker.started.connect(served.append)
    worker.pause_before_predict = threading.Event()
    slider = window.thresholds.sliders["score_threshold"].slider
    slider.setValue(60)  # the worker takes this one and holds it
    qtbot.waitUntil(lambda: len(served) == 1, timeout=10000)
    for value in range(61, 76):
        slider.setValue(value)
    worker.pause_before_predict.set()
    qtbot.waitUntil(window.is_idle, timeout=10000)
    worker.pause_before_predict = None
    assert len(served) == 2  # the held one, then only the newest of the 15 that piled up
    assert window.prediction.settings.score_threshold == 0.75
    assert 0 < len(window.prediction) and (window.prediction.scores > 0.75).all()
