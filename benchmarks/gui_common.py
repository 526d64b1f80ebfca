"""Shared by the GUI benchmarks: the ResNet-18 FPN model and an 800x1067 test image."""

from __future__ import annotations

import os
import statistics
import sys
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
NUCLEI = REPO.parent / "shared" / "data" / "nuclei_dsb2018" / "stage1_train"


def resnet18_model():  # noqa: ANN201 - MaskRCNN
    """engine.cli.bench's ResNet-18 FPN Mask R-CNN (random but decisive weights), 800/1333 input sizes."""
    from engine.cli.bench import build_pair

    return build_pair(800, 1333)[1].eval()


def test_image(height: int = 800, width: int = 1067, seed: int = 3) -> np.ndarray:
    """(H,W,3) uint8: smooth random blobs (detections of many sizes), deterministic."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:height, 0:width]
    image = np.full((height, width, 3), 40.0)
    for _ in range(150):
        cy, cx, r = rng.uniform(0, height), rng.uniform(0, width), rng.uniform(8, 60)
        color = rng.uniform(60, 255, size=3)
        inside = (yy - cy) ** 2 + (xx - cx) ** 2 < r * r
        image[inside] = color
    image += rng.normal(0, 8, image.shape)
    return np.clip(image, 0, 255).astype(np.uint8)


def describe_machine() -> str:
    import torch

    return f"{os.cpu_count()} cores, torch {torch.__version__}, {torch.get_num_threads()} torch threads"


def ms(values: list[float]) -> str:
    """'median (min..max) ms' for seconds."""
    return f"{1000 * statistics.median(values):.2f} ms (min {1000 * min(values):.2f}, max {1000 * max(values):.2f})"
