"""Which confidence ranks wrong masks first (issue 13, item 11): the review queue walks a reviewer from the
least to the most confident prediction, so the confidence that puts the wrong ones first saves the most looks.

On held-out images the bundled model predicts (the app's Predictor, the app's default score threshold 0.5); a
prediction is **wrong** when its mask IoU with the best-matching ground-truth instance is < 0.5 (or it
overlaps none). For each candidate confidence c the table gives the ROC-AUC and the average precision of
"wrong" ranked by -c (higher is better; a random order gives AUC 0.5 and AP = the share of wrong ones), and
how many of the wrong ones the first 20 % of the queue holds. Candidates, from the mask head's 28x28
probabilities p of each detection (its own class, in its box) and its class score s:

    score            s
    decisive         mean |2p - 1| over the box (engine.quality's first definition)
    score*decisive   s x decisive
    certain          1 - the fraction of box pixels with 0.3 <= p <= 0.7
    stability        IoU of the masks p > 0.4 and p > 0.6 (agreement at two thresholds)
    score*stability  s x stability
    decisive(edge)   mean |2p - 1| over the pixels near the mask's outline (where masks go wrong)

    python benchmarks/mask_quality.py [--dsb] [--max-images N] [--threads 1] [--out runs/mask_quality.json]

``--dsb`` adds the images listed as "val" in resources/splits/dsb2018_generalist.json from
../shared/data/dsb2018_stage1_train (skipped with a note when absent). Prints the table (markdown) and writes
the per-prediction values as JSON.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from engine.checkpoint import load_checkpoint  # noqa: E402
from engine.data import read_dataset  # noqa: E402
from engine.data.io.images import load_image  # noqa: E402
from engine.ground_truth import iou_matrix  # noqa: E402
from engine.inference import Predictor  # noqa: E402
from engine.structures import InstanceMask, PredictSettings  # noqa: E402
from gui.session.project import crop_of  # noqa: E402  (Qt-free)

MODEL = ROOT / "resources" / "models" / "nuclei_r18_gn.safetensors"
SAMPLE_VAL = ROOT / "resources" / "sample" / "splits" / "val.json"
DSB = ROOT.parent / "shared" / "data" / "dsb2018_stage1_train"
DSB_SPLIT = ROOT / "resources" / "splits" / "dsb2018_generalist.json"


def candidates(probs: torch.Tensor, scores: np.ndarray) -> dict[str, np.ndarray]:
    """Every candidate confidence of N detections from their (N, 28, 28) probabilities and (N,) scores."""
    p = probs.float()
    flat = p.flatten(1)
    decisive = (2 * flat - 1).abs().mean(1)
    certain = 1 - ((flat >= 0.3) & (flat <= 0.7)).float().mean(1)
    low, high = flat > 0.4, flat > 0.6
    union = (low | high).sum(1).clamp(min=1)
    stability = (low & high).sum(1) / union
    inside = (p > 0.5).float()
    # pixels within 2 of the outline (a 5x5 max-pool of the mask differs from a 5x5 min-pool there)
    grown = torch.nn.functional.max_pool2d(inside[:, None], 5, 1, 2)[:, 0]
    shrunk = -torch.nn.functional.max_pool2d(-inside[:, None], 5, 1, 2)[:, 0]
    edge = (grown != shrunk).flatten(1).float()
    edge_decisive = ((2 * flat - 1).abs() * edge).sum(1) / edge.sum(1).clamp(min=1)
    s = torch.as_tensor(scores, dtype=torch.float32)
    out = {
        "score": s,
        "decisive": decisive,
        "score*decisive": s * decisive,
        "certain": certain,
        "stability": stability.float(),
        "score*stability": s * stability.float(),
        "decisive(edge)": edge_decisive,
        "score*decisive(edge)": s * edge_decisive,
    }
    return {k: v.numpy().astype(np.float64) for k, v in out.items()}


def roc_auc(wrong: np.ndarray, risk: np.ndarray) -> float:
    """P(risk of a wrong one > risk of a right one), ties counted half (Mann-Whitney)."""
    pos, neg = risk[wrong], risk[~wrong]
    if not len(pos) or not len(neg):
        return float("nan")
    order = np.argsort(np.concatenate([pos, neg]), kind="stable")
    ranks = np.empty(len(order))
    values = np.concatenate([pos, neg])[order]
    # average ranks over ties
    i = 0
    while i < len(values):
        j = i
        while j + 1 < len(values) and values[j + 1] == values[i]:
            j += 1
        ranks[order[i : j + 1]] = (i + j) / 2 + 1
        i = j + 1
    return float((ranks[: len(pos)].sum() - len(pos) * (len(pos) + 1) / 2) / (len(pos) * len(neg)))


def average_precision(wrong: np.ndarray, risk: np.ndarray) -> float:
    """AP of finding the wrong ones when walking in descending risk (sklearn's step-wise definition)."""
    if not wrong.any():
        return float("nan")
    order = np.argsort(-risk, kind="stable")
    hits = wrong[order]
    precision = np.cumsum(hits) / np.arange(1, len(hits) + 1)
    return float((precision * hits).sum() / hits.sum())


def caught_in_first(wrong: np.ndarray, risk: np.ndarray, share: float = 0.2) -> float:
    """Share of the wrong ones among the first ``share`` of the queue."""
    if not wrong.any():
        return float("nan")
    k = max(1, int(round(share * len(risk))))
    order = np.argsort(-risk, kind="stable")
    return float(wrong[order[:k]].sum() / wrong.sum())


def predict_with_probs(predictor: Predictor, image: np.ndarray, settings: PredictSettings):  # noqa: ANN201
    """The Prediction and its detections' 28x28 probabilities, in the Prediction's order (the Predictor hands
    them to ``_crops_for`` in that order: captured there, so nothing of the engine changes). A Predictor without
    that step (a later engine) gets the network's own output instead: each detection's pasted probabilities
    inside its box, resampled to 28x28 (close to, not the same as, the head's own frame)."""
    if not hasattr(predictor, "_crops_for"):
        return _plain_forward(predictor.model, image, settings)
    captured: list = []
    original = predictor._crops_for

    def spy(keys, probs, boxes, size, threshold):  # noqa: ANN001, ANN202
        captured.append([p.detach().cpu() for p in probs])
        return original(keys, probs, boxes, size, threshold)

    predictor._crops_for = spy
    try:
        pred = predictor.predict(image, settings)
    finally:
        predictor._crops_for = original
    probs = captured[-1]
    stacked = torch.stack(probs) if probs else torch.zeros((0, 28, 28))
    return pred, stacked


@torch.no_grad()
def _plain_forward(model, image: np.ndarray, settings: PredictSettings):  # noqa: ANN001, ANN202
    out = model([torch.from_numpy(image).permute(2, 0, 1).float() / 255])[0]
    keep = out["scores"] >= settings.score_threshold
    boxes, scores, soft = out["boxes"][keep], out["scores"][keep], out["masks"][keep, 0]
    masks, probs = [], []
    for box, p in zip(boxes.round().int().tolist(), soft):
        x0, y0 = max(0, box[0]), max(0, box[1])
        x1, y1 = max(x0 + 1, min(p.shape[1], box[2])), max(y0 + 1, min(p.shape[0], box[3]))
        inside = p[y0:y1, x0:x1]
        masks.append(InstanceMask(x0, y0, (inside >= settings.mask_threshold).numpy()))
        probs.append(torch.nn.functional.interpolate(inside[None, None], size=(28, 28), mode="bilinear")[0, 0])
    return _Plain(masks, scores.numpy()), torch.stack(probs) if probs else torch.zeros((0, 28, 28))


class _Plain:
    def __init__(self, masks: list, scores: np.ndarray) -> None:
        self.masks, self.scores = masks, scores

    def __len__(self) -> int:
        return len(self.masks)


def gather(predictor: Predictor, dataset, image_ids: list[int], settings: PredictSettings, label: str) -> dict:
    """Per prediction: the candidates, its best IoU, and which set it came from."""
    rows: dict[str, list] = {"best_iou": [], "set": []}
    for n, image_id in enumerate(image_ids, start=1):
        record = dataset.image_by_id(image_id)
        start = time.perf_counter()
        image = load_image(dataset.image_path(record))
        pred, probs = predict_with_probs(predictor, image, settings)
        gts = [crop_of(i.decode_mask(record.height, record.width)) for i in record.instances if not i.iscrowd]
        ious = iou_matrix(pred.masks, gts)
        best = ious.max(1) if ious.shape[1] else np.zeros(len(pred))
        for name, values in candidates(probs, pred.scores).items():
            rows.setdefault(name, []).extend(values.tolist())
        rows["best_iou"].extend(best.tolist())
        rows["set"].extend([label] * len(pred))
        found = ious.max(0) >= 0.5 if ious.shape[0] else np.zeros(len(gts), bool)
        rows.setdefault("images", []).append(
            {
                "image": Path(record.path).name,
                "set": label,
                "predictions": len(pred),
                "wrong": int((best < 0.5).sum()),
                "ground_truth": len(gts),
                "missed": int((~found).sum()),
            }
        )
        print(
            f"  {label} {n}/{len(image_ids)} {Path(record.path).name[:12]}: {len(pred)} predictions, "
            f"{int((best < 0.5).sum())} wrong, {len(gts)} ground truth, {time.perf_counter() - start:.1f} s",
            flush=True,
        )
    return rows


def table(rows: dict, names: list[str]) -> str:
    wrong = np.asarray(rows["best_iou"]) < 0.5
    lines = [
        f"{len(wrong)} predictions, {int(wrong.sum())} wrong ({100 * wrong.mean():.1f} %: the AP of a random order)",
        "",
        "| confidence | ROC-AUC | AP (wrong first) | wrong ones in the first 20 % of the queue |",
        "|---|---|---|---|",
    ]
    for name in names:
        risk = -np.asarray(rows[name])
        lines.append(
            f"| {name} | {roc_auc(wrong, risk):.3f} | {average_precision(wrong, risk):.3f} | "
            f"{100 * caught_in_first(wrong, risk):.0f} % |"
        )
    return "\n".join(lines)


def image_order_table(rows: dict, confidence: str = "score*decisive") -> str:
    """Which image next (issue 13, item 12): per image, the expected work (sum of 1 - confidence over its
    predictions) against the corrections it needs (wrong predictions + missed objects); the share of all
    corrections met in the first k images when correcting in expected-work order, in file order, and in the
    best possible order."""
    images, values = rows["images"], np.asarray(rows[confidence])
    work, start = [], 0
    for image in images:
        work.append(float(np.clip(1 - values[start : start + image["predictions"]], 0, 1).sum()))
        start += image["predictions"]
    work = np.asarray(work)
    needed = np.array([image["wrong"] + image["missed"] for image in images], dtype=np.float64)
    ranks = [np.argsort(np.argsort(v, kind="stable"), kind="stable") for v in (work, needed)]
    spearman = float(np.corrcoef(*ranks)[0, 1]) if len(images) > 2 else float("nan")
    by_work = needed[np.argsort(-work, kind="stable")]
    best = np.sort(needed)[::-1]
    lines = [
        f"{len(images)} images, {int(needed.sum())} corrections (wrong + missed); Spearman correlation of expected "
        f"work ({confidence}) with the corrections an image needs: {spearman:.2f}",
        "",
        "| images corrected | in expected-work order | in file order | best possible order |",
        "|---|---|---|---|",
    ]
    for k in (5, 10, 20, 40):
        if k <= len(images):
            shares = [100 * order[:k].sum() / needed.sum() for order in (by_work, needed, best)]
            lines.append(f"| {k} | " + " | ".join(f"{share:.0f} %" for share in shares) + " |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--weights", default=str(MODEL))
    p.add_argument("--dsb", action="store_true", help="also the generalist split's val images (when present)")
    p.add_argument("--max-images", type=int, default=0, help="at most this many DSB images (0: all)")
    p.add_argument("--score", type=float, default=0.5, help="score threshold (the app's default slider)")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--out", default="runs/mask_quality.json")
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)
    model, _info = load_checkpoint(args.weights)
    predictor = Predictor(model)
    settings = PredictSettings(score_threshold=args.score)
    sample = read_dataset(SAMPLE_VAL)
    print(f"sample val: {len(sample.images)} images", flush=True)
    rows = gather(predictor, sample, [im.id for im in sample.images], settings, "sample")
    if args.dsb:
        if not DSB.is_dir() or not DSB_SPLIT.is_file():
            print(f"DSB images not found at {DSB}: only the sample is measured", flush=True)
        else:
            from engine.data.io.mask_readers import read_dsb

            ids = json.loads(DSB_SPLIT.read_text())["val"]
            if args.max_images:
                ids = ids[: args.max_images]
            dsb = read_dsb(DSB, [DSB / i for i in ids])
            print(f"DSB val: {len(dsb.images)} images", flush=True)
            more = gather(predictor, dsb, [im.id for im in dsb.images], settings, "dsb")
            for key, values in more.items():
                rows[key].extend(values)
    names = [k for k in rows if k not in ("best_iou", "set", "images")]
    sets = sorted(set(rows["set"]))
    for label in sets + (["all"] if len(sets) > 1 else []):
        keep = np.array([s == label or label == "all" for s in rows["set"]])
        subset = {k: list(np.asarray(v, dtype=object)[keep]) for k, v in rows.items() if k != "images"}
        print(f"\n### {label}\n")
        print(table(subset, names))
    print("\n### which image next\n")
    print(image_order_table(rows))
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_suffix(".tmp")
    tmp.write_text(json.dumps(rows))
    tmp.replace(out)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
