"""The review queue's and the image figures' rules without a window (gui/review/queue.py, figures.py)."""

from __future__ import annotations

import math
from types import SimpleNamespace

import numpy as np
import pytest

from engine.structures import InstanceMask
from gui.review.figures import figures_for
from gui.review.queue import ReviewQueue, confidences


def prediction(scores, quality=None, masks=None):  # noqa: ANN001, ANN201
    n = len(scores)
    masks = masks or [InstanceMask(10 * i, 0, np.ones((5, 5), bool)) for i in range(n)]
    fields = dict(scores=np.asarray(scores, np.float32), keys=np.arange(100, 100 + n), masks=masks)
    if quality is not None:
        fields["mask_quality"] = np.asarray(quality, np.float32)
    return SimpleNamespace(**fields)


def test_the_queue_orders_by_score_times_mask_quality_least_first():
    pred = prediction([0.9, 0.8, 0.7, 0.6], quality=[0.2, 1.0, 1.0, 1.0])
    assert confidences(pred) == pytest.approx([0.18, 0.8, 0.7, 0.6])
    queue = ReviewQueue.build(pred, [0, 1, 2, 3])
    assert queue.keys == [100, 103, 102, 101]  # a sure class with a doubtful mask comes first
    no_quality = ReviewQueue.build(prediction([0.9, 0.8, 0.7]), [0, 1, 2])
    assert no_quality.keys == [102, 101, 100]  # without mask quality: by score
    assert ReviewQueue.build(pred, [1, 3]).keys == [103, 101]  # only what is shown


def test_moving_deciding_and_undoing():
    queue = ReviewQueue([1, 2, 3, 4])
    assert queue.current() == 1 and queue.step(1) == 2 and queue.step(-1) == 1
    assert queue.step(-1) == 4  # round the start
    assert queue.update({1, 2, 3}) is True  # 4, on screen, was decided
    assert queue.settle() == 1 and queue.remaining == 3  # on to the next undecided, round the end
    queue.update({2, 3})
    assert queue.settle() == 2 and queue.step(1) == 3 and queue.step(1) == 2  # decided ones are skipped
    queue.update({2, 3, 4})  # an undo brought 4 back
    assert queue.remaining == 3 and not queue.done
    queue.update(set())
    assert queue.done and queue.current() is None and queue.step(1) is None


def test_figures_count_what_is_shown_and_ap_only_with_ground_truth():
    pred = prediction([0.9, 0.5, 0.3])
    figures = figures_for(pred, [1, 2], [])
    assert figures.detections == 2 and figures.work == pytest.approx(0.5 + 0.7) and math.isnan(figures.ap50)
    assert figures.text() == "2 det · work 1.2"
    truth = [pred.masks[0], pred.masks[1]]  # two of the three are right, and they rank first
    figures = figures_for(pred, [], truth)
    assert figures.ap50 == pytest.approx(1.0) and figures.text() == "0 det · work 0.0 · AP50 1.00"
