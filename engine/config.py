"""Frozen configuration dataclasses. Defaults are the seed's numbers (../shared/SEED_EN.md).

Where the seed is silent the standard (torchvision / Detectron2) choice is used and marked.
Everything is plain data: JSON round-trips through ``to_dict`` / ``from_dict``.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

BACKBONE_DEPTHS = {"resnet18": (2, 2, 2, 2), "resnet34": (3, 4, 6, 3), "resnet50": (3, 4, 6, 3)}


@dataclass(frozen=True)
class ModelConfig:
    """Hyper-parameters of the network; ``num_classes`` counts the background, as torchvision does."""

    num_classes: int = 2
    # Backbone (seed section 2).
    backbone: str = "resnet18"
    backbone_norm: str = "bn"  # "bn" (seed) | "frozen_bn" (torchvision) | "gn"
    frozen_stages: int = 0  # 0: all trainable; 1: stem frozen; k: stem + layer1..layer(k-1) frozen
    gradient_checkpointing: bool = False
    # FPN (seed section 3).
    fpn_channels: int = 256
    fpn_norm: str = "gn"  # "gn" (seed) | "none" (torchvision: plain convs with bias)
    fpn_groups: int = 32
    fpn_extra_pool: bool = False  # P6 by max-pool of P5 (torchvision); the seed uses P2..P5
    # Input transform (standard).
    min_size: tuple[int, ...] = (800,)
    max_size: int = 1333
    image_mean: tuple[float, float, float] = (0.485, 0.456, 0.406)
    image_std: tuple[float, float, float] = (0.229, 0.224, 0.225)
    size_divisible: int = 32
    # Anchors (seed section 5): ratio = w / h, as the seed writes it (torchvision's ratio is h / w).
    anchor_sizes: tuple[int, ...] = (32, 64, 128, 256)
    aspect_ratios: tuple[float, ...] = (0.5, 1.0, 2.0)
    round_anchors: bool = False  # torchvision rounds the base anchors to integers
    # RPN (seed section 5).
    rpn_fg_iou: float = 0.7
    rpn_bg_iou: float = 0.3
    rpn_batch_per_image: int = 256
    rpn_positive_fraction: float = 0.5
    rpn_pre_nms_top_n_train: int = 2000
    rpn_pre_nms_top_n_test: int = 1000
    rpn_post_nms_top_n_train: int = 1000
    rpn_post_nms_top_n_test: int = 1000
    rpn_nms_iou: float = 0.7
    rpn_score_threshold: float = 0.0
    rpn_min_box_size: float = 1e-3
    rpn_box_weights: tuple[float, float, float, float] = (1.0, 1.0, 1.0, 1.0)  # standard
    rpn_box_beta: float = 1.0 / 9.0
    rpn_box_loss_norm: str = "positives"  # seed: divide by #positives; torchvision: "sampled"
    loss_reduction: str = "image"  # normalise per image, then average (DDP-consistent); torchvision: "batch"
    # RoI heads (seed section 6).
    roi_sampling_ratio: int = 2
    box_roi_size: int = 7
    mask_roi_size: int = 14
    representation_size: int = 1024
    mask_head_layers: int = 4
    mask_head_channels: int = 256
    box_fg_iou: float = 0.5
    box_bg_iou: float = 0.5
    box_batch_per_image: int = 512
    box_positive_fraction: float = 0.25
    box_weights: tuple[float, float, float, float] = (10.0, 10.0, 5.0, 5.0)
    box_beta: float = 1.0 / 9.0  # standard (torchvision)
    box_score_threshold: float = 0.05
    box_nms_iou: float = 0.5
    box_min_size: float = 1e-2
    detections_per_image: int = 100
    mask_threshold: float = 0.5

    def __post_init__(self) -> None:
        if self.num_classes < 2:
            raise ValueError("num_classes counts the background and must be >= 2")
        if self.backbone not in BACKBONE_DEPTHS:
            raise ValueError(f"backbone must be one of {sorted(BACKBONE_DEPTHS)}, got {self.backbone!r}")
        if self.backbone_norm not in ("bn", "frozen_bn", "gn"):
            raise ValueError(f"backbone_norm must be bn, frozen_bn or gn, got {self.backbone_norm!r}")
        if self.fpn_norm not in ("gn", "none"):
            raise ValueError(f"fpn_norm must be gn or none, got {self.fpn_norm!r}")
        if self.loss_reduction not in ("image", "batch"):
            raise ValueError("loss_reduction must be 'image' or 'batch'")
        if self.rpn_box_loss_norm not in ("positives", "sampled"):
            raise ValueError("rpn_box_loss_norm must be 'positives' or 'sampled'")
        n_levels = 4 + int(self.fpn_extra_pool)
        if len(self.anchor_sizes) != n_levels:
            raise ValueError(f"anchor_sizes needs one size per FPN level ({n_levels}), got {self.anchor_sizes}")

    @property
    def num_anchors(self) -> int:
        return len(self.aspect_ratios)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ModelConfig:
        known = {f.name: f for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - set(known))
        if unknown:
            raise ValueError(f"unknown ModelConfig fields: {unknown}")
        kwargs = {k: tuple(v) if isinstance(v, list) else v for k, v in data.items()}
        return cls(**kwargs)

    def replace(self, **changes: Any) -> ModelConfig:
        return dataclasses.replace(self, **changes)


def torchvision_like(num_classes: int = 91, backbone: str = "resnet50") -> ModelConfig:
    """The configuration torchvision's ``maskrcnn_resnet50_fpn`` uses (frozen BN, plain FPN + P6)."""
    return ModelConfig(
        num_classes=num_classes,
        backbone=backbone,
        backbone_norm="frozen_bn",
        fpn_norm="none",
        fpn_extra_pool=True,
        anchor_sizes=(32, 64, 128, 256, 512),
        aspect_ratios=(2.0, 1.0, 0.5),  # torchvision's (0.5, 1, 2) written as w / h
        round_anchors=True,
        rpn_post_nms_top_n_train=2000,
        rpn_box_loss_norm="sampled",
        loss_reduction="batch",
    )


