"""Mask encodings: pycocotools RLE (counts as str), polygons, label images. Plain numpy, no torch.

An RLE here is always the compressed COCO form ``{"size": [H, W], "counts": str}``. Polygons are
``list[list[float]]`` (each ``[x0, y0, x1, y1, ...]``, at least 3 points), rasterised exactly as
pycocotools does, so a polygon and the RLE made from it decode to the same pixels.

Nothing from a file reaches pycocotools unchecked (its C code trusts its input: garbage RLE counts
write past the mask, and a coordinate of 1e9 allocates gigabytes or crashes the process): an RLE's
counts are decoded and checked here first (``rle_problem``), and polygons are clipped to a window
one image size around the image and refused when their outline is too long to draw (``fit_polygons``).
"""

from __future__ import annotations

import math
import numbers
from typing import Any

import numpy as np
from pycocotools import mask as coco_mask

RLE = dict[str, Any]
Polygons = list[list[float]]
_NUMBER_TYPES = {int, float}
MAX_POLYGON_OUTLINE = 4_000_000
"""Longest outline (sum of max(|dx|, |dy|) over the edges, in pixels) drawn for one instance: pycocotools
keeps about 80 bytes per pixel of outline while drawing (320 MB at this limit)."""
_MAX_RUN = 2**32  # pycocotools keeps runs as uint32
_MAX_RUN_CHARACTERS = 7  # a compressed run below 2**32 takes at most 7 characters


def encode_mask(mask: np.ndarray) -> RLE:
    """Bool/uint8 mask (H,W) -> compressed RLE with str counts."""
    if mask.ndim != 2:
        raise ValueError(f"expected a 2-D mask, got shape {mask.shape}")
    rle = coco_mask.encode(np.asfortranarray(mask.astype(np.uint8, copy=False)))
    return _with_str_counts(rle)


def decode_rle(rle: RLE) -> np.ndarray:
    """Compressed or uncompressed RLE -> bool mask (H,W); ValueError when it is not a valid RLE."""
    height, width = rle_size(rle)
    return coco_mask.decode(_as_bytes(normalize_rle(rle, height, width))).astype(bool)


def normalize_rle(rle: RLE, height: int, width: int) -> RLE:
    """Any COCO RLE (counts as list, bytes or str) -> compressed RLE with str counts; checks its size and
    that its runs cover the image exactly (ValueError saying what is wrong otherwise)."""
    if not isinstance(rle, dict) or "size" not in rle or "counts" not in rle:
        raise ValueError("an RLE must be an object with 'size' and 'counts'")
    size = rle_size(rle)
    if size != [height, width]:
        raise ValueError(f"RLE size {size} does not match the image size [{height}, {width}]")
    counts = rle["counts"]
    if isinstance(counts, (list, np.ndarray)):
        problem = _runs_problem(counts, height * width)
        if problem:
            raise ValueError(f"RLE counts: {problem}")
        runs = [int(c) for c in counts]
        return _with_str_counts(coco_mask.frPyObjects({"size": size, "counts": runs}, height, width))
    if isinstance(counts, bytes):
        try:
            counts = counts.decode("ascii")
        except UnicodeDecodeError:
            raise ValueError("compressed RLE counts must be ASCII text") from None
    if not isinstance(counts, str):
        raise ValueError(f"RLE counts must be a list or a string, got {type(counts).__name__}")
    problem = rle_problem(counts, height * width)
    if problem:
        raise ValueError(f"compressed RLE counts: {problem}")
    return {"size": size, "counts": counts}


def rle_size(rle: RLE) -> list[int]:
    """An RLE's [height, width], checked to be two positive integers (ValueError otherwise)."""
    size = rle.get("size") if isinstance(rle, dict) else None
    if not (isinstance(size, (list, tuple)) and len(size) == 2 and all(_is_integer(v) for v in size)):
        raise ValueError(f"RLE 'size' must be [height, width] in whole pixels, got {_short(size)}")
    height, width = (int(v) for v in size)
    if height <= 0 or width <= 0 or height * width >= 2**40:
        raise ValueError(f"RLE 'size' {[height, width]} is not a usable image size")
    return [height, width]


