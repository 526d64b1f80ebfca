"""How far a detection's mask can be trusted, from the mask head's own probabilities (issue 13, the review
queue): a reviewer walks the predictions from least to most confident, so this number orders the work.

``mask_confidence`` takes the (N, M, M) mask-head probabilities of N detections (each for its own class, in
the head's M x M box frame) and gives (N,) values in [0, 1]: 1 where every pixel of the box is decisively
inside or outside the object, 0 where the head sits at 0.5 everywhere (it cannot tell where the object ends).
The first definition is the mean decisiveness |2p - 1| over the box; the review-queue work measures it
against alternatives on held-out images and may replace the formula, keeping the signature.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:  # torch only for the type: the app's review queue imports this module's numpy half
    import torch


def mask_confidence(probs: torch.Tensor) -> torch.Tensor:
    """(N, M, M) mask probabilities -> (N,) float32 confidence in [0, 1]."""
    if probs.numel() == 0:
        import torch

        return torch.zeros(probs.shape[:1], dtype=torch.float32, device=probs.device)
    return (2 * probs.float() - 1).abs().flatten(1).mean(1)


def combined_confidence(scores: np.ndarray, mask_quality: np.ndarray | None) -> np.ndarray:
    """(D,) scores and (D,) mask qualities (None: not computed, e.g. a prediction from before mask quality was
    added) -> (D,) float64 confidence the review queue sorts by: the product, so that either a doubtful class or
    a doubtful outline puts a detection early (measured in benchmarks/mask_quality.py, docs/WALKTHROUGH.md)."""
    scores = np.asarray(scores, dtype=np.float64)
    if mask_quality is None or len(mask_quality) != len(scores):
        return scores
    return scores * np.clip(np.asarray(mask_quality, dtype=np.float64), 0.0, 1.0)


def expected_work(confidences: np.ndarray) -> float:
    """The corrections an image is expected to need: the sum over its shown predictions of (1 - confidence)
    (a sure prediction costs a glance, a doubtful one a fix); what the image list sorts by after Predict All."""
    values = np.asarray(confidences, dtype=np.float64)
    return float(np.clip(1.0 - values, 0.0, 1.0).sum())
