"""Image files -> RGB uint8 arrays, whatever their mode, with EXIF orientation applied.

Conversion rules (the same for display, inference and training):
- RGB as is; CMYK, YCbCr, LAB, HSV converted by Pillow; palette images expanded.
- Alpha (RGBA, LA, palette with transparency) is composited onto black: rgb * alpha / 255. When the
  alpha channel is entirely 0 (some tools write it so by mistake) it is dropped instead, so the image
  does not turn black.
- 1-bit and 8-bit grayscale are repeated over three channels.
- 16-bit, 32-bit integer and float grayscale are scaled to 0..255 between their 0.1 and 99.9
  percentiles (robust to a few hot pixels; values outside are clipped). When those percentiles are
  equal the min-max range is used, and a constant image becomes all zeros.
- Multi-frame files (TIFF stacks, GIF) give their first frame.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from engine.data.errors import ImageLoadError

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".tif", ".tiff", ".bmp", ".gif", ".webp")
ROBUST_PERCENTILES = (0.1, 99.9)
_EXIF_ORIENTATION_TAG = 0x0112
_TRANSPOSED_ORIENTATIONS = (5, 6, 7, 8)
_HIGH_DEPTH_MODES = ("I;16", "I;16L", "I;16B", "I;16N", "I", "F")

__all__ = [
    "IMAGE_SUFFIXES",
    "ImageLoadError",
    "declared_size_problem",
    "image_size",
    "is_existing_dir",
    "is_existing_file",
    "is_image_file",
    "load_image",
    "max_image_pixels",
    "scale_to_uint8",
    "wrong_size_error",
]


def is_image_file(path: str | Path) -> bool:
    """True when the file name has an image suffix we read (case-insensitive); hidden files excluded."""
    name = Path(path).name
    return not name.startswith(".") and Path(name).suffix.lower() in IMAGE_SUFFIXES


def load_image(path: str | Path, expected_size: tuple[int, int] | None = None) -> np.ndarray:
    """Read an image file as uint8 (H,W,3) RGB, EXIF orientation applied; raises ImageLoadError, also when
    ``expected_size`` (width, height: what the annotations say) is given and the image is not that size."""
    with _open(path) as opened:
        try:
            opened.load()
            oriented = ImageOps.exif_transpose(opened)
            pixels = _to_rgb_array(oriented)
        except (OSError, ValueError, SyntaxError, Image.DecompressionBombError, MemoryError) as error:
            raise ImageLoadError(path, _unreadable_reason(error)) from error
    if expected_size is not None and (pixels.shape[1], pixels.shape[0]) != tuple(expected_size):
        raise wrong_size_error(path, (pixels.shape[1], pixels.shape[0]), expected_size)
    return pixels


def wrong_size_error(path: str | Path, size: tuple[int, int], expected_size: tuple[int, int]) -> ImageLoadError:
    """The error for an image of ``size`` (width, height) where the annotations say ``expected_size``."""
    return ImageLoadError(
        path,
        f"the image is {size[0]}x{size[1]} pixels but the annotations say {expected_size[0]}x{expected_size[1]}; "
        "fix the size in the annotation file or put back the image it was made for",
    )


def max_image_pixels() -> int:
    """The largest image (width x height) that can be opened: twice Pillow's MAX_IMAGE_PIXELS, where it
    refuses a file as a decompression bomb (2**31 when that check is turned off)."""
    limit = Image.MAX_IMAGE_PIXELS
    return 2 * int(limit) if limit else 2**31


def declared_size_problem(width: object, height: object) -> str | None:
    """Why a width and height read from an annotation file are not an image size that can be opened."""
    if not all(isinstance(v, int) and not isinstance(v, bool) for v in (width, height)):
        return f"the size {_short(width)}x{_short(height)} is not in whole pixels"
    if width <= 0 or height <= 0:
        return f"has a size of {width}x{height}"
    if width * height > max_image_pixels():
        return (
            f"declares {_short(width)}x{_short(height)} pixels, more than the {max_image_pixels():,} "
            "an image may have to be opened"
        )
    return None


def is_existing_file(path: str | Path) -> bool:
    """Path.is_file() that says False, instead of raising, for names the system refuses (too long, NUL)."""
    try:
        return Path(path).is_file()
    except (OSError, ValueError):
        return False


def is_existing_dir(path: str | Path) -> bool:
    """Path.is_dir() that says False, instead of raising, for names the system refuses (too long, NUL)."""
    try:
        return Path(path).is_dir()
    except (OSError, ValueError):
        return False


def _short(value: object) -> str:
    text = repr(value)
    return text if len(text) <= 24 else text[:21] + "..."


def image_size(path: str | Path) -> tuple[int, int]:
    """(width, height) after EXIF orientation, reading the file header only; raises ImageLoadError."""
    with _open(path) as opened:
        width, height = opened.size
        orientation = _header_orientation(opened)
    return (height, width) if orientation in _TRANSPOSED_ORIENTATIONS else (width, height)


def _header_orientation(opened: Image.Image) -> int:
    """EXIF orientation from the header; a PNG's eXIf chunk after the pixels (rare) is not looked for."""
    if opened.format == "PNG" and "exif" not in opened.info:
        return 1  # Pillow's PNG getexif() would decode the whole image to look behind the pixel data
    try:
        return int(opened.getexif().get(_EXIF_ORIENTATION_TAG, 1))
    except (OSError, ValueError, SyntaxError, TypeError):
        return 1


