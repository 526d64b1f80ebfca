"""Mask encodings: pycocotools RLE (counts as str), polygons, label images. Plain numpy, no torch.

An RLE here is always the compressed COCO form ``{"size": [H, W], "counts": str}``. Polygons are
``list[list[float]]`` (each ``[x0, y0, x1, y1, ...]``, at least 3 points), rasterised exactly as
pycocotools does, so a polygon and the RLE made from it decode to the same pixels.
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


def encode_mask(mask: np.ndarray) -> RLE:
    """Bool/uint8 mask (H,W) -> compressed RLE with str counts."""
    if mask.ndim != 2:
        raise ValueError(f"expected a 2-D mask, got shape {mask.shape}")
    rle = coco_mask.encode(np.asfortranarray(mask.astype(np.uint8, copy=False)))
    return _with_str_counts(rle)


def decode_rle(rle: RLE) -> np.ndarray:
    """Compressed or uncompressed RLE -> bool mask (H,W)."""
    height, width = (int(v) for v in rle["size"])
    return coco_mask.decode(_as_bytes(normalize_rle(rle, height, width))).astype(bool)


def normalize_rle(rle: RLE, height: int, width: int) -> RLE:
    """Any COCO RLE (counts as list, bytes or str) -> compressed RLE with str counts; checks its size."""
    size = [int(v) for v in rle["size"]]
    if size != [height, width]:
        raise ValueError(f"RLE size {size} does not match the image size [{height}, {width}]")
    counts = rle["counts"]
    if isinstance(counts, list):
        if sum(int(c) for c in counts) != height * width:
            raise ValueError(f"uncompressed RLE counts sum to {sum(counts)}, expected {height * width}")
        return _with_str_counts(coco_mask.frPyObjects({"size": size, "counts": counts}, height, width))
    if isinstance(counts, bytes):
        counts = counts.decode("ascii")
    if not isinstance(counts, str):
        raise ValueError(f"RLE counts must be a list or a string, got {type(counts).__name__}")
    return {"size": size, "counts": counts}


def polygons_to_rle(polygons: Polygons, height: int, width: int) -> RLE:
    """Polygons (each [x0,y0,x1,y1,...]) -> one compressed RLE (H,W), their union, as pycocotools draws it."""
    problem = polygon_problem(polygons)
    if problem:
        raise ValueError(problem)
    parts = coco_mask.frPyObjects([[float(v) for v in polygon] for polygon in polygons], height, width)
    return _with_str_counts(coco_mask.merge(parts))


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
        if not math.isfinite(sum(polygon)):
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
