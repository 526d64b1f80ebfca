"""write_coco / write_labelme round trips (pixel for pixel) and the atomic-write guarantee."""

from __future__ import annotations

import json
import os

import numpy as np
import pytest
from PIL import Image
from pycocotools.coco import COCO

from engine.data import Category, Dataset, ImageRecord, Instance, read_dataset, write_coco, write_labelme
from engine.data.io.atomic import atomic_write_bytes, atomic_write_text


def all_masks(dataset):
    """{(image path name, instance index): bool mask} of every instance."""
    return {
        (dataset.image_path(image).name, index): instance.decode_mask(image.height, image.width)
        for image in dataset.images
        for index, instance in enumerate(image.instances)
    }


def assert_same_pixels(first, second):
    first_masks, second_masks = all_masks(first), all_masks(second)
    assert first_masks.keys() == second_masks.keys()
    for key, mask in first_masks.items():
        assert np.array_equal(mask, second_masks[key]), key


def studio_dataset(root):
    root.mkdir(parents=True, exist_ok=True)
    for name in ("a.png", "b.png"):
        Image.fromarray(np.zeros((30, 40, 3), dtype=np.uint8)).save(root / name)
    blob = np.zeros((30, 40), dtype=bool)
    blob[5:15, 8:20] = True
    blob[9:11, 12:14] = False  # a hole survives RLE
    instances = [
        Instance.from_mask(blob, category_id=4, origin="predicted", score=0.875),
        Instance(category_id=9, mask=[[1.5, 2, 12, 2, 12, 9.25], [20, 20, 30, 20, 30, 28]], origin="accepted"),
        Instance.from_mask(~blob, category_id=4, iscrowd=True),
    ]
    images = [ImageRecord("a.png", 40, 30, instances, "reviewed", id=3), ImageRecord("b.png", 40, 30, [], "predicted")]
    return Dataset(root, images, [Category(4, "cell", (1, 2, 3)), Category(9, "debris")])


def test_write_coco_round_trip_keeps_pixels_and_studio_fields(tmp_path):
    original = studio_dataset(tmp_path / "project")
    json_path = tmp_path / "exports" / "project.json"
    write_coco(original, json_path)
    document = json.loads(json_path.read_text())
    assert [image["file_name"] for image in document["images"]] == ["../project/a.png", "../project/b.png"]
    assert all(isinstance(a["segmentation"]["counts"], str) for a in document["annotations"] if a["iscrowd"])
    restored = read_dataset(json_path)
    assert restored.warnings == []
    assert_same_pixels(original, restored)
    assert [(image.id, image.state) for image in restored.images] == [(3, "reviewed"), (4, "predicted")]
    first = restored.images[0].instances
    assert [(i.origin, i.score, i.iscrowd, i.is_rle) for i in first] == [
        ("predicted", 0.875, False, True),
        ("accepted", None, False, False),
        ("manual", None, True, True),
    ]
    assert first[1].mask == original.images[0].instances[1].mask
    assert [(c.id, c.name, c.color) for c in restored.categories] == [
        (c.id, c.name, c.color) for c in original.categories
    ]
    assert restored.image_path(restored.images[0]) == (tmp_path / "project" / "a.png")
    coco = COCO(str(json_path))
    assert len(coco.getAnnIds(imgIds=[3])) == 3
    assert coco.annToMask(coco.loadAnns(coco.getAnnIds(imgIds=[3]))[0]).sum() == 116


def test_write_coco_round_trip_of_coco128(coco128_json, tmp_path):
    original = read_dataset(coco128_json)
    write_coco(original, tmp_path / "coco128.json")
    restored = read_dataset(tmp_path / "coco128.json")
    assert restored.num_instances == 939 and len(restored.images) == 128
    assert all(restored.image_path(image).is_file() for image in restored.images)
    assert_same_pixels(original, restored)


def test_write_coco_round_trip_of_dsb(dsb_folder, tmp_path):
    original = read_dataset(dsb_folder)
    write_coco(original, tmp_path / "nuclei.json")
    restored = read_dataset(tmp_path / "nuclei.json")
    assert restored.num_instances == 953
    assert_same_pixels(original, restored)


def test_write_labelme_round_trip(tmp_path):
    original = studio_dataset(tmp_path / "project")
    written = write_labelme(original, tmp_path / "labelme")
    assert [p.name for p in written] == ["a.json", "b.json"]
    document = json.loads(written[0].read_text())
    assert document["imagePath"] == "../project/a.png" and document["imageData"] is None
    restored = read_dataset(tmp_path / "labelme")
    assert restored.source_format == "labelme"
    image = restored.images[0]
    assert len(image.instances) == 2  # the crowd region is not exported
    blob = original.images[0].instances[0].decode_mask(30, 40)
    blob[9:11, 12:14] = True  # holes cannot be labelme polygons
    assert np.array_equal(image.instances[0].decode_mask(30, 40), blob)
    assert len(image.instances[1].mask) == 2  # the two polygons were grouped back into one instance
    assert np.array_equal(image.instances[1].decode_mask(30, 40), original.images[0].instances[1].decode_mask(30, 40))


def test_write_labelme_of_dsb_traces_masks_exactly(dsb_folder, tmp_path):
    original = read_dataset(dsb_folder)
    original.images = original.images[:3]
    write_labelme(original, tmp_path)
    restored = read_dataset(tmp_path)
    assert restored.num_instances == original.num_instances
    exact = sum(
        np.array_equal(a.decode_mask(im.height, im.width), b.decode_mask(im.height, im.width))
        for im, twin in zip(original.images, restored.images)
        for a, b in zip(im.instances, twin.instances)
    )
    assert exact >= 0.98 * original.num_instances  # nuclei rarely have holes


def test_atomic_write_failure_at_replace_keeps_the_old_file(tmp_path, monkeypatch):
    target = tmp_path / "annotations.json"
    atomic_write_text(target, "old content")

    def failing_replace(source, destination):
        raise OSError("disk unplugged")

    monkeypatch.setattr(os, "replace", failing_replace)
    with pytest.raises(OSError, match="disk unplugged"):
        write_coco(studio_dataset(tmp_path / "project"), target)
    assert target.read_text() == "old content"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["annotations.json", "project"]


def test_atomic_write_failure_during_write_keeps_the_old_file(tmp_path, monkeypatch):
    target = tmp_path / "data.bin"
    atomic_write_bytes(target, b"\x00" * 10)
    os.chmod(target, 0o640)

    def failing_fsync(descriptor):
        raise OSError("no space left on device")

    monkeypatch.setattr(os, "fsync", failing_fsync)
    with pytest.raises(OSError, match="no space"):
        atomic_write_bytes(target, b"new" * 1000)
    monkeypatch.undo()
    assert target.read_bytes() == b"\x00" * 10
    assert [p.name for p in tmp_path.iterdir()] == ["data.bin"]
    atomic_write_bytes(target, b"new")
    assert target.read_bytes() == b"new" and (target.stat().st_mode & 0o777) == 0o640


def test_write_coco_refuses_instances_of_unknown_categories(tmp_path):
    dataset = studio_dataset(tmp_path / "project")
    dataset.categories.pop()
    with pytest.raises(ValueError, match=r"a\.png: instances of category ids \[9\]"):
        write_coco(dataset, tmp_path / "out.json")
    assert not (tmp_path / "out.json").exists()
