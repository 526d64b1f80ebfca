"""labelme JSON files (and plain image folders) -> Dataset.

Shapes: polygon, rectangle (-> 4-corner polygon), circle (-> polygon with about one vertex per two
pixels of circumference, 12 to 360), mask (a base64 PNG in ``mask``, its top-left corner at the
first point). point, points, line and linestrip shapes are ignored with a warning. Shapes with the same
``group_id`` and label form one instance. The labels ``__ignore__`` and ``_background_`` are not
categories and their shapes are skipped. Categories get ids 1..K in the sorted order of their labels.
Images in the folder without a JSON become images with no instances (state "not_run").

Hostile or broken content: a shape that cannot be used (not an object, points that are not finite
numbers, a mask that is not a PNG, ...) is skipped with a warning naming the file and the shape; a
``group_id`` that is not a number or a string is ignored with a warning; shapes reaching far outside the
image are clipped (engine.data.masks.fit_polygons). A file that cannot be used as a whole (no ``shapes``
list, an image size that is not one) is skipped with a warning when it is one of a folder's files (its
image joins as "not_run"), and is a DatasetError when it is the file that was opened.
"""

from __future__ import annotations

import base64
import io
import math
import os
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from engine.data.annotations import Category, Dataset, ImageRecord, Instance
from engine.data.errors import DatasetError, ImageLoadError
from engine.data.io.images import (
    IMAGE_SUFFIXES,
    declared_size_problem,
    image_size,
    is_existing_file,
    is_image_file,
)
from engine.data.io.json_files import require
from engine.data.masks import encode_mask, fit_polygons, merge_rles, polygons_to_rle

SKIPPED_LABELS = ("__ignore__", "_background_", "__background__")
_IGNORED_SHAPE_TYPES = ("point", "points", "line", "linestrip")


def read_labelme_folder(
    folder: str | Path, documents: dict[Path, Any] | None = None, include_unannotated_images: bool = True
) -> Dataset:
    """Read a folder of labelme JSON files and images (``documents``: the parsed JSONs by path)."""
    folder = Path(folder)
    documents = documents or {}
    warnings: list[str] = []
    shapes_by_image: list[tuple[ImageRecord, list[tuple[str, Any]]]] = []
    annotated: set[Path] = set()
    for json_path in sorted(documents):
        try:
            image, parts = _read_file(json_path, documents[json_path], folder, warnings)
        except DatasetError as error:
            if not include_unannotated_images:
                raise
            warnings.append(f"{error}; the file was skipped")
            continue
        shapes_by_image.append((image, parts))
        annotated.add(Path(os.path.normpath(folder / image.path)))
    for image_path in sorted(p for p in folder.iterdir() if is_existing_file(p) and is_image_file(p)):
        if image_path in annotated or not include_unannotated_images:
            continue
        try:
            width, height = image_size(image_path)
        except ImageLoadError as error:
            warnings.append(f"{error}; the image was skipped")
            continue
        shapes_by_image.append((ImageRecord(image_path.name, width, height, [], "not_run"), []))
    names = sorted({label for _, parts in shapes_by_image for label, _ in parts})
    categories = [Category(index + 1, name) for index, name in enumerate(names)]
    id_of = {category.name: category.id for category in categories}
    images = []
    for image, parts in sorted(shapes_by_image, key=lambda item: item[0].path):
        image.instances = [Instance(category_id=id_of[label], mask=mask) for label, mask in parts]
        images.append(image)
    for index, image in enumerate(images):
        image.id = index + 1
    source_format = "labelme" if documents else "images"
    return Dataset(folder, images, categories, warnings, source_format=source_format, source_path=folder)


def _read_file(json_path: Path, document: Any, folder: Path, warnings: list[str]) -> tuple[ImageRecord, list]:
    """One labelme file -> (image record, [(label, mask polygons or RLE), ...] one per instance)."""
    shapes = require(document, "shapes", list, json_path, "the file")
    image_file = _image_file(json_path, document, warnings)
    width, height = document.get("imageWidth"), document.get("imageHeight")
    if not all(type(v) is int and v > 0 for v in (width, height)):  # missing or not a size: the image's own
        try:
            width, height = image_size(image_file)
        except ImageLoadError as error:
            raise DatasetError(json_path, f"no imageWidth/imageHeight and the image cannot be read: {error}") from error
    problem = declared_size_problem(width, height)
    if problem:
        raise DatasetError(json_path, f"imageWidth x imageHeight: {problem}")
    groups: dict[tuple, list[Any]] = {}
    for index, shape in enumerate(shapes):
        where = f"shape #{index}"
        try:
            label = require(shape, "label", str, json_path, where)
            if label in SKIPPED_LABELS:
                continue
            where = f"{where} ('{label[:40]}')"
            geometry = _shape_geometry(shape, json_path, where, height, width, warnings)
        except DatasetError as error:
            warnings.append(f"{error}; the shape was skipped")
            continue
        if geometry is None:
            continue
        group_id = shape.get("group_id")
        if not (group_id is None or isinstance(group_id, (int, float, str))):
            warnings.append(f"{json_path.name}: {where} has a group_id that is not a number; ignored")
            group_id = None
        key = (label, group_id) if group_id is not None else (label, None, index)
        groups.setdefault(key, []).append(geometry)
    parts = [(key[0], _merge_parts(geometries, height, width)) for key, geometries in groups.items()]
    relative = Path(os.path.relpath(image_file, folder)).as_posix()
    return ImageRecord(relative, width, height, [], "reviewed"), parts


