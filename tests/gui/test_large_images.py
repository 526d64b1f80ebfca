"""Large images in the app (issue 12, points 1 and 2): the scale set in the Model panel reaches the Predictor without
reloading the weights and is remembered per model file; a tiled image reports its tiles in order in the status bar,
Cancel / Esc stop it between tiles (the tiles done are kept) and the app stays usable."""

from __future__ import annotations

import time

import numpy as np
import pytest
from PIL import Image
from PySide6.QtCore import Qt, QTimer

from engine.checkpoint import save_checkpoint
from gui.panels.model_panel import OWN, PIXEL
from tests.gui.conftest import CLASS_NAMES, Driver, tiny_model

SIDE = 3000  # px: at pixel scale x0.25 (objects of 256 px; the tiny model's are 64) 4 x 4 tiles of 1024 px
OBJECT_SIZE = 256.0
TILES = 16


@pytest.fixture(scope="module")
def tiled_weights(tmp_path_factory):
    """The tiny test model with tiles of 256 network pixels overlapping by 64 (its file's scale: short side)."""
    model = tiny_model()
    model.config = model.config.replace(tile_size=256, tile_overlap=64)
    path = tmp_path_factory.mktemp("tiled") / "tiled.safetensors"
    save_checkpoint(model, path, class_names=CLASS_NAMES)
    return path


