"""How far a detection's mask can be trusted, from the mask head's own probabilities (issue 13, the review
queue): a reviewer walks the predictions from least to most confident, so this number orders the work.

``mask_confidence`` takes the (N, M, M) mask-head probabilities of N detections (each for its own class, in
the head's M x M box frame) and gives (N,) values in [0, 1]: 1 where every pixel of the box is decisively
inside or outside the object, 0 where the head sits at 0.5 everywhere (it cannot tell where the object ends).
The first definition is the mean decisiveness |2p - 1| over the box; the review-queue work measures it
against alternatives on held-out images and may replace the formula, keeping the signature.
"""

from __future__ import annotations

import torch


def mask_confidence(probs: torch.Tensor) -> torch.Tensor:
    """(N, M, M) mask probabilities -> (N,) float32 confidence in [0, 1]."""
    if probs.numel() == 0:
        return torch.zeros(probs.shape[:1], dtype=torch.float32, device=probs.device)
    return (2 * probs.float() - 1).abs().flatten(1).mean(1)
