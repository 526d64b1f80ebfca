"""Dataset -> COCO instances JSON (lossless) and labelme JSON files (polygons). All writes are atomic.

COCO: RLE counts are written as str; image ``file_name``s are relative to the JSON's folder; boxes and
areas are derived from the masks. Studio-only information sits under ``"studio"`` keys that COCO tools
ignore: the image state, the instance origin and score, the category colour. The ``extra`` keys of the
dataset, images, categories and instances (what a file read by read_coco held that the studio does not
use: ``info``, ``licenses``, ``coco_url``, ``supercategory``, ...) are written back as they were, and so
are the image entries and annotations read_coco skipped (``dataset.extra["images"]``, ``["annotations"]``).

labelme: one ``<image stem>.json`` per image that has instances or was reviewed. Polygon instances are
written as they are; RLE instances are traced into polygons (engine.data.contours), which reproduces the
pixels except holes (dropped) and what ``tolerance`` simplifies away. An instance of several polygons
gets a group_id so that labelme (and read_dataset) joins the parts again. Crowd regions are not exported.
"""

from __future__ import annotations

import contextlib
import contextvars
import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from engine.data.annotations import Dataset, ImageRecord, Instance
from engine.data.contours import mask_to_polygons
from engine.data.io.atomic import EncodedJSON, atomic_write_json, atomic_write_text
from engine.data.io.coco_reader import SKIPPED_ANNOTATIONS_KEY, SKIPPED_IMAGES_KEY, STUDIO_KEY
from engine.data.io.json_files import MAX_ID
from engine.data.masks import polygons_box, rle_area, rle_box

COCO_FORMAT_VERSION = 1
LABELME_VERSION = "5.0.1"


class AnnotationTexts:
    """A memo of the JSON text of each instance's annotation, for writing the same project again and again
    (the autosave): a write after one edit encodes only the instances that edit made, and the rest of the
    annotations array is string joining. Encoding an annotation checks and measures its RLE again (~0.07 ms:
    350 ms of the autosave thread's CPU, holding the GIL in small pieces, for 5,000 instances).

    An entry is used when it is the same Instance object on an image of the same id and size (the annotation
    id, which a delete may change for every later instance without an id of its own, is put in front of the
    kept text at each write): an Instance is frozen and never changed in place (engine.data.annotations), so its text
    cannot change either. Each write keeps the entries of the instances it wrote only (no growth, and no
    deleted instance kept alive). Not thread-safe: one write at a time (the autosave's writer lock)."""

    def __init__(self) -> None:
        # id(instance) -> (instance, image id, height, width, text after the annotation id); the instance
        # is held so that its id cannot be reused by another object while the entry exists
        self.entries: dict[int, tuple[Instance, int, int, int, str]] = {}
        self.encoded = 0  # annotations encoded by the last write (the rest came from the memo)


_MEMO: contextvars.ContextVar[AnnotationTexts | None] = contextvars.ContextVar("annotation_texts", default=None)


@contextlib.contextmanager
def annotation_texts(memo: AnnotationTexts) -> Iterator[AnnotationTexts]:
    """Within it, ``write_coco`` calls of this thread without a ``memo`` of their own use ``memo`` (so that
    a writer keeps calling ``write_coco(dataset, path)``, the engine's plain interface)."""
    token = _MEMO.set(memo)
    try:
        yield memo
    finally:
        _MEMO.reset(token)


def write_coco(dataset: Dataset, path: str | Path, memo: AnnotationTexts | None = None) -> None:
    """Write ``dataset`` as a COCO instances JSON at ``path`` atomically; reading it back gives the same masks.
    ``memo`` (or the one of an enclosing ``annotation_texts``): the annotations' texts of the last write of
    this project, used and updated; the bytes written are the same as without it."""
    path = Path(path)
    memo = memo if memo is not None else _MEMO.get()
    # encoded in pieces as the annotations are made: no GIL-long json.dumps, and no millions of dicts
    # alive at once for the garbage collector to walk (both froze the GUI beside the autosave thread)
    atomic_write_json(path, coco_document(dataset, path.parent, stream=True, memo=memo))


