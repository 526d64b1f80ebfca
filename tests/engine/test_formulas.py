"""Every formula of the seed (../shared/SEED_EN.md), checked against numbers worked out by hand."""

from __future__ import annotations

import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from engine.model.anchors import base_anchors, grid_anchors
from engine.model.box_utils import BBOX_XFORM_CLIP, BoxCoder, clip_boxes
from engine.model.matching import BELOW_LOW, BETWEEN, match, sample_balanced
from engine.model.pooler import roi_levels

SEED_WEIGHTS = (10.0, 10.0, 5.0, 5.0)


def test_anchor_size_32_ratio_half_is_45_25_by_22_63():
    (x1, y1, x2, y2) = base_anchors(32, (0.5,))[0].tolist()
    assert x2 - x1 == pytest.approx(32 * math.sqrt(0.5), abs=1e-4)  # w = 22.627
    assert y2 - y1 == pytest.approx(32 / math.sqrt(0.5), abs=1e-4)  # h = 45.255
    assert round(x2 - x1, 2) == 22.63 and round(y2 - y1, 2) == 45.25
    assert (x1, y1) == pytest.approx((-11.3137, -22.6274), abs=1e-4)  # centred on 0


def test_anchor_ratio_one_is_square_and_rounding_matches_torchvision():
    assert base_anchors(64, (1.0,))[0].tolist() == [-32.0, -32.0, 32.0, 32.0]
    # torchvision rounds: 22.63 / 2 = 11.31 -> 11, 45.25 / 2 = 22.63 -> 23
    assert base_anchors(32, (0.5,), round_to_int=True)[0].tolist() == [-11.0, -23.0, 11.0, 23.0]


def test_grid_shifts_are_location_major():
    base = torch.tensor([[-1.0, -1.0, 1.0, 1.0], [-2.0, -2.0, 2.0, 2.0]])
    anchors = grid_anchors(base, (2, 3), (4, 4))  # shifts x: 0,4,8 ; y: 0,4
    assert anchors.shape == (2 * 3 * 2, 4)
    assert anchors[0].tolist() == [-1, -1, 1, 1]  # location (0,0), anchor 0
    assert anchors[1].tolist() == [-2, -2, 2, 2]  # location (0,0), anchor 1
    assert anchors[2].tolist() == [3, -1, 5, 1]  # location x=4
    assert anchors[6].tolist() == [-1, 3, 1, 5]  # second row: y=4


def test_encode_by_hand():
    anchor = torch.tensor([[0.0, 0.0, 10.0, 20.0]])  # centre (5,10), w 10, h 20
    gt = torch.tensor([[2.0, 4.0, 22.0, 24.0]])  # centre (12,14), w 20, h 20
    t = BoxCoder(SEED_WEIGHTS).encode(anchor, gt)[0].tolist()
    assert t == pytest.approx([10 * 7 / 10, 10 * 4 / 20, 5 * math.log(2), 5 * math.log(1)])


def test_decode_by_hand_and_round_trip():
    anchor = torch.tensor([[0.0, 0.0, 10.0, 20.0]])
    deltas = torch.tensor([[7.0, 2.0, 5 * math.log(2), 0.0]])
    box = BoxCoder(SEED_WEIGHTS).decode(deltas, anchor)[0, 0].tolist()
    assert box == pytest.approx([2.0, 4.0, 22.0, 24.0], abs=1e-5)


@settings(max_examples=60, deadline=None)
@given(
    st.lists(st.floats(0, 500), min_size=2, max_size=2),
    st.floats(1, 300),
    st.floats(1, 300),
    st.floats(-0.5, 0.5),
    st.floats(-0.5, 0.5),
    st.floats(0.2, 5),
    st.floats(0.2, 5),
)
def test_encode_decode_round_trip(xy, w, h, fx, fy, sw, sh):
    ref = torch.tensor([[xy[0], xy[1], xy[0] + w, xy[1] + h]], dtype=torch.float64)
    cx, cy = xy[0] + w / 2 + fx * w, xy[1] + h / 2 + fy * h
    tgt = torch.tensor([[cx - sw * w / 2, cy - sh * h / 2, cx + sw * w / 2, cy + sh * h / 2]], dtype=torch.float64)
    coder = BoxCoder(SEED_WEIGHTS)
    back = coder.decode(coder.encode(ref, tgt), ref)[:, 0]
    assert torch.allclose(back, tgt, rtol=1e-9, atol=1e-6)


def test_decode_clamps_scale_at_log_1000_over_16():
    assert BBOX_XFORM_CLIP == pytest.approx(4.135, abs=5e-4)
    anchor = torch.tensor([[0.0, 0.0, 16.0, 16.0]])
    huge = torch.tensor([[0.0, 0.0, 5 * 10.0, 5 * 10.0]])  # tw / 5 = 10 > 4.135
    box = BoxCoder(SEED_WEIGHTS).decode(huge, anchor)[0, 0]
    assert (box[2] - box[0]).item() == pytest.approx(1000.0, rel=1e-5)  # 16 * exp(4.135) = 1000


