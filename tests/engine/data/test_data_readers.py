"""read_dataset on small synthetic layouts: every shape type, every layout, every malformed input."""

from __future__ import annotations

import base64
import io
import json
import re

import numpy as np
import pytest
from PIL import Image

from engine.data import DatasetError, read_dataset


def save_image(path, width=40, height=30, value=90):
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.full((height, width, 3), value, dtype=np.uint8)).save(path)


def labelme_shape(label, points, shape_type="polygon", group_id=None, **extra):
    return {"label": label, "points": points, "group_id": group_id, "shape_type": shape_type, "flags": {}, **extra}


def write_labelme_file(folder, stem, shapes, width=40, height=30):
    save_image(folder / f"{stem}.png", width, height)
    document = {
        "version": "5.0.1",
        "flags": {},
        "shapes": shapes,
        "imagePath": f"{stem}.png",
        "imageData": None,
        "imageHeight": height,
        "imageWidth": width,
    }
    (folder / f"{stem}.json").write_text(json.dumps(document))


def png_base64(mask):
    buffer = io.BytesIO()
    Image.fromarray(mask.astype(np.uint8) * 255).convert("1").save(buffer, format="PNG")
    return base64.b64encode(buffer.getvalue()).decode()


def test_labelme_shape_types(tmp_path):
    crop = np.zeros((4, 5), dtype=bool)
    crop[1:3, 1:4] = True
    shapes = [
        labelme_shape("box", [[12, 3], [2, 8]], "rectangle"),
        labelme_shape("disc", [[20, 15], [25, 15]], "circle"),
        labelme_shape("blob", [[30, 20], [34, 23]], "mask", mask=png_base64(crop)),
        labelme_shape("tip", [[1, 1]], "point"),
        labelme_shape("path", [[1, 1], [5, 5], [9, 1]], "linestrip"),
        labelme_shape("__ignore__", [[0, 0], [9, 0], [9, 9]]),
    ]
    write_labelme_file(tmp_path, "a", shapes)
    save_image(tmp_path / "b.png")
    dataset = read_dataset(tmp_path)
    assert sorted(c.name for c in dataset.categories) == ["blob", "box", "disc"]
    annotated, unannotated = dataset.images
    assert (annotated.path, unannotated.path, unannotated.state) == ("a.png", "b.png", "not_run")
    masks = {dataset.category_by_id(i.category_id).name: i.decode_mask(30, 40) for i in annotated.instances}
    assert masks["box"].sum() == 10 * 5 and masks["box"][3:8, 2:12].all()
    assert 70 <= masks["disc"].sum() <= 85  # pi * 5^2 = 78.5
    expected_blob = np.zeros((30, 40), dtype=bool)
    expected_blob[21:23, 31:34] = True
    assert np.array_equal(masks["blob"], expected_blob)
    assert sum("point" in w for w in dataset.warnings) == 1
    assert sum("linestrip" in w for w in dataset.warnings) == 1


def test_labelme_group_id_joins_polygon_and_mask_parts(tmp_path):
    crop = np.ones((3, 3), dtype=bool)
    shapes = [
        labelme_shape("cell", [[0, 0], [4, 0], [4, 4], [0, 4]], group_id=7),
        labelme_shape("cell", [[10, 10], [12, 12]], "mask", group_id=7, mask=png_base64(crop)),
        labelme_shape("cell", [[20, 20], [24, 20], [24, 24]], group_id=None),
        labelme_shape("dirt", [[30, 0], [34, 0], [34, 4]], group_id=7),
    ]
    write_labelme_file(tmp_path, "a", shapes)
    (image,) = read_dataset(tmp_path / "a.json").images
    assert len(image.instances) == 3
    merged = image.instances[0]
    assert merged.is_rle
    assert merged.decode_mask(30, 40).sum() == 16 + 9


def test_labelme_polygon_with_two_points_is_skipped_with_a_warning(tmp_path):
    shapes = [labelme_shape("cell", [[0, 0], [4, 4]]), labelme_shape("cell", [[0, 0], [4, 0], [4, 4]])]
    write_labelme_file(tmp_path, "bad", shapes)
    dataset = read_dataset(tmp_path)
    assert dataset.num_instances == 1
    assert any(re.search(r"bad\.json: shape #0 .*at least 3 points.*skipped", w) for w in dataset.warnings)


