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


@dataclass(frozen=True)
class Pairs:
    """The (detection, ground truth) pairs whose masks overlap, with their IoUs (> 0): sparse, so 5,000 x 5,000
    instances cost what their overlaps cost, not 25 million entries."""

    pred: np.ndarray  # (K,) int64
    gt: np.ndarray  # (K,) int64
    iou: np.ndarray  # (K,) float64

    def dense(self, num_preds: int, num_gts: int) -> np.ndarray:
        out = np.zeros((num_preds, num_gts), dtype=np.float64)
        out[self.pred, self.gt] = self.iou
        return out


def iou_pairs(preds: Sequence[InstanceMask], gts: Sequence[InstanceMask]) -> Pairs:
    """Every overlapping (detection, ground truth) pair and its mask IoU (ordered by ground truth): a fresh
    ``PairsCache``'s one call, which compares only the pairs whose boxes overlap."""
    return PairsCache().pairs(preds, gts)


class PairsCache:
    """``iou_pairs`` of one detection set against ground truths that change a few at a time (an image being
    corrected): each ground truth's overlaps are kept by the object's identity, so after an edit only the
    crops the edit made are compared with the detections (the figures of a 5,000-instance image: ~1 ms after
    an edit instead of ~230 ms of Python, which also kept the GUI thread from the GIL). Valid while the crops
    are never changed in place (InstanceMask crops are made anew by an edit) and for the same ``preds``
    sequence object; another one starts afresh. Not thread-safe: one caller thread."""

    def __init__(self) -> None:
        self._preds: Sequence[InstanceMask] | None = None
        self._boxes = np.zeros((0, 4), np.int64)  # detections' boxes, sorted by their left edge
        self._order = np.zeros(0, np.int64)  # detection index of each row of _boxes
        self._widest = 0
        self._areas: list[int] = []  # each detection's mask area
        # id(ground-truth crop) -> (crop, detection indices, IoUs); the crop is held so its id is not reused
        self._by_gt: dict[int, tuple[InstanceMask, np.ndarray, np.ndarray]] = {}
        self.computed = 0  # ground truths compared with the detections by the last call (the rest were kept)

    def pairs(self, preds: Sequence[InstanceMask], gts: Sequence[InstanceMask]) -> Pairs:
        """The same pairs as ``iou_pairs(preds, gts)`` (in another order: by ground truth)."""
        if preds is not self._preds:
            self._reset(preds)
        old, new = self._by_gt, {}
        found_p, found_g, found_iou = [], [], []
        self.computed = 0
        for g, crop in enumerate(gts):
            entry = old.get(id(crop))
            if entry is None or entry[0] is not crop:
                entry = (crop, *self._overlaps(crop))
                self.computed += 1
            new[id(crop)] = entry
            if len(entry[1]):
                found_p.append(entry[1])
                found_g.append(np.full(len(entry[1]), g, np.int64))
                found_iou.append(entry[2])
        self._by_gt = new
        if not found_p:
            return Pairs(np.zeros(0, np.int64), np.zeros(0, np.int64), np.zeros(0, np.float64))
        return Pairs(np.concatenate(found_p), np.concatenate(found_g), np.concatenate(found_iou))

    def _reset(self, preds: Sequence[InstanceMask]) -> None:
        self._preds, self._by_gt = preds, {}
        boxes = np.array([box_of(c) for c in preds], dtype=np.int64).reshape(-1, 4)
        self._order = np.argsort(boxes[:, 0], kind="stable")
        self._boxes = boxes[self._order]
        self._widest = int((boxes[:, 2] - boxes[:, 0]).max()) if len(boxes) else 0
        self._areas = [int(np.count_nonzero(c.mask)) for c in preds]

    def _overlaps(self, crop: InstanceMask) -> tuple[np.ndarray, np.ndarray]:
        """The detections whose masks overlap ``crop``, and their IoUs (> 0)."""
        preds, boxes = self._preds, self._boxes
        area = int(np.count_nonzero(crop.mask))
        if not area or preds is None or not len(boxes):
            return np.zeros(0, np.int64), np.zeros(0, np.float64)
        x0, y0, x1, y1 = box_of(crop)
        lo = np.searchsorted(boxes[:, 0], x0 - self._widest, "right")
        hi = np.searchsorted(boxes[:, 0], x1, "left")
        near = boxes[lo:hi]
        rows = np.flatnonzero((near[:, 2] > x0) & (near[:, 1] < y1) & (near[:, 3] > y0)) + lo
        found, ious = [], []
        for row in rows:
            p = int(self._order[row])
            other, other_area = preds[p], self._areas[p]
            if not other_area:
                continue
            # crop_iou with both areas known: only the intersection is counted per pair
            bx0, by0, bx1, by1 = (int(v) for v in boxes[row])
            ix0, iy0, ix1, iy1 = max(x0, bx0), max(y0, by0), min(x1, bx1), min(y1, by1)
            inter = int(
                np.count_nonzero(
                    crop.mask[iy0 - y0 : iy1 - y0, ix0 - x0 : ix1 - x0]
                    & other.mask[iy0 - by0 : iy1 - by0, ix0 - bx0 : ix1 - bx0]
                )
            )
            if inter:
                found.append(p)
                ious.append(inter / (area + other_area - inter))
        return np.array(found, np.int64), np.array(ious, np.float64)


