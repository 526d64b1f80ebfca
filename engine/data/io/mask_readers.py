"""Mask-image layouts -> Dataset: one PNG per instance (Data Science Bowl 2018) and label images.

Data Science Bowl: ``<root>/<id>/images/<id>.png`` with ``<root>/<id>/masks/*.png``, one binary PNG
per instance (nonzero = object), single category "nucleus". A sample without ``masks/`` is "not_run".

Label images (0 = background, every other value one instance; an RGB label image counts each non-black
colour as one instance). Their one category is named after the folder of label images, less the words
mask(s)/label(s) at its ends (``nuclei_masks`` -> "nuclei", ``PedMasks`` -> "Ped"; for the flat layout,
the folder itself), "object" when nothing is left:
- two subfolders, one of images and one whose name contains "mask" or "label"; a label file pairs
  with the image of the same stem, the label's stem may end in ``_mask``/``_masks``/``_label``/``_labels``
  (also with ``-``);
- one flat folder (stardist's ``img2d.tif`` + ``mask2d.tif``): files whose stem contains "mask" or
  "label" are label images; a label pairs with the image whose key is equal, where the key is the
  lower-cased stem with the words mask(s)/label(s) (for labels) or image(s)/img(s)/raw (for images)
  and the separators ``_ - . space`` removed: ``img2d`` and ``mask2d`` both give ``2d``, ``X`` and
  ``X_mask`` both give ``x``. One image and one label file alone in a folder always pair.
Images without a label file are "not_run"; label files without an image are skipped with a warning.
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
from PIL import Image

from engine.data.annotations import Category, Dataset, ImageRecord, Instance
from engine.data.errors import ImageLoadError
from engine.data.io.images import image_size, is_image_file
from engine.data.masks import label_image_to_rles

_LABEL_WORDS = re.compile(r"masks?|labels?", re.IGNORECASE)
_IMAGE_WORDS = re.compile(r"images?|imgs?|raw", re.IGNORECASE)
_SEPARATORS = re.compile(r"[_\-. ]")
_LABEL_SUFFIX = re.compile(r"[_\-](masks?|labels?)$", re.IGNORECASE)
_END_LABEL_WORDS = re.compile(r"^[_\-. ]*(masks?|labels?)(?![a-z])|(masks?|labels?)[_\-. ]*$", re.IGNORECASE)
_PREFERRED_IMAGE_FOLDERS = ("images", "image", "imgs", "img", "raw")
_UNREADABLE = (OSError, ValueError, SyntaxError, Image.DecompressionBombError, MemoryError)


def image_files(folder: Path) -> list[Path]:
    """Image files directly in ``folder``, sorted by name."""
    try:
        return sorted(p for p in folder.iterdir() if p.is_file() and is_image_file(p))
    except OSError:
        return []


def find_dsb_samples(folder: Path) -> list[Path]:
    """Sample folders of a Data Science Bowl layout (``<id>/images/<id>.*``); [] when it is not one."""
    candidates = [folder] if _is_dsb_sample(folder) else []
    if not candidates:
        candidates = [d for d in sorted(folder.iterdir()) if d.is_dir() and _is_dsb_sample(d)]
    return candidates


def _is_dsb_sample(folder: Path) -> bool:
    return any(p.stem == folder.name for p in image_files(folder / "images"))


def read_dsb(root: Path, samples: list[Path]) -> Dataset:
    """Read Data Science Bowl samples (one binary PNG per instance) under ``root``."""
    warnings: list[str] = []
    images: list[ImageRecord] = []
    for sample in samples:
        image_path = next(p for p in image_files(sample / "images") if p.stem == sample.name)
        try:
            width, height = image_size(image_path)
        except ImageLoadError as error:
            warnings.append(f"{error}; the sample was skipped")
            continue
        has_masks = (sample / "masks").is_dir()
        instances = []
        for mask_path in image_files(sample / "masks"):
            mask = _read_binary_mask(mask_path, height, width, warnings)
            if mask is not None:
                instances.append(Instance.from_mask(mask, 1))
        relative = image_path.relative_to(root).as_posix() if root in image_path.parents else str(image_path)
        images.append(ImageRecord(relative, width, height, instances, "reviewed" if has_masks else "not_run"))
    return Dataset(root, images, [Category(1, "nucleus")], warnings, source_format="dsb", source_path=root)


def _read_binary_mask(path: Path, height: int, width: int, warnings: list[str]) -> np.ndarray | None:
    try:
        with Image.open(path) as png:
            mask = np.asarray(png)
    except _UNREADABLE as error:
        warnings.append(f"{path}: not a readable mask PNG ({error}); skipped")
        return None
    mask = mask.any(axis=2) if mask.ndim == 3 else mask > 0
    if mask.shape != (height, width):
        warnings.append(f"{path}: mask is {mask.shape[1]}x{mask.shape[0]}, the image {width}x{height}; skipped")
        return None
    if not mask.any():
        warnings.append(f"{path}: the mask is empty; skipped")
        return None
    return mask


def find_label_pairs(folder: Path) -> list[tuple[Path, Path | None]]:
    """(image, label image or None) pairs of a label-image layout; [] when ``folder`` is not one."""
    subfolders = [d for d in sorted(folder.iterdir()) if d.is_dir() and image_files(d)]
    label_folders = [d for d in subfolders if _LABEL_WORDS.search(d.name)]
    image_folders = [d for d in subfolders if d not in label_folders]
    if len(label_folders) == 1 and image_folders:
        preferred = [d for d in image_folders if d.name.lower() in _PREFERRED_IMAGE_FOLDERS]
        if len(image_folders) == 1 or preferred:
            images_folder = (preferred or image_folders)[0]
            by_stem = {_LABEL_SUFFIX.sub("", p.stem).lower(): p for p in image_files(label_folders[0])}
            pairs = [(image, by_stem.get(image.stem.lower())) for image in image_files(images_folder)]
            if any(label is not None for _, label in pairs):
                return pairs
    return _flat_label_pairs(image_files(folder))


def _flat_label_pairs(files: list[Path]) -> list[tuple[Path, Path | None]]:
    labels = [p for p in files if _LABEL_WORDS.search(p.stem)]
    images = [p for p in files if p not in labels]
    if not labels or not images:
        return []
    if len(labels) == 1 and len(images) == 1:
        return [(images[0], labels[0])]
    by_key = {_SEPARATORS.sub("", _LABEL_WORDS.sub("", p.stem)).lower(): p for p in labels}
    pairs = [(image, by_key.get(_SEPARATORS.sub("", _IMAGE_WORDS.sub("", image.stem)).lower())) for image in images]
    return pairs if any(label is not None for _, label in pairs) else []


def read_label_pairs(root: Path, pairs: list[tuple[Path, Path | None]], all_labels: list[Path]) -> Dataset:
    """Read (image, label image) pairs under ``root``; ``all_labels`` finds labels left without an image."""
    warnings: list[str] = []
    images: list[ImageRecord] = []
    for image_path, label_path in pairs:
        try:
            width, height = image_size(image_path)
        except ImageLoadError as error:
            warnings.append(f"{error}; the image was skipped")
            continue
        instances = _label_instances(label_path, height, width, warnings) if label_path else None
        state = "not_run" if instances is None else "reviewed"
        images.append(ImageRecord(image_path.relative_to(root).as_posix(), width, height, instances or [], state))
    paired = {label for _, label in pairs if label is not None}
    for orphan in sorted(set(all_labels) - paired):
        warnings.append(f"{orphan}: no image pairs with this label image; skipped")
    category = Category(1, class_name_for(paired, root))
    return Dataset(root, images, [category], warnings, source_format="label_images", source_path=root)


def class_name_for(labels: set[Path] | list[Path], root: Path) -> str:
    """The class name of a label-image layout: its label folder's name (the folder of most label files, else
    ``root``) without the words mask(s)/label(s) at its ends; "object" when nothing (or a number) is left."""
    folders = [label.parent for label in labels]
    folder = max(set(folders), key=folders.count) if folders else root
    name = _END_LABEL_WORDS.sub("", folder.name).strip("_-. ")
    return name if name and not name.isdigit() else "object"


def _label_instances(path: Path, height: int, width: int, warnings: list[str]) -> list[Instance] | None:
    labels = read_label_image(path, warnings)
    if labels is None:
        return None
    if labels.shape != (height, width):
        size = f"{labels.shape[1]}x{labels.shape[0]}"
        warnings.append(f"{path}: label image is {size}, the image {width}x{height}; skipped")
        return None
    return [Instance(category_id=1, mask=rle) for rle in label_image_to_rles(labels).values()]


def read_label_image(path: Path, warnings: list[str]) -> np.ndarray | None:
    """A label image file -> int64 (H,W), 0 = background (RGB colours packed to one int); None if unreadable."""
    try:
        with Image.open(path) as label_file:
            labels = np.asarray(label_file)
    except _UNREADABLE as error:
        warnings.append(f"{path}: not a readable label image ({error}); skipped")
        return None
    if labels.ndim == 3:
        channels = labels[:, :, :3].astype(np.int64)
        labels = (channels[:, :, 0] << 16) | (channels[:, :, 1] << 8) | channels[:, :, 2]
    if labels.dtype.kind == "f":
        if not np.all(np.isfinite(labels)) or np.any(labels != np.round(labels)):
            warnings.append(f"{path}: a label image must hold whole numbers; skipped")
            return None
    return labels.astype(np.int64)


def label_files(folder: Path) -> list[Path]:
    """Files that look like label images in ``folder`` and in its label subfolder."""
    files = [p for p in image_files(folder) if _LABEL_WORDS.search(p.stem)]
    for sub in sorted(d for d in folder.iterdir() if d.is_dir() and _LABEL_WORDS.search(d.name)):
        files += image_files(sub)
    return files
