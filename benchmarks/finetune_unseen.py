"""Fine-tuning on a kind of image the start model never saw: held-out AP against corrected images and CPU minutes
(issue 14, point 3), and in which order to correct them (issue 13, item 12).

The generalist nuclei model is trained without the 16 brightfield 1024x1024 images of the 2018 Data Science
Bowl (``unseen_kind`` in resources/splits/dsb2018_generalist.json). Those 16 are split once, by sorted id, into a
pool of 8 a user would correct (even positions) and 8 held out (odd positions). For each count k (1, 2, 4, 8)
the start model is fine-tuned on the first k images of the pool -- fully annotated, as a user leaves them after
correcting -- for at most ``--minutes`` of wall time (each run starts from the same start model, as a user who
corrects k images and presses Train once), then scored on the 8 held-out images with ``engine evaluate``'s
code (COCO mask AP / AP50, tiled at the model's pixel scale).

Orders (``--order``): ``file`` takes the pool in sorted-id order; ``work`` in the app's image-list order after
Predict All with the start model (most expected work first: the sum of 1 - confidence over the shown
detections, engine.quality). For each image taken the corrections a user makes on the start model's
pre-annotations are counted: nuclei no prediction (score >= 0.5) covers at mask IoU >= 0.5 (to draw or fix),
and predictions that cover none (to delete).

    python benchmarks/finetune_unseen.py --weights MODEL [--counts 1 2 4 8] [--minutes 10] [--order file]
        [--frozen-stages 0] [--lr 0.01] [--roi-samples 256] [--crop-size 512] [--threads 2] [--out DIR]

Prints one row per run and writes the rows to <out>/finetune_unseen.json. Needs ../shared/data (not in a
fresh clone).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import time
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT.parent / "shared" / "data" / "dsb2018_stage1_train"
SPLIT = ROOT / "resources" / "splits" / "dsb2018_generalist.json"


def unseen_split(split_path: Path = SPLIT) -> tuple[list[str], list[str]]:
    """(pool, held out): the unseen kind's ids by sorted id, even positions to the pool, odd ones held out."""
    ids = sorted(json.loads(split_path.read_text())["unseen_kind"])
    return ids[0::2], ids[1::2]


def link_folder(ids: list[str], folder: Path, data: Path = DATA) -> Path:
    """A folder of links ``<id>`` -> the data set's ``<id>`` (the layout read_dataset reads as mask folders)."""
    folder.mkdir(parents=True, exist_ok=True)
    for image_id in ids:
        link = folder / image_id
        if not link.exists():
            link.symlink_to(data / image_id)
    return folder


def predictions(predictor, dataset, score: float = 0.5):  # noqa: ANN001, ANN201 - {image id: (Prediction)}
    """The start model's pre-annotation of every image, as the app's Predict All makes it."""
    from engine.data.io.images import load_image
    from engine.structures import PredictSettings

    settings = PredictSettings(score)
    return {im.id: predictor.predict(load_image(dataset.image_path(im)), settings) for im in dataset.images}


def corrections(pred, record) -> tuple[int, int, int]:  # noqa: ANN001
    """(ground-truth nuclei, missed, wrong) of one image's pre-annotation against its ground truth."""
    from pycocotools import mask as mask_utils

    gt = [i for i in record.instances if not i.iscrowd]
    rles = [
        mask_utils.encode(np.asfortranarray(m.full(record.height, record.width).astype(np.uint8))) for m in pred.masks
    ]
    if not gt or not rles:
        return len(gt), len(gt), len(rles)
    iou = mask_utils.iou(rles, [i.to_rle(record.height, record.width) for i in gt], [0] * len(gt))
    return len(gt), int((iou.max(axis=0) < 0.5).sum()), int((iou.max(axis=1) < 0.5).sum())


def work_of(pred) -> float:  # noqa: ANN001
    """The image list's expected work of one image (engine.quality)."""
    from engine.quality import combined_confidence, expected_work

    return float(expected_work(combined_confidence(pred.scores, getattr(pred, "mask_quality", None))))


