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


def make_dataset(folder, n_images: int = 4, size: int = 96):  # noqa: ANN001, ANN201
    """Synthetic images saved as PNGs in ``folder`` with their instances: an engine.data.Dataset."""
    from pathlib import Path

    import numpy as np
    from PIL import Image

    from engine.data import Category, Dataset, ImageRecord, Instance

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    images = []
    for seed in range(n_images):
        image, target = make_image(seed, size=size)
        name = f"img{seed:02d}.png"
        Image.fromarray((image.permute(1, 2, 0).numpy() * 255).round().astype(np.uint8)).save(folder / name)
        instances = [
            Instance.from_mask(m.numpy().astype(bool), int(label))
            for m, label in zip(target["masks"], target["labels"])
        ]
        images.append(ImageRecord(name, size, size, instances, state="reviewed", id=seed + 1))
    return Dataset(folder, images, [Category(1, "disc"), Category(2, "square")])
