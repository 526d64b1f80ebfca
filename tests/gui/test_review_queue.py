"""Issue 13, item 11: the review queue (Shift+R) walks the shown predictions from least to most confident, each
centred, zoomed and selected; Space / Delete / a digit decide, B/E accept and fix, P/R reject and redraw,
Tab / Shift+Tab move; the image is reviewed (in the window and in the saved file) only when all are decided.
Review > Colour by Confidence draws them red (doubtful) to green (sure)."""

from __future__ import annotations

import numpy as np
import pytest
from PySide6.QtCore import Qt

from gui.canvas.overlay import confidence_color
from gui.review.queue import confidences
from tests.gui.test_editing import SHIFT, file_annotations, file_state

TAB, BACKTAB = Qt.Key.Key_Tab, Qt.Key.Key_Backtab


def shown_confidences(app) -> np.ndarray:  # noqa: ANN001
    return confidences(app.prediction)[app.shown]


def start_review(app, count: int = 4) -> None:  # noqa: ANN001
    """At most ``count`` predictions shown (a short queue), then Shift+R."""
    app.set_slider("max_detections", count)
    app.wait_until(lambda: len(app.prediction) == count and app.is_idle(), timeout=10000)
    app.press(Qt.Key.Key_R, SHIFT)
    assert app.reviewing()


def test_the_queue_starts_at_the_least_confident_prediction_centred_and_zoomed(ready):
    app = ready
    whole = app.view_rect()
    start_review(app)
    conf = shown_confidences(app)
    row = app.selected_prediction()
    assert row == int(np.argmin(conf)) and app.selected_row() == row  # selected on the canvas and in the list
    x0, y0, x1, y1 = app.prediction.boxes[app.shown[row]]
    vx, vy, vw, vh = app.view_rect()
    assert abs(vx + vw / 2 - (x0 + x1) / 2) < 1 and abs(vy + vh / 2 - (y0 + y1) / 2) < 1  # centred on it
    # the view spans three times its box (the window's aspect ratio widens one side), not the whole image
    side = max(96, 3 * max(x1 - x0, y1 - y0))
    assert min(vw, vh) == pytest.approx(side, rel=0.02) and (vx, vy, vw, vh) != pytest.approx(whole)
    assert "Review 1/4" in app.status() and "Space/Del/1-9 decide" in app.status()

    order = list(np.argsort(conf, kind="stable"))
    app.press(TAB)
    assert app.selected_prediction() == order[1] and "Review 2/4" in app.status()
    x0, y0, x1, y1 = app.prediction.boxes[app.shown[order[1]]]
    vx, vy, vw, vh = app.view_rect()
    assert abs(vx + vw / 2 - (x0 + x1) / 2) < 1 and abs(vy + vh / 2 - (y0 + y1) / 2) < 1  # the view followed
    app.press(TAB)
    assert app.selected_prediction() == order[2]
    app.press(BACKTAB, SHIFT)
    assert app.selected_prediction() == order[1]
    assert app.image_rows()[0].startswith("[predicted]")  # looking is not deciding


def test_deciding_every_prediction_marks_the_image_reviewed_in_the_window_and_the_file(ready):
    app = ready
    start_review(app)
    first = app.prediction.masks[app.shown[app.selected_prediction()]]
    app.press(Qt.Key.Key_Space)  # accept the least confident
    app.wait_until(lambda: len(app.shown) == 3)
    saved = file_annotations(app.saved())
    assert len(saved) == 1 and saved[0]["area"] == first.area
    app.wait_until(lambda: app.selected_prediction() == int(np.argmin(shown_confidences(app))))  # went on
    assert "3 left" in app.status()

    app.press(Qt.Key.Key_Delete)  # reject the next
    app.wait_until(lambda: len(app.shown) == 2 and app.selected_prediction() >= 0)
    assert len(file_annotations(app.saved())) == 1 and app.reviewing()

    first_class = app.class_names_listed()[0]
    app.press(Qt.Key.Key_1)  # accept the next as class 1 (the first in the class list)
    app.wait_until(lambda: len(app.shown) == 1 and app.selected_prediction() >= 0)
    doc = app.saved()
    names = {c["id"]: c["name"] for c in doc["categories"]}
    assert names[file_annotations(doc)[-1]["category_id"]] == first_class
    assert not app.image_rows()[0].startswith("[reviewed]")

    app.press(Qt.Key.Key_Space)  # the last one: the queue is done, the image reviewed
    app.wait_until(lambda: not app.reviewing())
    assert app.image_rows()[0].startswith("[reviewed]")
    doc = app.saved()
    assert file_state(doc) == "reviewed" and len(file_annotations(doc)) == 3
    assert "Review done" in app.status()