def _image_file(json_path: Path, document: dict, warnings: list[str]) -> Path:
    image_path = document.get("imagePath")
    candidates = []
    if isinstance(image_path, str) and image_path:
        candidates.append(json_path.parent / image_path.replace("\\", "/"))
        candidates.append(json_path.parent / Path(image_path.replace("\\", "/")).name)
    candidates += [json_path.with_suffix(suffix) for suffix in IMAGE_SUFFIXES]
    for candidate in candidates:
        if is_existing_file(candidate):
            return Path(os.path.normpath(candidate))
    warnings.append(f"{json_path.name}: its image {image_path!r:.80} was not found")
    return Path(os.path.normpath(candidates[0] if candidates else json_path.with_suffix(".png")))


def _shape_geometry(shape: dict, path: Path, where: str, height: int, width: int, warnings: list[str]) -> Any:
    """A shape -> polygons list or RLE (None when the shape type carries no area)."""
    shape_type = shape.get("shape_type") or "polygon"
    if shape_type in _IGNORED_SHAPE_TYPES:
        warnings.append(f"{path.name}: {where} is a {shape_type}, which has no area; ignored")
        return None
    if shape_type not in ("polygon", "rectangle", "circle", "mask"):
        warnings.append(f"{path.name}: {where} has an unknown shape_type {shape_type!r:.40}; ignored")
        return None
    points = require(shape, "points", list, path, where)
    try:
        xy = np.asarray(points, dtype=np.float64).reshape(-1, 2)
    except (TypeError, ValueError, OverflowError) as error:
        raise DatasetError(path, f"{where}: 'points' must be a list of [x, y] pairs") from error
    if not np.isfinite(xy).all():
        raise DatasetError(path, f"{where}: 'points' holds a number that is not finite (NaN, inf or too large)")
    if shape_type == "polygon":
        if len(xy) < 3:
            raise DatasetError(path, f"{where}: a polygon needs at least 3 points, it has {len(xy)}")
        polygons = [xy.ravel().tolist()]
    elif len(xy) < 2:
        raise DatasetError(path, f"{where}: a {shape_type} needs 2 points, it has {len(xy)}")
    elif shape_type == "mask":
        return _mask_shape_rle(shape, xy, path, where, height, width)
    elif shape_type == "rectangle":
        (x0, y0), (x1, y1) = xy.min(axis=0).tolist(), xy.max(axis=0).tolist()
        polygons = [[x0, y0, x1, y0, x1, y1, x0, y1]]
    else:
        polygons = [_circle_polygon(xy[0], xy[1])]
    try:
        fitted, clipped = fit_polygons(polygons, height, width)
    except ValueError as error:
        raise DatasetError(path, f"{where}: {error}") from error
    if not fitted:
        raise DatasetError(path, f"{where} lies entirely outside the {width}x{height} image")
    if clipped:
        warnings.append(f"{path.name}: {where} reaches far outside the image; clipped")
    return fitted


def _circle_polygon(center: np.ndarray, on_circle: np.ndarray) -> list[float]:
    radius = float(np.hypot(*(on_circle - center)))
    if not math.isfinite(radius):
        return [math.inf] * 6  # refused by fit_polygons
    count = int(min(max(math.ceil(2 * math.pi * radius / 2), 12), 360))
    angles = np.linspace(0.0, 2 * math.pi, count, endpoint=False)
    xs, ys = center[0] + radius * np.cos(angles), center[1] + radius * np.sin(angles)
    return np.stack([xs, ys], axis=1).ravel().tolist()


def _mask_shape_rle(shape: dict, xy: np.ndarray, path: Path, where: str, height: int, width: int) -> dict:
    encoded = require(shape, "mask", str, path, where)
    try:
        with Image.open(io.BytesIO(base64.b64decode(encoded))) as png:
            crop = np.asarray(png)
    except (ValueError, OSError, SyntaxError, Image.DecompressionBombError, MemoryError) as error:
        raise DatasetError(path, f"{where}: the 'mask' field is not a base64 PNG ({error})") from error
    if crop.ndim not in (2, 3) or crop.dtype == object:
        raise DatasetError(path, f"{where}: the 'mask' field is not a one-layer PNG")
    crop = crop.any(axis=2) if crop.ndim == 3 else crop.astype(bool)
    left, top = (int(v) for v in xy.min(axis=0))  # finite; far away, it just covers nothing
    full = np.zeros((height, width), dtype=bool)
    rows = slice(max(top, 0), min(top + crop.shape[0], height))
    cols = slice(max(left, 0), min(left + crop.shape[1], width))
    if rows.stop > rows.start and cols.stop > cols.start:
        full[rows, cols] = crop[rows.start - top : rows.stop - top, cols.start - left : cols.stop - left]
    return encode_mask(full)


def _merge_parts(geometries: list[Any], height: int, width: int) -> Any:
    """Parts of one instance -> one polygons list, or one RLE when any part is a pixel mask."""
    if all(isinstance(geometry, list) for geometry in geometries):
        return [polygon for geometry in geometries for polygon in geometry]
    rles = [g if isinstance(g, dict) else polygons_to_rle(g, height, width) for g in geometries]
    return merge_rles(rles)
