"""The edits as pure functions (gui/editing/edits.py), without Qt: small hand-made masks in, the pixels,
ids, order, classes and origins of the new instance list out."""

from __future__ import annotations

import dataclasses
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from engine.data import Instance
from engine.structures import InstanceMask
from gui.editing import edits
from gui.editing.masks import crop_of, split_parts

H, W = 20, 30
ROOT = Path(__file__).resolve().parents[2]


def box_mask(x0: int, y0: int, x1: int, y1: int) -> np.ndarray:
    mask = np.zeros((H, W), dtype=bool)
    mask[y0:y1, x0:x1] = True
    return mask


def pixels(instance: Instance) -> np.ndarray:
    return instance.decode_mask(H, W)


def same(a: tuple | list, b: tuple | list) -> bool:
    """The same objects in the same order (instances are compared by identity, as the edits find them)."""
    return len(a) == len(b) and all(x is y for x, y in zip(a, b))


@pytest.fixture
def three() -> list[Instance]:
    """Three instances: a manual square with an id, an accepted crowd region, a polygon."""
    return [
        Instance.from_mask(box_mask(1, 1, 5, 5), 1, id=7),
        Instance.from_mask(box_mask(10, 2, 14, 6), 2, origin="accepted", iscrowd=True, id=8, score=0.9),
        Instance(1, [[20.0, 10.0, 26.0, 10.0, 26.0, 16.0, 20.0, 16.0]], id=9),
    ]


def test_edits_import_neither_qt_nor_torch() -> None:
    code = "import gui.editing.edits, sys; assert 'PySide6' not in sys.modules and 'torch' not in sys.modules"
    subprocess.run([sys.executable, "-c", code], cwd=ROOT, check=True)


def test_instances_are_frozen(three: list[Instance]) -> None:
    with pytest.raises(dataclasses.FrozenInstanceError):
        three[0].category_id = 3  # type: ignore[misc]
    relabelled = dataclasses.replace(three[0], category_id=3)
    assert relabelled.category_id == 3 and three[0].category_id == 1 and relabelled.id == 7


# ----- accept -----
def test_accept_appends_accepted_instances_and_leaves_out_empty_crops(three: list[Instance]) -> None:
    crops = [
        InstanceMask(3, 12, np.ones((4, 5), dtype=bool)),
        InstanceMask(0, 0, np.zeros((2, 2), dtype=bool)),  # nothing above the mask threshold
        InstanceMask(25, 15, np.array([[True, False], [True, True]])),
    ]
    edit = edits.accept_predictions(three, crops, [2, 1, 1], [0.8, 0.7, 0.6], H, W)
    assert same(edit.instances[:3], three) and same(edit.instances[3:], edit.selected)
    assert len(edit.selected) == 2
    for instance, crop, cid, score in zip(edit.selected, [crops[0], crops[2]], [2, 1], [0.8, 0.6]):
        assert np.array_equal(pixels(instance), crop.full(H, W))
        assert (instance.category_id, instance.origin, instance.id, instance.is_rle) == (cid, "accepted", None, True)
        assert instance.score == pytest.approx(score)
    assert edits.accept_predictions(three, [], [], [], H, W).instances == tuple(three)


# ----- delete, relabel -----
def test_delete_goes_by_identity(three: list[Instance]) -> None:
    twin = dataclasses.replace(three[0])
    assert twin == three[0] and twin is not three[0]
    edit = edits.delete([*three, twin], [three[0], three[2]])
    assert same(edit.instances, [three[1], twin]) and edit.selected == ()


def test_relabel_keeps_all_but_the_class_and_the_order(three: list[Instance]) -> None:
    edit = edits.relabel(three, [three[2], three[1]], 5)
    assert edit.instances[0] is three[0]
    for old, new in zip(three[1:], edit.instances[1:]):
        assert new is not old and new.category_id == 5
        assert (new.mask, new.box, new.score, new.origin, new.iscrowd, new.id) == (
            old.mask,
            old.box,
            old.score,
            old.origin,
            old.iscrowd,
            old.id,
        )
    assert same(edit.selected, [edit.instances[2], edit.instances[1]])  # in the order they were given
    assert [i.category_id for i in three] == [1, 2, 1]  # the old ones did not change


# ----- drawing -----
def test_add_polygon(three: list[Instance]) -> None:
    assert edits.add_polygon(three, [(1, 1), (5, 1)], 1) is None
    edit = edits.add_polygon(three, [(2.004, 12), (8, 12), (8, 18), (2, 18)], 3)
    (new,) = edit.selected
    assert same(edit.instances, [*three, new])
    assert new.mask == [[2.0, 12.0, 8.0, 12.0, 8.0, 18.0, 2.0, 18.0]]
    assert (new.category_id, new.origin, new.id, new.score) == (3, "manual", None, None)
    assert np.array_equal(pixels(new), box_mask(2, 12, 8, 18))  # pycocotools rasterises the square's pixels


