"""The human-in-the-loop walk-through, simulated: how many corrected instances and CPU minutes of training
until the model's mask AP50 on held-out images passes 0.5.

Starting from the nuclei sample with no annotations (resources/sample: 16 training images, 4 held out),
each round "annotates" the next images of the training split, in a fixed order. The annotator is simulated
with the ground truth: before a round's images are annotated, the current model pre-annotates them, and the
corrections a user must make are counted as

    missed   ground-truth nuclei that no prediction (score >= 0.5) covers at mask IoU >= 0.5 (drawn or fixed)
    wrong    predictions (score >= 0.5) that match no ground-truth nucleus (deleted)

In round 1 there is no model, so every nucleus is drawn. The model is then fine-tuned on all images
annotated so far, starting from the previous round's model (as the app's Train panel does with "start
from the current model"), and its mask AP / AP50 on the 4 held-out images is measured.

    python benchmarks/walkthrough.py [--rounds 2 4 8] [--iters 40] [--threads 1] [--out runs/walkthrough]

The network and recipe are the bundled model's (resources/models/README.md): ResNet-18 with GroupNorm,
GroupNorm FPN, anchors 16-128, input 512 px, SGD lr 0.01 with flips.

Prints one row per round and writes the rows as JSON to <out>/walkthrough.json.

``--order work`` (issue 13, item 12) picks each round's images as the app's image list orders them after
Predict All: the current model predicts every training image not annotated yet, and the images whose
predictions are expected to need the most work (the sum of 1 - confidence over the detections shown,
engine.quality) come first. ``--order both`` runs file order and work order from the same first round (which
has no model, so both take the first images in file order) and prints, for each, the corrections made before
the held-out mask AP50 first reached each level.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import torch
from pycocotools import mask as mask_utils

from engine.config import AugmentConfig, ModelConfig, TrainConfig
from engine.data import read_dataset
from engine.data.io.images import load_image
from engine.evaluate import evaluate_model
from engine.model.mask_rcnn import MaskRCNN
from engine.training.loop import train

SAMPLE = Path(__file__).resolve().parents[1] / "resources" / "sample"


def sample_sets(folder: Path):  # noqa: ANN201 - (train Dataset, its ids in order, val Dataset, its ids)
    """The sample's fixed split with every nucleus: splits/train.json (16 images) and splits/val.json (4)."""
    train_set = read_dataset(folder / "splits" / "train.json")
    val_set = read_dataset(folder / "splits" / "val.json")
    order = [im.id for im in sorted(train_set.images, key=lambda im: Path(im.path).name)]
    return train_set, order, val_set, [im.id for im in val_set.images]


def corrections(model: MaskRCNN | None, dataset, image_ids: list[int], score: float = 0.5) -> tuple[int, int, int]:  # noqa: ANN001
    """(ground-truth instances, missed, wrong) over ``image_ids`` for the model's pre-annotations."""
    total = missed = wrong = 0
    for image_id in image_ids:
        record = dataset.image_by_id(image_id)
        gt = [i for i in record.instances if not i.iscrowd]
        total += len(gt)
        if model is None:
            missed += len(gt)
            continue
        pixels = load_image(dataset.image_path(record))
        with torch.no_grad():
            out = model([torch.from_numpy(pixels).permute(2, 0, 1).float() / 255])[0]
        keep = out["scores"] >= score
        pred = (out["masks"][keep, 0] >= 0.5).numpy()
        if not len(gt) or not len(pred):
            missed += len(gt)
            wrong += len(pred)
            continue
        gt_rle = [i.to_rle(record.height, record.width) for i in gt]
        pred_rle = mask_utils.encode(np.asfortranarray(pred.transpose(1, 2, 0).astype(np.uint8)))
        iou = mask_utils.iou(pred_rle, gt_rle, [0] * len(gt_rle))  # (P, G)
        missed += int((iou.max(axis=0) < 0.5).sum())
        wrong += int((iou.max(axis=1) < 0.5).sum())
    return total, missed, wrong


def expected_work_order(model: MaskRCNN, dataset, image_ids: list[int], score: float = 0.5) -> list[int]:  # noqa: ANN001
    """``image_ids`` ordered as the app's image list after Predict All: most expected work first (ties: file
    order). Confidence: the class score times the mask head's decisiveness (engine.quality)."""
    import sys

    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from mask_quality import predict_with_probs  # the Prediction and its 28x28 probabilities, engine untouched

    from engine.inference import Predictor
    from engine.quality import combined_confidence, expected_work, mask_confidence
    from engine.structures import PredictSettings

    predictor = Predictor(model.eval())
    work = {}
    for image_id in image_ids:
        record = dataset.image_by_id(image_id)
        pred, probs = predict_with_probs(predictor, load_image(dataset.image_path(record)), PredictSettings(score))
        quality = mask_confidence(probs).numpy() if len(pred) else None
        work[image_id] = expected_work(combined_confidence(pred.scores, quality))
    return sorted(image_ids, key=lambda i: (-work[i], image_ids.index(i)))


