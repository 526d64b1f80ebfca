"""Checkpoints: weights in safetensors (no pickle: opening a file cannot run code), metadata as JSON
in the same file's header (format tag, ModelConfig, class names, training history, anything else).

``load_weights(path)`` opens any weights a user may hold: our .safetensors checkpoints, and
torchvision Mask R-CNN or ImageNet ResNet state dicts (.pth / .pt, through ``engine.interop``).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save

from engine.config import ModelConfig, TrainConfig
from engine.data.io.atomic import atomic_write_bytes
from engine.interop import WeightsError, load_torchvision_weights
from engine.model.mask_rcnn import MaskRCNN

FORMAT = "maskrcnn-studio/1"


@dataclass
class CheckpointInfo:
    """What a checkpoint says about its model, besides the weights."""

    config: ModelConfig
    class_names: list[str]
    history: list[dict[str, Any]] = field(default_factory=list)
    extra: dict[str, Any] = field(default_factory=dict)
    source: str = ""


def save_checkpoint(
    model: MaskRCNN,
    path: str | Path,
    class_names: list[str] | None = None,
    history: list[dict[str, Any]] | None = None,
    extra: dict[str, Any] | None = None,
    half: bool = False,
) -> Path:
    """Write model weights (+ metadata) atomically; ``half`` stores float16 (loading restores float32)."""
    path = Path(path)
    cfg = model.config
    names = list(class_names) if class_names is not None else [f"class {i}" for i in range(1, cfg.num_classes)]
    if len(names) != cfg.num_classes - 1:
        raise ValueError(f"{len(names)} class names for a model with {cfg.num_classes - 1} classes")
    tensors = {}
    for key, value in model.state_dict().items():
        value = value.detach().to("cpu").contiguous()
        if half and value.is_floating_point():
            value = value.to(torch.float16)
        tensors[key] = value
    metadata = {
        "format": FORMAT,
        "config": json.dumps(cfg.to_dict()),
        "class_names": json.dumps(names),
        "history": json.dumps(history or []),
        "extra": json.dumps(extra or {}),
    }
    atomic_write_bytes(path, save(tensors, metadata=metadata))
    return path


def read_info(path: str | Path) -> CheckpointInfo:
    """The metadata of one of our checkpoints, without loading the weights."""
    path = Path(path)
    try:
        from safetensors import safe_open

        with safe_open(str(path), framework="pt") as f:
            meta = f.metadata() or {}
    except (SafetensorError, OSError, ValueError) as exc:
        raise WeightsError(f"{path}: not a readable .safetensors checkpoint ({exc})") from exc
    if meta.get("format") != FORMAT:
        raise WeightsError(f"{path}: a safetensors file, but not a Mask R-CNN Studio checkpoint (no '{FORMAT}' tag)")
    try:
        info = CheckpointInfo(
            config=ModelConfig.from_dict(_with_scale_policy(json.loads(meta["config"]))),
            class_names=list(json.loads(meta["class_names"])),
            history=list(json.loads(meta.get("history", "[]"))),
            extra=_nested_train_config(dict(json.loads(meta.get("extra", "{}")))),
            source=str(path),
        )
    except (KeyError, ValueError, TypeError, RecursionError) as exc:
        raise WeightsError(f"{path}: damaged checkpoint metadata ({exc})") from exc
    classes = info.config.num_classes - 1
    if len(info.class_names) != classes or not all(isinstance(name, str) for name in info.class_names):
        raise WeightsError(
            f"{path}: damaged checkpoint metadata ({len(info.class_names)} class names for a model of {classes} "
            "classes, or names that are not text)"
        )
    return info


def check_shapes(path: str | Path, config: ModelConfig) -> None:
    """WeightsError unless the file holds exactly the tensors a model of ``config`` has, of the same shapes: read
    from the safetensors header and a model built on the meta device, so nothing is allocated for a config (such
    as a representation_size of 400,000) that the file's tensors do not bear out."""
    from safetensors import safe_open

    try:
        with torch.device("meta"):
            skeleton = MaskRCNN(config)
    except (ValueError, TypeError, RuntimeError) as exc:
        raise WeightsError(f"{path}: its metadata describes a model that cannot be built ({exc})") from exc
    expected = {key: tuple(value.shape) for key, value in skeleton.state_dict().items()}
    try:
        with safe_open(str(path), framework="pt") as f:
            found = {key: tuple(f.get_slice(key).get_shape()) for key in f.keys()}
    except (SafetensorError, OSError, ValueError) as exc:
        raise WeightsError(f"{path}: not a readable .safetensors checkpoint ({exc})") from exc
    missing = sorted(set(expected) - set(found))
    if missing:
        raise WeightsError(f"{path}: weights missing for {missing[:4]} (the file is incomplete or of another version)")
    for key, shape in found.items():
        if key not in expected:
            raise WeightsError(f"{path}: unexpected weight {key}")
        if shape != expected[key]:
            raise WeightsError(f"{path}: {key} has shape {shape}, the configured model needs {expected[key]}")


