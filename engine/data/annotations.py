"""The in-memory annotation model of a project: categories, instances, images, dataset. Plain Python + numpy.

Masks are kept in the form they came in: RLE (``{"size": [H, W], "counts": str}``) when they come from
pixels, polygons (``[[x0, y0, x1, y1, ...], ...]``) when they come from polygons. Both decode to the
pixels pycocotools draws. Boxes are ``[x, y, w, h]`` in image pixels, as in COCO.

Each of Dataset, ImageRecord, Category and Instance has an ``extra`` dict: the keys of its entry in the
file that the studio does not use (COCO's ``info``, ``licenses``, ``coco_url``, ``supercategory``, ...),
kept as they were so that saving writes them back.
"""

from __future__ import annotations

import colorsys
import os
import random
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from engine.data.masks import (
    RLE,
    Polygons,
    decode_rle,
    encode_mask,
    normalize_rle,
    polygon_problem,
    polygons_box,
    polygons_to_rle,
    rle_area,
    rle_box,
    rle_size,
)

INSTANCE_ORIGINS = ("manual", "predicted", "accepted")
IMAGE_STATES = ("not_run", "predicted", "reviewed")


def default_category_color(category_id: int) -> tuple[int, int, int]:
    """A distinct, saturated RGB colour for a category id (golden-ratio hue steps, deterministic)."""
    hue = (0.13 + 0.618033988749895 * category_id) % 1.0
    red, green, blue = colorsys.hsv_to_rgb(hue, 0.75, 0.95)
    return (round(red * 255), round(green * 255), round(blue * 255))


@dataclass
class Category:
    """An object class; ``color`` is RGB 0..255 (a default is derived from the id)."""

    id: int
    name: str
    color: tuple[int, int, int] | None = None
    extra: dict[str, Any] = field(default_factory=dict, compare=False, repr=False)

    def __post_init__(self) -> None:
        self.id = int(self.id)
        self.color = default_category_color(self.id) if self.color is None else tuple(int(c) for c in self.color)


@dataclass(frozen=True)
class Instance:
    """One object: its category, mask (RLE or polygons), box [x,y,w,h], score, origin and crowd flag.

    Frozen, and never changed in place (nor its mask's or box's lists): an edit makes a new Instance
    (``dataclasses.replace``) and swaps the image's instance list. The app relies on this: the autosave
    thread writes a snapshot of the lists (gui/workers/autosave.py) while the GUI thread goes on editing,
    undo puts back the very objects an edit replaced, and decoded masks are cached per object.
    """

    category_id: int
    mask: RLE | Polygons
    box: list[float] | None = None
    score: float | None = None
    origin: str = "manual"
    iscrowd: bool = False
    id: int | None = None
    extra: dict[str, Any] = field(default_factory=dict, compare=False, repr=False)

    def __post_init__(self) -> None:
        if self.origin not in INSTANCE_ORIGINS:
            raise ValueError(f"instance origin must be one of {INSTANCE_ORIGINS}, got {self.origin!r}")
        mask = self.mask
        if isinstance(mask, dict):
            mask = normalize_rle(mask, *rle_size(mask))
        else:
            if isinstance(mask, (np.ndarray, tuple)) or any(isinstance(p, (np.ndarray, tuple)) for p in mask):
                mask = [np.asarray(polygon, dtype=np.float64).ravel().tolist() for polygon in mask]
            problem = polygon_problem(mask)
            if problem:
                raise ValueError(problem)
            mask = [list(map(float, polygon)) for polygon in mask]
        box = self.box
        if box is None:
            box = rle_box(mask) if isinstance(mask, dict) else polygons_box(mask)
        # normalising the fields as they come in is the one place a frozen Instance is written to
        set_field = object.__setattr__
        set_field(self, "mask", mask)
        set_field(self, "box", [float(v) for v in box])
        set_field(self, "category_id", int(self.category_id))
        set_field(self, "iscrowd", bool(self.iscrowd))
        set_field(self, "score", None if self.score is None else float(self.score))

    @classmethod
    def from_mask(cls, mask: np.ndarray, category_id: int, **fields: Any) -> Instance:
        """Instance from a bool mask (H,W), stored as RLE."""
        return cls(category_id=category_id, mask=encode_mask(mask), **fields)

    @property
    def is_rle(self) -> bool:
        """True when the mask is stored as RLE, False for polygons."""
        return isinstance(self.mask, dict)

    def to_rle(self, height: int, width: int) -> RLE:
        """The mask as a compressed RLE of size (height, width)."""
        if self.is_rle:
            return normalize_rle(self.mask, height, width)
        return polygons_to_rle(self.mask, height, width)

    def decode_mask(self, height: int, width: int) -> np.ndarray:
        """The mask as bool (H,W); polygons rasterised as pycocotools does."""
        return decode_rle(self.to_rle(height, width))

    def area(self, height: int, width: int) -> int:
        """Number of mask pixels in an image of size (height, width)."""
        return rle_area(self.to_rle(height, width))


