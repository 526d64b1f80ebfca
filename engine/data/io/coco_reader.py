"""COCO instances JSON -> Dataset.

Handles polygons (multi-part too), RLE with compressed or uncompressed counts, category ids with gaps,
images without annotations, and drops a ``_background_`` category (labelme2coco writes one at id 0).
Image ``file_name``s are resolved against the JSON's folder, then ``images/``, the parent folder and
the parent's other subfolders (``train2017/``, ``JPEGImages/``, ...). The keys under ``"studio"``
(image state, instance origin and score, category colour) written by ``write_coco`` are read back;
a file without them is taken as human ground truth (images "reviewed", instances "manual").
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from engine.data.annotations import IMAGE_STATES, INSTANCE_ORIGINS, Category, Dataset, ImageRecord, Instance
from engine.data.errors import DatasetError
from engine.data.io.json_files import load_json, require
from engine.data.masks import normalize_rle, polygon_problem

BACKGROUND_NAMES = ("_background_", "__background__")
STUDIO_KEY = "studio"
_PREFERRED_IMAGE_FOLDERS = ("images", "train2017", "val2017", "test2017", "JPEGImages", "imgs", "img")


def read_coco(json_path: str | Path, document: Any = None) -> Dataset:
    """Read a COCO instances JSON file (``document``: its already parsed content, if any)."""
    path = Path(json_path)
    document = load_json(path) if document is None else document
    if not isinstance(document, dict):
        raise DatasetError(path, "a COCO file must hold a JSON object with 'images', 'annotations', 'categories'")
    warnings: list[str] = []
    categories, background_ids = _read_categories(document, path, warnings)
    images = _read_images(document, path, warnings)
    by_id = {image.id: image for image in images}
    known_categories = {category.id for category in categories}
    annotations = document.get("annotations", [])
    if not isinstance(annotations, list):
        raise DatasetError(path, "'annotations' must be a list")
    studio = STUDIO_KEY in document
    rectangles = 0
    for index, annotation in enumerate(annotations):
        where = f"annotation #{index} (id {annotation.get('id') if isinstance(annotation, dict) else '?'})"
        image = by_id.get(require(annotation, "image_id", int, path, where))
        if image is None:
            raise DatasetError(path, f"{where} refers to image id {annotation['image_id']}, which is not in 'images'")
        category_id = require(annotation, "category_id", int, path, where)
        if category_id in background_ids:
            warnings.append(f"{path.name}: {where} is labelled as background; skipped")
            continue
        if category_id not in known_categories:
            raise DatasetError(path, f"{where} refers to category id {category_id}, which is not in 'categories'")
        mask, is_rectangle = _read_segmentation(annotation, image, path, where)
        rectangles += is_rectangle
        image.instances.append(_instance(annotation, category_id, mask, studio, path, where, warnings))
    if rectangles:
        warnings.append(f"{path.name}: {rectangles} annotation(s) without a segmentation were read as their box")
    return Dataset(path.parent, images, categories, warnings, source_format="coco", source_path=path)


def _read_categories(document: dict, path: Path, warnings: list[str]) -> tuple[list[Category], set[int]]:
    entries = document.get("categories", [])
    if not isinstance(entries, list):
        raise DatasetError(path, "'categories' must be a list")
    categories: list[Category] = []
    background_ids: set[int] = set()
    seen: set[int] = set()
    for index, entry in enumerate(entries):
        where = f"category #{index}"
        category_id = require(entry, "id", int, path, where)
        name = require(entry, "name", str, path, where)
        if category_id in seen:
            raise DatasetError(path, f"{where}: category id {category_id} is used twice")
        seen.add(category_id)
        if name in BACKGROUND_NAMES:
            background_ids.add(category_id)
            continue
        color = _studio(entry).get("color")
        if color is not None and not _is_rgb(color):
            warnings.append(f"{path.name}: {where} has an invalid colour {color!r}; a default is used")
            color = None
        categories.append(Category(category_id, name, tuple(color) if color else None))
    return categories, background_ids


def _read_images(document: dict, path: Path, warnings: list[str]) -> list[ImageRecord]:
    entries = require(document, "images", list, path, "the file")
    resolver = _ImageResolver(path.parent)
    images: list[ImageRecord] = []
    seen: set[int] = set()
    missing: list[str] = []
    studio = STUDIO_KEY in document
    for index, entry in enumerate(entries):
        where = f"image #{index}"
        image_id = require(entry, "id", int, path, where)
        if image_id in seen:
            raise DatasetError(path, f"{where}: image id {image_id} is used twice")
        seen.add(image_id)
        file_name = require(entry, "file_name", str, path, where)
        width = require(entry, "width", int, path, where)
        height = require(entry, "height", int, path, where)
        if width <= 0 or height <= 0:
            raise DatasetError(path, f"{where} ({file_name}) has a size of {width}x{height}")
        found = resolver.resolve(file_name)
        if found is None:
            missing.append(file_name)
            found = path.parent / file_name
        state = _studio(entry).get("state", "reviewed") if studio else "reviewed"
        if state not in IMAGE_STATES:
            warnings.append(f"{path.name}: {where} has an unknown state {state!r}; 'reviewed' is used")
            state = "reviewed"
        relative = Path(os.path.relpath(found, path.parent)).as_posix()
        images.append(ImageRecord(relative, width, height, [], state, image_id))
    if missing:
        shown = ", ".join(missing[:5]) + (", ..." if len(missing) > 5 else "")
        warnings.append(f"{path.name}: {len(missing)} image file(s) not found near the JSON: {shown}")
    return images


def _read_segmentation(annotation: dict, image: ImageRecord, path: Path, where: str) -> tuple[Any, bool]:
    """The annotation's mask (polygons or RLE) and whether it was made from the bbox."""
    segmentation = annotation.get("segmentation")
    if segmentation in (None, [], {}):
        box = annotation.get("bbox")
        if not (isinstance(box, list) and len(box) == 4 and box[2] > 0 and box[3] > 0):
            raise DatasetError(path, f"{where} has neither a segmentation nor a usable bbox")
        x, y, w, h = (float(v) for v in box)
        return [[x, y, x + w, y, x + w, y + h, x, y + h]], True
    if isinstance(segmentation, dict):
        try:
            return normalize_rle(segmentation, image.height, image.width), False
        except (KeyError, TypeError, ValueError) as error:
            raise DatasetError(path, f"{where} has an invalid RLE segmentation: {error}") from error
    problem = polygon_problem(segmentation)
    if problem:
        raise DatasetError(path, f"{where} (image {image.path}): {problem}")
    return segmentation, False


