"""Overlay pixels, Qt-free: instance masks -> one label map -> RGBA through a palette lookup; outlines.

The canvas draws every instance of an image as ONE RGBA layer (hundreds of per-instance items lag).
Masks arrive as crops (``InstanceMask``: a bool array placed at x0, y0); everything here works inside
the union of the crops only, so a few detections on a 6000x4000 image cost what their boxes cost.
"""

from __future__ import annotations

import colorsys
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

GOLDEN = 0.618033988749895


@dataclass
class LabelMap:
    """``labels`` (h,w) uint16/int32: 0 = background, i+1 = instance i; placed at (x0, y0) of the image."""

    labels: np.ndarray
    x0: int = 0
    y0: int = 0

    @property
    def empty(self) -> bool:
        return self.labels.size == 0

    def at(self, x: float, y: float) -> int:
        """Instance index under image point (x, y), or -1."""
        col, row = int(np.floor(x)) - self.x0, int(np.floor(y)) - self.y0
        h, w = self.labels.shape
        if 0 <= row < h and 0 <= col < w:
            return int(self.labels[row, col]) - 1
        return -1


def instance_color(key: int) -> tuple[int, int, int]:
    """A saturated RGB colour for an instance identity; neighbouring keys get far-apart hues."""
    hue = (0.07 + GOLDEN * (int(key) % 100003)) % 1.0
    saturation = (0.95, 0.65, 0.8)[int(key) % 3]
    value = (1.0, 0.85)[(int(key) // 3) % 2]
    red, green, blue = colorsys.hsv_to_rgb(hue, saturation, value)
    return round(red * 255), round(green * 255), round(blue * 255)


def palette(colors: Sequence[tuple[int, int, int]], alpha: int = 255) -> np.ndarray:
    """RGB colours of instances 0..N-1 -> (N+1,4) uint8 lookup table; entry 0 (background) is transparent."""
    table = np.zeros((len(colors) + 1, 4), dtype=np.uint8)
    if len(colors):
        table[1:, :3] = np.asarray(colors, dtype=np.uint8).reshape(-1, 3)
        table[1:, 3] = alpha
    return table


def union_box(crops: Sequence, height: int, width: int) -> tuple[int, int, int, int]:
    """(x0, y0, x1, y1) covering every non-empty crop, clipped to the image; (0,0,0,0) when none."""
    boxes = [(c.x0, c.y0, c.x0 + c.mask.shape[1], c.y0 + c.mask.shape[0]) for c in crops if c.mask.size]
    if not boxes:
        return 0, 0, 0, 0
    a = np.asarray(boxes)
    x0, y0 = max(int(a[:, 0].min()), 0), max(int(a[:, 1].min()), 0)
    x1, y1 = min(int(a[:, 2].max()), width), min(int(a[:, 3].max()), height)
    return x0, y0, max(x1, x0), max(y1, y0)


def label_map(crops: Sequence, height: int, width: int) -> LabelMap:
    """Crops of instances 0..N-1 (best first) -> LabelMap; where instances overlap the earlier one wins."""
    x0, y0, x1, y1 = union_box(crops, height, width)
    dtype = np.uint16 if len(crops) < 65535 else np.int32
    labels = np.zeros((y1 - y0, x1 - x0), dtype=dtype)
    for index in range(len(crops) - 1, -1, -1):  # worst first, so the best is painted last (on top)
        crop = crops[index]
        if not crop.mask.size:
            continue
        cx, cy = crop.x0 - x0, crop.y0 - y0
        h, w = crop.mask.shape
        mask = crop.mask[max(0, -cy) : max(0, labels.shape[0] - cy), max(0, -cx) : max(0, labels.shape[1] - cx)]
        region = labels[max(cy, 0) : max(cy, 0) + mask.shape[0], max(cx, 0) : max(cx, 0) + mask.shape[1]]
        region[mask] = index + 1
    return LabelMap(labels, x0, y0)


def colorize(labels: np.ndarray, table: np.ndarray) -> np.ndarray:
    """(h,w) labels, (N+1,4) palette -> (h,w,4) uint8 RGBA (a single lookup: no per-instance work)."""
    return table[labels]


def boundary(labels: np.ndarray, thickness: int = 1) -> np.ndarray:
    """(h,w) labels -> (h,w) bool: instance pixels with a 4-neighbour of another label (image edge counts)."""
    edge = np.zeros(labels.shape, dtype=bool)
    if labels.size == 0:
        return edge
    padded = np.pad(labels, 1, mode="constant")
    center = padded[1:-1, 1:-1]
    for dy, dx in ((0, 1), (2, 1), (1, 0), (1, 2)):
        edge |= padded[dy : dy + labels.shape[0], dx : dx + labels.shape[1]] != center
    edge &= labels != 0
    for _ in range(thickness - 1):
        grown = edge.copy()
        grown[1:] |= edge[:-1]
        grown[:-1] |= edge[1:]
        grown[:, 1:] |= edge[:, :-1]
        grown[:, :-1] |= edge[:, 1:]
        edge = grown & (labels != 0)
    return edge


def outline_rgba(labels: np.ndarray, table: np.ndarray, thickness: int = 1) -> np.ndarray:
    """(h,w) labels -> (h,w,4) RGBA with each instance's boundary in its colour, opaque; the rest transparent."""
    return table[np.where(boundary(labels, thickness), labels, 0)]


def crop_rgba(mask: np.ndarray, color: tuple[int, int, int], fill_alpha: int, edge_alpha: int = 255) -> np.ndarray:
    """One instance's bool crop -> RGBA: a translucent fill and an opaque boundary (for highlighting)."""
    labels = mask.astype(np.uint8)
    rgba = np.zeros((*mask.shape, 4), dtype=np.uint8)
    rgba[mask] = (*color, fill_alpha)
    rgba[boundary(labels, 2)] = (*color, edge_alpha)
    return rgba
