"""Issue 13, items 12 and 13: after Predict All the image list is ordered by expected work (most first) and
shows each image's detections and that figure, one click from file order; the Errors view (Shift+E) marks
false positives, missed objects and poor masks in their colours against the annotations, and the list shows
the image's mask AP50."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest
from PySide6.QtCore import Qt

from engine.quality import expected_work
from gui.review.errors_view import COLORS
from gui.review.queue import confidences
from tests.gui.test_editing import SHIFT, draw

FIGURES = re.compile(r"(\d+) det · work (\d+\.\d)")


def row_figures(row: str) -> tuple[int, float] | None:
    found = FIGURES.search(row)
    return (int(found.group(1)), float(found.group(2))) if found else None


def test_predict_all_orders_the_images_by_expected_work_and_file_order_is_one_click_back(qtbot, ready):
    app = ready
    names = [Path(p).name for p in app.project.paths]
    with qtbot.waitSignal(app.window.inference.batch_done, timeout=60000):
        app.menu("&Predict All")
    # the figures come from their own thread, the order once all are in
    app.wait_until(lambda: all(row_figures(r) for r in app.image_rows()) and "ordered by" in app.status())
    rows, order = app.image_rows(), app.image_order()
    works = [row_figures(r)[1] for r in rows]
    assert works == sorted(works, reverse=True)  # most work first
    assert [Path(app.project.paths[i]).name in row for i, row in zip(order, rows)] == [True] * 3
    assert "ordered by expected work" in app.status()
    # the current image's figures are those of what it shows: count and sum of (1 - confidence)
    current = rows[order.index(app.index)]
    conf = confidences(app.prediction)[app.shown]
    assert row_figures(current) == (len(app.shown), pytest.approx(round(expected_work(conf), 1), abs=0.051))

    app.click_image_row(0)  # the top row opens that image, whatever its place in the folder
    app.wait_until(lambda: app.index == order[0] and app.is_idle(), timeout=30000)

    app.click_most_work_first()  # back to file order
    assert app.image_order() == [0, 1, 2]
    assert [row.split("  ")[1].split()[0] for row in app.image_rows()] == names
    app.click_image_row(2)
    app.wait_until(lambda: app.index == 2, timeout=30000)


def empty_spot(app, size: int = 4) -> tuple[int, int]:  # noqa: ANN001
    """The top-left corner of a size x size square no detection's mask touches (a margin of 2 around it)."""
    h, w = app.image.shape[:2]
    covered = np.zeros((h, w), bool)
    for crop in app.prediction.masks:
        covered |= crop.full(h, w)
    for y in range(4, h - size - 4):
        for x in range(4, w - size - 4):
            if not covered[y - 2 : y + size + 2, x - 2 : x + size + 2].any():
                return x, y
    pytest.skip("the tiny model's masks cover the whole image")


def test_errors_view_marks_false_positives_and_missed_objects_and_the_list_shows_ap50(ready):
    app = ready
    app.set_slider("max_detections", 4)
    app.wait_until(lambda: len(app.prediction) == 4 and app.is_idle(), timeout=10000)
    pred = app.prediction
    for _ in range(2):  # accept the two best: they are the ground truth, the other two false positives
        app.pick_row(0)
        app.press(Qt.Key.Key_Space)
    app.wait_until(lambda: len(app.shown) == 2)
    x, y = empty_spot(app)
    draw(app, [(x, y), (x + 4, y), (x + 4, y + 4), (x, y + 4)])  # an object the model missed
    app.press(Qt.Key.Key_J, Qt.KeyboardModifier.ControlModifier)  # back to edit mode

    app.press(Qt.Key.Key_E, SHIFT)
    assert app.review_action("errors").isChecked()
    assert "2 false pos. (red)" in app.status() and "1 missed (blue)" in app.status()
    assert "0 poor masks" in app.status() and "2 right" in app.status()
    layer = app.errors_layer()
    h, w = layer.shape[:2]
    false_positives = [pred.masks[i].full(h, w) for i in range(2, 4)]
    good = [pred.masks[i].full(h, w) for i in range(2)]
    only_fp = false_positives[0] & ~np.any(good + false_positives[1:], axis=0)
    ys, xs = np.nonzero(only_fp)
    assert len(ys) and tuple(layer[ys[0], xs[0], :3]) == COLORS["false_positive"]
    assert tuple(layer[y + 2, x + 2, :3]) == COLORS["missed"]  # the drawn square, blue
    # AP50: the two right detections rank first (best scores), then two false positives; 2 of 3 objects found
    assert re.search(r"AP50 0\.6\d", app.status())
    app.wait_until(lambda: "AP50 0.6" in app.image_rows()[0])  # the list follows the edits (shortly after)
    assert app.image_rows()[0].startswith("[annotated]")

    app.press(Qt.Key.Key_E, SHIFT)  # off: nothing drawn
    assert not app.errors_layer().any() and not app.review_action("errors").isChecked()


