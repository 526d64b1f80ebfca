"""What is open: a folder (or one image) read through ``engine.data.read_dataset``, with image states.

Qt-free. States shown in the image list: "not_run", "predicted" (by the model, in this session or
saved so), "annotated" (it holds instances that train: accepted, drawn, edited or read from a file),
"reviewed" (a person said so: Ctrl+Return; no edit sets it), "error" (could not be read). Edits are
saved to ``annotation_path`` (COCO): the COCO file the project was read from, else ``annotations.json``
in the folder.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from engine.data import Dataset, DatasetError, ImageRecord, Instance, read_dataset
from engine.data.io.images import is_image_file
from engine.structures import InstanceMask
from engine.training.subsets import is_annotated

ANNOTATION_FILE = "annotations.json"
CROP_CACHE_LIMIT = 50_000  # decoded crops kept (all images); more and those of other images are dropped


@dataclass
class Project:
    root: Path
    dataset: Dataset
    paths: list[str]
    states: list[str]
    warnings: list[str] = field(default_factory=list)
    start_index: int = 0
    rejected: dict[int, list[InstanceMask]] = field(default_factory=dict)  # per image, this session only
    _crops: dict[int, tuple[Instance, InstanceMask]] = field(default_factory=dict)
    mask_errors: list[str] = field(default_factory=list)  # masks that could not be decoded, not yet reported
    _crop_limit: int = CROP_CACHE_LIMIT

    @classmethod
    def open(cls, path: str | Path) -> Project:
        """A folder, an annotation .json or an image file (its folder opens, with the image selected)."""
        try:
            path = Path(path).expanduser().resolve()
        except RuntimeError as exc:  # Python 3.11's Path.resolve: "Symlink loop from ..."
            raise DatasetError(path, "is a symbolic link that leads round in a loop; check the link") from exc
        except OSError as exc:
            raise DatasetError(path, f"cannot be resolved ({exc})") from exc
        if path.is_file() and is_image_file(path):
            return cls._open_image(path)
        dataset = read_dataset(path)
        return cls.from_dataset(dataset)

    @classmethod
    def from_dataset(cls, dataset: Dataset, start_index: int | None = None) -> Project:
        """``start_index`` None: the first image still to annotate (where the work stopped), else the first."""
        paths = [str(dataset.image_path(record)) for record in dataset.images]
        states = [initial_state(record) for record in dataset.images]
        if start_index is None:
            todo = [i for i, state in enumerate(states) if state not in ("annotated", "reviewed")]
            start_index = todo[0] if todo and len(todo) < len(states) else 0
        return cls(dataset.root, dataset, paths, states, list(dataset.warnings), start_index)

    @classmethod
    def _open_image(cls, image: Path) -> Project:
        try:
            dataset = read_dataset(image.parent)
        except DatasetError:
            dataset = None
        if dataset is not None:
            project = cls.from_dataset(dataset)
            if str(image) in project.paths:
                project.start_index = project.paths.index(str(image))
                return project
        from engine.data import image_size

        width, height = image_size(image)  # raises ImageLoadError with a clear message
        record = ImageRecord(str(image), width, height)
        return cls.from_dataset(Dataset(image.parent, [record], []))

    def __len__(self) -> int:
        return len(self.paths)

    @property
    def records(self) -> list[ImageRecord]:
        return self.dataset.images

    def category_names(self) -> list[str]:
        return [c.name for c in self.dataset.categories]

    def annotation_path(self) -> Path:
        """Where edits are saved: the COCO file this project came from, else <folder>/annotations.json."""
        source = self.dataset.source_path
        if self.dataset.source_format == "coco" and source is not None:
            return Path(source)
        return self.root / ANNOTATION_FILE

    def display_state(self, index: int) -> str:
        return display_state(self.records[index])

    def annotations(self, index: int) -> list[Instance]:
        """The user's instances of image ``index`` (what the annotation layer shows and the tools edit)."""
        return [instance for instance in self.records[index].instances if instance.origin != "predicted"]

    def crop(self, index: int, instance: Instance) -> InstanceMask:
        """An instance's mask as a crop, decoded once per instance object (edits make new objects)."""
        cached = self._crops.get(id(instance))
        if cached is not None and cached[0] is instance:
            return cached[1]
        record = self.records[index]
        try:
            crop = crop_of(instance.decode_mask(record.height, record.width))
        except Exception as exc:  # noqa: BLE001 - a mask the reader let through must not stop the image showing
            crop = InstanceMask(0, 0, np.zeros((0, 0), dtype=bool))  # empty: not drawn, matched or selectable
            name = Path(record.path).name
            which = f"id {instance.id}" if instance.id is not None else "an annotation"
            self.mask_errors.append(
                f"The mask of {which} on {name} could not be decoded ({type(exc).__name__}: {exc}); it is not shown"
            )
        if len(self._crops) >= self._crop_limit:
            self._prune_crops(record)
        self._crops[id(instance)] = (instance, crop)
        return crop

    def _prune_crops(self, record: ImageRecord) -> None:
        """Keep the crops of ``record``'s instances only (the image being edited). Were it simply cleared,
        an image with more instances than the limit would decode all of them again on every redraw; when
        that image alone fills the cache, the limit grows instead (pruning stays rare: amortised O(1))."""
        keep = {id(instance) for instance in record.instances}
        self._crops = {key: value for key, value in self._crops.items() if key in keep}
        self._crop_limit = max(CROP_CACHE_LIMIT, 2 * len(self._crops))

    def annotation_crops(self, index: int, height: int, width: int) -> tuple[list[InstanceMask], list, list[str]]:
        """The user's (non-empty) instances of image ``index`` as crops, their category colours and names."""
        crops, colors, names = [], [], []
        for instance in self.annotations(index):
            crop = self.crop(index, instance)
            if not crop.mask.size:
                continue
            crops.append(crop)
            color, name = self.category_style(instance.category_id)
            colors.append(color)
            names.append(name)
        return crops, colors, names

    def category_style(self, category_id: int) -> tuple[tuple[int, int, int], str]:
        try:
            category = self.dataset.category_by_id(category_id)
        except KeyError:
            return (255, 255, 255), str(category_id)
        return category.color, category.name


def display_state(record: ImageRecord) -> str:
    if record.state == "reviewed":
        return "reviewed"
    if is_annotated(record):  # the trainer's rule (engine.training.subsets): "annotated" images are what trains
        return "annotated"
    return record.state


def initial_state(record: ImageRecord) -> str:
    return display_state(record)


def crop_of(mask: np.ndarray) -> InstanceMask:
    """Full (H,W) bool -> the crop around its pixels (an empty crop when there are none)."""
    rows, cols = np.any(mask, 1), np.any(mask, 0)
    if not rows.any():
        return InstanceMask(0, 0, np.zeros((0, 0), dtype=bool))
    y0, y1 = np.flatnonzero(rows)[[0, -1]]
    x0, x1 = np.flatnonzero(cols)[[0, -1]]
    return InstanceMask(int(x0), int(y0), mask[y0 : y1 + 1, x0 : x1 + 1].copy())