@pytest.fixture(scope="module")
def large_folder(tmp_path_factory):
    folder = tmp_path_factory.mktemp("large")
    rng = np.random.default_rng(0)
    coarse = (rng.random((SIDE // 10, SIDE // 10, 3)) * 255).astype(np.uint8)
    Image.fromarray(np.kron(coarse, np.ones((10, 10, 1), np.uint8))).save(folder / "large.png")
    return folder


@pytest.fixture
def large(qtbot, window, tiled_weights, large_folder) -> Driver:
    app = Driver(qtbot, window)
    app.load_model(tiled_weights)
    assert app.open(large_folder, wait_for_prediction=True)
    return app


def panel(app: Driver):  # noqa: ANN201 - ModelPanel
    return app.window.model_panel


def predictor(app: Driver):  # noqa: ANN201 - engine.inference.Predictor
    return app.window.inference.worker.predictor


def set_pixel_scale(app: Driver, object_size: float) -> None:
    """What a user does: the object size in the box, then Pixel scale in the combo."""
    panel(app).object_size.setValue(object_size)
    panel(app).scale.setCurrentIndex(PIXEL)


def record_progress(app: Driver) -> list[tuple[int, int]]:
    events: list[tuple[int, int]] = []
    app.window.inference.predict_progress.connect(lambda done, total: events.append((done, total)))
    return events


def slow_tiles(app: Driver, seconds: float) -> None:
    """Each tile's backbone takes ``seconds`` longer (so that a cancel lands mid-way on any machine)."""
    model = predictor(app).model
    features = type(model).features

    def slow(batch):  # noqa: ANN001, ANN202
        time.sleep(seconds)
        return features(model, batch)

    model.features = slow


def test_the_scale_reaches_the_predictor_without_a_reload_and_tiles_report_in_order(large, settings, tiled_weights):
    app = large
    model_before = predictor(app).model
    assert app.prediction.height == SIDE and len(predictor(app).tiles) == 1  # the file's scale: short side
    assert panel(app).scale.itemText(OWN) == "Model's: short side 128 px"
    assert "short side 128 px · backbone" in app.window.messages.timing.text()  # the scale, then the stages' times
    assert "twice its smallest anchor" in panel(app).scale_note.text()  # the tiny model records no object size
    events = record_progress(app)
    set_pixel_scale(app, OBJECT_SIZE)
    assert "\u00d70.25" in panel(app).scale_note.text()
    app.wait_until(lambda: len(predictor(app).tiles) == TILES and app.is_idle(), timeout=120000)

    config = predictor(app).model.config
    assert (config.scale_policy, config.scale_factor) == ("pixel-scale", 0.25)
    assert predictor(app).model is model_before  # the weights were not read again
    assert events == [(done, TILES) for done in range(TILES + 1)]  # every tile, in order, from 0
    pred = app.prediction
    assert (pred.height, pred.width) == (SIDE, SIDE)
    centres = np.stack([(pred.boxes[:, 0] + pred.boxes[:, 2]) / 2, (pred.boxes[:, 1] + pred.boxes[:, 3]) / 2], 1)
    for tile in predictor(app).tiles:  # the result covers every tile
        cx0, cy0, cx1, cy1 = tile.core
        inside = (centres[:, 0] >= cx0) & (centres[:, 0] < cx1) & (centres[:, 1] >= cy0) & (centres[:, 1] < cy1)
        assert inside.any(), f"no detection in tile {tile.index}"
    timing = app.window.messages.timing.text()
    assert "pixel scale \u00d70.25" in timing and f"{TILES} tiles" in timing
    assert "Predicting tile" not in app.status()
    assert not app.window.messages.busy.isTextVisible()  # the status bar's bar is a busy spinner again
    assert settings.model_scale(tiled_weights) == OBJECT_SIZE

    # the model's own scale again: one tile, and the settings forget the choice
    panel(app).scale.setCurrentIndex(OWN)
    app.wait_until(lambda: len(predictor(app).tiles) == 1 and app.is_idle(), timeout=60000)
    assert predictor(app).model.config.scale_policy == "short-side"
    assert settings.model_scale(tiled_weights) is None


def test_the_scale_is_remembered_per_model_file(large, settings, tiled_weights, weights_file):
    app = large
    set_pixel_scale(app, OBJECT_SIZE)
    app.wait_until(lambda: len(predictor(app).tiles) == TILES and app.is_idle(), timeout=120000)
    app.load_model(weights_file)  # another model file: its own scale
    app.wait_until(lambda: app.model_path() == str(weights_file) and app.is_idle(), timeout=60000)
    assert predictor(app).model.config.scale_policy == "short-side"
    assert panel(app).scale.currentIndex() == OWN
    app.load_model(tiled_weights)  # back: the scale set for it
    app.wait_until(lambda: app.model_path() == str(tiled_weights), timeout=60000)
    assert panel(app).scale.currentIndex() == PIXEL and panel(app).object_size.value() == OBJECT_SIZE
    app.wait_until(lambda: len(predictor(app).tiles) == TILES and app.is_idle(), timeout=120000)
    assert predictor(app).model.config.scale_factor == 0.25
    assert app.prediction.height == SIDE


def test_cancel_stops_between_tiles_keeps_them_and_the_app_stays_usable(large, qtbot):
    app = large
    slow_tiles(app, 0.3)
    events = record_progress(app)
    cancelled: list[tuple[int, int]] = []
    app.window.inference.predict_cancelled.connect(lambda done, total: cancelled.append((done, total)))
    ticks: list[float] = []
    timer = QTimer()
    timer.timeout.connect(lambda: ticks.append(time.perf_counter()))
    timer.start(20)
    runs = dict(predictor(app).stage_runs)
    set_pixel_scale(app, OBJECT_SIZE)
    app.wait_until(lambda: len(events) >= 3)  # two tiles done
    assert panel(app).cancel.isEnabled()
    assert app.status().startswith("Predicting tile")
    assert app.window.messages.busy.maximum() == TILES
    app.press(Qt.Key.Key_Escape)  # the user's Esc (from the canvas, where the focus is)
    app.wait_until(lambda: bool(cancelled) and app.is_idle(), timeout=30000)
    timer.stop()
    done, total = cancelled[0]
    assert total == TILES and 2 <= done < TILES
    assert [e[0] for e in events] == list(range(len(events)))  # in order
    assert "cancelled" in app.status() and not panel(app).cancel.isEnabled()
    gaps = np.diff(ticks)
    assert gaps.max() < 1.0, f"the GUI thread stalled {gaps.max():.2f} s while the tiles ran"
    assert app.prediction is not None and app.prediction.height == SIDE  # the last result stays on screen

    # usable: the sliders work (the result drawn is replaced when the tiles are all done) and Predict goes on
    def backbones() -> int:
        return predictor(app).stage_runs["backbone"] - runs.get("backbone", 0)

    # each tile done ran its backbone once (the scale change cleared the cache); the tile under way when the cancel
    # came may have run it too, and dropped it
    lost = backbones() - done
    assert lost in (0, 1)
    panel(app).predict.click()
    app.wait_until(lambda: len(events) > TILES and app.is_idle(), timeout=120000)
    assert backbones() == TILES + lost  # the tiles done were kept: not run again
    assert f"{TILES} tiles" in app.window.messages.timing.text()
    assert events[-1] == (TILES, TILES)
    app.set_slider("score_threshold", 0.9)
    app.wait_until(lambda: app.prediction.settings.score_threshold == 0.9 and app.is_idle(), timeout=60000)
    assert backbones() == TILES + lost  # a slider move re-runs no backbone
