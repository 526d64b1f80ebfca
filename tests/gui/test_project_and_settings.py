"""Folders with annotations, single images, drops, Predict all, persisted settings, smoke mode."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
from PIL import Image

from engine.data import Category, Dataset, ImageRecord, Instance, write_coco
from gui.window.main_window import MainWindow

REPO = Path(__file__).resolve().parents[2]


def test_annotations_in_the_folder_are_drawn_and_the_image_is_marked_annotated(driver, image_folder):
    app = driver
    mask = np.zeros((96, 128), dtype=bool)
    mask[20:50, 30:70] = True
    record = ImageRecord("img_1.png", 128, 96, [Instance.from_mask(mask, 1)])
    others = [ImageRecord(f"img_{i}.png", 128, 96) for i in (0, 2)]
    write_coco(Dataset(image_folder, [others[0], record, others[1]], [Category(1, "nucleus")]), image_folder / "a.json")
    assert app.open(image_folder, wait=False)
    assert "[annotated]" in app.image_rows()[1] and "[not run]" in app.image_rows()[0]
    app.step(1)
    app.wait_until(lambda: app.image is not None and app.is_idle())
    layer = app.layer("annotations")
    rect = layer.mapRectToParent(layer.boundingRect())
    assert (rect.x(), rect.y(), rect.width(), rect.height()) == (30, 20, 40, 30)
    assert (layer.image[..., 3] > 0).all()  # the whole box is the mask: fill and outline


def test_opening_an_image_opens_its_folder_with_the_image_selected(driver, image_folder):
    app = driver
    assert app.open(image_folder / "img_2.png", wait=False)
    assert app.index == 2 and len(app.image_rows()) == 3


def test_dropping_weights_and_a_folder_opens_both(driver, image_folder, weights_file):
    app = driver
    app.drop([str(image_folder), str(weights_file)])
    app.wait_until(lambda: app.prediction is not None, timeout=30000)
    assert app.model_path() == str(weights_file)


def test_predict_all_marks_every_image_and_reports_progress(qtbot, ready):
    app, panel = ready, ready.window.model_panel
    with qtbot.waitSignal(app.window.inference.batch_done, timeout=30000) as done:
        panel.predict_all.click()
    assert done.args == [False]
    assert all("[predicted]" in row for row in app.image_rows())
    assert panel.progress.value() == 3 and panel.predict_all.isEnabled()


def test_predict_all_can_be_cancelled(qtbot, ready, image_folder):
    app, panel = ready, ready.window.model_panel
    app.hold_inference()
    with qtbot.waitSignal(app.window.inference.batch_started, timeout=10000):
        app.predict_all()
    assert panel.cancel.isEnabled()
    with qtbot.waitSignal(app.window.inference.batch_done, timeout=30000) as done:
        panel.cancel.click()
        app.release_inference()
    assert done.args == [True]
    assert panel.progress.value() <= 1 < 3  # at most the image already under way
    assert not panel.cancel.isEnabled()


def test_thresholds_folder_and_layout_persist_between_runs(qtbot, ready, settings, image_folder):
    app, window = ready, ready.window
    app.set_slider("score_threshold", 0.73)
    app.set_slider("rpn_nms_iou", 0.55)
    app.show_layer("boxes", False)
    window.model_panel.set_device("cpu")
    window.close()
    again = MainWindow(settings, torch_threads=1)
    qtbot.addWidget(again)
    try:
        restored = again.thresholds.settings()
        assert restored.score_threshold == 0.73 and restored.rpn_nms_iou == 0.55
        assert not again.overlays.checks["boxes"].isChecked()
        assert again.model_panel.device_value() == "cpu"
        assert settings.last_folder == str(image_folder.resolve())
        assert settings.recent_folders()[0] == str(image_folder.resolve())
        assert settings.last_weights.endswith("tiny.safetensors")
    finally:
        again.shutdown()


def test_smoke_mode_saves_a_screenshot_and_prints_the_detections(tmp_path, image_folder, weights_file):
    shot = tmp_path / "shot.png"
    env = {**os.environ, "QT_QPA_PLATFORM": "offscreen", "PYTHONPATH": str(REPO)}
    command = [sys.executable, str(REPO / "main.py"), str(image_folder), "--weights", str(weights_file)]
    command += ["--screenshot", str(shot), "--quit-after-load", "--settings", str(tmp_path / "s.ini")]
    result = subprocess.run(command, capture_output=True, text=True, env=env, timeout=120)
    assert result.returncode == 0, result.stderr[-2000:]
    lines = [line for line in result.stdout.splitlines() if line.startswith("detections: ")]
    assert len(lines) == 1 and int(lines[0].split()[1]) > 0
    with Image.open(shot) as picture:
        assert picture.size == (1280, 800)
        pixels = np.asarray(picture.convert("RGB"))
    assert len(np.unique(pixels.reshape(-1, 3), axis=0)) > 50  # a real picture, not a blank window


def test_max_detections_and_proposals_start_at_the_models_own_until_the_user_chooses(driver, settings, tmp_path):
    from engine.checkpoint import save_checkpoint
    from tests.gui.conftest import CLASS_NAMES, tiny_model

    model = tiny_model()
    model.config = model.config.replace(detections_per_image=420, rpn_post_nms_top_n_test=1700)
    path = tmp_path / "dense.safetensors"
    save_checkpoint(model, path, class_names=CLASS_NAMES)
    app = driver
    app.load_model(path)
    assert app.settings().max_detections == 420
    assert app.settings().num_proposals == 1700
    app.set_slider("max_detections", 250)
    app.set_slider("num_proposals", 600)
    app.window.save_settings()
    app.window.messages.show_status("")
    app.load_model(path, wait=False)  # a stored choice wins over the model's own
    app.wait_until(lambda: app.status().startswith("Model loaded"), timeout=30000)
    assert app.settings().max_detections == 250
    assert app.settings().num_proposals == 600


def test_a_project_opens_on_the_first_image_still_to_annotate(tmp_path):
    from gui.session.project import Project
    from tests.gui.conftest import write_images

    folder = tmp_path / "half_done"
    paths = write_images(folder, 4)
    records = [ImageRecord(p.name, 128, 96) for p in paths]
    records[0].state = "reviewed"
    records[1].instances.append(Instance.from_mask(np.ones((96, 128), bool), 1))
    write_coco(Dataset(folder, records, [Category(1, "cell")]), folder / "annotations.json")
    assert Project.open(folder).start_index == 2
    records[2].state = records[3].state = "reviewed"
    write_coco(Dataset(folder, records, [Category(1, "cell")]), folder / "annotations.json")
    assert Project.open(folder).start_index == 0  # all done: from the start
    assert Project.open(paths[3]).start_index == 3  # an image opened by name wins
