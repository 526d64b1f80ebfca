"""Thousands of instances on one image (issue 12, item 5): what the user sees stays right on the fast paths.

An edit redraws only the area of the instances it changed (gui/canvas/mask_layers.py), boxes are drawn only
where the view is repainted and with at most a few hundred labels (gui/canvas/items.py), the instance list
builds its rows in bulk (gui/panels/instance_list.py), a huge image is shown at the screen's resolution
(gui/canvas/image_detail.py) and re-matching predictions to annotations no longer compares every pair
(gui/editing/masks.py). Speed is measured by benchmarks/many_instances.py, not here.
"""

from __future__ import annotations

import json

import numpy as np
import pytest
from PIL import Image
from PySide6.QtCore import QRectF, Qt
from PySide6.QtGui import QImage, QPainter

from engine.structures import InstanceMask, Prediction, PredictSettings
from gui.canvas import image_detail, items, overlay
from gui.canvas.mask_layers import MaskLayers
from gui.canvas.view import Canvas

HEIGHT, WIDTH = 240, 320


def grid_folder(folder, count: int = 600, height: int = HEIGHT, width: int = WIDTH):  # noqa: ANN001, ANN201 - Path
    """One image with ``count`` small square polygons on a grid, 40 a row of 320 px (wider images: more a
    row), rows 15 px apart (a few squares overlap their neighbour)."""
    folder.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.full((height, width, 3), 60, np.uint8)).save(folder / "many.png")
    per_row = (width - 4) // 8
    annotations = []
    for i in range(count):
        x, y = 2 + (i % per_row) * 8, 2 + (i // per_row) * 15
        size = 6 if i % 7 else 10  # every 7th overlaps the next one
        square = [x, y, x + size, y, x + size, y + size, x, y + size]
        annotations.append({"id": i + 1, "image_id": 1, "category_id": 1 + i % 2, "segmentation": [square]})
    doc = {
        "images": [{"id": 1, "file_name": "many.png", "width": width, "height": height}],
        "categories": [{"id": 1, "name": "cell"}, {"id": 2, "name": "blob"}],
        "annotations": annotations,
    }
    (folder / "annotations.json").write_text(json.dumps(doc))
    return folder


def annotation_pixels(window) -> np.ndarray:  # noqa: ANN001
    """The annotation layer (fill and outline) as full-image (H,W,4) uint8, as drawn."""
    return window.canvas.annotations.full_rgba()


def fresh_render(layers: MaskLayers) -> np.ndarray:
    """What a whole redraw of the same crops and colours gives (full-image RGBA of the fill)."""
    import pyqtgraph as pg

    twin = MaskLayers(pg.ImageItem(axisOrder="row-major"), None, fill_alpha=layers.fill_alpha)
    h, w = layers.image_size
    twin.set(layers.crops, layers.colors, h, w, QRectF(0, 0, w, h))
    return twin.full_rgba()


def test_deleting_one_of_5000_annotations_clears_only_its_pixels_and_undo_brings_them_back(driver, window, tmp_path):
    qtbot = driver.qtbot
    height, width = 15 * 50 + 10, 8 * 100 + 4  # 100 squares a row, 50 rows
    assert driver.open(grid_folder(tmp_path / "many", 5000, height, width))
    layers = window.canvas.annotations
    assert driver.annotations_drawn() == 5000
    before = annotation_pixels(window)
    target = next(i for i in driver.project.annotations(0) if i.id == 2345)  # x 354..360, y 347..353
    crop = driver.project.crop(0, target)
    driver.click(crop.x0 + 3, crop.y0 + 3)
    assert driver.selected_annotations() == [target]
    patched = layers.patched
    driver.press(Qt.Key.Key_Delete)
    qtbot.waitUntil(lambda: driver.annotations_drawn() == 4999)
    after = annotation_pixels(window)
    assert layers.patched == patched + 1  # drawn by the patch, not by a whole redraw
    inside = crop.full(height, width)
    assert before[inside, 3].min() > 0 and after[inside, 3].max() == 0  # its pixels are cleared
    assert (after[~inside] == before[~inside]).all()  # every other pixel is as it was
    assert (after == fresh_render(layers)).all()
    driver.press(Qt.Key.Key_Z, Qt.KeyboardModifier.ControlModifier)
    qtbot.waitUntil(lambda: driver.annotations_drawn() == 5000)
    assert (annotation_pixels(window) == before).all()


def test_patched_overlay_equals_a_whole_redraw_under_random_edits(qapp):  # noqa: ANN001
    """Deletes, inserts and replacements among 400 overlapping masks, and the last 60 taken away or added (a
    score slider), on the fill-only (annotations) and the fill-and-outline (predictions) layers: after each,
    the patched images equal a whole redraw."""
    import pyqtgraph as pg

    rng = np.random.default_rng(0)

    def blob() -> InstanceMask:
        h, w = (int(v) for v in rng.integers(4, 30, 2))
        yy, xx = np.mgrid[0:h, 0:w]
        mask = ((yy - h / 2 + 0.5) / (h / 2)) ** 2 + ((xx - w / 2 + 0.5) / (w / 2)) ** 2 <= 1
        return InstanceMask(int(rng.integers(0, 300 - w)), int(rng.integers(0, 200 - h)), mask)

    view = QRectF(0, 0, 300, 200)
    for outlines in (False, True):
        layers = MaskLayers(pg.ImageItem(), pg.ImageItem() if outlines else None, 255 if outlines else 70)
        crops = [blob() for _ in range(400)]
        colors = [overlay.instance_color(k) for k in range(400)]
        layers.set(crops, colors, 200, 300, view)
        for step in range(50):
            i = int(rng.integers(len(crops)))
            kind = step % 5
            if kind == 0:
                del crops[i], colors[i]
            elif kind == 1:
                crops.insert(i, blob())
                colors.insert(i, overlay.instance_color(1000 + step))
            elif kind == 2:
                crops[i] = blob()
                colors[i] = overlay.instance_color(2000 + step)
            elif kind == 3:  # a score slider raised: the worst 60 go
                del crops[-60:], colors[-60:]
            else:  # lowered: 60 more at the end
                crops += [blob() for _ in range(60)]
                colors += [overlay.instance_color(3000 + 60 * step + k) for k in range(60)]
            layers.set(list(crops), colors, 200, 300, view)
            assert (layers.full_rgba() == fresh_render_like(layers, outlines)[0]).all(), step
            if outlines:
                assert (placed(layers.edges.image, layers) == fresh_render_like(layers, outlines)[1]).all(), step
        assert layers.patched >= 40  # (one that moves the union's corner is drawn whole)


def fresh_render_like(layers: MaskLayers, outlines: bool) -> tuple[np.ndarray, np.ndarray | None]:
    import pyqtgraph as pg

    twin = MaskLayers(pg.ImageItem(), pg.ImageItem() if outlines else None, layers.fill_alpha)
    h, w = layers.image_size
    twin.set(layers.crops, layers.colors, h, w, QRectF(0, 0, w, h))
    return twin.full_rgba(), placed(twin.edges.image, twin) if outlines else None


def placed(rgba: np.ndarray, layers: MaskLayers) -> np.ndarray:
    h, w = layers.image_size
    full = np.zeros((h, w, 4), np.uint8)
    full[layers.labels.y0 : layers.labels.y0 + rgba.shape[0], layers.labels.x0 : layers.labels.x0 + rgba.shape[1]] = (
        rgba
    )
    return full


def many_predictions(count: int, height: int, width: int) -> Prediction:
    rng = np.random.default_rng(4)
    masks, boxes = [], []
    for _ in range(count):
        h, w = (int(v) for v in rng.integers(6, 20, 2))
        x0, y0 = int(rng.integers(0, width - w)), int(rng.integers(0, height - h))
        masks.append(InstanceMask(x0, y0, np.ones((h, w), bool)))
        boxes.append([x0, y0, x0 + w, y0 + h])
    return Prediction(
        height, width, np.asarray(boxes, np.float32), np.linspace(0.99, 0.3, count, dtype=np.float32),
        1 + np.arange(count) % 2, masks, np.zeros((0, 4), np.float32), np.zeros(0, np.float32),
        np.arange(count), PredictSettings(),
    )  # fmt: skip


def test_the_class_filter_lists_the_right_rows_of_3000_predictions(driver, window, tmp_path):
    assert driver.open(grid_folder(tmp_path / "many", count=0))
    window.session.class_names = ["cell", "blob"]
    window.instances.set_classes(["cell", "blob"])
    prediction = many_predictions(3000, HEIGHT, WIDTH)
    window.session.set_prediction(prediction)
    window.controller.refilter()
    assert len(driver.instance_rows()) == 3000
    model = window.instances.model
    for row in (0, 1, 1777, 2999):  # class, score and the colour swatch of the instance's key
        assert driver.instance_rows()[row][:2] == (["cell", "blob"][row % 2], f"{prediction.scores[row]:.3f}")
        swatch = model.data(model.index(row, 0), Qt.ItemDataRole.DecorationRole)
        assert swatch.getRgb()[:3] == overlay.instance_color(row)
    driver.filter_class("blob")
    rows = driver.instance_rows()
    assert len(rows) == 1500 and {name for name, _, _ in rows} == {"blob"}
    assert rows[10][1] == f"{prediction.scores[21]:.3f}"  # the 11th blob is detection 21
    driver.filter_class("")
    assert len(driver.instance_rows()) == 3000


def test_instance_colors_match_the_one_key_colour():
    keys = np.arange(0, 300_000, 13)
    expected = np.array([overlay.instance_color(int(k)) for k in keys], np.uint8)
    assert (overlay.instance_colors(keys) == expected).all()


def test_boxes_painted_in_part_match_the_same_area_painted_whole(canvas):  # noqa: ANN001
    """A hover repaints only around two boxes: those pixels must be what a whole repaint draws there, with
    thousands of boxes (thin pens, at most MAX_LABELS labels) as with few."""
    canvas.layers["boxes"].min_label_px = 4  # labels on most boxes (they are 6-20 px wide on screen)
    for count in (40, 3000):
        prediction = many_predictions(count, 400, 600)
        colors = overlay.instance_colors(prediction.keys)
        canvas.set_instances(prediction.masks, prediction.boxes, colors, [f"cell {k}" for k in range(count)])
        canvas.set_layer_visible("masks", False)
        canvas.set_layer_visible("outlines", False)
        size = canvas.viewport().size()
        whole = render(canvas, QRectF(0, 0, size.width(), size.height()))
        x, y, w, h = 240, 150, 90, 60  # viewport pixels
        part = render(canvas, QRectF(x, y, w, h))
        # (inside a 1-pixel border: text cut by the clip's edge is blended differently there, culling or not)
        assert (whole[y + 1 : y + h - 1, 4 * (x + 1) : 4 * (x + w - 1)] == part[1:-1, 4:-4]).all(), count
        boxes = canvas.layers["boxes"]
        labelled = boxes._labelled(boxes.deviceTransform(canvas.viewportTransform()), boxes.in_view())
        assert len(labelled) == min(count, items.MAX_LABELS)


def render(canvas: Canvas, source: QRectF) -> np.ndarray:
    """The canvas's viewport rectangle ``source`` painted as the view paints it (its items get that area as
    the exposed one), into an image of the same size: (h, w*4) bytes."""
    image = QImage(int(source.width()), int(source.height()), QImage.Format.Format_ARGB32)
    image.fill(0)
    painter = QPainter(image)
    canvas.render(painter, QRectF(0, 0, image.width(), image.height()), source.toRect())
    painter.end()
    data = np.frombuffer(image.constBits(), np.uint8, image.sizeInBytes()).reshape(image.height(), -1)
    return data[:, : image.width() * 4].copy()


@pytest.fixture
def canvas(qtbot):
    from gui.app import create_app

    create_app()
    widget = Canvas()
    qtbot.addWidget(widget)
    widget.resize(600, 400)
    widget.show()
    qtbot.waitExposed(widget)
    widget.set_image(np.full((400, 600, 3), 90, np.uint8))
    return widget


def test_a_10k_image_zoomed_out_shows_the_whole_image_at_screen_resolution(canvas):  # noqa: ANN001
    pixels = np.zeros((10_000, 10_000, 3), np.uint8)
    pixels[:, :, 0] = (np.arange(10_000) // 100 % 256).astype(np.uint8)[None, :]  # red: the column / 100
    pixels[:, :, 1] = (np.arange(10_000) // 100 % 256).astype(np.uint8)[:, None]  # green: the row / 100
    canvas.set_image(pixels)
    item = canvas.layers["image"]
    shown = item.image
    assert shown.shape[0] * shown.shape[1] <= 4_000_000  # not 100 megapixels
    rect = item.mapRectToParent(item.boundingRect())
    assert rect.left() <= 0 and rect.top() <= 0 and rect.right() >= 10_000 and rect.bottom() >= 10_000
    stride = canvas.image_detail.stride
    assert stride > 1
    # every shown pixel is the image's pixel at the centre of the square it stands for
    rows = np.minimum(np.arange(shown.shape[0]) * stride + stride // 2, 9_999)
    cols = np.minimum(np.arange(shown.shape[1]) * stride + stride // 2, 9_999)
    assert (shown == pixels[np.ix_(rows, cols)]).all()
    # zoomed in to 1:1 on a corner: the exact pixels there
    canvas.view.setRange(xRange=(5_000, 5_300), yRange=(7_000, 7_200), padding=0)
    canvas._refresh_detail()
    assert canvas.image_detail.stride == 1
    x0, y0, x1, y1 = canvas.image_detail.region
    assert x0 <= 5_000 and y0 <= 7_000 and x1 >= 5_300 and y1 >= 7_200
    assert (item.image == pixels[y0:y1, x0:x1]).all()
    canvas.set_image(np.full((400, 600, 3), 7, np.uint8))  # a small one is shown whole again
    assert item.image.shape == (400, 600, 3) and canvas.image_detail.stride == 1


def test_a_large_image_pans_within_its_margin_without_a_new_region(canvas, monkeypatch):  # noqa: ANN001
    monkeypatch.setattr(image_detail, "MAX_FULL_PIXELS", 10_000)
    pixels = (np.arange(400 * 600 * 3) % 251).astype(np.uint8).reshape(400, 600, 3)
    canvas.set_image(pixels)
    canvas.view.setRange(xRange=(200, 300), yRange=(150, 220), padding=0)
    canvas._refresh_detail()  # (the whole image was drawn for the whole view: it covers this one)
    canvas.image_detail.render(canvas.visible_rect(), canvas.pixel_size())
    region = canvas.image_detail.region
    assert region[2] - region[0] < 300  # the view and its margin
    canvas.view.translateBy(x=10, y=5)
    assert not canvas.image_detail.needs_render(canvas.visible_rect(), canvas.pixel_size())
    canvas.view.translateBy(x=150)
    assert canvas.image_detail.needs_render(canvas.visible_rect(), canvas.pixel_size())
    canvas._refresh_detail()
    x0, y0, x1, y1 = canvas.image_detail.region
    assert canvas.image_detail.region != region and x1 >= 460
    assert (canvas.layers["image"].image == pixels[y0:y1, x0:x1]).all()


def test_a_huge_image_is_shown_with_the_whole_images_contrast(driver, window, tmp_path, monkeypatch):
    """The Display panel's auto contrast stretches a dim image; a huge one gets the same stretch (its range
    from the whole image), applied to the part drawn only."""
    monkeypatch.setattr(image_detail, "MAX_FULL_PIXELS", 10_000)
    folder = tmp_path / "dim"
    folder.mkdir()
    rng = np.random.default_rng(2)
    pixels = rng.integers(20, 60, (300, 400, 3)).astype(np.uint8)  # dim: auto contrast stretches it
    Image.fromarray(pixels).save(folder / "dim.png")
    assert driver.open(folder)
    canvas = window.canvas
    canvas.view.setRange(xRange=(100, 160), yRange=(50, 90), padding=0)
    canvas.image_detail.render(canvas.visible_rect(), canvas.pixel_size())  # (the whole, drawn first, covers it)
    detail = canvas.image_detail
    assert detail.stride == 1 and detail.table is not None
    x0, y0, x1, y1 = detail.region
    assert (x1 - x0) * (y1 - y0) < 300 * 400  # a part
    whole = window.display_panel.display_pixels(pixels)  # what the whole image would show
    assert whole.max() > 200  # (stretched)
    assert (driver.shown_image() == whole[y0:y1, x0:x1]).all()


def test_crop_to_rle_equals_the_full_masks_coco_encoding():
    """Shift+A on thousands: the RLE is made from the crop's runs (not a full-height strip); it must be the
    very RLE pycocotools makes of the full mask, for crops cut by the image's edges and columns full to the
    bottom (a run going on at the next column's top)."""
    from pycocotools import mask as coco_mask

    from gui.editing.masks import crop_to_rle

    rng = np.random.default_rng(7)
    for _ in range(400):
        height, width = (int(v) for v in rng.integers(1, 50, 2))
        mask = rng.random(tuple(int(v) for v in rng.integers(0, 30, 2))) < rng.choice([0.0, 0.5, 0.9, 1.0])
        crop = InstanceMask(int(rng.integers(-15, width + 3)), int(rng.integers(-15, height + 3)), mask)
        full = np.zeros((height, width), bool)
        ys, xs = np.nonzero(mask)
        ys, xs = ys + crop.y0, xs + crop.x0
        inside = (ys >= 0) & (ys < height) & (xs >= 0) & (xs < width)
        full[ys[inside], xs[inside]] = True
        expected = coco_mask.encode(np.asfortranarray(full.astype(np.uint8)))
        assert crop_to_rle(crop, height, width)["counts"] == expected["counts"].decode("ascii")