AUGMENT_FIELDS = ("vflip", "gamma_jitter", "contrast_jitter", "brightness_jitter", "invert", "grayscale", "blur")
# Named sets of TrainConfig's augmentation fields (the rest keep their defaults). "microscopy": cells and nuclei
# have no up or down, and their images differ in exposure, stain and focus far more than in shape.
AUGMENT_PRESETS: dict[str, dict[str, float]] = {
    "flips": {},
    "microscopy": {
        "vflip": 0.5,
        "gamma_jitter": 0.7,
        "contrast_jitter": 0.3,
        "brightness_jitter": 0.1,
        "invert": 0.3,
        "grayscale": 0.3,
        "blur": 0.3,
    },
}


def augment_preset_of(train_config: dict[str, Any] | None) -> str | None:
    """The name of the AUGMENT_PRESETS entry a saved TrainConfig (as a dict) was trained with, None if none fits."""
    if not train_config:
        return None
    defaults = {f.name: f.default for f in dataclasses.fields(TrainConfig) if f.name in AUGMENT_FIELDS}
    used = {name: float(train_config.get(name, default)) for name, default in defaults.items()}
    for name, preset in AUGMENT_PRESETS.items():
        if used == {**defaults, **preset}:
            return name
    return None


@dataclass(frozen=True)
class TrainConfig:
    """How to train (independent of the network). SGD + warm-up is torchvision's detection recipe."""

    iterations: int = 1000
    batch_size: int = 2  # the global batch: split over processes under torchrun
    optimizer: str = "sgd"  # "sgd" | "adamw"
    lr: float = 0.01
    momentum: float = 0.9
    weight_decay: float = 1e-4
    warmup_iters: int = 100
    warmup_factor: float = 0.001
    schedule: str = "cosine"  # "cosine" | "step" (x0.1 at each lr_steps fraction of the run)
    lr_steps: tuple[float, ...] = (0.67, 0.89)
    grad_clip: float = 10.0  # max gradient norm; 0 disables
    amp: bool = True  # float16 autocast + loss scaling on CUDA (ignored on the CPU)
    hflip: float = 0.5  # probability of a horizontal flip per sample
    vflip: float = 0.0
    # Intensity augmentation (engine.data.augment.photometric.PhotometricSettings); all 0: off.
    gamma_jitter: float = 0.0
    contrast_jitter: float = 0.0
    brightness_jitter: float = 0.0
    invert: float = 0.0
    grayscale: float = 0.0
    blur: float = 0.0
    seed: int = 0
    val_every: int = 0  # iterations between validations (0: at the end only)
    checkpoint_every: int = 0  # iterations between checkpoints (0: at the end only)
    max_bad_steps: int = 20  # consecutive non-finite losses before giving up

    def __post_init__(self) -> None:
        if self.iterations < 1 or self.batch_size < 1:
            raise ValueError("iterations and batch_size must be >= 1")
        if self.optimizer not in ("sgd", "adamw"):
            raise ValueError(f"optimizer must be sgd or adamw, got {self.optimizer!r}")
        if self.schedule not in ("cosine", "step"):
            raise ValueError(f"schedule must be cosine or step, got {self.schedule!r}")
        if not self.lr > 0:
            raise ValueError("lr must be > 0")
        self.photometric()  # raises ValueError for an out-of-range strength

    def photometric(self):  # noqa: ANN201 (engine.data.augment.photometric.PhotometricSettings; imported lazily)
        """The intensity augmentation these settings ask for."""
        from engine.data.augment.photometric import PhotometricSettings

        return PhotometricSettings(
            gamma=self.gamma_jitter,
            contrast=self.contrast_jitter,
            brightness=self.brightness_jitter,
            invert=self.invert,
            grayscale=self.grayscale,
            blur=self.blur,
        )

    def replace(self, **changes: Any) -> TrainConfig:
        return dataclasses.replace(self, **changes)
