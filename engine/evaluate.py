"""COCO-style box and mask AP through pycocotools' COCOeval.

``evaluate_model`` runs a model over a Dataset's images and scores it against the dataset's own
annotations (crowd regions as ``iscrowd=1``, as COCO does). The lower-level helpers score model
outputs against torchvision-style targets (``mask_ap_from_tensors``) or turn outputs into COCO results.
"""

from __future__ import annotations

import contextlib
import io
import re
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import torch
from pycocotools import mask as mask_utils
from pycocotools.coco import COCO
from pycocotools.cocoeval import COCOeval

from engine.data.annotations import Dataset
from engine.data.errors import DatasetError
from engine.data.io.images import load_image
from engine.data.masks import rle_area, rle_box

STAT_NAMES = ("AP", "AP50", "AP75", "APs", "APm", "APl")
PLACEHOLDER_NAMES = ("N/A", "__background__", "_background_")  # model classes that stand for no category
_GENERIC_NAME = re.compile(r"^class \d+$")  # names load_weights invents for files without class names


class ClassMismatchError(ValueError):
    """The model's classes cannot be matched to the dataset's categories; the message says what to do."""


def encode_masks(masks: np.ndarray) -> list[dict]:
    """(N,H,W) bool/uint8 -> N COCO RLEs with ``counts`` as str (JSON-ready)."""
    rles = mask_utils.encode(np.asfortranarray(masks.astype(np.uint8).transpose(1, 2, 0)))
    for rle in rles:
        rle["counts"] = rle["counts"].decode("ascii")
    return rles


def crop_rle(mask: np.ndarray, x0: int, y0: int, height: int, width: int) -> dict:
    """A mask crop (h,w) bool placed at (x0, y0) of a height x width image -> its COCO RLE (``counts`` as str),
    without making the full-image mask (a 10k image's instance would need 100 MB)."""
    h, w = mask.shape
    if h == 0 or w == 0 or not mask.any():
        counts = [height * width]
    else:
        cols, rows = np.nonzero(mask.T)  # column-major order, as COCO counts run
        positions = (x0 + cols).astype(np.int64) * height + (y0 + rows)
        breaks = np.flatnonzero(np.diff(positions) != 1) + 1
        starts = positions[np.concatenate(([0], breaks))]
        ends = positions[np.concatenate((breaks - 1, [len(positions) - 1]))] + 1
        runs = np.empty(2 * len(starts) + 1, dtype=np.int64)
        runs[0:-1:2] = starts - np.concatenate(([0], ends[:-1]))
        runs[1::2] = ends - starts
        runs[-1] = height * width - ends[-1]
        counts = runs.tolist() if runs[-1] else runs[:-1].tolist()  # pycocotools writes no trailing empty run
    rle = mask_utils.frPyObjects({"size": [height, width], "counts": counts}, height, width)
    rle["counts"] = rle["counts"].decode("ascii")
    return rle


def prediction_to_coco(pred: Any, image_id: int, label_to_category: dict[int, int] | None = None) -> list[dict]:
    """An engine.structures.Prediction -> COCO results (xywh boxes, RLE masks from the crops); labels missing
    from ``label_to_category`` are dropped (identity map when None)."""
    results = []
    for i in range(len(pred)):
        label = int(pred.labels[i])
        if label_to_category is not None and label not in label_to_category:
            continue
        x1, y1, x2, y2 = (float(v) for v in pred.boxes[i])
        crop = pred.masks[i]
        results.append(
            {
                "image_id": int(image_id),
                "category_id": int(label if label_to_category is None else label_to_category[label]),
                "bbox": [x1, y1, x2 - x1, y2 - y1],
                "score": float(pred.scores[i]),
                "segmentation": crop_rle(crop.mask, crop.x0, crop.y0, pred.height, pred.width),
            }
        )
    return results


def _quiet_index(coco: COCO) -> COCO:
    with contextlib.redirect_stdout(io.StringIO()):
        coco.createIndex()
    return coco


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
    return _quiet_index(coco)


