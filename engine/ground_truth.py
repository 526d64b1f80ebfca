"""Where a model fails on an annotated image: its detections matched to the ground truth (issue 13, item 13).

Qt-free and torch-free (numpy only), so the app's Errors view, the image list's per-image AP and the
benchmarks share one rule. Masks are crops (``engine.structures.InstanceMask``): IoUs are computed on the
overlap of two crops' boxes only, so an image with hundreds of instances never builds a full-frame mask.

The matching is COCO's: detections in score order each take the unmatched ground truth of highest mask IoU
(of the same class). For the Errors view a detection is

    good            it took a ground truth at IoU >= ``iou`` (0.5);
    poor mask       it took one at ``touch`` (0.1) <= IoU < ``iou``: the object is found, its outline is wrong;
    false positive  it overlaps no free ground truth by ``touch``;

and a ground truth nobody took is ``missed``. ``image_ap`` is the per-image COCO AP (101-point interpolated
precision) at one IoU threshold or averaged over 0.50:0.95.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from engine.structures import InstanceMask

MATCH_IOU = 0.5  # a detection this close to a ground truth is right (COCO's AP50)
TOUCH_IOU = 0.1  # below this a detection has nothing to do with the object: a false positive, not a poor mask
COCO_THRESHOLDS = tuple(np.round(np.linspace(0.5, 0.95, 10), 2))


def box_of(crop: InstanceMask) -> tuple[int, int, int, int]:
    h, w = crop.mask.shape
    return crop.x0, crop.y0, crop.x0 + w, crop.y0 + h


def crop_iou(a: InstanceMask, b: InstanceMask) -> float:
    """Mask IoU of two crops (0 when either is empty)."""
    area_a, area_b = int(np.count_nonzero(a.mask)), int(np.count_nonzero(b.mask))
    if not area_a or not area_b:
        return 0.0
    ax0, ay0, ax1, ay1 = box_of(a)
    bx0, by0, bx1, by1 = box_of(b)
    x0, y0, x1, y1 = max(ax0, bx0), max(ay0, by0), min(ax1, bx1), min(ay1, by1)
    if x1 <= x0 or y1 <= y0:
        return 0.0
    inter = np.count_nonzero(
        a.mask[y0 - ay0 : y1 - ay0, x0 - ax0 : x1 - ax0] & b.mask[y0 - by0 : y1 - by0, x0 - bx0 : x1 - bx0]
    )
    return float(inter) / float(area_a + area_b - inter)


def iou_matrix(preds: Sequence[InstanceMask], gts: Sequence[InstanceMask]) -> np.ndarray:
    """(P, G) mask IoUs; only pairs whose boxes overlap touch pixels."""
    out = np.zeros((len(preds), len(gts)), dtype=np.float64)
    if not len(preds) or not len(gts):
        return out
    pb = np.array([box_of(c) for c in preds], dtype=np.int64).reshape(-1, 4)
    gb = np.array([box_of(c) for c in gts], dtype=np.int64).reshape(-1, 4)
    w = np.minimum(pb[:, None, 2], gb[None, :, 2]) - np.maximum(pb[:, None, 0], gb[None, :, 0])
    h = np.minimum(pb[:, None, 3], gb[None, :, 3]) - np.maximum(pb[:, None, 1], gb[None, :, 1])
    for p, g in zip(*np.nonzero((w > 0) & (h > 0))):
        out[p, g] = crop_iou(preds[p], gts[g])
    return out


def greedy_match(
    ious: np.ndarray, scores: np.ndarray, same_class: np.ndarray | None = None, threshold: float = MATCH_IOU
) -> np.ndarray:
    """(P,) index of the ground truth each detection takes at IoU >= ``threshold`` (-1: none), COCO's way:
    detections in descending score order, each takes the free ground truth of highest IoU."""
    taken = np.full(ious.shape[0], -1, dtype=np.int64)
    if not ious.size:
        return taken
    iou = ious if same_class is None else np.where(same_class, ious, 0.0)
    free = np.ones(ious.shape[1], dtype=bool)
    for p in np.argsort(-np.asarray(scores, dtype=np.float64), kind="stable"):
        candidates = np.where(free, iou[p], -1.0)
        g = int(np.argmax(candidates))
        if candidates[g] >= threshold:
            taken[p], free[g] = g, False
    return taken


@dataclass
class ImageErrors:
    """What the Errors view draws: indices into the detections (``good``, ``poor``, ``false_positive``) and into
    the ground truth (``missed``); ``iou[p]`` the IoU of the ground truth detection p took (0: none)."""

    good: list[int] = field(default_factory=list)
    poor: list[int] = field(default_factory=list)
    false_positive: list[int] = field(default_factory=list)
    missed: list[int] = field(default_factory=list)
    iou: np.ndarray = field(default_factory=lambda: np.zeros(0))

    def counts(self) -> dict[str, int]:
        return {
            "good": len(self.good),
            "poor": len(self.poor),
            "false_positive": len(self.false_positive),
            "missed": len(self.missed),
        }


def _same_class(pred_classes: Sequence | None, gt_classes: Sequence | None) -> np.ndarray | None:
    if pred_classes is None or gt_classes is None:
        return None
    return np.asarray(pred_classes, dtype=object)[:, None] == np.asarray(gt_classes, dtype=object)[None, :]


def find_errors(
    preds: Sequence[InstanceMask],
    scores: Sequence[float],
    gts: Sequence[InstanceMask],
    pred_classes: Sequence | None = None,
    gt_classes: Sequence | None = None,
    iou: float = MATCH_IOU,
    touch: float = TOUCH_IOU,
    ious: np.ndarray | None = None,
) -> ImageErrors:
    """Sort an image's detections into good / poor mask / false positive, and its ground truth into found or
    missed. Classes (any comparable labels, e.g. names) are compared when both are given."""
    ious = iou_matrix(preds, gts) if ious is None else ious
    same = _same_class(pred_classes, gt_classes)
    taken = greedy_match(ious, np.asarray(scores), same, touch)
    out = ImageErrors(iou=np.zeros(len(preds)))
    for p, g in enumerate(taken):
        if g < 0:
            out.false_positive.append(p)
            continue
        out.iou[p] = ious[p, g]
        (out.good if ious[p, g] >= iou else out.poor).append(p)
    found = set(int(g) for g in taken if g >= 0)
    out.missed = [g for g in range(len(gts)) if g not in found]
    return out


def average_precision(tp: np.ndarray, num_gt: int) -> float:
    """COCO's 101-point interpolated AP of detections already in descending score order (``tp`` (P,) bool)."""
    if num_gt == 0:
        return float("nan")
    if not len(tp):
        return 0.0
    tps = np.cumsum(tp)
    fps = np.cumsum(~tp)
    recall = tps / num_gt
    precision = tps / np.maximum(tps + fps, np.finfo(np.float64).eps)
    precision = np.maximum.accumulate(precision[::-1])[::-1]  # the envelope: best precision at any higher recall
    points = np.linspace(0, 1, 101)
    index = np.searchsorted(recall, points, side="left")
    values = np.where(index < len(precision), precision[np.minimum(index, len(precision) - 1)], 0.0)
    return float(values.mean())


def image_ap(
    preds: Sequence[InstanceMask],
    scores: Sequence[float],
    gts: Sequence[InstanceMask],
    thresholds: Sequence[float] = (MATCH_IOU,),
    pred_classes: Sequence | None = None,
    gt_classes: Sequence | None = None,
    ious: np.ndarray | None = None,
) -> float:
    """One image's mask AP: the mean over ``thresholds`` (e.g. ``COCO_THRESHOLDS``) of COCO's AP at each
    (classes pooled: the Errors view's one figure per image). NaN when the image has no ground truth."""
    if not len(gts):
        return float("nan")
    ious = iou_matrix(preds, gts) if ious is None else ious
    same = _same_class(pred_classes, gt_classes)
    scores = np.asarray(scores, dtype=np.float64)
    order = np.argsort(-scores, kind="stable")
    values = []
    for t in thresholds:
        taken = greedy_match(ious, scores, same, float(t))
        values.append(average_precision(taken[order] >= 0, len(gts)))
    return float(np.mean(values))
