"""The real main window, offscreen: what the user sees after opening a folder and moving sliders."""

from __future__ import annotations

import threading

import numpy as np
from PIL import Image

from gui.window.messages import NO_MODEL


def shown_union(window) -> np.ndarray:  # noqa: ANN001
    pred = window.prediction
    union = np.zeros((pred.height, pred.width), dtype=bool)
    for i in window.shown:
        union |= pred.masks[i].full(pred.height, pred.width)
    return union


def test_opening_a_folder_predicts_the_first_image_and_lists_its_instances(loaded):
    window = loaded
    pred = window.prediction
    assert len(pred) > 0 and window.images.list.count() == 3
    assert window.images.row_text(0).startswith("[predicted]  img_0.png")
    assert window.images.row_text(1).startswith("[not run]")
    assert window.instances.row_count() == len(pred)
    name, score, area = window.instances.row(0)
    assert name == window.session.class_names[pred.labels[0] - 1] and float(score) == round(float(pred.scores[0]), 3)
    assert int(area) == pred.masks[0].area
    assert window.canvas.message_text() == ""


def test_the_mask_layer_is_opaque_exactly_inside_the_detected_masks(qtbot, loaded):
    window = loaded
    window.thresholds.sliders["max_detections"].set_value(4)  # leave background to look at
    qtbot.waitUntil(lambda: len(window.prediction) == 4, timeout=10000)
    rgba = window.canvas.mask_rgba()
    union = shown_union(window)
    assert union.any() and not union.all()
    assert ((rgba[..., 3] > 0) == union).all()
    first = window.prediction.masks[0]
    inside = rgba[first.y0 : first.y0 + first.mask.shape[0], first.x0 : first.x0 + first.mask.shape[1]][first.mask]
    colors = {tuple(c) for c in inside[:, :3]}
    assert len(colors) == 1  # the best instance is drawn on top, in one colour
    outline = window.canvas.layers["outlines"].image
    assert outline is not None and (outline[..., 3] > 0).sum() < (rgba[..., 3] > 0).sum()


def test_the_score_slider_hides_instances_from_the_cache_without_rerunning_the_backbone(qtbot, loaded):
    window = loaded
    runs = window.inference.worker.predictor.stage_runs
    before = len(window.prediction)
    window.thresholds.sliders["score_threshold"].set_value(0.8)
    qtbot.waitUntil(lambda: window.prediction.settings.score_threshold == 0.8, timeout=10000)
    after = len(window.prediction)
    assert 0 < after < before
    assert window.instances.row_count() == after
    assert (window.prediction.scores > 0.8).all()
    assert runs["backbone"] == 1 and runs["rpn_post"] == 1  # post-processing only


def test_the_rpn_nms_slider_changes_the_proposals_and_reruns_from_the_rpn(qtbot, loaded):
    window = loaded
    window.overlays.checks["proposals"].setChecked(True)
    window.thresholds.sliders["proposals_shown"].set_value(1000)
    runs = window.inference.worker.predictor.stage_runs
    before = window.prediction.proposals.copy()
    assert window.canvas.layers["proposals"].count() == len(before)
    window.thresholds.sliders["rpn_nms_iou"].set_value(0.3)
    qtbot.waitUntil(lambda: window.prediction.settings.rpn_nms_iou == 0.3, timeout=10000)
    after = window.prediction.proposals
    assert len(after) < len(before)
    assert window.canvas.layers["proposals"].count() == len(after)
    assert runs["rpn_post"] == 2 and runs["backbone"] == 1
    window.thresholds.sliders["proposals_shown"].set_value(10)
    assert window.canvas.layers["proposals"].count() == 10