def detections_to_coco(
    output: dict[str, torch.Tensor],
    image_id: int,
    label_to_category: dict[int, int] | None = None,
    mask_threshold: float = 0.5,
) -> list[dict]:
    """One image's model output (boxes (N,4) xyxy, labels (N,), scores (N,), masks (N,1,H,W) in [0,1])
    -> COCO results; labels missing from ``label_to_category`` are dropped (identity map when None)."""
    boxes = output["boxes"].detach().cpu().numpy()
    labels = output["labels"].tolist()
    scores = output["scores"].tolist()
    keep = [i for i, label in enumerate(labels) if label_to_category is None or label in label_to_category]
    rles: list[dict | None] = [None] * len(boxes)
    if "masks" in output and keep:
        masks = (output["masks"][keep, 0] > mask_threshold).cpu().numpy()
        for i, rle in zip(keep, encode_masks(masks)):
            rles[i] = rle
    results = []
    for i in keep:
        x1, y1, x2, y2 = (float(v) for v in boxes[i])
        category = labels[i] if label_to_category is None else label_to_category[labels[i]]
        item = {"image_id": int(image_id), "category_id": int(category), "bbox": [x1, y1, x2 - x1, y2 - y1]}
        item["score"] = float(scores[i])
        if rles[i] is not None:
            item["segmentation"] = rles[i]
        results.append(item)
    return results


def predictions_to_coco(predictions: list[dict[str, torch.Tensor]], mask_threshold: float = 0.5) -> list[dict]:
    """Model outputs -> COCO results (image_id = position, RLE masks, xywh boxes)."""
    results = []
    for image_id, p in enumerate(predictions):
        results.extend(detections_to_coco(p, image_id, None, mask_threshold))
    return results


def _cocoeval(gt: COCO, results: list[dict], iou_type: str, max_detections: int = 100) -> COCOeval:
    """COCOeval with AP counted over up to ``max_detections`` per image (COCO's own cap is 100, too few
    for dense images such as a field of 369 nuclei)."""
    with contextlib.redirect_stdout(io.StringIO()):
        dt = gt.loadRes([dict(r) for r in results])  # loadRes adds keys to the dicts it gets
        ev = COCOeval(gt, dt, iou_type)
        ev.params.maxDets = [1, 10, max(100, max_detections)]
        ev.evaluate()
        ev.accumulate()
        ev.summarize()
    return ev


def summary(ev: COCOeval) -> dict[str, float]:
    """{AP, AP50, AP75, APs, APm, APl} at the largest detection cap of ``ev`` (-1: undefined).

    Computed from the accumulated precision table: pycocotools' own summary looks for a cap of exactly
    100 and reports -1 for AP when the caps were changed.
    """
    precision = ev.eval["precision"]  # (T iou, R recall, K class, A area, M cap)
    ious = np.asarray(ev.params.iouThrs)
    areas = ev.params.areaRngLbl

    def mean(values: np.ndarray) -> float:
        values = values[values > -1]
        return float(values.mean()) if values.size else -1.0

    table = precision[..., -1]
    all_areas = table[..., areas.index("all")]
    return {
        "AP": mean(all_areas),
        "AP50": mean(all_areas[np.isclose(ious, 0.5)]),
        "AP75": mean(all_areas[np.isclose(ious, 0.75)]),
        "APs": mean(table[..., areas.index("small")]),
        "APm": mean(table[..., areas.index("medium")]),
        "APl": mean(table[..., areas.index("large")]),
    }


def run_cocoeval(gt: COCO, results: list[dict], iou_type: str, max_detections: int = 100) -> dict[str, float]:
    """COCOeval summary for iou_type "bbox" | "segm" as {AP, AP50, AP75, APs, APm, APl} (-1: undefined)."""
    if not results:
        return dict.fromkeys(STAT_NAMES, 0.0)
    return summary(_cocoeval(gt, results, iou_type, max_detections))


def mask_ap_from_tensors(
    predictions: list[dict[str, torch.Tensor]], targets: list[dict[str, torch.Tensor]], num_classes: int | None = None
) -> dict[str, float]:
    """Mask AP of model outputs against targets (boxes, labels, masks (N,H,W)), images in the same order."""
    k = num_classes or 1 + max([int(t["labels"].max()) for t in targets if len(t["labels"])] + [1])
    return run_cocoeval(_gt_coco(targets, k), predictions_to_coco(predictions), "segm")


# ----- a model on a Dataset -----


def _names(items: Sequence[str], limit: int = 8) -> str:
    shown = ", ".join(repr(s) for s in items[:limit])
    return shown + (f" and {len(items) - limit} more" if len(items) > limit else "")


