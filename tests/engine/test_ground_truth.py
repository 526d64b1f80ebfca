"""engine.ground_truth (the Errors view's matching and the image list's per-image AP) and engine.quality's
numpy half (the review queue's confidence and the image list's expected work): hand-made masks with known
answers, and the per-image AP against pycocotools' COCOeval on random masks."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from pycocotools import mask as mask_utils
from pycocotools.coco import COCO
from pycocotools.cocoeval import COCOeval

from engine.ground_truth import COCO_THRESHOLDS, PairsCache, crop_iou, find_errors, image_ap, iou_matrix, iou_pairs
from engine.quality import combined_confidence, expected_work, mask_confidence
from engine.structures import InstanceMask


def square(x: int, y: int, size: int) -> InstanceMask:
    return InstanceMask(x, y, np.ones((size, size), dtype=bool))


def test_crop_iou_of_shifted_squares():
    a, b = square(0, 0, 10), square(5, 0, 10)  # overlap 5x10 = 50, union 150
    assert crop_iou(a, b) == pytest.approx(50 / 150)
    assert crop_iou(a, square(20, 20, 5)) == 0.0
    assert crop_iou(a, InstanceMask(0, 0, np.zeros((0, 0), bool))) == 0.0
    assert iou_matrix([a], [b, a])[0].tolist() == pytest.approx([50 / 150, 1.0])


def test_errors_sort_good_poor_false_positive_and_missed():
    gts = [square(0, 0, 10), square(30, 0, 10), square(60, 0, 10)]
    preds = [
        square(0, 0, 10),  # good (IoU 1)
        square(34, 0, 10),  # poor: IoU 60/140 = 0.43
        square(100, 100, 8),  # false positive: touches nothing
        square(1, 0, 10),  # a duplicate of the first object: its ground truth is taken -> false positive
    ]
    errors = find_errors(preds, [0.9, 0.8, 0.7, 0.6], gts)
    assert errors.good == [0]
    assert errors.poor == [1]
    assert errors.false_positive == [2, 3]
    assert errors.missed == [2]  # the third square: nobody found it
    assert errors.iou[1] == pytest.approx(60 / 140)
    assert errors.counts() == {"good": 1, "poor": 1, "false_positive": 2, "missed": 1}


def test_errors_compare_classes_when_given():
    gts, preds = [square(0, 0, 10)], [square(0, 0, 10)]
    wrong_class = find_errors(preds, [0.9], gts, pred_classes=["cat"], gt_classes=["dog"])
    assert wrong_class.false_positive == [0] and wrong_class.missed == [0]
    assert find_errors(preds, [0.9], gts, pred_classes=["dog"], gt_classes=["dog"]).good == [0]


def test_image_ap_on_hand_made_cases():
    gts = [square(0, 0, 10), square(30, 0, 10)]
    assert image_ap([square(0, 0, 10), square(30, 0, 10)], [0.9, 0.8], gts) == pytest.approx(1.0)
    # one of two found: precision 1 up to recall 0.5, then nothing -> 51 of 101 recall points
    assert image_ap([square(0, 0, 10)], [0.9], gts) == pytest.approx(51 / 101)
    assert image_ap([], [], gts) == 0.0
    assert np.isnan(image_ap([square(0, 0, 10)], [0.9], []))


def random_blobs(rng: np.random.Generator, count: int, size: int = 64) -> list[np.ndarray]:
    masks = []
    for _ in range(count):
        cy, cx, r = rng.integers(8, size - 8), rng.integers(8, size - 8), rng.integers(3, 9)
        yy, xx = np.mgrid[:size, :size]
        masks.append((yy - cy) ** 2 + (xx - cx) ** 2 <= r * r)
    return masks


def crop(mask: np.ndarray) -> InstanceMask:
    rows, cols = np.flatnonzero(mask.any(1)), np.flatnonzero(mask.any(0))
    return InstanceMask(int(cols[0]), int(rows[0]), mask[rows[0] : rows[-1] + 1, cols[0] : cols[-1] + 1])


def coco_ap(gt_masks: list[np.ndarray], pred_masks: list[np.ndarray], scores: list[float]) -> tuple[float, float]:
    size = gt_masks[0].shape
    gt = COCO()
    gt.dataset = {
        "images": [{"id": 1, "height": size[0], "width": size[1]}],
        "categories": [{"id": 1, "name": "x"}],
        "annotations": [
            {"id": i + 1, "image_id": 1, "category_id": 1, "iscrowd": 0, "area": float(m.sum()),
             "segmentation": _rle(m), "bbox": list(mask_utils.toBbox(_rle(m)))}
            for i, m in enumerate(gt_masks)
        ],
    }  # fmt: skip
    gt.createIndex()
    results = [
        {"image_id": 1, "category_id": 1, "segmentation": _rle(m), "score": float(s)}
        for m, s in zip(pred_masks, scores)
    ]
    ev = COCOeval(gt, gt.loadRes(results), "segm")
    ev.params.maxDets = [1, 10, 100]
    ev.params.areaRng, ev.params.areaRngLbl = [[0, 1e10]], ["all"]
    ev.evaluate()
    ev.accumulate()
    precision = ev.eval["precision"][:, :, 0, 0, -1]  # (T, R)
    return float(precision.mean()), float(precision[0].mean())


def _rle(mask: np.ndarray) -> dict:
    rle = mask_utils.encode(np.asfortranarray(mask.astype(np.uint8)))
    rle["counts"] = rle["counts"].decode()
    return rle


@pytest.mark.parametrize("seed", range(5))
def test_image_ap_matches_cocoeval(seed):
    rng = np.random.default_rng(seed)
    gt_masks = random_blobs(rng, 8)
    pred_masks = random_blobs(rng, 4) + [np.roll(m, rng.integers(-3, 4), axis=1) for m in gt_masks[:6]]
    scores = rng.random(len(pred_masks)).tolist()
    ours_ap = image_ap([crop(m) for m in pred_masks], scores, [crop(m) for m in gt_masks], COCO_THRESHOLDS)
    ours_ap50 = image_ap([crop(m) for m in pred_masks], scores, [crop(m) for m in gt_masks])
    theirs_ap, theirs_ap50 = coco_ap(gt_masks, pred_masks, scores)
    assert ours_ap50 == pytest.approx(theirs_ap50, abs=1e-6)
    assert ours_ap == pytest.approx(theirs_ap, abs=1e-6)


def test_confidence_and_expected_work():
    assert combined_confidence(np.array([0.9, 0.5]), np.array([0.5, 1.0])).tolist() == pytest.approx([0.45, 0.5])
    assert combined_confidence(np.array([0.9]), None).tolist() == pytest.approx([0.9])  # no mask quality: the score
    assert expected_work(np.array([0.9, 0.5, 1.0])) == pytest.approx(0.6)
    assert expected_work(np.array([])) == 0.0
    sure = torch.where(torch.rand(28, 28) > 0.5, 0.99, 0.01)[None]
    unsure = torch.full((1, 28, 28), 0.5)
    assert mask_confidence(torch.cat([sure, unsure])).tolist() == pytest.approx([0.98, 0.0], abs=1e-5)


def _pair_set(pairs) -> set[tuple[int, int, float]]:  # noqa: ANN001 - Pairs
    return {(int(p), int(g), round(float(i), 12)) for p, g, i in zip(pairs.pred, pairs.gt, pairs.iou)}


def _every_pair(preds, gts) -> set[tuple[int, int, float]]:  # noqa: ANN001
    """The reference: crop_iou of every (detection, ground truth) pair, no box search."""
    ious = ((p, g, crop_iou(a, b)) for p, a in enumerate(preds) for g, b in enumerate(gts))
    return {(p, g, round(i, 12)) for p, g, i in ious if i > 0}


def test_pairs_cache_gives_iou_pairs_and_recomputes_only_what_an_edit_made():
    rng = np.random.default_rng(3)
    preds = [crop(m) for m in random_blobs(rng, 40, size=96)]
    gts = [crop(m) for m in random_blobs(rng, 30, size=96)] + [InstanceMask(0, 0, np.zeros((0, 0), bool))]
    cache = PairsCache()
    first = cache.pairs(preds, gts)
    assert cache.computed == len(gts)
    expected = _every_pair(preds, gts)
    assert _pair_set(iou_pairs(preds, gts)) == expected
    assert len(expected) > 20  # the blobs overlap: the comparison is not of two empty sets
    assert _pair_set(first) == expected
    # an edit: one annotation replaced, one deleted, one added; the rest are the same objects
    edited = list(gts)
    edited[4] = crop(random_blobs(rng, 1, size=96)[0])
    del edited[7]
    edited.append(preds[0])  # an accepted detection: IoU 1 with it
    again = cache.pairs(preds, edited)
    assert cache.computed == 2
    assert _pair_set(again) == _every_pair(preds, edited)
    assert (0, len(edited) - 1, 1.0) in _pair_set(again)
    # the AP from the cached pairs is the AP without them
    scores = rng.random(len(preds))
    assert image_ap(preds, scores, edited, pairs=again) == image_ap(preds, scores, edited)
    # another detection set: everything compared again
    others = preds[5:]
    assert _pair_set(cache.pairs(others, edited)) == _every_pair(others, edited)
    assert cache.computed == len(edited)
