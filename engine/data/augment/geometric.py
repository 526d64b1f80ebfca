"""Training augmentations applied to an image and its target together, drawing from torch's RNG.

Every transform is called as ``transform(image, target) -> (image, target)`` with ``image`` float32
(3,H,W) and ``target`` holding ``boxes`` (N,4) float32 xyxy, ``labels`` (N,) int64 and optionally
``masks`` (N,H,W) uint8. Boxes follow the COCO pixel convention: a mask covering columns 2..4 has
x0 = 2, x1 = 5. When masks are present, boxes are recomputed from them after a resize, so boxes and
masks always agree; instances whose mask vanishes when shrinking are dropped. (Scale jitter is the
network's: engine.config.AugmentConfig.scale_jitter gives it several input sizes to draw from.)

Random crops (pixel-scale training, engine.training.samples): ``random_window`` places a window, and
``window_masks`` cuts instances kept as mask crops of their boxes to it (no full-image mask per instance).

Randomness comes from the ``generator`` given to a transform, else torch's global RNG (seeded per
DataLoader worker by torch), so ``torch.manual_seed`` makes runs reproducible. Leave ``generator``
unset when using DataLoader workers: each worker would get a copy of the same generator.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import torch
import torch.nn.functional as F

Target = dict[str, Any]


def masks_to_boxes_xyxy(masks: torch.Tensor) -> torch.Tensor:
    """Masks (N,H,W) any dtype -> tight boxes (N,4) float32 xyxy, x1/y1 exclusive; zeros for empty masks."""
    if masks.shape[0] == 0:
        return torch.zeros((0, 4), dtype=torch.float32)
    height, width = masks.shape[-2:]
    rows, cols = masks.bool().any(dim=2), masks.bool().any(dim=1)
    y0 = rows.int().argmax(dim=1)
    y1 = height - rows.flip(1).int().argmax(dim=1)
    x0 = cols.int().argmax(dim=1)
    x1 = width - cols.flip(1).int().argmax(dim=1)
    boxes = torch.stack([x0, y0, x1, y1], dim=1).float()
    boxes[~rows.any(dim=1)] = 0.0
    return boxes


class Compose:
    """Apply transforms in order."""

    def __init__(self, transforms: Sequence[Callable]) -> None:
        self.transforms = list(transforms)

    def __call__(self, image: torch.Tensor, target: Target) -> tuple[torch.Tensor, Target]:
        """(3,H,W) float32 image and target -> transformed pair."""
        for transform in self.transforms:
            image, target = transform(image, target)
        return image, target


def _uniform(generator: torch.Generator | None) -> float:
    return float(torch.rand((), generator=generator))


class RandomHorizontalFlip:
    """Mirror left-right with probability ``probability``."""

    def __init__(self, probability: float = 0.5, generator: torch.Generator | None = None) -> None:
        self.probability = probability
        self.generator = generator

    def __call__(self, image: torch.Tensor, target: Target) -> tuple[torch.Tensor, Target]:
        """(3,H,W) image, target -> flipped pair (or the same pair)."""
        if _uniform(self.generator) >= self.probability:
            return image, target
        width = image.shape[-1]
        target = dict(target)
        boxes = target["boxes"].clone()
        boxes[:, [0, 2]] = width - target["boxes"][:, [2, 0]]
        target["boxes"] = boxes
        if "masks" in target:
            target["masks"] = target["masks"].flip(-1)
        return image.flip(-1), target


class RandomVerticalFlip:
    """Mirror top-bottom with probability ``probability``."""

    def __init__(self, probability: float = 0.5, generator: torch.Generator | None = None) -> None:
        self.probability = probability
        self.generator = generator

    def __call__(self, image: torch.Tensor, target: Target) -> tuple[torch.Tensor, Target]:
        """(3,H,W) image, target -> flipped pair (or the same pair)."""
        if _uniform(self.generator) >= self.probability:
            return image, target
        height = image.shape[-2]
        target = dict(target)
        boxes = target["boxes"].clone()
        boxes[:, [1, 3]] = height - target["boxes"][:, [3, 1]]
        target["boxes"] = boxes
        if "masks" in target:
            target["masks"] = target["masks"].flip(-2)
        return image.flip(-2), target


def resize_sample(image: torch.Tensor, target: Target, size: tuple[int, int]) -> tuple[torch.Tensor, Target]:
    """(3,H,W) image and its target -> the image resized to ``size`` (H',W') (bilinear, antialiased) and its target
    by resize_masks_refit_boxes."""
    resized = F.interpolate(image[None], size=size, mode="bilinear", align_corners=False, antialias=True)[0]
    return resized, resize_masks_refit_boxes(target, tuple(image.shape[-2:]), size)


def resize_masks_refit_boxes(target: Target, old_size: tuple[int, int], new_size: tuple[int, int]) -> Target:
    """Target of an (H,W) image -> target of the image resized to new_size: masks nearest, boxes recomputed from
    them, instances whose mask vanished dropped (without masks: boxes scaled per axis)."""
    target = dict(target)
    if "masks" not in target:
        scale_y, scale_x = new_size[0] / old_size[0], new_size[1] / old_size[1]
        target["boxes"] = target["boxes"] * torch.tensor([scale_x, scale_y, scale_x, scale_y])
        return target
    masks = target["masks"]
    if masks.shape[0] == 0:
        target["masks"] = masks.new_zeros((0, *new_size))
        return target
    masks = F.interpolate(masks[None].float(), size=new_size, mode="nearest-exact")[0].to(masks.dtype)
    keep = masks.flatten(1).bool().any(dim=1)
    for key in ("labels", "iscrowd", "area"):
        if key in target:
            target[key] = target[key][keep]
    target["masks"] = masks[keep]
    target["boxes"] = masks_to_boxes_xyxy(target["masks"])
    return target


def random_window(height: int, width: int, size: tuple[int, int], generator: torch.Generator | None = None):
    """A window (y0, x0, h, w) of ``size`` (h, w) inside a height x width image, uniformly placed; a side of the
    image shorter than the window's is taken whole (the window is never larger than the image)."""
    h, w = min(size[0], height), min(size[1], width)
    y0 = int(torch.randint(0, height - h + 1, (), generator=generator))
    x0 = int(torch.randint(0, width - w + 1, (), generator=generator))
    return y0, x0, h, w


