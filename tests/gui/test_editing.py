"""Editing as a user does it: mouse and keys on the real canvas of the real window (through the ``Driver`` of
tests/gui/conftest.py), and what ends up in the COCO file the AutoSaver writes next to the images (decoded
with pycocotools)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from pycocotools import mask as mask_utils
from PySide6.QtCore import Qt
from PySide6.QtWidgets import QInputDialog

from engine.checkpoint import load_weights as load_model_weights
from engine.data import read_dataset
from engine.inference import Predictor
from tests.gui.conftest import LEFT, Driver, write_images

H, W = 96, 128  # write_images' default size
CTRL = Qt.KeyboardModifier.ControlModifier
SHIFT = Qt.KeyboardModifier.ShiftModifier


# ----- driving the window -----
def undo(app: Driver) -> None:
    app.press(Qt.Key.Key_Z, CTRL)


def redo(app: Driver) -> None:
    app.press(Qt.Key.Key_Z, CTRL | SHIFT)


def draw(app: Driver, points, close_by_click: bool = False) -> list[tuple[float, float]]:  # noqa: ANN001
    if app.tool() != "polygon":
        app.press(Qt.Key.Key_P)
    assert app.tool() == "polygon"
    seen = [app.click(x, y) for x, y in points]
    if close_by_click:
        app.click(*points[0])
    else:
        app.press(Qt.Key.Key_Return)
    assert app.polygon_points() == []  # closed
    return seen


# the same, for tests written against (qtbot, window)
def open_folder(qtbot, window, folder: Path) -> None:  # noqa: ANN001
    assert Driver(qtbot, window).open(folder)


def press(qtbot, window, key, modifier=Qt.KeyboardModifier.NoModifier) -> None:  # noqa: ANN001
    """A key press on the canvas (where the focus is while drawing); menu shortcuts fire from there."""
    Driver(qtbot, window).press(key, modifier)


def draw_polygon(qtbot, window, points, close_by_click: bool = False) -> list[tuple[float, float]]:  # noqa: ANN001
    return draw(Driver(qtbot, window), points, close_by_click)


def wait_saved(qtbot, window, timeout: int = 5000) -> dict:  # noqa: ANN001
    """Wait for the autosave (no flush: the debounced writer thread does it) and read the file."""
    return Driver(qtbot, window).saved(timeout)


# ----- what is on disk -----
def decode(segmentation, height: int, width: int) -> np.ndarray:  # noqa: ANN001
    if isinstance(segmentation, list):
        rle = mask_utils.merge(mask_utils.frPyObjects(segmentation, height, width))
    else:
        counts = segmentation["counts"]
        rle = {"size": segmentation["size"], "counts": counts.encode() if isinstance(counts, str) else counts}
    return mask_utils.decode(rle).astype(bool)


def file_annotations(doc: dict, image_name: str = "img_0.png") -> list[dict]:
    image = next(i for i in doc["images"] if Path(i["file_name"]).name == image_name)
    return [a for a in doc["annotations"] if a["image_id"] == image["id"]]


def file_masks(doc: dict, image_name: str = "img_0.png") -> list[np.ndarray]:
    image = next(i for i in doc["images"] if Path(i["file_name"]).name == image_name)
    return [decode(a["segmentation"], image["height"], image["width"]) for a in file_annotations(doc, image_name)]


def file_state(doc: dict, image_name: str = "img_0.png") -> str:
    image = next(i for i in doc["images"] if Path(i["file_name"]).name == image_name)
    return image["studio"]["state"]


def category_names(doc: dict) -> dict[int, str]:
    return {c["id"]: c["name"] for c in doc["categories"]}


# ----- expected pixels, computed independently of gui/editing/masks.py -----
def centres() -> tuple[np.ndarray, np.ndarray]:
    return np.meshgrid(np.arange(W) + 0.5, np.arange(H) + 0.5)  # x, y of each pixel centre


def convex_polygon_depth(points) -> np.ndarray:  # noqa: ANN001
    """(H,W): signed distance of each pixel centre inside a convex polygon (positive inside)."""
    x, y = centres()
    pts = np.asarray(points, float)
    (ax, ay), (bx, by) = pts[1] - pts[0], pts[2] - pts[1]
    if ax * by - ay * bx < 0:  # one orientation, so that the normals below point inwards
        pts = pts[::-1]
    depth = np.full((H, W), np.inf)
    for a, b in zip(pts, np.roll(pts, -1, axis=0)):
        edge = b - a
        normal = np.array([-edge[1], edge[0]]) / np.hypot(*edge)  # points inwards for this orientation
        depth = np.minimum(depth, (x - a[0]) * normal[0] + (y - a[1]) * normal[1])
    return depth


def distance_to_polyline(points) -> np.ndarray:  # noqa: ANN001
    x, y = centres()
    best = np.full((H, W), np.inf)
    pts = np.asarray(points, float)
    for a, b in zip(pts[:-1], pts[1:]) if len(pts) > 1 else [(pts[0], pts[0])]:
        ab = b - a
        t = np.clip(((x - a[0]) * ab[0] + (y - a[1]) * ab[1]) / max(float(ab @ ab), 1e-12), 0, 1)
        best = np.minimum(best, np.hypot(x - a[0] - t * ab[0], y - a[1] - t * ab[1]))
    return best


def assert_shape(mask: np.ndarray, depth: np.ndarray, margin: float = 1.0) -> None:
    """Every pixel deeper than ``margin`` inside is set, every pixel further than ``margin`` outside is not."""
    assert mask[depth > margin].all(), f"{int((~mask[depth > margin]).sum())} interior pixels missing"
    assert not mask[depth < -margin].any(), f"{int(mask[depth < -margin].sum())} pixels outside the shape"


RECT = [(20, 20), (60, 20), (60, 50), (20, 50)]
TRIANGLE = [(80, 20), (120, 20), (100, 60)]


@pytest.fixture
def folder(tmp_path) -> Path:
    path = tmp_path / "imgs"
    write_images(path, 2)
    return path


# ----- 1. polygons, undo, redo -----
def test_polygons_closed_with_enter_or_the_first_vertex_are_saved_and_undo_redo_reach_the_file(driver, folder):
    app = driver
    app.open(folder)
    rect = draw(app, RECT)
    triangle = draw(app, TRIANGLE, close_by_click=True)
    doc = app.saved()
    assert app.saved_path() == folder / "annotations.json"
    masks = file_masks(doc)
    assert len(masks) == 2 and file_state(doc) == "not_run" and file_state(doc, "img_1.png") == "not_run"
    assert_shape(masks[0], convex_polygon_depth(rect))
    assert_shape(masks[1], convex_polygon_depth(triangle))
    assert abs(int(masks[0].sum()) - 40 * 30) <= 60 and abs(int(masks[1].sum()) - 800) <= 60
    assert not (masks[0] & masks[1]).any()
    assert [a["studio"]["origin"] for a in file_annotations(doc)] == ["manual", "manual"]
    assert app.image_rows()[0].startswith("[annotated]")  # reviewed only when a person says so (Ctrl+Return)

    undo(app)  # Ctrl+Z: the triangle goes
    doc = app.saved()
    after_undo = file_masks(doc)
    assert len(after_undo) == 1 and (after_undo[0] == masks[0]).all()
    assert app.annotations_drawn() == 1

    redo(app)  # Ctrl+Shift+Z: it comes back, the same pixels
    doc = app.saved()
    after_redo = file_masks(doc)
    assert len(after_redo) == 2 and (after_redo[0] == masks[0]).all() and (after_redo[1] == masks[1]).all()


def test_backspace_and_escape_while_drawing_a_polygon(driver, folder):
    app = driver
    app.open(folder)
    app.press(Qt.Key.Key_P)
    for x, y in [*RECT, (40, 70)]:
        app.click(x, y)
    app.press(Qt.Key.Key_Backspace)  # the stray vertex goes
    assert len(app.polygon_points()) == 4
    app.press(Qt.Key.Key_Return)
    doc = app.saved()
    assert len(file_masks(doc)) == 1 and abs(int(file_masks(doc)[0].sum()) - 1200) <= 60
    for x, y in TRIANGLE:
        app.click(x, y)
    app.press(Qt.Key.Key_Escape)  # dropped, nothing added
    assert app.polygon_points() == [] and len(app.project.records[0].instances) == 1
    assert not app.unsaved()


# ----- 2. brush, eraser, brush size -----
def test_brush_strokes_add_pixels_the_eraser_removes_them_and_brackets_resize_the_brush(driver, folder):
    app = driver
    app.open(folder)
    app.press(Qt.Key.Key_B)
    assert app.tool() == "brush" and app.selected_annotations() == []
    radius = app.brush_radius()
    stroke = app.drag([(30, 30), (60, 30)])  # nothing selected: a new mask
    doc = app.saved()
    (first,) = file_masks(doc)
    distance = distance_to_polyline(stroke)
    assert_shape(first, radius - distance, margin=0.5)
    assert first[30, 45] and not first[30, 70] and not first[50, 45]

    second = app.drag([(45, 30), (45, 60)])  # the new mask is selected: this stroke adds to it
    doc = app.saved()
    (grown,) = file_masks(doc)
    assert (grown >= first).all() and grown.sum() > first.sum()
    assert grown[55, 45] and not first[55, 45]
    assert_shape(grown, radius - np.minimum(distance, distance_to_polyline(second)), margin=0.5)

    app.press(Qt.Key.Key_E)  # the eraser takes a disk out of the selected mask
    assert app.tool() == "eraser"
    centre = app.click(58, 30)
    doc = app.saved()
    (erased,) = file_masks(doc)
    disk = distance_to_polyline([centre])
    assert not erased[disk <= radius - 0.5].any()
    assert (erased[disk > radius + 0.01] == grown[disk > radius + 0.01]).all()
    assert erased.sum() < grown.sum() and erased[30, 35] and not erased[30, 58]

    app.press(Qt.Key.Key_B)
    for _ in range(4):
        app.press(Qt.Key.Key_BracketRight)
    big = app.brush_radius()
    assert big > radius + 6 and f"brush {big} px" in app.edit_status()
    app.press(Qt.Key.Key_Escape)  # nothing selected: the next dab is a new mask
    dab = app.click(95, 60)
    doc = app.saved()
    masks = file_masks(doc)
    assert len(masks) == 2
    assert_shape(masks[1], big - distance_to_polyline([dab]), margin=0.5)
    for _ in range(4):
        app.press(Qt.Key.Key_BracketLeft)
    assert abs(app.brush_radius() - radius) <= 1  # ] then [ as often: back to (about) the start


# ----- 3. box -----
def test_without_a_model_a_box_is_the_rectangle(driver, folder):
    app = driver
    app.open(folder)
    assert app.model_path() is None
    app.press(Qt.Key.Key_R)
    assert app.tool() == "box"
    start, end = app.drag([(20, 20), (60, 50)])
    doc = app.saved()
    (mask,) = file_masks(doc)
    x, y = centres()
    expected = (x >= min(start[0], end[0])) & (x <= max(start[0], end[0]))
    expected &= (y >= min(start[1], end[1])) & (y <= max(start[1], end[1]))
    assert (mask == expected).all()
    rows, cols = np.flatnonzero(mask.any(1)), np.flatnonzero(mask.any(0))
    # about the 40x30 drag asked for (the view may still settle between mapping the points and the events)
    assert abs(len(cols) - 40) <= 5 and abs(len(rows) - 30) <= 5


def test_with_a_model_a_box_becomes_the_mask_heads_mask_for_it(ready, weights_file):
    app = ready
    app.press(Qt.Key.Key_R)
    start, end = app.drag([(25, 20), (75, 70)])
    app.wait_until(lambda: not app.pending_boxes() and app.is_idle(), timeout=30000)
    assert "rectangle is used" not in app.status()
    doc = app.saved()
    (mask,) = file_masks(doc)
    names = category_names(doc)
    (annotation,) = file_annotations(doc)
    assert names[annotation["category_id"]] == "cell"  # the model's first class: its label 1
    model, _info = load_model_weights(weights_file)
    predictor = Predictor(model)
    predictor.predict(np.array(Image.open(app.project.paths[0]).convert("RGB")))
    box = (min(start[0], end[0]), min(start[1], end[1]), max(start[0], end[0]), max(start[1], end[1]))
    crop = predictor.mask_from_box(box, 1, app.settings().mask_threshold)
    expected = np.zeros((H, W), bool)
    expected[crop.y0 : crop.y0 + crop.mask.shape[0], crop.x0 : crop.x0 + crop.mask.shape[1]] = crop.mask
    x, y = centres()
    rectangle = (x >= box[0]) & (x <= box[2]) & (y >= box[1]) & (y <= box[3])
    assert expected.any() and (expected != rectangle).sum() > 0.05 * rectangle.sum()  # not the fallback
    assert (mask ^ expected).sum() <= 0.01 * expected.sum()  # the same mask (float noise at the threshold aside)
    rows, cols = np.nonzero(mask)
    assert cols.min() >= int(box[0]) - 1 and cols.max() <= box[2] + 1 and rows.min() >= int(box[1]) - 1
    assert rows.max() <= box[3] + 1


# ----- 4. classes and relabelling -----
def add_class(app: Driver, monkeypatch, name: str) -> None:  # noqa: ANN001
    """The Classes panel's add button, answering the name dialog with ``name``."""
    monkeypatch.setattr(QInputDialog, "getText", staticmethod(lambda *args, **kwargs: (name, True)))
    app.qtbot.mouseClick(app.window.classes.add_button, LEFT)
    assert name in app.class_names_listed()


