"""Issue 13, bug 1: "reviewed" means a person said so (Ctrl+Return), never an edit. An edited image is
"annotated"; Ctrl+Return on a reviewed image takes it back, undoably; files keep their states."""

from __future__ import annotations

import json

import numpy as np
from PySide6.QtCore import Qt

from tests.gui.test_editing import CTRL, SHIFT, file_annotations, file_state, undo

RETURN = Qt.Key.Key_Return


def train_panel_reviewed(app) -> str:  # noqa: ANN001
    """The Train panel's "Reviewed images (n)" entry, as the user reads it."""
    return app.window.train_panel.subset.itemText(0)


def test_accepting_and_rejecting_leave_an_image_annotated_and_only_ctrl_return_makes_it_reviewed(ready):
    app = ready
    app.set_slider("max_detections", 4)
    app.wait_until(lambda: len(app.prediction) == 4 and app.is_idle(), timeout=10000)
    app.pick_row(0)
    app.press(Qt.Key.Key_Delete)  # reject one prediction: a quick look, nothing checked
    assert not app.image_rows()[0].startswith("[reviewed]")
    app.press(Qt.Key.Key_A, SHIFT)  # accept the rest
    doc = app.saved()
    assert len(file_annotations(doc)) > 0 and file_state(doc) != "reviewed"
    assert app.image_rows()[0].startswith("[annotated]")
    assert "(0)" in train_panel_reviewed(app)  # nothing goes into a default training run

    app.press(RETURN, CTRL)  # the person says: checked
    assert app.image_rows()[0].startswith("[reviewed]") and file_state(app.saved()) == "reviewed"
    assert "(1)" in train_panel_reviewed(app) and "reviewed" in app.status().lower()

    app.press(RETURN, CTRL)  # again: taken back, and the status line says so
    assert app.image_rows()[0].startswith("[annotated]") and file_state(app.saved()) != "reviewed"
    assert "no longer reviewed" in app.status().lower() and "annotated" in app.status()
    assert "(0)" in train_panel_reviewed(app)

    undo(app)  # the toggle is undoable
    assert app.image_rows()[0].startswith("[reviewed]") and file_state(app.saved()) == "reviewed"


def test_a_reviewed_image_from_a_file_stays_reviewed_after_an_edit(driver, tmp_path):
    """A COCO file of human ground truth (its images are "reviewed") keeps that state through an edit."""
    from tests.gui.conftest import write_images

    folder = tmp_path / "gt"
    write_images(folder, 2)
    mask = np.zeros((96, 128), bool)
    mask[10:30, 10:40] = True
    doc = {
        "images": [{"id": 1, "file_name": "img_0.png", "width": 128, "height": 96},
                   {"id": 2, "file_name": "img_1.png", "width": 128, "height": 96}],
        "annotations": [{"id": 1, "image_id": 1, "category_id": 1, "bbox": [10, 10, 30, 20], "area": 600,
                         "iscrowd": 0, "segmentation": [[10, 10, 40, 10, 40, 30, 10, 30]]}],
        "categories": [{"id": 1, "name": "cell"}],
    }  # fmt: skip
    (folder / "annotations.json").write_text(json.dumps(doc))
    app = driver
    assert app.open(folder / "annotations.json")
    app.go_to(0)
    app.wait_until(lambda: app.index == 0 and app.image is not None and app.is_idle())
    assert app.image_rows()[0].startswith("[reviewed]")
    app.press(Qt.Key.Key_J, CTRL)
    app.click(25, 20)
    app.press(Qt.Key.Key_Delete)
    saved = app.saved()
    assert file_annotations(saved) == [] and file_state(saved) == "reviewed"
    assert app.image_rows()[0].startswith("[reviewed]")