def rle_problem(counts: str, num_pixels: int) -> str | None:
    """Why compressed COCO counts do not describe ``num_pixels`` pixels (None when they do).

    Decodes the string as pycocotools' rleFrString does (in Python when short, else vectorised) and checks
    what its C code takes on trust: only characters it writes, no run cut off, no negative or over-long
    run, and runs that add up to the image exactly (more would write past the mask, fewer leave pixels undefined).
    """
    if not counts:
        return "empty" if num_pixels else None
    if not counts.isascii():
        return "holds characters that are not ASCII"
    if min(counts) < "0" or max(counts) > "o":
        return "holds characters outside '0'..'o'"
    if len(counts) <= _SHORT_COUNTS:
        return _short_counts_problem(counts, num_pixels)
    codes = np.frombuffer(counts.encode("ascii"), dtype=np.uint8).astype(np.int64) - 48
    more = (codes & 0x20) != 0
    if more[-1]:
        return "the last run is cut off"
    ends = np.flatnonzero(~more)
    starts = np.concatenate(([0], ends[:-1] + 1))
    lengths = ends - starts + 1
    if lengths.max() > _MAX_RUN_CHARACTERS:
        return "a run is longer than any image"
    position = np.arange(len(codes)) - np.repeat(starts, lengths)
    values = np.add.reduceat((codes & 0x1F) << (5 * position), starts)
    negative = (codes[ends] & 0x10) != 0
    values = np.where(negative, values - (np.int64(1) << (5 * lengths)), values)
    runs = values.copy()  # after the third, each run is stored as the difference to the run two before
    runs[1::2] = np.cumsum(values[1::2])
    runs[2::2] = np.cumsum(values[2::2])
    return _runs_problem(runs, num_pixels)


# Counts up to this long are checked in plain Python (an instance's mask is a few hundred characters): as fast as
# numpy's ~15 calls on such short arrays, and it never lets go of the GIL. numpy's calls each release and retake
# it, and a thread doing that thousands of times a second starves the others: a waiting thread is woken by every
# release, finds the GIL taken again and starts its wait anew, so it never asks for a switch (measured: the GUI
# thread kept out 100-260 ms at a time while the autosave thread checked 5,000 masks, whatever the switch interval).
_SHORT_COUNTS = 4096


def _short_counts_problem(counts: str, num_pixels: int) -> str | None:
    """``rle_problem`` of ASCII counts in '0'..'o', decoded in Python (as pycocotools' rleFrString does)."""
    if (ord(counts[-1]) - 48) & 0x20:
        return "the last run is cut off"
    runs: list[int] = []
    value, shift, characters = 0, 0, 0
    for char in counts:
        code = ord(char) - 48
        value |= (code & 0x1F) << shift
        shift += 5
        characters += 1
        if code & 0x20:
            continue
        if characters > _MAX_RUN_CHARACTERS:
            return "a run is longer than any image"
        if code & 0x10:
            value -= 1 << shift
        if len(runs) > 2:  # after the third, each run is stored as the difference to the run two before
            value += runs[-2]
        runs.append(value)
        value, shift, characters = 0, 0, 0
    if min(runs) < 0:
        return "a run is negative"
    if max(runs) >= _MAX_RUN:
        return "a run is longer than any image"
    total = sum(runs)
    if total != num_pixels:
        return f"the runs add up to {total} pixels, the image has {num_pixels}"
    return None


def _runs_problem(runs: Any, num_pixels: int) -> str | None:
    """Why uncompressed run lengths do not cover ``num_pixels`` pixels (None when they do)."""
    if not isinstance(runs, np.ndarray) and all(type(v) is int for v in runs[:1]):
        try:  # the common case, fast: a list of Python ints
            runs = np.asarray(runs)
        except (OverflowError, ValueError):
            pass
    if isinstance(runs, np.ndarray) and runs.ndim == 1 and runs.dtype.kind in "iu" or not len(runs):
        values = np.asarray(runs, dtype=np.int64) if len(runs) else np.zeros(0, dtype=np.int64)
    elif isinstance(runs, np.ndarray):
        return "must be a list of whole numbers"
    else:
        if not all(_is_integer(v) for v in runs):
            return "must be a list of whole numbers"
        if any(not -_MAX_RUN < int(v) < _MAX_RUN for v in runs):
            return "a run is longer than any image"
        values = np.asarray([int(v) for v in runs], dtype=np.int64)
    if values.size and values.min() < 0:
        return "a run is negative"
    if values.size and values.max() >= _MAX_RUN:
        return "a run is longer than any image"
    total = int(values.sum())
    if total != num_pixels:
        return f"the runs add up to {total} pixels, the image has {num_pixels}"
    return None


