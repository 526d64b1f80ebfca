"""Paste 28x28 mask probabilities into full images, all masks at once, with no per-mask Python loop.

The result equals torchvision's ``paste_masks_in_image`` (pad the mask by one pixel, grow the box by
30/28, truncate it to integers, bilinearly resize the mask to the box with align_corners=False, copy
the part inside the image): bilinear resizing is separable, so each pasted mask is Ry @ M @ Rx^T where
Ry (H,30) and Rx (W,30) hold the interpolation weights of each image row / column and are zero
outside the box. No host-device synchronisation happens here.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor


def expand_boxes_to_int(boxes: Tensor, scale: float) -> Tensor:
    """(N,4) float -> (N,4) int64: boxes grown about their centre by ``scale``, truncated toward 0."""
    half_w = (boxes[:, 2] - boxes[:, 0]) * 0.5 * scale
    half_h = (boxes[:, 3] - boxes[:, 1]) * 0.5 * scale
    ctr_x = (boxes[:, 2] + boxes[:, 0]) * 0.5
    ctr_y = (boxes[:, 3] + boxes[:, 1]) * 0.5
    return torch.stack((ctr_x - half_w, ctr_y - half_h, ctr_x + half_w, ctr_y + half_h), 1).to(torch.int64)


def interpolation_matrix(start: Tensor, end: Tensor, source_size: int, image_size: int) -> Tensor:
    """Integer box sides start/end (N,) -> (N, image_size, source_size) bilinear weights (align_corners=False).

    Image pixel x maps to box pixel j = x - start of a box of max(end - start + 1, 1) pixels; weights are
    zero for x outside [start, end].
    """
    device = start.device
    length = (end - start + 1).clamp(min=1).to(torch.float32)
    x = torch.arange(image_size, device=device)
    j = (x[None, :] - start[:, None]).to(torch.float32)
    inside = (x[None, :] >= start[:, None]) & (x[None, :] <= end[:, None])
    scale = float(source_size) / length
    src = ((j + 0.5) * scale[:, None] - 0.5).clamp(min=0)
    i0 = src.floor().clamp(max=source_size - 1)
    lam1 = (src - i0).clamp(0, 1) * inside
    lam0 = (1 - (src - i0).clamp(0, 1)) * inside
    i0 = i0.to(torch.int64)
    i1 = (i0 + 1).clamp(max=source_size - 1)
    weights = torch.zeros((len(start), image_size, source_size), device=device)
    weights.scatter_add_(2, i0[..., None], lam0[..., None])
    weights.scatter_add_(2, i1[..., None], lam1[..., None])
    return weights


def paste_masks(masks: Tensor, boxes: Tensor, height: int, width: int, chunk: int = 32) -> Tensor:
    """masks (N,M,M) float, boxes (N,4) xyxy in image pixels -> (N,H,W) float32 pasted masks."""
    n, m = masks.shape[0], masks.shape[-1]
    out = masks.new_empty((n, height, width), dtype=torch.float32)
    if n == 0:
        return out
    padded = F.pad(masks.to(torch.float32), (1, 1, 1, 1))
    box = expand_boxes_to_int(boxes.to(torch.float32), float(m + 2) / m)
    # In float32 even under autocast: the output is float32 (autocast would run bmm in half precision and
    # refuse the float32 ``out``), and a mask threshold of 0.5 should not move with the precision.
    with torch.autocast(masks.device.type, enabled=False):
        for s in range(0, n, chunk):  # bounded temporaries; the product itself is batched
            sl = slice(s, s + chunk)
            ry = interpolation_matrix(box[sl, 1], box[sl, 3], m + 2, height)
            rx = interpolation_matrix(box[sl, 0], box[sl, 2], m + 2, width)
            torch.bmm(ry, torch.bmm(padded[sl], rx.transpose(1, 2)), out=out[sl])
    return out
