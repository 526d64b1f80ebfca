"""read_dataset on the real annotated sets under ../shared/data: counts, layouts, pixels."""

from __future__ import annotations

import json

import numpy as np
from PIL import Image

from engine.data import read_dataset


def test_coco128_counts(coco128_json):
    dataset = read_dataset(coco128_json)
    assert dataset.source_format == "coco"
    assert len(dataset.images) == 128
    assert dataset.num_instances == 939
    assert sum(not image.instances for image in dataset.images) == 2
    instances = [inst for image in dataset.images for inst in image.instances]
    crowd = [inst for inst in instances if inst.iscrowd]
    assert len(crowd) == 10 and all(inst.is_rle for inst in crowd)
    multi_part = [inst for inst in instances if not inst.is_rle and len(inst.mask) > 1]
    assert len(multi_part) == 82
    assert len(dataset.categories) == 80
    assert min(c.id for c in dataset.categories) == 1 and max(c.id for c in dataset.categories) == 90
    assert all(dataset.image_path(image).is_file() for image in dataset.images)
    assert dataset.warnings == []


def test_coco128_folder_finds_the_json_in_annotations(coco128_json):
    dataset = read_dataset(coco128_json.parent.parent)
    assert dataset.num_instances == 939 and len(dataset.images) == 128


def test_coco128_uncompressed_crowd_rle_keeps_its_pixels(coco128_json):
    document = json.loads(coco128_json.read_text())
    dataset = read_dataset(coco128_json)
    for crowd in (a for a in document["annotations"] if a["iscrowd"]):
        counts = crowd["segmentation"]["counts"]
        image = dataset.image_by_id(crowd["image_id"])
        instance = next(inst for inst in image.instances if inst.id == crowd["id"])
        flat = instance.decode_mask(image.height, image.width).ravel(order="F")
        starts = np.cumsum([0, *counts[:-1]])
        expected = np.zeros(image.height * image.width, dtype=bool)
        for start, length in zip(starts[1::2], counts[1::2]):
            expected[start : start + length] = True
        assert np.array_equal(flat, expected)


def test_dsb_counts_and_pixels(dsb_folder):
    dataset = read_dataset(dsb_folder)
    assert dataset.source_format == "dsb"
    assert len(dataset.images) == 20 and dataset.num_instances == 953
    assert [c.name for c in dataset.categories] == ["nucleus"]
    per_image = sorted(len(image.instances) for image in dataset.images)
    assert per_image[0] == 5 and per_image[-1] == 369
    image = dataset.images[0]
    sample = dataset.image_path(image).parent.parent
    first_mask = sorted((sample / "masks").glob("*.png"))[0]
    expected = np.asarray(Image.open(first_mask)) > 0
    assert np.array_equal(image.instances[0].decode_mask(image.height, image.width), expected)


def test_stardist_label_image(stardist_folder):
    dataset = read_dataset(stardist_folder)
    assert dataset.source_format == "label_images"
    assert len(dataset.images) == 1 and dataset.num_instances == 125
    image = dataset.images[0]
    assert image.path == "img2d.tif" and (image.width, image.height) == (512, 512)
    labels = np.asarray(Image.open(stardist_folder / "mask2d.tif")).astype(np.int64)
    union = np.zeros_like(labels, dtype=bool)
    for instance in image.instances:
        union |= instance.decode_mask(512, 512)
    assert np.array_equal(union, labels > 0)


def test_labelme_example_merges_groups_and_drops_ignore(labelme_folder):
    # 18 shapes: 2 are __ignore__, one person is split in 2 polygons (group 0) and one sofa in 4 (group 0):
    # 18 - 2 - 1 - 3 = 12 instances, as in labelme's own COCO conversion.
    dataset = read_dataset(labelme_folder)
    assert dataset.source_format == "labelme"
    assert len(dataset.images) == 3 and dataset.num_instances == 12
    names = [c.name for c in dataset.categories]
    assert "__ignore__" not in names and sorted(names) == ["bottle", "bus", "car", "chair", "person", "sofa"]
    by_path = {image.path: image for image in dataset.images}
    sofa = dataset.category_by_name("sofa").id
    sofas = [inst for inst in by_path["2011_000006.jpg"].instances if inst.category_id == sofa]
    assert len(sofas) == 1 and len(sofas[0].mask) == 4
    assert all(image.state == "reviewed" for image in dataset.images)


def test_labelme_matches_labelmes_own_coco_export(labelme_folder):
    from_labelme = read_dataset(labelme_folder)
    from_coco = read_dataset(labelme_folder.parent / "data_dataset_coco")
    assert "_background_" not in [c.name for c in from_coco.categories]
    assert from_coco.num_instances == from_labelme.num_instances == 12
    for image in from_labelme.images:
        twin = next(t for t in from_coco.images if t.path.endswith(image.path))
        assert (twin.width, twin.height) == (image.width, image.height)
        masks = sorted(inst.decode_mask(image.height, image.width).sum() for inst in image.instances)
        coco_masks = sorted(inst.decode_mask(twin.height, twin.width).sum() for inst in twin.instances)
        assert masks == coco_masks
