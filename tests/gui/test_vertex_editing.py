"""Vertex mode (issue 13, item 14): any mask (a label image's, the model's) edited as rings of vertex handles by
mouse and keys in the real window, holes and parts kept; what the autosaved COCO file holds afterwards, decoded
with pycocotools, and what the canvas draws. The pure part (gui/editing/rings.py, edits.set_rings) is tested
with hand-made masks."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from PySide6.QtCore import Qt

from engine.data import Instance
from engine.structures import InstanceMask
from gui.editing import edits
from gui.editing.rings import Ring, mask_to_rings, rings_to_crop
from gui.panels.shortcuts_dialog import ShortcutsDialog
from tests.gui.conftest import Driver
from tests.gui.test_editing import CTRL, SHIFT, assert_shape, convex_polygon_depth, decode

H, W = 96, 128
ALT = Qt.KeyboardModifier.AltModifier
OUTER = [(20, 20), (60, 20), (60, 50), (20, 50)]  # the frame's outer square (pixel corners)
HOLE = [(32, 28), (48, 28), (48, 42), (32, 42)]  # its hole
PARTS = [(80, 20, 96, 36), (100, 60, 116, 76)]  # the two-part instance: x0, y0, x1, y1 of each square


def label_image() -> np.ndarray:
    """Label 1: a square frame (a mask with a hole); label 2: two separate squares (one mask in two parts)."""
    labels = np.zeros((H, W), dtype=np.uint8)
    labels[20:50, 20:60] = 1
    labels[28:42, 32:48] = 0
    for x0, y0, x1, y1 in PARTS:
        labels[y0:y1, x0:x1] = 2
    return labels


@pytest.fixture
def label_folder(tmp_path) -> Path:
    """A label-image project: images/ and masks/ (one label PNG per image)."""
    root = tmp_path / "cells"
    (root / "images").mkdir(parents=True)
    (root / "masks").mkdir()
    rng = np.random.default_rng(0)
    for name in ("img_0.png", "img_1.png"):
        Image.fromarray((rng.random((H, W, 3)) * 255).astype(np.uint8)).save(root / "images" / name)
    Image.fromarray(label_image()).save(root / "masks" / "img_0.png")
    return root


def saved_masks(app: Driver) -> list[np.ndarray]:
    return [decode(a["segmentation"], H, W) for a in app.saved_annotations("img_0.png")]


def frame(outer=OUTER, hole=HOLE) -> np.ndarray:  # noqa: ANN001
    """The expected frame: inside the (convex) outer ring and not inside the hole, at pixel centres."""
    return (convex_polygon_depth(outer) > 0) & ~(convex_polygon_depth(hole) > 0)


def same_points(ring: np.ndarray, points) -> bool:  # noqa: ANN001
    """The ring has these vertices (to 0.01 px), in some rotation and direction."""
    a, b = np.asarray(ring, float).reshape(-1, 2), np.asarray(points, float).reshape(-1, 2)
    return len(a) == len(b) and np.allclose(a[np.lexsort(a.T[::-1])], b[np.lexsort(b.T[::-1])], atol=0.01)


def open_labels(app: Driver, folder: Path) -> None:
    """Open the label-image project on its first image (the one with the label image)."""
    assert app.open(folder)
    if app.index != 0:
        app.go_to(0)
        app.wait_until(lambda: app.index == 0 and app.image is not None and app.is_idle())
    assert app.annotations_drawn() == 2


def enter_vertex_mode_on(app: Driver, x: float, y: float) -> None:
    if app.tool() != "edit":
        app.press(Qt.Key.Key_J, CTRL)
    app.click(x, y)
    assert len(app.selected_annotations()) == 1
    app.press(Qt.Key.Key_V)
    assert app.tool() == "vertex"


# ----- a mask with a hole -----
def test_a_label_mask_with_a_hole_edits_as_an_outer_ring_and_a_hole_ring(driver: Driver, label_folder):
    open_labels(driver, label_folder)
    before = saved_masks_or_none(driver)
    enter_vertex_mode_on(driver, 24, 35)  # on the frame's left bar
    rings, holes = driver.rings_shown(), driver.hole_rings_shown()
    assert holes == [False, True]
    assert same_points(rings[0], OUTER) and same_points(rings[1], HOLE)
    assert not driver.unsaved() and saved_masks_or_none(driver) == before  # entering changes nothing

    seen = driver.drag([(60, 20), (70, 10)])  # the outer ring's top-right corner, dragged up and out
    moved = [(20, 20), seen[-1], (60, 50), (20, 50)]  # where the mouse let go, as the canvas saw it
    masks = saved_masks(driver)
    assert len(masks) == 2
    assert_shape(masks[0] | (convex_polygon_depth(HOLE) > 0), convex_polygon_depth(moved), margin=0.5)
    assert not masks[0][28:42, 32:48].any()  # the hole is still a hole
    assert np.array_equal(masks[0], frame(moved))
    assert np.array_equal(masks[1], label_image() == 2)  # the other instance is untouched
    assert same_points(driver.rings_shown()[0], moved) and driver.hole_rings_shown() == [False, True]

    driver.press(Qt.Key.Key_Z, CTRL)  # undo: the frame as it was, its vertices on screen again
    assert np.array_equal(saved_masks(driver)[0], label_image() == 1)
    assert driver.tool() == "vertex" and same_points(driver.rings_shown()[0], OUTER)
    driver.press(Qt.Key.Key_Z, CTRL | SHIFT)  # redo
    assert np.array_equal(saved_masks(driver)[0], frame(moved))
    assert same_points(driver.rings_shown()[0], moved)


def saved_masks_or_none(app: Driver) -> object:
    path = app.saved_path()
    return None if path is None or not path.exists() else path.read_bytes()


def test_the_hole_ring_is_edited_too_delete_by_key_and_by_right_click(driver: Driver, label_folder):
    open_labels(driver, label_folder)
    enter_vertex_mode_on(driver, 24, 35)
    driver.hover(driver.widget_point(48, 42))  # over the hole's bottom-right vertex
    driver.press(Qt.Key.Key_Delete)  # removes that vertex (not the mask)
    triangle = [(32, 28), (48, 28), (32, 42)]
    assert driver.hole_rings_shown() == [False, True] and same_points(driver.rings_shown()[1], triangle)
    masks = saved_masks(driver)
    assert len(masks) == 2  # the mask was not deleted
    assert np.array_equal(masks[0], frame(OUTER, triangle))

    driver.right_click(20, 50)  # the outer ring's bottom-left vertex
    outer = [(20, 20), (60, 20), (60, 50)]
    assert same_points(driver.rings_shown()[0], outer)
    # even-odd: where the hole ring now sticks out of the outer ring, it fills instead of cutting
    inside_outer, inside_hole = convex_polygon_depth(outer) > 0, convex_polygon_depth(triangle) > 0
    assert (inside_hole & ~inside_outer).any()
    assert np.array_equal(saved_masks(driver)[0], inside_outer ^ inside_hole)

    driver.right_click(60, 50)  # a triangle keeps its 3 vertices: the mask is kept as it is
    assert same_points(driver.rings_shown()[0], outer)
    assert "at least 3 vertices" in driver.status()


def test_double_click_and_alt_click_on_an_edge_insert_a_vertex_that_can_be_dragged(driver: Driver, label_folder):
    open_labels(driver, label_folder)
    enter_vertex_mode_on(driver, 24, 35)
    driver.double_click(20, 35)  # the outer ring's left edge
    assert len(driver.rings_shown()[0]) == 5
    assert any(np.allclose(v, (20, 35), atol=0.6) for v in driver.rings_shown()[0])
    assert np.array_equal(saved_masks(driver)[0], label_image() == 1)  # a vertex on the edge changes no pixel

    driver.click(40, 20, ALT)  # the top edge
    assert len(driver.rings_shown()[0]) == 6
    inserted = next(v for v in driver.rings_shown()[0] if abs(v[0] - 40) < 0.6 and abs(v[1] - 20) < 0.6)
    driver.drag([tuple(inserted), (40, 8)])  # pull the top edge up into a point
    grown = saved_masks(driver)[0]
    assert grown[12, 40] and not (label_image() == 1)[12, 40]  # pixels above the old top edge now belong
    assert not grown[28:42, 32:48].any()  # the hole stays


def test_a_mask_in_two_parts_edits_as_two_rings_and_saves_as_two_polygons(driver: Driver, label_folder):
    open_labels(driver, label_folder)
    enter_vertex_mode_on(driver, 88, 28)
    rings = driver.rings_shown()
    assert driver.hole_rings_shown() == [False, False]
    corners = [[(x0, y0), (x1, y0), (x1, y1), (x0, y1)] for x0, y0, x1, y1 in PARTS]
    assert sorted(same_points(r, c) for r in rings for c in corners).count(True) == 2

    driver.drag([(116, 76), (124, 90)])  # the second square's bottom-right corner
    annotation = driver.saved_annotations("img_0.png")[1]
    assert isinstance(annotation["segmentation"], list) and len(annotation["segmentation"]) == 2  # polygons
    mask = decode(annotation["segmentation"], H, W)
    assert mask[20:36, 80:96].all()  # the first part is kept whole
    assert mask[85, 118] and not (label_image() == 2)[85, 118]  # the second one grew
    assert annotation["category_id"] == driver.saved()["categories"][0]["id"]


def test_escape_and_v_again_leave_vertex_mode_with_the_mask_still_selected(driver: Driver, label_folder):
    open_labels(driver, label_folder)
    enter_vertex_mode_on(driver, 24, 35)
    driver.press(Qt.Key.Key_Escape)
    assert driver.tool() == "edit" and len(driver.selected_annotations()) == 1
    driver.press(Qt.Key.Key_V)
    assert driver.tool() == "vertex" and len(driver.rings_shown()) == 2
    driver.press(Qt.Key.Key_V)
    assert driver.tool() == "edit" and driver.rings_shown() == []


def test_delete_with_no_vertex_under_the_mouse_deletes_the_mask_as_before(driver: Driver, label_folder):
    open_labels(driver, label_folder)
    enter_vertex_mode_on(driver, 24, 35)
    driver.hover(driver.widget_point(100, 10))  # far from every vertex
    driver.press(Qt.Key.Key_Delete)
    assert len(driver.saved_annotations("img_0.png")) == 1


# ----- a mask from the model -----
def test_v_on_a_selected_prediction_accepts_it_and_edits_its_vertices(ready: Driver):
    assert ready.shown_count() > 0
    ready.pick_row(0)
    assert ready.selected_prediction() == 0
    crop = ready.prediction.masks[ready.shown[0]]
    ready.press(Qt.Key.Key_V)
    assert ready.tool() == "vertex"
    assert ready.annotations_drawn() == 1 and len(ready.selected_annotations()) == 1
    rings = ready.rings_shown()
    assert rings and len(rings[0]) >= 3
    full = np.zeros((H, W), dtype=bool)
    full[crop.y0 : crop.y0 + crop.mask.shape[0], crop.x0 : crop.x0 + crop.mask.shape[1]] = crop.mask
    traced = rings_to_crop([Ring(np.asarray(r), h) for r, h in zip(rings, ready.hole_rings_shown())], H, W)
    shown = np.zeros((H, W), dtype=bool)
    shown[traced.y0 : traced.y0 + traced.mask.shape[0], traced.x0 : traced.x0 + traced.mask.shape[1]] = traced.mask
    assert (shown & full).sum() / (shown | full).sum() > 0.8  # the rings follow the model's mask
    ready.saved()  # the accept is saved (the image list's row then changes) ...
    ready.wait_view_settled()  # ... and the panels' changes, which can resize the canvas, are done
    ring = rings[0]
    top = ring[np.argmin(ring[:, 1])]
    assert top[1] >= 4, "the tiny model's first mask touches the image's top: move another vertex"
    seen = ready.drag([tuple(top), (top[0], max(0.0, top[1] - 6))])
    assert np.allclose(seen[0], top, atol=1.0)  # pressed on the vertex
    saved = ready.saved_annotations("img_0.png")
    holes = any(ready.hole_rings_shown())
    assert len(saved) == 1 and isinstance(saved[0]["segmentation"], list) != holes  # polygons unless a hole
    mask = decode(saved[0]["segmentation"], H, W)
    first_row = int(np.argmax(full.any(axis=1)))
    assert first_row >= 2 and mask[: first_row - 1].any()  # pulled above the model's mask


def test_in_vertex_mode_v_on_another_prediction_accepts_that_one_too(ready: Driver):
    assert ready.shown_count() >= 2
    ready.pick_row(0)
    ready.press(Qt.Key.Key_V)
    first = ready.selected_annotations()
    ready.pick_row(0)  # a prediction (the accepted one is no longer listed as one), picked while in vertex mode
    assert ready.selected_prediction() >= 0 and not ready.selected_annotations()
    ready.press(Qt.Key.Key_V)
    assert ready.tool() == "vertex" and ready.annotations_drawn() == 2
    assert len(ready.selected_annotations()) == 1 and ready.selected_annotations() != first
    assert ready.rings_shown()


# ----- the shortcuts list -----
def test_the_shortcuts_dialog_lists_vertex_mode(window):
    dialog = ShortcutsDialog(window)
    assert dialog.keys_for("Vertices") == "V"
    assert dialog.keys_for("Insert a vertex there") == "Double-click / Alt+click an edge"


# ----- the pure part -----
def test_rings_of_a_mask_fill_back_to_the_same_pixels_holes_islands_and_parts():
    rng = np.random.default_rng(3)
    for _ in range(300):
        h, w = rng.integers(1, 24, 2)
        mask = rng.random((h, w)) < rng.uniform(0.2, 0.8)
        rings = mask_to_rings(InstanceMask(7, 4, mask), tolerance=0)
        back = rings_to_crop(rings, 40, 40)
        expected = np.zeros((40, 40), dtype=bool)
        expected[4 : 4 + h, 7 : 7 + w] = mask
        got = np.zeros((40, 40), dtype=bool)
        got[back.y0 : back.y0 + back.mask.shape[0], back.x0 : back.x0 + back.mask.shape[1]] = back.mask
        assert np.array_equal(got, expected)


def test_an_island_in_a_hole_is_an_outer_ring_again():
    mask = np.zeros((20, 20), dtype=bool)
    mask[2:18, 2:18] = True
    mask[5:15, 5:15] = False
    mask[8:12, 8:12] = True
    rings = mask_to_rings(InstanceMask(0, 0, mask))
    assert [r.hole for r in rings] == [False, False, True]
    assert np.array_equal(rings_to_crop(rings, 20, 20).mask, mask[2:18, 2:18])


def test_simplified_rings_of_a_round_mask_fill_back_to_it_with_fewer_vertices():
    y, x = np.mgrid[:80, :80]
    disc = (x - 40) ** 2 + (y - 40) ** 2 < 30**2
    rings = mask_to_rings(InstanceMask(0, 0, disc))
    back = rings_to_crop(rings, 80, 80)
    full = np.zeros_like(disc)
    full[back.y0 : back.y0 + back.mask.shape[0], back.x0 : back.x0 + back.mask.shape[1]] = back.mask
    assert np.array_equal(full, disc)  # the first edit does not move pixels nobody touched
    corners = len(mask_to_rings(InstanceMask(0, 0, disc), tolerance=0)[0].points)
    assert len(rings[0].points) < 0.8 * corners
    print(f"disc of radius 30: {len(rings[0].points)} vertices ({corners} crack corners), filled back exactly")


def test_set_rings_keeps_class_id_and_place_and_stores_holes_as_rle():
    a, b = Instance(1, [[0, 0, 4, 0, 4, 4]], id=7), Instance(2, [[10, 10, 14, 10, 14, 14]], id=8, origin="accepted")
    outer, hole = Ring(np.array([[0, 0], [10, 0], [10, 10], [0, 10]], float), False), None
    hole = Ring(np.array([[3, 3], [6, 3], [6, 6], [3, 6]], float), True)
    edit = edits.set_rings((a, b), b, [outer, hole], 20, 20)
    assert edit.instances[0] is a and edit.instances[1].id == 8 and edit.instances[1].category_id == 2
    new = edit.instances[1]
    assert new.is_rle and new.origin == "manual" and new.score is None
    mask = new.decode_mask(20, 20)
    assert mask[:10, :10].sum() == 100 - 9 and not mask[3:6, 3:6].any()
    polygons = edits.set_rings((a, b), a, [outer], 20, 20).instances[0]
    assert not polygons.is_rle and polygons.mask == [[0.0, 0.0, 10.0, 0.0, 10.0, 10.0, 0.0, 10.0]]
    assert edits.set_rings((a,), a, [Ring(np.array([[0, 0], [5, 0], [9, 0]], float), False)], 20, 20) is None
