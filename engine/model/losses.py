"""Loss reduction over a batch: per batch (torchvision) or per image (independent of how a batch is split).

With ``"image"`` every image's loss is normalised on its own and the batch loss is their mean; an image
without objects contributes zero to the box and mask terms. Then B images on one process and one image
on each of B processes (DistributedDataParallel averages gradients) give the same gradient.
"""

from __future__ import annotations

import torch
from torch import Tensor

REDUCTIONS = ("image", "batch")


def reduce_loss(
    per_item: Tensor, image_index: Tensor, num_images: int, mode: str, norm_per_image: Tensor | None = None
) -> Tensor:
    """per_item (N,) losses of items of images image_index (N,) -> scalar.

    ``norm_per_image`` (B,) divides each image's sum (default: its item count, i.e. a mean).
    "batch": sum of all items / sum of norms. "image": mean over images of (image sum / image norm).
    """
    if norm_per_image is None:
        norm_per_image = torch.bincount(image_index, minlength=num_images)
    norm_per_image = norm_per_image.to(per_item.dtype)
    if mode == "batch":
        return per_item.sum() / norm_per_image.sum().clamp(min=1)
    if mode != "image":
        raise ValueError(f"loss reduction must be one of {REDUCTIONS}, got {mode!r}")
    sums = per_item.new_zeros(num_images).index_add(0, image_index, per_item)
    return (sums / norm_per_image.clamp(min=1)).mean()


def image_index_of(counts: list[int], device: torch.device) -> Tensor:
    """[n_0, n_1, ...] -> (sum n,) int64 image index of each item."""
    return torch.repeat_interleave(torch.arange(len(counts), device=device), torch.tensor(counts, device=device))
