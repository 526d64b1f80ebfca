"""The annotation model and its file formats: COCO / labelme / mask-folder readers and writers, images.

Qt-free and torch-free at import; ``DetectionDataset`` (torch) loads on first use.
"""

from __future__ import annotations

from typing import Any

from engine.data.annotations import Category, Dataset, ImageRecord, Instance
from engine.data.errors import DatasetError, ImageLoadError
from engine.data.io.images import image_size, load_image
from engine.data.io.readers import read_dataset
from engine.data.io.writers import write_coco, write_labelme

__all__ = [
    "Category",
    "Dataset",
    "DatasetError",
    "DetectionDataset",
    "ImageLoadError",
    "ImageRecord",
    "Instance",
    "collate_fn",
    "image_size",
    "load_image",
    "read_dataset",
    "write_coco",
    "write_labelme",
]


def __getattr__(name: str) -> Any:
    if name in ("DetectionDataset", "collate_fn"):
        from engine.data import torch_dataset

        return getattr(torch_dataset, name)
    raise AttributeError(f"module 'engine.data' has no attribute {name!r}")
