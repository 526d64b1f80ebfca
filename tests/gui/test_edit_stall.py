"""Edits on an image with thousands of annotations (issue 15, item 11): which predictions an annotation
hides is decided again after every edit (``gui.editing.masks.matched``); it used to compute a mask IoU for
every prediction/annotation pair whose boxes overlap (17,000 on benchmarks/edit_stall.py's image of 5,000
polygons, 62,602 in the issue's profile: 1-2 s per edit, delete or undo). It now computes one only where
the areas and the box overlap allow an IoU over the threshold, with the same answers."""

from __future__ import annotations

import numpy as np
import pytest

from engine.data import Dataset, ImageRecord, Instance
from engine.structures import InstanceMask
from gui.editing import masks
from gui.session import project as project_module
from gui.session.project import Project


def brute_force(predictions: list[InstanceMask], references: list[InstanceMask], iou: float) -> np.ndarray:
    """Every pair, full-image masks: the definition (a pair whose crops' boxes do not overlap never
    matches, which matters only for ``iou`` 0)."""
    out = np.zeros(len(predictions), dtype=bool)
    for p, crop in enumerate(predictions):
        if not crop.mask.size:
            continue
        full = crop.full(64, 64)
        for ref in references:
            if not ref.mask.size or not _boxes_overlap(crop, ref):
                continue
            other = ref.full(64, 64)
            inter, union = int((full & other).sum()), int((full | other).sum())
            out[p] |= bool(union) and inter / union >= iou
    return out


def _boxes_overlap(a: InstanceMask, b: InstanceMask) -> bool:
    ax0, ay0, ax1, ay1 = masks.box_of(a)
    bx0, by0, bx1, by1 = masks.box_of(b)
    return ax0 < bx1 and bx0 < ax1 and ay0 < by1 and by0 < ay1


def random_crop(rng: np.random.Generator) -> InstanceMask:
    kind = rng.integers(0, 10)
    if kind == 0:
        return InstanceMask(int(rng.integers(0, 60)), int(rng.integers(0, 60)), np.zeros((0, 0), dtype=bool))
    h, w = (int(v) for v in rng.integers(1, 24, 2))
    y0, x0 = int(rng.integers(0, 64 - h)), int(rng.integers(0, 64 - w))
    mask = rng.random((h, w)) < rng.uniform(0.2, 1.0)
    if kind == 1:
        mask[:] = True  # solid rectangles: IoUs of simple fractions, 0.5 exactly among them
    return InstanceMask(x0, y0, mask)


@pytest.mark.parametrize("iou", [0.0, 0.1, 0.5, 0.9, 1.0])
def test_matched_gives_the_brute_force_answers_on_random_crops(iou: float) -> None:
    rng = np.random.default_rng(int(iou * 10))
    for _ in range(150):
        refs = [random_crop(rng) for _ in range(int(rng.integers(0, 25)))]
        preds = [random_crop(rng) for _ in range(int(rng.integers(0, 12)))]
        preds += [refs[int(i)] for i in rng.integers(0, len(refs), 2)] if refs else []  # exact copies: IoU 1
        assert (masks.matched(preds, refs, iou) == brute_force(preds, refs, iou)).all()


def test_an_iou_of_exactly_the_threshold_matches() -> None:
    a = InstanceMask(0, 0, np.ones((10, 10), dtype=bool))
    b = InstanceMask(0, 0, np.ones((10, 5), dtype=bool))  # inside a, half its area: IoU 0.5
    assert masks.matched([a], [b], 0.5).tolist() == [True]
    assert masks.matched([a], [b], 0.5000001).tolist() == [False]


def test_a_re_match_on_5000_polygons_computes_few_mask_ious(monkeypatch) -> None:
    """The scene of benchmarks/edit_stall.py: 5,000 small annotations, 60 predictions copying some and 60
    blobs of 120-320 px over hundreds of them. The brute force computed ~17,000 mask IoUs; now a few per
    prediction (the blobs' areas rule the small annotations out)."""
    rng = np.random.default_rng(0)
    refs = []
    for _ in range(5000):
        r = int(rng.integers(5, 14))
        y0, x0 = (int(v) for v in rng.integers(0, 1024 - 2 * r, 2))
        yy, xx = np.mgrid[-r : r + 1, -r : r + 1]
        refs.append(InstanceMask(x0, y0, yy**2 + xx**2 <= r * r))
    preds = [refs[int(i)] for i in rng.choice(5000, 60, replace=False)]
    for _ in range(60):
        h, w = (int(v) for v in rng.integers(120, 320, 2))
        y0, x0 = int(rng.integers(0, 1024 - h)), int(rng.integers(0, 1024 - w))
        yy, xx = np.mgrid[0:h, 0:w]
        preds.append(InstanceMask(x0, y0, ((yy - h / 2) / (h / 2)) ** 2 + ((xx - w / 2) / (w / 2)) ** 2 <= 1))
    calls = [0]
    real = masks.crop_intersection

    def counting(a: InstanceMask, b: InstanceMask) -> int:
        calls[0] += 1
        return real(a, b)

    monkeypatch.setattr(masks, "crop_intersection", counting)
    hidden = masks.matched(preds, refs, 0.5)
    assert hidden[:60].all() and not hidden[60:].any()
    assert calls[0] < 500, calls[0]


def test_the_crop_cache_keeps_the_image_being_edited_when_it_is_full(monkeypatch) -> None:
    """Full, the cache used to be cleared: an image with more instances than the limit decoded every
    mask again on every redraw (each edit). Now the crops of the image asked for stay."""
    monkeypatch.setattr(project_module, "CROP_CACHE_LIMIT", 100)
    square = [[1.0, 1.0, 6.0, 1.0, 6.0, 6.0, 1.0, 6.0]]
    big = ImageRecord("big.png", 32, 32, [Instance(1, square, id=i) for i in range(300)])
    small = ImageRecord("small.png", 32, 32, [Instance(1, square, id=1000 + i) for i in range(80)])
    project = Project.from_dataset(Dataset(project_module.Path("/tmp"), [big, small], []))
    decodes = [0]
    real = Instance.decode_mask

    def counting(self, height, width):  # noqa: ANN001, ANN202
        decodes[0] += 1
        return real(self, height, width)

    monkeypatch.setattr(Instance, "decode_mask", counting)
    for index in (1, 0, 0, 0):  # the small image, then three redraws of the big one
        for instance in project.annotations(index):
            project.crop(index, instance)
    assert decodes[0] == 80 + 300  # each mask decoded once, though the big image alone passes the limit
