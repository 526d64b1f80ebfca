"""engine.evaluate: COCO AP of a model on a Dataset, checked with models whose answers we know.

``GroundTruthModel`` answers each image with that image's own annotations (recognised by its pixels),
so its AP must be exactly 1; relabelled, exactly 0; with one class dropped, exactly the mean of 1 and 0.
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from conftest import SHARED_DATA
from PIL import Image

from engine.data import Category, Dataset, ImageRecord, Instance, load_image, read_dataset, write_coco
from engine.data.masks import encode_mask, rle_box
from engine.evaluate import (
    STAT_NAMES,
    ClassMismatchError,
    annotated_image_ids,
    evaluate_model,
    label_to_category_map,
    mask_ap_from_tensors,
)

DISC, SQUARE = 3, 7  # category ids with a gap, so labels (1, 2) and ids differ


def _disc(h: int, w: int, cx: int, cy: int, r: int) -> np.ndarray:
    yy, xx = np.mgrid[:h, :w]
    return (xx - cx) ** 2 + (yy - cy) ** 2 <= r * r


def _rect(h: int, w: int, x0: int, y0: int, x1: int, y1: int) -> np.ndarray:
    mask = np.zeros((h, w), dtype=bool)
    mask[y0:y1, x0:x1] = True
    return mask


def make_shapes_dataset(folder: Path) -> Dataset:
    """Three 80x64 PNGs in ``folder`` + annotations.json, read back with read_dataset.

    Image 1: two discs and a large (COCO 'medium') square; image 2: a disc, a square and a crowd region
    of discs; image 3: reviewed, no objects (every detection there is a false positive).
    """
    folder.mkdir(parents=True, exist_ok=True)
    h, w = 64, 80
    layouts = [
        [(DISC, _disc(h, w, 12, 12, 7), False), (DISC, _disc(h, w, 30, 50, 6), False)]
        + [(SQUARE, _rect(h, w, 40, 10, 76, 46), False)],
        [(DISC, _disc(h, w, 60, 20, 9), False), (SQUARE, _rect(h, w, 8, 30, 26, 48), False)]
        + [(DISC, _rect(h, w, 40, 44, 70, 62), True)],
        [],
    ]
    rng = np.random.default_rng(0)
    colours = {DISC: (220, 70, 50), SQUARE: (50, 120, 240)}
    images = []
    for index, layout in enumerate(layouts, start=1):
        pixels = rng.integers(50, 90, (h, w, 3), dtype=np.uint8)
        for category_id, mask, crowd in layout:
            pixels[mask] = (200, 200, 90) if crowd else colours[category_id]
        Image.fromarray(pixels).save(folder / f"img{index}.png")
        instances = [Instance.from_mask(mask, category_id, iscrowd=crowd) for category_id, mask, crowd in layout]
        images.append(ImageRecord(f"img{index}.png", w, h, instances, state="reviewed", id=index))
    write_coco(Dataset(folder, images, [Category(DISC, "disc"), Category(SQUARE, "square")]), folder / "ann.json")
    return read_dataset(folder / "ann.json")


def _pixel_key(pixels: np.ndarray) -> str:
    return hashlib.sha1(np.ascontiguousarray(pixels).tobytes()).hexdigest()


class GroundTruthModel(torch.nn.Module):
    """Answers an image with its annotations (found by its pixels) in torchvision's output format.

    ``label_of``: category id -> label it reports (a category left out is never reported);
    ``extra``: image id -> [(label, bool mask (H,W), score)] added detections.
    """

    def __init__(self, dataset: Dataset, label_of: dict[int, int], extra: dict | None = None) -> None:
        super().__init__()
        self.anchor = torch.nn.Parameter(torch.zeros(1))  # so that .parameters() and .to(device) behave
        self.config = SimpleNamespace(num_classes=len(dataset.categories) + 1)
        self.calls = 0
        self.by_pixels = {}
        for record in dataset.images:
            detections = [
                (label_of[inst.category_id], inst.decode_mask(record.height, record.width), 0.9 - 0.01 * i)
                for i, inst in enumerate(record.instances)
                if not inst.iscrowd and inst.category_id in label_of
            ]
            detections += (extra or {}).get(record.id, [])
            self.by_pixels[_pixel_key(load_image(dataset.image_path(record)))] = (
                record.height,
                record.width,
                detections,
            )

    def forward(self, images: list[torch.Tensor]) -> list[dict[str, torch.Tensor]]:
        assert not self.training, "evaluate_model must call the model in eval mode"
        outputs = []
        for image in images:
            self.calls += 1
            pixels = (image.permute(1, 2, 0) * 255).round().byte().cpu().numpy()
            h, w, detections = self.by_pixels[_pixel_key(pixels)]
            boxes = []
            for _, mask, _ in detections:
                x, y, bw, bh = rle_box(encode_mask(mask))
                boxes.append([x, y, x + bw, y + bh])
            outputs.append(
                {
                    "boxes": torch.tensor(boxes, dtype=torch.float32).reshape(-1, 4),
                    "labels": torch.tensor([d[0] for d in detections], dtype=torch.int64),
                    "scores": torch.tensor([d[2] for d in detections], dtype=torch.float32),
                    "masks": torch.from_numpy(
                        np.stack([d[1] for d in detections]) if detections else np.zeros((0, h, w))
                    ).float()[:, None],
                }
            )
        return outputs


@pytest.fixture(scope="module")
def shapes(tmp_path_factory: pytest.TempPathFactory) -> Dataset:
    return make_shapes_dataset(tmp_path_factory.mktemp("shapes"))


def test_ground_truth_model_scores_one(shapes: Dataset) -> None:
    model = GroundTruthModel(shapes, {DISC: 1, SQUARE: 2})
    seen = []
    result = evaluate_model(model, shapes, progress=lambda done, total: seen.append((done, total)))
    assert result["images"] == 3 and model.calls == 3
    assert seen == [(1, 3), (2, 3), (3, 3)]
    for kind in ("bbox", "segm"):
        assert set(result[kind]) == set(STAT_NAMES)
        assert result[kind]["AP"] == pytest.approx(1.0)
        assert result[kind]["AP50"] == pytest.approx(1.0)
        assert result[kind]["APs"] == pytest.approx(1.0)
        assert result[kind]["APm"] == pytest.approx(1.0)  # the 36x36 square
        assert result[kind]["APl"] == -1.0  # no large object: COCO leaves it undefined
    assert result["per_class"] == {"disc": pytest.approx(1.0), "square": pytest.approx(1.0)}
    assert result["categories_not_evaluated"] == []


def test_wrong_class_model_scores_zero(shapes: Dataset) -> None:
    result = evaluate_model(GroundTruthModel(shapes, {DISC: 2, SQUARE: 1}), shapes)
    assert result["segm"]["AP"] == 0.0 and result["bbox"]["AP"] == 0.0
    assert result["per_class"] == {"disc": 0.0, "square": 0.0}


def test_one_class_missing_halves_the_mean(shapes: Dataset) -> None:
    result = evaluate_model(GroundTruthModel(shapes, {DISC: 1}), shapes)
    assert result["per_class"] == {"disc": pytest.approx(1.0), "square": 0.0}
    assert result["segm"]["AP"] == pytest.approx(0.5)


def test_detection_on_a_crowd_region_is_not_a_false_positive(shapes: Dataset) -> None:
    crowd = next(i for i in shapes.image_by_id(2).instances if i.iscrowd).decode_mask(64, 80)
    inside_crowd = crowd & _disc(64, 80, 55, 53, 6)  # a disc within the crowd region, best score of all
    model = GroundTruthModel(shapes, {DISC: 1, SQUARE: 2}, extra={2: [(1, inside_crowd, 0.99)]})
    assert evaluate_model(model, shapes)["segm"]["AP"] == pytest.approx(1.0)
    # the same detection on the empty image 3 is a false positive ranked first: precision drops
    model = GroundTruthModel(shapes, {DISC: 1, SQUARE: 2}, extra={3: [(1, inside_crowd, 0.99)]})
    result = evaluate_model(model, shapes)
    assert result["per_class"]["disc"] < 0.9 and result["per_class"]["square"] == pytest.approx(1.0)


def test_image_subset_and_class_names_by_name(shapes: Dataset) -> None:
    # the model's label 1 is "square" here: class names, not category order, decide
    model = GroundTruthModel(shapes, {SQUARE: 1, DISC: 2})
    result = evaluate_model(model, shapes, image_ids=[1], class_names=["square", "disc"])
    assert result["images"] == 1 and model.calls == 1
    assert result["segm"]["AP"] == pytest.approx(1.0)
    # without names the labels follow sorted category ids (disc=1, square=2): all wrong
    assert evaluate_model(model, shapes, image_ids=[1])["segm"]["AP"] == 0.0


def test_label_map_rules(shapes: Dataset) -> None:
    assert label_to_category_map(shapes, None, 3) == {1: DISC, 2: SQUARE}
    assert label_to_category_map(shapes, ["class 1", "class 2"], 3) == {1: DISC, 2: SQUARE}  # unnamed weights
    assert label_to_category_map(shapes, ["N/A", "square", "disc"], 4) == {2: SQUARE, 3: DISC}  # placeholders
    # a model that knows only one of the categories: the other is reported, not scored
    model = GroundTruthModel(shapes, {SQUARE: 1})
    model.config.num_classes = 2
    result = evaluate_model(model, shapes, class_names=["square"])
    assert result["categories_not_evaluated"] == ["disc"] and result["segm"]["AP"] == pytest.approx(1.0)


@pytest.mark.parametrize(
    ("names", "num_classes", "expected"),
    [
        (["cat", "disc"], 3, "'cat'"),
        (None, 4, "the model has 3 unnamed classes but the dataset has 2 categories"),
        (["class 1", "class 2", "class 3"], 4, "the model has 3 unnamed classes"),
        (["disc"], 3, "1 class names were given for a model with 2 classes"),
    ],
)
def test_class_mismatch_is_one_clear_line(shapes: Dataset, names, num_classes: int, expected: str) -> None:  # noqa: ANN001
    model = GroundTruthModel(shapes, {DISC: 1, SQUARE: 2})
    model.config.num_classes = num_classes
    with pytest.raises(ClassMismatchError) as info:
        evaluate_model(model, shapes, class_names=names)
    message = str(info.value)
    assert isinstance(info.value, ValueError) and expected in message and "\n" not in message
    assert model.calls == 0  # refused before running any image


def test_not_run_images_are_left_out(shapes: Dataset, tmp_path: Path) -> None:
    Image.new("RGB", (80, 64)).save(tmp_path / "new.png")
    dataset = Dataset(shapes.root, list(shapes.images), shapes.categories)
    dataset.images.append(ImageRecord(str(tmp_path / "new.png"), 80, 64, [], "not_run", 9))
    assert annotated_image_ids(dataset) == [1, 2, 3]
    assert evaluate_model(GroundTruthModel(shapes, {DISC: 1, SQUARE: 2}), dataset)["images"] == 3


def test_real_tiny_model_keeps_its_mode_and_gives_valid_numbers(shapes: Dataset) -> None:
    from engine.config import ModelConfig
    from engine.model.mask_rcnn import MaskRCNN

    torch.manual_seed(0)
    cfg = ModelConfig(
        num_classes=3, min_size=(64,), max_size=96, fpn_channels=32, fpn_groups=8, representation_size=64,
        mask_head_channels=16, rpn_pre_nms_top_n_test=100, rpn_post_nms_top_n_test=50,
    )  # fmt: skip
    model = MaskRCNN(cfg).train()
    result = evaluate_model(model, shapes, class_names=["disc", "square"])
    assert model.training  # training goes on after a validation
    for kind in ("bbox", "segm"):
        assert all(v == -1.0 or 0.0 <= v <= 1.0 for v in result[kind].values())
    assert result["segm"]["AP"] < 0.5  # random weights find nothing well


def test_mask_ap_from_tensors_still_scores_targets() -> None:
    masks = torch.zeros((2, 32, 32), dtype=torch.uint8)
    masks[0, 2:10, 2:10] = 1
    masks[1, 15:30, 12:25] = 1
    target = {
        "boxes": torch.tensor([[2.0, 2, 10, 10], [12, 15, 25, 30]]),
        "labels": torch.tensor([1, 2]),
        "masks": masks,
    }
    perfect = {**target, "scores": torch.tensor([0.9, 0.8]), "masks": masks[:, None].float()}
    assert mask_ap_from_tensors([perfect], [target], num_classes=3)["AP"] == pytest.approx(1.0)
    swapped = {**perfect, "labels": torch.tensor([2, 1])}
    assert mask_ap_from_tensors([swapped], [target], num_classes=3)["AP"] == 0.0


def test_coco128_ground_truth_scores_one() -> None:
    """Real annotations: polygons, multi-part instances, crowd RLEs, category ids with gaps, empty images."""
    path = SHARED_DATA / "coco128" / "annotations" / "instances_train2017.json"
    if not path.is_file():
        pytest.skip(f"coco128 not found at {path} (../shared/data is absent in a plain clone)")
    dataset = read_dataset(path)
    with_crowd = [im.id for im in dataset.images if any(i.iscrowd for i in im.instances)][:2]
    empty = [im.id for im in dataset.images if not im.instances][:1]
    ids = sorted(set(with_crowd + empty + [im.id for im in dataset.images[:6]]))
    categories = sorted(c.id for c in dataset.categories)
    label_of = {cid: label for label, cid in enumerate(categories, start=1)}
    sub = Dataset(dataset.root, [dataset.image_by_id(i) for i in ids], dataset.categories)
    result = evaluate_model(GroundTruthModel(sub, label_of), dataset, image_ids=ids)
    assert result["images"] == len(ids) and with_crowd and empty
    assert result["segm"]["AP"] == pytest.approx(1.0) and result["bbox"]["AP"] == pytest.approx(1.0)
    scored = {name: ap for name, ap in result["per_class"].items() if ap >= 0}
    assert scored and all(ap == pytest.approx(1.0) for ap in scored.values())


def test_summary_equals_pycocotools_at_100_and_is_defined_above_it():
    """Our summary reads COCOeval's precision table: the same numbers as pycocotools' own at a cap of 100,
    and still defined (not -1) with a larger cap."""
    import torch

    from engine.evaluate import _cocoeval, _gt_coco, predictions_to_coco, summary

    masks = torch.zeros((3, 64, 64), dtype=torch.uint8)
    masks[0, 5:20, 5:20] = 1
    masks[1, 30:60, 30:50] = 1
    masks[2, 2:40, 40:62] = 1
    target = {"labels": torch.tensor([1, 1, 2]), "masks": masks}
    pred_masks = masks.clone().float()
    pred_masks[1, 30:45] = 0  # a worse second mask
    prediction = {
        "boxes": torch.tensor([[5.0, 5, 20, 20], [30, 45, 50, 60], [40, 2, 62, 40]]),
        "scores": torch.tensor([0.9, 0.8, 0.7]),
        "labels": torch.tensor([1, 1, 2]),
        "masks": pred_masks[:, None],
    }
    gt = _gt_coco([target], 3)
    results = predictions_to_coco([prediction])
    ev = _cocoeval(gt, results, "segm", 100)
    ours = summary(ev)
    for name, theirs in zip(("AP", "AP50", "AP75", "APs", "APm", "APl"), ev.stats[:6]):
        assert ours[name] == pytest.approx(float(theirs)), name
    assert 0 < ours["AP"] < 1
    wide = summary(_cocoeval(gt, results, "segm", 500))
    assert wide["AP"] == pytest.approx(ours["AP"])