def iou_matrix(preds: Sequence[InstanceMask], gts: Sequence[InstanceMask]) -> np.ndarray:
    """(P, G) mask IoUs (dense: for a few hundred instances; ``iou_pairs`` for many)."""
    return iou_pairs(preds, gts).dense(len(preds), len(gts))


def _class_codes(pred_classes: Sequence | None, gt_classes: Sequence | None) -> tuple[np.ndarray, np.ndarray] | None:
    """The classes (any hashable labels) as integer codes shared by both sides; None when either is not given."""
    if pred_classes is None or gt_classes is None:
        return None
    codes: dict = {}
    pred = np.array([codes.setdefault(c, len(codes)) for c in pred_classes], dtype=np.int64)
    gt = np.array([codes.setdefault(c, len(codes)) for c in gt_classes], dtype=np.int64)
    return pred, gt


def greedy_match(
    pairs: Pairs,
    scores: np.ndarray,
    num_gts: int,
    classes: tuple[np.ndarray, np.ndarray] | None = None,
    threshold: float = MATCH_IOU,
) -> np.ndarray:
    """(P,) index of the ground truth each detection takes at IoU >= ``threshold`` (-1: none), COCO's way:
    detections in descending score order, each takes the free ground truth (of its class) of highest IoU."""
    scores = np.asarray(scores, dtype=np.float64)
    taken = np.full(len(scores), -1, dtype=np.int64)
    keep = pairs.iou >= threshold
    if classes is not None and keep.any():
        keep &= classes[0][pairs.pred] == classes[1][pairs.gt]
    pred, gt, iou = pairs.pred[keep], pairs.gt[keep], pairs.iou[keep]
    if not len(pred):
        return taken
    # each detection's candidates, best IoU first (ties: the lower ground-truth index, as an argmax takes)
    order = np.lexsort((gt, -iou, pred))
    pred, gt = pred[order], gt[order]
    starts = np.searchsorted(pred, np.arange(len(scores)), "left")
    ends = np.searchsorted(pred, np.arange(len(scores)), "right")
    free = np.ones(num_gts, dtype=bool)
    for p in np.argsort(-scores, kind="stable"):
        for g in gt[starts[p] : ends[p]]:
            if free[g]:
                taken[p], free[g] = g, False
                break
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


def find_errors(
    preds: Sequence[InstanceMask],
    scores: Sequence[float],
    gts: Sequence[InstanceMask],
    pred_classes: Sequence | None = None,
    gt_classes: Sequence | None = None,
    iou: float = MATCH_IOU,
    touch: float = TOUCH_IOU,
    pairs: Pairs | None = None,
) -> ImageErrors:
    """Sort an image's detections into good / poor mask / false positive, and its ground truth into found or
    missed. Classes (any hashable labels, e.g. names) are compared when both are given."""
    pairs = iou_pairs(preds, gts) if pairs is None else pairs
    taken = greedy_match(pairs, scores, len(gts), _class_codes(pred_classes, gt_classes), touch)
    lookup = {(int(p), int(g)): float(v) for p, g, v in zip(pairs.pred, pairs.gt, pairs.iou)}
    out = ImageErrors(iou=np.zeros(len(preds)))
    for p, g in enumerate(taken):
        if g < 0:
            out.false_positive.append(p)
            continue
        out.iou[p] = lookup[(p, int(g))]
        (out.good if out.iou[p] >= iou else out.poor).append(p)
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
    pairs: Pairs | None = None,
) -> float:
    """One image's mask AP: the mean over ``thresholds`` (e.g. ``COCO_THRESHOLDS``) of COCO's AP at each
    (classes pooled: the Errors view's one figure per image). NaN when the image has no ground truth."""
    if not len(gts):
        return float("nan")
    pairs = iou_pairs(preds, gts) if pairs is None else pairs
    classes = _class_codes(pred_classes, gt_classes)
    scores = np.asarray(scores, dtype=np.float64)
    order = np.argsort(-scores, kind="stable")
    values = []
    for t in thresholds:
        taken = greedy_match(pairs, scores, len(gts), classes, float(t))
        values.append(average_precision(taken[order] >= 0, len(gts)))
    return float(np.mean(values))
