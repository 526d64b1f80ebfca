"""COCO-style box and mask AP through pycocotools' COCOeval."""

from __future__ import annotations

import contextlib
import io

import numpy as np
import torch
from pycocotools import mask as mask_utils
from pycocotools.coco import COCO
from pycocotools.cocoeval import COCOeval

STAT_NAMES = ("AP", "AP50", "AP75", "APs", "APm", "APl")


def encode_masks(masks: np.ndarray) -> list[dict]:
    """(N,H,W) bool/uint8 -> N COCO RLEs with ``counts`` as str (JSON-ready)."""
    rles = mask_utils.encode(np.asfortranarray(masks.astype(np.uint8).transpose(1, 2, 0)))
    for rle in rles:
        rle["counts"] = rle["counts"].decode("ascii")
    return rles


def _gt_coco(targets: list[dict[str, torch.Tensor]], num_classes: int) -> COCO:
    images, annotations = [], []
    for image_id, t in enumerate(targets):
        masks = t["masks"].cpu().numpy().astype(bool)
        h, w = masks.shape[-2:]
        images.append({"id": image_id, "height": int(h), "width": int(w)})
        for rle, label in zip(encode_masks(masks), t["labels"].tolist()):
            annotations.append(
                {
                    "id": len(annotations) + 1,
                    "image_id": image_id,
                    "category_id": int(label),
                    "segmentation": rle,
                    "area": float(mask_utils.area(rle)),
                    "bbox": [float(v) for v in mask_utils.toBbox(rle)],
                    "iscrowd": 0,
                }
            )
    coco = COCO()
    coco.dataset = {
        "images": images,
        "annotations": annotations,
        "categories": [{"id": k, "name": str(k)} for k in range(1, num_classes)],
    }
    with contextlib.redirect_stdout(io.StringIO()):
        coco.createIndex()
    return coco


def predictions_to_coco(predictions: list[dict[str, torch.Tensor]], mask_threshold: float = 0.5) -> list[dict]:
    """Model outputs -> COCO results (image_id = position, RLE masks, xywh boxes)."""
    results = []
    for image_id, p in enumerate(predictions):
        boxes = p["boxes"].detach().cpu().numpy()
        masks = (p["masks"][:, 0] > mask_threshold).cpu().numpy() if "masks" in p else None
        rles = encode_masks(masks) if masks is not None and len(masks) else [None] * len(boxes)
        for box, score, label, rle in zip(boxes, p["scores"].tolist(), p["labels"].tolist(), rles):
            x1, y1, x2, y2 = (float(v) for v in box)
            item = {"image_id": image_id, "category_id": int(label), "bbox": [x1, y1, x2 - x1, y2 - y1], "score": score}
            if rle is not None:
                item["segmentation"] = rle
            results.append(item)
    return results


def run_cocoeval(gt: COCO, results: list[dict], iou_type: str) -> dict[str, float]:
    """COCOeval summary for iou_type "bbox" | "segm" as {AP, AP50, AP75, APs, APm, APl} (-1: undefined)."""
    if not results:
        return dict.fromkeys(STAT_NAMES, 0.0)
    with contextlib.redirect_stdout(io.StringIO()):
        dt = gt.loadRes(results)
        ev = COCOeval(gt, dt, iou_type)
        ev.evaluate()
        ev.accumulate()
        ev.summarize()
    return {name: float(v) for name, v in zip(STAT_NAMES, ev.stats[:6])}


def mask_ap_from_tensors(
    predictions: list[dict[str, torch.Tensor]], targets: list[dict[str, torch.Tensor]], num_classes: int | None = None
) -> dict[str, float]:
    """Mask AP of model outputs against targets (boxes, labels, masks (N,H,W)), images in the same order."""
    k = num_classes or 1 + max([int(t["labels"].max()) for t in targets if len(t["labels"])] + [1])
    return run_cocoeval(_gt_coco(targets, k), predictions_to_coco(predictions), "segm")
