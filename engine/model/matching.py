"""Assignment of anchors / proposals to ground truth, and balanced sampling (seed sections 5 and 6)."""

from __future__ import annotations

import torch
from torch import Tensor

BELOW_LOW = -1  # negative (background)
BETWEEN = -2  # ignored


def match(iou: Tensor, high: float, low: float, allow_low_quality: bool) -> Tensor:
    """iou (G,N) -> (N,) int64 index of the matched GT, or BELOW_LOW (< low) / BETWEEN (low <= iou < high).

    With ``allow_low_quality`` every GT's best prediction(s) (ties included) are matched too, as in
    the seed's "also positive, for each GT, its best anchor".
    """
    if iou.numel() == 0:
        return torch.full((iou.shape[1],), BELOW_LOW, dtype=torch.int64, device=iou.device)
    best_iou, matches = iou.max(dim=0)
    original = matches.clone() if allow_low_quality else None
    matches[best_iou < low] = BELOW_LOW
    matches[(best_iou >= low) & (best_iou < high)] = BETWEEN
    if original is not None:
        best_per_gt = iou.max(dim=1).values
        _, best_preds = torch.nonzero(iou == best_per_gt[:, None], as_tuple=True)
        matches[best_preds] = original[best_preds]
    return matches


def sample_generator(target: dict, stage: int, device: torch.device) -> torch.Generator | None:
    """A generator seeded from ``target["sample_seed"]`` and the stage (0 RPN, 1 RoI, 2 resize), or None.

    Seeding per image makes sampling independent of how images are batched or spread over processes,
    and a resumed run draws exactly what the uninterrupted one would have.
    """
    seed = target.get("sample_seed") if target is not None else None
    if seed is None:
        return None
    return torch.Generator(device=device).manual_seed((int(seed) * 3 + stage) % (2**63))


def sample_balanced(
    labels: Tensor, batch_size: int, positive_fraction: float, generator: torch.Generator | None = None
) -> tuple[Tensor, Tensor]:
    """labels (N,) with 1+ positive, 0 negative, -1 ignore -> (pos_mask, neg_mask) bool (N,).

    At most ``batch_size * positive_fraction`` positives, negatives fill the rest, both at random
    (``generator``, else torch's global RNG: positives drawn first, then negatives, one randperm each).
    """
    positive = torch.where(labels >= 1)[0]
    negative = torch.where(labels == 0)[0]
    num_pos = min(positive.numel(), int(batch_size * positive_fraction))
    num_neg = min(negative.numel(), batch_size - num_pos)
    pos_idx = positive[torch.randperm(positive.numel(), device=labels.device, generator=generator)[:num_pos]]
    neg_idx = negative[torch.randperm(negative.numel(), device=labels.device, generator=generator)[:num_neg]]
    pos_mask = torch.zeros_like(labels, dtype=torch.bool)
    neg_mask = torch.zeros_like(labels, dtype=torch.bool)
    pos_mask[pos_idx] = True
    neg_mask[neg_idx] = True
    return pos_mask, neg_mask
