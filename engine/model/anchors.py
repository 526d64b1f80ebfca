"""Anchor generation (seed section 5): base anchors per (size, ratio), shifted over each level's grid."""

from __future__ import annotations

import math

import torch
from torch import Tensor


def base_anchors(size: float, aspect_ratios: tuple[float, ...], round_to_int: bool = False) -> Tensor:
    """(A,4) anchors centred on 0: h = size / sqrt(ar), w = size * sqrt(ar) (ar = w / h).

    Example: size 32, ar 0.5 -> h 45.25, w 22.63. torchvision rounds them (``round_to_int``).
    """
    rows = []
    for ar in aspect_ratios:
        h = size / math.sqrt(ar)
        w = size * math.sqrt(ar)
        rows.append((-w / 2, -h / 2, w / 2, h / 2))
    anchors = torch.tensor(rows, dtype=torch.float32)
    return anchors.round() if round_to_int else anchors


def grid_anchors(base: Tensor, grid_hw: tuple[int, int], stride_hw: tuple[int, int]) -> Tensor:
    """base (A,4), grid (H,W), stride (sy,sx) -> (H*W*A,4), location-major: shifts[:,None] + base[None]."""
    grid_h, grid_w = grid_hw
    shift_x = torch.arange(grid_w, dtype=torch.int32, device=base.device) * stride_hw[1]
    shift_y = torch.arange(grid_h, dtype=torch.int32, device=base.device) * stride_hw[0]
    yy, xx = torch.meshgrid(shift_y, shift_x, indexing="ij")
    xx, yy = xx.reshape(-1), yy.reshape(-1)
    shifts = torch.stack((xx, yy, xx, yy), dim=1)
    return (shifts[:, None, :] + base[None, :, :]).reshape(-1, 4)


class AnchorGenerator:
    """One anchor size per pyramid level, the same aspect ratios on each; cached per grid shape."""

    def __init__(self, sizes: tuple[int, ...], aspect_ratios: tuple[float, ...], round_to_int: bool) -> None:
        self.sizes = sizes
        self.aspect_ratios = aspect_ratios
        self.round_to_int = round_to_int
        self._cache: dict[tuple, list[Tensor]] = {}

    @property
    def num_anchors_per_location(self) -> int:
        return len(self.aspect_ratios)

    def __call__(self, padded_hw: tuple[int, int], grids: list[tuple[int, int]], device, dtype) -> list[Tensor]:
        """Anchors per level, [(H_l*W_l*A,4)], for a padded batch of size padded_hw; stride = padded // grid."""
        key = (padded_hw, tuple(grids), str(device), dtype)
        cached = self._cache.get(key)
        if cached is not None:
            return cached
        levels = []
        for size, (gh, gw) in zip(self.sizes, grids):
            base = base_anchors(size, self.aspect_ratios, self.round_to_int).to(device)
            stride = (padded_hw[0] // gh, padded_hw[1] // gw)
            levels.append(grid_anchors(base, (gh, gw), stride).to(dtype))
        if len(self._cache) > 16:
            self._cache.clear()
        self._cache[key] = levels
        return levels
