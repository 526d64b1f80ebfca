"""Frozen configuration dataclasses. Defaults are the seed's numbers (../shared/SEED_EN.md).

Where the seed is silent the standard (torchvision / Detectron2) choice is used and marked.
Everything is plain data: JSON round-trips through ``to_dict`` / ``from_dict``. A field made with ``setting`` carries
the help of its ``python -m engine train`` flag (engine.cli.flags): every TrainConfig and AugmentConfig field, and
the ModelConfig fields a training run may set.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

BACKBONE_DEPTHS = {"resnet18": (2, 2, 2, 2), "resnet34": (3, 4, 6, 3), "resnet50": (3, 4, 6, 3)}
SCALE_POLICIES = ("short-side", "pixel-scale")  # ModelConfig.scale_policy


def setting(default: Any, help: str, **extra: Any) -> Any:  # noqa: A002 (argparse's word)
    """A dataclass field with the text of its command-line flag (engine.cli.flags makes the flag from it).

    ``extra``: ``flag`` (the flag's name when not the field's), ``choices``, ``range`` (lowest, highest: either None
    for no bound; checked by ``check_ranges``, each value of a tuple), ``above`` (True: the lowest itself is refused),
    ``changes`` (a ModelConfig part the flag rebuilds, so it is refused with --weights).
    """
    return field(default=default, metadata={"help": help, **extra})


def bounded(default: Any, low: float | None, high: float | None, above: bool = False) -> Any:
    """A dataclass field that is no flag but has a ``range`` (checked by ``check_ranges``, e.g. read from a file)."""
    return field(default=default, metadata={"range": (low, high), "above": above})


def range_text(metadata: Any) -> str:
    """A field's allowed values in words: "0 to 1", "at least 1", "above 0"."""
    low, high = metadata["range"]
    if metadata.get("above"):
        text = f"above {low:g}"
        return text if high is None else f"{text} and at most {high:g}"
    if high is None:
        return f"at least {low:g}"
    return f"{low:g} to {high:g}" if low is not None else f"at most {high:g}"