def test_a_digit_relabels_the_selected_instance_and_undo_restores_its_class(driver, folder, monkeypatch):
    app = driver
    app.open(folder)
    draw(app, RECT)
    draw(app, TRIANGLE)
    add_class(app, monkeypatch, "blob")
    doc = app.saved()
    assert sorted(category_names(doc).values()) == ["blob", "object"]
    old = [a["category_id"] for a in file_annotations(doc)]
    assert {category_names(doc)[c] for c in old} == {"object"}
    masks = file_masks(doc)
    app.press(Qt.Key.Key_J, CTRL)  # edit mode
    app.press(Qt.Key.Key_Escape)
    app.click(40, 35)  # inside the rectangle
    assert len(app.selected_annotations()) == 1
    app.press(Qt.Key.Key_2)  # class row 2: blob
    doc = app.saved()
    names = category_names(doc)
    assert [names[a["category_id"]] for a in file_annotations(doc)] == ["blob", "object"]
    assert all((a == b).all() for a, b in zip(file_masks(doc), masks))  # relabelled, not reshaped
    undo(app)
    doc = app.saved()
    assert [a["category_id"] for a in file_annotations(doc)] == old


def test_picking_a_class_in_the_class_list_relabels_the_selection(driver, folder, monkeypatch):
    app = driver
    app.open(folder)
    draw(app, RECT)
    add_class(app, monkeypatch, "blob")
    app.press(Qt.Key.Key_J, CTRL)
    app.click(40, 35)
    assert len(app.selected_annotations()) == 1
    classes = app.window.classes
    item = classes.list.item(app.class_names_listed().index("blob"))
    app.qtbot.mouseClick(classes.list.viewport(), LEFT, pos=classes.list.visualItemRect(item).center())
    doc = app.saved()
    names = category_names(doc)
    assert [names[a["category_id"]] for a in file_annotations(doc)] == ["blob"]