def test_b_accepts_the_prediction_for_fixing_and_tab_goes_on(ready):
    app = ready
    start_review(app)
    order = list(np.argsort(shown_confidences(app), kind="stable"))
    second_key = int(app.prediction.keys[app.shown[order[1]]])
    app.press(Qt.Key.Key_B)  # fix its mask with the brush: it becomes an annotation, selected
    assert app.tool() == "brush" and len(app.selected_annotations()) == 1
    assert len(file_annotations(app.saved())) == 1
    app.qtbot.wait(50)
    assert app.reviewing() and app.tool() == "brush"  # it stays while the user paints
    app.press(TAB)
    assert app.tool() == "edit"
    row = app.selected_prediction()
    assert row >= 0 and int(app.prediction.keys[app.shown[row]]) == second_key

    app.press(Qt.Key.Key_P)  # redraw this one: rejected, the polygon tool on
    app.wait_until(lambda: len(app.shown) == 2)
    assert app.tool() == "polygon" and len(file_annotations(app.saved())) == 1


def test_review_without_a_model_says_what_to_do(driver, image_folder):
    app = driver
    assert app.open(image_folder)
    app.press(Qt.Key.Key_R, SHIFT)
    assert not app.reviewing() and "load a model" in app.status()


def test_colour_by_confidence_paints_each_mask_by_its_confidence(ready):
    app = ready
    app.set_slider("max_detections", 3)
    app.wait_until(lambda: len(app.prediction) == 3 and app.is_idle(), timeout=10000)
    app.menu("&Colour by Confidence")
    pixels = app.overlay_pixels()
    conf = confidences(app.prediction)
    for i in app.shown:  # a pixel of each mask that no better one covers shows that mask's colour
        crop = app.prediction.masks[i]
        others = [app.prediction.masks[j].full(*pixels.shape[:2]) for j in app.shown if j < i]
        own = crop.full(*pixels.shape[:2]) & ~np.any(others, axis=0) if others else crop.full(*pixels.shape[:2])
        ys, xs = np.nonzero(own)
        assert len(ys)
        assert tuple(pixels[ys[0], xs[0], :3]) == confidence_color(conf[i])
    app.menu("&Colour by Confidence")  # off: the instance colours again
    assert not any(
        tuple(app.overlay_pixels()[y, x, :3]) == confidence_color(conf[i])
        for i in app.shown[:1]
        for y, x in [np.argwhere(app.prediction.masks[i].full(*pixels.shape[:2]))[0]]
    )


def test_an_undo_puts_a_decision_back_in_the_queue(ready):
    app = ready
    start_review(app, count=2)
    app.press(Qt.Key.Key_Space)  # accept the least confident
    app.wait_until(lambda: len(app.shown) == 1 and app.selected_prediction() >= 0)
    assert "1 left" in app.status()
    app.press(Qt.Key.Key_Z, Qt.KeyboardModifier.ControlModifier)  # take it back: two to decide again
    app.wait_until(lambda: len(app.shown) == 2)
    assert app.reviewing() and file_annotations(app.saved()) == []
    app.press(Qt.Key.Key_Delete)  # reject the one on screen
    app.wait_until(lambda: len(app.shown) == 1 and app.selected_prediction() >= 0)
    assert app.reviewing()  # the undone one is still to decide
    app.press(Qt.Key.Key_Delete)
    app.wait_until(lambda: not app.reviewing())
    assert app.image_rows()[0].startswith("[reviewed]") and file_state(app.saved()) == "reviewed"