def _instance(
    annotation: dict, category_id: int, mask: Any, studio: bool, path: Path, where: str, warnings: list[str]
) -> Instance:
    extra = _studio(annotation) if studio else {}
    origin = extra.get("origin", "manual")
    if origin not in INSTANCE_ORIGINS:
        warnings.append(f"{path.name}: {where} has an unknown origin {origin!r}; 'manual' is used")
        origin = "manual"
    score = extra.get("score")
    box = annotation.get("bbox")
    box = box if isinstance(box, list) and len(box) == 4 and isinstance(mask, list) else None
    annotation_id = annotation.get("id")
    return Instance(
        category_id=category_id,
        mask=mask,
        box=box,
        score=score if isinstance(score, (int, float)) else None,
        origin=origin,
        iscrowd=bool(annotation.get("iscrowd", 0)),
        id=annotation_id if isinstance(annotation_id, int) else None,
    )


def _is_rgb(color: Any) -> bool:
    return isinstance(color, list) and len(color) == 3 and all(isinstance(c, int) and 0 <= c <= 255 for c in color)


def _studio(entry: dict) -> dict:
    extra = entry.get(STUDIO_KEY) if isinstance(entry, dict) else None
    return extra if isinstance(extra, dict) else {}


class _ImageResolver:
    """Finds image files named in a COCO file near the JSON; remembers the folder that worked last."""

    def __init__(self, json_folder: Path) -> None:
        self.bases = self._candidate_folders(json_folder)
        self.last_hit: Path | None = None

    @staticmethod
    def _candidate_folders(json_folder: Path) -> list[Path]:
        parent = json_folder.parent
        bases = [json_folder, *(json_folder / name for name in _PREFERRED_IMAGE_FOLDERS), parent]
        bases += [parent / name for name in _PREFERRED_IMAGE_FOLDERS]
        try:
            bases += sorted(p for p in parent.iterdir() if p.is_dir() and p != json_folder)
        except OSError:
            pass
        unique: list[Path] = []
        for base in bases:
            if base not in unique and base.is_dir():
                unique.append(base)
        return unique

    def resolve(self, file_name: str) -> Path | None:
        relative = Path(file_name.replace("\\", "/"))
        if relative.is_absolute():
            return relative if relative.is_file() else None
        bases = [self.last_hit] + self.bases if self.last_hit else self.bases
        for base in bases:
            for candidate in (base / relative, base / relative.name):
                if candidate.is_file():
                    self.last_hit = base
                    return candidate
        return None
