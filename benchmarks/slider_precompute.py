"""Slider moves after the idle precompute (issue 12.4), vs the same moves without it, engine side.

    python benchmarks/slider_precompute.py                      # the dense sample image, the bundled model
    python benchmarks/slider_precompute.py --mosaic 5x6 --scale 1 --reach near --min-score 0.25 --start-score 0.3

The bundled nuclei model (at its own pixel scale x2 unless ``--scale``) predicts the dense 520x696 sample image (or
a mosaic of it) at score 0.5 with 2,000 proposals, then each slider moves through a fixed list of positions, every
move from that start: first with the caches a move leaves (what the app did before: the mask head runs for what a
move reveals, the RPN's NMS runs per tile), then again after ``Predictor.idle_step`` has run to the end. Prints per
slider the median and worst move before and after, the idle work's time, its longest step (how long a new request
can wait for it), what the caches hold, and checks that the moves after the precompute ran no network stage and
returned the detections the moves before did. Timings are wall-clock on whatever else the machine runs.

``--sliders`` limits the moves to some sliders (the smallest run that shows the mask-threshold figure at ~5,000
instances: ``--mosaic 5x6 --scale 1 --reach near --min-score 0.3 --start-score 0.3 --sliders "mask threshold"``).
``--threshold-rounds N`` then times, after the precompute and in the same process, N rounds of the mask-threshold
moves with the per-mask re-threshold the Predictor used before (a comparison and an ``InstanceMask`` per cached
mask, its last crop kept per mask) and with the current one (one comparison per tile over its flat buffer),
alternately, and checks that both give the same masks.
"""

from __future__ import annotations

import argparse
import gc
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import torch

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from engine.checkpoint import load_checkpoint  # noqa: E402
from engine.data import load_image  # noqa: E402
from engine.inference import Predictor, _MaskStore  # noqa: E402
from engine.structures import InstanceMask, PredictSettings, Reach  # noqa: E402

MODEL = REPO / "resources" / "models" / "nuclei_r18_gn.safetensors"
DENSE = REPO / "resources" / "sample" / "0ea221716cf13710214dcd331a61cea48308c3940df1d28cfc7fd817c83714e1.png"
NETWORK = ("backbone", "rpn_head", "box_head", "mask_head")


def v(position: int) -> float:
    """A slider value as the app's 0.01-step sliders send it."""
    return position * 0.01


START = PredictSettings(
    score_threshold=v(50),
    box_nms_iou=v(50),
    rpn_nms_iou=v(70),
    num_proposals=2000,
    mask_threshold=v(50),
    max_detections=400,
)
MOVES = {
    "score": [("score_threshold", v(p)) for p in (30, 5, 10, 70, 25, 20, 90, 40, 0)],
    "box NMS": [("box_nms_iou", v(p)) for p in (30, 70, 40, 90, 60)],
    "mask threshold": [("mask_threshold", v(p)) for p in (30, 70, 90, 40)],
    "max detections": [("max_detections", n) for n in (100, 1000, 250)],
    "proposals": [("num_proposals", n) for n in (1000, 500, 1500)],
    "RPN NMS": [("rpn_nms_iou", v(p)) for p in (50, 90, 60, 30, 80)],
}
FULL = Reach(
    min_score=0.0,
    box_nms_values=tuple(v(p) for p in range(5, 101)),
    rpn_nms_values=tuple(v(p) for p in range(10, 101)),
    max_proposals=2000,
    max_detections=1000,
)


def visited_reach(min_score: float) -> Reach:
    """The positions MOVES visits (and the start's) down to ``min_score``: what fits a loaded 2-core CPU's time."""
    box = sorted({START.box_nms_iou} | {x for _, x in MOVES["box NMS"]})
    rpn = sorted({START.rpn_nms_iou} | {x for _, x in MOVES["RPN NMS"]})
    return Reach(min_score, tuple(box), tuple(rpn), max_proposals=2000, max_detections=1000)


def near_reach(min_score: float) -> Reach:
    """One slider step of 0.1 around the start for the NMS sliders (the 5,000-instance run)."""
    return Reach(min_score, (v(40), v(50), v(60)), (v(60), v(70), v(80)), max_proposals=2000, max_detections=1000)


def network(predictor: Predictor) -> int:
    return sum(n for k, n in predictor.stage_runs.items() if k.removeprefix("idle_") in NETWORK)


