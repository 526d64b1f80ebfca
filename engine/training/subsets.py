"""Which images and instances a run trains on: the one rule for the trainer, the Train panel's counts and the
image list's "annotated" state. Plain Python (no torch), so the app's Qt-free session can use it.

An instance trains unless it is a crowd region or a prediction nobody accepted (origin "predicted"). Subset
"reviewed": the images marked reviewed (one without instances trains as a negative: nothing to find there);
"annotated": the images with at least one instance that trains.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable

from engine.data.annotations import Dataset, ImageRecord, Instance

TRAIN_SUBSETS = ("reviewed", "annotated")


def trains(instance: Instance) -> bool:
    """Whether ``instance`` is ground truth for training (not a crowd region, not an unaccepted prediction)."""
    return not instance.iscrowd and instance.origin != "predicted"


def is_annotated(record: ImageRecord) -> bool:
    """Whether the image holds at least one instance that trains."""
    return any(trains(instance) for instance in record.instances)


def in_subset(record: ImageRecord, subset: str) -> bool:
    """Whether the image trains under ``subset`` (one of TRAIN_SUBSETS)."""
    if subset == "reviewed":
        return record.state == "reviewed"
    if subset == "annotated":
        return is_annotated(record)
    raise ValueError(f"subset must be one of {TRAIN_SUBSETS}, got {subset!r}")


def training_ids(records: Iterable[ImageRecord], subset: str) -> list[int]:
    """The ids of the images that train under ``subset``, in the records' order."""
    return [record.id for record in records if in_subset(record, subset)]


def subset_counts(records: Iterable[ImageRecord]) -> dict[str, int]:
    """How many images each subset trains on: {"reviewed": n, "annotated": m} (what the Train panel shows)."""
    records = list(records)
    return {subset: sum(in_subset(record, subset) for record in records) for subset in TRAIN_SUBSETS}


def training_view(dataset: Dataset) -> Dataset:
    """``dataset`` with only the instances that train (a shallow copy: the records' other fields are shared)."""
    images = [
        dataclasses.replace(record, instances=[i for i in record.instances if trains(i)]) for record in dataset.images
    ]
    return dataclasses.replace(dataset, images=images)
