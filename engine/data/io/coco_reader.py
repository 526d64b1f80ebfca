"""COCO instances JSON -> Dataset.

Handles polygons (multi-part too), RLE with compressed or uncompressed counts, category ids with gaps,
images without annotations, and drops a ``_background_`` category (labelme2coco writes one at id 0).
Image ``file_name``s are resolved against the JSON's folder, then ``images/``, the parent folder and
the parent's other subfolders (``train2017/``, ``JPEGImages/``, ...). The keys under ``"studio"``
(image state, instance origin and score, category colour) written by ``write_coco`` are read back;
a file without them is taken as human ground truth (images "reviewed", instances "manual").

What the file holds beyond that is kept for ``write_coco``: the keys the studio does not use (``info``,
``licenses``, an image's ``coco_url``, a category's ``supercategory``, ...) go to the ``extra`` dicts.

Hostile or broken content: a bad ``categories`` entry stops the file with a DatasetError naming it. A
bad image entry (a size that is not one, an id used twice, ...) or annotation (unknown image or category,
a segmentation or box that is not one, numbers too large for any image) is skipped with a warning
naming it, and kept as it was in ``dataset.extra["images"]`` / ``["annotations"]`` so that saving
writes it back unchanged (the annotations of a skipped image are kept so too). Polygons and boxes that reach
far outside the image are clipped to a window one image size around it (engine.data.masks.fit_polygons),
with a warning; nothing is drawn before that.
"""

from __future__ import annotations

import math
import numbers
import os
from pathlib import Path
from typing import Any

from engine.data.annotations import IMAGE_STATES, INSTANCE_ORIGINS, Category, Dataset, ImageRecord, Instance
from engine.data.errors import DatasetError
from engine.data.io.images import declared_size_problem, is_existing_dir, is_existing_file
from engine.data.io.json_files import MAX_ID, load_json, require
from engine.data.masks import fit_polygons, normalize_rle

BACKGROUND_NAMES = ("_background_", "__background__")
STUDIO_KEY = "studio"
SKIPPED_ANNOTATIONS_KEY = "annotations"
"""Key of ``Dataset.extra`` that holds the annotations read_coco could not use, as they were in the file."""
SKIPPED_IMAGES_KEY = "images"
"""Key of ``Dataset.extra`` that holds the image entries read_coco could not use, as they were in the file."""
DATASET_KEYS = ("images", "annotations", "categories", STUDIO_KEY)
IMAGE_KEYS = ("id", "file_name", "width", "height", STUDIO_KEY)
CATEGORY_KEYS = ("id", "name", STUDIO_KEY)
ANNOTATION_KEYS = ("id", "image_id", "category_id", "segmentation", "bbox", "area", "iscrowd", STUDIO_KEY)
MAX_WARNINGS_LISTED = 20
_PREFERRED_IMAGE_FOLDERS = ("images", "train2017", "val2017", "test2017", "JPEGImages", "imgs", "img")


class _SkippedAnnotation(Exception):
    """An annotation that cannot be used; the message says why."""


def read_coco(json_path: str | Path, document: Any = None) -> Dataset:
    """Read a COCO instances JSON file (``document``: its already parsed content, if any)."""
    path = Path(json_path)
    document = load_json(path) if document is None else document
    if not isinstance(document, dict):
        raise DatasetError(path, "a COCO file must hold a JSON object with 'images', 'annotations', 'categories'")
    warnings: list[str] = []
    categories, background_ids = _read_categories(document, path, warnings)
    images, skipped_images = _read_images(document, path, warnings)
    annotations = document.get("annotations", [])
    if not isinstance(annotations, list):
        raise DatasetError(path, "'annotations' must be a list")
    reader = _AnnotationReader(path, {image.id: image for image in images}, categories, background_ids, document)
    reader.skipped_image_ids = {e.get("id") for e in skipped_images if isinstance(e, dict) and _is_integer(e.get("id"))}
    for index, annotation in enumerate(annotations):
        reader.read(index, annotation)
    warnings += reader.report()
    extra = {key: value for key, value in document.items() if key not in DATASET_KEYS}
    if skipped_images:
        extra[SKIPPED_IMAGES_KEY] = skipped_images
    if reader.skipped:
        extra[SKIPPED_ANNOTATIONS_KEY] = reader.skipped
    return Dataset(path.parent, images, categories, warnings, source_format="coco", source_path=path, extra=extra)


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
            warnings.append(f"{path.name}: {where} has an invalid colour {_short(color)}; a default is used")
            color = None
        extra = {key: value for key, value in entry.items() if key not in CATEGORY_KEYS}
        categories.append(Category(category_id, name, tuple(color) if color else None, extra=extra))
    return categories, background_ids