def test_set_polygons_keeps_class_origin_id_and_place(three: list[Instance]) -> None:
    target = three[1]
    edit = edits.set_polygons(three, target, [[0, 0, 4, 0, 4, 3, 0, 3]])
    (new,) = edit.selected
    assert same(edit.instances, [three[0], new, three[2]])
    assert (new.category_id, new.origin, new.iscrowd, new.id, new.score) == (2, "accepted", True, 8, None)
    assert new.mask == [[0.0, 0.0, 4.0, 0.0, 4.0, 3.0, 0.0, 3.0]] and new.box == [0.0, 0.0, 4.0, 3.0]
    assert np.array_equal(pixels(new), box_mask(0, 0, 4, 3))


# ----- commit a painted mask -----
def test_commit_mask_new_instance(three: list[Instance]) -> None:
    painted = box_mask(2, 8, 9, 11) | box_mask(12, 14, 13, 15)
    edit = edits.commit_mask(three, None, painted, 4)
    (new,) = edit.selected
    assert same(edit.instances, [*three, new])
    assert np.array_equal(pixels(new), painted)
    assert (new.category_id, new.origin, new.id, new.iscrowd, new.is_rle) == (4, "manual", None, False, True)
    assert edits.commit_mask(three, None, np.zeros((H, W), dtype=bool), 4) is None
    with pytest.raises(ValueError, match="category"):
        edits.commit_mask(three, None, painted)


def test_commit_mask_repaints_in_place_keeping_id_class_and_crowd_flag(three: list[Instance]) -> None:
    target = three[1]
    painted = pixels(target) | box_mask(14, 2, 16, 3)
    edit = edits.commit_mask(three, target, painted, category_id=9)  # a repaint keeps the target's class
    (new,) = edit.selected
    assert same(edit.instances, [three[0], new, three[2]])
    assert np.array_equal(pixels(new), painted)
    assert (new.category_id, new.origin, new.iscrowd, new.id, new.score) == (2, "manual", True, 8, None)


def test_commit_mask_erased_to_nothing_deletes(three: list[Instance]) -> None:
    edit = edits.commit_mask(three, three[0], np.zeros((H, W), dtype=bool))
    assert same(edit.instances, three[1:]) and edit.selected == ()


def test_commit_crop_is_commit_mask_of_the_placed_crop(three: list[Instance]) -> None:
    crop = InstanceMask(26, 17, np.ones((5, 6), dtype=bool))  # runs over the image's corner: clipped
    by_crop = edits.commit_crop(three, None, crop, H, W, 2)
    by_mask = edits.commit_mask(three, None, box_mask(26, 17, W, H), 2)
    assert by_crop.selected[0].mask == by_mask.selected[0].mask
    assert np.array_equal(pixels(by_crop.selected[0]), box_mask(26, 17, 30, 20))


# ----- split and merge -----
def test_split_connected_replaces_the_target_by_its_parts_largest_first(three: list[Instance]) -> None:
    small, large = box_mask(3, 12, 5, 14), box_mask(8, 10, 15, 16)
    target = Instance.from_mask(small | large, 2, id=11, iscrowd=True)
    instances = [three[0], target, three[2]]
    edit = edits.split_connected(instances, target, H, W)
    assert len(edit.selected) == 2 and same(edit.instances, [three[0], *edit.selected, three[2]])
    assert np.array_equal(pixels(edit.selected[0]), large) and np.array_equal(pixels(edit.selected[1]), small)
    assert all((p.category_id, p.origin, p.id, p.iscrowd) == (2, "manual", None, False) for p in edit.selected)
    with_crop = edits.split_connected(instances, target, H, W, crop=crop_of(small | large))
    assert [p.mask for p in with_crop.selected] == [p.mask for p in edit.selected]
    assert edits.split_connected(three, three[0], H, W) is None  # one piece
    diagonal = np.zeros((H, W), dtype=bool)
    diagonal[[4, 5], [4, 5]] = True  # touching corners: one 8-connected piece
    touching = Instance.from_mask(diagonal, 1)
    assert edits.split_connected([touching], touching, H, W) is None


def test_split_along_a_line(three: list[Instance]) -> None:
    target = Instance.from_mask(box_mask(4, 4, 16, 10), 3, id=5)
    instances = [three[0], target]
    edit = edits.split_along_line(instances, target, [(9.5, 0.5), (9.5, 19.5)], H, W)
    left, right = (pixels(p) for p in edit.selected)
    assert same(edit.instances, [three[0], *edit.selected])
    assert not (left & right).any() and np.array_equal(left | right, box_mask(4, 4, 16, 10))
    assert np.array_equal(left, box_mask(4, 4, 10, 10))  # largest first: the cut column joins one side
    assert np.array_equal(right, box_mask(10, 4, 16, 10))
    assert all((p.category_id, p.id, p.origin) == (3, None, "manual") for p in edit.selected)
    assert edits.split_along_line(instances, target, [(20.5, 0.5), (20.5, 19.5)], H, W) is None  # misses it
    assert edits.split_along_line(instances, target, [(9.5, 0.5), (9.5, 6.5)], H, W) is None  # not across


