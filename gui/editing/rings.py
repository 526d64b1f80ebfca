"""A mask as rings of vertices and back, Qt-free: outer rings and hole rings for vertex editing (V).

A mask with a hole becomes an outer ring plus a hole ring, a mask in several parts one ring per part (an
island inside a hole is an outer ring again). Rings are filled even-odd at pixel centres: pixel (r, c) is
inside when the horizontal line through (c + 0.5, r + 0.5) crosses the rings an odd number of times to its
left. The rings of an unsimplified mask are its pixel cracks, so ``rings_to_crop(mask_to_rings(m))`` gives
``m`` back exactly; ``tolerance`` > 0 lets Douglas-Peucker drop the staircase vertices (fewer handles).

The rings are engine.data.contours' crack loops, the holes' loops (negative area) kept rather than dropped.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import NamedTuple

import numpy as np

from engine.data.contours import mask_to_polygons
from engine.structures import InstanceMask

# px: the largest that gives every one of the bundled sample's 528 nucleus masks back pixel for pixel (0.6: worst
# IoU 0.967; 0.75: 0.81, median 0.976), with 36 vertices for the median mask instead of its 44 crack corners. The
# first edit re-fills the whole mask from the rings, so a coarser outline would change pixels nobody touched.
TOLERANCE = 0.5


class Ring(NamedTuple):
    points: np.ndarray  # (N,2) float x, y in image coordinates, N >= 3
    hole: bool  # drawn as a hole; what it cuts out follows from the even-odd fill


def mask_to_rings(crop: InstanceMask, tolerance: float = TOLERANCE) -> list[Ring]:
    """The outer rings (one per 8-connected part, largest first) then the hole rings of a mask crop."""
    mask = np.asarray(crop.mask, dtype=bool)
    if not mask.any():
        return []
    offset = np.array([crop.x0, crop.y0], dtype=np.float64)
    # every crack loop, holes included (negative area: traced with the mask on their right, y down); each
    # crack lies on exactly one loop, which is why the even-odd fill gives the mask back
    loops = [_points(p) for p in mask_to_polygons(mask, tolerance, min_area=-np.inf)]
    rings = [Ring(points + offset, ring_area(points) < 0) for points in loops]
    return sorted(rings, key=lambda ring: (ring.hole, -abs(ring_area(ring.points))))


def rings_to_crop(rings: Sequence[Ring | np.ndarray], height: int, width: int) -> InstanceMask:
    """The even-odd fill of the rings as a crop of an (height, width) image (empty crop: nothing inside)."""
    loops = [np.asarray(r.points if isinstance(r, Ring) else r, dtype=np.float64).reshape(-1, 2) for r in rings]
    loops = [p for p in loops if len(p) >= 3]
    if not loops:
        return InstanceMask(0, 0, np.zeros((0, 0), dtype=bool))
    every = np.concatenate(loops)
    x0, y0 = max(0, int(np.floor(every[:, 0].min()))), max(0, int(np.floor(every[:, 1].min())))
    x1, y1 = min(width, int(np.ceil(every[:, 0].max()))), min(height, int(np.ceil(every[:, 1].max())))
    if x1 <= x0 or y1 <= y0:
        return InstanceMask(0, 0, np.zeros((0, 0), dtype=bool))
    crop_h, crop_w = y1 - y0, x1 - x0
    toggles = np.zeros((crop_h, crop_w + 1), dtype=np.int32)
    for a in loops:
        b = np.roll(a, -1, axis=0)
        top, bottom = np.minimum(a[:, 1], b[:, 1]), np.maximum(a[:, 1], b[:, 1])
        # rows whose centre line y = r + 0.5 lies in [top, bottom): a vertex is counted once, a flat edge never
        first = np.maximum(np.ceil(top - 0.5).astype(np.int64), y0)
        last = np.minimum(np.ceil(bottom - 0.5).astype(np.int64), y1)
        counts = np.maximum(last - first, 0)
        if not counts.any():
            continue
        edge = np.repeat(np.arange(len(a)), counts)
        rows = np.repeat(first, counts) + (np.arange(counts.sum()) - np.repeat(np.cumsum(counts) - counts, counts))
        centre = rows + 0.5
        ax, ay, bx, by = a[edge, 0], a[edge, 1], b[edge, 0], b[edge, 1]
        x = ax + (centre - ay) * (bx - ax) / (by - ay)
        # pixel c lies right of the crossing when c + 0.5 > x, i.e. from column floor(x - 0.5) + 1 on
        column = np.clip(np.floor(x - 0.5).astype(np.int64) + 1 - x0, 0, crop_w)
        np.add.at(toggles, (rows - y0, column), 1)
    inside = (np.cumsum(toggles[:, :crop_w], axis=1) & 1).astype(bool)
    return InstanceMask(x0, y0, inside)


def ring_area(points: np.ndarray) -> float:
    """Signed shoelace area (positive for the outer rings engine.data.contours traces, y down)."""
    x, y = points[:, 0], points[:, 1]
    return float(np.sum(x * np.roll(y, -1) - np.roll(x, -1) * y) / 2.0)


def _points(polygon: list[float]) -> np.ndarray:
    return np.asarray(polygon, dtype=np.float64).reshape(-1, 2)
