"""DetectionDataset: a Dataset's images as torch tensors and targets in torchvision's detection format."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import torch
from torch.utils.data import Dataset as TorchDataset

from engine.data.annotations import Dataset, ImageRecord
from engine.data.augment.geometric import masks_to_boxes_xyxy
from engine.data.io.images import image_size, load_image, wrong_size_error


class DetectionDataset(TorchDataset):
    """Items are (image float32 (3,H,W) in [0,1], target dict); labels are 1..K by sorted category id.

    The target holds ``boxes`` (N,4) float32 xyxy (tight around the mask, x1/y1 exclusive), ``labels``
    (N,) int64, ``masks`` (N,H,W) uint8 and ``image_id`` (int). Crowd regions and empty masks are left
    out. ``transforms(image, target)`` (engine.data.augment.geometric) runs last. Every image's header is read
    when the dataset is made: a missing file or one of another size than the annotations say is an
    ImageLoadError then, before training starts.
    """

    def __init__(
        self, dataset: Dataset, image_ids: Sequence[int] | None = None, transforms: Callable | None = None
    ) -> None:
        self.dataset = dataset
        self.transforms = transforms
        records = {image.id: image for image in dataset.images}
        self.image_ids = [image.id for image in dataset.images] if image_ids is None else list(image_ids)
        unknown = [image_id for image_id in self.image_ids if image_id not in records]
        if unknown:
            raise KeyError(f"image ids not in the dataset: {unknown[:10]}")
        self._records = records
        for image_id in self.image_ids:
            self._check_size(records[image_id])
        category_ids = sorted(category.id for category in dataset.categories)
        self.label_to_category_id: dict[int, int] = {label: cid for label, cid in enumerate(category_ids, start=1)}
        self.category_id_to_label: dict[int, int] = {cid: label for label, cid in self.label_to_category_id.items()}
        self.class_names: list[str] = [dataset.category_by_id(cid).name for cid in category_ids]

    def _check_size(self, record: ImageRecord) -> None:
        """ImageLoadError now, not at the image's turn mid-training, when the file is missing, unreadable or
        not the size the annotations say (its header is read, not its pixels)."""
        path = self.dataset.image_path(record)
        width, height = image_size(path)
        if (width, height) != (record.width, record.height):
            raise wrong_size_error(path, (width, height), (record.width, record.height))

    @property
    def num_classes(self) -> int:
        """Number of object classes K (the background not counted)."""
        return len(self.label_to_category_id)

    def __len__(self) -> int:
        return len(self.image_ids)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, dict[str, Any]]:
        """Item ``index`` -> (image float32 (3,H,W) in [0,1], target dict as in the class doc)."""
        record = self._records[self.image_ids[index]]
        path = self.dataset.image_path(record)
        pixels = load_image(path, expected_size=(record.width, record.height))  # ImageLoadError when not that size
        image = torch.from_numpy(pixels).permute(2, 0, 1).float().div_(255.0)
        target = self.target(record)
        if self.transforms is not None:
            image, target = self.transforms(image, target)
        return image, target

    def target(self, record: ImageRecord) -> dict[str, Any]:
        """Target dict of one image record (no image loading): boxes, labels, masks, image_id."""
        masks, labels = [], []
        for instance in record.instances:
            if instance.iscrowd:
                continue
            mask = instance.decode_mask(record.height, record.width)
            if not mask.any():
                continue
            if instance.category_id not in self.category_id_to_label:
                raise KeyError(f"{record.path}: instance of unknown category id {instance.category_id}")
            masks.append(mask)
            labels.append(self.category_id_to_label[instance.category_id])
        if masks:
            mask_tensor = torch.from_numpy(np.stack(masks).astype(np.uint8))
        else:
            mask_tensor = torch.zeros((0, record.height, record.width), dtype=torch.uint8)
        return {
            "boxes": masks_to_boxes_xyxy(mask_tensor),
            "labels": torch.tensor(labels, dtype=torch.int64),
            "masks": mask_tensor,
            "image_id": record.id,
        }


def collate_fn(batch: Sequence[tuple[torch.Tensor, dict[str, Any]]]) -> tuple[list[torch.Tensor], list[dict]]:
    """List of (image, target) -> (list of images, list of targets); images keep their own sizes."""
    images = [image for image, _ in batch]
    targets = [target for _, target in batch]
    return images, targets
