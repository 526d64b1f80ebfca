"""Display contrast (issue 13, item 15): auto-levels on by default, min / max / gamma by hand in the Display
panel; what the canvas shows changes, the pixels the model is given never do. Driven through the Driver;
the pure part (gui/canvas/levels.py) is tested with hand-made arrays."""

from __future__ import annotations

import struct
import time
import zlib
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from engine.data.io.images import load_image
from gui.canvas import levels
from tests.gui.conftest import Driver


# ----- images a microscope gives -----
def write_png16_rgb(path: Path, pixels: np.ndarray) -> None:
    """A 16-bit-per-channel RGB PNG, written by hand (Pillow writes none; it reads one as 8-bit, high byte)."""
    height, width, _ = pixels.shape
    raw = b"".join(b"\x00" + pixels[r].astype(">u2").tobytes() for r in range(height))

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    header = struct.pack(">IIBBBBB", width, height, 16, 2, 0, 0, 0)
    path.write_bytes(
        b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(raw)) + chunk(b"IEND", b"")
    )


def blobs(height: int = 96, width: int = 128, seed: int = 0) -> np.ndarray:
    """(H,W) float in 0..1: a dark background with a few bright discs, as nuclei look."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[:height, :width]
    image = 0.05 * rng.random((height, width))
    for _ in range(6):
        cy, cx, r = rng.uniform(10, height - 10), rng.uniform(10, width - 10), rng.uniform(5, 10)
        image[(y - cy) ** 2 + (x - cx) ** 2 < r * r] = rng.uniform(0.6, 1.0)
    return image


@pytest.fixture
def dim_folder(tmp_path) -> Path:
    """8-bit RGB images whose values stay below 41: near black as they are."""
    folder = tmp_path / "dim"
    folder.mkdir()
    for i in range(2):
        gray = np.rint(blobs(seed=i) * 40).astype(np.uint8)
        Image.fromarray(np.repeat(gray[:, :, None], 3, axis=2)).save(folder / f"dim_{i}.png")
    return folder


@pytest.fixture
def png16_folder(tmp_path) -> Path:
    """A 16-bit RGB image with values 0-4000 (of 65535): Pillow reads it as 0-15."""
    folder = tmp_path / "sixteen"
    folder.mkdir()
    write_png16_rgb(folder / "cells16.png", np.repeat(np.rint(blobs() * 4000).astype(np.uint16)[:, :, None], 3, 2))
    return folder


def brightness(pixels: np.ndarray) -> float:
    """The 99th percentile of the image: where its bright parts sit on the 0-255 scale."""
    return float(np.percentile(pixels, 99))


# ----- in the window -----
def test_a_dim_image_is_shown_stretched_while_the_model_gets_the_pixels_as_loaded(
    driver: Driver, dim_folder, weights_file
):
    driver.load_model(weights_file)
    model_inputs = driver.record_model_inputs()
    assert driver.open(dim_folder, wait_for_prediction=True)
    loaded = load_image(dim_folder / "dim_0.png")
    assert loaded.max() <= 40
    assert model_inputs, "the model was not asked to predict"
    assert all(np.array_equal(seen, loaded) for seen in model_inputs)  # the model: the file's pixels, unchanged
    assert np.array_equal(driver.image, loaded)  # what is open too
    shown = driver.shown_image()
    assert shown.shape == loaded.shape and shown.dtype == np.uint8
    assert brightness(loaded) <= 40 and brightness(shown) >= 240  # what the user sees: bright nuclei
    assert shown[loaded == 0].max() == 0  # the background stays black
    values = driver.display_values()
    assert values["auto"] and values["gamma"] == 1.0
    assert values["maximum"] <= 40  # the panel reads the range it stretched


def test_a_16_bit_image_with_values_up_to_4000_looks_bright(driver: Driver, png16_folder, weights_file):
    driver.load_model(weights_file)
    model_inputs = driver.record_model_inputs()
    assert driver.open(png16_folder, wait_for_prediction=True)
    loaded = load_image(png16_folder / "cells16.png")
    assert loaded.max() <= 16  # 4000 / 256: nearly black as loaded
    assert model_inputs and all(np.array_equal(seen, loaded) for seen in model_inputs)
    assert brightness(driver.shown_image()) >= 240


def test_a_16_bit_grayscale_image_of_0_to_4000_looks_bright_too(driver: Driver, tmp_path, weights_file):
    """Single-channel 16-bit files are scaled to 0-255 by the loader already (engine.data.io.images: the same
    for the model); the display's stretch then leaves them about as they are."""
    folder = tmp_path / "gray16"
    folder.mkdir()
    Image.fromarray(np.rint(blobs() * 4000).astype(np.uint16)).save(folder / "gray16.png")
    driver.load_model(weights_file)
    model_inputs = driver.record_model_inputs()
    assert driver.open(folder, wait_for_prediction=True)
    loaded = load_image(folder / "gray16.png")
    assert model_inputs and all(np.array_equal(seen, loaded) for seen in model_inputs)
    assert brightness(driver.shown_image()) >= 240