@dataclass
class ImageRecord:
    """One image: its path (absolute or relative to the dataset root), size, instances and review state."""

    path: str
    width: int
    height: int
    instances: list[Instance] = field(default_factory=list)
    state: str = "not_run"
    id: int | None = None
    extra: dict[str, Any] = field(default_factory=dict, compare=False, repr=False)

    def __post_init__(self) -> None:
        if self.state not in IMAGE_STATES:
            raise ValueError(f"image state must be one of {IMAGE_STATES}, got {self.state!r}")
        self.path = str(self.path)
        self.width, self.height = int(self.width), int(self.height)


@dataclass
class Dataset:
    """A project's images and categories; ``warnings`` holds the per-item problems met while reading."""

    root: Path
    images: list[ImageRecord]
    categories: list[Category]
    warnings: list[str] = field(default_factory=list)
    source_format: str = ""
    source_path: Path | None = None
    extra: dict[str, Any] = field(default_factory=dict, compare=False, repr=False)

    def __post_init__(self) -> None:
        self.root = Path(self.root)
        self._assign_missing_image_ids()

    def _assign_missing_image_ids(self) -> None:
        used = [image.id for image in self.images if image.id is not None]
        if len(used) != len(set(used)):
            raise ValueError("image ids must be unique")
        next_id = max(used, default=0) + 1
        for image in self.images:
            if image.id is None:
                image.id = next_id
                next_id += 1

    def category_by_id(self, category_id: int) -> Category:
        """The category with this id (KeyError if there is none)."""
        for category in self.categories:
            if category.id == category_id:
                return category
        raise KeyError(f"no category with id {category_id}")

    def category_by_name(self, name: str) -> Category:
        """The category with this name (KeyError if there is none)."""
        for category in self.categories:
            if category.name == name:
                return category
        raise KeyError(f"no category named {name!r}")

    def image_by_id(self, image_id: int) -> ImageRecord:
        """The image with this id (KeyError if there is none)."""
        for image in self.images:
            if image.id == image_id:
                return image
        raise KeyError(f"no image with id {image_id}")

    def image_path(self, image: ImageRecord) -> Path:
        """Absolute path of an image's file."""
        path = Path(image.path)
        return path if path.is_absolute() else Path(os.path.normpath(self.root / path))

    @property
    def num_instances(self) -> int:
        """Number of instances over all images (crowd regions included)."""
        return sum(len(image.instances) for image in self.images)

    def next_instance_id(self) -> int:
        """An instance id not used yet in this dataset."""
        return max((inst.id for image in self.images for inst in image.instances if inst.id is not None), default=0) + 1

    def add_category(self, name: str, color: tuple[int, int, int] | None = None) -> Category:
        """Append a category with the next free id and return it."""
        category = Category(max((c.id for c in self.categories), default=0) + 1, name, color)
        self.categories.append(category)
        return category

    def split(
        self, val_fraction: float = 0.2, seed: int = 0, val_image_ids: Sequence[int] | None = None
    ) -> tuple[list[int], list[int]]:
        """Deterministic (train image ids, val image ids); explicit ``val_image_ids`` win over the fraction."""
        all_ids = sorted(image.id for image in self.images)
        if val_image_ids is None:
            if not 0.0 <= val_fraction < 1.0:
                raise ValueError(f"val_fraction must be in [0, 1), got {val_fraction}")
            return split_ids(all_ids, val_fraction, seed)
        unknown = set(val_image_ids) - set(all_ids)
        if unknown:
            raise ValueError(f"unknown validation image ids: {sorted(unknown)}")
        val_set = set(val_image_ids)
        return [i for i in all_ids if i not in val_set], sorted(val_set)


def split_ids(ids: Sequence[int], val_fraction: float, seed: int = 0) -> tuple[list[int], list[int]]:
    """Deterministic (train ids, val ids) of ``ids``: round(n * fraction) validate, but at least one and never
    all when the fraction is > 0 and there are two or more."""
    ordered = sorted(ids)
    num_val = round(len(ordered) * val_fraction)
    if val_fraction > 0 and len(ordered) >= 2:
        num_val = min(max(num_val, 1), len(ordered) - 1)
    shuffled = list(ordered)
    random.Random(seed).shuffle(shuffled)
    val = set(shuffled[:num_val])
    return [i for i in ordered if i not in val], sorted(val)
