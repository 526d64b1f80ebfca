"""DetectionDataset: tensors, contiguous labels, crowd and empty instances left out, DataLoader batching."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from engine.data import (
    Category,
    Dataset,
    DetectionDataset,
    ImageLoadError,
    ImageRecord,
    Instance,
    collate_fn,
    read_dataset,
)
from engine.data.augment.geometric import RandomHorizontalFlip


def make_dataset(root):
    pixels = np.zeros((20, 30, 3), dtype=np.uint8)
    pixels[:, :, 0] = 255
    Image.fromarray(pixels).save(root / "a.png")
    Image.fromarray(pixels[:10]).save(root / "b.png")
    cell = np.zeros((20, 30), dtype=bool)
    cell[2:6, 3:9] = True
    instances = [
        Instance.from_mask(cell, category_id=90),
        Instance(category_id=5, mask=[[10, 10, 20, 10, 20, 15, 10, 15]]),
        Instance.from_mask(~cell, category_id=5, iscrowd=True),
        Instance.from_mask(np.zeros((20, 30), dtype=bool), category_id=5),
    ]
    images = [ImageRecord("a.png", 30, 20, instances, "reviewed"), ImageRecord("b.png", 30, 10, [], "not_run")]
    return Dataset(root, images, [Category(90, "late"), Category(5, "early")])


def test_item_tensors_and_labels(tmp_path):
    detection = DetectionDataset(make_dataset(tmp_path))
    assert detection.label_to_category_id == {1: 5, 2: 90}
    assert detection.class_names == ["early", "late"] and detection.num_classes == 2
    image, target = detection[0]
    assert image.dtype == torch.float32 and image.shape == (3, 20, 30)
    assert float(image[0].min()) == 1.0 and float(image[1].max()) == 0.0
    assert target["labels"].tolist() == [2, 1] and target["labels"].dtype == torch.int64
    assert target["boxes"].tolist() == [[3.0, 2.0, 9.0, 6.0], [10.0, 10.0, 20.0, 15.0]]
    assert target["masks"].shape == (2, 20, 30) and target["masks"].dtype == torch.uint8
    assert int(target["masks"][0].sum()) == 24 and target["image_id"] == 1
    _, empty = detection[1]
    assert empty["boxes"].shape == (0, 4) and empty["masks"].shape == (0, 10, 30) and empty["labels"].shape == (0,)


def test_image_ids_transforms_and_dataloader(tmp_path):
    dataset = make_dataset(tmp_path)
    detection = DetectionDataset(dataset, image_ids=[1], transforms=RandomHorizontalFlip(1.0))
    assert len(detection) == 1
    _, target = detection[0]
    assert target["boxes"][0].tolist() == [21.0, 2.0, 27.0, 6.0]
    loader = torch.utils.data.DataLoader(DetectionDataset(dataset), batch_size=2, collate_fn=collate_fn)
    images, targets = next(iter(loader))
    assert isinstance(images, list) and [tuple(i.shape) for i in images] == [(3, 20, 30), (3, 10, 30)]
    assert [t["image_id"] for t in targets] == [1, 2]
    with pytest.raises(KeyError):
        DetectionDataset(dataset, image_ids=[7])


def test_size_mismatch_names_the_file(tmp_path):
    dataset = make_dataset(tmp_path)
    dataset.images[1].height = 11
    with pytest.raises(ImageLoadError, match=r"b\.png': the image is 30x10 pixels but the annotations say 30x11"):
        DetectionDataset(dataset)[1]


def test_coco128_items_exclude_crowd(coco128_json):
    dataset = read_dataset(coco128_json)
    detection = DetectionDataset(dataset)
    assert detection.num_classes == 80 and detection.label_to_category_id[80] == 90
    index = next(i for i, image in enumerate(dataset.images) if any(inst.iscrowd for inst in image.instances))
    record = dataset.images[index]
    image, target = detection[index]
    assert image.shape == (3, record.height, record.width)
    assert len(target["labels"]) == sum(not inst.iscrowd for inst in record.instances)
    assert int(target["labels"].min()) >= 1 and int(target["labels"].max()) <= 80
