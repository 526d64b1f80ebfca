"""Hostile annotation files (issue 15, items 1, 6 and 12): each ends in the project's own error with a message
naming the file (and the annotation), or opens with the bad part skipped or clipped and a warning; never
another exception, a segfault, gigabytes of memory or a hang. Cases run in a guarded worker process
(data_guard.py) so that a crash fails the case instead of the test run.
"""

from __future__ import annotations

import json
import math
import os
import re

import numpy as np
import pytest
from data_guard import GuardedWorker
from PIL import Image

from engine.data import Category, Dataset, DetectionDataset, ImageLoadError, ImageRecord, Instance
from engine.data.masks import encode_mask

WIDTH, HEIGHT = 40, 30
TRIANGLE = [2, 2, 20, 2, 20, 20]


@pytest.fixture(scope="module")
def worker():
    with GuardedWorker(timeout=30.0) as guarded:
        yield guarded


def save_image(path, width=WIDTH, height=HEIGHT):
    Image.fromarray(np.full((height, width, 3), 90, dtype=np.uint8)).save(path)


def coco_folder(folder, annotations, images=None, categories=None, text=None):
    save_image(folder / "a.png")
    document = {
        "images": images or [{"id": 1, "file_name": "a.png", "width": WIDTH, "height": HEIGHT}],
        "annotations": annotations,
        "categories": categories or [{"id": 1, "name": "cell"}],
    }
    (folder / "annotations.json").write_text(text if text is not None else json.dumps(document))
    return folder


def labelme_folder(folder, shapes, **fields):
    save_image(folder / "a.png")
    document = {"shapes": shapes, "imagePath": "a.png", "imageWidth": WIDTH, "imageHeight": HEIGHT, **fields}
    (folder / "a.json").write_text(json.dumps(document))
    return folder


def annotation(**fields):
    return {"id": 7, "image_id": 1, "category_id": 1, **fields}


def shape(points, shape_type="polygon", **fields):
    return {"label": "cell", "points": points, "shape_type": shape_type, "group_id": None, **fields}


def opens(report):
    assert report["outcome"] == "ok", report
    return report


def warned(report, pattern):
    assert any(re.search(pattern, warning) for warning in report["warnings"]), report["warnings"]


# --- item 1: coordinates far outside the image are clipped before anything is drawn --------------------------


@pytest.mark.parametrize("size", [1e7, 5e8, 1e30])
def test_a_coco_box_far_outside_the_image_is_clipped(worker, tmp_path, size):
    report = opens(worker.run(coco_folder(tmp_path, [annotation(bbox=[0, 0, size, size])])))
    assert report["mask_pixels"] == WIDTH * HEIGHT and report["seconds"] < 10
    warned(
        report, r"annotations\.json: 1 annotation\(s\) reach far outside their image and were clipped: annotation #0"
    )


def test_a_coco_polygon_far_outside_the_image_is_clipped(worker, tmp_path):
    polygon = [0, 0, 1e30, 0, 1e30, 1e30]
    report = opens(worker.run(coco_folder(tmp_path, [annotation(segmentation=[polygon], bbox=[0, 0, 1e30, 1e30])])))
    expected = np.triu(np.ones((HEIGHT, WIDTH), dtype=bool)).sum()  # the part of the image above y = x
    assert abs(report["mask_pixels"] - expected) <= WIDTH
    warned(report, r"clipped: annotation #0 \(id 7\)")


@pytest.mark.parametrize(
    ("points", "shape_type"), [([[0, 0], [1e9, 1e9]], "rectangle"), ([[5, 5], [1e9, 5]], "circle")]
)
def test_labelme_shapes_far_outside_the_image_are_clipped(worker, tmp_path, points, shape_type):
    report = opens(worker.run(labelme_folder(tmp_path, [shape(points, shape_type)])))
    assert report["mask_pixels"] == WIDTH * HEIGHT
    warned(report, r"a\.json: shape #0 \('cell'\) reaches far outside the image; clipped")