def fine_tune(args, start: Path, dataset, ids: list[int], out: Path) -> tuple[object, dict]:  # noqa: ANN001
    """Fine-tune a fresh copy of the start model on ``ids``; stop at ``args.iters`` or ``args.minutes``."""
    from engine.checkpoint import load_checkpoint
    from engine.config import AUGMENT_PRESETS, TrainConfig
    from engine.model.mask_rcnn import MaskRCNN
    from engine.training.loop import train

    base, info = load_checkpoint(start)
    cfg_model = info.config.replace(frozen_stages=args.frozen_stages, box_batch_per_image=args.roi_samples)
    model = MaskRCNN(cfg_model)
    model.load_state_dict(base.state_dict())
    model.class_names = info.class_names
    cfg = TrainConfig(
        iterations=args.iters,
        batch_size=args.batch_size,
        lr=args.lr,
        warmup_iters=args.warmup,
        crop_size=args.crop_size,
        augment=AUGMENT_PRESETS[args.augment],
        seed=0,
    )
    # The cap is CPU time, not wall time: this machine is shared, and ``minutes`` of a quiet machine with
    # ``threads`` cores is at most minutes * threads of process CPU time.
    wall0, cpu0 = time.perf_counter(), time.process_time()
    budget = 60 * args.minutes * torch.get_num_threads()
    steps = 0
    stop = lambda: time.process_time() - cpu0 > budget  # noqa: E731
    for event in train(model, dataset, cfg, out, ids, None, "cpu", cancel=stop):
        if event.kind == "step":
            steps = event.iteration
    return model, {
        "iterations": steps,
        "wall_min": round((time.perf_counter() - wall0) / 60, 2),
        "cpu_min": round((time.process_time() - cpu0) / 60, 2),
    }


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--weights", required=True, help="the start model (the generalist)")
    p.add_argument("--counts", type=int, nargs="+", default=[1, 2, 4, 8])
    p.add_argument("--order", choices=("file", "work", "both"), default="file")
    p.add_argument(
        "--minutes", type=float, default=10.0,
        help="cap of each fine-tuning run: this many minutes of all --threads cores (process CPU time)",
    )  # fmt: skip
    p.add_argument("--iters", type=int, default=200, help="iterations of each run (the cosine schedule's length)")
    p.add_argument("--batch-size", type=int, default=2)
    p.add_argument("--lr", type=float, default=0.01)
    p.add_argument("--warmup", type=int, default=10)
    p.add_argument("--frozen-stages", type=int, default=0, help="0: all trainable; k: stem + layer1..k-1 frozen")
    p.add_argument("--roi-samples", type=int, default=256)
    p.add_argument("--crop-size", type=int, default=512)
    p.add_argument("--augment", default="microscopy")
    p.add_argument("--held-out", type=int, default=8, help="score on the first N held-out images (default all 8)")
    p.add_argument("--no-baseline", action="store_true", help="skip scoring the start model itself")
    p.add_argument(
        "--skip-corrections", action="store_true",
        help="file order only: do not predict the pool to count the corrections (saves a Predict All)",
    )  # fmt: skip
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--out", default="runs/finetune_unseen")
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)
    if not DATA.is_dir():
        raise SystemExit(f"{DATA} is missing: this benchmark needs the DSB 2018 stage-1 training set")

    from engine.checkpoint import load_checkpoint
    from engine.data import read_dataset
    from engine.evaluate import evaluate_model
    from engine.inference import Predictor

    out = Path(args.out)
    pool_ids, held_ids = unseen_split()
    pool = read_dataset(link_folder(pool_ids, out / "data" / "pool"))
    held = read_dataset(link_folder(held_ids[: args.held_out], out / "data" / "held_out"))
    start, info = load_checkpoint(args.weights)
    names = info.class_names

    def score(model) -> dict:  # noqa: ANN001
        t = time.perf_counter()
        segm = evaluate_model(model, held, None, names, "cpu")
        return {
            "mask_AP": round(segm["segm"]["AP"], 4),
            "mask_AP50": round(segm["segm"]["AP50"], 4),
            "box_AP50": round(segm["bbox"]["AP50"], 4),
            "eval_min": round((time.perf_counter() - t) / 60, 2),
        }

    rows: list[dict] = []

    def report(row: dict) -> None:
        rows.append(row)
        print(json.dumps(row), flush=True)
        out.mkdir(parents=True, exist_ok=True)
        tmp = out / "finetune_unseen.json.tmp"
        tmp.write_text(json.dumps({"args": vars(args), "rows": rows}, indent=1))
        os.replace(tmp, out / "finetune_unseen.json")

    print(f"pool {len(pool.images)} images, held out {len(held.images)}; start model {args.weights}", flush=True)
    if not args.no_baseline:
        report({"order": "start model", "images": 0, **score(start)})
    file_order = [im.id for im in sorted(pool.images, key=lambda im: str(im.path))]
    if args.order == "file" and args.skip_corrections:
        fixes = {i: (0, 0, 0) for i in file_order}
        work_order = file_order
    else:  # the app's Predict All with the start model: what a user corrects, and the image list's order
        t = time.perf_counter()
        pre = predictions(Predictor(start, "cpu"), pool)
        work = {i: work_of(pre[i]) for i in file_order}
        work_order = sorted(file_order, key=lambda i: (-work[i], file_order.index(i)))
        print(f"predict all on the pool: {time.perf_counter() - t:.0f} s; expected work per image (file order): "
              + ", ".join(f"{work[i]:.1f}" for i in file_order), flush=True)  # fmt: skip
        fixes = {i: corrections(pre[i], pool.image_by_id(i)) for i in file_order}
    orders = {"file": file_order, "work": work_order}
    chosen = ["file", "work"] if args.order == "both" else [args.order]
    done: dict[tuple[int, ...], dict] = {}
    for order in chosen:
        for k in args.counts:
            ids = orders[order][:k]
            key = tuple(sorted(ids))
            gt = sum(fixes[i][0] for i in ids)
            missed = sum(fixes[i][1] for i in ids)
            wrong = sum(fixes[i][2] for i in ids)
            row = {"order": order, "images": k, "gt_nuclei": gt, "missed": missed, "wrong": wrong,
                   "corrections": missed + wrong}  # fmt: skip
            if key in done:  # the same images as a run already made (e.g. all 8 in either order)
                report({**row, **{k2: v for k2, v in done[key].items() if k2 not in row}, "same_as_run_above": True})
                continue
            model, spent = fine_tune(args, Path(args.weights), pool, ids, out / f"{order}_{k}")
            result = {**spent, **score(model)}
            done[key] = result
            peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20
            report({**row, **result, "peak_rss_gb": round(peak, 2)})
            del model
    print("\norder  images  corrections  iters  wall min  cpu min  mask AP  AP50")
    for r in rows:
        print(
            f"{r['order']:>11s} {r['images']:3d} {r.get('corrections', 0):6d} {r.get('iterations', 0):6d} "
            f"{r.get('wall_min', 0):8.1f} {r.get('cpu_min', 0):8.1f} {r['mask_AP']:8.3f} {r['mask_AP50']:6.3f}"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
