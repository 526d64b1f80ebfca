"""Synthetic images with known instances: filled discs and squares on a noisy background."""

from __future__ import annotations

import torch


def make_image(seed: int, size: int = 128, n_objects: int = 3) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """-> image (3,size,size) float in [0,1], target {boxes (N,4), labels (N,) in {1,2}, masks (N,H,W) uint8}."""
    g = torch.Generator().manual_seed(seed)
    image = 0.25 + 0.1 * torch.rand((3, size, size), generator=g)
    yy, xx = torch.meshgrid(torch.arange(size), torch.arange(size), indexing="ij")
    occupied = torch.zeros((size, size), dtype=torch.bool)
    masks, labels = [], []
    for _ in range(50):
        if len(masks) == n_objects:
            break
        r = int(torch.randint(size // 10, size // 5, (1,), generator=g))
        cx, cy = (int(v) for v in torch.randint(r + 1, size - r - 1, (2,), generator=g))
        label = int(torch.randint(1, 3, (1,), generator=g))
        if label == 1:
            mask = (xx - cx) ** 2 + (yy - cy) ** 2 <= r * r
        else:
            mask = ((xx - cx).abs() <= r) & ((yy - cy).abs() <= r)
        if (mask & occupied).any():
            continue
        occupied |= mask
        colour = torch.tensor([0.9, 0.3, 0.2]) if label == 1 else torch.tensor([0.2, 0.5, 0.95])
        image[:, mask] = colour[:, None] + 0.05 * torch.rand((3, int(mask.sum())), generator=g)
        masks.append(mask)
        labels.append(label)
    masks_t = torch.stack(masks).to(torch.uint8)
    boxes = torch.stack([_mask_box(m) for m in masks_t])
    return image.clamp(0, 1), {"boxes": boxes, "labels": torch.tensor(labels), "masks": masks_t}


def _mask_box(mask: torch.Tensor) -> torch.Tensor:
    ys, xs = torch.where(mask.bool())
    return torch.tensor([xs.min(), ys.min(), xs.max() + 1, ys.max() + 1], dtype=torch.float32)
