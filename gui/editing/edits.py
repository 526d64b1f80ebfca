"""The edits of an image's annotations as pure functions: an instance list in, a new one out.

Each takes the image's instances (frozen ``Instance``s, in order) and what the edit needs, and returns
an ``Edit``: the new instance list and the instances to select. Qt-free and torch-free (numpy,
engine.data, engine.structures): nothing here touches an undo stack, a canvas, a signal or the window.
The Editor (gui/editing/operations.py) resolves what an edit needs (the class, which may have to be
added first; the selected instances; the prediction), calls one of these and pushes the result as one
undo command (gui/editing/undo.py).

Rules the functions keep, as the app always has:
- an instance is found by identity (``is``), never by value: two instances may be equal;
- nothing is changed in place: untouched instances are the same objects in the new list, an edited
  one is a new object in the old one's place;
- a mask made from pixels (painted, accepted, split, merged) is stored as RLE with origin "manual"
  ("accepted" for a prediction taken over); a repainted or merged instance keeps the old one's id and
  crowd flag, the parts of a split are new instances (no id; the writer gives them one).
"""

from __future__ import annotations

import itertools
import operator
from collections.abc import Sequence
from dataclasses import replace
from typing import NamedTuple

import numpy as np

from engine.data import Instance
from engine.structures import InstanceMask
from gui.editing.masks import crop_of, crop_to_rle, cut_along_line, split_parts
from gui.editing.rings import rings_to_crop

Instances = Sequence[Instance]
Point = tuple[float, float]


class Edit(NamedTuple):
    instances: tuple[Instance, ...]  # the image's instances after the edit, in order
    selected: tuple[Instance, ...] = ()  # the instances the edit made (what the Editor selects next)


# ----- predictions -> annotations -----
def accept_predictions(
    instances: Instances,
    crops: Sequence[InstanceMask],
    category_ids: Sequence[int],
    scores: Sequence[float],
    height: int,
    width: int,
) -> Edit:
    """Predictions (their mask crops, classes and scores) appended as "accepted" instances of an image of
    (height, width); an empty crop is left out."""
    new = tuple(
        Instance(int(cid), crop_to_rle(crop, height, width), score=float(score), origin="accepted")
        for crop, cid, score in zip(crops, category_ids, scores, strict=True)
        if crop.mask.any()
    )
    return Edit((*instances, *new), new)


# ----- delete, relabel -----
def delete(instances: Instances, targets: Instances) -> Edit:
    """The instances without ``targets``."""
    gone = {id(t) for t in targets}
    # the ids tested in C (itertools and map): a generator over 5,000 instances was ~3 ms of each delete
    return Edit(tuple(itertools.compress(instances, map(operator.not_, map(gone.__contains__, map(id, instances))))))


def relabel(instances: Instances, targets: Instances, category_id: int) -> Edit:
    """``targets`` moved to class ``category_id`` (all else kept: mask, id, score, origin), in place in the list."""
    changed = {id(t): replace(t, category_id=category_id) for t in targets}
    return Edit(tuple(changed.get(id(i), i) for i in instances), tuple(changed.values()))


def delete_category(instances: Instances, category_id: int, move_to: int | None = None) -> Edit:
    """A class deleted from one image: its instances removed (``move_to`` None) or moved to class ``move_to``
    (all else kept), in place in the list. Selects the moved ones."""
    if move_to is None:
        return Edit(tuple(i for i in instances if i.category_id != category_id))
    return relabel(instances, [i for i in instances if i.category_id == category_id], move_to)


# ----- drawing -----
def add_polygon(instances: Instances, points: Sequence[Point], category_id: int) -> Edit | None:
    """A drawn polygon (x, y points, rounded to 0.01 px) appended as a manual instance; None: under 3 points."""
    if len(points) < 3:
        return None
    flat = [round(float(v), 2) for point in points for v in point]
    new = Instance(category_id, [flat], origin="manual")
    return Edit((*instances, new), (new,))


def set_polygons(instances: Instances, target: Instance, polygons: Sequence[Sequence[float]]) -> Edit:
    """``target`` with new polygons (its box recomputed, its score dropped; class, origin, id kept)."""
    edited = replace(target, mask=[list(p) for p in polygons], box=None, score=None)
    return Edit(_swap(instances, target, (edited,)), (edited,))


def set_rings(instances: Instances, target: Instance, rings: Sequence, height: int, width: int) -> Edit | None:
    """``target`` reshaped to vertex-edited rings (gui/editing/rings.py; class, id and crowd flag kept, score
    dropped, origin "manual"). Without a hole ring it is stored as polygons (the vertices as drawn, rounded to
    0.01 px; parts that overlap are joined, as COCO polygons are); with one, as the RLE of the rings' even-odd
    fill, since a COCO polygon cannot hold a hole. None: the rings enclose no pixel."""
    crop = rings_to_crop(rings, height, width)
    if not crop.mask.any():
        return None
    if any(ring.hole for ring in rings):
        edited = _from_crop(crop, height, width, target.category_id, target)
    else:
        polygons = [[round(float(v), 2) for v in np.asarray(ring.points).ravel()] for ring in rings]
        edited = Instance(target.category_id, polygons, origin="manual", iscrowd=target.iscrowd, id=target.id)
    return Edit(_swap(instances, target, (edited,)), (edited,))


