"""What is open: a folder (or one image) read through ``engine.data.read_dataset``, with image states.

Qt-free. States shown in the image list: "not_run", "predicted" (by the model, in this session or
saved so), "annotated" (the file holds the user's instances), "error" (could not be read).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from engine.data import Dataset, DatasetError, ImageRecord, read_dataset
from engine.data.images import is_image_file
from engine.predict import InstanceMask


@dataclass
class Project:
    root: Path
    dataset: Dataset
    paths: list[str]
    states: list[str]
    warnings: list[str] = field(default_factory=list)
    start_index: int = 0

    @classmethod
    def open(cls, path: str | Path) -> Project:
        """A folder, an annotation .json or an image file (its folder opens, with the image selected)."""
        path = Path(path).expanduser().resolve()
        if path.is_file() and is_image_file(path):
            return cls._open_image(path)
        dataset = read_dataset(path)
        return cls.from_dataset(dataset)

    @classmethod
    def from_dataset(cls, dataset: Dataset, start_index: int = 0) -> Project:
        paths = [str(dataset.image_path(record)) for record in dataset.images]
        states = [initial_state(record) for record in dataset.images]
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

    def annotation_crops(self, index: int, height: int, width: int) -> tuple[list[InstanceMask], list, list[str]]:
        """The user's instances of image ``index`` as crops, their category colours and names."""
        record = self.records[index]
        crops, colors, names = [], [], []
        for instance in record.instances:
            if instance.origin == "predicted":
                continue
            mask = instance.decode_mask(height, width)
            rows, cols = np.any(mask, 1), np.any(mask, 0)
            if not rows.any():
                continue
            y0, y1 = np.flatnonzero(rows)[[0, -1]]
            x0, x1 = np.flatnonzero(cols)[[0, -1]]
            crops.append(InstanceMask(int(x0), int(y0), mask[y0 : y1 + 1, x0 : x1 + 1]))
            try:
                category = self.dataset.category_by_id(instance.category_id)
                colors.append(category.color)
                names.append(category.name)
            except KeyError:
                colors.append((255, 255, 255))
                names.append(str(instance.category_id))
        return crops, colors, names


def initial_state(record: ImageRecord) -> str:
    if record.state == "predicted":
        return "predicted"
    if any(instance.origin != "predicted" for instance in record.instances):
        return "annotated"
    return "not_run"