# ----- 5. accept all -----
def test_accept_all_takes_exactly_the_predictions_above_the_score_threshold(ready):
    app = ready
    full = app.prediction
    app.set_slider("score_threshold", 0.7)
    threshold = app.slider("score_threshold")
    assert full.settings.score_threshold < threshold
    expected = int((full.scores > threshold).sum())  # the slider hides scores at or below it
    assert 0 < expected < len(full)
    app.wait_until(lambda: app.prediction.settings.score_threshold == threshold and app.is_idle(), timeout=10000)
    pred, shown = app.prediction, list(app.shown)
    assert app.shown_count() == len(shown) == expected
    app.press(Qt.Key.Key_A, SHIFT)  # Accept All Shown
    assert app.index == 0  # Shift+A is not A (previous image)
    doc = app.saved()
    annotations = file_annotations(doc)
    assert len(annotations) == expected == len(app.project.records[0].instances)
    assert file_state(doc) == "predicted" and app.image_rows()[0].startswith("[annotated]")
    assert all(a["studio"]["origin"] == "accepted" and a["studio"]["score"] > threshold for a in annotations)
    names = category_names(doc)
    for i, annotation, mask in zip(shown, annotations, file_masks(doc)):  # accepted in the list's order
        assert abs(annotation["studio"]["score"] - float(pred.scores[i])) < 1e-6
        crop = pred.masks[i]
        full_mask = np.zeros((H, W), bool)
        full_mask[crop.y0 : crop.y0 + crop.mask.shape[0], crop.x0 : crop.x0 + crop.mask.shape[1]] = crop.mask
        assert (mask == full_mask).all()
        assert names[annotation["category_id"]] == app.class_name(int(pred.labels[i]))
    assert app.shown == [] and app.shown_count() == expected  # predictions hidden under the annotations listed
    undo(app)
    doc = app.saved()
    assert file_annotations(doc) == [] and app.shown_count() == expected


