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
from engine.data.io.coco_reader import read_coco
from engine.data.io.images import image_size
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


def read_dataset(path: str | Path) -> Dataset:
    """Read a COCO/labelme JSON file or a folder (COCO, labelme, DSB, label images, plain images)."""
    path = Path(path).expanduser()
    if not path.exists():
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
    """Dataset from the JSON files in ``folder`` (or a COCO file in ``folder/annotations``); None if none."""
    documents = _parse_json_files(folder)
    if not documents and (folder / "annotations").is_dir():
        documents = {p: d for p, d in _parse_json_files(folder / "annotations").items() if json_kind(d) == "coco"}
    by_kind: dict[str, dict[Path, Any]] = {"coco": {}, "labelme": {}, "other": {}}
    for json_path, document in documents.items():
        by_kind[json_kind(document)][json_path] = document
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
    for image_path in image_files(folder):
        if image_path in listed:
            continue
        try:
            width, height = image_size(image_path)
        except ImageLoadError as error:
            dataset.warnings.append(f"{error}; the image was skipped")
            continue
        relative = image_path.relative_to(dataset.root).as_posix()
        dataset.images.append(ImageRecord(relative, width, height, [], "not_run", next_id))
        next_id += 1


def _parse_json_files(folder: Path) -> dict[Path, Any]:
    paths = sorted(p for p in folder.glob("*.json") if p.is_file() and not p.name.startswith("."))
    documents = {}
    for json_path in paths:
        document = load_json(json_path)
        if isinstance(document, dict):
            document.pop("imageData", None)
        documents[json_path] = document
    return documents


def _read_mask_layouts(folder: Path) -> Dataset | None:
    samples = find_dsb_samples(folder)
    if samples:
        return read_dsb(folder, samples)
    pairs = find_label_pairs(folder)
    if pairs:
        return read_label_pairs(folder, pairs, label_files(folder))
    return None