def test_broken_json_in_a_labelme_folder_is_skipped_with_a_warning(tmp_path):
    write_labelme_file(tmp_path, "good", [labelme_shape("cell", [[0, 0], [4, 0], [4, 4]])])
    save_image(tmp_path / "broken.png")
    (tmp_path / "broken.json").write_text('{"shapes": [')
    dataset = read_dataset(tmp_path)
    assert [(image.path, image.state) for image in dataset.images] == [
        ("broken.png", "not_run"),
        ("good.png", "reviewed"),
    ]
    assert any(re.search(r"broken\.json: not valid JSON.*line 1.*the file was skipped", w) for w in dataset.warnings)


def test_a_broken_json_that_the_next_save_would_replace_is_an_error(tmp_path):
    write_labelme_file(tmp_path, "good", [labelme_shape("cell", [[0, 0], [4, 0], [4, 4]])])
    (tmp_path / "annotations.json").write_text('{"images": [')
    with pytest.raises(DatasetError, match=r"annotations\.json: not valid JSON.*line 1"):
        read_dataset(tmp_path)
    (tmp_path / "annotations.json").unlink()
    (tmp_path / "other.json").write_text('{"images": [')
    write_coco_file(tmp_path, coco_document(), "coco.json")
    with pytest.raises(DatasetError, match=r"other\.json: not valid JSON"):
        read_dataset(tmp_path)


def coco_document(**overrides):
    document = {
        "images": [
            {"id": 1, "file_name": "one.png", "width": 40, "height": 30},
            {"id": 5, "file_name": "two.png", "width": 40, "height": 30},
        ],
        "annotations": [
            {
                "id": 1,
                "image_id": 1,
                "category_id": 3,
                "iscrowd": 0,
                "segmentation": [[1, 1, 10, 1, 10, 10, 1, 10]],
                "bbox": [1, 1, 9, 9],
            }
        ],
        "categories": [{"id": 0, "name": "_background_"}, {"id": 3, "name": "cell"}],
    }
    document.update(overrides)
    return document


def write_coco_file(folder, document, name="annotations.json"):
    folder.mkdir(parents=True, exist_ok=True)
    (folder / name).write_text(json.dumps(document))
    return folder / name


def test_coco_images_in_a_sibling_folder_and_background_dropped(tmp_path):
    save_image(tmp_path / "images" / "one.png")
    save_image(tmp_path / "images" / "two.png")
    json_path = write_coco_file(tmp_path / "annotations", coco_document())
    dataset = read_dataset(json_path)
    assert [c.name for c in dataset.categories] == ["cell"]
    assert [image.path for image in dataset.images] == ["../images/one.png", "../images/two.png"]
    assert dataset.image_by_id(5).instances == [] and dataset.warnings == []
    assert dataset.images[0].instances[0].decode_mask(30, 40).sum() == 81


def test_coco_compressed_and_uncompressed_crowd_rle(tmp_path):
    counts = [30 * 2 + 3, 5, 30 * 40 - 30 * 2 - 3 - 5]  # column-major (height 30): rows 3..7 of column 2
    from pycocotools import mask as coco_mask

    compressed = coco_mask.frPyObjects({"size": [30, 40], "counts": counts}, 30, 40)
    annotations = [
        {"id": 1, "image_id": 1, "category_id": 3, "iscrowd": 1, "segmentation": {"size": [30, 40], "counts": counts}},
        {
            "id": 2,
            "image_id": 1,
            "category_id": 3,
            "iscrowd": 1,
            "segmentation": {"size": [30, 40], "counts": compressed["counts"].decode()},
        },
    ]
    dataset = read_dataset(write_coco_file(tmp_path, coco_document(annotations=annotations)))
    first, second = dataset.images[0].instances
    assert first.iscrowd and first.mask == second.mask
    mask = first.decode_mask(30, 40)
    assert mask.sum() == 5 and mask[3:8, 2].all()
    assert sum("not found" in w for w in dataset.warnings) == 1


