"""Mask editing in numpy, Qt-free: brush disks and strokes, rectangles, connected parts, cuts along a
line, crops <-> full masks, COCO RLE straight from a crop, and matching predictions to annotations.

Coordinates are image pixels: pixel (row r, column c) covers x in [c, c+1), y in [r, r+1); a point
(x, y) lies in pixel (floor(y), floor(x)).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from engine.data.masks import RLE, normalize_rle
from engine.structures import InstanceMask
from gui.session.project import crop_of  # noqa: F401 - a crop is part of what is open; edits use it too


# ----- painting -----
def paint_disk(mask: np.ndarray, x: float, y: float, radius: float, value: bool = True) -> None:
    """Set the pixels whose centres lie within ``radius`` of (x, y) to ``value``, in place."""
    height, width = mask.shape
    r = max(float(radius), 0.5)
    x0, x1 = max(0, int(np.floor(x - r))), min(width, int(np.ceil(x + r)) + 1)
    y0, y1 = max(0, int(np.floor(y - r))), min(height, int(np.ceil(y + r)) + 1)
    if x1 <= x0 or y1 <= y0:
        return
    cols = np.arange(x0, x1) + 0.5 - x
    rows = np.arange(y0, y1) + 0.5 - y
    inside = rows[:, None] ** 2 + cols[None, :] ** 2 <= r * r
    if not inside.any():  # a tiny radius between pixel centres still paints the pixel under the point
        inside[min(int(y) - y0, inside.shape[0] - 1), min(int(x) - x0, inside.shape[1] - 1)] = True
    mask[y0:y1, x0:x1][inside] = value


def paint_stroke(
    mask: np.ndarray, start: tuple[float, float], end: tuple[float, float], radius: float, value: bool = True
) -> None:
    """Disks of ``radius`` along the segment start -> end (spaced so that the stroke has no gaps)."""
    (xa, ya), (xb, yb) = start, end
    length = float(np.hypot(xb - xa, yb - ya))
    steps = max(1, int(np.ceil(length / max(0.5, radius / 2))))
    for t in np.linspace(0.0, 1.0, steps + 1):
        paint_disk(mask, xa + t * (xb - xa), ya + t * (yb - ya), radius, value)


def rectangle_mask(box: Sequence[float], height: int, width: int) -> np.ndarray:
    """(H,W) bool: the pixels whose centres lie in the box (x0, y0, x1, y1), at least the pixel under a corner."""
    x0, x1, y0, y1 = box_edges(box)
    mask = np.zeros((height, width), dtype=bool)
    mask[y0:y1, x0:x1] = True
    return mask


def box_edges(box: Sequence[float]) -> tuple[int, int, int, int]:
    """Box (x0, y0, x1, y1) in any corner order -> integer (x0, x1, y0, y1) pixel slices, at least one pixel."""
    xa, xb = sorted((float(box[0]), float(box[2])))
    ya, yb = sorted((float(box[1]), float(box[3])))
    x0, y0 = max(0, int(round(xa))), max(0, int(round(ya)))
    return x0, max(x0 + 1, int(round(xb))), y0, max(y0 + 1, int(round(yb)))


def line_pixels(start: tuple[float, float], end: tuple[float, float], height: int, width: int) -> np.ndarray:
    """(N,2) int (row, col): an 8-connected pixel line from start to end, clipped to the image."""
    (xa, ya), (xb, yb) = start, end
    steps = int(np.ceil(max(abs(xb - xa), abs(yb - ya)))) + 1
    t = np.linspace(0.0, 1.0, max(2, steps + 1))
    cols = np.floor(xa + t * (xb - xa)).astype(int)
    rows = np.floor(ya + t * (yb - ya)).astype(int)
    points = np.unique(np.stack([rows, cols], axis=1), axis=0)
    keep = (points[:, 0] >= 0) & (points[:, 0] < height) & (points[:, 1] >= 0) & (points[:, 1] < width)
    return points[keep]


# ----- connected parts -----
def connected_components(mask: np.ndarray, connectivity: int = 8) -> tuple[np.ndarray, int]:
    """(H,W) bool -> ((H,W) int32 labels 1..n, n). Works on the runs of each row: a run joins the runs of
    the row above that touch it (found by binary search), and the joins are resolved by min-label
    propagation with pointer jumping, all in numpy; the cost follows the number of runs."""
    height, width = mask.shape
    labels = np.zeros((height, width), dtype=np.int32)
    if not mask.any():
        return labels, 0
    padded = np.zeros((height, width + 2), dtype=np.int8)
    padded[:, 1:-1] = mask
    change = np.diff(padded, axis=1)
    rows, starts = np.nonzero(change == 1)
    ends = np.nonzero(change == -1)[1]  # exclusive; runs are sorted by row, then column
    reach = 1 if connectivity == 8 else 0
    stride = width + 4
    start_keys, end_keys = rows * stride + starts, rows * stride + ends
    lo = np.searchsorted(end_keys, (rows - 1) * stride + starts - reach, side="right")
    hi = np.searchsorted(start_keys, (rows - 1) * stride + ends + reach, side="left")
    counts = np.maximum(hi - lo, 0)
    a = np.repeat(np.arange(len(rows)), counts)
    b = np.repeat(lo, counts) + (np.arange(counts.sum()) - np.repeat(np.cumsum(counts) - counts, counts))
    root = _join(len(rows), a, b)
    _, compact = np.unique(root, return_inverse=True)
    lengths = ends - starts
    flat = np.repeat(rows * width + starts, lengths) + (
        np.arange(lengths.sum()) - np.repeat(np.cumsum(lengths) - lengths, lengths)
    )
    labels.ravel()[flat] = np.repeat(compact + 1, lengths)
    return labels, int(compact.max()) + 1


def _join(count: int, a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Smallest member of each group of 0..count-1 joined by the pairs (a[i], b[i])."""
    label = np.arange(count)
    while True:
        low = np.minimum(label[a], label[b])
        new = label.copy()
        for side in (a, b, label[a], label[b]):
            np.minimum.at(new, side, low)
        while True:
            jumped = new[new]
            if (jumped == new).all():
                break
            new = jumped
        if (new == label).all():
            return label
        label = new


