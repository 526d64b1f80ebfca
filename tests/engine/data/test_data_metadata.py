"""Saving a COCO file keeps what the studio does not use (issue 15, item 4): ``info``, ``licenses``, any other
top-level key, each image's ``license``/``coco_url``/``flickr_url``/``date_captured``, a category's
``supercategory`` and other keys, an annotation's own keys, and the annotations the reader had to skip."""

from __future__ import annotations

import dataclasses
import json

import numpy as np
from PIL import Image

from engine.data import Instance, read_dataset, write_coco

OURS = {"studio", "area", "bbox"}  # keys the writer derives or owns


def hand_made_document():
    return {
        "info": {"description": "hand-made", "version": "1.0", "year": 2017, "contributor": "me"},
        "licenses": [{"id": 3, "name": "CC BY", "url": "http://creativecommons.org/licenses/by/2.0/"}],
        "custom_top": {"nested": [1, 2.5, None, {"deep": ["x"]}]},
        "images": [
            {
                "id": 5,
                "file_name": "a.png",
                "width": 40,
                "height": 30,
                "license": 3,
                "coco_url": "http://images.cocodataset.org/train2017/a.png",
                "flickr_url": "http://farm1.staticflickr.com/a.png",
                "date_captured": "2013-11-14 17:02:52",
                "custom_image": {"microscope": "Zeiss", "exposure_ms": 12.5},
            },
            {"id": 6, "file_name": "b.png", "width": 40, "height": 30},
        ],
        "annotations": [
            {
                "id": 11,
                "image_id": 5,
                "category_id": 2,
                "segmentation": [[2.0, 2.0, 20.0, 2.0, 20.0, 20.0]],
                "area": 162.0,
                "bbox": [2.0, 2.0, 18.0, 18.0],
                "iscrowd": 0,
                "attributes": {"occluded": True, "note": "ünïcode"},
                "track_id": 4,
            },
            {"id": 12, "image_id": 6, "category_id": 2, "segmentation": [[1, 1, 9, 1, 9, 9]], "iscrowd": 0},
            {"id": 13, "image_id": 99, "category_id": 2, "segmentation": [[1, 1, 9, 1, 9, 9]], "note": "orphan"},
        ],
        "categories": [
            {"id": 2, "name": "cell", "supercategory": "biology", "keypoints": ["a", "b"], "skeleton": [[1, 2]]},
            {"id": 3, "name": "debris"},
        ],
    }


def write_hand_made(folder):
    for name in ("a.png", "b.png"):
        Image.fromarray(np.zeros((30, 40, 3), dtype=np.uint8)).save(folder / name)
    path = folder / "annotations.json"
    path.write_text(json.dumps(hand_made_document()))
    return path


def by_id(entries):
    return {entry["id"]: entry for entry in entries}


def without(entry, keys):
    return {key: value for key, value in entry.items() if key not in keys}


def test_saving_a_hand_made_coco_file_keeps_every_key_it_does_not_use(tmp_path):
    path = write_hand_made(tmp_path)
    original = hand_made_document()
    write_coco(read_dataset(path), path)
    saved = json.loads(path.read_text())
    for key in ("info", "licenses", "custom_top"):
        assert saved[key] == original[key]
    assert by_id(saved["images"])[5] == {**original["images"][0], "studio": {"state": "reviewed"}}
    assert without(by_id(saved["images"])[6], OURS) == original["images"][1]
    saved_categories = by_id(saved["categories"])
    assert without(saved_categories[2], OURS) == original["categories"][0]
    assert without(saved_categories[3], OURS) == {**original["categories"][1], "supercategory": ""}
    saved_annotations = by_id(saved["annotations"])
    assert without(saved_annotations[11], OURS) == without(original["annotations"][0], OURS)
    assert without(saved_annotations[12], OURS) == without(original["annotations"][1], OURS)
    assert saved_annotations[13] == original["annotations"][2]  # skipped when read (no image 99), kept as it was
    write_coco(read_dataset(path), path)
    assert json.loads(path.read_text()) == saved  # a second save changes nothing


def test_edits_keep_an_annotations_own_keys_and_new_instances_get_fresh_ids(tmp_path):
    path = write_hand_made(tmp_path)
    dataset = read_dataset(path)
    image = dataset.image_by_id(5)
    (edited,) = image.instances
    image.instances = [
        dataclasses.replace(edited, mask=[[5.0, 5.0, 25.0, 5.0, 25.0, 25.0]], box=None),
        Instance(category_id=3, mask=[[1.0, 1.0, 8.0, 1.0, 8.0, 8.0]]),
    ]
    write_coco(dataset, path)
    saved = by_id(json.loads(path.read_text())["annotations"])
    assert saved[11]["attributes"] == {"occluded": True, "note": "ünïcode"} and saved[11]["track_id"] == 4
    assert saved[11]["segmentation"] == [[5.0, 5.0, 25.0, 5.0, 25.0, 25.0]]
    assert sorted(saved) == [11, 12, 13, 14]  # the new instance does not take 13, the kept annotation's id
    assert without(saved[14], OURS | {"segmentation"}) == {"id": 14, "image_id": 5, "category_id": 3, "iscrowd": 0}


def test_saving_coco128_keeps_its_metadata(coco128_json, tmp_path):
    original = json.loads(coco128_json.read_text())
    out = tmp_path / "annotations.json"
    write_coco(read_dataset(coco128_json), out)
    saved = json.loads(out.read_text())
    assert saved["info"] == original["info"] and saved["licenses"] == original["licenses"]
    saved_images = by_id(saved["images"])
    for image in original["images"]:
        assert without(saved_images[image["id"]], OURS | {"file_name"}) == without(image, {"file_name"})
        assert {"license", "coco_url", "flickr_url", "date_captured"} <= saved_images[image["id"]].keys()
    saved_categories = by_id(saved["categories"])
    assert [without(saved_categories[c["id"]], OURS) for c in original["categories"]] == original["categories"]
    saved_annotations = by_id(saved["annotations"])
    assert len(saved_annotations) == len(original["annotations"])
    for annotation in original["annotations"]:
        kept = saved_annotations[annotation["id"]]
        assert without(kept, OURS | {"segmentation"}) == without(annotation, OURS | {"segmentation"})
        if isinstance(annotation["segmentation"], list):
            assert kept["segmentation"] == annotation["segmentation"]


def test_a_skipped_image_entry_and_its_annotations_are_saved_as_they_were(tmp_path):
    path = write_hand_made(tmp_path)
    document = hand_made_document()
    document["images"][1]["width"] = "40"  # b.png: skipped when read, and its annotation 12 with it
    path.write_text(json.dumps(document))
    dataset = read_dataset(path)
    assert [image.path for image in dataset.images] == ["a.png"]  # b.png is not added back as a new image
    write_coco(dataset, path)
    saved = json.loads(path.read_text())
    assert by_id(saved["images"])[6] == document["images"][1]
    assert by_id(saved["annotations"])[12] == document["annotations"][1]
