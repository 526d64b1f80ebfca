"""Issue 13, bug 7: after Predict all, opening an image shows the result the batch stored for it instead of running
the whole model again (~5 s a image on a CPU), unless the model, its scale or the sliders changed since."""

from __future__ import annotations

import numpy as np

from tests.gui.conftest import Driver


def same_detections(a, b) -> bool:  # noqa: ANN001 - two Predictions
    return len(a) == len(b) and np.array_equal(a.boxes, b.boxes) and np.array_equal(a.scores, b.scores)


def test_an_image_opened_after_predict_all_shows_the_stored_result(ready: Driver, weights_file, tmp_path):
    app = ready
    batch: dict[str, object] = {}  # what Predict all made, image by image
    app.window.inference.batch_item.connect(lambda _done, _total, key, prediction: batch.update({key: prediction}))
    app.wait_predict_all()
    assert app.image_rows()[1].startswith("[predicted]")
    stored = batch[app.project.paths[1]]
    runs = app.stage_runs()["backbone"]

    app.go_to(1)
    app.wait_until(lambda: app.index == 1 and app.prediction is not None and app.is_idle(), timeout=30000)
    assert app.stage_runs()["backbone"] == runs  # the model did not run again
    assert "stored by Predict all" in app.timing()
    assert same_detections(app.prediction, stored) and app.shown_count() == len(stored) > 0

    # a slider moved: the model runs on this image (the stored result was made under the old sliders)
    app.set_slider("score_threshold", 0.45)
    app.wait_until(lambda: app.stage_runs()["backbone"] == runs + 1 and app.is_idle(), timeout=30000)
    assert "stored" not in app.timing()
    app.go_to(0)  # and another image is not taken from the store any more either: its sliders differ
    app.wait_until(lambda: app.stage_runs()["backbone"] == runs + 2 and app.is_idle(), timeout=30000)

    # the sliders back as Predict all had them, but another model: nothing stored is shown
    app.set_slider("score_threshold", stored.settings.score_threshold)
    from engine.checkpoint import save_checkpoint
    from tests.gui.conftest import CLASS_NAMES, tiny_model

    other = tmp_path / "other.safetensors"
    save_checkpoint(tiny_model(seed=3), other, class_names=CLASS_NAMES)
    app.load_model(other)
    app.wait_until(lambda: app.model_path() == str(other) and app.is_idle(), timeout=30000)
    runs = app.stage_runs()["backbone"]
    app.go_to(2)
    app.wait_until(lambda: app.index == 2 and app.stage_runs()["backbone"] == runs + 1 and app.is_idle(), 30000)
    assert "stored" not in app.timing()