def split_parts(mask: np.ndarray, connectivity: int = 8) -> list[np.ndarray]:
    """The connected parts of a mask as full-size masks, largest first."""
    labels, count = connected_components(mask, connectivity)
    parts = [labels == k for k in range(1, count + 1)]
    return sorted(parts, key=lambda part: -int(part.sum()))


def cut_along_line(mask: np.ndarray, points: Sequence[tuple[float, float]]) -> list[np.ndarray]:
    """Cut a mask along a polyline: the line's pixels separate 4-connected parts, then each cut pixel
    goes back to a neighbouring part (a side one first, else a diagonal one); a speck wholly under the
    line is a part of its own. The parts always add up to the mask. One part (the line does not cross
    the mask) comes back whole."""
    height, width = mask.shape
    cut = np.zeros_like(mask)
    for a, b in zip(points[:-1], points[1:]):
        rc = line_pixels(a, b, height, width)
        cut[rc[:, 0], rc[:, 1]] = True
    labels, count = connected_components(mask & ~cut, connectivity=4)
    if count < 2:
        return [mask.copy()]
    pending = mask & cut
    sides = ((0, 1), (0, -1), (1, 0), (-1, 0))
    for directions in (sides, sides + ((1, 1), (1, -1), (-1, 1), (-1, -1))):
        while pending.any():
            grown = _grow(labels, pending, directions)
            if (grown == labels).all():
                break
            pending &= grown == 0
            labels = grown
    if pending.any():
        specks, extra = connected_components(pending)
        labels = np.where(specks > 0, specks + count, labels)
        count += extra
    parts = [labels == k for k in range(1, count + 1)]
    return sorted(parts, key=lambda part: -int(part.sum()))


def _grow(labels: np.ndarray, pending: np.ndarray, directions: Sequence[tuple[int, int]]) -> np.ndarray:
    """``labels`` with each pending, unlabelled pixel given the label of a neighbour in one of ``directions``."""
    height, width = labels.shape
    grown = labels.copy()
    for dy, dx in directions:
        shifted = np.zeros_like(labels)
        shifted[max(dy, 0) : height + min(dy, 0), max(dx, 0) : width + min(dx, 0)] = labels[
            max(-dy, 0) : height + min(-dy, 0), max(-dx, 0) : width + min(-dx, 0)
        ]
        take = pending & (grown == 0) & (shifted > 0)
        grown[take] = shifted[take]
    return grown