def coco_document(
    dataset: Dataset, json_folder: Path, stream: bool = False, memo: AnnotationTexts | None = None
) -> dict[str, Any]:
    """The COCO dict for ``dataset``, with image file names relative to ``json_folder``; ``stream``: the
    annotations are an iterator that makes them one by one (for ``atomic_write_json``), not a list; with a
    ``memo`` (``stream`` only) they are their JSON texts (``EncodedJSON``), taken from it where it has them."""
    images = []
    kept_annotations = list(dataset.extra.get(SKIPPED_ANNOTATIONS_KEY, []))
    instance_ids = _instance_ids(dataset, kept_annotations)
    known_categories = {category.id for category in dataset.categories}
    for image in dataset.images:
        unknown = {instance.category_id for instance in image.instances} - known_categories
        if unknown:
            raise ValueError(f"{image.path}: instances of category ids {sorted(unknown)}, which are not categories")
    for image in dataset.images:
        entry = {
            "id": image.id,
            "file_name": _relative_name(dataset.image_path(image), json_folder),
            "width": image.width,
            "height": image.height,
        }
        images.append(_with_extra(entry, image.extra, {"state": image.state}))
    if memo is not None and stream:
        annotations = _annotation_texts(dataset, instance_ids, kept_annotations, memo)
    else:
        annotations = _annotations(dataset, instance_ids, kept_annotations)
    categories = [
        _with_extra({"id": c.id, "name": c.name}, {"supercategory": "", **c.extra}, {"color": list(c.color)})
        for c in dataset.categories
    ]
    images += dataset.extra.get(SKIPPED_IMAGES_KEY, [])  # kept as they were in the file read
    top = {k: v for k, v in dataset.extra.items() if k not in (SKIPPED_ANNOTATIONS_KEY, SKIPPED_IMAGES_KEY)}
    document: dict[str, Any] = {"info": {"description": "written by Mask R-CNN Studio"}, **top}
    document.update(images=images, annotations=annotations if stream else list(annotations), categories=categories)
    document[STUDIO_KEY] = {"format_version": COCO_FORMAT_VERSION}
    return document


def _with_extra(entry: dict[str, Any], extra: dict[str, Any], studio: dict[str, Any]) -> dict[str, Any]:
    """``entry`` followed by the ``extra`` keys it does not have, then the studio's own keys."""
    for key, value in extra.items():
        if key != STUDIO_KEY:
            entry.setdefault(key, value)
    entry[STUDIO_KEY] = studio
    return entry


def _annotations(dataset: Dataset, instance_ids: dict[int, int], kept_annotations: list[Any]) -> Iterator[Any]:
    """The annotations of the instances, image by image, then those kept as they were."""
    for image in dataset.images:
        for instance in image.instances:
            yield _annotation(instance, image, instance_ids[id(instance)])
    yield from kept_annotations


def _annotation_texts(
    dataset: Dataset, instance_ids: dict[int, int], kept_annotations: list[Any], memo: AnnotationTexts
) -> Iterator[Any]:
    """``_annotations`` as JSON texts, those of unchanged instances from ``memo``; ``memo`` keeps the
    entries of this write once its last annotation is made."""
    encode = json.JSONEncoder(separators=(",", ":")).encode  # as atomic.json_chunks encodes an item
    old, new = memo.entries, {}
    encoded = 0
    for image in dataset.images:
        for instance in image.instances:
            entry = old.get(id(instance))
            if (
                entry is None
                or entry[0] is not instance
                or entry[1] != image.id
                or entry[2] != image.height
                or entry[3] != image.width
            ):
                text = encode(_annotation(instance, image, 0))
                if not text.startswith(_ID_ZERO):  # "id" is always the first key (_with_extra keeps it)
                    raise AssertionError(f"an annotation's text starts with {text[:20]!r}")
                entry = (instance, image.id, image.height, image.width, text[len(_ID_ZERO) :])
                encoded += 1
            new[id(instance)] = entry
            # the id is put in front as the encoder writes an int: an instance without an id of its own is
            # numbered by its place, so a delete renumbers every later one and must not make them new texts
            yield EncodedJSON('{"id":' + int.__repr__(instance_ids[id(instance)]) + entry[4])
    memo.entries, memo.encoded = new, encoded
    yield from kept_annotations


