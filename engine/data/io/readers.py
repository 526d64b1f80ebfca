"""read_dataset: detect the layout of a file or folder and read it into a Dataset.

Detection order for a folder: COCO or labelme JSON files in it (a COCO file may also sit in an
``annotations/`` subfolder; images beside a COCO file that it does not list join as "not_run"),
then the Data Science Bowl layout, then image + label-image pairs, then a plain folder of images
(no instances, state "not_run"). A ``.json`` file is read as COCO or labelme by its content.
See coco_reader, labelme_reader and mask_readers for what each layout accepts.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from engine.data.annotations import Dataset, ImageRecord
from engine.data.errors import DatasetError, ImageLoadError
from engine.data.io.coco_reader import SKIPPED_ANNOTATIONS_KEY, SKIPPED_IMAGES_KEY, read_coco
from engine.data.io.images import image_size, is_existing_dir, is_existing_file
from engine.data.io.json_files import json_kind, load_json
from engine.data.io.labelme_reader import read_labelme_folder
from engine.data.io.mask_readers import (
    find_dsb_samples,
    find_label_pairs,
    image_files,
    label_files,
    read_dsb,
    read_label_pairs,
)

PROJECT_FILE_NAME = "annotations.json"
"""Where the app saves a project that was not read from a COCO file; never skipped when it is broken."""


def read_dataset(path: str | Path) -> Dataset:
    """Read a COCO/labelme JSON file or a folder (COCO, labelme, DSB, label images, plain images)."""
    path = Path(path).expanduser()
    if not path.exists():
        if path.is_symlink():
            raise DatasetError(path, "is a symbolic link that leads nowhere or round in a loop; check the link")
        raise DatasetError(path, "does not exist; check the path")
    if path.is_file():
        return _read_json_file(path)
    warnings: list[str] = []
    dataset = _read_json_folder(path, warnings)
    if dataset is None:
        dataset = _read_mask_layouts(path)
    if dataset is None:
        if not image_files(path):
            raise DatasetError(
                path, "holds no images and no annotation files (COCO or labelme JSON, mask or label-image folders)"
            )
        dataset = read_labelme_folder(path, {})
    dataset.warnings[:0] = warnings
    return dataset


def _read_json_file(path: Path) -> Dataset:
    if path.suffix.lower() != ".json":
        raise DatasetError(path, "is not a .json annotation file; open its folder instead")
    document = load_json(path)
    kind = json_kind(document)
    if kind == "coco":
        return read_coco(path, document)
    if kind == "labelme":
        return read_labelme_folder(path.parent, {path: document}, include_unannotated_images=False)
    raise DatasetError(path, "is neither a COCO instances file ('images', 'annotations') nor a labelme file ('shapes')")


def _read_json_folder(folder: Path, warnings: list[str]) -> Dataset | None:
    """Dataset from the JSON files in ``folder`` (or a COCO file in ``folder/annotations``); None if none.

    A JSON file that cannot be parsed is skipped with a warning when the folder is a labelme folder
    (its other files are labelme files, and the studio never writes over them); otherwise it is an error,
    as it may be the project's annotation file that the next save would replace (``annotations.json`` is
    never skipped).
    """
    documents, broken = _parse_json_files(folder)
    if not documents and not broken and is_existing_dir(folder / "annotations"):
        documents, broken = _parse_json_files(folder / "annotations")
        documents = {p: d for p, d in documents.items() if json_kind(d) == "coco"}
    by_kind: dict[str, dict[Path, Any]] = {"coco": {}, "labelme": {}, "other": {}}
    for json_path, document in documents.items():
        by_kind[json_kind(document)][json_path] = document
    if broken:
        saved_to = [error for error in broken if Path(error.path).name == PROJECT_FILE_NAME]
        if saved_to or by_kind["coco"] or not by_kind["labelme"]:
            raise (saved_to or broken)[0]
        warnings += [f"{error}; the file was skipped" for error in broken]
    for json_path in by_kind["other"]:
        warnings.append(f"{json_path}: neither a COCO nor a labelme file; ignored")
    coco = by_kind["coco"]
    if len(coco) > 1:
        named = [p for p in coco if p.name == "annotations.json"]
        if len(named) != 1:
            names = ", ".join(p.name for p in sorted(coco))
            raise DatasetError(folder, f"holds several COCO files ({names}); open one of them")
        coco = {named[0]: coco[named[0]]}
    if coco:
        ((json_path, document),) = coco.items()
        if by_kind["labelme"]:
            warnings.append(f"{folder}: the labelme files were ignored in favour of the COCO file {json_path.name}")
        dataset = read_coco(json_path, document)
        if json_path.parent == folder:
            _add_unlisted_images(dataset, folder)
        return dataset
    if by_kind["labelme"]:
        return read_labelme_folder(folder, by_kind["labelme"])
    return None


def _add_unlisted_images(dataset: Dataset, folder: Path) -> None:
    """Images put in a COCO project's folder after its JSON was written join as "not_run" images."""
    listed = {dataset.image_path(image) for image in dataset.images}
    next_id = max((image.id for image in dataset.images), default=0) + 1
    kept = dataset.extra.get(SKIPPED_ANNOTATIONS_KEY, [])
    referenced = {a.get("image_id") for a in kept if isinstance(a, dict) and type(a.get("image_id")) is int}
    kept_images = [entry for entry in dataset.extra.get(SKIPPED_IMAGES_KEY, []) if isinstance(entry, dict)]
    referenced |= {entry.get("id") for entry in kept_images if type(entry.get("id")) is int}
    kept_names = {Path(str(entry.get("file_name")).replace("\\", "/")).name for entry in kept_images}
    for image_path in image_files(folder):
        if image_path in listed or image_path.name in kept_names:  # a skipped entry's image stays out
            continue
        while next_id in referenced:  # an annotation kept as it was must not come to name this image
            next_id += 1
        try:
            width, height = image_size(image_path)
        except ImageLoadError as error:
            dataset.warnings.append(f"{error}; the image was skipped")
            continue
        relative = image_path.relative_to(dataset.root).as_posix()
        dataset.images.append(ImageRecord(relative, width, height, [], "not_run", next_id))
        next_id += 1


def _parse_json_files(folder: Path) -> tuple[dict[Path, Any], list[DatasetError]]:
    """The parsed JSON files directly in ``folder`` by path, and the errors of those that did not parse."""
    try:
        paths = sorted(p for p in folder.glob("*.json") if is_existing_file(p) and not p.name.startswith("."))
    except OSError as error:
        raise DatasetError(folder, f"cannot list the folder ({error.strerror or error})") from error
    documents = {}
    broken = []
    for json_path in paths:
        try:
            document = load_json(json_path)
        except DatasetError as error:
            broken.append(error)
            continue
        if isinstance(document, dict):
            document.pop("imageData", None)
        documents[json_path] = document
    return documents, broken


def _read_mask_layouts(folder: Path) -> Dataset | None:
    samples = find_dsb_samples(folder)
    if samples:
        return read_dsb(folder, samples)
    pairs = find_label_pairs(folder)
    if pairs:
        return read_label_pairs(folder, pairs, label_files(folder))
    return None