# ----- crops and RLE -----
def tight(crop: InstanceMask) -> InstanceMask:
    """The crop shrunk to the box of its pixels (what ``crop_of`` of the full mask gives): the same object
    when it is tight already; an empty crop when it has no pixels."""
    mask = crop.mask
    if not mask.size:
        return crop
    rows, cols = np.any(mask, 1), np.any(mask, 0)
    if not rows.any():
        return InstanceMask(0, 0, np.zeros((0, 0), dtype=bool))
    if rows[0] and rows[-1] and cols[0] and cols[-1]:
        return crop
    r0, r1 = np.flatnonzero(rows)[[0, -1]]
    c0, c1 = np.flatnonzero(cols)[[0, -1]]
    return InstanceMask(crop.x0 + int(c0), crop.y0 + int(r0), mask[r0 : r1 + 1, c0 : c1 + 1])


def crop_to_rle(crop: InstanceMask, height: int, width: int) -> RLE:
    """A crop placed in an (H,W) image -> compressed COCO RLE, without building the full mask.

    COCO runs go down the columns: the runs of ones are found in the crop's columns (a zero row above and
    below each), placed at their column-major offsets in the image, joined where one column's run reaches
    the bottom edge and the next column's starts at the top; the zeros are the gaps between them. The work
    follows the crop's size, not the image's height (Shift+A on 5,000 small detections of a 3000 px image)."""
    h, w = crop.mask.shape
    x0, y0 = crop.x0, crop.y0
    x0c, y0c = max(0, x0), max(0, y0)
    x1c, y1c = min(width, x0 + w), min(height, y0 + h)
    total = height * width
    if x1c <= x0c or y1c <= y0c:
        return normalize_rle({"size": [height, width], "counts": [total]}, height, width)
    padded = np.zeros((x1c - x0c, y1c - y0c + 2), dtype=np.int8)  # columns as rows: column-major order
    padded[:, 1:-1] = crop.mask[y0c - y0 : y1c - y0, x0c - x0 : x1c - x0].T
    change = np.diff(padded, axis=1)
    columns, rows = np.nonzero(change == 1)
    starts = (x0c + columns).astype(np.int64) * height + y0c + rows
    columns, rows = np.nonzero(change == -1)
    ends = (x0c + columns).astype(np.int64) * height + y0c + rows
    if not len(starts):
        return normalize_rle({"size": [height, width], "counts": [total]}, height, width)
    apart = starts[1:] != ends[:-1]  # a run down to the bottom edge goes on at the next column's top
    starts = np.concatenate([starts[:1], starts[1:][apart]])
    ends = np.concatenate([ends[:-1][apart], ends[-1:]])
    zeros = starts - np.concatenate([[0], ends[:-1]])
    runs = np.stack([zeros, ends - starts], axis=1).ravel().tolist()
    if total > ends[-1]:
        runs.append(int(total - ends[-1]))
    return normalize_rle({"size": [height, width], "counts": runs}, height, width)


# ----- the annotations' crops -----
def annotation_crops(project, index: int) -> tuple[list, list[InstanceMask]]:  # noqa: ANN001 - Project
    """Image ``index``'s annotations and their crops, shared by the canvas, the matching and the instance list
    for one edit (``Project.annotations_and_crops``). Read-only."""
    return project.annotations_and_crops(index)


# ----- matching -----
def box_of(crop: InstanceMask) -> tuple[int, int, int, int]:
    return crop.x0, crop.y0, crop.x0 + crop.mask.shape[1], crop.y0 + crop.mask.shape[0]


def crop_iou(a: InstanceMask, b: InstanceMask) -> float:
    """Mask IoU of two crops (in the same image)."""
    inter = crop_intersection(a, b)
    union = a.area + b.area - inter
    return inter / union if union else 0.0