# ----- 6. delete -----
def test_delete_removes_the_selected_instance_and_undo_brings_it_back(driver, folder):
    app = driver
    app.open(folder)
    draw(app, RECT)
    draw(app, TRIANGLE)
    masks = file_masks(app.saved())
    app.press(Qt.Key.Key_J, CTRL)
    app.click(100, 30)  # inside the triangle
    app.press(Qt.Key.Key_Delete)
    left = file_masks(app.saved())
    assert len(left) == 1 and (left[0] == masks[0]).all()
    undo(app)
    back = file_masks(app.saved())
    assert len(back) == 2 and all((a == b).all() for a, b in zip(back, masks))


def test_delete_on_a_selected_prediction_rejects_it(ready):
    app = ready
    before = app.shown_count()
    crop = app.prediction.masks[app.shown[0]]
    rows, cols = np.nonzero(crop.mask)
    k = len(rows) // 2
    app.click(crop.x0 + cols[k] + 0.5, crop.y0 + rows[k] + 0.5)
    selected = app.selected_prediction()
    assert selected >= 0 and app.selected_row() == selected
    key = int(app.prediction.keys[app.shown[selected]])
    app.press(Qt.Key.Key_Delete)
    assert key not in [int(app.prediction.keys[i]) for i in app.shown]
    assert 0 < app.shown_count() < before  # (a near-duplicate of another class may go with it)
    doc = app.saved()
    assert file_annotations(doc) == [] and file_state(doc) == "predicted"  # a rejection is no review
    undo(app)
    assert app.shown_count() == before