def test_errors_view_on_an_image_without_annotations_says_it_needs_them(ready):
    app = ready
    app.press(Qt.Key.Key_E, SHIFT)
    assert "no annotations" in app.status() and not app.errors_layer().any()


def test_the_figures_are_computed_off_the_gui_thread(qtbot, ready, monkeypatch):
    """Matching thousands of instances and the image's AP take most of a second: never on the GUI thread."""
    import threading

    import gui.review.tools as tools

    app = ready
    threads = []
    real = tools.figures_for

    def spy(*args, **kwargs):  # noqa: ANN002, ANN003, ANN202
        threads.append(threading.current_thread())
        return real(*args, **kwargs)

    monkeypatch.setattr(tools, "figures_for", spy)
    app.window.review._current_figures()
    current = lambda: app.image_rows()[app.image_order().index(app.index)]  # noqa: E731
    app.wait_until(lambda: bool(threads) and row_figures(current()) is not None)
    assert threading.main_thread() not in threads


def test_after_an_edit_the_figures_compare_only_the_annotations_it_made(ready, monkeypatch):
    """The overlaps of detections and annotations are kept across the edits of the image (engine.ground_truth.
    PairsCache): an undo makes no annotation, so nothing is compared again; the AP50 is the uncached one."""
    import gui.review.tools as tools
    from engine.ground_truth import image_ap

    app = ready
    review = app.window.review
    calls = []  # (annotations, compared again, AP50) of each figures job
    real = tools.figures_for

    def spy(prediction, shown, truth, *args, **kwargs):  # noqa: ANN001, ANN002, ANN003, ANN202
        figures = real(prediction, shown, truth, *args, **kwargs)
        calls.append((len(truth), review._pairs.computed, figures.ap50))
        return figures

    monkeypatch.setattr(tools, "figures_for", spy)
    app.set_slider("max_detections", 4)
    app.wait_until(lambda: len(app.prediction) == 4 and app.is_idle(), timeout=10000)
    pred = app.prediction
    for _ in range(2):
        app.pick_row(0)
        app.press(Qt.Key.Key_Space)
    app.wait_until(lambda: any(n == 2 for n, _, _ in calls))
    assert sum(computed for _, computed, _ in calls) >= 2  # the accepted masks were compared with the detections

    app.pick_row(2)  # the first accepted, the best detection (rows: the two detections left, then the annotations)
    app.press(Qt.Key.Key_Delete)
    app.wait_until(lambda: len(app.project.annotations_and_crops(app.index)[1]) == 1)
    app.wait_until(lambda: calls[-1][0] == 1)
    crops = app.project.annotations_and_crops(app.index)[1]
    assert calls[-1][1] == 0  # nothing new to compare
    # the best detection, shown again, now matches no annotation: it ranks first, a false positive
    assert calls[-1][2] == image_ap(pred.masks, pred.scores, crops) == pytest.approx(0.5)
    app.wait_until(lambda: f"AP50 {calls[-1][2]:.2f}" in app.image_rows()[app.image_order().index(app.index)])
