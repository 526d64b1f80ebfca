"""The brush repaints the selected annotation from its crop (issue 12.5: decoding its RLE at every stroke's
start took 25 ms at 3000x3000): what is saved must be the old mask plus the stroke, pixel for pixel, also
for a mask cut by the image's edges, and the eraser must take away exactly its disk."""

from __future__ import annotations

from PySide6.QtCore import Qt

from tests.gui.test_editing import H, W, distance_to_polyline, file_masks, folder  # noqa: F401 - fixture


def test_a_stroke_on_a_mask_at_the_image_corner_adds_exactly_the_stroke(driver, folder):  # noqa: F811
    app = driver
    app.open(folder)
    app.press(Qt.Key.Key_B)
    radius = app.brush_radius()
    corner = app.drag([(1, 1), (1, 40), (30, 40)])  # runs off the left and top edges
    (first,) = file_masks(app.saved())
    assert first[0, 0] and first[:, 0].any() and first[0, :].any()
    stroke = app.drag([(30, 40), (60, 70)])  # the new mask is selected: this adds to it
    (grown,) = file_masks(app.saved())
    painted = distance_to_polyline(stroke) <= radius
    far = distance_to_polyline(stroke) > radius + 1  # (pixels at the disk's rim may go either way)
    assert (grown[far] == first[far]).all()  # the old mask, untouched away from the stroke
    assert (grown >= first).all() and grown[painted].all()
    assert grown.shape == (H, W) and grown[65, 55] and not first[65, 55]

    app.press(Qt.Key.Key_E)
    centre = app.click(3, 20)  # a disk out of the part at the left edge
    (erased,) = file_masks(app.saved())
    disk = distance_to_polyline([centre])
    assert not erased[disk <= radius - 0.5].any()
    assert (erased[disk > radius + 0.01] == grown[disk > radius + 0.01]).all()
    assert len(corner) == 3