def test_a_polygon_whose_outline_is_too_long_to_draw_is_skipped(worker, tmp_path):
    zigzag = [v for i in range(120_000) for v in ((0, 0) if i % 2 else (WIDTH, HEIGHT))] + [0, HEIGHT]
    report = opens(worker.run(coco_folder(tmp_path, [annotation(segmentation=[zigzag])])))
    assert report["instances"] == 0
    warned(report, r"annotation #0 \(id 7\) \(image a\.png\): the outline is .* pixels long")


# --- item 6: values of the wrong kind, numbers too large, broken RLE, deep nesting ---------------------------


@pytest.mark.parametrize("box", [["a", "b", "c", "d"], [None, 0, 5, 5], [0, 0, math.inf, 5], [0, 0, 10**400, 5]])
def test_a_bad_bbox_without_segmentation_skips_the_annotation(worker, tmp_path, box):
    text = json.dumps({"images": [], "annotations": [annotation(bbox=box)]}).replace("Infinity", "1e999")
    document = json.loads(text)
    report = opens(worker.run(coco_folder(tmp_path, document["annotations"])))
    assert report["instances"] == 0
    warned(report, r"annotations\.json: annotation #0 \(id 7\) has neither a segmentation nor a usable bbox")


@pytest.mark.parametrize("box", [["a", "b", "c", "d"], [None, 0, 5, 5], [0, 0, math.inf, 5], [1, 2, 3]])
def test_a_bad_bbox_beside_a_polygon_is_replaced_by_the_polygon_box(worker, tmp_path, box):
    report = opens(worker.run(coco_folder(tmp_path, [annotation(segmentation=[TRIANGLE], bbox=box)])))
    assert report["instances"] == 1


@pytest.mark.parametrize(
    ("change", "pattern"),
    [
        (lambda d: d["annotations"][0]["segmentation"][0].__setitem__(0, 10**400), "too large for any image"),
        (lambda d: d["annotations"][0].update(image_id=10**400), r"refers to image id 1000000.*not in 'images'"),
        (lambda d: d["annotations"][0].update(category_id=-(10**400)), r"refers to category id -1000.*'categories'"),
    ],
)
def test_integers_of_hundreds_of_digits_in_an_annotation_skip_it(worker, tmp_path, change, pattern):
    document = {"annotations": [annotation(segmentation=[list(TRIANGLE)])]}
    change(document)
    report = opens(worker.run(coco_folder(tmp_path, document["annotations"])))
    assert report["instances"] == 0
    warned(report, r"annotation #0 .*" + pattern)


@pytest.mark.parametrize(("where", "digits"), [("width", "'width' is 401 digits long"), ("id", "'id' is 401")])
def test_integers_of_hundreds_of_digits_in_an_image_entry_skip_the_image(worker, tmp_path, where, digits):
    images = [
        {"id": 1, "file_name": "a.png", "width": WIDTH, "height": HEIGHT, where: 10**400},
        {"id": 2, "file_name": "b.png", "width": WIDTH, "height": HEIGHT},
    ]
    save_image(tmp_path / "b.png")
    report = opens(worker.run(coco_folder(tmp_path, [annotation(image_id=2, segmentation=[TRIANGLE])], images)))
    assert report["instances"] == 1
    warned(report, r"annotations\.json: image #0: " + digits + r".*the image was skipped \(kept in the file as it is\)")


def test_an_integer_of_thousands_of_digits_is_a_dataset_error(worker, tmp_path):
    text = '{"images": [], "annotations": [], "categories": [], "n": ' + "7" * 5000 + "}"
    report = worker.run(coco_folder(tmp_path, [], text=text))
    assert report["outcome"] == "project_error", report
    assert "annotations.json: holds a number with thousands of digits" in report["message"]
    assert "set_int_max_str_digits" not in report["message"]


def test_deeply_nested_json_is_a_dataset_error(worker, tmp_path):
    text = '{"images": [], "annotations": ' + "[" * 100_000 + "]" * 100_000 + "}"
    report = worker.run(coco_folder(tmp_path, [], text=text))
    assert report["outcome"] == "project_error", report
    assert report["message"].endswith("annotations.json: its JSON is nested too deeply to be an annotation file")


