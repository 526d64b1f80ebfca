"""Issue 13, bug 6: nothing on screen outlives what it describes. The status line after a box's mask came, the
selection count after the selected masks went, Predict all's count in another folder, the states an earlier
model's predictions gave the images, an unreadable image's mark when its folder is opened again."""

from __future__ import annotations

import numpy as np
from PySide6.QtCore import Qt

from engine.checkpoint import save_checkpoint
from engine.data import Instance
from tests.gui.conftest import CLASS_NAMES, tiny_model, write_images
from tests.gui.test_editing import CTRL


def test_the_box_message_goes_when_the_models_mask_has_come(ready):
    app = ready
    app.draw_box(20, 20, 70, 60)
    app.wait_until(lambda: app.pending_boxes() == 0 and app.annotations_drawn() == 1, timeout=30000)
    app.qtbot.wait(50)
    assert "asking the model" not in app.status()


def test_the_session_drops_selected_masks_an_undo_took_away(tmp_path):
    """The Session keeps the selection true by itself: after a change of the current image's instances (an
    undo), selected annotations no longer there are unselected, and the selection event says so."""
    from gui.session.session import Session
    from tests.gui.test_session import project, recorder

    session = Session()
    session.open_project(project(tmp_path))
    session.go_to(1)
    record = session.record
    extra = [Instance.from_mask(np.eye(96, 128, k, dtype=bool), 1) for k in (0, 5, 10)]
    record.instances = [*record.instances, *extra]
    session.select(extra)
    seen = recorder(session)
    record.instances = record.instances[:1]  # as an undo of their drawing puts the list back
    session.record_changed(1)
    assert session.selection.annotations == () and ("selection", session.selection) in seen


def test_no_selection_count_is_left_once_the_selected_masks_are_gone(driver, image_folder):
    app = driver
    app.open(image_folder)  # no model: the clicks below pick the strokes, not predictions
    app.press(Qt.Key.Key_B)
    for x in (20, 60, 100):
        app.press(Qt.Key.Key_Escape)
        app.drag([(x, 30), (x + 10, 30)])
    app.press(Qt.Key.Key_J, CTRL)
    app.press(Qt.Key.Key_Escape)
    app.click(25, 30)
    app.click(65, 30, CTRL)
    app.click(105, 30, CTRL)
    assert "3 selected" in app.edit_status()
    app.open(image_folder)  # the same folder again: nothing is selected in it
    assert app.selected_annotations() == [] and "selected" not in app.edit_status()


def test_predict_alls_count_is_not_carried_into_another_folder(ready, tmp_path):
    app = ready
    done = app.window.inference.batch_done
    with app.qtbot.waitSignal(done, timeout=60000):
        app.predict_all()
    assert app.batch_progress() == "3 / 3"
    other = tmp_path / "other"
    write_images(other, count=2, seed=5)
    app.open(other)
    assert app.batch_progress() == ""
    assert not any(row.startswith("[predicted]") for row in app.image_rows()[1:])


def test_another_model_leaves_the_images_it_has_not_predicted_not_run(ready, tmp_path):
    app = ready
    with app.qtbot.waitSignal(app.window.inference.batch_done, timeout=60000):
        app.predict_all()
    assert all(row.startswith("[predicted]") for row in app.image_rows())
    other = tmp_path / "other_model.safetensors"
    save_checkpoint(tiny_model(seed=1), other, class_names=CLASS_NAMES)
    app.load_model(other)
    app.wait_until(lambda: app.model_path() == str(other) and app.is_idle(), timeout=30000)
    current = f"  {app.window.project.paths[app.index].rsplit('/', 1)[-1]}"  # (the list may be sorted by work)
    rows = [row for row in app.image_rows() if current not in row]
    assert len(rows) == 2 and all(row.startswith("[not run]") for row in rows), rows  # the earlier model's
    app.wait_until(lambda: any(r.startswith("[predicted]") and current in r for r in app.image_rows()), 30000)


def test_an_unreadable_image_is_still_marked_when_its_folder_opens_again(driver, weights_file, image_folder):
    app = driver
    good = (image_folder / "img_0.png").read_bytes()
    (image_folder / "img_1.png").write_bytes(good[: len(good) // 3])  # valid header, truncated pixels
    app.open(image_folder)
    app.step(1)
    app.wait_until(lambda: app.is_idle() and "[unreadable]" in app.image_rows()[1], timeout=10000)
    app.step(1)
    app.wait_idle()
    app.open(image_folder)  # opened again (on its first image): the bad file is known without a visit
    assert app.index == 0 and "[unreadable]" in app.image_rows()[1]
    (image_folder / "img_1.png").write_bytes(good)  # mended: tried again
    app.open(image_folder)
    assert "[unreadable]" not in app.image_rows()[1]


def test_the_description_of_the_detection_under_the_mouse_goes_when_the_mouse_leaves_it(ready):
    app = ready
    first = app.prediction.masks[app.shown[0]]
    ys, xs = np.nonzero(first.mask)
    middle = len(ys) // 2
    app.hover_image(first.x0 + xs[middle] + 0.5, first.y0 + ys[middle] + 0.5)
    described = app.status()
    assert "score" in described
    labels = app.window.canvas.labels
    empty = next(
        (x + 0.5, y + 0.5) for y in range(0, 96, 2) for x in range(0, 128, 2) if labels.at(x + 0.5, y + 0.5) < 0
    )
    app.hover_image(*empty)  # over no detection now
    assert app.status() != described
