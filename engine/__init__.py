"""Mask R-CNN Studio engine: the seed's network, data, training and evaluation. Never imports Qt.

``from engine import MaskRCNN, ModelConfig`` works; heavy modules (torch) load on first use so that
``import engine.data`` stays light.
"""

from __future__ import annotations

from typing import Any

__all__ = ["MaskRCNN", "ModelConfig", "TrainConfig"]


def __getattr__(name: str) -> Any:
    if name == "MaskRCNN":
        from engine.model.mask_rcnn import MaskRCNN

        return MaskRCNN
    if name in ("ModelConfig", "TrainConfig"):
        from engine import config

        return getattr(config, name)
    raise AttributeError(f"module 'engine' has no attribute {name!r}")
