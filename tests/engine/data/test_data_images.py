"""load_image / image_size on every pixel format we promise, built small with Pillow."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from engine.data import ImageLoadError, image_size, load_image


def test_rgb_png_is_unchanged(tmp_path):
    pixels = np.random.default_rng(0).integers(0, 256, size=(5, 7, 3), dtype=np.uint8)
    Image.fromarray(pixels).save(tmp_path / "rgb.png")
    loaded = load_image(tmp_path / "rgb.png")
    assert loaded.dtype == np.uint8 and loaded.shape == (5, 7, 3)
    assert np.array_equal(loaded, pixels)


def test_rgba_is_composited_onto_black(tmp_path):
    rgba = np.zeros((2, 2, 4), dtype=np.uint8)
    rgba[..., :3] = [200, 100, 50]
    rgba[..., 3] = [[255, 0], [128, 255]]
    Image.fromarray(rgba, "RGBA").save(tmp_path / "rgba.png")
    loaded = load_image(tmp_path / "rgba.png")
    assert loaded.shape == (2, 2, 3)
    assert loaded[0, 0].tolist() == [200, 100, 50]
    assert loaded[0, 1].tolist() == [0, 0, 0]
    assert loaded[1, 0].tolist() == [100, 50, 25]


def test_opaque_rgba_keeps_its_colours(tmp_path):
    rgba = np.full((3, 3, 4), 255, dtype=np.uint8)
    rgba[..., 0] = 17
    Image.fromarray(rgba, "RGBA").save(tmp_path / "opaque.png")
    assert np.all(load_image(tmp_path / "opaque.png") == [17, 255, 255])


def test_16bit_gray_is_scaled_between_robust_percentiles(tmp_path):
    gray = np.tile(np.arange(1000, 3000, 2, dtype=np.uint16), (4, 1))
    Image.fromarray(gray).save(tmp_path / "gray16.png")
    assert Image.open(tmp_path / "gray16.png").mode.startswith("I")
    loaded = load_image(tmp_path / "gray16.png")
    assert loaded.shape == (4, 1000, 3) and loaded.dtype == np.uint8
    assert loaded[0, 0, 0] == 0 and loaded[0, -1, 0] == 255
    assert 120 <= loaded[0, 500, 0] <= 135
    assert np.array_equal(loaded[..., 0], loaded[..., 2])
    assert np.all(np.diff(loaded[0, :, 0].astype(int)) >= 0)


def test_16bit_tiff_with_hot_pixel_keeps_contrast(tmp_path):
    gray = np.full((100, 100), 100, dtype=np.uint16)
    gray[:, 50:] = 200
    gray[0, 0] = 65535
    Image.fromarray(gray).save(tmp_path / "hot.tif")
    loaded = load_image(tmp_path / "hot.tif")[..., 0]
    assert loaded[50, 10] == 0 and loaded[50, 90] == 255


def test_constant_16bit_image_becomes_black(tmp_path):
    Image.fromarray(np.full((3, 4), 700, dtype=np.uint16)).save(tmp_path / "flat.tif")
    assert not load_image(tmp_path / "flat.tif").any()


def test_8bit_gray_palette_and_cmyk(tmp_path):
    Image.fromarray(np.array([[0, 128, 255]], dtype=np.uint8)).save(tmp_path / "gray.png")
    assert load_image(tmp_path / "gray.png")[0, :, 1].tolist() == [0, 128, 255]
    palette_image = Image.new("P", (2, 1))
    palette_image.putpalette([255, 0, 0, 0, 0, 255] + [0] * 762)
    palette_image.putdata([0, 1])
    palette_image.save(tmp_path / "palette.png")
    assert load_image(tmp_path / "palette.png")[0].tolist() == [[255, 0, 0], [0, 0, 255]]
    Image.new("CMYK", (3, 2), (0, 255, 255, 0)).save(tmp_path / "cmyk.jpg", quality=100)
    cmyk = load_image(tmp_path / "cmyk.jpg")
    assert cmyk.shape == (2, 3, 3)
    assert cmyk[..., 0].min() > 230 and cmyk[..., 1:].max() < 25


@pytest.mark.parametrize("suffix", [".png", ".jpg"])
def test_exif_orientation_is_applied(tmp_path, suffix):
    pixels = np.zeros((8, 12, 3), dtype=np.uint8)
    pixels[0:4, 0:4] = [255, 0, 0]
    image = Image.fromarray(pixels)
    exif = image.getexif()
    exif[0x0112] = 6  # stored landscape, displayed rotated 90 degrees clockwise
    path = tmp_path / f"rotated{suffix}"
    image.save(path, exif=exif, **({"quality": 100} if suffix == ".jpg" else {}))
    assert image_size(path) == (8, 12)
    loaded = load_image(path)
    assert loaded.shape == (12, 8, 3)
    assert loaded[1, -2, 0] > 240 and loaded[1, -2, 1] < 20  # the red corner moved to the top right
    assert loaded[-2, 1].max() < 20


def test_corrupt_and_missing_files_raise_image_load_error(tmp_path):
    corrupt = tmp_path / "broken.png"
    corrupt.write_bytes(b"\x89PNG\r\n\x1a\n this is not really a png")
    with pytest.raises(ImageLoadError, match="broken.png") as caught:
        load_image(corrupt)
    assert isinstance(caught.value, ValueError)
    assert "re-export" in str(caught.value)
    truncated = tmp_path / "truncated.png"
    Image.fromarray(np.zeros((64, 64, 3), dtype=np.uint8) + 7).save(truncated)
    truncated.write_bytes(truncated.read_bytes()[:60])
    with pytest.raises(ImageLoadError, match="truncated.png"):
        load_image(truncated)
    with pytest.raises(ImageLoadError, match="does not exist"):
        load_image(tmp_path / "nope.png")
    with pytest.raises(ImageLoadError, match="broken.png"):
        image_size(corrupt)