def label_to_category_map(
    dataset: Dataset, class_names: Sequence[str] | None = None, num_model_classes: int | None = None
) -> dict[int, int]:
    """Model label (1..K) -> dataset category id, by class name (or by sorted category id when the model's
    classes are unnamed and as many as the categories). ``num_model_classes`` counts the background.
    Raises ClassMismatchError with one line saying what does not match."""
    categories = sorted(dataset.categories, key=lambda c: c.id)
    by_name = {c.name: c.id for c in categories}
    if class_names is not None and num_model_classes is not None and len(class_names) != num_model_classes - 1:
        raise ClassMismatchError(
            f"{len(class_names)} class names were given for a model with {num_model_classes - 1} classes; "
            "pass one name per model class"
        )
    names = list(class_names) if class_names is not None else None
    count = len(names) if names is not None else (num_model_classes - 1 if num_model_classes else None)
    unnamed = names is None or all(_GENERIC_NAME.match(n) for n in names)
    if unnamed and count == len(categories):
        return {label: c.id for label, c in enumerate(categories, start=1)}
    if unnamed:
        how_many = count if count is not None else "an unknown number of"
        raise ClassMismatchError(
            f"the model has {how_many} unnamed classes but the dataset has {len(categories)} categories "
            f"({_names([c.name for c in categories])}); use a model trained on these categories"
        )
    mapping = {label: by_name[n] for label, n in enumerate(names, start=1) if n in by_name}
    missing = [n for n in names if n not in by_name and n not in PLACEHOLDER_NAMES]
    if missing:
        counts = (
            f" (the model has {len(names)} classes, the dataset {len(categories)} categories)"
            if len(names) != len(categories)
            else ""
        )
        raise ClassMismatchError(
            f"model class(es) {_names(missing)} have no category of that name in the dataset{counts}; "
            f"its categories are {_names([c.name for c in categories])}. Rename the categories to match "
            "or evaluate a model trained on this dataset"
        )
    if not mapping:
        raise ClassMismatchError("none of the model's classes names a category of the dataset")
    return mapping


def dataset_gt_coco(dataset: Dataset, image_ids: Sequence[int], category_ids: Sequence[int]) -> COCO:
    """Ground truth of the given images and categories as a pycocotools COCO (crowd regions iscrowd=1)."""
    wanted = set(category_ids)
    images, annotations = [], []
    for image_id in image_ids:
        record = dataset.image_by_id(image_id)
        images.append({"id": record.id, "width": record.width, "height": record.height})
        for instance in record.instances:
            if instance.category_id not in wanted:
                continue
            rle = instance.to_rle(record.height, record.width)
            area = rle_area(rle)
            if area == 0 and not instance.iscrowd:
                continue  # nothing to find (training leaves these out too)
            annotations.append(
                {
                    "id": len(annotations) + 1,
                    "image_id": record.id,
                    "category_id": instance.category_id,
                    "segmentation": rle,
                    "area": float(area),
                    "bbox": rle_box(rle),
                    "iscrowd": int(instance.iscrowd),
                }
            )
    coco = COCO()
    coco.dataset = {
        "images": images,
        "annotations": annotations,
        "categories": [{"id": c.id, "name": c.name} for c in dataset.categories if c.id in wanted],
    }
    return _quiet_index(coco)


def annotated_image_ids(dataset: Dataset) -> list[int]:
    """Ids of images that hold ground truth: with instances, or reviewed/predicted (an empty image counts)."""
    return [image.id for image in dataset.images if image.instances or image.state != "not_run"]


def _per_class_ap(ev: COCOeval) -> dict[int, float]:
    """Category id -> AP over IoU .50:.95, all areas, 100 detections (-1 when the category has no ground truth)."""
    precision = ev.eval["precision"]  # (T, R, K, A, M)
    area_all = ev.params.areaRngLbl.index("all")
    out = {}
    for k, category_id in enumerate(ev.params.catIds):
        values = precision[:, :, k, area_all, -1]
        values = values[values > -1]
        out[category_id] = float(values.mean()) if values.size else -1.0
    return out


@torch.no_grad()
def _run_model(model: Callable, image: torch.Tensor) -> dict[str, torch.Tensor]:
    return model([image])[0]


def _predictor_for(model: Any, device: torch.device) -> Any:
    """An engine.inference.Predictor for one of our models (no features kept between tiles), None for any other
    callable (tests' stand-ins), which is called on the whole image."""
    from engine.inference import Predictor
    from engine.model.mask_rcnn import MaskRCNN

    return Predictor(model, device, feature_budget=0) if isinstance(model, MaskRCNN) else None