_ID_ZERO = '{"id":0'


def _annotation(instance: Instance, image: ImageRecord, annotation_id: int) -> dict[str, Any]:
    rle = instance.to_rle(image.height, image.width)
    segmentation = rle if instance.is_rle else instance.mask
    box = rle_box(rle) if instance.is_rle else polygons_box(instance.mask)
    extra: dict[str, Any] = {"origin": instance.origin}
    if instance.score is not None:
        extra["score"] = instance.score
    entry = {
        "id": annotation_id,
        "image_id": image.id,
        "category_id": instance.category_id,
        "segmentation": segmentation,
        "area": float(rle_area(rle)),
        "bbox": box,
        "iscrowd": int(instance.iscrowd),
    }
    return _with_extra(entry, instance.extra, extra)


def _instance_ids(dataset: Dataset, kept_annotations: list[Any]) -> dict[int, int]:
    """Python id(instance) -> annotation id: the instance's own id when set and unique, else a new one
    (never the id of an annotation kept as it was)."""
    instances = [instance for image in dataset.images for instance in image.instances]
    taken = {a.get("id") for a in kept_annotations if isinstance(a, dict) and type(a.get("id")) is int}
    result: dict[int, int] = {}
    for instance in instances:
        if instance.id is not None and instance.id not in taken:
            taken.add(instance.id)
            result[id(instance)] = instance.id
    next_id = max((i for i in taken if i < MAX_ID), default=0) + 1  # a kept annotation's id may be any int
    for instance in instances:
        if id(instance) not in result:
            while next_id in taken:
                next_id += 1
            result[id(instance)] = next_id
            next_id += 1
    return result


def _relative_name(image_path: Path, folder: Path) -> str:
    try:
        return Path(os.path.relpath(image_path, folder)).as_posix()
    except ValueError:  # another drive on Windows
        return image_path.as_posix()


def write_labelme(dataset: Dataset, folder: str | Path, tolerance: float = 0.0) -> list[Path]:
    """Write one labelme JSON per image into ``folder`` atomically; returns the written paths."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    written: list[Path] = []
    used_names: set[str] = set()
    for image in dataset.images:
        if not image.instances and image.state == "not_run":
            continue
        name = f"{Path(image.path).stem}.json"
        if name in used_names:
            name = f"{Path(image.path).stem}_{image.id}.json"
        used_names.add(name)
        document = labelme_document(dataset, image, folder, tolerance)
        atomic_write_text(folder / name, json.dumps(document, indent=2))
        written.append(folder / name)
    return written


def labelme_document(dataset: Dataset, image: ImageRecord, folder: Path, tolerance: float = 0.0) -> dict[str, Any]:
    """The labelme dict of one image; image path relative to ``folder``; crowd regions left out."""
    shapes = []
    next_group = 1
    for instance in image.instances:
        if instance.iscrowd:
            continue
        if instance.is_rle:
            polygons = mask_to_polygons(instance.decode_mask(image.height, image.width), tolerance)
        else:
            polygons = instance.mask
        group_id = None
        if len(polygons) > 1:
            group_id, next_group = next_group, next_group + 1
        label = dataset.category_by_id(instance.category_id).name
        for polygon in polygons:
            points = [[polygon[i], polygon[i + 1]] for i in range(0, len(polygon), 2)]
            shapes.append(
                {
                    "label": label,
                    "points": points,
                    "group_id": group_id,
                    "description": "",
                    "shape_type": "polygon",
                    "flags": {},
                }
            )
    return {
        "version": LABELME_VERSION,
        "flags": {},
        "shapes": shapes,
        "imagePath": _relative_name(dataset.image_path(image), folder),
        "imageData": None,
        "imageHeight": image.height,
        "imageWidth": image.width,
    }
