"""Leftovers of the loop drive under Xvfb (issue 13, docs/GUI.md "The whole loop on another folder"), each driven
through the window as a user does: rejections kept with the project, an explicit --weights winning over the
folder's remembered model, runs told apart by name, the loss plot after one step, the status bar at 1280x800, and
Resume for a stopped run."""

from __future__ import annotations

import json

import numpy as np
from pycocotools.coco import COCO
from PySide6.QtCore import Qt

from tests.gui.conftest import write_images


def reject_rows(app, count: int) -> list[np.ndarray]:  # noqa: ANN001
    """Pick the first shown prediction and press Delete, ``count`` times; the boxes rejected."""
    boxes = []
    for _ in range(count):
        before = len(app.shown)
        boxes.append(app.prediction.boxes[app.shown[0]].copy())
        app.pick_row(0)
        app.press(Qt.Key.Key_Delete)
        app.wait_until(lambda: len(app.shown) == before - 1 and app.is_idle(), timeout=10000)  # noqa: B023
    return boxes


def shown_boxes(app) -> list[np.ndarray]:  # noqa: ANN001
    return [app.prediction.boxes[i] for i in app.shown]


def test_rejections_are_kept_when_the_folder_is_opened_again(ready, tmp_path):
    app = ready
    app.filter_class("")
    folder = app.project.root
    first = len(app.shown)
    assert first >= 3
    rejected = reject_rows(app, 2)
    app.press(Qt.Key.Key_Z, Qt.KeyboardModifier.ControlModifier)  # the second rejection undone: it shows again
    app.wait_until(lambda: len(app.shown) == first - 1 and app.is_idle())
    other = tmp_path / "other"
    write_images(other, count=1, seed=5)
    assert app.open(other, wait_for_prediction=True)  # leave the folder ...
    assert app.open(folder, wait_for_prediction=True)  # ... and come back: the first image again
    app.filter_class("")
    assert app.index == 0
    assert len(app.shown) == first - 1, app.instance_rows()  # the rejection holds; the undone one does not
    assert not any(np.allclose(box, rejected[0]) for box in shown_boxes(app))
    assert any(np.allclose(box, rejected[1]) for box in shown_boxes(app))
    stored = json.loads((folder / "models" / "rejections.json").read_text())
    assert list(stored["images"]) == ["img_0.png"] and len(stored["images"]["img_0.png"]["rejected"]) == 1
    coco = COCO(str(folder / "annotations.json"))  # the COCO file stays valid and holds no rejection
    assert coco.getAnnIds() == []


def test_weights_named_on_the_command_line_win_over_the_folders_model(driver, tmp_path):
    from gui.app import choose_startup, open_startup, parse_args
    from tests.gui.test_model_follows_project import coco_folder, memory, model_file

    app = driver
    folder = coco_folder(tmp_path / "stained", ["cell", "blob"])
    run = model_file(folder / "models" / "20260101-000000" / "model.safetensors", ["cell", "blob"], seed=1)
    (folder / "models" / "project.json").write_text(json.dumps({"model": "models/20260101-000000/model.safetensors"}))
    chosen = model_file(tmp_path / "chosen.safetensors", ["cell", "blob"], seed=2)

    args = parse_args([str(folder), "--weights", str(chosen)])  # python main.py FOLDER --weights FILE
    path, weights = choose_startup(args, app.window.settings)
    open_startup(app.window, path, weights, explicit=bool(args.weights))
    app.wait_until(lambda: app.prediction is not None and app.model_path() == str(chosen) and app.is_idle(), 30000)
    app.qtbot.wait(300)  # a load of the folder's own model, had one been asked for, would be under way by now
    assert app.weights_path() == str(chosen) and app.model_path() == str(chosen) and app.is_idle()
    assert app.status() == (
        "Model in use: chosen.safetensors, as the command line asked instead of this folder's model run "
        "20260101-000000 of stained; it is this folder's model now"
    )
    assert memory(folder)["model"] == str(chosen)
    assert app.model_note() == "This folder's model"
    assert run.is_file()  # the old run is still listed, to go back to
    assert app.runs_listed()[0].startswith("20260101-000000")


def test_runs_are_told_apart_by_date_iterations_and_how_they_ended(ready):
    from tests.gui.test_runs import make_run

    app, models = ready, ready.project.root / "models"
    done = make_run(models / "20260101-090000", 40, 40)
    make_run(models / "20260101-100000", 12, 40, "cancelled", state=True)
    make_run(models / "20260101-110000", 8, 40, state=True)  # killed: stopped before its end
    app.load_model(done)
    app.wait_until(lambda: app.model_path() == str(done) and app.is_idle(), timeout=30000)
    app.open_train_panel()
    expected = ["20260101-110000  stopped at 8 / 40", "20260101-100000  cancelled at 12 / 40"]
    expected.append("20260101-090000  40 iterations")
    assert app.models_listed() == [expected[0], expected[1], expected[2] + "  (in use)"]  # the Train panel's list
    assert app.project_models_menu() == expected  # Model > Project Models
    assert app.runs_listed()[2].startswith("20260101-090000  40 iterations  ")  # the Model panel's list, with sizes
    assert app.model_shown() == f"run 20260101-090000 of {app.project.root.name}"  # not "model.safetensors"