def _read_images(document: dict, path: Path, warnings: list[str]) -> tuple[list[ImageRecord], list[Any]]:
    """The image records, and the entries that could not be used (each with a warning), as they were."""
    entries = require(document, "images", list, path, "the file")
    resolver = _ImageResolver(path.parent)
    images: list[ImageRecord] = []
    skipped: list[Any] = []
    problems: list[str] = []
    seen: set[int] = set()
    missing: list[str] = []
    studio = STUDIO_KEY in document
    for index, entry in enumerate(entries):
        try:
            image = _image(entry, f"image #{index}", path, seen, studio, warnings)
        except DatasetError as error:
            skipped.append(entry)
            problems.append(f"{path.name}: {error.problem}; the image was skipped (kept in the file as it is)")
            continue
        seen.add(image.id)
        found = resolver.resolve(image.path)
        if found is None:
            missing.append(image.path)
            found = path.parent / image.path
        image.path = Path(os.path.relpath(found, path.parent)).as_posix()
        images.append(image)
    if len(problems) > MAX_WARNINGS_LISTED:
        more = len(problems) - MAX_WARNINGS_LISTED
        problems = problems[:MAX_WARNINGS_LISTED] + [f"{path.name}: {more} more image(s) skipped for such reasons"]
    warnings += problems
    if missing:
        shown = ", ".join(missing[:5]) + (", ..." if len(missing) > 5 else "")
        warnings.append(f"{path.name}: {len(missing)} image file(s) not found near the JSON: {shown}")
    return images, skipped


def _image(entry: Any, where: str, path: Path, seen: set[int], studio: bool, warnings: list[str]) -> ImageRecord:
    """One ``images`` entry -> an ImageRecord (its path as in the file); DatasetError when it cannot be used."""
    image_id = require(entry, "id", int, path, where)
    if image_id in seen:
        raise DatasetError(path, f"{where}: image id {image_id} is used twice")
    file_name = require(entry, "file_name", str, path, where)
    width = require(entry, "width", int, path, where)
    height = require(entry, "height", int, path, where)
    problem = declared_size_problem(width, height)
    if problem:
        raise DatasetError(path, f"{where} ({_short(file_name)}) {problem}")
    if not file_name or "\0" in file_name:
        raise DatasetError(path, f"{where}: 'file_name' {_short(file_name)} is not a file name")
    state = _studio(entry).get("state", "reviewed") if studio else "reviewed"
    if state not in IMAGE_STATES:
        warnings.append(f"{path.name}: {where} has an unknown state {_short(state)}; 'reviewed' is used")
        state = "reviewed"
    extra = {key: value for key, value in entry.items() if key not in IMAGE_KEYS}
    return ImageRecord(file_name, width, height, [], state, image_id, extra=extra)


class _AnnotationReader:
    """Reads annotations into their images' instance lists; keeps the ones it cannot use and why."""

    def __init__(
        self, path: Path, images: dict[int, ImageRecord], categories: list[Category], background: set[int], doc: dict
    ) -> None:
        self.path = path
        self.images = images
        self.categories = {category.id for category in categories}
        self.background = background
        self.studio = STUDIO_KEY in doc
        self.skipped: list[Any] = []
        self.problems: list[str] = []
        self.clipped: list[str] = []
        self.notes: list[str] = []
        self.rectangles = 0
        self.skipped_image_ids: set[int] = set()

    def read(self, index: int, annotation: Any) -> None:
        annotation_id = annotation.get("id") if isinstance(annotation, dict) else None
        where = f"annotation #{index}" + (f" (id {_short(annotation_id)})" if annotation_id is not None else "")
        try:
            image, instance, clipped = self._instance(annotation, where)
        except _SkippedAnnotation as reason:
            self.skipped.append(annotation)
            self.problems.append(f"{where} {reason}")
            return
        if clipped:
            self.clipped.append(where)
        image.instances.append(instance)

    def report(self) -> list[str]:
        name = self.path.name
        lines = [f"{name}: {problem}; skipped (kept in the file as it is)" for problem in self.problems]
        if len(lines) > MAX_WARNINGS_LISTED:
            more = len(lines) - MAX_WARNINGS_LISTED
            lines = lines[:MAX_WARNINGS_LISTED] + [f"{name}: {more} more annotation(s) skipped for such reasons"]
        if self.clipped:
            shown = ", ".join(self.clipped[:5]) + (", ..." if len(self.clipped) > 5 else "")
            lines.append(
                f"{name}: {len(self.clipped)} annotation(s) reach far outside their image and were clipped: {shown}"
            )
        lines += [f"{name}: {note}" for note in self.notes[:MAX_WARNINGS_LISTED]]
        if self.rectangles:
            lines.append(f"{name}: {self.rectangles} annotation(s) without a segmentation were read as their box")
        return lines

    def _instance(self, annotation: Any, where: str) -> tuple[ImageRecord, Instance, bool]:
        if not isinstance(annotation, dict):
            raise _SkippedAnnotation("is not a JSON object")
        image_id = _integer(annotation, "image_id")
        image = self.images.get(image_id)
        if image is None and image_id in self.skipped_image_ids:
            raise _SkippedAnnotation(f"belongs to image id {image_id}, which was skipped")
        if image is None:
            raise _SkippedAnnotation(f"refers to image id {_short(image_id)}, which is not in 'images'")
        category_id = _integer(annotation, "category_id")
        if category_id in self.background:
            raise _SkippedAnnotation("is labelled as background")
        if category_id not in self.categories:
            raise _SkippedAnnotation(f"refers to category id {_short(category_id)}, which is not in 'categories'")
        mask, is_rectangle = _segmentation(annotation, image)
        clipped = False
        if isinstance(mask, list):
            try:
                mask, clipped = fit_polygons(mask, image.height, image.width)
            except ValueError as error:
                raise _SkippedAnnotation(f"(image {image.path}): {error}") from None
            if not mask:
                raise _SkippedAnnotation(f"lies entirely outside its image {image.path}")
        self.rectangles += is_rectangle
        extra = _studio(annotation) if self.studio else {}
        origin = extra.get("origin", "manual")
        if origin not in INSTANCE_ORIGINS:
            self.notes.append(f"{where} has an unknown origin {_short(origin)}; 'manual' is used")
            origin = "manual"
        score = extra.get("score")
        box = annotation.get("bbox") if isinstance(mask, list) and not clipped else None
        annotation_id = annotation.get("id")
        instance = Instance(
            category_id=category_id,
            mask=mask,
            box=box if _is_box(box) and _box_within(box, image) else None,
            score=float(score) if _is_finite(score) else None,
            origin=origin,
            iscrowd=annotation.get("iscrowd", 0) in (1, True),
            id=annotation_id if _is_integer(annotation_id) and -MAX_ID < annotation_id < MAX_ID else None,
            extra={key: value for key, value in annotation.items() if key not in ANNOTATION_KEYS},
        )
        return image, instance, clipped