def test_switching_image_while_inference_runs_drops_the_stale_result(qtbot, loaded):
    window = loaded
    client, worker = window.inference, window.inference.worker
    started: list[int] = []
    worker.started.connect(started.append)
    worker.pause_before_predict = threading.Event()
    window.step(1)  # image 1: the worker starts on it and waits
    qtbot.waitUntil(lambda: len(started) == 1, timeout=10000)
    window.step(1)  # image 2 while image 1 is still running
    dropped = client.dropped_results
    worker.pause_before_predict.set()
    qtbot.waitUntil(window.is_idle, timeout=20000)
    worker.pause_before_predict = None
    assert client.dropped_results == dropped + 1  # image 1's result arrived and was not drawn
    assert window.index == 2 and window.prediction is not None
    assert window.prediction.settings is not None and "[predicted]" in window.images.row_text(2)
    assert "[not run]" in window.images.row_text(1)
    assert worker.predictor.stage_runs["backbone"] == 3


def test_a_corrupt_image_shows_an_error_and_the_app_keeps_working(qtbot, window, weights_file, image_folder):
    good = (image_folder / "img_0.png").read_bytes()
    (image_folder / "img_1.png").write_bytes(good[: len(good) // 3])  # valid header, truncated pixels
    window.load_weights(weights_file)
    window.open_path(image_folder)
    qtbot.waitUntil(lambda: window.prediction is not None, timeout=30000)
    window.step(1)
    qtbot.waitUntil(window.is_idle, timeout=10000)
    assert "img_1.png" in window.error_text() and window.image is None
    assert "[unreadable]" in window.images.row_text(1)
    assert window.instances.row_count() == 0 and not window.canvas.mask_rgba().any()
    window.step(1)
    qtbot.waitUntil(lambda: window.prediction is not None, timeout=30000)
    assert window.index == 2 and window.error_text() == "" and window.instances.row_count() > 0


def test_without_a_model_images_open_and_the_window_says_how_to_get_one(qtbot, window, image_folder):
    window.open_path(image_folder)
    qtbot.waitUntil(window.is_idle, timeout=10000)
    assert window.image is not None and window.image.shape == (96, 128, 3)
    assert window.canvas.message_text() == NO_MODEL
    assert "Open Weights" in window.status_text.text()
    window.thresholds.sliders["score_threshold"].set_value(0.7)  # no model: nothing is sent, nothing breaks
    assert window.inference.requests_sent == 0 and not window.inference.busy


def test_a_bad_weights_file_is_a_message_not_a_crash(qtbot, window, image_folder, tmp_path):
    bad = tmp_path / "broken.safetensors"
    bad.write_bytes(b"not a checkpoint at all")
    window.open_path(image_folder)
    window.load_weights(bad)
    qtbot.waitUntil(lambda: "broken.safetensors" in window.error_text() and window.is_idle(), timeout=10000)
    assert window.inference.model is None and not window.inference.busy
    assert window.canvas.message_text() == NO_MODEL


def test_a_model_error_stays_on_screen_when_an_image_loads_after_it(qtbot, window, image_folder, tmp_path):
    bad = tmp_path / "broken.safetensors"
    bad.write_bytes(b"not a checkpoint at all")
    window.load_weights(bad)  # fails before any image is open
    qtbot.waitUntil(lambda: "broken.safetensors" in window.error_text() and window.is_idle(), timeout=10000)
    assert window.open_path(image_folder)
    qtbot.waitUntil(lambda: window.image is not None and window.is_idle(), timeout=10000)
    assert "broken.safetensors" in window.error_text()  # still there: the image has nothing to do with it
    assert window.canvas.message_text() == NO_MODEL


def test_a_and_d_step_through_the_images(qtbot, loaded):
    window = loaded
    qtbot.keyClick(window, "d")
    assert window.index == 1
    qtbot.keyClick(window, "d")
    qtbot.keyClick(window, "d")
    assert window.index == 2  # stays on the last
    qtbot.keyClick(window, "a")
    assert window.index == 1
    qtbot.waitUntil(lambda: window.prediction is not None and window.is_idle(), timeout=10000)
    expected = np.asarray(Image.open(window.project.paths[1]).convert("RGB"))
    assert (window.image == expected).all()  # quick presses: the image shown is the last one asked for
    assert window.prediction.height == 96 and window.inference.shown_id == window.inference.latest_id


def test_the_class_filter_hides_other_classes(qtbot, loaded):
    window = loaded
    names = {window.session.class_names[label - 1] for label in window.prediction.labels}
    window.instances.class_filter.setCurrentText("blob")
    expected = sum(window.session.class_names[label - 1] == "blob" for label in window.prediction.labels)
    assert 0 < expected < len(window.prediction)
    assert window.instances.row_count() == expected == len(window.shown)
    assert all(window.instances.row(r)[0] == "blob" for r in range(expected))
    assert ((window.canvas.mask_rgba()[..., 3] > 0) == shown_union(window)).all()
    window.instances.class_filter.setCurrentIndex(0)
    assert window.instances.row_count() == len(window.prediction) and names


def test_selecting_an_instance_highlights_it(qtbot, loaded):
    window = loaded
    window.instances.table.selectRow(2)
    crop = window.prediction.masks[window.shown[2]]
    highlight = window.canvas.layers["highlight"]
    assert highlight.image is not None and highlight.image.shape[:2] == crop.mask.shape
    assert window.canvas.layers["boxes"].highlighted == 2


def test_overlay_toggles_hide_layers(loaded):
    window = loaded
    assert not window.overlays.checks["proposals"].isChecked()  # off by default, and so is the layer
    assert not window.canvas.layers["proposals"].isVisible()
    for name in ("masks", "outlines", "boxes"):
        window.overlays.checks[name].setChecked(False)
        assert not window.canvas.layers[name].isVisible()
        window.overlays.checks[name].setChecked(True)
        assert window.canvas.layers[name].isVisible()
    window.overlays.opacity.setValue(20)
    assert abs(window.canvas.layers["masks"].opacity() - 0.2) < 1e-6


def test_the_mask_threshold_slider_reshapes_the_masks_from_the_cache(qtbot, loaded):
    window = loaded
    runs = window.inference.worker.predictor.stage_runs
    window.thresholds.sliders["max_detections"].set_value(5)
    qtbot.waitUntil(lambda: len(window.prediction) == 5 and window.is_idle(), timeout=10000)
    loose = (window.canvas.mask_rgba()[..., 3] > 0).sum()
    window.thresholds.sliders["mask_threshold"].set_value(0.9)
    qtbot.waitUntil(lambda: window.prediction.settings.mask_threshold == 0.9 and window.is_idle(), timeout=10000)
    strict = window.canvas.mask_rgba()[..., 3] > 0
    assert strict.sum() < loose and (strict == shown_union(window)).all()
    assert runs["backbone"] == 1 and runs["rpn_post"] == 1 and runs["mask_head"] == 1


def test_out_of_memory_during_inference_is_a_message_and_the_next_request_works(qtbot, loaded, monkeypatch):
    window = loaded
    predictor = window.inference.worker.predictor
    real_predict = predictor.predict
    calls = []

    def failing_once(*args, **kwargs):  # noqa: ANN002, ANN003
        calls.append(1)
        if len(calls) == 1:
            raise RuntimeError("CUDA out of memory. Tried to allocate 2.00 GiB")
        return real_predict(*args, **kwargs)

    monkeypatch.setattr(predictor, "predict", failing_once)
    window.thresholds.sliders["score_threshold"].set_value(0.6)
    qtbot.waitUntil(lambda: "out of memory" in window.error_text(), timeout=10000)
    assert "Try the CPU" in window.error_text() and not window.inference.busy
    window.thresholds.sliders["score_threshold"].set_value(0.65)
    qtbot.waitUntil(lambda: window.prediction.settings.score_threshold == 0.65 and window.is_idle(), timeout=10000)
    assert (window.prediction.scores > 0.65).all() and window.instances.row_count() == len(window.prediction)
    assert window.error_text() == ""  # the good result cleared the message