# ----- 7. save and reopen -----
def test_saved_edits_reopen_pixel_for_pixel_in_a_new_window(ready, settings, weights_file, image_folder):
    app = ready
    app.set_slider("max_detections", 3)
    app.wait_until(lambda: len(app.prediction) == 3 and app.is_idle(), timeout=10000)
    app.press(Qt.Key.Key_A, SHIFT)
    app.press(Qt.Key.Key_Return, CTRL)  # checked: reviewed
    app.press(Qt.Key.Key_D)  # next image: polygon and brush stroke there
    app.wait_until(lambda: app.index == 1 and app.prediction is not None and app.is_idle(), timeout=30000)
    draw(app, TRIANGLE)
    app.press(Qt.Key.Key_B)
    app.press(Qt.Key.Key_Escape)
    app.drag([(10, 80), (50, 70)])
    app.press(Qt.Key.Key_S, CTRL)
    assert not app.unsaved() and "Saved" in app.status()
    before = [[i.decode_mask(r.height, r.width) for i in r.instances] for r in app.project.records]
    categories = {c.id: c.name for c in app.project.dataset.categories}
    states = [r.state for r in app.project.records]
    assert [len(m) for m in before] == [3, 2, 0] and states == ["reviewed", "predicted", "not_run"]
    app.window.close()
    assert not app.window.isVisible()

    from gui.window.main_window import MainWindow

    second = MainWindow(settings, torch_threads=1)
    app.qtbot.addWidget(second)
    second.resize(1000, 700)
    second.show()
    again = Driver(app.qtbot, second)
    try:
        assert again.open(image_folder)
        records = again.project.records
        after = [[i.decode_mask(r.height, r.width) for i in r.instances] for r in records]
        assert [len(m) for m in after] == [len(m) for m in before]
        assert all((a == b).all() for x, y in zip(before, after) for a, b in zip(x, y))
        assert {c.id: c.name for c in again.project.dataset.categories} == categories
        assert [r.state for r in records] == states
        assert again.image_rows()[0].startswith("[reviewed]") and again.image_rows()[1].startswith("[annotated]")
        assert again.index == 2  # it reopens on the first image still to annotate
        again.go_to(0)
        again.wait_until(lambda: again.image is not None and again.index == 0 and again.is_idle(), timeout=30000)
        assert again.annotations_drawn() == 3  # drawn on the annotation layer of image 0
        dataset = read_dataset(image_folder / "annotations.json")  # the engine reads the same file
        assert [len(r.instances) for r in dataset.images] == [3, 2, 0]
    finally:
        second.shutdown()


