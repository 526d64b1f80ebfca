"""gui/canvas/overlay.py, Qt-free: label maps from crops, palette lookup, outlines."""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from engine.structures import InstanceMask
from gui.canvas import overlay


def crop(x0, y0, mask) -> InstanceMask:  # noqa: ANN001
    return InstanceMask(x0, y0, np.asarray(mask, dtype=bool))


def test_label_map_covers_the_union_of_crops_and_the_best_instance_wins():
    a = crop(2, 3, np.ones((4, 5)))
    b = crop(4, 5, np.ones((6, 3)))
    labels = overlay.label_map([a, b], 20, 20)
    assert (labels.x0, labels.y0) == (2, 3)
    assert labels.labels.shape == (8, 5)  # rows 3..10, columns 2..6
    assert labels.at(4, 5) == 0  # overlap: instance 0 (listed first, best score) is on top
    assert labels.at(5, 10) == 1
    assert labels.at(2, 10) == -1  # inside the union box, but no instance
    assert labels.at(50, 50) == -1


def test_crops_leaving_the_image_are_clipped():
    labels = overlay.label_map([crop(8, 8, np.ones((5, 5)))], 10, 10)
    assert labels.labels.shape == (2, 2) and (labels.labels == 1).all()


def test_colorize_is_a_palette_lookup_with_transparent_background():
    labels = np.array([[0, 1], [2, 2]], dtype=np.uint16)
    table = overlay.palette([(255, 0, 0), (0, 0, 255)])
    rgba = overlay.colorize(labels, table)
    assert rgba.shape == (2, 2, 4) and rgba.dtype == np.uint8
    assert tuple(rgba[0, 0]) == (0, 0, 0, 0)
    assert tuple(rgba[0, 1]) == (255, 0, 0, 255)
    assert tuple(rgba[1, 0]) == (0, 0, 255, 255)


def test_boundary_is_the_inner_edge_of_each_instance():
    labels = np.zeros((7, 7), dtype=np.uint16)
    labels[1:6, 1:6] = 1
    edge = overlay.boundary(labels)
    expected = np.zeros((7, 7), dtype=bool)
    expected[1:6, 1:6] = True
    expected[2:5, 2:5] = False
    assert (edge == expected).all()


def test_touching_instances_both_get_an_edge_where_they_meet():
    labels = np.array([[1, 1, 2, 2]] * 3, dtype=np.uint16)
    edge = overlay.boundary(labels)
    assert edge[1, 1] and edge[1, 2]


def test_instance_colors_differ_for_neighbouring_keys():
    colors = [overlay.instance_color(k) for k in range(50)]
    assert len(set(colors)) == 50
    assert all(max(c) >= 200 for c in colors)  # saturated, readable over a grey image


@settings(max_examples=40, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 30), st.integers(0, 30), st.integers(1, 12), st.integers(1, 12)), max_size=8))
def test_label_map_pixels_equal_the_union_of_the_full_masks(boxes):
    h, w = 32, 36
    crops = [crop(x, y, np.ones((bh, bw))) for x, y, bw, bh in boxes]
    labels = overlay.label_map(crops, h, w)
    full = np.zeros((h, w), dtype=bool)
    if not labels.empty:
        full[labels.y0 : labels.y0 + labels.labels.shape[0], labels.x0 : labels.x0 + labels.labels.shape[1]] = (
            labels.labels > 0
        )
    union = np.zeros((h, w), dtype=bool)
    for x, y, bw, bh in boxes:
        union[y : y + bh, x : x + bw] = True  # numpy clips the slice at the image edge
    assert (full == union).all()


@settings(max_examples=40, deadline=None)
@given(
    st.lists(st.tuples(st.integers(0, 40), st.integers(0, 40), st.integers(1, 15), st.integers(1, 15)), max_size=6),
    st.integers(2, 5),
)
def test_a_strided_label_map_samples_the_full_one_at_square_centres(boxes, stride):
    crops = [crop(x, y, np.ones((bh, bw))) for x, y, bw, bh in boxes]
    region = (3, 5, 47, 44)
    full = overlay.label_map(crops, 50, 50, region=region).labels
    coarse = overlay.label_map(crops, 50, 50, region=region, stride=stride)
    off = stride // 2
    expected = full[off::stride, off::stride]
    assert coarse.labels.shape == (-(-39 // stride), -(-44 // stride))
    assert (coarse.labels[: expected.shape[0], : expected.shape[1]] == expected).all()
    assert coarse.rect()[:2] == (3, 5) and coarse.stride == stride
