"""Our network, built by from_torchvision, returns torchvision's detections (issue: parity)."""

from __future__ import annotations

import pytest
import torch
from torchvision.models.detection import MaskRCNN as TVMaskRCNN
from torchvision.models.detection.backbone_utils import resnet_fpn_backbone
from torchvision.ops import box_iou

from engine.cli.bench import randomise
from engine.interop import from_torchvision


def _build(depth: str, **kwargs) -> TVMaskRCNN:
    torch.manual_seed(0)
    backbone = resnet_fpn_backbone(backbone_name=depth, weights=None, trainable_layers=3)
    tv = TVMaskRCNN(backbone, **kwargs)
    randomise(tv, seed=1)
    return tv.eval()


def assert_same_detections(expected: dict, actual: dict) -> None:
    n = len(expected["boxes"])
    assert n > 0, "the reference found nothing: the comparison would be empty"
    assert len(actual["boxes"]) == n
    iou = box_iou(expected["boxes"], actual["boxes"])
    same_label = expected["labels"][:, None] == actual["labels"][None, :]
    iou = torch.where(same_label, iou, torch.zeros_like(iou))
    best = iou.argmax(dim=1)
    assert len(set(best.tolist())) == n, "two reference detections matched the same one of ours"
    assert iou[torch.arange(n), best].min().item() > 0.999
    assert (expected["scores"] - actual["scores"][best]).abs().max().item() <= 1e-4
    mad = (expected["masks"] - actual["masks"][best]).abs().flatten(1).mean(1)
    tie = _paste_box_on_integer_edge(expected["boxes"])
    assert tie.sum() <= max(1, n // 10), "rounding ties should be rare"
    assert mad[~tie].max().item() <= 1e-3


def _paste_box_on_integer_edge(boxes: torch.Tensor, tol: float = 5e-4) -> torch.Tensor:
    """Detections whose paste box (the box grown by 30/28 for the padded 28x28 mask) has an edge within
    ``tol`` of an integer: the paste truncates it to int, so box differences of 1e-4 (float rounding,
    which depends on the thread count) can move such a mask by one pixel. Those are compared by box only."""
    scale = 30 / 28
    half_w = (boxes[:, 2] - boxes[:, 0]) * 0.5 * scale
    half_h = (boxes[:, 3] - boxes[:, 1]) * 0.5 * scale
    cx = (boxes[:, 2] + boxes[:, 0]) * 0.5
    cy = (boxes[:, 3] + boxes[:, 1]) * 0.5
    edges = torch.stack([cx - half_w, cy - half_h, cx + half_w, cy + half_h], dim=1)
    return ((edges - edges.round()).abs() < tol).any(dim=1)


CASES = {
    "resnet18-default-thresholds": ("resnet18", dict(num_classes=5, min_size=320, max_size=512)),
    "resnet18-odd-thresholds": (
        "resnet18",
        dict(
            num_classes=4,
            min_size=288,
            max_size=480,
            box_score_thresh=0.2,
            box_nms_thresh=0.3,
            box_detections_per_img=40,
            rpn_nms_thresh=0.6,
            rpn_pre_nms_top_n_test=500,
            rpn_post_nms_top_n_test=300,
        ),
    ),
    "resnet50": ("resnet50", dict(num_classes=7, min_size=256, max_size=400, rpn_post_nms_top_n_test=400)),
}


@pytest.mark.parametrize("case", list(CASES))
def test_same_detections_as_torchvision_on_real_images(case, coco128_images):
    depth, kwargs = CASES[case]
    tv = _build(depth, **kwargs)
    ours = from_torchvision(tv).eval()
    images = coco128_images  # a batch of different sizes
    with torch.no_grad():
        expected = tv(images)
        actual = ours(images)
    for e, a in zip(expected, actual):
        assert_same_detections(e, a)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
@pytest.mark.parametrize("case", list(CASES))
def test_same_detections_as_torchvision_on_cuda(case, coco128_images):
    depth, kwargs = CASES[case]
    tv = _build(depth, **kwargs).cuda()
    ours = from_torchvision(tv).eval().cuda()
    images = [image.cuda() for image in coco128_images]
    with torch.no_grad():
        expected = tv(images)
        actual = ours(images)
    for e, a in zip(expected, actual):
        assert_same_detections({k: v.cpu() for k, v in e.items()}, {k: v.cpu() for k, v in a.items()})


def test_config_read_from_the_model():
    tv = _build("resnet18", **CASES["resnet18-odd-thresholds"][1])
    cfg = from_torchvision(tv).config
    assert (cfg.num_classes, cfg.backbone, cfg.backbone_norm, cfg.fpn_norm) == (4, "resnet18", "frozen_bn", "none")
    assert (cfg.min_size, cfg.max_size, cfg.box_score_threshold, cfg.box_nms_iou) == ((288,), 480, 0.2, 0.3)
    assert (cfg.detections_per_image, cfg.rpn_nms_iou, cfg.rpn_post_nms_top_n_test) == (40, 0.6, 300)
    assert cfg.aspect_ratios == (2.0, 1.0, 0.5)  # torchvision's h/w ratios (0.5, 1, 2) written as w/h
    assert cfg.frozen_stages == 2  # trainable_layers=3 freezes the stem and layer1


def test_training_losses_and_gradients_equal_torchvision():
    """Every anchor and every proposal is sampled (huge sample sizes), so the losses do not depend on
    which random subset is drawn nor on the order float rounding gives near-tied proposals."""
    torch.manual_seed(0)
    backbone = resnet_fpn_backbone(backbone_name="resnet18", weights=None, trainable_layers=5)
    tv = TVMaskRCNN(
        backbone,
        num_classes=3,
        min_size=64,
        max_size=100,
        rpn_batch_size_per_image=100_000,
        box_batch_size_per_image=100_000,
    )
    with torch.no_grad():  # decisive objectness, so rounding cannot reorder near-tied proposals in NMS
        tv.rpn.head.cls_logits.weight.mul_(10)
    ours = from_torchvision(tv)
    tv.train()
    ours.train()
    images = [torch.rand(3, 64, 80), torch.rand(3, 60, 50)]
    targets = [_target(64, 80, [[5, 5, 30, 40], [35, 10, 75, 60]], [1, 2]), _target(60, 50, [[3, 3, 25, 30]], [2])]
    expected = tv(images, [dict(t) for t in targets])
    actual = ours(images, [dict(t) for t in targets])
    assert set(actual) == set(expected)
    for key in expected:
        assert actual[key].item() == pytest.approx(expected[key].item(), rel=1e-4, abs=1e-6), key
    sum(expected.values()).backward()
    sum(actual.values()).backward()
    pairs = [
        (tv.backbone.body.layer2[0].conv1, ours.backbone.body.layer2[0].conv1),
        (tv.rpn.head.cls_logits, ours.rpn.head.cls_logits),
        (tv.roi_heads.box_predictor.cls_score, ours.roi_heads.box_head.cls_score),
        (tv.roi_heads.mask_predictor.mask_fcn_logits, ours.roi_heads.mask_head.logits),
    ]
    for theirs, mine in pairs:
        scale = theirs.weight.grad.abs().max()
        assert scale > 0
        assert (theirs.weight.grad - mine.weight.grad).abs().max() <= 1e-3 * scale


def _target(h, w, boxes, labels):
    masks = torch.zeros((len(boxes), h, w), dtype=torch.uint8)
    for i, (x1, y1, x2, y2) in enumerate(boxes):
        masks[i, y1:y2, x1:x2] = 1
    return {"boxes": torch.tensor(boxes, dtype=torch.float32), "labels": torch.tensor(labels), "masks": masks}
