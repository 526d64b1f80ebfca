"""Pretrained weights a user already has in torch's hub cache, by short name.

``--weights imagenet`` (ImageNet ResNet-18; ``imagenet:resnet34`` and ``imagenet:resnet50`` for the others) and
``--weights coco`` (torchvision's COCO Mask R-CNN, ResNet-50 FPN) resolve to the files torchvision
downloads into ``torch.hub.get_dir()/checkpoints``. Nothing is downloaded here: when a file is absent the
error says which file to fetch and where to put it.
"""

from __future__ import annotations

from pathlib import Path

import torch

from engine.interop import WeightsError

# file-name stems torchvision uses (the hash suffix after "-" varies with the weights version)
FILES = {
    "imagenet:resnet18": ("resnet18", "https://download.pytorch.org/models/resnet18-f37072fd.pth"),
    "imagenet:resnet34": ("resnet34", "https://download.pytorch.org/models/resnet34-b627a593.pth"),
    "imagenet:resnet50": ("resnet50", "https://download.pytorch.org/models/resnet50-0676ba61.pth"),
    "coco": (
        "maskrcnn_resnet50_fpn_coco",
        "https://download.pytorch.org/models/maskrcnn_resnet50_fpn_coco-bf2d0c1e.pth",
    ),
}
ALIASES = {"imagenet": "imagenet:resnet18", "coco:maskrcnn_resnet50_fpn": "coco"}


class HubWeightsMissing(WeightsError):
    pass


def is_alias(spec: str | Path) -> bool:
    """A short name (and no file of that name exists)."""
    name = str(spec).lower()
    return (name in FILES or name in ALIASES) and not Path(spec).exists()


def absolute_unless_alias(spec: str | Path) -> str:
    """A short name as it is, else the absolute path (for settings and for processes run in another folder)."""
    return str(spec) if is_alias(spec) else str(Path(spec).expanduser().resolve())


def resolve_if_alias(spec: str | Path) -> str | Path:
    """``spec`` itself, or the hub-cache file a short name stands for (HubWeightsMissing when absent)."""
    return resolve(spec) if is_alias(spec) else spec


def hub_checkpoints() -> Path:
    return Path(torch.hub.get_dir()) / "checkpoints"


def resolve(spec: str | Path) -> Path:
    """A short name (``imagenet``, ``imagenet:resnet50``, ``coco``) -> the file in the hub cache."""
    name = ALIASES.get(str(spec).lower(), str(spec).lower())
    if name not in FILES:
        raise KeyError(f"{spec}: not a known weights name ({', '.join(sorted(FILES))})")
    stem, url = FILES[name]
    folder = hub_checkpoints()
    found = sorted(folder.glob(f"{stem}-*.pth")) if folder.is_dir() else []
    if not found:
        raise HubWeightsMissing(
            f"{spec}: no {stem}-*.pth in the torch hub cache {folder}; download {url} into that folder "
            "(or pass the file's path to --weights)"
        )
    return found[-1]
