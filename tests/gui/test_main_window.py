"""The real main window, offscreen: what the user sees after opening a folder and moving sliders."""

from __future__ import annotations

import numpy as np
from PIL import Image

from gui.window.messages import NO_MODEL


def shown_union(app) -> np.ndarray:  # noqa: ANN001 - a Driver
    pred = app.prediction
    union = np.zeros((pred.height, pred.width), dtype=bool)
    for i in app.shown:
        union |= pred.masks[i].full(pred.height, pred.width)
    return union


def test_opening_a_folder_predicts_the_first_image_and_lists_its_instances(ready):
    app = ready
    pred = app.prediction
    assert len(pred) > 0 and len(app.image_rows()) == 3
    assert app.image_rows()[0].startswith("[predicted]  img_0.png")
    assert app.image_rows()[1].startswith("[not run]")
    assert app.shown_count() == len(pred)
    name, score, area = app.instance_rows()[0]
    assert name == app.session.class_names[pred.labels[0] - 1] and float(score) == round(float(pred.scores[0]), 3)
    assert int(area) == pred.masks[0].area
    assert app.hint() == ""


def test_the_mask_layer_is_opaque_exactly_inside_the_detected_masks(ready):
    app = ready
    app.set_slider("max_detections", 4)  # leave background to look at
    app.wait_until(lambda: len(app.prediction) == 4)
    rgba = app.overlay_pixels()
    union = shown_union(app)
    assert union.any() and not union.all()
    assert ((rgba[..., 3] > 0) == union).all()
    first = app.prediction.masks[0]
    inside = rgba[first.y0 : first.y0 + first.mask.shape[0], first.x0 : first.x0 + first.mask.shape[1]][first.mask]
    colors = {tuple(c) for c in inside[:, :3]}
    assert len(colors) == 1  # the best instance is drawn on top, in one colour
    outline = app.layer("outlines").image
    assert outline is not None and (outline[..., 3] > 0).sum() < (rgba[..., 3] > 0).sum()


def test_the_score_slider_hides_instances_from_the_cache_without_rerunning_the_backbone(ready):
    app = ready
    runs = app.stage_runs()
    before = len(app.prediction)
    app.set_slider("score_threshold", 0.8)
    app.wait_until(lambda: app.prediction.settings.score_threshold == 0.8)
    after = len(app.prediction)
    assert 0 < after < before
    assert app.shown_count() == after
    assert (app.prediction.scores > 0.8).all()
    assert runs["backbone"] == 1 and runs["rpn_post"] == 1  # post-processing only


def test_the_rpn_nms_slider_changes_the_proposals_and_reruns_from_the_rpn(ready):
    app = ready
    app.show_layer("proposals")
    app.set_slider("proposals_shown", 1000)
    runs = app.stage_runs()
    before = app.prediction.proposals.copy()
    assert app.proposals_drawn() == len(before)
    app.set_slider("rpn_nms_iou", 0.3)
    app.wait_until(lambda: app.prediction.settings.rpn_nms_iou == 0.3)
    after = app.prediction.proposals
    assert len(after) < len(before)
    assert app.proposals_drawn() == len(after)
    assert runs["rpn_post"] == 2 and runs["backbone"] == 1
    app.set_slider("proposals_shown", 10)
    assert app.proposals_drawn() == 10


def test_switching_image_while_inference_runs_drops_the_stale_result(ready):
    app = ready
    started = app.hold_inference()
    app.step(1)  # image 1: the worker starts on it and waits
    app.wait_until(lambda: len(started) == 1)
    app.step(1)  # image 2 while image 1 is still running
    dropped = app.dropped_results()
    app.release_inference()
    app.wait_idle(timeout=20000)
    assert app.dropped_results() == dropped + 1  # image 1's result arrived and was not drawn
    assert app.index == 2 and app.prediction is not None
    assert app.prediction.settings is not None and "[predicted]" in app.image_rows()[2]
    assert "[not run]" in app.image_rows()[1]
    assert app.stage_runs()["backbone"] == 3


