"""RLE / polygon / label-image encodings and the annotation model."""

from __future__ import annotations

import numpy as np
import pytest
from pycocotools import mask as coco_mask

from engine.data import Category, Dataset, ImageRecord, Instance
from engine.data.masks import decode_rle, encode_mask, label_image_to_rles, normalize_rle, polygons_to_rle, rle_box


def test_polygon_instance_decodes_like_pycocotools():
    polygons = [[10.5, 3.0, 30.2, 8.7, 22.0, 25.1, 4.0, 18.0], [40.0, 40.0, 55.0, 41.0, 47.0, 58.0]]
    instance = Instance(category_id=3, mask=polygons)
    expected = coco_mask.decode(coco_mask.merge(coco_mask.frPyObjects(polygons, 60, 70))).astype(bool)
    decoded = instance.decode_mask(60, 70)
    assert decoded.dtype == bool and decoded.shape == (60, 70)
    assert np.array_equal(decoded, expected)
    assert instance.area(60, 70) == expected.sum()
    assert instance.box == pytest.approx([4.0, 3.0, 51.0, 55.0])


def test_rle_instance_from_pixels_keeps_pixels_and_str_counts():
    mask = np.zeros((31, 47), dtype=bool)
    mask[5:9, 10:20] = True
    mask[20, 3] = True
    instance = Instance.from_mask(mask, category_id=1, origin="predicted", score=0.75)
    assert instance.is_rle and isinstance(instance.mask["counts"], str)
    assert np.array_equal(instance.decode_mask(31, 47), mask)
    assert instance.box == [3.0, 5.0, 17.0, 16.0]
    with pytest.raises(ValueError, match="does not match"):
        instance.decode_mask(30, 47)


def test_uncompressed_rle_normalizes_to_the_same_pixels():
    mask = np.zeros((9, 7), dtype=np.uint8)
    mask[2:5, 1:3] = 1
    counts, previous, run = [], 0, 0
    for value in mask.ravel(order="F"):
        if value != previous:
            counts.append(run)
            previous, run = value, 0
        run += 1
    counts.append(run)
    rle = normalize_rle({"size": [9, 7], "counts": counts}, 9, 7)
    assert isinstance(rle["counts"], str)
    assert np.array_equal(decode_rle(rle), mask.astype(bool))
    assert rle == encode_mask(mask.astype(bool))


def test_label_image_to_rles_matches_each_label():
    labels = np.random.default_rng(0).integers(0, 7, size=(45, 38)).astype(np.uint16)
    labels[:, :5] = 0
    rles = label_image_to_rles(labels)
    assert sorted(rles) == sorted(set(np.unique(labels)) - {0})
    for value, rle in rles.items():
        assert np.array_equal(decode_rle(rle), labels == value)
    assert rle_box(rles[3])[0] == 5.0


def test_numpy_polygons_are_stored_as_float_lists():
    instance = Instance(category_id=1, mask=[np.array([[0, 0], [4, 0], [4, 3]], dtype=np.float32)])
    assert instance.mask == [[0.0, 0.0, 4.0, 0.0, 4.0, 3.0]] and type(instance.mask[0][0]) is float


def test_invalid_polygons_are_rejected():
    with pytest.raises(ValueError, match="at least 3"):
        Instance(category_id=1, mask=[[0.0, 0.0, 5.0, 5.0]])
    with pytest.raises(ValueError, match="odd"):
        polygons_to_rle([[0, 0, 5, 5, 3]], 10, 10)
    with pytest.raises(ValueError, match="origin"):
        Instance(category_id=1, mask=[[0, 0, 5, 0, 5, 5]], origin="guessed")


def _dataset(num_images: int) -> Dataset:
    images = [ImageRecord(f"img{i}.png", 10, 10) for i in range(num_images)]
    return Dataset("/tmp/project", images, [Category(7, "cell"), Category(2, "dirt")])


def test_dataset_helpers():
    dataset = _dataset(3)
    assert [image.id for image in dataset.images] == [1, 2, 3]
    dataset.images[1].instances.append(Instance(category_id=7, mask=[[0, 0, 5, 0, 5, 5]], id=4))
    assert dataset.num_instances == 1
    assert dataset.next_instance_id() == 5
    assert dataset.category_by_id(2).name == "dirt"
    assert dataset.add_category("debris").id == 8
    assert str(dataset.image_path(dataset.images[0])) == "/tmp/project/img0.png"
    with pytest.raises(KeyError):
        dataset.category_by_id(1)


def test_split_is_deterministic_and_disjoint():
    dataset = _dataset(20)
    train, val = dataset.split(0.25, seed=3)
    assert (train, val) == dataset.split(0.25, seed=3)
    assert len(val) == 5 and len(train) == 15 and not set(train) & set(val)
    assert sorted(train + val) == list(range(1, 21))
    assert dataset.split(0.25, seed=4)[1] != val
    assert dataset.split(val_image_ids=[2, 9])[1] == [2, 9]
    assert len(_dataset(2).split(0.1)[1]) == 1
    with pytest.raises(ValueError, match="unknown"):
        dataset.split(val_image_ids=[99])


def test_short_counts_are_checked_as_the_vectorised_check_does(monkeypatch):
    """rle_problem decodes short counts in Python (it keeps the GIL: engine/data/masks.py) and long ones with
    numpy: both give the same answer on pycocotools' own strings, on those strings cut, spliced and with
    characters changed, and on random strings of its alphabet."""
    from engine.data import masks

    rng = np.random.default_rng(7)
    cases = []
    for _ in range(60):
        h, w = (int(v) for v in rng.integers(1, 40, 2))
        mask = rng.random((h, w)) < rng.random()
        counts = coco_mask.encode(np.asfortranarray(mask.astype(np.uint8)))["counts"].decode()
        cases.append((counts, h * w))
        cases.append((counts, h * w + 1))  # the runs do not add up
        cases.append((counts[:-1] or "0", h * w))
        cut = int(rng.integers(0, len(counts)))
        cases.append((counts[:cut] + chr(int(rng.integers(48, 112))) + counts[cut + 1 :], h * w))
        cases.append((counts + counts, 2 * h * w))
    alphabet = np.array([chr(c) for c in range(48, 112)])
    for _ in range(400):
        text = "".join(rng.choice(alphabet, int(rng.integers(1, 12))))
        cases.append((text, int(rng.integers(1, 10**6))))
    cases += [("0" * 3, 0), ("ooooooo0", 100), ("\u00e9", 4), ("a b", 4), ("p", 4), ("/", 4)]
    short = [masks.rle_problem(counts, pixels) for counts, pixels in cases]
    monkeypatch.setattr(masks, "_SHORT_COUNTS", 0)
    vectorised = [masks.rle_problem(counts, pixels) for counts, pixels in cases]
    assert short == vectorised
    assert short.count(None) >= 60  # the valid strings pass
    assert len(set(short)) >= 6  # and the broken ones fail in several ways
