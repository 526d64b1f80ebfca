"""GUI-thread time of one edit, delete and undo on an image with 5,000 polygons and a prediction (issue 15, item 11).

    QT_QPA_PLATFORM=offscreen python benchmarks/edit_stall.py                      # 5,000 polygons, 120 detections
    QT_QPA_PLATFORM=offscreen python benchmarks/edit_stall.py --polygons 2000 --profile

The real window (offscreen) opens a synthetic COCO folder: one 1024x1024 image with ``--polygons`` small
polygons (radius 5-14 px, spread over the image). A prediction of ``--detections`` masks is put on screen
as the controller puts a result (half of them copies of annotations, which the "hide predictions
matching annotations" rule hides; half blobs of 120-320 px, each box-overlapping hundreds of polygons).
Each round times, on the GUI thread, the call and the events it posts (processEvents until none is left):

- edit: draw a polygon (``Editor.add_polygon``);
- delete: delete the selected annotation (the one just drawn);
- undo: undo the delete.

Every one redraws the annotation layer and re-decides which predictions an annotation hides
(``gui.editing.masks.matched``). ``before`` swaps in the brute-force matcher the app had (each
prediction's box against every annotation's, then a mask IoU for every box overlap); ``after`` is the
indexed one (gui/editing/masks.py). Both must hide the same predictions; the script checks it.
"""

from __future__ import annotations

import argparse
import cProfile
import json
import os
import pstats
import statistics
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np  # noqa: E402
from PIL import Image  # noqa: E402

from engine.structures import InstanceMask, Prediction, PredictSettings  # noqa: E402
from gui.editing.masks import box_of  # noqa: E402

SIZE = 1024


IOU_CALLS = [0]  # mask IoUs / intersections computed (both matchers count here)


def crop_iou_before(a: InstanceMask, b: InstanceMask) -> float:
    """gui/editing/masks.py's crop_iou before issue 15 (item 11), as it was."""
    IOU_CALLS[0] += 1
    ax0, ay0, ax1, ay1 = box_of(a)
    bx0, by0, bx1, by1 = box_of(b)
    x0, y0, x1, y1 = max(ax0, bx0), max(ay0, by0), min(ax1, bx1), min(ay1, by1)
    if x1 <= x0 or y1 <= y0:
        return 0.0
    part_a = a.mask[y0 - ay0 : y1 - ay0, x0 - ax0 : x1 - ax0]
    inter = int((part_a & b.mask[y0 - by0 : y1 - by0, x0 - bx0 : x1 - bx0]).sum())
    union = a.area + b.area - inter
    return inter / union if union else 0.0


def matched_brute_force(predictions: Sequence[InstanceMask], references: Sequence[InstanceMask], iou: float = 0.5):  # noqa: ANN201
    """The matcher before issue 15 (item 11): every prediction's box against every reference's, then a mask
    IoU for each box overlap."""
    out = np.zeros(len(predictions), dtype=bool)
    refs = [r for r in references if r.mask.size]
    if not refs or not len(predictions):
        return out
    rb = np.array([box_of(r) for r in refs], dtype=np.int64)
    for p, crop in enumerate(predictions):
        if not crop.mask.size:
            continue
        x0, y0, x1, y1 = box_of(crop)
        near = np.flatnonzero((rb[:, 0] < x1) & (rb[:, 2] > x0) & (rb[:, 1] < y1) & (rb[:, 3] > y0))
        out[p] = any(crop_iou_before(crop, refs[j]) >= iou for j in near)
    return out


def polygon(cx: float, cy: float, radius: float, rng: np.random.Generator) -> list[float]:
    angles = np.sort(rng.uniform(0, 2 * np.pi, 7))
    radii = radius * rng.uniform(0.7, 1.0, 7)
    xs = np.clip(cx + radii * np.cos(angles), 0, SIZE - 1)
    ys = np.clip(cy + radii * np.sin(angles), 0, SIZE - 1)
    return np.round(np.stack([xs, ys], 1).ravel(), 1).tolist()


def make_folder(folder: Path, polygons: int, seed: int) -> None:
    rng = np.random.default_rng(seed)
    Image.fromarray((rng.random((SIZE, SIZE, 3)) * 255).astype(np.uint8)).save(folder / "big.png")
    annotations = []
    for i in range(polygons):
        cx, cy = rng.uniform(15, SIZE - 15, 2)
        points = polygon(cx, cy, rng.uniform(5, 14), rng)
        annotations.append({"id": i + 1, "image_id": 1, "category_id": 1, "segmentation": [points]})
    doc = {
        "images": [{"id": 1, "file_name": "big.png", "width": SIZE, "height": SIZE}],
        "categories": [{"id": 1, "name": "cell"}],
        "annotations": annotations,
    }
    (folder / "annotations.json").write_text(json.dumps(doc))