def crop_intersection(a: InstanceMask, b: InstanceMask) -> int:
    """How many pixels two crops (in the same image) share."""
    ax0, ay0, ax1, ay1 = box_of(a)
    bx0, by0, bx1, by1 = box_of(b)
    x0, y0, x1, y1 = max(ax0, bx0), max(ay0, by0), min(ax1, bx1), min(ay1, by1)
    if x1 <= x0 or y1 <= y0:
        return 0
    part_a = a.mask[y0 - ay0 : y1 - ay0, x0 - ax0 : x1 - ax0]
    return int(np.count_nonzero(part_a & b.mask[y0 - by0 : y1 - by0, x0 - bx0 : x1 - bx0]))


PAIR_CHUNK = 1 << 22  # prediction x reference box pairs compared at once (a few MB of booleans)
FACTS_LIMIT = 200_000  # crops whose box and area are remembered (the cache is emptied beyond)
_facts: dict[int, tuple[InstanceMask, tuple[int, int, int, int, int]]] = {}
_overlaps: dict[tuple[int, int], tuple[InstanceMask, InstanceMask, int]] = {}  # shared pixels of a pair


def crop_facts(crops: Sequence[InstanceMask]) -> np.ndarray:
    """(N,5) int64: x0, y0, x1, y1, area of each crop. Remembered per crop object (a crop is never changed in
    place: an edit makes a new one), so re-matching after an edit reads the thousands of unchanged crops'
    boxes and pixel counts instead of counting them again. The entry holds the crop, so its id is not reused
    while it is remembered."""
    if len(_facts) > FACTS_LIMIT:
        _facts.clear()
    rows = []
    for crop in crops:
        known = _facts.get(id(crop))
        if known is None or known[0] is not crop:
            h, w = crop.mask.shape
            known = (crop, (crop.x0, crop.y0, crop.x0 + w, crop.y0 + h, int(np.count_nonzero(crop.mask))))
            _facts[id(crop)] = known
        rows.append(known[1])
    return np.array(rows, dtype=np.int64).reshape(-1, 5)


_last_predictions: list = [None, None, None, 0]  # the predictions list, its non-empty crops, their facts, its length


def _prediction_facts(predictions: Sequence[InstanceMask], preds: list) -> np.ndarray:
    """``crop_facts`` of the non-empty predictions, kept for the same list: after each edit the controller
    matches the same prediction (one list object, never changed in place) against new annotations."""
    if _last_predictions[0] is predictions and len(_last_predictions[1]) == len(preds):
        if all(a is b for (_, a), (_, b) in zip(_last_predictions[1], preds)):
            return _last_predictions[2]
    facts = crop_facts([c for _, c in preds])
    _last_predictions[:] = [predictions, preds, facts, len(predictions)]
    return facts


def _shared(a: InstanceMask, b: InstanceMask) -> int:
    """``crop_intersection``, remembered per pair of crop objects."""
    if len(_overlaps) > FACTS_LIMIT:
        _overlaps.clear()
    key = (id(a), id(b))
    known = _overlaps.get(key)
    if known is None or known[0] is not a or known[1] is not b:
        known = (a, b, crop_intersection(a, b))
        _overlaps[key] = known
    return known[2]


