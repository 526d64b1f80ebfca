"""What the training loop feeds the model: a deterministic stream of samples, flips, and a memory cache.

The i-th global batch and each sample's augmentation and sampling seed are pure functions of
(seed, iteration, slot), so a resumed run, or the same global batch spread over several processes,
sees exactly the same data as one uninterrupted process.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from engine.config import AugmentConfig
from engine.data import Dataset
from engine.data.augment.geometric import Compose, RandomHorizontalFlip, RandomVerticalFlip, resize_sample
from engine.data.augment.photometric import PhotometricJitter
from engine.data.torch_dataset import DetectionDataset
from engine.model.transform import resize_scale
from engine.training.subsets import training_view

_SEED_MIX = 1_000_003


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
    """Images and targets of ``image_ids``, resized once to the network's (largest) input size and kept in memory,
    so that the model does not resize the masks again at every step. Only the instances that train
    (engine.training.subsets.trains) are in the targets."""

    def __init__(
        self,
        dataset: Dataset,
        image_ids: Sequence[int],
        min_size: int,
        max_size: int,
        augment: AugmentConfig | None = None,
        cache_bytes: int = 2 * 1024**3,
    ) -> None:
        self.items = DetectionDataset(training_view(dataset), image_ids)
        self.class_names = self.items.class_names
        self.min_size, self.max_size = min_size, max_size
        self.augment = augment or AugmentConfig()
        self.cache_bytes = cache_bytes
        self._cache: dict[int, tuple[torch.Tensor, dict]] = {}
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

    def sample(self, index: int, seed: int) -> tuple[torch.Tensor, dict]:
        """Item ``index`` with flips (and intensity jitter) drawn from ``seed``; the target carries the seed for
        the model's sampling."""
        image, target = self._prepared(index)
        generator = torch.Generator().manual_seed(seed)
        augment = self.augment
        steps = [
            RandomHorizontalFlip(augment.hflip, generator=generator),
            RandomVerticalFlip(augment.vflip, generator=generator),
        ]
        if augment.photometric:  # drawn after the flips, so runs without it see the same flips as before
            steps.append(PhotometricJitter(augment, generator=generator))
        image, target = Compose(steps)(image.float() / 255, dict(target))
        target["sample_seed"] = seed
        return image, target
