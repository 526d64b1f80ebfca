"""Input transform (standard, as torchvision's GeneralizedRCNNTransform): normalise, resize, pad, and back."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor

from engine.model.box_utils import scale_boxes


def normalize(image: Tensor, mean: tuple[float, ...], std: tuple[float, ...]) -> Tensor:
    """(3,H,W) float in [0,1] -> (3,H,W) standardised."""
    if not image.is_floating_point():
        raise TypeError(f"images must be float tensors in [0, 1], got {image.dtype}")
    m = torch.as_tensor(mean, dtype=image.dtype, device=image.device)
    s = torch.as_tensor(std, dtype=image.dtype, device=image.device)
    return (image - m[:, None, None]) / s[:, None, None]


def resize_scale(height: int, width: int, min_size: int, max_size: int) -> float:
    """The factor that brings the short side to min_size without the long side passing max_size."""
    return min(min_size / min(height, width), max_size / max(height, width))


def input_scale(height: int, width: int, config, training: bool = False, generator=None) -> float:  # noqa: ANN001
    """The factor an image of height x width is resized by under ``config``'s scale policy (a ModelConfig):
    ``pixel-scale`` -> ``scale_factor`` whatever the size; ``short-side`` -> ``resize_scale`` to one of
    ``min_size`` (drawn in training, see ``choose_min_size``) capped by ``max_size``."""
    if getattr(config, "scale_policy", "short-side") == "pixel-scale":
        return float(config.scale_factor)
    return resize_scale(height, width, choose_min_size(config.min_size, training, generator), config.max_size)


def resized_hw(height: int, width: int, scale: float) -> tuple[int, int]:
    """(floor(H*scale), floor(W*scale)), each side at least 1 px (a 1 x 5000 image at scale 0.27 is 1 x 1333)."""
    return max(1, math.floor(height * scale)), max(1, math.floor(width * scale))


def resize(image: Tensor, scale: float) -> Tensor:
    """(C,H,W) -> (C, *resized_hw), bilinear, align_corners=False (the same numbers as a scale_factor resize with
    recompute_scale_factor, where no side rounds to 0)."""
    size = resized_hw(image.shape[-2], image.shape[-1], scale)
    return F.interpolate(image[None], size=size, mode="bilinear", align_corners=False)[0]


def scale_target(target: dict[str, Tensor], scale: float, old_hw, new_hw) -> dict[str, Tensor]:
    """The target of an image ``resize``d by ``scale``: boxes scaled by the per-axis ratio, masks (N,H,W) resized
    nearest by the same factor; every instance is kept."""
    target = dict(target)
    target["boxes"] = scale_boxes(target["boxes"], old_hw, new_hw)
    if "masks" in target:
        masks = target["masks"]
        if masks.shape[0]:
            masks = F.interpolate(masks[:, None].float(), size=tuple(new_hw))[:, 0]
        else:
            masks = masks.new_zeros((0, *new_hw))
        target["masks"] = masks.to(torch.uint8)
    return target


def batch_images(images: list[Tensor], size_divisible: int) -> Tensor:
    """[(C,H_i,W_i)] -> (B,C,H,W) zero-padded at bottom/right to multiples of size_divisible."""
    h = max(img.shape[1] for img in images)
    w = max(img.shape[2] for img in images)
    h = int(math.ceil(h / size_divisible) * size_divisible)
    w = int(math.ceil(w / size_divisible) * size_divisible)
    batch = images[0].new_zeros((len(images), images[0].shape[0], h, w))
    for img, slot in zip(images, batch):
        slot[:, : img.shape[1], : img.shape[2]].copy_(img)
    return batch


def choose_min_size(sizes: tuple[int, ...], training: bool, generator: torch.Generator | None = None) -> int:
    """Training picks one of ``sizes`` at random (scale jitter; torch's RNG unless ``generator``); eval the last."""
    if not training:
        return sizes[-1]
    return sizes[int(torch.empty(1).uniform_(0.0, float(len(sizes)), generator=generator).item())]