def in_reach(settings: PredictSettings, reach: Reach) -> bool:
    return (
        settings.score_threshold >= reach.min_score
        and settings.box_nms_iou in reach.box_nms_values
        and settings.rpn_nms_iou in reach.rpn_nms_values
    )


def run_moves(
    predictor: Predictor, reach: Reach, origin: PredictSettings, sliders: list[str]
) -> tuple[dict[str, list[float]], dict[str, list[np.ndarray]]]:
    times: dict[str, list[float]] = {}
    keys: dict[str, list[np.ndarray]] = {}
    for slider, moves in MOVES.items():
        if slider not in sliders:
            continue
        for field, value in moves:
            settings = PredictSettings(**{**origin.__dict__, field: value})
            if not in_reach(settings, reach) or settings == origin:
                continue  # outside the precomputed reach: not a move the figures claim
            start = time.perf_counter()
            pred = predictor.predict(settings=settings)
            times.setdefault(slider, []).append(time.perf_counter() - start)
            keys.setdefault(slider, []).append(pred.keys)
        predictor.predict(settings=origin)
    return times, keys


def per_mask_crops(self: _MaskStore, keys: list[int], threshold: float) -> list[InstanceMask]:
    """The re-threshold before the flat buffer (commit bc4fd17): per mask a comparison of its own float32 array and
    an ``InstanceMask``, the last (threshold, crop) kept per mask."""
    cache = self.__dict__.setdefault("per_mask", {})
    out = []
    for k in keys:
        e = self.entries[k]
        hit = cache.get(k)
        if hit is None or hit[0] != threshold:
            soft = self.soft[e.off : e.off + e.h * e.w].reshape(e.h, e.w)
            hit = cache[k] = (threshold, InstanceMask(e.x0, e.y0, soft > np.float32(threshold)))
        out.append(hit[1])
    return out


def threshold_rounds(predictor: Predictor, origin: PredictSettings, rounds: int) -> None:
    """Old vs new mask-threshold moves, alternately in this process (the figures are whole ``predict`` calls)."""
    flat = _MaskStore.crops
    times: dict[str, list[float]] = {"per mask (before)": [], "flat buffer (now)": []}
    # full (generation 2) garbage collections inside each path's calls: what makes its worst moves
    full_gc: dict[str, list[float]] = {name: [] for name in times}
    current, gc_start = [""], [0.0]

    def on_gc(phase: str, info: dict) -> None:
        if info["generation"] == 2 and current[0]:
            if phase == "start":
                gc_start[0] = time.perf_counter()
            else:
                full_gc[current[0]].append(time.perf_counter() - gc_start[0])

    gc.callbacks.append(on_gc)
    same = True
    for _ in range(rounds):
        for _, value in MOVES["mask threshold"]:
            settings = PredictSettings(**{**origin.__dict__, "mask_threshold": value})
            got = {}
            for name, crops in zip(times, (per_mask_crops, flat)):
                _MaskStore.crops, current[0] = crops, name
                try:
                    start = time.perf_counter()
                    got[name] = predictor.predict(settings=settings)
                    times[name].append(time.perf_counter() - start)
                finally:
                    _MaskStore.crops, current[0] = flat, ""
            a, b = got.values()
            same &= np.array_equal(a.keys, b.keys) and all(
                (p.x0, p.y0) == (q.x0, q.y0) and np.array_equal(p.mask, q.mask) for p, q in zip(a.masks, b.masks)
            )
    n = len(next(iter(got.values())))
    print(
        f"mask-threshold moves, {n} detections, {rounds} rounds of {len(MOVES['mask threshold'])}; same masks: {same}"
    )
    gc.callbacks.remove(on_gc)
    for name, ts in times.items():
        pauses = ", ".join(f"{1000 * p:.0f}" for p in full_gc[name]) or "none"
        print(f"  {name:18} median / worst ms {fmt(ts)}; full GCs inside its calls (ms): {pauses}")


