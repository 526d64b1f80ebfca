"""Rejected predictions kept with the project (issue 13, loop leftovers): ``<folder>/models/rejections.json``.

A Delete on a prediction (review queue or edit mode) says "there is no object like this here". It was kept for the
session only, so a reopened folder showed the rejected predictions again and a reviewed image's expected work rose.
The rejections now live beside the runs and ``project.json`` (the project's own files, not the COCO file: they are
no annotations, and other tools reading the COCO file must not train on them), as
``{"version": 1, "images": {image path relative to the folder: {"size": [H, W], "rejected": [{"x0", "y0",
"rle"}]}}}`` where ``rle`` is the compressed COCO RLE of the rejected mask's crop placed at (x0, y0).

Which predictions a rejection hides, now and after reopening: those whose mask overlaps a rejected mask at mask
IoU >= 0.5, whatever model made them (the rule the window already applied within a session: gui/window/controller.py
``hidden_predictions``). Not by model id: the rejection is about a place in the image, and a retrained model that
proposes the same sliver or the same two-nuclei mask again repeats the mistake the user already decided on (the loop
drive saw exactly that after training); a new model's predictions elsewhere, or of another shape, are not hidden. Nor
by class: Delete means "not an object", while relabelling is a digit key.

Qt-free. Reading a missing or damaged file gives no rejections (a damaged entry is skipped); an image whose size
changed since (the file was replaced) drops its rejections. Writes are atomic (temp file, fsync, rename).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from engine.data.masks import decode_rle, encode_mask
from engine.structures import InstanceMask

REJECTIONS_FILE = Path("models") / "rejections.json"
VERSION = 1


def rejections_path(root: Path) -> Path:
    return Path(root) / REJECTIONS_FILE


def _image_key(root: Path, path: str) -> str:
    """An image's key in the file: its path relative to the folder (posix), else the path as given."""
    try:
        return Path(path).resolve().relative_to(Path(root).resolve()).as_posix()
    except (ValueError, OSError, RuntimeError):
        return str(path)


def _stored_images(path: Path) -> dict:
    try:
        document = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    images = document.get("images") if isinstance(document, dict) else None
    return images if isinstance(images, dict) else {}


def load_rejections(root: Path, paths: list[str], sizes: list[tuple[int, int]]) -> dict[int, list[InstanceMask]]:
    """The rejections stored for the images ``paths`` (with their (height, width)), by image index."""
    images = _stored_images(rejections_path(root))
    out: dict[int, list[InstanceMask]] = {}
    for index, path in enumerate(paths):
        entry = images.get(_image_key(root, path))
        if not isinstance(entry, dict) or list(entry.get("size") or []) != list(sizes[index]):
            continue  # none, or the image is not the one the rejections were made on
        height, width = sizes[index]
        crops = []
        for item in entry.get("rejected") or []:
            crop = _decode(item, height, width)
            if crop is not None:
                crops.append(crop)
        if crops:
            out[index] = crops
    return out


def _decode(item: object, height: int, width: int) -> InstanceMask | None:
    """One stored rejection as a crop inside the image, or None when it is damaged."""
    try:
        x0, y0 = int(item["x0"]), int(item["y0"])
        mask = decode_rle(item["rle"])
    except (KeyError, TypeError, ValueError):
        return None
    h, w = mask.shape
    if x0 < 0 or y0 < 0 or x0 + w > width or y0 + h > height or not mask.any():
        return None
    return InstanceMask(x0, y0, mask)


class RejectionStore:
    """Writes a project's rejections; each crop is encoded once (the store keeps its entry while it is rejected)."""

    def __init__(self, root: Path) -> None:
        self.root = Path(root)
        self._entries: dict[int, tuple[InstanceMask, dict]] = {}  # id(crop) -> (crop, its entry)
        self._keys: tuple[list[str] | None, list[str]] = (None, [])  # the paths list -> the images' keys

    def _image_keys(self, paths: list[str]) -> list[str]:
        """The keys of the project's images, worked out once per paths list (resolving 2,000 paths takes ~40 ms)."""
        if self._keys[0] is not paths or len(self._keys[1]) != len(paths):
            self._keys = (paths, [_image_key(self.root, path) for path in paths])
        return self._keys[1]

    def fingerprint(self, rejected: dict[int, list[InstanceMask]]) -> tuple:
        """What the file would hold, cheaply compared: a change of any image's list changes it."""
        return tuple(
            (index, tuple((id(c), c.x0, c.y0, c.mask.shape) for c in crops))
            for index, crops in sorted(rejected.items())
            if crops
        )

    def document(self, rejected: dict[int, list[InstanceMask]], paths: list[str], sizes: list) -> dict:
        images, entries = {}, {}
        for index, crops in sorted(rejected.items()):
            if not crops or not 0 <= index < len(paths):
                continue
            items = []
            for crop in crops:
                known = self._entries.get(id(crop))
                if known is None or known[0] is not crop:
                    rle = encode_mask(np.asarray(crop.mask, dtype=bool))
                    known = (crop, {"x0": int(crop.x0), "y0": int(crop.y0), "rle": rle})
                entries[id(crop)] = known
                items.append(known[1])
            height, width = sizes[index]
            images[self._image_keys(paths)[index]] = {"size": [int(height), int(width)], "rejected": items}
        self._entries = entries  # those no longer rejected are forgotten
        return {"version": VERSION, "images": images}

    def write(self, rejected: dict[int, list[InstanceMask]], paths: list[str], sizes: list) -> None:
        """Write the file atomically (OSError when it cannot be: the caller says so); no rejection anywhere and no
        file yet: nothing is written (a folder is not given a models/ folder for nothing)."""
        from engine.data.io.atomic import atomic_write_text

        document = self.document(rejected, paths, sizes)
        target = rejections_path(self.root)
        mine = set(self._image_keys(paths))
        for key, entry in _stored_images(target).items():  # images this open does not hold (another COCO file's
            if key not in mine:  # subset of the folder, a file moved away for now) keep theirs
                document["images"].setdefault(key, entry)
        if not document["images"] and not target.exists():
            return
        atomic_write_text(target, json.dumps(document, separators=(",", ":")))