# ----- 8. split, merge, cut line -----
def test_split_merge_and_cut_keep_the_pixels(driver, folder):
    app = driver
    app.open(folder)
    app.press(Qt.Key.Key_B)
    app.drag([(20, 30), (40, 30)])
    app.drag([(80, 65), (100, 65)])  # the first mask is selected: one mask of two parts
    (whole,) = file_masks(app.saved())
    app.press(Qt.Key.Key_S)  # split into parts
    parts = file_masks(app.saved())
    assert len(parts) == 2 and not (parts[0] & parts[1]).any() and ((parts[0] | parts[1]) == whole).all()
    assert parts[0][30, 30] != parts[1][30, 30] and parts[0][65, 90] != parts[1][65, 90]
    assert len(app.selected_annotations()) == 2

    app.press(Qt.Key.Key_J, CTRL)
    app.press(Qt.Key.Key_Escape)
    assert app.selected_annotations() == []
    app.click(30, 30)
    app.click(90, 65, CTRL)
    assert len(app.selected_annotations()) == 2
    app.press(Qt.Key.Key_M)  # merge
    (merged,) = file_masks(app.saved())
    assert (merged == whole).all()

    undo(app)  # back to the two parts, then the one mask again
    assert len(file_masks(app.saved())) == 2
    undo(app)
    (again,) = file_masks(app.saved())
    assert (again == whole).all()

    undo(app)  # back to one stroke only
    (stroke,) = file_masks(app.saved())
    assert stroke[30, 30] and not stroke[65, 90]
    app.press(Qt.Key.Key_Escape)
    app.press(Qt.Key.Key_L)  # cut line across the stroke at x = 30
    assert app.tool() == "line"
    app.drag([(30.5, 15), (30.5, 45)])
    halves = file_masks(app.saved())
    assert len(halves) == 2 and not (halves[0] & halves[1]).any() and ((halves[0] | halves[1]) == stroke).all()
    columns = [np.nonzero(h.any(0))[0] for h in halves]
    left, right = sorted(columns, key=lambda c: c.min())
    assert left.max() <= 31 and right.min() >= 30  # one side of the line each
    undo(app)
    (joined,) = file_masks(app.saved())
    assert (joined == stroke).all()