def _overflowing_counts():
    """Valid compressed counts of a 100x100 mask: 33 times more pixels than the 30x40 image (writes past it)."""
    mask = np.zeros((100, 100), dtype=bool)
    mask[10:90, 10:90] = True
    return encode_mask(mask)["counts"]


@pytest.mark.parametrize(
    ("counts", "pattern"),
    [
        ([-5, WIDTH * HEIGHT + 5], "a run is negative"),
        ([2**40, 0], "a run is longer than any image"),
        ("é©", "not ASCII"),
        ("zzzz0", "outside '0'..'o'"),
        ("PPPP", "the last run is cut off"),
        ("1?", "the runs add up to 16 pixels, the image has 1200"),
        (_overflowing_counts(), "the runs add up to 10000 pixels, the image has 1200"),
        ([1.5, 1198.5], "a list of whole numbers"),
    ],
)
def test_broken_rle_counts_skip_the_annotation_when_read(worker, tmp_path, counts, pattern):
    rle = {"size": [HEIGHT, WIDTH], "counts": counts}
    report = opens(worker.run(coco_folder(tmp_path, [annotation(segmentation=rle, iscrowd=1)])))
    assert report["instances"] == 0
    warned(report, r"annotation #0 \(id 7\) has an invalid RLE segmentation: .*" + re.escape(pattern))


@pytest.mark.parametrize("size", [[HEIGHT, "40"], [HEIGHT], None, [10**400, WIDTH], [-HEIGHT, -WIDTH], [True, 1]])
def test_a_broken_rle_size_skips_the_annotation(worker, tmp_path, size):
    report = opens(worker.run(coco_folder(tmp_path, [annotation(segmentation={"size": size, "counts": "0"})])))
    assert report["instances"] == 0
    warned(report, r"annotation #0 \(id 7\) has an invalid RLE segmentation")


@pytest.mark.parametrize(
    ("points", "shape_type"),
    [
        ([[math.nan, 1], [9, 1], [9, 9]], "polygon"),
        ([[math.nan, 5], [9, 9]], "circle"),
        ([[5, 5], [5, math.inf]], "circle"),
    ],
)
def test_labelme_nan_points_and_circles_skip_the_shape(worker, tmp_path, points, shape_type):
    report = opens(worker.run(labelme_folder(tmp_path, [shape(points, shape_type), shape([[1, 1], [9, 1], [9, 9]])])))
    assert report["instances"] == 1
    warned(report, r"a\.json: shape #0 \('cell'\): 'points' holds a number that is not finite.*the shape was skipped")


@pytest.mark.parametrize("group_id", [[1], {"a": 1}])
def test_a_labelme_group_id_that_is_not_a_number_is_ignored(worker, tmp_path, group_id):
    shapes = [shape([[1, 1], [9, 1], [9, 9]], group_id=group_id), shape([[11, 1], [19, 1], [19, 9]], group_id=group_id)]
    report = opens(worker.run(labelme_folder(tmp_path, shapes)))
    assert report["instances"] == 2
    warned(report, r"a\.json: shape #0 \('cell'\) has a group_id that is not a number; ignored")


def test_a_huge_labelme_image_size_skips_the_file_in_a_folder(worker, tmp_path):
    shapes = [shape([[1, 1], [9, 9]], "mask", mask="")]
    report = opens(worker.run(labelme_folder(tmp_path, shapes, imageWidth=200_000, imageHeight=150_000)))
    assert report["instances"] == 0
    warned(
        report,
        r"a\.json: imageWidth x imageHeight: declares 200000x150000 pixels, more than the .* the file was skipped",
    )


def test_a_huge_labelme_image_size_in_the_file_opened_is_a_dataset_error(worker, tmp_path):
    labelme_folder(tmp_path, [shape([[1, 1], [9, 1], [9, 9]])], imageWidth=10**12, imageHeight=10**12)
    report = worker.run(tmp_path / "a.json")
    assert report["outcome"] == "project_error" and "a.json: imageWidth x imageHeight: declares" in report["message"]


