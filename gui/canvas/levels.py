"""Display contrast, Qt-free: a percentile stretch (auto-levels) or a min / max / gamma chosen by hand, turned
into a 256-entry lookup table applied to the image as shown. The image the model sees is never changed.

Why a lookup table: the canvas shows uint8 RGB (what engine.data.io.images makes of any file), so any
stretch with gamma is a map of 256 values, applied in one pass (``apply_table``), and a table that changes
no value visibly shows the very same array (no copy). Why a subsample: for display, the percentiles of a
strided sample of about a million values serve as well as the whole image's (35 ms for a 10,000 x 10,000
RGB image, where np.percentile over all of a 6000 x 4000 one takes 1.4 s: benchmarks/display_levels.py,
on a loaded 2-core machine). One range serves the three
channels, so a colour photo keeps its hues (a per-channel stretch would not).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

AUTO_PERCENTILES = (1.0, 99.8)  # Cellpose's normalisation uses 1-99; 99.8 keeps bright nuclei from clipping
SAMPLES = 1 << 20  # values the percentiles are computed from, at most
INVISIBLE = 2  # grey levels: a table that moves no value further than this is not applied
CHUNK = 1 << 16  # byte pairs looked up at a time (fastest of 64K / 256K / 1M on the 2-core test machine)


@dataclass(frozen=True)
class Levels:
    """How the image is shown: ``auto`` stretches each image between its percentiles; otherwise the values
    ``minimum``..``maximum`` (0-255, as loaded) go to black..white. ``gamma`` < 1 brightens the midtones."""

    auto: bool = True
    minimum: float = 0.0
    maximum: float = 255.0
    gamma: float = 1.0
    percentiles: tuple[float, float] = AUTO_PERCENTILES


def subsample(image: np.ndarray, samples: int = SAMPLES) -> np.ndarray:
    """A strided view of ``image``'s values (all channels) with about ``samples`` values at most; no copy."""
    height, width = image.shape[:2]
    channels = image.shape[2] if image.ndim == 3 else 1
    step = max(1, int(np.ceil(np.sqrt(height * width * channels / max(samples, 1)))))
    return image[::step, ::step]


def auto_range(image: np.ndarray, percentiles: tuple[float, float] = AUTO_PERCENTILES) -> tuple[float, float]:
    """(low, high): the image's percentiles over a subsample; never an empty range."""
    values = subsample(image)
    if values.size == 0:
        return 0.0, 255.0
    if values.dtype == np.uint8:  # a histogram is exact and faster than sorting for 256 levels
        counts = np.bincount(values.ravel(), minlength=256).cumsum()
        total = counts[-1]
        low = float(np.searchsorted(counts, total * percentiles[0] / 100.0, side="left"))
        high = float(np.searchsorted(counts, total * percentiles[1] / 100.0, side="left"))
    else:
        low, high = (float(v) for v in np.percentile(values, percentiles))
    if high <= low:  # a flat image (or one spike): fall back to its whole range, then to a unit step
        low, high = float(values.min()), float(values.max())
        if high <= low:
            high = low + 1.0
    return low, high


def lookup_table(low: float, high: float, gamma: float = 1.0) -> np.ndarray:
    """uint8[256]: value v -> 255 * clip((v - low) / (high - low), 0, 1) ** gamma."""
    values = np.arange(256, dtype=np.float64)
    span = max(float(high) - float(low), 1e-6)
    scaled = np.clip((values - float(low)) / span, 0.0, 1.0) ** max(float(gamma), 1e-3)
    return np.rint(scaled * 255.0).astype(np.uint8)


def shown_range(image: np.ndarray, levels: Levels) -> tuple[float, float]:
    """The (low, high) that ``levels`` maps to black and white for this image."""
    return auto_range(image, levels.percentiles) if levels.auto else (levels.minimum, levels.maximum)


def stretch(image: np.ndarray, low: float, high: float, gamma: float = 1.0) -> np.ndarray:
    """The pixels to show for a uint8 ``image``: the same array when no value would move by more than
    ``INVISIBLE`` levels (a photo that already fills 0-255 costs nothing), else a new one."""
    if image.dtype != np.uint8:
        raise ValueError(f"display levels work on uint8 images (as loaded), not {image.dtype}")
    table = lookup_table(low, high, gamma)
    return image if invisible(table) else apply_table(image, table)


def invisible(table: np.ndarray) -> bool:
    """True when the table moves no value by more than ``INVISIBLE`` levels."""
    return int(np.abs(table.astype(np.int16) - np.arange(256, dtype=np.int16)).max()) <= INVISIBLE


def apply_table(image: np.ndarray, table: np.ndarray) -> np.ndarray:
    """``table[image]`` for a uint8 image, about 3x faster than numpy's own (measured on 6000 x 4000 RGB):
    the bytes are read in pairs through a 65,536-entry table (half the lookups), in chunks that stay in the
    cache (numpy widens every index to 8 bytes first, which is most of a plain lookup's cost)."""
    if not image.flags.c_contiguous or image.size % 2:
        return np.take(table, image)
    values = np.arange(65536, dtype=np.uint32)
    pairs = (table[values & 0xFF].astype(np.uint16) | (table[values >> 8].astype(np.uint16) << 8)).view(np.uint16)
    if np.little_endian is False:  # the pair's first byte is its high byte there
        pairs = pairs.byteswap()
    source = image.reshape(-1).view(np.uint16)
    shown = np.empty_like(source)
    for start in range(0, source.size, CHUNK):
        np.take(pairs, source[start : start + CHUNK], out=shown[start : start + CHUNK])
    return shown.view(np.uint8).reshape(image.shape)


def apply(image: np.ndarray, levels: Levels) -> np.ndarray:
    """``stretch`` with the range ``levels`` gives for this image."""
    return stretch(image, *shown_range(image, levels), levels.gamma)