def test_coco_annotation_with_only_a_box_becomes_a_rectangle(tmp_path):
    annotations = [{"id": 1, "image_id": 1, "category_id": 3, "bbox": [2, 3, 4, 5]}]
    dataset = read_dataset(write_coco_file(tmp_path, coco_document(annotations=annotations)))
    assert dataset.images[0].instances[0].decode_mask(30, 40).sum() == 20
    assert any("without a segmentation" in w for w in dataset.warnings)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda d: d["annotations"][0].pop("image_id"), "annotation #0 .*has no 'image_id'"),
        (lambda d: d["annotations"][0].update(image_id=99), "image id 99, which is not in 'images'"),
        (lambda d: d["annotations"][0].update(category_id=4), "category id 4, which is not in 'categories'"),
        (lambda d: d["annotations"][0].update(segmentation=[[1, 1, 5, 5]]), "2 points; at least 3"),
        (lambda d: d["annotations"][0].update(segmentation={"size": [3, 3], "counts": "abc"}), "invalid RLE"),
    ],
)
def test_a_malformed_coco_annotation_is_skipped_with_a_warning_and_kept(tmp_path, change, message):
    document = coco_document()
    change(document)
    json_path = write_coco_file(tmp_path, document, name="broken_coco.json")
    dataset = read_dataset(json_path)
    (warning,) = [w for w in dataset.warnings if "skipped" in w]
    assert re.search(message, warning) and warning.startswith("broken_coco.json: annotation #0")
    assert dataset.num_instances == len(document["annotations"]) - 1
    assert dataset.extra["annotations"] == [document["annotations"][0]]


@pytest.mark.parametrize(
    ("change", "message", "annotations"),
    [
        (lambda d: d["images"][1].update(id=1), "image #1: image id 1 is used twice", 1),
        (lambda d: d["images"][0].pop("width"), "image #0 has no 'width'", 0),
        (lambda d: d["images"][0].update(height="30"), "image #0: 'height' must be an integer", 0),
    ],
)
def test_a_malformed_coco_image_entry_is_skipped_with_a_warning_and_kept(tmp_path, change, message, annotations):
    document = coco_document()
    change(document)
    json_path = write_coco_file(tmp_path, document, name="broken_coco.json")
    dataset = read_dataset(json_path)
    skipped = [w for w in dataset.warnings if "the image was skipped (kept in the file as it is)" in w]
    assert len(skipped) == 1 and skipped[0].startswith(f"broken_coco.json: {message}"), dataset.warnings
    assert len(dataset.images) == 1 and dataset.num_instances == annotations
    assert len(dataset.extra["images"]) == 1 and len(dataset.extra.get("annotations", [])) == 1 - annotations
    if not annotations:
        assert any("annotation #0 (id 1) belongs to image id 1, which was skipped" in w for w in dataset.warnings)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda d: d.update(annotations={}), "'annotations' must be a list"),
        (lambda d: d.update(images={}), "'images' must be a list"),
        (lambda d: d["categories"][1].update(id="3"), "category #1: 'id' must be an integer"),
    ],
)
def test_malformed_coco_raises_dataset_error_naming_the_file(tmp_path, change, message):
    document = coco_document()
    change(document)
    json_path = write_coco_file(tmp_path, document, name="broken_coco.json")
    with pytest.raises(DatasetError, match=message) as caught:
        read_dataset(json_path)
    assert "broken_coco.json" in str(caught.value) and isinstance(caught.value, ValueError)


def test_bad_json_and_wrong_files_raise_dataset_error(tmp_path):
    (tmp_path / "bad.json").write_text('{"images": [1, 2,,]}')
    with pytest.raises(DatasetError, match=r"bad\.json: not valid JSON"):
        read_dataset(tmp_path / "bad.json")
    (tmp_path / "list.json").write_text("[1, 2]")
    with pytest.raises(DatasetError, match=r"list\.json: is neither a COCO"):
        read_dataset(tmp_path / "list.json")
    with pytest.raises(DatasetError, match="does not exist"):
        read_dataset(tmp_path / "missing")
    (tmp_path / "empty").mkdir()
    with pytest.raises(DatasetError, match="holds no images"):
        read_dataset(tmp_path / "empty")


def test_several_coco_files_in_one_folder_is_an_error(tmp_path):
    write_coco_file(tmp_path, coco_document(), "train.json")
    write_coco_file(tmp_path, coco_document(), "val.json")
    with pytest.raises(DatasetError, match=r"several COCO files \(train.json, val.json\)"):
        read_dataset(tmp_path)


def test_plain_folder_with_a_corrupt_image_still_loads(tmp_path):
    save_image(tmp_path / "a.png", 40, 30)
    save_image(tmp_path / "c.jpg", 20, 10)
    (tmp_path / "b.png").write_bytes(b"not an image at all")
    (tmp_path / "notes.txt").write_text("hello")
    dataset = read_dataset(tmp_path)
    assert dataset.source_format == "images"
    assert [(i.path, i.width, i.height, i.state) for i in dataset.images] == [
        ("a.png", 40, 30, "not_run"),
        ("c.jpg", 20, 10, "not_run"),
    ]
    assert dataset.num_instances == 0 and dataset.categories == []
    assert len(dataset.warnings) == 1 and "b.png" in dataset.warnings[0]