def test_min_max_gamma_by_hand_and_reset_change_only_what_is_shown(driver: Driver, dim_folder):
    assert driver.open(dim_folder)
    loaded = load_image(dim_folder / "dim_0.png")
    driver.click_auto_contrast()  # off: the hand-set range (0-255, gamma 1) shows the pixels as loaded
    assert not driver.display_values()["auto"]
    assert np.array_equal(driver.shown_image(), driver.image) and np.array_equal(driver.image, loaded)

    driver.type_display_value("maximum", "20")  # values 0..20 spread over black..white
    assert driver.display_values()["maximum"] == 20
    shown = driver.shown_image()
    expected = np.rint(np.clip(loaded / 20.0, 0, 1) * 255).astype(np.uint8)
    assert np.array_equal(shown, expected)

    driver.type_display_value("gamma", "0.5")  # midtones brighter
    brighter = driver.shown_image()
    middle = (loaded > 0) & (loaded < 20)
    assert middle.any() and (brighter[middle] > shown[middle]).all()

    driver.type_display_value("minimum", "10")
    assert driver.display_values()["minimum"] == 10
    assert driver.shown_image()[loaded <= 10].max() == 0

    driver.click_display_reset()
    assert driver.display_values()["auto"] and driver.display_values()["gamma"] == 1.0
    assert brightness(driver.shown_image()) >= 240
    assert np.array_equal(driver.image, loaded)  # none of it touched what is open


def test_view_menu_auto_contrast_is_the_panels_check_box(driver: Driver, dim_folder):
    assert driver.open(dim_folder)
    loaded = load_image(dim_folder / "dim_0.png")
    driver.menu("Auto &Contrast")  # View > Auto Contrast: off
    assert not driver.display_values()["auto"]
    assert np.array_equal(driver.shown_image(), loaded)
    driver.menu("Auto &Contrast")  # on again
    assert driver.display_values()["auto"] and brightness(driver.shown_image()) >= 240


def test_typing_a_minimum_turns_auto_contrast_off(driver: Driver, dim_folder):
    assert driver.open(dim_folder)
    assert driver.display_values()["auto"]
    driver.type_display_value("minimum", "5")
    assert not driver.display_values()["auto"]


def test_the_display_choice_is_kept_for_the_next_start(qtbot, settings, dim_folder):
    from gui.window.main_window import MainWindow

    first = MainWindow(settings, torch_threads=1)
    qtbot.addWidget(first)
    first.show()
    app = Driver(qtbot, first)
    assert app.open(dim_folder)
    app.click_auto_contrast()
    app.type_display_value("maximum", "30")
    app.type_display_value("gamma", "0.7")
    first.close()

    second = MainWindow(settings, torch_threads=1)
    qtbot.addWidget(second)
    second.show()
    again = Driver(qtbot, second)
    try:
        assert again.display_values() == {"auto": False, "minimum": 0, "maximum": 30, "gamma": 0.7}
        assert again.open(dim_folder)
        loaded = load_image(dim_folder / "dim_0.png")
        expected = np.rint(np.clip(loaded / 30.0, 0, 1) ** 0.7 * 255).astype(np.uint8)
        assert np.array_equal(again.shown_image(), expected)
    finally:
        second.shutdown()