def _model_class_count(model: Any) -> int | None:
    config = getattr(model, "config", None)
    return getattr(config, "num_classes", None)


def evaluate_model(
    model: Any,
    dataset: Dataset,
    image_ids: Sequence[int] | None = None,
    class_names: Sequence[str] | None = None,
    device: str | torch.device = "cpu",
    progress: Callable[[int, int], None] | None = None,
    max_detections: int | None = None,
) -> dict[str, Any]:
    """COCO box and mask AP of ``model`` (eval-mode call: list of (3,H,W) float -> dicts with boxes, labels,
    scores, masks (N,1,H,W)) on the dataset's images (default: the annotated ones) against its annotations.

    Model label i is the category named ``class_names[i-1]`` (default: ``model.class_names`` if it has them,
    else the categories by sorted id when as many as the model's classes). Returns {"bbox": stats, "segm": stats,
    "per_class": {category name: mask AP}, "images": n, "categories_not_evaluated": [names]}.
    AP counts up to ``max_detections`` per image (default: the model's own cap, at least COCO's 100).
    """
    image_ids = annotated_image_ids(dataset) if image_ids is None else list(image_ids)
    class_names = class_names if class_names is not None else getattr(model, "class_names", None)
    if not image_ids:
        raise DatasetError(dataset.source_path or dataset.root, "holds no annotated images to evaluate on")
    mapping = label_to_category_map(dataset, class_names, _model_class_count(model))
    evaluated = sorted(set(mapping.values()))
    not_evaluated = [c.name for c in sorted(dataset.categories, key=lambda c: c.id) if c.id not in mapping.values()]
    device = torch.device(device)
    module = model if isinstance(model, torch.nn.Module) else None
    was_training = module.training if module is not None else False
    first = next(module.parameters(), None) if module is not None else None
    original_device = first.device if first is not None else None
    if module is not None:
        module.eval()
        if original_device is not None and original_device != device:
            module.to(device)
    results: list[dict] = []
    predictor = _predictor_for(model, device)
    try:
        for done, image_id in enumerate(image_ids, start=1):
            record = dataset.image_by_id(image_id)
            path = dataset.image_path(record)
            pixels = load_image(path)
            if pixels.shape[:2] != (record.height, record.width):
                raise DatasetError(
                    path,
                    f"the image is {pixels.shape[1]}x{pixels.shape[0]} but the annotations say "
                    f"{record.width}x{record.height}; fix the annotation file or the image",
                )
            if predictor is not None:  # our model: the Predictor's path, tiled at pixel scale (engine.tiling)
                pred = predictor.predict(pixels, predictor.model_settings())
                results.extend(prediction_to_coco(pred, record.id, mapping))
            else:
                image = torch.from_numpy(pixels).to(device).permute(2, 0, 1).float().div_(255.0)
                results.extend(detections_to_coco(_run_model(model, image), record.id, mapping))
            if progress is not None:
                progress(done, len(image_ids))
    finally:
        if module is not None:
            if original_device is not None and original_device != device:
                module.to(original_device)
            module.train(was_training)
    gt = dataset_gt_coco(dataset, image_ids, evaluated)
    names = {c.id: c.name for c in dataset.categories}
    out: dict[str, Any] = {"images": len(image_ids), "categories_not_evaluated": not_evaluated}
    if not results:
        out["max_detections"] = max_detections or 100
        has_gt = {a["category_id"] for a in gt.dataset["annotations"] if not a["iscrowd"]}
        out["bbox"] = dict.fromkeys(STAT_NAMES, 0.0)
        out["segm"] = dict.fromkeys(STAT_NAMES, 0.0)
        out["per_class"] = {names[c]: (0.0 if c in has_gt else -1.0) for c in evaluated}
        return out
    if max_detections is None:
        max_detections = max(100, getattr(getattr(model, "config", None), "detections_per_image", 100))
    out["max_detections"] = max_detections
    for iou_type in ("bbox", "segm"):
        ev = _cocoeval(gt, results, iou_type, max_detections)
        out[iou_type] = summary(ev)
        if iou_type == "segm":
            out["per_class"] = {names[c]: ap for c, ap in _per_class_ap(ev).items()}
    return out
