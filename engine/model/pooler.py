"""Multi-scale RoIAlign (seed section 6): each box pooled from the FPN level its size maps to."""

from __future__ import annotations

import math
from concurrent.futures import ThreadPoolExecutor

import torch
from torch import Tensor
from torchvision.ops import roi_align

from engine.model.box_utils import box_area


def roi_levels(boxes: Tensor, k_min: int, k_max: int, canonical_size: float = 224.0, eps: float = 1e-6) -> Tensor:
    """(N,4) -> (N,) int64 level index from 0 (= P_k_min): floor(4 + log2(sqrt(wh)/224) + eps), clamped."""
    s = torch.sqrt(box_area(boxes))
    k = torch.floor(4 + torch.log2(s / canonical_size) + torch.tensor(eps, dtype=s.dtype))
    return (k.clamp(min=k_min, max=k_max).to(torch.int64)) - k_min


def feature_scale(feature_hw: tuple[int, int], image_hw: tuple[int, int]) -> float:
    """The power-of-two scale of a feature map relative to the (largest unpadded) image: 1 / the smallest power-of-two
    stride at which the feature map covers the image on both sides.

    The batch is padded to a multiple of the largest stride, so feature x stride is the padded size, at least the
    image. Rounding feature / image per side instead fails where the padding is a large part of a side (an image
    66 px high padded to 96: 24 / 66 rounds to 1/2 for a stride of 4); the stride is only ambiguous where both sides
    are at most half the padding (16 px or less), and the larger side decides."""
    stride = 1
    while any(f * stride < i for f, i in zip(feature_hw, image_hw)):
        stride *= 2
        if stride > 2**20:
            raise ValueError(f"feature map {feature_hw} is not a power-of-two scale of image {image_hw}")
    return 1.0 / stride


_POOL: ThreadPoolExecutor | None = None
_MIN_ROIS_PER_THREAD = 32


def parallel_roi_align(feature: Tensor, rois: Tensor, output_size: int, scale: float, sampling_ratio: int) -> Tensor:
    """torchvision's roi_align (aligned=False), its RoIs split over torch's intra-op threads.

    The CPU kernel runs on one thread; each RoI is independent, so chunks computed side by side give the
    same numbers in a fraction of the time.
    """
    global _POOL
    threads = torch.get_num_threads()
    n_chunks = min(threads, rois.shape[0] // _MIN_ROIS_PER_THREAD)
    if feature.device.type != "cpu" or n_chunks < 2:
        return roi_align(feature, rois, output_size, scale, sampling_ratio, aligned=False)
    if _POOL is None or _POOL._max_workers < n_chunks:
        _POOL = ThreadPoolExecutor(max_workers=threads, thread_name_prefix="roi_align")
    parts = _POOL.map(
        lambda r: roi_align(feature, r, output_size, scale, sampling_ratio, aligned=False), rois.chunk(n_chunks)
    )
    return torch.cat(list(parts))


def multiscale_roi_align(
    features: list[Tensor],
    boxes: list[Tensor],
    image_sizes: list[tuple[int, int]],
    output_size: int,
    sampling_ratio: int,
) -> Tensor:
    """features [(B,C,H_l,W_l)] of P2.., boxes [(N_i,4)] per image -> (sum N_i, C, out, out), aligned=False."""
    max_hw = (max(s[0] for s in image_sizes), max(s[1] for s in image_sizes))
    scales = [feature_scale(tuple(f.shape[-2:]), max_hw) for f in features]
    k_min = round(-math.log2(scales[0]))
    k_max = round(-math.log2(scales[-1]))
    all_boxes = torch.cat(boxes)
    batch_idx = torch.cat(
        [torch.full((len(b), 1), i, dtype=all_boxes.dtype, device=all_boxes.device) for i, b in enumerate(boxes)]
    )
    rois = torch.cat((batch_idx, all_boxes), dim=1)
    if len(features) == 1:
        return parallel_roi_align(features[0], rois, output_size, scales[0], sampling_ratio)
    levels = roi_levels(all_boxes, k_min, k_max)
    channels = features[0].shape[1]
    result = features[0].new_zeros((rois.shape[0], channels, output_size, output_size))
    for level, (feature, scale) in enumerate(zip(features, scales)):
        idx = torch.where(levels == level)[0]
        if idx.numel():
            result[idx] = parallel_roi_align(feature, rois[idx], output_size, scale, sampling_ratio).to(result.dtype)
    return result