def commit_mask(
    instances: Instances, target: Instance | None, mask: np.ndarray, category_id: int | None = None
) -> Edit | None:
    """A painted full-image (H,W) bool mask: a new instance of ``category_id`` (no target), ``target``
    repainted, or ``target`` deleted when the mask is empty. None: an empty mask and no target."""
    height, width = mask.shape
    return commit_crop(instances, target, crop_of(mask), height, width, category_id)


def commit_crop(
    instances: Instances,
    target: Instance | None,
    crop: InstanceMask,
    height: int,
    width: int,
    category_id: int | None = None,
) -> Edit | None:
    """``commit_mask`` for a mask given as a crop of an (height, width) image (a box tool's result)."""
    if not crop.mask.any():
        return None if target is None else delete(instances, (target,))
    if target is None:
        if category_id is None:
            raise ValueError("a new instance needs a category id")
        new = _from_crop(crop, height, width, category_id)
        return Edit((*instances, new), (new,))
    new = _from_crop(crop, height, width, target.category_id, target)
    return Edit(_swap(instances, target, (new,)), (new,))


# ----- split and merge -----
def split_connected(
    instances: Instances, target: Instance, height: int, width: int, crop: InstanceMask | None = None
) -> Edit | None:
    """``target`` replaced, where it stood, by its 8-connected parts (largest first). None: it is in one
    piece. ``crop``: the target's mask as a crop, when the caller has it decoded already."""
    crop = _crop(target, height, width, crop)
    return _replace_with_parts(instances, target, crop, split_parts(crop.mask), height, width)


def split_along_line(
    instances: Instances,
    target: Instance,
    points: Sequence[Point],
    height: int,
    width: int,
    crop: InstanceMask | None = None,
) -> Edit | None:
    """``target`` cut along a polyline (image x, y points) into its parts (largest first), where it stood.
    None: the line does not cut it in two."""
    crop = _crop(target, height, width, crop)
    local = [(x - crop.x0, y - crop.y0) for x, y in points]
    return _replace_with_parts(instances, target, crop, cut_along_line(crop.mask, local), height, width)


def merge(
    instances: Instances, targets: Instances, height: int, width: int, crops: Sequence[InstanceMask] | None = None
) -> Edit | None:
    """``targets`` (two or more) merged into one instance in the first target's place, with its class, id and
    crowd flag; the others removed. None: fewer than two targets."""
    if len(targets) < 2:
        return None
    crops = [_crop(t, height, width, None) for t in targets] if crops is None else list(crops)
    crops = [c for c in crops if c.mask.size] or [InstanceMask(0, 0, np.zeros((0, 0), dtype=bool))]
    x0, y0 = min(c.x0 for c in crops), min(c.y0 for c in crops)
    x1 = max(c.x0 + c.mask.shape[1] for c in crops)
    y1 = max(c.y0 + c.mask.shape[0] for c in crops)
    union = np.zeros((y1 - y0, x1 - x0), dtype=bool)
    for c in crops:
        union[c.y0 - y0 : c.y0 - y0 + c.mask.shape[0], c.x0 - x0 : c.x0 - x0 + c.mask.shape[1]] |= c.mask
    first = targets[0]
    merged = _from_crop(InstanceMask(x0, y0, union), height, width, first.category_id, first)
    gone = {id(t) for t in targets[1:]}
    kept = [merged if i is first else i for i in instances if id(i) not in gone]
    return Edit(tuple(kept), (merged,))


# ----- helpers -----
def _replace_with_parts(
    instances: Instances, target: Instance, crop: InstanceMask, parts: list[np.ndarray], height: int, width: int
) -> Edit | None:
    if len(parts) < 2:
        return None
    new = tuple(_from_crop(InstanceMask(crop.x0, crop.y0, part), height, width, target.category_id) for part in parts)
    return Edit(_swap(instances, target, new), new)


def _swap(instances: Instances, target: Instance, new: Sequence[Instance]) -> tuple[Instance, ...]:
    """The instances with ``target`` replaced by ``new`` (zero or more), where it stood."""
    at = next((k for k, i in enumerate(instances) if i is target), None)
    if at is None:
        raise ValueError("the instance to edit is not among the image's instances")
    return (*instances[:at], *new, *instances[at + 1 :])


def _from_crop(crop: InstanceMask, height: int, width: int, category_id: int, old: Instance | None = None) -> Instance:
    rle = crop_to_rle(crop, height, width)
    if old is None:
        return Instance(category_id, rle, origin="manual")
    return Instance(category_id, rle, origin="manual", iscrowd=old.iscrowd, id=old.id)


def _crop(instance: Instance, height: int, width: int, crop: InstanceMask | None) -> InstanceMask:
    return crop if crop is not None else crop_of(instance.decode_mask(height, width))