def test_a_corrupt_image_shows_an_error_and_the_app_keeps_working(driver, weights_file, image_folder):
    app = driver
    good = (image_folder / "img_0.png").read_bytes()
    (image_folder / "img_1.png").write_bytes(good[: len(good) // 3])  # valid header, truncated pixels
    app.load_model(weights_file, wait=False)
    app.open(image_folder, wait=False)
    app.wait_until(lambda: app.prediction is not None, timeout=30000)
    app.step(1)
    app.wait_idle(timeout=10000)
    assert "img_1.png" in app.error() and app.image is None
    assert "[unreadable]" in app.image_rows()[1]
    assert app.shown_count() == 0 and not app.overlay_pixels().any()
    app.step(1)
    app.wait_until(lambda: app.prediction is not None, timeout=30000)
    assert app.index == 2 and app.error() == "" and app.shown_count() > 0


def test_without_a_model_images_open_and_the_window_says_how_to_get_one(driver, image_folder):
    app = driver
    app.open(image_folder, wait=False)
    app.wait_idle(timeout=10000)
    assert app.image is not None and app.image.shape == (96, 128, 3)
    assert app.hint() == NO_MODEL
    assert "Open Weights" in app.status()
    app.set_slider("score_threshold", 0.7)  # no model: nothing is sent, nothing breaks
    assert app.requests_sent() == 0 and not app.inference_busy()


def test_a_bad_weights_file_is_a_message_not_a_crash(driver, image_folder, tmp_path):
    app = driver
    bad = tmp_path / "broken.safetensors"
    bad.write_bytes(b"not a checkpoint at all")
    app.open(image_folder, wait=False)
    app.load_model(bad, wait=False)
    app.wait_until(lambda: "broken.safetensors" in app.error() and app.is_idle())
    assert app.model_path() is None and not app.inference_busy()
    assert app.hint() == NO_MODEL


def test_a_model_error_stays_on_screen_when_an_image_loads_after_it(driver, image_folder, tmp_path):
    app = driver
    bad = tmp_path / "broken.safetensors"
    bad.write_bytes(b"not a checkpoint at all")
    app.load_model(bad, wait=False)  # fails before any image is open
    app.wait_until(lambda: "broken.safetensors" in app.error() and app.is_idle())
    assert app.open(image_folder, wait=False)
    app.wait_until(lambda: app.image is not None and app.is_idle())
    assert "broken.safetensors" in app.error()  # still there: the image has nothing to do with it
    assert app.hint() == NO_MODEL


def test_a_and_d_step_through_the_images(ready):
    app = ready
    app.type_in_window("d")
    assert app.index == 1
    app.type_in_window("d")
    app.type_in_window("d")
    assert app.index == 2  # stays on the last
    app.type_in_window("a")
    assert app.index == 1
    app.wait_until(lambda: app.prediction is not None and app.is_idle())
    expected = np.asarray(Image.open(app.project.paths[1]).convert("RGB"))
    assert (app.image == expected).all()  # quick presses: the image shown is the last one asked for
    assert app.prediction.height == 96 and app.showing_newest_result()


def test_the_class_filter_hides_other_classes(ready):
    app = ready
    names = {app.class_name(label) for label in app.prediction.labels}
    app.filter_class("blob")
    expected = sum(app.class_name(label) == "blob" for label in app.prediction.labels)
    assert 0 < expected < len(app.prediction)
    assert app.shown_count() == expected == len(app.shown)
    assert all(row[0] == "blob" for row in app.instance_rows())
    assert ((app.overlay_pixels()[..., 3] > 0) == shown_union(app)).all()
    app.filter_class("")
    assert app.shown_count() == len(app.prediction) and names


def test_selecting_an_instance_highlights_it(ready):
    app = ready
    app.pick_row(2)
    crop = app.prediction.masks[app.shown[2]]
    highlight = app.layer("highlight")
    assert highlight.image is not None and highlight.image.shape[:2] == crop.mask.shape
    assert app.highlighted() == 2 and app.selected_prediction() == 2  # the Session holds the selection


def test_overlay_toggles_hide_layers(ready):
    app = ready
    overlays = app.window.overlays
    assert not overlays.checks["proposals"].isChecked()  # off by default, and so is the layer
    assert not app.layer("proposals").isVisible()
    for name in ("masks", "outlines", "boxes"):
        app.show_layer(name, False)
        assert not app.layer(name).isVisible()
        app.show_layer(name, True)
        assert app.layer(name).isVisible()
    overlays.opacity.setValue(20)
    assert abs(app.layer("masks").opacity() - 0.2) < 1e-6


def test_the_mask_threshold_slider_reshapes_the_masks_from_the_cache(ready):
    app = ready
    runs = app.stage_runs()
    app.set_slider("max_detections", 5)
    app.wait_until(lambda: len(app.prediction) == 5 and app.is_idle())
    loose = (app.overlay_pixels()[..., 3] > 0).sum()
    app.set_slider("mask_threshold", 0.9)
    app.wait_until(lambda: app.prediction.settings.mask_threshold == 0.9 and app.is_idle())
    strict = app.overlay_pixels()[..., 3] > 0
    assert strict.sum() < loose and (strict == shown_union(app)).all()
    assert runs["backbone"] == 1 and runs["rpn_post"] == 1 and runs["mask_head"] == 1


def test_out_of_memory_during_inference_is_a_message_and_the_next_request_works(ready, monkeypatch):
    app = ready
    predictor = app.window.inference.worker.predictor  # the model itself fails: the one reach inside
    real_predict = predictor.predict
    calls = []

    def failing_once(*args, **kwargs):  # noqa: ANN002, ANN003
        calls.append(1)
        if len(calls) == 1:
            raise RuntimeError("CUDA out of memory. Tried to allocate 2.00 GiB")
        return real_predict(*args, **kwargs)

    monkeypatch.setattr(predictor, "predict", failing_once)
    app.set_slider("score_threshold", 0.6)
    app.wait_until(lambda: "out of memory" in app.error())
    assert "Try the CPU" in app.error() and not app.inference_busy()
    app.set_slider("score_threshold", 0.65)
    app.wait_until(lambda: app.prediction.settings.score_threshold == 0.65 and app.is_idle())
    assert (app.prediction.scores > 0.65).all() and app.shown_count() == len(app.prediction)
    assert app.error() == ""  # the good result cleared the message
