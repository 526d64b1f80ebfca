"""Engine side of a slider move: score / box-NMS update vs full inference (ResNet-18 FPN, 800x1067).

    python benchmarks/gui_slider_engine.py [--repeats 30] [--threads N]

Prints the median time of a post-processing-only update (1000 proposals, up to 100 detections;
target <= 5 ms), of an RPN-NMS update, of a full inference of the same image, and their ratios.
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch
from gui_common import describe_machine, ms, resnet18_model, test_image

from engine.inference import Predictor
from engine.structures import PredictSettings


def timed(fn) -> float:  # noqa: ANN001
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--repeats", type=int, default=30)
    parser.add_argument("--threads", type=int, default=None)
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    predictor = Predictor(resnet18_model(), "cpu")
    image = test_image()
    base = PredictSettings(score_threshold=0.05, num_proposals=1000, max_detections=100)
    first = predictor.predict(image, base, key="warm-up")
    print(describe_machine())
    print(f"image {image.shape[1]}x{image.shape[0]}: {len(first.proposals)} proposals, {len(first)} detections")
    full = [
        timed(lambda i=i: predictor.predict(image, base, key=f"full-{i}")) for i in range(max(3, args.repeats // 6))
    ]
    predictor.predict(image, base, key="sliders")
    # The score slider moving back and forth: every position is a new (threshold, NMS) pair.
    scores = [0.05 + 0.002 * i for i in range(args.repeats)]
    update = []
    counts = []
    for i, score in enumerate(scores):
        settings = PredictSettings(score, box_nms_iou=0.5 + 0.001 * (i % 7), num_proposals=1000, max_detections=100)
        update.append(timed(lambda s=settings: counts.append(len(predictor.predict(settings=s)))))
    rpn = []
    for i in range(max(3, args.repeats // 6)):
        settings = PredictSettings(0.05, rpn_nms_iou=0.6 + 0.01 * i, num_proposals=1000, max_detections=100)
        rpn.append(timed(lambda s=settings: predictor.predict(settings=s)))
    runs = predictor.stage_runs
    print(f"detections per update: {min(counts)}..{max(counts)}; stage runs {dict(runs)}")
    print(f"full inference (backbone .. masks):   {ms(full)}")
    print(f"score / box-NMS update (post only):   {ms(update)}   target <= 5 ms")
    print(f"RPN-NMS update (from RPN post):       {ms(rpn)}")
    print(f"ratio full / score update:            {statistics.median(full) / statistics.median(update):.0f}x")
    print(f"ratio full / RPN-NMS update:          {statistics.median(full) / statistics.median(rpn):.1f}x")


if __name__ == "__main__":
    main()