def test_clip_to_image():
    boxes = torch.tensor([[-5.0, -3.0, 120.0, 50.0]])
    assert clip_boxes(boxes, 40, 100)[0].tolist() == [0.0, 0.0, 100.0, 40.0]


def test_rpn_assignment_rules_including_best_anchor_of_each_gt():
    # IoU of 2 GT (rows) with 5 anchors (columns)
    iou = torch.tensor(
        [
            [0.80, 0.50, 0.10, 0.20, 0.00],  # GT0: anchor 0 positive by threshold
            [0.00, 0.10, 0.25, 0.29, 0.05],  # GT1: best anchor 3 has only 0.29 -> positive anyway
        ]
    )
    m = match(iou, high=0.7, low=0.3, allow_low_quality=True)
    assert m.tolist() == [0, BETWEEN, BELOW_LOW, 1, BELOW_LOW]
    # without the low-quality rule anchor 3 is a negative
    assert match(iou, 0.7, 0.3, allow_low_quality=False)[3].item() == BELOW_LOW


def test_best_anchor_ties_are_all_positive():
    iou = torch.tensor([[0.4, 0.4, 0.1]])
    assert match(iou, 0.7, 0.3, allow_low_quality=True).tolist() == [0, 0, BELOW_LOW]


def test_box_head_assignment_at_half():
    iou = torch.tensor([[0.5, 0.49, 0.9], [0.6, 0.2, 0.1]])
    assert match(iou, 0.5, 0.5, allow_low_quality=False).tolist() == [1, BELOW_LOW, 0]


@pytest.mark.parametrize(
    "n_pos,n_neg,batch,fraction,exp_pos,exp_neg",
    [
        (1000, 5000, 256, 0.5, 128, 128),  # RPN: 256 per image, up to 50% positive
        (20, 5000, 256, 0.5, 20, 236),  # few positives: negatives fill up
        (400, 3000, 512, 0.25, 128, 384),  # box head: 512 per image, up to 25% positive
        (10, 30, 512, 0.25, 10, 30),  # not enough of either
    ],
)
def test_sampling_counts(n_pos, n_neg, batch, fraction, exp_pos, exp_neg):
    labels = torch.cat([torch.ones(n_pos), torch.zeros(n_neg), -torch.ones(50)])
    pos, neg = sample_balanced(labels, batch, fraction)
    assert (pos.sum().item(), neg.sum().item()) == (exp_pos, exp_neg)
    assert bool((labels[pos] == 1).all()) and bool((labels[neg] == 0).all())


def test_level_mapping():
    # k = floor(4 + log2(sqrt(wh) / 224)), clamped to [2, 5]; returned relative to k_min = 2
    sides = [224.0, 223.0, 112.0, 111.9, 56.0, 10.0, 448.0, 2000.0]
    boxes = torch.tensor([[0.0, 0.0, s, s] for s in sides])
    assert (roi_levels(boxes, 2, 5) + 2).tolist() == [4, 3, 3, 2, 2, 2, 5, 5]


def test_mask_target_is_the_gt_mask_projected_onto_the_proposal():
    from engine.model.roi_heads import project_masks

    gt = torch.zeros((1, 100, 100))
    gt[0, 20:60, 10:30] = 1  # the left half of the box (10,20)-(50,60)
    target = project_masks(gt, torch.tensor([[10.0, 20.0, 50.0, 60.0]]), torch.tensor([0]), 28)[0]
    assert target.shape == (28, 28)
    assert target[:27, :13].min().item() == pytest.approx(1.0)  # left half inside the mask
    assert target[:, 14:].max().item() == pytest.approx(0.0)  # right half outside
    # Column 13 (aligned=False, 2x2 samples per bin of 40/28 px): samples at x = 10 + 13.25 * 40/28 = 28.93
    # (between pixels 28 and 29, both 1) and x = 10 + 13.75 * 40/28 = 29.64 (between 29 -> 1 and 30 -> 0,
    # so 1 - 0.64 = 0.36); their mean is 0.68.
    assert target[10, 13].item() == pytest.approx((1 + (1 - (10 + 13.75 * 40 / 28 - 29))) / 2, abs=1e-4)


def test_per_image_reduction_is_the_mean_of_image_means():
    from engine.model.losses import reduce_loss

    items = torch.tensor([1.0, 3.0, 10.0])  # image 0 has two items, image 1 one
    index = torch.tensor([0, 0, 1])
    assert reduce_loss(items, index, 2, "batch").item() == pytest.approx(14 / 3)
    assert reduce_loss(items, index, 2, "image").item() == pytest.approx((2 + 10) / 2)
    assert reduce_loss(items, index, 3, "image").item() == pytest.approx((2 + 10 + 0) / 3)  # an empty image
