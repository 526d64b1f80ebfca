"""The values that cross between the engine and its callers (the app, the CLI): what the sliders set
(``PredictSettings``) and can reach (``Reach``, for the idle precompute), a detection's mask as a crop
(``InstanceMask``) and a ``Prediction``.

numpy only: the app's Session, editing and drawing code use these without importing torch.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np


@dataclass(frozen=True)
class PredictSettings:
    """What the sliders set. ``None`` means: the model's own configuration."""

    score_threshold: float = 0.5
    box_nms_iou: float | None = None
    rpn_nms_iou: float | None = None
    num_proposals: int | None = None  # proposals kept after the RPN's NMS (fed to the box head)
    mask_threshold: float = 0.5
    max_detections: int | None = None


@dataclass(frozen=True)
class Reach:
    """What the sliders can reach, for the idle precompute: the lowest score threshold, the box-NMS and RPN-NMS
    values (exactly as the sliders send them), and the most proposals and detections."""

    min_score: float = 0.0
    box_nms_values: tuple[float, ...] = ()
    rpn_nms_values: tuple[float, ...] = ()
    max_proposals: int = 0  # 0: the current setting
    max_detections: int = 0


@dataclass
class InstanceMask:
    """A detection's mask as a crop: ``mask`` (h,w) bool placed at (x0, y0) of the image."""

    x0: int
    y0: int
    mask: np.ndarray

    @property
    def area(self) -> int:
        return int(self.mask.sum())

    def full(self, height: int, width: int) -> np.ndarray:
        """(H,W) bool."""
        out = np.zeros((height, width), dtype=bool)
        h, w = self.mask.shape
        out[self.y0 : self.y0 + h, self.x0 : self.x0 + w] = self.mask
        return out


@dataclass
class Prediction:
    """Everything the app draws, in original image pixels, best score first."""

    height: int
    width: int
    boxes: np.ndarray  # (D,4) float32 xyxy
    scores: np.ndarray  # (D,) float32
    labels: np.ndarray  # (D,) int64, 1..K-1
    masks: list[InstanceMask]
    proposals: np.ndarray  # (P,4) float32 xyxy, best objectness first
    proposal_scores: np.ndarray  # (P,) float32 objectness probability
    keys: np.ndarray  # (D,) int64: a detection's identity within this image: (RPN candidate, class)
    settings: PredictSettings
    timings_ms: dict[str, float] = field(default_factory=dict)
    # (D,) float32 in [0,1]: how decisive each detection's mask is (engine.quality.mask_confidence of the mask
    # head's probabilities of its class); empty where the producer computed none
    mask_quality: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.float32))

    def __len__(self) -> int:
        return len(self.scores)