# ----- the pure part -----
def test_auto_range_is_the_percentiles_within_one_level():
    rng = np.random.default_rng(1)
    image = rng.integers(0, 256, (300, 400, 3)).astype(np.uint8)
    low, high = levels.auto_range(image, (1.0, 99.8))
    want_low, want_high = np.percentile(image, (1.0, 99.8))
    assert abs(low - want_low) <= 1 and abs(high - want_high) <= 1


def test_the_subsample_is_bounded_so_a_10k_image_reads_about_a_million_values():
    big = np.zeros((10_000, 10_000, 3), dtype=np.uint8)
    sample = levels.subsample(big)
    assert sample.size <= 1.1 * levels.SAMPLES
    assert np.shares_memory(sample, big)  # a view: no copy of the image
    start = time.perf_counter()
    levels.auto_range(big)
    print(f"auto_range on 10,000 x 10,000 x 3: {1000 * (time.perf_counter() - start):.1f} ms")


def test_an_identity_table_shows_the_same_array_and_a_flat_image_stays_usable():
    image = np.arange(256, dtype=np.uint8).reshape(16, 16)
    assert levels.stretch(image, 0, 255, 1.0) is image
    flat = np.full((8, 8, 3), 7, dtype=np.uint8)
    low, high = levels.auto_range(flat)
    assert high > low
    assert levels.apply(flat, levels.Levels()).shape == flat.shape


def test_the_table_maps_min_to_black_max_to_white_and_gamma_bends_the_middle():
    table = levels.lookup_table(10, 20, 1.0)
    assert table[10] == 0 and table[20] == 255 and table[0] == 0 and table[255] == 255
    assert table[15] == 128
    assert levels.lookup_table(10, 20, 0.5)[15] > table[15] > levels.lookup_table(10, 20, 2.0)[15]


def test_the_paired_lookup_equals_numpys_for_any_layout():
    rng = np.random.default_rng(2)
    table = levels.lookup_table(12, 90, 0.6)
    for image in (
        rng.integers(0, 256, (37, 53, 3)).astype(np.uint8),  # an odd number of bytes
        rng.integers(0, 256, (300, 400, 3)).astype(np.uint8),  # more than one chunk
        rng.integers(0, 256, (40, 60, 3)).astype(np.uint8)[:, ::2],  # not contiguous
        rng.integers(0, 256, (64, 64)).astype(np.uint8),
    ):
        assert np.array_equal(levels.apply_table(image, table), table[image])


def test_a_photo_that_already_fills_the_range_is_shown_as_it_is():
    image = np.random.default_rng(4).integers(0, 256, (100, 100, 3)).astype(np.uint8)
    low, high = levels.auto_range(image)
    assert low <= 3 and high >= 253
    assert levels.apply(image, levels.Levels()) is image  # no full-image pass for a change nobody sees


def test_the_panels_table_gives_the_same_pixels_as_its_display(qtbot):
    from gui.panels.display_panel import DisplayPanel

    panel = DisplayPanel()
    qtbot.addWidget(panel)
    dim = np.rint(blobs() * 40).astype(np.uint8)
    table = panel.table_for(dim)
    assert table is not None and np.array_equal(levels.apply_table(dim, table), panel.display_pixels(dim))
    full = np.random.default_rng(5).integers(0, 256, (64, 64, 3)).astype(np.uint8)
    assert panel.table_for(full) is None and panel.display_pixels(full) is full


def test_only_uint8_images_are_stretched():
    with pytest.raises(ValueError, match="uint8"):
        levels.stretch(np.zeros((2, 2), dtype=np.uint16), 0, 1)