def make_prediction(annotation_crops: list[InstanceMask], detections: int, seed: int) -> Prediction:
    rng = np.random.default_rng(seed + 1)
    masks = [annotation_crops[int(i)] for i in rng.choice(len(annotation_crops), detections // 2, replace=False)]
    while len(masks) < detections:
        h, w = (int(v) for v in rng.integers(120, 320, 2))
        y0, x0 = int(rng.integers(0, SIZE - h)), int(rng.integers(0, SIZE - w))
        yy, xx = np.mgrid[0:h, 0:w]
        blob = ((yy - h / 2) / (h / 2)) ** 2 + ((xx - w / 2) / (w / 2)) ** 2 <= 1
        masks.append(InstanceMask(x0, y0, blob))
    boxes = np.array([box_of(m) for m in masks], dtype=np.float32)
    n = len(masks)
    return Prediction(
        SIZE, SIZE, boxes, np.linspace(0.99, 0.5, n, dtype=np.float32), np.ones(n, dtype=np.int64), masks,
        np.zeros((0, 4), np.float32), np.zeros(0, np.float32), np.arange(n, dtype=np.int64), PredictSettings(),
    )  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--polygons", type=int, default=5000)
    parser.add_argument("--detections", type=int, default=120)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--profile", action="store_true", help="print the top functions of one 'after' round")
    args = parser.parse_args()

    from PySide6.QtWidgets import QApplication

    import gui.window.controller as controller_module
    from gui.app import create_app
    from gui.editing import masks
    from gui.window.main_window import MainWindow
    from gui.window.settings import Settings

    app = create_app()
    tmp = Path(tempfile.mkdtemp(prefix="edit_stall_"))
    folder = tmp / "data"
    folder.mkdir()
    make_folder(folder, args.polygons, args.seed)
    window = MainWindow(Settings(tmp / "settings.ini"), torch_threads=1)
    window.resize(1280, 800)
    window.show()

    def settle(timeout: float = 60.0) -> None:
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            app.processEvents()
            if window.controller.is_idle() and window.session.image is not None:
                return
            time.sleep(0.01)
        raise SystemExit("timed out waiting for the image")

    assert window.open_path(folder)
    settle()
    session, editor, project = window.session, window.editor, window.session.project
    crops = [project.crop(0, i) for i in project.annotations(0)]
    prediction = make_prediction(crops, args.detections, args.seed)
    session.set_prediction(prediction)
    window.controller.refilter()
    app.processEvents()
    rb = np.array([box_of(c) for c in crops])
    pb = prediction.boxes.astype(np.int64)
    overlaps = sum(
        int(((rb[:, 0] < x1) & (rb[:, 2] > x0) & (rb[:, 1] < y1) & (rb[:, 3] > y0)).sum()) for x0, y0, x1, y1 in pb
    )
    hidden = masks.matched(prediction.masks, crops)
    assert (hidden == matched_brute_force(prediction.masks, crops)).all(), "the two matchers disagree"
    print(
        f"{len(crops)} polygons on a {SIZE}x{SIZE} image, {len(prediction)} detections "
        f"({int(hidden.sum())} hidden under an annotation), {overlaps} prediction/annotation box overlaps"
    )

    def timed(action) -> float:  # noqa: ANN001
        start = time.perf_counter()
        action()
        app.processEvents()
        return time.perf_counter() - start

    def one_round(k: int) -> dict[str, float]:
        x, y = 40 + 37 * k % 900, 60 + 53 * k % 900
        times = {"edit": timed(lambda: editor.add_polygon([(x, y), (x + 30, y), (x + 30, y + 25), (x, y + 25)]))}
        times["delete"] = timed(editor.delete_selected)
        times["undo"] = timed(editor.undo)
        return times

    results: dict[str, dict[str, list[float]]] = {}
    for name, matcher in (("before (brute force)", matched_brute_force), ("after (indexed)", masks.matched)):
        controller_module.matched = matcher
        one_round(0)  # warm-up
        rounds = [one_round(k + 1) for k in range(args.rounds)]
        results[name] = {kind: [r[kind] for r in rounds] for kind in ("edit", "delete", "undo")}
        calls = count_iou_calls(masks, matcher, prediction, project)
        current = [project.crop(0, i) for i in project.annotations(0)]
        alone = []
        for _ in range(3):
            start = time.perf_counter()
            matcher(prediction.masks, current)
            alone.append(time.perf_counter() - start)
        line = "  ".join(f"{kind} {1000 * statistics.median(v):7.1f} ms" for kind, v in results[name].items())
        print(f"{name:22s} {line}   (the re-match alone {1000 * statistics.median(alone):.1f} ms, {calls} mask IoUs)")

    if args.profile:
        controller_module.matched = masks.matched
        profiler = cProfile.Profile()
        profiler.enable()
        one_round(99)
        profiler.disable()
        pstats.Stats(profiler).sort_stats("tottime").print_stats(20)
    window.close()
    QApplication.processEvents()


def count_iou_calls(masks, matcher, prediction: Prediction, project) -> int:  # noqa: ANN001
    """How many mask IoUs (or intersections) one re-match computes: the annotations against the prediction."""
    real = masks.crop_intersection

    def counting(a: InstanceMask, b: InstanceMask) -> int:
        IOU_CALLS[0] += 1
        return real(a, b)

    masks.crop_intersection = counting
    IOU_CALLS[0] = 0
    try:
        matcher(prediction.masks, [project.crop(0, i) for i in project.annotations(0)])
    finally:
        masks.crop_intersection = real
    return IOU_CALLS[0]


if __name__ == "__main__":
    main()
