"""The review queue, Qt-free: an image's shown predictions from least to most confident, and which of them a
person has decided (accepted, rejected, relabelled or replaced: each of these hides the prediction).

A prediction is known by its key (``Prediction.keys``: its identity within the image, stable across slider
moves), so the queue survives the rows of the instance list being renumbered after every decision. Tab and
Shift+Tab move among the undecided ones (skipping for now is not deciding); the queue is done when none is
left, and only then does the image count as reviewed.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from engine.quality import combined_confidence
from engine.structures import Prediction


def confidences(prediction: Prediction) -> np.ndarray:
    """(D,) the confidence of each detection: its score times its mask quality where the engine gave one
    (``Prediction.mask_quality``; a prediction without it is ranked by its score)."""
    return combined_confidence(prediction.scores, getattr(prediction, "mask_quality", None))


@dataclass
class ReviewQueue:
    """Detection keys, least confident first; ``position`` the one on screen; ``decided`` the keys gone."""

    keys: list[int]
    confidence: dict[int, float] = field(default_factory=dict)
    position: int = 0
    decided: set[int] = field(default_factory=set)

    @classmethod
    def build(cls, prediction: Prediction, shown: list[int]) -> ReviewQueue:
        """The shown detections (indices into ``prediction``) ordered by confidence, least first (ties: the
        instance list's order)."""
        conf = confidences(prediction)
        order = sorted(range(len(shown)), key=lambda row: (conf[shown[row]], row))
        keys = [int(prediction.keys[shown[row]]) for row in order]
        return cls(keys, {int(prediction.keys[i]): float(conf[i]) for i in shown})

    def __len__(self) -> int:
        return len(self.keys)

    @property
    def remaining(self) -> int:
        return sum(1 for k in self.keys if k not in self.decided)

    @property
    def done(self) -> bool:
        return self.remaining == 0

    def current(self) -> int | None:
        """The key on screen (None when the queue is done)."""
        if self.done or not self.keys:
            return None
        return self.keys[self.position]

    def update(self, shown_keys: set[int]) -> bool:
        """What is shown now: a queued key no longer shown has been decided (and one shown again, after an undo,
        is not any more). True when the one on screen was decided."""
        current = self.current()
        self.decided = {k for k in self.keys if k not in shown_keys}
        return current is not None and current in self.decided

    def step(self, delta: int) -> int | None:
        """Move to the next (+1) or previous (-1) undecided key, round the end; returns it (None: done)."""
        if self.done:
            return None
        n = len(self.keys)
        for offset in range(1, n + 1):
            index = (self.position + delta * offset) % n
            if self.keys[index] not in self.decided:
                self.position = index
                return self.keys[index]
        return None

    def settle(self) -> int | None:
        """After a decision: stay if the one on screen is still undecided, else go on to the next."""
        current = self.current()
        if current is not None and current not in self.decided:
            return current
        return self.step(1)

    def rank(self) -> int:
        """1-based place of the one on screen among the queue (for "3 / 12")."""
        return self.position + 1
