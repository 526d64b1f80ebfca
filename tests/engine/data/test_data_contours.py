"""mask_to_polygons: traced outlines rasterise back (through pycocotools) to the mask with holes filled."""

from __future__ import annotations

from collections import deque

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from engine.data.contours import mask_to_polygons
from engine.data.masks import decode_rle, polygons_to_rle


def fill_holes(mask: np.ndarray) -> np.ndarray:
    """The mask plus every background pixel not 4-connected to the border."""
    padded = np.pad(mask, 1)
    outside = np.zeros_like(padded)
    outside[0, 0] = True
    queue = deque([(0, 0)])
    while queue:
        row, col = queue.popleft()
        for d_row, d_col in ((1, 0), (-1, 0), (0, 1), (0, -1)):
            r, c = row + d_row, col + d_col
            if 0 <= r < padded.shape[0] and 0 <= c < padded.shape[1] and not outside[r, c] and not padded[r, c]:
                outside[r, c] = True
                queue.append((r, c))
    return ~outside[1:-1, 1:-1]


def rasterise(polygons, shape):
    return decode_rle(polygons_to_rle(polygons, *shape)) if polygons else np.zeros(shape, dtype=bool)


@settings(max_examples=150, deadline=None)
@given(arrays(bool, st.tuples(st.integers(1, 14), st.integers(1, 14))))
def test_traced_polygons_rasterise_to_the_filled_mask(mask):
    polygons = mask_to_polygons(mask)
    assert all(len(polygon) >= 6 and len(polygon) % 2 == 0 for polygon in polygons)
    assert np.array_equal(rasterise(polygons, mask.shape), fill_holes(mask))


def test_square_gives_its_four_corners_and_diagonal_pixels_join():
    mask = np.zeros((6, 7), dtype=bool)
    mask[1:4, 2:6] = True
    assert mask_to_polygons(mask) == [[2.0, 1.0, 6.0, 1.0, 6.0, 4.0, 2.0, 4.0]]
    diagonal = np.eye(4, dtype=bool)
    assert len(mask_to_polygons(diagonal)) == 1
    assert mask_to_polygons(np.zeros((3, 3), dtype=bool)) == []


def test_tolerance_reduces_vertices_with_small_loss():
    rows, cols = np.mgrid[:80, :80]
    disc = (rows - 40.0) ** 2 + (cols - 38.0) ** 2 < 30.0**2
    exact, simplified = mask_to_polygons(disc), mask_to_polygons(disc, tolerance=1.0)
    assert len(simplified[0]) < len(exact[0]) / 2
    approx = rasterise(simplified, disc.shape)
    assert (approx & disc).sum() / (approx | disc).sum() > 0.97