def test_a_cut_keeps_the_pixels_under_the_line() -> None:
    """A speck wholly under the line stays a part of its own; a cut pixel that touches a part only at a
    corner joins it (both were lost before)."""
    mask = np.zeros((H, W), dtype=bool)
    mask[0, [0, 2, 4]] = True  # three specks, the line over the first
    target = Instance.from_mask(mask, 1)
    edit = edits.split_along_line([target], target, [(0.5, 0.5), (0.5, 3.5)], H, W)
    assert sorted(int(np.flatnonzero(pixels(p)[0])[0]) for p in edit.selected) == [0, 2, 4]
    corner = box_mask(2, 2, 6, 6) | box_mask(7, 7, 11, 11)
    corner[6, 6] = True  # joins the two squares at their corners, under a line that runs along row 6
    target = Instance.from_mask(corner, 1)
    edit = edits.split_along_line([target], target, [(0.5, 6.5), (19.5, 6.5)], H, W)
    assert np.array_equal(np.sum([pixels(p) for p in edit.selected], axis=0), corner)


def test_merge_keeps_the_first_targets_place_class_id_and_crowd_flag(three: list[Instance]) -> None:
    edit = edits.merge(three, [three[1], three[0]], H, W)
    (merged,) = edit.selected
    assert same(edit.instances, [merged, three[2]])  # the first target's place: three[1] stood after three[0]
    assert np.array_equal(pixels(merged), pixels(three[0]) | pixels(three[1]))
    assert (merged.category_id, merged.id, merged.iscrowd, merged.origin) == (2, 8, True, "manual")
    assert edits.merge(three, [three[0]], H, W) is None
    crops = [crop_of(pixels(i)) for i in three]
    with_crops = edits.merge(three, three, H, W, crops=crops)
    assert with_crops.selected[0].id == 7 and same(with_crops.instances, with_crops.selected)
    assert np.array_equal(pixels(with_crops.selected[0]), np.any([pixels(i) for i in three], axis=0))


def test_an_edit_of_an_instance_that_is_not_there_is_an_error(three: list[Instance]) -> None:
    stranger = dataclasses.replace(three[0])
    with pytest.raises(ValueError, match="not among"):
        edits.set_polygons(three, stranger, [[0, 0, 4, 0, 4, 3]])


# ----- round trips -----
small_masks = arrays(bool, (12, 14), elements=st.booleans())


@settings(max_examples=60, deadline=None)
@given(mask=small_masks)
def test_merging_the_connected_parts_gives_back_the_mask(mask: np.ndarray) -> None:
    h, w = mask.shape
    other = Instance.from_mask(np.eye(h, w, dtype=bool), 2, id=1)
    target = Instance.from_mask(mask, 3, id=4)
    edit = edits.split_connected([other, target], target, h, w)
    if edit is None:
        assert not mask.any() or len(split_parts(mask)) < 2
        return
    parts = [p.decode_mask(h, w) for p in edit.selected]
    assert same(edit.instances, [other, *edit.selected])
    assert np.array_equal(np.sum(parts, axis=0), mask)  # disjoint, and all of it
    assert [int(p.sum()) for p in parts] == sorted((int(p.sum()) for p in parts), reverse=True)
    assert all(edits.split_connected(edit.selected, p, h, w) is None for p in edit.selected)  # each in one piece
    merged = edits.merge(edit.instances, edit.selected, h, w)
    assert same(merged.instances, [other, *merged.selected])
    assert np.array_equal(merged.selected[0].decode_mask(h, w), mask)


@settings(max_examples=60, deadline=None)
@given(
    mask=small_masks,
    line=st.lists(st.tuples(st.floats(-2, 16), st.floats(-2, 14)), min_size=2, max_size=4),
)
def test_a_cut_partitions_the_mask_and_merging_undoes_it(mask: np.ndarray, line: list[tuple[float, float]]) -> None:
    h, w = mask.shape
    target = Instance.from_mask(mask, 1)
    edit = edits.split_along_line([target], target, line, h, w)
    if edit is None:
        return
    parts = [p.decode_mask(h, w) for p in edit.selected]
    assert len(parts) >= 2 and all(p.any() for p in parts)
    assert np.array_equal(np.sum(parts, axis=0), mask)
    merged = edits.merge(edit.instances, edit.selected[::-1], h, w)
    assert np.array_equal(merged.selected[0].decode_mask(h, w), mask)