def _with_scale_policy(config: dict[str, Any]) -> dict[str, Any]:
    """A saved ModelConfig; one from before the scale policy existed (issue 12) was trained and is read at
    ``short-side``, whatever ModelConfig's default becomes."""
    return {"scale_policy": "short-side", **config}


def _nested_train_config(extra: dict[str, Any]) -> dict[str, Any]:
    """``extra`` with its ``train_config`` in TrainConfig.to_dict's nested form; earlier versions saved it flat
    (hflip, gamma_jitter, ... beside lr; their scale jitter is in the ModelConfig's min_size). One that does not
    read as a TrainConfig (another version's fields) is left as it is: it only describes how the model was trained."""
    saved = extra.get("train_config")
    if isinstance(saved, dict):
        try:
            extra["train_config"] = TrainConfig.from_dict(saved).to_dict()
        except (ValueError, TypeError):
            pass
    return extra


def load_checkpoint(path: str | Path, device: str | torch.device = "cpu") -> tuple[MaskRCNN, CheckpointInfo]:
    """Our checkpoint -> (model in eval mode, info). The metadata is checked against the tensors' shapes before
    anything is built or read (check_shapes); a mismatch is a WeightsError naming the key."""
    info = read_info(path)
    check_shapes(path, info.config)
    model = MaskRCNN(info.config)
    state = load_file(str(path), device="cpu")
    expected = model.state_dict()  # keys and shapes already match: check_shapes read the same file's header
    for key, value in state.items():
        if value.is_floating_point():
            state[key] = value.to(expected[key].dtype)  # float16 copies load as float32
    model.load_state_dict(state, strict=True)
    return model.to(device).eval(), info


def load_weights(
    path: str | Path, device: str | torch.device = "cpu", num_classes: int | None = None
) -> tuple[MaskRCNN, CheckpointInfo]:
    """Any weights a user may have: ours (.safetensors) or torchvision's state dicts (.pth/.pt/.bin), also by
    short name from torch's hub cache (``imagenet``, ``imagenet:resnet50``, ``coco``: engine/hub.py)."""
    from engine import hub

    path = Path(hub.resolve_if_alias(path))
    if not path.is_file():
        raise WeightsError(f"{path}: no such file")
    if path.suffix == ".safetensors":
        return load_checkpoint(path, device)
    model = load_torchvision_weights(path, num_classes=num_classes)
    k = model.config.num_classes
    names = COCO_NAMES if k == 91 else [f"class {i}" for i in range(1, k)]
    info = CheckpointInfo(config=model.config, class_names=list(names), source=str(path))
    return model.to(device).eval(), info


# torchvision's COCO category list (index = label; "N/A" are ids COCO does not use).
COCO_NAMES = tuple(
    name.replace("_", " ")
    for name in (
        "person bicycle car motorcycle airplane bus train truck boat traffic_light fire_hydrant N/A stop_sign "
        "parking_meter bench bird cat dog horse sheep cow elephant bear zebra giraffe N/A backpack umbrella N/A N/A "
        "handbag tie suitcase frisbee skis snowboard sports_ball kite baseball_bat baseball_glove skateboard "
        "surfboard tennis_racket bottle N/A wine_glass cup fork knife spoon bowl banana apple sandwich orange "
        "broccoli carrot hot_dog pizza donut cake chair couch potted_plant bed N/A dining_table N/A N/A toilet N/A "
        "tv laptop mouse remote keyboard cell_phone microwave oven toaster sink refrigerator N/A book clock vase "
        "scissors teddy_bear hair_drier toothbrush"
    ).split()
)
