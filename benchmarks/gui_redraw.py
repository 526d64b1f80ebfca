"""GUI redraw after a slider move: 1024x1024 image, 100 masks (target <= 30 ms median).

    QT_QPA_PLATFORM=offscreen python benchmarks/gui_redraw.py [--repeats 40] [--size 1024] [--masks 100]

Times what the GUI thread does when a result arrives: build the label map, palette lookup (masks),
outlines, boxes and labels, the instance list, and one synchronous paint of the canvas. Also the
same for a 6000x4000 image, and a pan step (a paint with a shifted view) on it.
"""

from __future__ import annotations

import argparse
import os
import time

import numpy as np

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

from gui_common import ms, test_image  # noqa: E402

from engine.structures import InstanceMask, Prediction, PredictSettings  # noqa: E402


def synthetic_prediction(height: int, width: int, count: int, seed: int = 0) -> Prediction:
    """``count`` elliptical masks of 20..120 px with boxes, scores, labels, 1000 proposals."""
    rng = np.random.default_rng(seed)
    boxes, masks = [], []
    for _ in range(count):
        w, h = rng.integers(20, 120, size=2)
        x0, y0 = int(rng.integers(0, width - w)), int(rng.integers(0, height - h))
        yy, xx = np.mgrid[0:h, 0:w]
        mask = ((yy - h / 2 + 0.5) / (h / 2)) ** 2 + ((xx - w / 2 + 0.5) / (w / 2)) ** 2 <= 1
        masks.append(InstanceMask(x0, y0, mask))
        boxes.append([x0, y0, x0 + w, y0 + h])
    proposals = rng.uniform(0, min(height, width) - 100, size=(1000, 2))
    proposals = np.hstack([proposals, proposals + rng.uniform(10, 100, size=(1000, 2))]).astype(np.float32)
    return Prediction(
        height, width, np.asarray(boxes, np.float32), np.sort(rng.uniform(0.5, 1, count))[::-1].astype(np.float32),
        rng.integers(1, 3, count), masks, proposals, np.linspace(1, 0, 1000, dtype=np.float32),
        np.arange(count), PredictSettings(),
    )  # fmt: skip


def time_redraws(window, app, prediction: Prediction, repeats: int) -> list[float]:  # noqa: ANN001
    times = []
    for i in range(repeats):
        shown = prediction if i % 2 == 0 else subset(prediction, 0.9)  # a slider moving: sets differ
        start = time.perf_counter()
        window.session.set_prediction(shown)
        window.controller.refilter()
        window.canvas.viewport().repaint()
        times.append(time.perf_counter() - start)
        app.processEvents()
    return times


def subset(prediction: Prediction, fraction: float) -> Prediction:
    keep = int(len(prediction) * fraction)
    p = prediction
    return Prediction(
        p.height, p.width, p.boxes[:keep], p.scores[:keep], p.labels[:keep], p.masks[:keep], p.proposals,
        p.proposal_scores, p.keys[:keep], p.settings,
    )  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--repeats", type=int, default=40)
    parser.add_argument("--size", type=int, default=1024)
    parser.add_argument("--masks", type=int, default=100)
    args = parser.parse_args()
    from gui.app import create_app
    from gui.window.main_window import MainWindow
    from gui.window.settings import Settings

    app = create_app()
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        window = MainWindow(Settings(os.path.join(tmp, "s.ini")), torch_threads=1)
        window.session.class_names = ["cell", "blob"]
        window.overlays.checks["proposals"].setChecked(True)
        window.resize(1280, 800)
        window.show()
        app.processEvents()
        for label, (h, w) in ((f"{args.size}x{args.size}", (args.size, args.size)), ("6000x4000", (4000, 6000))):
            image = test_image(h, w) if h <= 2048 else np.tile(test_image(), (5, 6, 1))[:h, :w]
            start = time.perf_counter()
            window.canvas.set_image(image)
            window.canvas.viewport().repaint()
            shown_in = time.perf_counter() - start
            pred = synthetic_prediction(h, w, args.masks)
            times = time_redraws(window, app, pred, args.repeats)
            print(f"{label}, {args.masks} masks, 100 proposals drawn: redraw after a slider move {ms(times)}")
            print(f"{label}: image shown in {1000 * shown_in:.0f} ms (setImage + first paint)")
            pans = []
            for i in range(20):
                start = time.perf_counter()
                window.canvas.view.translateBy(x=(-1) ** i * 15.0, y=10.0)
                window.canvas.viewport().repaint()
                pans.append(time.perf_counter() - start)
            print(f"{label}: one pan step (translate + paint) {ms(pans)}")
            if h > 2048:  # zoomed in to 1:1: the huge overlay is re-rendered finer for what is on screen
                zooms = []
                for i in range(10):
                    window.canvas.view.setRange(xRange=(i * 300, i * 300 + 690), yRange=(1000, 1750), padding=0)
                    start = time.perf_counter()
                    window.canvas._refresh_detail()
                    window.canvas.viewport().repaint()
                    zooms.append(time.perf_counter() - start)
                print(f"{label}: re-render of the overlay after zooming in to 1:1 {ms(zooms)}")
        window.shutdown()


if __name__ == "__main__":
    main()