def scale_to_uint8(values: np.ndarray) -> np.ndarray:
    """Any-depth array -> uint8 of the same shape, scaled between the robust percentiles (see module doc)."""
    finite = values[np.isfinite(values)] if values.dtype.kind == "f" else values
    if finite.size == 0:
        return np.zeros(values.shape, dtype=np.uint8)
    low, high = (float(v) for v in np.percentile(finite, ROBUST_PERCENTILES))
    if high <= low:
        low, high = float(finite.min()), float(finite.max())
    if high <= low:
        return np.zeros(values.shape, dtype=np.uint8)
    scaled = (np.nan_to_num(values.astype(np.float64), nan=low) - low) * (255.0 / (high - low))
    return np.clip(np.rint(scaled), 0, 255).astype(np.uint8)


def _open(path: str | Path) -> Image.Image:
    file_path = Path(path)
    if not file_path.exists():
        raise ImageLoadError(path, "the file does not exist; check that it was not moved, renamed or deleted")
    if file_path.is_dir():
        raise ImageLoadError(path, "this is a folder, not an image file")
    try:
        return Image.open(file_path)
    except UnidentifiedImageError as error:
        raise ImageLoadError(path, _unreadable_reason(error)) from error
    except (OSError, ValueError, SyntaxError, Image.DecompressionBombError) as error:
        raise ImageLoadError(path, _unreadable_reason(error)) from error


def _unreadable_reason(error: BaseException) -> str:
    if isinstance(error, Image.DecompressionBombError):
        return f"the image is too large for Pillow's safety limit ({error}); split it into tiles"
    return (
        f"the file is corrupt or not in a supported image format ({type(error).__name__}: {error}); "
        "re-export it as PNG or TIFF, or remove it from the folder"
    )


def _to_rgb_array(image: Image.Image) -> np.ndarray:
    mode = image.mode
    if mode in _HIGH_DEPTH_MODES or mode.startswith("I;16"):
        gray = scale_to_uint8(np.asarray(image))
        return np.repeat(gray[:, :, None], 3, axis=2)
    if mode == "P":
        image = image.convert("RGBA" if "transparency" in image.info else "RGB")
    elif mode == "PA":
        image = image.convert("RGBA")
    if image.mode in ("RGBA", "LA", "La", "RGBa"):
        return _composite_alpha(image.convert("RGBA"))
    if image.mode != "RGB":
        image = image.convert("RGB")
    return np.array(image, dtype=np.uint8)


def _composite_alpha(image: Image.Image) -> np.ndarray:
    rgba = np.array(image, dtype=np.uint8)
    rgb, alpha = rgba[:, :, :3], rgba[:, :, 3]
    if alpha.min() == 255 or alpha.max() == 0:
        return np.ascontiguousarray(rgb)
    blended = rgb.astype(np.uint16) * alpha[:, :, None].astype(np.uint16)
    return ((blended + 127) // 255).astype(np.uint8)