def first_reaching(rows: list[dict], levels: list[float]) -> dict[float, int | None]:
    """The corrections made before the held-out mask AP50 first reached each level (None: never)."""
    return {
        level: next((row["corrected_total"] for row in rows if row["mask_AP50"] >= level), None) for level in levels
    }


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--rounds", type=int, nargs="+", default=[2, 4, 8], help="images annotated after each round")
    p.add_argument("--iters", type=int, default=40, help="training iterations per round")
    p.add_argument("--input-size", type=int, default=512)
    p.add_argument("--lr", type=float, default=0.01)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--out", default="runs/walkthrough")
    p.add_argument(
        "--order", choices=("file", "work", "both"), default="file",
        help="which images each round annotates: the next in file order, those with the most expected work, or both",
    )  # fmt: skip
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)
    orders = ["file", "work"] if args.order == "both" else [args.order]
    results = {}
    first_model = None
    for order in orders:
        rows, first_model = run(args, order, first_model)
        results[order] = rows
    if len(orders) > 1:
        # the AP50s reached (exact values: a rounded level can lie above the value it came from)
        levels = sorted({row["mask_AP50"] for rows in results.values() for row in rows if row["mask_AP50"] > 0})
        print("\ncorrections made before the held-out mask AP50 first reached:")
        reached = {order: first_reaching(rows, levels) for order, rows in results.items()}
        for level in levels:
            print(f"  AP50 >= {level:.4f}: " + ", ".join(f"{o} order {reached[o][level]}" for o in orders))
        Path(args.out).mkdir(parents=True, exist_ok=True)
        (Path(args.out) / "walkthrough_orders.json").write_text(json.dumps(results, indent=1))
    return 0


def run(args: argparse.Namespace, order: str, first_model: dict | None) -> tuple[list[dict], dict | None]:
    """One simulated loop; images picked in ``order``. ``first_model``: round 1's state (it has no model to order
    by, so every order starts the same: trained once, reused). Returns the rows and round 1's state."""
    dataset, train_order, val_set, val_ids = sample_sets(SAMPLE)
    out = Path(args.out) / order if args.order == "both" else Path(args.out)
    torch.manual_seed(0)
    cfg_model = ModelConfig(
        num_classes=2,
        min_size=(args.input_size,),
        max_size=1024,
        anchor_sizes=(16, 32, 64, 128),
        backbone_norm="gn",
        detections_per_image=400,
        box_batch_per_image=256,
    )
    model: MaskRCNN | None = None
    rows, corrected, minutes, annotated = [], 0, 0.0, []
    print(
        f"\n{order} order\n{'round':>5s} {'images':>6s} {'GT inst':>7s} {'missed':>6s} {'wrong':>5s} {'corrected':>9s} "
        f"{'train min':>9s} {'mask AP':>7s} {'AP50':>6s}"
    )
    for r, count in enumerate(args.rounds, start=1):
        todo = [i for i in train_order if i not in annotated]
        if order == "work" and model is not None:
            todo = expected_work_order(model, dataset, todo)
        new = todo[: count - len(annotated)]
        total, missed, wrong = corrections(model.eval() if model else None, dataset, new)
        corrected += missed + wrong
        annotated += new
        if model is None:
            model = MaskRCNN(cfg_model)
        if r == 1 and first_model is not None:  # the same first round as the order before: its model, its time
            model.load_state_dict(first_model["state"])
            minutes = first_model["minutes"]
            result = first_model["result"]
            rows.append(dict(first_model["row"], order=order))
            print(first_model["line"], flush=True)
            continue
        cfg = TrainConfig(
            iterations=args.iters,
            batch_size=2,
            lr=args.lr,
            warmup_iters=min(50, args.iters // 2) if r == 1 else 5,
            augment=AugmentConfig(vflip=0.5),
            seed=r,
        )
        start = time.perf_counter()
        for _ in train(model, dataset, cfg, out / f"round{r}", annotated, None, "cpu"):
            pass
        minutes += (time.perf_counter() - start) / 60
        result = evaluate_model(model, val_set, val_ids, ["nucleus"], "cpu")["segm"]
        row = {
            "round": r,
            "images": len(annotated),
            "new_gt_instances": total,
            "missed": missed,
            "wrong": wrong,
            "corrected_total": corrected,
            "train_minutes_total": round(minutes, 2),
            "mask_AP": result["AP"],
            "mask_AP50": result["AP50"],
        }
        row["order"], row["new_images"] = order, [Path(dataset.image_by_id(i).path).name for i in new]
        rows.append(row)
        line = (
            f"{r:5d} {len(annotated):6d} {total:7d} {missed:6d} {wrong:5d} {corrected:9d} {minutes:9.1f} "
            f"{result['AP']:7.3f} {result['AP50']:6.3f}"
        )
        print(line, flush=True)
        if r == 1 and first_model is None:
            state = {k: v.clone() for k, v in model.state_dict().items()}
            first_model = {"state": state, "minutes": minutes, "result": result, "row": row, "line": line}
        out.mkdir(parents=True, exist_ok=True)
        (out / "walkthrough.json").write_text(json.dumps(rows, indent=1))
    return rows, first_model


if __name__ == "__main__":
    raise SystemExit(main())