def _is_integer(value: Any) -> bool:
    return isinstance(value, (int, np.integer)) and not isinstance(value, bool)


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def polygons_to_rle(polygons: Polygons, height: int, width: int) -> RLE:
    """Polygons (each [x0,y0,x1,y1,...]) -> one compressed RLE (H,W), their union, as pycocotools draws it."""
    polygons, _ = fit_polygons(polygons, height, width)
    if not polygons:
        return _with_str_counts(coco_mask.encode(np.zeros((height, width), dtype=np.uint8, order="F")))
    parts = coco_mask.frPyObjects(polygons, height, width)
    return _with_str_counts(coco_mask.merge(parts))


def fit_polygons(polygons: Any, height: int, width: int) -> tuple[Polygons, bool]:
    """Valid polygons, clipped to a window one image size around the image where they go beyond it, and
    whether any was clipped; polygons left with no area are dropped (the list may come back empty).

    Clipping there changes no pixel of the image (only the far, unseen part of the outline). Raises
    ValueError when the polygons are not valid (``polygon_problem``) or their outline is longer than
    MAX_POLYGON_OUTLINE pixels after clipping (pycocotools would need gigabytes to draw it).
    """
    problem = polygon_problem(polygons)
    if problem:
        raise ValueError(problem)
    margin = float(max(height, width))
    window = (-margin, -margin, width + margin, height + margin)
    fitted: Polygons = []
    clipped = False
    for polygon in polygons:
        xs, ys = polygon[0::2], polygon[1::2]
        if min(xs) >= window[0] and min(ys) >= window[1] and max(xs) <= window[2] and max(ys) <= window[3]:
            fitted.append(polygon)
            continue
        clipped = True
        points = _clip_to_window(np.asarray(polygon, dtype=np.float64).reshape(-1, 2), window)
        if len(points) >= 3 and np.isfinite(points).all():
            fitted.append(points.ravel().tolist())
    longest_edge = 3 * margin  # in the window, an edge spans at most this many pixels along x or y
    if sum(len(polygon) // 2 for polygon in fitted) * longest_edge > MAX_POLYGON_OUTLINE:
        outline = sum(_outline(polygon) for polygon in fitted)
        if outline > MAX_POLYGON_OUTLINE:
            raise ValueError(
                f"the outline is {outline:.3g} pixels long, more than the {MAX_POLYGON_OUTLINE:,} that are drawn; "
                "simplify the polygon"
            )
    return fitted, clipped


def _outline(polygon: list[float]) -> float:
    """Sum over the edges of max(|dx|, |dy|): how many steps pycocotools takes around the polygon."""
    points = np.asarray(polygon, dtype=np.float64).reshape(-1, 2)
    return float(np.abs(points - np.roll(points, 1, axis=0)).max(axis=1).sum())


def _clip_to_window(points: np.ndarray, window: tuple[float, float, float, float]) -> np.ndarray:
    """Sutherland-Hodgman: the polygon (N,2) clipped to the box (x0, y0, x1, y1)."""
    x0, y0, x1, y1 = window
    edges = ((0, x0, 1.0), (1, y0, 1.0), (0, x1, -1.0), (1, y1, -1.0))  # (axis, bound, keep side)
    result = [tuple(p) for p in points.tolist()]
    for axis, bound, side in edges:
        if not result:
            break
        kept = []
        for index, current in enumerate(result):
            previous = result[index - 1]
            current_in = side * (current[axis] - bound) >= 0
            previous_in = side * (previous[axis] - bound) >= 0
            if current_in != previous_in:  # measured from the inner end: the outer one may be 1e30 away
                inner, outer = (current, previous) if current_in else (previous, current)
                other = 1 - axis
                crossing = [0.0, 0.0]
                crossing[axis] = bound
                fraction = (bound / 2 - inner[axis] / 2) / (outer[axis] / 2 - inner[axis] / 2)  # halves: no overflow
                crossing[other] = (1 - fraction) * inner[other] + fraction * outer[other]
                kept.append(tuple(crossing))
            if current_in:
                kept.append(current)
        result = kept
    return np.asarray(result, dtype=np.float64).reshape(-1, 2)


def merge_rles(rles: list[RLE]) -> RLE:
    """Union of RLEs of one size -> compressed RLE."""
    return _with_str_counts(coco_mask.merge([_as_bytes(rle) for rle in rles]))


def rle_area(rle: RLE) -> int:
    """Number of foreground pixels of a compressed RLE."""
    return int(coco_mask.area(_as_bytes(rle)))


def rle_box(rle: RLE) -> list[float]:
    """Tight box [x, y, w, h] (pixels, float) of a compressed RLE; all zeros when empty."""
    return [float(v) for v in coco_mask.toBbox(_as_bytes(rle))]


def polygons_box(polygons: Polygons) -> list[float]:
    """Box [x, y, w, h] spanned by the polygon vertices (float)."""
    xs = [float(v) for polygon in polygons for v in polygon[0::2]]
    ys = [float(v) for polygon in polygons for v in polygon[1::2]]
    if not xs:
        return [0.0, 0.0, 0.0, 0.0]
    return [min(xs), min(ys), max(xs) - min(xs), max(ys) - min(ys)]


def polygon_problem(polygons: Any) -> str | None:
    """Why ``polygons`` is not a valid list of polygons (None when valid)."""
    if not isinstance(polygons, list) or not polygons:
        return "polygon list is empty or not a list"
    for index, polygon in enumerate(polygons):
        if not isinstance(polygon, list) or not _all_numbers(polygon):
            return f"polygon {index} is not a list of numbers"
        if len(polygon) % 2:
            return f"polygon {index} has an odd number of coordinates ({len(polygon)})"
        if len(polygon) < 6:
            return f"polygon {index} has {len(polygon) // 2} points; at least 3 are needed"
        try:
            finite = math.isfinite(math.fsum(polygon))
        except OverflowError:
            return f"polygon {index} has a coordinate too large for any image"
        except ValueError:  # inf and -inf
            return f"polygon {index} has a non-finite coordinate"
        if not finite:
            return f"polygon {index} has a non-finite coordinate"
    return None


def _all_numbers(values: list) -> bool:
    """True when every value is a real number (not a bool); fast for plain int/float lists."""
    if set(map(type, values)) <= _NUMBER_TYPES:
        return True
    return all(isinstance(v, numbers.Real) and not isinstance(v, bool) for v in values)


def label_image_to_rles(labels: np.ndarray) -> dict[int, RLE]:
    """Label image (H,W) int, 0 = background -> {label value: compressed RLE}, in ascending label order.

    Runs are computed once over the column-major image, so the cost does not grow with the number
    of labels times the image size (a 2k x 2k image with thousands of cells stays fast).
    """
    if labels.ndim != 2:
        raise ValueError(f"expected a 2-D label image, got shape {labels.shape}")
    height, width = labels.shape
    flat = labels.ravel(order="F")
    positions = np.flatnonzero(flat)
    values = flat[positions]
    order = np.argsort(values, kind="stable")
    positions, values = positions[order], values[order]
    boundaries = np.flatnonzero(np.diff(values)) + 1
    rles: dict[int, RLE] = {}
    for group in np.split(np.arange(len(values)), boundaries):
        if len(group) == 0:
            continue
        counts = _run_counts(positions[group], height * width)
        rles[int(values[group[0]])] = normalize_rle({"size": [height, width], "counts": counts}, height, width)
    return rles


def _run_counts(sorted_positions: np.ndarray, total: int) -> list[int]:
    """Sorted foreground positions (column-major) -> uncompressed COCO counts (alternating 0-run, 1-run)."""
    breaks = np.flatnonzero(np.diff(sorted_positions) != 1) + 1
    starts = sorted_positions[np.concatenate(([0], breaks))]
    ends = sorted_positions[np.concatenate((breaks - 1, [len(sorted_positions) - 1]))] + 1
    previous_ends = np.concatenate(([0], ends[:-1]))
    counts = np.empty(2 * len(starts) + 1, dtype=np.int64)
    counts[0:-1:2] = starts - previous_ends
    counts[1::2] = ends - starts
    counts[-1] = total - ends[-1]
    return counts.tolist()


def _with_str_counts(rle: RLE) -> RLE:
    counts = rle["counts"]
    return {
        "size": [int(v) for v in rle["size"]],
        "counts": counts.decode("ascii") if isinstance(counts, bytes) else counts,
    }


def _as_bytes(rle: RLE) -> RLE:
    counts = rle["counts"]
    if isinstance(counts, list):
        height, width = (int(v) for v in rle["size"])
        return coco_mask.frPyObjects({"size": list(rle["size"]), "counts": counts}, height, width)
    return {"size": list(rle["size"]), "counts": counts.encode("ascii") if isinstance(counts, str) else counts}
