"""The autosave encodes only what an edit changed (issue 12.5): the JSON text of each annotation is kept
between saves (engine.data.io.writers.AnnotationTexts), and every save still writes the very bytes of a
full encode (``write_coco`` without the memo) after random deletes, adds, relabels, undos (the old objects
put back), instances without ids (numbered by their place: a delete renumbers all later ones), an image
renumbered and another one resized."""

from __future__ import annotations

import dataclasses
import random
from pathlib import Path

import numpy as np

from engine.data import Category, Dataset, ImageRecord, Instance, write_coco
from engine.data.io.writers import AnnotationTexts
from engine.data.masks import encode_mask
from gui.workers.autosave import AutoSaver


def square(x: int, y: int, size: int, height: int, width: int, rle: bool) -> dict | list:
    if not rle:
        return [[float(x), float(y), float(x + size), float(y), float(x + size), float(y + size)]]
    mask = np.zeros((height, width), bool)
    mask[y : y + size, x : x + size] = True
    return encode_mask(mask)


def dense_dataset(folder: Path, count: int) -> Dataset:
    """Two images: ``count`` instances (RLE and polygons, most without an id of their own) on the first."""
    rng = random.Random(0)
    instances = [
        Instance(
            1 + i % 2,
            square(rng.randrange(180), rng.randrange(180), rng.randrange(3, 18), 200, 200, rle=i % 3 == 0),
            score=None if i % 4 else rng.random(),
            origin="accepted" if i % 4 == 0 else "manual",
            id=1000 + i if i % 10 == 0 else None,
        )
        for i in range(count)
    ]
    records = [
        ImageRecord("dense.png", 200, 200, instances, state="reviewed", id=1),
        ImageRecord("other.png", 200, 200, [Instance(2, square(5, 5, 9, 200, 200, rle=True))], id=2),
    ]
    return Dataset(
        folder,
        records,
        [Category(1, "cell"), Category(2, "blob")],
        source_format="coco",
        source_path=folder / "annotations.json",
    )


def full_encode(dataset: Dataset, path: Path) -> bytes:
    write_coco(dataset, path)  # no memo: every annotation encoded
    return path.read_bytes()


def test_a_save_after_one_edit_of_5000_encodes_one_annotation_and_writes_a_full_encodes_bytes(qtbot, tmp_path):
    dataset = dense_dataset(tmp_path, 5000)
    record = dataset.images[0]
    saver = AutoSaver()
    try:
        saver.attach(dataset, tmp_path / "annotations.json")
        saver.edited()
        assert saver.flush()
        assert saver._writer.memo.encoded == 5001  # the first save encodes everything
        # a relabel, as the editor makes it: a new Instance in a new list
        instances = record.instances
        changed = dataclasses.replace(instances[2500], category_id=3 - instances[2500].category_id)
        record.instances = [*instances[:2500], changed, *instances[2501:]]
        saver.edited()
        assert saver.flush()
        assert saver._writer.memo.encoded == 1
        assert (tmp_path / "annotations.json").read_bytes() == full_encode(dataset, tmp_path / "full.json")
    finally:
        saver.shutdown()


def test_random_edits_and_undos_save_the_bytes_of_a_full_encode(qtbot, tmp_path):
    dataset = dense_dataset(tmp_path, 600)
    first, second = dataset.images
    saver = AutoSaver()
    rng = random.Random(3)
    history: list[list[Instance]] = []  # the lists edits replaced: an undo puts the very objects back
    encoded = []
    try:
        saver.attach(dataset, tmp_path / "annotations.json")
        for step in range(40):
            instances = first.instances
            kind = rng.choice(["delete", "add", "relabel", "undo", "move"] if history else ["delete", "add"])
            if kind == "undo":
                first.instances = history.pop()
            else:
                history.append(instances)
                at = rng.randrange(len(instances))
                if kind == "delete":
                    first.instances = instances[:at] + instances[at + 1 :]
                elif kind == "add":
                    new = Instance(2, square(rng.randrange(150), 7, 11, 200, 200, rle=step % 2 == 0))
                    first.instances = [*instances[:at], new, *instances[at:]]
                elif kind == "relabel":
                    changed = dataclasses.replace(instances[at], category_id=3 - instances[at].category_id)
                    first.instances = [*instances[:at], changed, *instances[at + 1 :]]
                else:  # an instance moved to the end: its place (and so its id when it has none) changes
                    first.instances = [*instances[:at], *instances[at + 1 :], instances[at]]
            if step == 20:  # the second image renumbered: its annotation's image_id changes
                second.id = 7
            saver.edited()
            assert saver.flush()
            encoded.append(saver._writer.memo.encoded)
            assert (tmp_path / "annotations.json").read_bytes() == full_encode(dataset, tmp_path / "full.json"), (
                step,
                kind,
            )
        assert max(encoded[1:]) <= 2  # never everything again: at most the new instance and image 2's
    finally:
        saver.shutdown()


def test_a_memo_entry_is_not_used_for_an_image_of_another_size(tmp_path):
    """The same instance objects written as the annotations of a resized image: a size mismatch is the
    error a full encode gives, not the old image's text."""
    dataset = dense_dataset(tmp_path, 30)
    memo = AnnotationTexts()
    write_coco(dataset, tmp_path / "a.json", memo)
    dataset.images[1].width = 250  # image 2's RLE no longer fits it
    messages = []
    for target, with_memo in (("a.json", memo), ("full.json", None)):
        try:
            write_coco(dataset, tmp_path / target, with_memo)
        except ValueError as exc:
            messages.append(str(exc))
    assert len(messages) == 2 and messages[0] == messages[1] and "does not match the image size" in messages[0]
