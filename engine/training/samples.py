"""What the training loop feeds the model: a deterministic stream of samples, flips, and a memory cache.

The i-th global batch and each sample's augmentation and sampling seed are pure functions of
(seed, iteration, slot), so a resumed run, or the same global batch spread over several processes,
sees exactly the same data as one uninterrupted process.

A sample follows the model's scale policy (engine.model.transform.input_scale):

- ``short-side``: the whole image at the network's input size (prepared once), flips, intensity draws; the
  model's scale jitter draws a smaller short side per image (torchvision's convention).
- ``pixel-scale`` (issue 12): a random window of the image in its own pixels that the model's resize by
  ``scale_factor`` turns into a crop of ``crop_size`` network pixels, exactly as inference cuts a tile
  (engine.tiling); an image smaller than the window is taken whole and padded with the batch, never upscaled.
  Scale jitter x draws a relative scale r from U(1 - x, 1): the window is crop_size / (factor * r) image pixels,
  shrunk by r (antialiased), so objects train at factor * r of their size, never above the factor. Instances cut
  by the window keep their visible part (boxes from the cut masks); those with less than ``MIN_VISIBLE`` of their
  area inside are dropped. The image and each instance's mask crop (no full-image mask per instance) are cached.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import torch

from engine.config import AugmentConfig
from engine.data import Dataset
from engine.data.augment.geometric import (
    Compose,
    RandomHorizontalFlip,
    RandomVerticalFlip,
    random_window,
    resize_sample,
    window_masks,
)
from engine.data.augment.photometric import PhotometricJitter
from engine.data.io.images import load_image
from engine.data.torch_dataset import DetectionDataset
from engine.model.transform import resize_scale, resized_hw
from engine.training.subsets import training_view

_SEED_MIX = 1_000_003
# Pixel-scale crops: an instance cut by the window trains when at least this fraction of its area is inside.
MIN_VISIBLE = 0.1


def sample_seed(seed: int, iteration: int, slot: int) -> int:
    """A 62-bit seed for one sample of one iteration."""
    return (seed * _SEED_MIX * _SEED_MIX + iteration * _SEED_MIX + slot) % (2**62)


def batch_indices(num_items: int, batch_size: int, iteration: int, seed: int) -> list[int]:
    """Dataset positions of global batch ``iteration``: epochs are seeded permutations laid end to end."""
    out = []
    start = iteration * batch_size
    for position in range(start, start + batch_size):
        epoch, offset = divmod(position, num_items)
        perm = torch.randperm(num_items, generator=torch.Generator().manual_seed(seed * 7919 + epoch))
        out.append(int(perm[offset]))
    return out


class TrainingSamples:
    """Images and targets of ``image_ids``. Short-side (``scale_factor`` None): resized once to the network's
    (largest) input size and kept in memory, so that the model does not resize the masks again at every step.
    Pixel-scale (``scale_factor`` given): random windows that the model's resize makes ``crop_size`` network pixels
    (the module's docstring). Only the instances that train (engine.training.subsets.trains) are in the targets."""

    def __init__(
        self,
        dataset: Dataset,
        image_ids: Sequence[int],
        min_size: int,
        max_size: int,
        augment: AugmentConfig | None = None,
        cache_bytes: int = 2 * 1024**3,
        scale_factor: float | None = None,
        crop_size: int = 1024,
    ) -> None:
        self.items = DetectionDataset(training_view(dataset), image_ids)
        self.class_names = self.items.class_names
        self.min_size, self.max_size = min_size, max_size
        self.augment = augment or AugmentConfig()
        self.scale_factor, self.crop_size = scale_factor, crop_size
        self.cache_bytes = cache_bytes
        self._cache: dict[int, tuple] = {}
        self._cached_bytes = 0

    def __len__(self) -> int:
        return len(self.items)

    def _prepared(self, index: int) -> tuple[torch.Tensor, dict]:
        hit = self._cache.get(index)
        if hit is not None:
            return hit
        image, target = self.items[index]
        h, w = image.shape[-2:]
        scale = resize_scale(h, w, self.min_size, self.max_size)
        new_hw = (max(1, int(h * scale)), max(1, int(w * scale)))
        if new_hw != (h, w):  # at the model's (largest) input size, its own resize is then a no-op
            image, target = resize_sample(image, target, new_hw)
        image = (image * 255).round().to(torch.uint8)  # a quarter of the memory of float
        size = image.numel() + target["masks"].numel()
        if self._cached_bytes + size <= self.cache_bytes:
            self._cache[index] = (image, target)
            self._cached_bytes += size
        return image, target

    def _scene(self, index: int) -> tuple:
        """Pixel-scale: (image uint8 (3,H,W), labels (N,), mask crops [(h_i,w_i) uint8], their boxes (N,4) xyxy int64,
        areas (N,)) of item ``index``, cached; the instances of DetectionDataset.target (no crowd, no empty mask)."""
        hit = self._cache.get(index)
        if hit is not None:
            return hit
        items = self.items
        record = items.dataset.image_by_id(items.image_ids[index])
        pixels = load_image(items.dataset.image_path(record), expected_size=(record.width, record.height))
        image = torch.from_numpy(pixels).permute(2, 0, 1).contiguous()
        labels, crops, boxes, areas = [], [], [], []
        for instance in record.instances:
            if instance.iscrowd:
                continue
            # Its stored box a pixel wider each way (a polygon's extent rounds either way), unless a box read from a
            # file leaves some of the mask out; then the mask's own box.
            full = instance.decode_mask(record.height, record.width)
            bx, by, bw, bh = instance.box
            sx, sy = max(0, math.floor(bx) - 1), max(0, math.floor(by) - 1)
            ex, ey = min(record.width, math.ceil(bx + bw) + 1), min(record.height, math.ceil(by + bh) + 1)
            if np.count_nonzero(full[sy:ey, sx:ex]) != np.count_nonzero(full):
                sx, sy, ex, ey = 0, 0, record.width, record.height
            mask = torch.from_numpy(full[sy:ey, sx:ex])
            rows, cols = mask.any(dim=1).nonzero()[:, 0], mask.any(dim=0).nonzero()[:, 0]
            if rows.numel() == 0:
                continue
            if instance.category_id not in items.category_id_to_label:
                raise KeyError(f"{record.path}: instance of unknown category id {instance.category_id}")
            y0, y1, x0, x1 = int(rows[0]), int(rows[-1]) + 1, int(cols[0]), int(cols[-1]) + 1
            crop = mask[y0:y1, x0:x1].to(torch.uint8)  # a copy: the full-frame decode is let go
            x0, x1, y0, y1 = x0 + sx, x1 + sx, y0 + sy, y1 + sy
            labels.append(items.category_id_to_label[instance.category_id])
            crops.append(crop)
            boxes.append((x0, y0, x1, y1))
            areas.append(int(crop.sum()))
        scene = (
            image,
            torch.tensor(labels, dtype=torch.int64),
            crops,
            torch.tensor(boxes, dtype=torch.int64).reshape(-1, 4),
            torch.tensor(areas, dtype=torch.int64),
        )
        size = image.numel() + sum(crop.numel() for crop in crops)
        if self._cached_bytes + size <= self.cache_bytes:
            self._cache[index] = scene
            self._cached_bytes += size
        return scene

    def _crop(self, index: int, generator: torch.Generator) -> tuple[torch.Tensor, dict]:
        """Pixel-scale: a random window of item ``index`` (the module's docstring), float image and its target."""
        image, labels, crops, boxes, areas = self._scene(index)
        relative = 1.0
        if self.augment.scale_jitter:
            relative = 1.0 - self.augment.scale_jitter * float(torch.rand((), generator=generator))
        side = max(1, round(self.crop_size / (self.scale_factor * relative)))
        window = random_window(image.shape[-2], image.shape[-1], (side, side), generator)
        masks, cut_boxes, kept = window_masks(crops, boxes, areas, window, MIN_VISIBLE)
        y0, x0, h, w = window
        target = {"boxes": cut_boxes, "labels": labels[kept], "masks": masks}
        image = image[:, y0 : y0 + h, x0 : x0 + w].float() / 255
        if relative != 1.0:
            image, target = resize_sample(image, target, resized_hw(h, w, relative))
        return image, target

    def sample(self, index: int, seed: int) -> tuple[torch.Tensor, dict]:
        """Item ``index`` (pixel-scale: a random crop of it) with flips (and intensity jitter) drawn from ``seed``;
        the target carries the seed for the model's sampling."""
        generator = torch.Generator().manual_seed(seed)
        if self.scale_factor is not None:
            image, target = self._crop(index, generator)
        else:
            image, target = self._prepared(index)
            image, target = image.float() / 255, dict(target)
        augment = self.augment
        steps = [
            RandomHorizontalFlip(augment.hflip, generator=generator),
            RandomVerticalFlip(augment.vflip, generator=generator),
        ]
        if augment.photometric:  # drawn after the flips, so runs without it see the same flips as before
            steps.append(PhotometricJitter(augment, generator=generator))
        image, target = Compose(steps)(image, target)
        target["sample_seed"] = seed
        return image, target
