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
    """``labels`` (h,w) uint16/int32: 0 = background, i+1 = instance i. Pixel (r, c) covers the image
    square at (x0 + c*stride, y0 + r*stride), ``stride`` pixels wide (1 unless the overlay is large)."""

    labels: np.ndarray
    x0: int = 0
    y0: int = 0
    stride: int = 1

    @property
    def empty(self) -> bool:
        return self.labels.size == 0

    def at(self, x: float, y: float) -> int:
        """Instance index under image point (x, y), or -1."""
        col = (int(np.floor(x)) - self.x0) // self.stride
        row = (int(np.floor(y)) - self.y0) // self.stride
        h, w = self.labels.shape
        if 0 <= row < h and 0 <= col < w:
            return int(self.labels[row, col]) - 1
        return -1

    def rect(self) -> tuple[int, int, int, int]:
        """(x, y, width, height) of the image area the map covers."""
        h, w = self.labels.shape
        return self.x0, self.y0, w * self.stride, h * self.stride


def instance_color(key: int) -> tuple[int, int, int]:
    """A saturated RGB colour for an instance identity; neighbouring keys get far-apart hues."""
    hue = (0.07 + GOLDEN * (int(key) % 100003)) % 1.0
    saturation = (0.95, 0.65, 0.8)[int(key) % 3]
    value = (1.0, 0.85)[(int(key) // 3) % 2]
    red, green, blue = colorsys.hsv_to_rgb(hue, saturation, value)
    return round(red * 255), round(green * 255), round(blue * 255)


def confidence_color(confidence: float) -> tuple[int, int, int]:
    """Red (0) through yellow (0.5) to green (1): predictions coloured by the review queue's confidence."""
    red, green, blue = colorsys.hsv_to_rgb(min(1.0, max(0.0, float(confidence))) / 3, 0.9, 1.0)
    return round(red * 255), round(green * 255), round(blue * 255)


def instance_colors(keys: Sequence[int] | np.ndarray) -> np.ndarray:
    """``instance_color`` of many keys at once -> (N,3) uint8, the same values (colorsys's arithmetic in numpy):
    5,000 calls of the one-key function took ~15 ms of each redraw."""
    keys = np.asarray(keys, dtype=np.int64).ravel()
    h = (0.07 + GOLDEN * (keys % 100003)) % 1.0
    s = np.array([0.95, 0.65, 0.8])[keys % 3]
    v = np.array([1.0, 0.85])[(keys // 3) % 2]
    i = (h * 6.0).astype(np.int64)  # as colorsys.hsv_to_rgb, step by step
    f = (h * 6.0) - i
    p, q, t = v * (1.0 - s), v * (1.0 - s * f), v * (1.0 - s * (1.0 - f))
    i %= 6
    choices = ((v, t, p), (q, v, p), (p, v, t), (p, q, v), (t, p, v), (v, p, q))
    rgb = np.zeros((len(keys), 3))
    for sector, channels in enumerate(choices):
        here = i == sector
        for c in range(3):
            rgb[here, c] = channels[c][here]
    return np.round(rgb * 255).astype(np.uint8)


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


def label_map(
    crops: Sequence, height: int, width: int, region: tuple[int, int, int, int] | None = None, stride: int = 1
) -> LabelMap:
    """Crops of instances 0..N-1 (best first) -> LabelMap; where instances overlap the earlier one wins.

    ``region`` (x0, y0, x1, y1) defaults to the union of the crops; ``stride`` > 1 samples every
    stride-th pixel (at the centre of each stride x stride square) for overlays of huge images."""
    x0, y0, x1, y1 = union_box(crops, height, width) if region is None else region
    s, off = max(1, int(stride)), max(1, int(stride)) // 2
    out_h, out_w = max(0, -(-(y1 - y0) // s)), max(0, -(-(x1 - x0) // s))
    labels = np.zeros((out_h, out_w), dtype=np.uint16 if len(crops) < 65535 else np.int32)
    for index in range(len(crops) - 1, -1, -1):  # worst first, so the best is painted last (on top)
        crop = crops[index]
        h, w = crop.mask.shape
        k0, k1 = max(0, -(-(crop.x0 - x0 - off) // s)), min(out_w, -(-(crop.x0 + w - x0 - off) // s))
        j0, j1 = max(0, -(-(crop.y0 - y0 - off) // s)), min(out_h, -(-(crop.y0 + h - y0 - off) // s))
        if k1 <= k0 or j1 <= j0:
            continue
        sub = crop.mask[y0 + j0 * s + off - crop.y0 :: s, x0 + k0 * s + off - crop.x0 :: s]
        target = labels[j0:j1, k0:k1]
        target[sub[: j1 - j0, : k1 - k0]] = index + 1
    return LabelMap(labels, x0, y0, s)


def colorize(labels: np.ndarray, table: np.ndarray) -> np.ndarray:
    """(h,w) labels, (N+1,4) palette -> (h,w,4) uint8 RGBA (a single lookup: no per-instance work).

    The palette is looked up as one uint32 per pixel (4x fewer gathers than per channel)."""
    packed = np.ascontiguousarray(table, dtype=np.uint8).view(np.uint32).ravel()
    return np.take(packed, labels).view(np.uint8).reshape(*labels.shape, 4)


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
    return colorize(np.where(boundary(labels, thickness), labels, 0), table)


def crop_rgba(mask: np.ndarray, color: tuple[int, int, int], fill_alpha: int, edge_alpha: int = 255) -> np.ndarray:
    """One instance's bool crop -> RGBA: a translucent fill and an opaque boundary (for highlighting)."""
    labels = mask.astype(np.uint8)
    rgba = np.zeros((*mask.shape, 4), dtype=np.uint8)
    rgba[mask] = (*color, fill_alpha)
    rgba[boundary(labels, 2)] = (*color, edge_alpha)
    return rgba