def window_masks(
    crops: Sequence[torch.Tensor],
    boxes: torch.Tensor,
    areas: torch.Tensor,
    window: tuple[int, int, int, int],
    min_visible: float = 0.0,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Instances given as mask crops of their boxes (``crops[i]`` uint8 (h_i, w_i) covering pixels ``boxes[i]``
    = x0, y0, x1, y1 (int64, x1/y1 exclusive) of the image; ``areas[i]`` its pixel count) -> (masks (n, h, w)
    uint8 of window (y0, x0, h, w), their tight boxes (n, 4) float32 xyxy in the window, indices (n,) int64 of the
    instances kept): those whose part inside the window has at least one pixel and at least ``min_visible`` of
    their area. Only crops reaching into the window are looked at (one vectorised test over all boxes, so an image
    of 20,000 instances costs little per window), and each visible part's box is found on the part alone."""
    y0, x0, h, w = window
    reach = (boxes[:, 0] < x0 + w) & (boxes[:, 2] > x0) & (boxes[:, 1] < y0 + h) & (boxes[:, 3] > y0)
    parts = []
    for i in reach.nonzero()[:, 0].tolist():
        bx0, by0, bx1, by1 = boxes[i].tolist()
        top, left, bottom, right = max(by0, y0), max(bx0, x0), min(by1, y0 + h), min(bx1, x0 + w)
        part = crops[i][top - by0 : bottom - by0, left - bx0 : right - bx0]
        visible = int(part.sum())
        if visible and visible >= min_visible * float(areas[i]):
            parts.append((i, top - y0, left - x0, part))
    masks = torch.zeros((len(parts), h, w), dtype=torch.uint8)
    tight = torch.zeros((len(parts), 4), dtype=torch.float32)
    for k, (_, top, left, part) in enumerate(parts):
        masks[k, top : top + part.shape[0], left : left + part.shape[1]] = part
        tight[k] = masks_to_boxes_xyxy(part[None])[0] + torch.tensor([left, top, left, top], dtype=torch.float32)
    return masks, tight, torch.tensor([i for i, *_ in parts], dtype=torch.int64)