def fmt(values: list[float]) -> str:
    return f"{1000 * statistics.median(values):8.1f} / {1000 * max(values):8.1f}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--mosaic", default="1x1", help="rows x columns of copies of the dense image")
    parser.add_argument("--scale", type=float, default=None, help="pixel-scale factor (default: the model's, x2)")
    parser.add_argument("--reach", choices=("full", "visited", "near"), default="visited")
    parser.add_argument("--min-score", type=float, default=0.05, help="the lowest score reached (not with full)")
    parser.add_argument("--start-score", type=float, default=0.5)
    parser.add_argument("--idle-limit-s", type=float, default=1e9, help="stop the precompute after this long")
    parser.add_argument("--threads", type=int, default=1, help="torch threads (the app's worker: cores - 1)")
    parser.add_argument("--feature-budget-mb", type=int, default=512)
    parser.add_argument("--sliders", default=",".join(MOVES), help=f"comma-separated, of: {', '.join(MOVES)}")
    parser.add_argument("--threshold-rounds", type=int, default=0, help="old vs new mask-threshold moves (above)")
    args = parser.parse_args()
    sliders = [x.strip() for x in args.sliders.split(",")]
    if unknown := [x for x in sliders if x not in MOVES]:
        parser.error(f"unknown slider(s) {unknown}: choose from {', '.join(MOVES)}")
    torch.set_num_threads(args.threads)
    model, _ = load_checkpoint(MODEL)
    if args.scale is not None:
        model.config = model.config.replace(scale_policy="pixel-scale", scale_factor=args.scale)
    rows, cols = (int(x) for x in args.mosaic.lower().split("x"))
    image = np.ascontiguousarray(np.tile(load_image(DENSE)[:, :, :3], (rows, cols, 1)))
    reach = {"full": lambda _s: FULL, "visited": visited_reach, "near": near_reach}[args.reach](args.min_score)
    start_settings = PredictSettings(**{**START.__dict__, "score_threshold": args.start_score})
    predictor = Predictor(model, feature_budget=args.feature_budget_mb * 1024**2)
    start = time.perf_counter()
    first = predictor.predict(image, start_settings, key="image")
    first_s = time.perf_counter() - start
    print(f"torch {torch.__version__}, {torch.get_num_threads()} thread(s); model x{model.config.scale_factor:g}")
    print(
        f"image {image.shape[1]}x{image.shape[0]} ({args.mosaic}), {len(predictor.tiles)} tiles: "
        f"{len(first)} detections at score {args.start_score}, first result {first_s:.1f} s"
    )
    print(
        f"reach: lowest score {reach.min_score:.2f}, {len(reach.box_nms_values)} box-NMS and "
        f"{len(reach.rpn_nms_values)} RPN-NMS values, <= {reach.max_proposals} proposals, "
        f"<= {reach.max_detections} detections per tile"
    )
    before, keys_before = run_moves(predictor, reach, start_settings, sliders)
    predictor.predict(settings=start_settings)
    steps, longest, start = 0, 0.0, time.perf_counter()
    while True:
        t = time.perf_counter()
        more = predictor.idle_step(reach)
        longest = max(longest, time.perf_counter() - t)
        steps += more
        if not more or time.perf_counter() - start > args.idle_limit_s:
            break
    idle_s = time.perf_counter() - start
    print(f"precompute {'finished' if not more else 'stopped by --idle-limit-s'}")
    held = predictor.held_bytes()
    runs = {k: n for k, n in predictor.stage_runs.items() if k.startswith("idle_")}
    print(f"idle precompute: {idle_s:.0f} s in {steps} steps, longest step {1000 * longest:.0f} ms; {runs}")
    print(
        "held: masks {:.1f} MB, tables {:.1f} MB, features {:.1f} MB".format(
            *(held[k] / 1024**2 for k in ("masks", "tables", "features"))
        )
    )
    ran = network(predictor)
    after, keys_after = run_moves(predictor, reach, start_settings, sliders)
    same = all(np.array_equal(a, b) for s in keys_before for a, b in zip(keys_before[s], keys_after[s]))
    print(
        f"after the precompute the moves ran the network {network(predictor) - ran} times; "
        f"same detections as before: {same}"
    )
    print(f"{'slider':16} {'moves':>5}  {'before: median / worst ms':>26}  {'after: median / worst ms':>25}")
    for slider in before:
        print(f"{slider:16} {len(before[slider]):5}  {fmt(before[slider]):>26}  {fmt(after[slider]):>25}")
    everything = [t for ts in after.values() for t in ts]
    print(
        f"all moves after: median {1000 * statistics.median(everything):.1f} ms, worst {1000 * max(everything):.1f} ms"
    )
    if args.threshold_rounds:
        threshold_rounds(predictor, start_settings, args.threshold_rounds)


if __name__ == "__main__":
    main()