def _box_pairs(pb: np.ndarray, rb: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(prediction, reference) index pairs whose boxes may overlap, without comparing every pair.

    The references go into a grid of square cells as wide as the largest of them, by their top-left
    corner, sorted by cell (row-major); a reference that overlaps a prediction has its corner in the cells
    from one cell above-left of the prediction to its bottom-right, so each cell row of that span is one
    range of the sorted references, found by binary search. References much larger than the usual ones (a
    few big ones would make every cell big) are paired with every prediction instead."""
    base = min(int(rb[:, :2].min()), int(pb[:, :2].min()), 0)  # cells from 0 even for crops reaching off the image
    pb, rb = pb - base, rb - base
    sizes = np.maximum(rb[:, 2] - rb[:, 0], rb[:, 3] - rb[:, 1])
    limit = max(64, 4 * int(np.median(sizes))) if len(sizes) else 64
    large = np.flatnonzero(sizes > limit)
    small = np.flatnonzero(sizes <= limit)
    cell = max(16, int(sizes[small].max())) if len(small) else 16
    columns = int(max(rb[:, 2].max(), pb[:, 2].max(), 0)) // cell + 2
    key = (rb[small, 1] // cell) * columns + rb[small, 0] // cell
    order = small[np.argsort(key, kind="stable")]
    keys = np.sort(key)
    # the span of cells whose references can reach a prediction: one cell up and left of its corner
    cx0, cx1 = np.maximum(pb[:, 0] // cell - 1, 0), np.maximum(pb[:, 2] - 1, pb[:, 0]) // cell
    cy0, cy1 = np.maximum(pb[:, 1] // cell - 1, 0), np.maximum(pb[:, 3] - 1, pb[:, 1]) // cell
    spans = cy1 - cy0 + 1
    which = np.repeat(np.arange(len(pb)), spans)
    row = np.repeat(cy0, spans) + np.arange(int(spans.sum())) - np.repeat(np.cumsum(spans) - spans, spans)
    lo = np.searchsorted(keys, row * columns + cx0[which], side="left")
    hi = np.searchsorted(keys, row * columns + cx1[which], side="right")
    counts = np.maximum(hi - lo, 0)
    offsets = np.arange(int(counts.sum())) - np.repeat(np.cumsum(counts) - counts, counts)
    p = np.repeat(which, counts)
    r = order[np.repeat(lo, counts) + offsets]
    if len(large):
        p = np.concatenate([p, np.repeat(np.arange(len(pb)), len(large))])
        r = np.concatenate([r, np.tile(large, len(pb))])
    return p, r


def matched(predictions: Sequence[InstanceMask], references: Sequence[InstanceMask], iou: float = 0.5) -> np.ndarray:
    """(P,) bool: prediction p overlaps some reference with mask IoU >= ``iou``.

    Called after every edit (annotations hide the predictions they match), with thousands of references and
    predictions (5,000 of each once the predictions are accepted). The boxes and areas come from
    ``crop_facts``; the pairs whose boxes may overlap from a grid of the references
    (``_box_pairs``: a grid, no predictions x references table); a pair's mask IoU is computed only when it could
    still reach ``iou``: the shared pixels are at most m = min(box overlap, area_p, area_r), so
    IoU <= m / (area_p + area_r - m). That bound drops the small annotations under a large prediction (and the
    reverse) without touching their pixels; the shared pixels of a pair are remembered (``_shared``), so an
    edit recounts only the pairs it made; a prediction stops at its first match. Same answers as comparing
    every pair (tests/gui/test_edits.py and test_edit_stall.py check it against the brute force)."""
    out = np.zeros(len(predictions), dtype=bool)
    refs = [r for r in references if r.mask.size]
    if not refs:  # (before the predictions' facts: a slider move on an image without annotations needs none)
        _last_match.clear()
        return out
    if _last_predictions[0] is predictions and _last_predictions[3] == len(predictions):
        preds, pf = _last_predictions[1], _last_predictions[2]  # the same list: its non-empty crops as before
    else:
        preds = [(p, crop) for p, crop in enumerate(predictions) if crop.mask.size]
        pf = _prediction_facts(predictions, preds)
    if not refs or not preds:
        _last_match.clear()
        return out
    known = _rematch(predictions, refs, pf, preds, iou)
    if known is not None:
        return known
    rf = crop_facts(refs)
    p_all, r_all = _box_pairs(pf[:, :4], rf[:, :4])
    for start in range(0, len(p_all), PAIR_CHUNK):
        p, r = p_all[start : start + PAIR_CHUNK], r_all[start : start + PAIR_CHUNK]
        b, c = pf[p], rf[r]
        w = np.minimum(b[:, 2], c[:, 2]) - np.maximum(b[:, 0], c[:, 0])
        h = np.minimum(b[:, 3], c[:, 3]) - np.maximum(b[:, 1], c[:, 1])
        a_p, a_r = b[:, 4], c[:, 4]
        most = np.minimum(np.minimum(np.maximum(w, 0) * np.maximum(h, 0), a_p), a_r)
        # IoU can reach ``iou``: most / (a_p + a_r - most) >= iou, with a margin for rounding (exact below)
        could = (w > 0) & (h > 0) & (most * (1 + 1e-9) >= iou * (a_p + a_r - most))
        for k in np.flatnonzero(could).tolist():
            q, col = int(p[k]), int(r[k])
            index, crop = preds[q]
            if out[index]:
                continue
            inter = _shared(crop, refs[col])
            union = int(pf[q, 4] + rf[col, 4]) - inter
            out[index] = union > 0 and inter / union >= iou
    _remember_match(predictions, refs, rf, out, iou)
    return out


REMATCH_LIMIT = 64  # references added + removed since the last call up to which only their neighbours are redone
_last_match: dict[str, object] = {}  # the last call's predictions, references, their facts, the answer, iou


def _remember_match(
    predictions: Sequence[InstanceMask], refs: list, rf: np.ndarray, out: np.ndarray, iou: float
) -> None:
    """Keep a call's inputs and answer for ``_rematch`` (the references are held, so their ids stay theirs)."""
    ids = np.fromiter(map(id, refs), dtype=np.int64, count=len(refs))
    _last_match.update(predictions=predictions, refs=refs, rf=rf, out=out.copy(), iou=iou, ids=ids)


def _rematch(
    predictions: Sequence[InstanceMask], refs: list, pf: np.ndarray, preds: list, iou: float
) -> np.ndarray | None:
    """``matched`` after an edit, from the last call's answer: an edit adds or takes away a few of thousands of
    references (crops are never changed in place), so only the predictions whose boxes touch a reference added
    or removed can change; those are matched again against the references near them, the rest keep their
    answer. None when the last call was about other predictions or the references changed by more than
    ``REMATCH_LIMIT`` (then everything is matched as usual). The answers are those of a full match (tested)."""
    last = _last_match
    if last.get("predictions") is not predictions or last.get("iou") != iou:
        return None
    old_refs, old_rf, old_ids = last["refs"], last["rf"], last["ids"]
    # each reference's row in the last call (-1: new), by identity, in numpy (no dict of 5,000 ids per edit)
    ids = np.fromiter(map(id, refs), dtype=np.int64, count=len(refs))
    order = np.argsort(old_ids, kind="stable")
    at = np.minimum(np.searchsorted(old_ids[order], ids), max(len(old_ids) - 1, 0))
    rows_array = np.where(old_ids[order][at] == ids, order[at], -1) if len(old_ids) else np.full(len(ids), -1)
    new = np.flatnonzero(rows_array < 0).tolist()
    kept = np.zeros(len(old_refs), dtype=bool)
    kept[rows_array[rows_array >= 0]] = True
    if len(new) + int(np.count_nonzero(~kept)) > REMATCH_LIMIT:
        return None
    rf = np.empty((len(refs), 5), dtype=np.int64)
    rf[rows_array >= 0] = old_rf[rows_array[rows_array >= 0]]
    if new:
        rf[new] = crop_facts([refs[k] for k in new])
    changed = np.concatenate([rf[new, :4], old_rf[~kept, :4]])  # boxes added and removed
    out = last["out"].copy()
    if len(changed):
        touches = np.zeros(len(pf), dtype=bool)
        for x0, y0, x1, y1 in changed.tolist():
            touches |= (pf[:, 0] < x1) & (pf[:, 2] > x0) & (pf[:, 1] < y1) & (pf[:, 3] > y0)
        for q in np.flatnonzero(touches).tolist():
            index, crop = preds[q]
            b = pf[q]
            w = np.minimum(rf[:, 2], b[2]) - np.maximum(rf[:, 0], b[0])
            h = np.minimum(rf[:, 3], b[3]) - np.maximum(rf[:, 1], b[1])
            most = np.minimum(np.minimum(np.maximum(w, 0) * np.maximum(h, 0), b[4]), rf[:, 4])
            could = (w > 0) & (h > 0) & (most * (1 + 1e-9) >= iou * (b[4] + rf[:, 4] - most))
            hit = False
            for col in np.flatnonzero(could).tolist():
                inter = _shared(crop, refs[col])
                union = int(b[4] + rf[col, 4]) - inter
                if union > 0 and inter / union >= iou:
                    hit = True
                    break
            out[index] = hit
    _remember_match(predictions, refs, rf, out, iou)
    return out