def test_a_huge_coco_image_size_skips_the_image(worker, tmp_path):
    image = {"id": 1, "file_name": "a.png", "width": 10**9, "height": 10**9}
    rle = {"size": [10**9, 10**9], "counts": "0"}
    report = opens(worker.run(coco_folder(tmp_path, [annotation(segmentation=rle)], [image])))
    assert report["instances"] == 0
    warned(report, r"annotations\.json: image #0 \('a\.png'\) declares 1000000000x1000000000 pixels")
    warned(report, r"annotation #0 \(id 7\) belongs to image id 1, which was skipped")


def test_symlink_loops_in_the_folder_are_passed_over(worker, tmp_path):
    labelme_folder(tmp_path, [shape([[1, 1], [9, 1], [9, 9]])])
    os.symlink("self.png", tmp_path / "self.png")
    os.symlink("b.json", tmp_path / "c.json")
    os.symlink("c.json", tmp_path / "b.json")
    os.symlink(".", tmp_path / "images")
    (tmp_path / "sub").mkdir()
    os.symlink("..", tmp_path / "sub" / "up")
    report = opens(worker.run(tmp_path))
    assert report["instances"] == 1
    loop = worker.run(tmp_path / "self.png")
    assert (
        loop["outcome"] == "project_error" and "symbolic link that leads nowhere or round in a loop" in loop["message"]
    )


# --- item 12: an image whose size does not match the annotations ---------------------------------------------


def test_an_image_of_another_size_than_the_annotations_say_is_an_image_load_error(worker, tmp_path):
    coco_folder(tmp_path, [annotation(segmentation=[TRIANGLE])])
    save_image(tmp_path / "a.png", WIDTH, HEIGHT + 1)
    report = opens(worker.run(tmp_path))
    (error,) = report["image_errors"]
    assert error == "a.png: 40x31, not 40x30"
    record = ImageRecord(str(tmp_path / "a.png"), WIDTH, HEIGHT, [Instance(1, [TRIANGLE])])
    dataset = Dataset(tmp_path, [record], [Category(1, "cell")])
    with pytest.raises(ImageLoadError, match=r"the image is 40x31 pixels but the annotations say 40x30"):
        DetectionDataset(dataset)[0]


def test_training_on_an_image_of_another_size_stops_before_it_starts_with_one_line(tmp_path, capsys):
    from engine.__main__ import main

    images, annotations = [], []
    for index in range(3):
        Image.fromarray(np.full((64, 64, 3), 40 * index, dtype=np.uint8)).save(tmp_path / f"{index}.png")
        images.append({"id": index + 1, "file_name": f"{index}.png", "width": 64, "height": 64})
        annotations.append(annotation(id=index + 1, image_id=index + 1, segmentation=[[8, 8, 40, 8, 40, 40, 8, 40]]))
    coco_folder(tmp_path, annotations, images)
    (tmp_path / "a.png").unlink()
    save_image(tmp_path / "2.png", 64, 65)
    args = ["--iters", "2", "--input-size", "64", "--max-size", "64", "--warmup", "1", "--threads", "1"]
    assert main(["train", "--data", str(tmp_path), "--out", str(tmp_path / "run"), "--val-split", "0", *args]) == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err and "0/2" in err  # before the first iteration
    (line,) = [line for line in err.splitlines() if "error:" in line]
    assert re.search(
        r"error: Cannot load image '.*/2\.png': the image is 64x65 pixels but the annotations say 64x64",
        line,
    )


@pytest.mark.parametrize("width", [None, 0, 40.0, "40", True])
def test_a_labelme_image_size_that_is_not_one_is_read_from_the_image(worker, tmp_path, width):
    report = opens(worker.run(labelme_folder(tmp_path, [shape([[1, 1], [9, 1], [9, 9]])], imageWidth=width)))
    assert report["instances"] == 1 and report["image_errors"] == []