def in_range(value: Any, metadata: Any) -> bool:
    """Whether ``value`` is a number (not NaN, not a bool) within the field's ``range``."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return False
    low, high = metadata["range"]
    if low is not None and not (value > low if metadata.get("above") else value >= low):
        return False
    return (high is None or value <= high) and value == value


def check_ranges(config: Any, prefix: Any = None) -> None:
    """ValueError for the first field of dataclass ``config`` with a value (any value of a tuple) outside its
    ``range``, or not a number; ``prefix(field)`` starts the message."""
    for f in dataclasses.fields(config):
        if "range" not in f.metadata:
            continue
        value = getattr(config, f.name)
        values = value if isinstance(value, tuple) and value else (value,)
        if not all(in_range(v, f.metadata) for v in values):
            start = prefix(f) if prefix else ""
            raise ValueError(f"{start}{f.name} out of range: {value!r} (allowed {range_text(f.metadata)})")


@dataclass(frozen=True)
class ModelConfig:
    """Hyper-parameters of the network; ``num_classes`` counts the background, as torchvision does."""

    num_classes: int = 2
    # Backbone (seed section 2).
    backbone: str = setting(
        "resnet18",
        "ResNet of a new model (training from scratch)",
        choices=tuple(BACKBONE_DEPTHS),
        changes="the backbone",
    )
    backbone_norm: str = setting(  # "bn" (seed) | "frozen_bn" (torchvision) | "gn"
        "bn",
        "normalisation in the ResNet when training from scratch: bn (the seed's BatchNorm) or gn "
        "(GroupNorm: steadier with batches of 1-4 images)",
        choices=("bn", "gn"),
        changes="the backbone",
    )
    frozen_stages: int = setting(
        0,
        "ResNet stages that do not train: 0 none, 1 the stem, k the stem and layer1..layer(k-1), 5 the whole ResNet "
        "(fine-tuning on a few images: faster steps, and the features learnt on many images are kept)",
        range=(0, 5),
    )
    gradient_checkpointing: bool = False
    # FPN (seed section 3).
    fpn_channels: int = 256
    fpn_norm: str = "gn"  # "gn" (seed) | "none" (torchvision: plain convs with bias)
    fpn_groups: int = 32
    fpn_extra_pool: bool = False  # P6 by max-pool of P5 (torchvision); the seed uses P2..P5
    # Input transform (standard).
    min_size: tuple[int, ...] = bounded((800,), 32, 32768)
    max_size: int = setting(1333, "cap on the long side of the network input", range=(32, 32768))
    image_mean: tuple[float, float, float] = (0.485, 0.456, 0.406)
    image_std: tuple[float, float, float] = (0.229, 0.224, 0.225)
    size_divisible: int = bounded(32, 1, 256)
    # Scale policy (issue 12): "short-side" resizes each image so its short side is min_size (long side at most
    # max_size), torchvision's and COCO's convention; "pixel-scale" resizes every image by scale_factor, so objects
    # keep their pixel size (times the factor) whatever the image size, and images larger than tile_size network
    # pixels are predicted in overlapping tiles (engine.tiling). tile_overlap None: the largest anchor size.
    scale_policy: str = setting(
        "short-side",
        "how images are scaled for the model: short-side (to the input size) or pixel-scale (by --scale-factor; "
        "training then samples crops of --crop-size network pixels)",
        flag="--scale",
        choices=SCALE_POLICIES,
    )
    scale_factor: float = setting(
        1.0, "pixel-scale: every image is resized by this factor (objects keep their size times it)", range=(0.01, 100)
    )
    tile_size: int = 1024
    tile_overlap: int | None = None
    # The typical size of the objects the model learnt (median equivalent diameter, network pixels), when known: the
    # app turns "objects of d px in my images" into scale_factor = object_size / d (as Cellpose's diameter). None:
    # not recorded (the app then assumes twice the smallest anchor size and says so).
    object_size: float | None = None
    # Anchors (seed section 5): ratio = w / h, as the seed writes it (torchvision's ratio is h / w).
    anchor_sizes: tuple[int, ...] = setting(
        (32, 64, 128, 256),
        "anchor size per FPN level, e.g. 16 32 64 128 for small objects",
        changes="the RPN",
        range=(2, 8192),
    )
    aspect_ratios: tuple[float, ...] = (0.5, 1.0, 2.0)
    round_anchors: bool = False  # torchvision rounds the base anchors to integers
    # RPN (seed section 5).
    rpn_fg_iou: float = 0.7
    rpn_bg_iou: float = 0.3
    rpn_batch_per_image: int = bounded(256, 1, 100_000)
    rpn_positive_fraction: float = 0.5
    rpn_pre_nms_top_n_train: int = bounded(2000, 1, 1_000_000)
    rpn_pre_nms_top_n_test: int = bounded(1000, 1, 1_000_000)
    rpn_post_nms_top_n_train: int = bounded(1000, 1, 1_000_000)
    rpn_post_nms_top_n_test: int = bounded(1000, 1, 1_000_000)
    rpn_nms_iou: float = 0.7
    rpn_score_threshold: float = 0.0
    rpn_min_box_size: float = 1e-3
    rpn_box_weights: tuple[float, float, float, float] = (1.0, 1.0, 1.0, 1.0)  # standard
    rpn_box_beta: float = 1.0 / 9.0
    rpn_box_loss_norm: str = "positives"  # seed: divide by #positives; torchvision: "sampled"
    loss_reduction: str = "image"  # normalise per image, then average (DDP-consistent); torchvision: "batch"
    # RoI heads (seed section 6).
    roi_sampling_ratio: int = bounded(2, -1, 16)
    box_roi_size: int = bounded(7, 1, 64)
    mask_roi_size: int = bounded(14, 1, 128)  # RoIAlign's output: not in the weights' shapes, so bounded here
    representation_size: int = 1024
    mask_head_layers: int = 4
    mask_head_channels: int = 256
    box_fg_iou: float = 0.5
    box_bg_iou: float = 0.5
    box_batch_per_image: int = setting(
        512, "RoIs sampled per image for the heads", flag="--roi-samples", range=(1, 100_000)
    )
    box_positive_fraction: float = 0.25
    box_weights: tuple[float, float, float, float] = (10.0, 10.0, 5.0, 5.0)
    box_beta: float = 1.0 / 9.0  # standard (torchvision)
    box_score_threshold: float = 0.05
    box_nms_iou: float = 0.5
    box_min_size: float = 1e-2
    detections_per_image: int = setting(100, "detections kept per image", flag="--detections", range=(1, 100_000))
    mask_threshold: float = bounded(0.5, 0.0, 1.0)

    def __post_init__(self) -> None:
        check_ranges(self)
        if not self.min_size:
            raise ValueError("min_size needs at least one size")
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
        if self.scale_policy not in SCALE_POLICIES:
            raise ValueError(f"scale_policy must be one of {SCALE_POLICIES}, got {self.scale_policy!r}")
        if not 0.01 <= self.scale_factor <= 100:
            raise ValueError(f"scale_factor must be between 0.01 and 100, got {self.scale_factor}")
        if self.tile_size < 128:
            raise ValueError(f"tile_size must be at least 128 network pixels, got {self.tile_size}")
        if not 0 <= self.tile_overlap_px <= self.tile_size // 2:
            raise ValueError(f"tile_overlap must be between 0 and tile_size / 2, got {self.tile_overlap_px}")
        if self.object_size is not None and not 1 <= self.object_size <= 10_000:
            raise ValueError(f"object_size must be between 1 and 10000 network pixels, got {self.object_size}")
        n_levels = 4 + int(self.fpn_extra_pool)
        if len(self.anchor_sizes) != n_levels:
            raise ValueError(f"anchor_sizes needs one size per FPN level ({n_levels}), got {self.anchor_sizes}")

    @property
    def num_anchors(self) -> int:
        return len(self.aspect_ratios)

    @property
    def tile_overlap_px(self) -> int:
        """Overlap of neighbouring tiles in network pixels: ``tile_overlap``, or the largest anchor size."""
        return int(max(self.anchor_sizes)) if self.tile_overlap is None else int(self.tile_overlap)

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


@dataclass(frozen=True)
class AugmentConfig:
    """Training augmentation, drawn per sample from its seed; 0 turns a part off.

    Flips (geometric), intensity draws (engine.data.augment.photometric, applied after the flips) and scale
    jitter (the network's input short side drawn per image, engine.training.loop.scale_jitter_sizes).
    """

    hflip: float = setting(0.5, "probability of a left-right flip per sample", range=(0.0, 1.0))
    vflip: float = setting(0.0, "probability of a top-bottom flip (e.g. 0.5 for microscopy)", range=(0.0, 1.0))
    gamma_jitter: float = setting(
        0.0, "random gamma exp(U(-x, x)) per image, e.g. 0.7: gammas 0.5-2", range=(0.0, 5.0), photometric=True
    )
    contrast_jitter: float = setting(
        0.0, "random contrast 1 +- x per image around its mean, e.g. 0.3", range=(0.0, 1.0), photometric=True
    )
    brightness_jitter: float = setting(
        0.0, "random brightness offset +- x, e.g. 0.1", range=(0.0, 1.0), photometric=True
    )
    invert: float = setting(
        0.0, "probability of inverting an image (bright on dark <-> dark on bright)", range=(0.0, 1.0), photometric=True
    )
    grayscale: float = setting(0.0, "probability of dropping an image's colours", range=(0.0, 1.0), photometric=True)
    blur: float = setting(
        0.0, "probability of a Gaussian blur with sigma U(0.5, blur_sigma) px", range=(0.0, 1.0), photometric=True
    )
    blur_sigma: float = setting(1.5, "largest sigma of the blur, in pixels", range=(0.5, 10.0), photometric=True)
    scale_jitter: float = setting(
        0.0,
        "train on short sides from (1 - x) * the input size up to it, in steps of 32 px, one drawn per image "
        "(pixel-scale: on scales from (1 - x) * the factor up to it)",
        range=(0.0, 0.9),
    )

    def __post_init__(self) -> None:
        check_ranges(self, lambda f: "photometric " if f.metadata.get("photometric") else "augmentation ")

    @property
    def photometric(self) -> bool:
        """Whether any intensity draw is on (blur_sigma alone does nothing)."""
        return any(
            getattr(self, f.name)
            for f in dataclasses.fields(self)
            if f.metadata.get("photometric") and f.name != "blur_sigma"
        )

    def replace(self, **changes: Any) -> AugmentConfig:
        return dataclasses.replace(self, **changes)


# Named AugmentConfigs. "microscopy": cells and nuclei have no up or down, and their images differ in exposure,
# stain and focus far more than in shape.
AUGMENT_PRESETS: dict[str, AugmentConfig] = {
    "flips": AugmentConfig(),
    "microscopy": AugmentConfig(
        vflip=0.5, gamma_jitter=0.7, contrast_jitter=0.3, brightness_jitter=0.1, invert=0.3, grayscale=0.3, blur=0.3
    ),
}
# What each preset is for, in words (the CLI's --augment help, the Train panel's tooltip).
AUGMENT_PRESET_NOTES: dict[str, str] = {
    "flips": "left-right mirror images",
    "microscopy": "flips both ways and random exposure (gamma, contrast, brightness), inversion, grayscale and blur, "
    "for cells and nuclei whose images differ in staining, exposure and focus",
}
# The trainer's length when neither iterations nor epochs are given: passes over the training images.
DEFAULT_EPOCHS = 12.0


@dataclass(frozen=True)
class QuickFineTune:
    """The Train panel's "Quick fine-tune": a few corrected images of a new kind, a few minutes of a CPU, from the
    model in use. Chosen by measurement (benchmarks/finetune_unseen.py, docs/WALKTHROUGH.md: fine-tuning the
    generalist nuclei model on brightfield images it never saw), not by guess: on 4 corrected images, the whole
    network trained for 35 iterations (4 CPU minutes) reached held-out mask AP50 0.70, the ResNet frozen for 50
    iterations in as much time 0.66 (0.63-0.66 with 1, 2 or 8 images: frozen, more images did not help)."""

    iterations: int = 35  # ~4-5 minutes of a 2-core CPU at the nuclei model's crops (512 px, batch 2)
    lr: float = 0.01
    frozen_stages: int = 0  # ModelConfig.frozen_stages: 5 (the whole ResNet frozen) measured worse, above
    roi_samples: int = 256  # ModelConfig.box_batch_per_image
    val_split: float = 0.0  # a fifth of 4 images is one image: trained on, not held out

    def flags(self) -> list[str]:
        """The model-side flags of ``python -m engine train`` (the TrainConfig side is set by the caller)."""
        return ["--frozen-stages", str(self.frozen_stages), "--roi-samples", str(self.roi_samples)]


QUICK_FINE_TUNE = QuickFineTune()


def augment_preset_name(augment: AugmentConfig) -> str | None:
    """The AUGMENT_PRESETS entry ``augment`` is, scale jitter aside (no preset sets it), None if none is."""
    for name, preset in AUGMENT_PRESETS.items():
        if augment.replace(scale_jitter=preset.scale_jitter) == preset:
            return name
    return None


def augment_preset_of(train_config: dict[str, Any] | None) -> str | None:
    """The AUGMENT_PRESETS entry a saved TrainConfig (a dict, nested or the flat form of earlier versions) was trained
    with; None if none fits or there is none."""
    if not train_config:
        return None
    try:
        return augment_preset_name(TrainConfig.from_dict(train_config).augment)
    except (ValueError, TypeError):
        return None


@dataclass(frozen=True)
class TrainConfig:
    """How to train (independent of the network). SGD + warm-up is torchvision's detection recipe.

    Each field is a flag of ``python -m engine train`` (engine.cli.flags), with the help written here.
    """

    iterations: int = setting(
        1000,
        f"optimizer steps (the trainer's default: {DEFAULT_EPOCHS:g} epochs' worth)",
        flag="--iters",
        range=(1, None),
    )
    batch_size: int = setting(2, "the global batch: split over processes under torchrun", range=(1, 4096))
    optimizer: str = setting("sgd", "sgd or adamw", choices=("sgd", "adamw"))
    lr: float = setting(
        0.01, "peak learning rate (the trainer's default: 0.01 with sgd, 1e-4 with adamw)", range=(0, None), above=True
    )
    momentum: float = setting(0.9, "SGD momentum", range=(0, 1))
    weight_decay: float = setting(1e-4, "L2 weight decay", range=(0, None))
    warmup_iters: int = setting(100, "warm-up iterations (at most half the run)", flag="--warmup", range=(0, None))
    warmup_factor: float = setting(0.001, "learning rate factor at the start of the warm-up", range=(0, 1))
    schedule: str = setting(
        "cosine", "cosine, or step (x0.1 at each --lr-steps fraction of the run)", choices=("cosine", "step")
    )
    lr_steps: tuple[float, ...] = setting(
        (0.67, 0.89), "fractions of the run where the step schedule drops", range=(0, 1)
    )
    grad_clip: float = setting(10.0, "max gradient norm; 0 disables", range=(0, None))
    amp: bool = setting(True, "float16 autocast + loss scaling on CUDA (ignored on the CPU)")
    augment: AugmentConfig = field(default_factory=AugmentConfig)
    seed: int = setting(0, "seed of the sample order, the augmentation and new weights", range=(0, None))
    val_every: int = setting(0, "iterations between validations (0: at the end only)", range=(0, None))
    checkpoint_every: int = setting(0, "iterations between checkpoints (0: at the end only)", range=(0, None))
    max_bad_steps: int = setting(20, "consecutive non-finite losses before giving up", range=(1, None))
    crop_size: int = setting(
        0,
        "pixel-scale models: side of the random crops trained on, network pixels (0: the model's tile size); "
        "smaller images are padded, not upscaled",
        range=(0, 32768),
    )

    def __post_init__(self) -> None:
        check_ranges(self)
        if self.optimizer not in ("sgd", "adamw"):
            raise ValueError(f"optimizer must be sgd or adamw, got {self.optimizer!r}")
        if self.schedule not in ("cosine", "step"):
            raise ValueError(f"schedule must be cosine or step, got {self.schedule!r}")
        if 0 < self.crop_size < 64:
            raise ValueError(f"crop_size must be 0 (the model's tile size) or at least 64, got {self.crop_size}")
        if not isinstance(self.augment, AugmentConfig):
            raise TypeError(f"augment must be an AugmentConfig, got {type(self.augment).__name__}")

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> TrainConfig:
        """``to_dict``'s form, or the flat one checkpoints of earlier versions hold (hflip, gamma_jitter, ... beside
        lr); unknown fields are a ValueError, as in ModelConfig."""
        data = dict(data)
        augment_names = {f.name for f in dataclasses.fields(AugmentConfig)}
        augment = dict(data.pop("augment", None) or {})
        for name in augment_names & set(data):
            augment.setdefault(name, data.pop(name))
        unknown = sorted((set(data) - {f.name for f in dataclasses.fields(cls)}) | (set(augment) - augment_names))
        if unknown:
            raise ValueError(f"unknown TrainConfig fields: {unknown}")
        kwargs = {k: tuple(v) if isinstance(v, list) else v for k, v in data.items()}
        return cls(**kwargs, augment=AugmentConfig(**augment))

    def replace(self, **changes: Any) -> TrainConfig:
        return dataclasses.replace(self, **changes)