def _segmentation(annotation: dict, image: ImageRecord) -> tuple[Any, bool]:
    """The annotation's mask (polygons or RLE) and whether it was made from the bbox."""
    segmentation = annotation.get("segmentation")
    if segmentation is None or (isinstance(segmentation, (list, dict)) and not segmentation):
        box = annotation.get("bbox")
        if not (_is_box(box) and box[2] > 0 and box[3] > 0):
            raise _SkippedAnnotation(f"has neither a segmentation nor a usable bbox (bbox {_short(box)})")
        x, y, w, h = (float(v) for v in box)
        return [[x, y, x + w, y, x + w, y + h, x, y + h]], True
    if isinstance(segmentation, dict):
        try:
            return normalize_rle(segmentation, image.height, image.width), False
        except ValueError as error:
            raise _SkippedAnnotation(f"has an invalid RLE segmentation: {error}") from None
    if not isinstance(segmentation, list):
        raise _SkippedAnnotation(f"'segmentation' must be polygons or an RLE, got {type(segmentation).__name__}")
    return segmentation, False


def _integer(annotation: dict, key: str) -> int:
    value = annotation.get(key)
    if value is None:
        raise _SkippedAnnotation(f"has no '{key}'")
    if not _is_integer(value):
        raise _SkippedAnnotation(f"'{key}' must be an integer, got {_short(value)}")
    return value


def _is_integer(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_finite(value: Any) -> bool:
    if not isinstance(value, numbers.Real) or isinstance(value, bool):
        return False
    try:
        return math.isfinite(value)
    except OverflowError:
        return False


def _is_box(box: Any) -> bool:
    """A list [x, y, w, h] of finite numbers with w, h >= 0."""
    return isinstance(box, list) and len(box) == 4 and all(map(_is_finite, box)) and box[2] >= 0 and box[3] >= 0


def _box_within(box: list, image: ImageRecord) -> bool:
    """True when the box lies within one image size around the image (else the polygons' span is used)."""
    margin = max(image.width, image.height)
    x, y, w, h = (float(v) for v in box)
    return x >= -margin and y >= -margin and x + w <= image.width + margin and y + h <= image.height + margin


def _is_rgb(color: Any) -> bool:
    return isinstance(color, list) and len(color) == 3 and all(_is_integer(c) and 0 <= c <= 255 for c in color)


def _studio(entry: Any) -> dict:
    extra = entry.get(STUDIO_KEY) if isinstance(entry, dict) else None
    return extra if isinstance(extra, dict) else {}


def _short(value: Any) -> str:
    try:
        text = repr(value)
    except ValueError:  # an int too long for repr
        text = f"<{type(value).__name__}>"
    return text if len(text) <= 40 else text[:37] + "..."


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
            bases += sorted(p for p in parent.iterdir() if is_existing_dir(p) and p != json_folder)
        except OSError:
            pass
        unique: list[Path] = []
        for base in bases:
            if base not in unique and is_existing_dir(base):
                unique.append(base)
        return unique

    def resolve(self, file_name: str) -> Path | None:
        relative = Path(file_name.replace("\\", "/"))
        if relative.is_absolute():
            return relative if is_existing_file(relative) else None
        bases = [self.last_hit] + self.bases if self.last_hit else self.bases
        for base in bases:
            for candidate in (base / relative, base / relative.name):
                if is_existing_file(candidate):
                    self.last_hit = base
                    return candidate
        return None
