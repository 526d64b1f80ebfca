"""Box coding (seed section 4) and small box helpers. Boxes are (N,4) float xyxy in pixels."""

from __future__ import annotations

import math

import torch
from torch import Tensor

# log(1000 / 16): the largest scale change a predicted delta may ask for before exp.
BBOX_XFORM_CLIP = math.log(1000.0 / 16)


class BoxCoder:
    """Encodes boxes relative to reference boxes with weights (wx, wy, ww, wh); the seed's are (10,10,5,5)."""

    def __init__(self, weights: tuple[float, float, float, float], clip: float = BBOX_XFORM_CLIP) -> None:
        self.weights = tuple(float(w) for w in weights)
        self.clip = clip

    def encode(self, reference: Tensor, target: Tensor) -> Tensor:
        """reference (N,4), target (N,4) xyxy -> deltas (N,4) = (tx, ty, tw, th)."""
        wx, wy, ww, wh = self.weights
        ref_w = reference[:, 2] - reference[:, 0]
        ref_h = reference[:, 3] - reference[:, 1]
        ref_x = reference[:, 0] + 0.5 * ref_w
        ref_y = reference[:, 1] + 0.5 * ref_h
        tgt_w = target[:, 2] - target[:, 0]
        tgt_h = target[:, 3] - target[:, 1]
        tgt_x = target[:, 0] + 0.5 * tgt_w
        tgt_y = target[:, 1] + 0.5 * tgt_h
        return torch.stack(
            (
                wx * (tgt_x - ref_x) / ref_w,
                wy * (tgt_y - ref_y) / ref_h,
                ww * torch.log(tgt_w / ref_w),
                wh * torch.log(tgt_h / ref_h),
            ),
            dim=1,
        )

    def decode(self, deltas: Tensor, reference: Tensor) -> Tensor:
        """deltas (N,4k) on reference (N,4) -> boxes (N,k,4); tw/ww and th/wh clamped at ``clip`` before exp."""
        reference = reference.to(deltas.dtype)
        wx, wy, ww, wh = self.weights
        ref_w = reference[:, 2] - reference[:, 0]
        ref_h = reference[:, 3] - reference[:, 1]
        ref_x = reference[:, 0] + 0.5 * ref_w
        ref_y = reference[:, 1] + 0.5 * ref_h
        d = deltas.reshape(deltas.shape[0], -1, 4)
        dx = d[..., 0] / wx
        dy = d[..., 1] / wy
        dw = (d[..., 2] / ww).clamp(max=self.clip)
        dh = (d[..., 3] / wh).clamp(max=self.clip)
        ctr_x = dx * ref_w[:, None] + ref_x[:, None]
        ctr_y = dy * ref_h[:, None] + ref_y[:, None]
        half_w = 0.5 * torch.exp(dw) * ref_w[:, None]
        half_h = 0.5 * torch.exp(dh) * ref_h[:, None]
        return torch.stack((ctr_x - half_w, ctr_y - half_h, ctr_x + half_w, ctr_y + half_h), dim=2)


def clip_boxes(boxes: Tensor, height: int, width: int) -> Tensor:
    """(...,4) xyxy clipped to [0,width] x [0,height]."""
    x = boxes[..., 0::2].clamp(min=0, max=width)
    y = boxes[..., 1::2].clamp(min=0, max=height)
    return torch.stack((x[..., 0], y[..., 0], x[..., 1], y[..., 1]), dim=-1)


def nonsmall_mask(boxes: Tensor, min_size: float) -> Tensor:
    """(N,4) -> (N,) bool, True where both sides are >= min_size."""
    return ((boxes[:, 2] - boxes[:, 0]) >= min_size) & ((boxes[:, 3] - boxes[:, 1]) >= min_size)


def box_area(boxes: Tensor) -> Tensor:
    """(N,4) -> (N,) areas."""
    return (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])


def scale_boxes(boxes: Tensor, from_size: tuple[int, int], to_size: tuple[int, int]) -> Tensor:
    """(N,4) boxes in an image of from_size (h,w) -> the same boxes in to_size (h,w), float32 ratios."""
    ratio_h = torch.tensor(to_size[0], dtype=torch.float32) / torch.tensor(from_size[0], dtype=torch.float32)
    ratio_w = torch.tensor(to_size[1], dtype=torch.float32) / torch.tensor(from_size[1], dtype=torch.float32)
    ratios = torch.stack((ratio_w, ratio_h, ratio_w, ratio_h)).to(boxes.device)
    return boxes * ratios
