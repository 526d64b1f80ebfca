"""Per-image figures the image list shows and sorts by, Qt-free: how many detections an image shows, the work
they are expected to need (engine.quality.expected_work of their confidences) and, where the image has
ground truth, the model's mask AP50 on it (engine.ground_truth.image_ap)."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from engine.ground_truth import PairsCache, image_ap
from engine.quality import expected_work
from engine.structures import InstanceMask, Prediction
from gui.review.queue import confidences


@dataclass(frozen=True)
class ImageFigures:
    detections: int  # shown: above the score threshold and not already matched by an annotation
    work: float  # sum of (1 - confidence) over them
    ap50: float = math.nan  # mask AP50 of all the detections against the image's annotations (NaN: none)

    def text(self) -> str:
        """What the image list appends to the row."""
        parts = [f"{self.detections} det", f"work {self.work:.1f}"]
        if not math.isnan(self.ap50):
            parts.append(f"AP50 {self.ap50:.2f}")
        return " · ".join(parts)


def figures_for(
    prediction: Prediction,
    shown: list[int] | np.ndarray,
    truth: list[InstanceMask],
    pred_classes: list[str] | None = None,
    truth_classes: list[str] | None = None,
    cache: PairsCache | None = None,
) -> ImageFigures:
    """``shown``: the detections (indices) still to look at; ``truth``: the image's annotations as crops (its
    ground truth; empty: no AP); the classes (names), when given, must agree for a match (as in the Errors view).
    ``cache``: the overlaps of the crops an earlier call saw are taken from it (the same image being edited)."""
    shown = list(shown)
    conf = confidences(prediction)
    work = expected_work(conf[shown]) if shown else 0.0
    keep = [i for i, c in enumerate(truth) if c.mask.size]
    if not keep:
        return ImageFigures(len(shown), work)
    crops = [truth[i] for i in keep]
    names = [truth_classes[i] for i in keep] if truth_classes is not None else None
    pairs = cache.pairs(prediction.masks, crops) if cache is not None else None
    ap = image_ap(prediction.masks, prediction.scores, crops, pred_classes=pred_classes, gt_classes=names, pairs=pairs)
    return ImageFigures(len(shown), work, ap)