def test_dsb_layout_with_rgba_images(tmp_path):
    sample = tmp_path / "abc"
    (sample / "images").mkdir(parents=True)
    (sample / "masks").mkdir()
    Image.fromarray(np.full((20, 30, 4), 200, dtype=np.uint8), "RGBA").save(sample / "images" / "abc.png")
    for index, (rows, cols) in enumerate([(slice(0, 5), slice(0, 5)), (slice(10, 20), slice(20, 30))]):
        mask = np.zeros((20, 30), dtype=np.uint8)
        mask[rows, cols] = 255
        Image.fromarray(mask).save(sample / "masks" / f"m{index}.png")
    Image.fromarray(np.zeros((20, 30), dtype=np.uint8)).save(sample / "masks" / "m9_empty.png")
    dataset = read_dataset(tmp_path)
    (image,) = dataset.images
    assert dataset.source_format == "dsb" and image.path == "abc/images/abc.png"
    assert [i.decode_mask(20, 30).sum() for i in image.instances] == [25, 100]
    assert len(dataset.warnings) == 1 and "m9_empty.png" in dataset.warnings[0]


def test_label_image_pairs_in_subfolders(tmp_path):
    labels = np.zeros((30, 40), dtype=np.uint16)
    labels[0:4, 0:5] = 1
    labels[10:12, 10:20] = 300
    save_image(tmp_path / "images" / "x1.png")
    save_image(tmp_path / "images" / "x2.png")
    (tmp_path / "masks").mkdir()
    Image.fromarray(labels).save(tmp_path / "masks" / "x1_mask.tif")
    Image.fromarray(labels).save(tmp_path / "masks" / "orphan_mask.tif")
    dataset = read_dataset(tmp_path)
    assert dataset.source_format == "label_images" and [c.name for c in dataset.categories] == ["object"]
    first, second = dataset.images
    assert (first.path, first.state, second.state) == ("images/x1.png", "reviewed", "not_run")
    assert [i.decode_mask(30, 40).sum() for i in first.instances] == [20, 20]
    assert len(dataset.warnings) == 1 and "orphan_mask.tif" in dataset.warnings[0]


def test_label_image_pairs_in_one_flat_folder(tmp_path):
    rgb_labels = np.zeros((30, 40, 3), dtype=np.uint8)
    rgb_labels[0:2, 0:2] = [255, 0, 0]
    rgb_labels[5:8, 5:8] = [0, 255, 0]
    for stem in ("cellA", "cellB"):
        save_image(tmp_path / f"{stem}.png")
        Image.fromarray(rgb_labels).save(tmp_path / f"{stem}_label.png")
    dataset = read_dataset(tmp_path)
    assert [image.path for image in dataset.images] == ["cellA.png", "cellB.png"]
    assert [i.decode_mask(30, 40).sum() for i in dataset.images[1].instances] == [9, 4]


def test_coco_file_without_images_in_a_folder_is_an_error(tmp_path):
    document = coco_document()
    document.pop("images")
    write_coco_file(tmp_path, document)
    save_image(tmp_path / "one.png")
    with pytest.raises(DatasetError, match=r"annotations\.json: the file has no 'images'"):
        read_dataset(tmp_path)


def test_subfolders_without_matching_labels_are_not_a_label_layout(tmp_path):
    save_image(tmp_path / "a.png")
    save_image(tmp_path / "photos" / "p.png")
    save_image(tmp_path / "mask_previews" / "unrelated.png")
    dataset = read_dataset(tmp_path)
    assert dataset.source_format == "images" and [image.path for image in dataset.images] == ["a.png"]


def test_images_added_beside_a_coco_file_join_as_not_run(tmp_path):
    save_image(tmp_path / "one.png")
    save_image(tmp_path / "two.png")
    save_image(tmp_path / "three.png", 20, 10)
    write_coco_file(tmp_path, coco_document())
    dataset = read_dataset(tmp_path)
    assert [(image.path, image.id, image.state) for image in dataset.images] == [
        ("one.png", 1, "reviewed"),
        ("two.png", 5, "reviewed"),
        ("three.png", 6, "not_run"),
    ]
    assert read_dataset(tmp_path / "annotations.json").num_instances == 1
    assert len(read_dataset(tmp_path / "annotations.json").images) == 2
