"""The staged Predictor: same detections as the model, and each slider re-runs only its own stages."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from engine.structures import PredictSettings

from engine.cli.bench import randomise
from engine.inference import Predictor
from engine.interop import from_torchvision


@pytest.fixture(scope="module")
def model():
    from torchvision.models.detection import MaskRCNN as TVMaskRCNN
    from torchvision.models.detection.backbone_utils import resnet_fpn_backbone

    torch.manual_seed(0)
    tv = TVMaskRCNN(
        resnet_fpn_backbone(backbone_name="resnet18", weights=None), num_classes=4, min_size=160, max_size=256
    )
    randomise(tv, seed=2, probe_hw=(120, 160))
    return from_torchvision(tv).eval()


@pytest.fixture(scope="module")
def image():
    g = torch.Generator().manual_seed(4)
    return (torch.rand((120, 150, 3), generator=g) * 255).to(torch.uint8).numpy()


def test_matches_the_model_forward(model, image):
    predictor = Predictor(model)
    settings = PredictSettings(score_threshold=model.config.box_score_threshold)
    pred = predictor.predict(image, settings)
    with torch.no_grad():
        ref = model([torch.from_numpy(image).permute(2, 0, 1).float() / 255])[0]
    assert len(pred) == len(ref["scores"]) > 10
    np.testing.assert_allclose(pred.boxes, ref["boxes"].numpy(), atol=1e-3)
    np.testing.assert_allclose(pred.scores, ref["scores"].numpy(), atol=1e-6)
    assert (pred.labels == ref["labels"].numpy()).all()
    full = np.stack([m.full(pred.height, pred.width) for m in pred.masks])
    expected = (ref["masks"][:, 0] > 0.5).numpy()
    assert (full != expected).mean() < 1e-4  # the same pixels, but for float rounding at exactly 0.5
    assert [m.area for m in pred.masks] == pytest.approx(expected.sum((1, 2)).tolist(), abs=3)


def test_each_slider_reruns_only_its_stages(model, image):
    predictor = Predictor(model)
    first = predictor.predict(image, PredictSettings(score_threshold=0.05, max_detections=300))
    assert predictor.stage_runs == {
        "backbone": 1,
        "rpn_head": 1,
        "rpn_post": 1,
        "box_head": 1,
        "select": 1,
        "mask_head": 1,
    }
    fewer = predictor.predict(settings=PredictSettings(score_threshold=0.8, max_detections=300))
    assert 0 < len(fewer) < len(first)
    assert set(fewer.keys) <= set(first.keys)
    assert predictor.stage_runs["mask_head"] == 1  # every mask came from the cache
    predictor.predict(settings=PredictSettings(score_threshold=0.05, box_nms_iou=0.3))
    predictor.predict(settings=PredictSettings(score_threshold=0.05, mask_threshold=0.7))
    assert predictor.stage_runs["rpn_post"] == 1 and predictor.stage_runs["backbone"] == 1
    other = predictor.predict(settings=PredictSettings(score_threshold=0.05, rpn_nms_iou=0.5))
    assert predictor.stage_runs["rpn_post"] == 2 and predictor.stage_runs["box_head"] <= 2
    assert len(other.proposals) < len(first.proposals)  # a stricter NMS keeps fewer proposals
    predictor.predict(settings=PredictSettings(score_threshold=0.05, num_proposals=50))
    assert predictor.stage_runs["rpn_post"] == 3
    assert predictor.stage_runs["backbone"] == 1


def test_mask_threshold_changes_the_masks(model, image):
    predictor = Predictor(model)
    low = predictor.predict(image, PredictSettings(score_threshold=0.05, mask_threshold=0.2))
    high = predictor.predict(settings=PredictSettings(score_threshold=0.05, mask_threshold=0.8))
    assert sum(m.area for m in low.masks) > sum(m.area for m in high.masks)


def test_same_key_does_not_rerun_the_backbone(model, image):
    predictor = Predictor(model)
    predictor.predict(image, key="a.png")
    predictor.predict(image, key="a.png")
    assert predictor.stage_runs["backbone"] == 1
    predictor.predict(image, key="b.png")
    assert predictor.stage_runs["backbone"] == 2


def test_a_box_drawn_by_the_user_becomes_the_mask_heads_mask(model, image):
    predictor = Predictor(model)
    pred = predictor.predict(image, PredictSettings(score_threshold=0.05))
    # the mask head given a detection's own box and class reproduces that detection's mask
    box, label = pred.boxes[0], int(pred.labels[0])
    mask = predictor.mask_from_box(tuple(float(v) for v in box), label)
    expected = pred.masks[0]
    assert (mask.x0, mask.y0) == (expected.x0, expected.y0)
    assert (mask.mask != expected.mask).mean() < 0.01
    assert predictor.stage_runs["backbone"] == 1
    with pytest.raises(ValueError, match="not a class"):
        predictor.mask_from_box((0, 0, 10, 10), 99)


@pytest.mark.parametrize(
    "settings",
    [
        PredictSettings(score_threshold=0.05, rpn_nms_iou=0.5),
        PredictSettings(score_threshold=0.3, rpn_nms_iou=0.9, num_proposals=200),
        PredictSettings(score_threshold=0.05, box_nms_iou=0.3, mask_threshold=0.6),
    ],
)
def test_cached_answers_equal_a_fresh_run(model, image, settings):
    """Whatever the slider path, the cached result is what a fresh Predictor computes from scratch."""
    warm = Predictor(model)
    warm.predict(image, PredictSettings(score_threshold=0.05))
    warm.predict(settings=PredictSettings(score_threshold=0.05, rpn_nms_iou=0.6, num_proposals=300))
    cached = warm.predict(settings=settings)
    fresh = Predictor(model).predict(image, settings)
    assert warm.stage_runs["backbone"] == 1
    np.testing.assert_allclose(cached.boxes, fresh.boxes, atol=1e-4)
    np.testing.assert_allclose(cached.scores, fresh.scores, atol=1e-5)
    np.testing.assert_array_equal(cached.keys, fresh.keys)
    np.testing.assert_allclose(cached.proposals, fresh.proposals, atol=1e-4)
    for a, b in zip(cached.masks, fresh.masks):
        assert (a.x0, a.y0) == (b.x0, b.y0) and (a.mask != b.mask).mean() < 1e-3


def test_cancel_between_stages_and_timings_of_stages_that_ran(model, image):
    from engine.inference import Cancelled

    predictor = Predictor(model)
    with pytest.raises(Cancelled):
        predictor.predict(image, key="a", cancel=lambda: True)
    first = predictor.predict(image, key="a")  # the cancelled image left nothing half-done behind
    assert "backbone" in first.timings_ms and predictor.stage_runs["backbone"] == 2
    again = predictor.predict(image, PredictSettings(score_threshold=0.2), key="a")
    assert "backbone" not in again.timings_ms and "proposals+box_head" not in again.timings_ms
    assert "select+masks" in again.timings_ms
