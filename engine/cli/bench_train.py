"""``python -m engine bench-train``: the learning benchmark.

On the nuclei set (fixed split: the first 16 images by name train, the last 4 validate), from scratch,
our seed network (ResNet-18 with BatchNorm, or GroupNorm with ``--backbone-norm gn``; GroupNorm FPN)
and torchvision's Mask R-CNN on ``resnet_fpn_backbone("resnet18", weights=None)`` are trained by the
same loop (engine.training.loop: same data order, augmentation, optimiser, schedule, iterations, input size).
Prints mask AP / AP50 of both on the held-out images, their wall time and the training throughput
ratio ours / torchvision. Both keep up to 500 detections per image and AP counts them all (one
validation image holds 369 nuclei, beyond COCO's default cap of 100).
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path

import torch
from torch import nn

from engine import fastpaths
from engine.config import AugmentConfig, ModelConfig, TrainConfig, torchvision_like
from engine.data import read_dataset
from engine.evaluate import evaluate_model
from engine.model.mask_rcnn import MaskRCNN
from engine.training.loop import train

DEFAULT_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "nuclei_dsb2018" / "stage1_train"


class TorchvisionAdapter(nn.Module):
    """torchvision's MaskRCNN with the ``config`` attribute our training loop reads."""

    def __init__(self, num_classes: int, min_size: tuple[int, ...], max_size: int, roi_samples: int = 512) -> None:
        super().__init__()
        from torchvision.models.detection import MaskRCNN as TVMaskRCNN
        from torchvision.models.detection.backbone_utils import resnet_fpn_backbone

        backbone = resnet_fpn_backbone(backbone_name="resnet18", weights=None)
        self.tv = TVMaskRCNN(
            backbone,
            num_classes=num_classes,
            min_size=min_size,
            max_size=max_size,
            box_detections_per_img=500,
            box_batch_size_per_image=roi_samples,
        )
        self.config = torchvision_like(num_classes, "resnet18").replace(
            min_size=min_size, max_size=max_size, detections_per_image=500, box_batch_per_image=roi_samples
        )

    def forward(self, images, targets=None):  # noqa: ANN001, ANN201
        if targets is not None:  # torchvision wants only its own keys
            targets = [{k: t[k] for k in ("boxes", "labels", "masks")} for t in targets]
        return self.tv(images, targets)


def fixed_split(dataset) -> tuple[list[int], list[int]]:  # noqa: ANN001
    """Sorted by file name: the first 16 images train, the last 4 validate."""
    ordered = sorted(dataset.images, key=lambda im: str(im.path))
    if len(ordered) != 20:
        raise ValueError(f"expected the 20-image nuclei set, found {len(ordered)} images")
    ids = [im.id for im in ordered]
    return ids[:16], ids[16:]


def run_one(name: str, model: nn.Module, dataset, cfg: TrainConfig, split, out: Path, device: str) -> dict:  # noqa: ANN001
    train_ids, val_ids = split
    start = time.perf_counter()
    rates = []
    for event in train(model, dataset, cfg, out / name, train_ids, None, device):
        if event.kind == "step":
            rates.append(event.images_per_s)
            if event.iteration % max(1, cfg.iterations // 10) == 0:
                print(
                    f"  {name}: iteration {event.iteration}/{cfg.iterations}, loss {event.losses['loss']:.3f}, "
                    f"{event.images_per_s:.2f} img/s",
                    flush=True,
                )
    wall = time.perf_counter() - start
    model.eval()
    result = evaluate_model(model, dataset, val_ids, ["nucleus"], device)
    return {
        "name": name,
        "wall_s": wall,
        "images_per_s": statistics.median(rates[len(rates) // 5 :]),  # steady state: the first fifth left out
        **{f"mask_{k}": v for k, v in result["segm"].items()},
    }


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m engine bench-train", description=__doc__)
    p.add_argument("--data", default=str(DEFAULT_DATA))
    p.add_argument("--iters", type=int, default=1000)
    p.add_argument("--batch-size", type=int, default=2)
    p.add_argument("--input-size", type=int, default=512)
    p.add_argument("--max-size", type=int, default=1024)
    p.add_argument("--lr", type=float, default=0.02)
    p.add_argument("--device", default="cpu")
    p.add_argument("--out", default="runs/bench-train")
    p.add_argument("--only", choices=("ours", "torchvision"), default=None)
    p.add_argument("--threads", type=int, default=None, help="CPU threads for torch")
    p.add_argument("--roi-samples", type=int, default=512, help="RoIs sampled per image for the heads")
    p.add_argument(
        "--backbone-norm",
        choices=("bn", "gn"),
        default="bn",
        help="our ResNet's normalisation: bn (the seed's) or gn (GroupNorm, as the bundled model)",
    )
    args = p.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    if not Path(args.data).is_dir():
        print(f"error: {args.data} not found: pass --data <nuclei_dsb2018/stage1_train>")
        return 2
    dataset = read_dataset(args.data)
    split = fixed_split(dataset)
    cfg = TrainConfig(
        iterations=args.iters,
        batch_size=args.batch_size,
        lr=args.lr,
        warmup_iters=min(100, args.iters // 2),
        augment=AugmentConfig(vflip=0.5),
        amp=True,
        seed=0,
    )
    sizes, out = (args.input_size,), Path(args.out)
    print(
        f"nuclei: 16 train / 4 val images, {args.iters} iterations of {args.batch_size}, input {args.input_size}px, "
        f"SGD lr {args.lr} cosine, flips; "
        + ("" if args.only == "torchvision" else f"ours with {args.backbone_norm.upper()} in the ResNet; ")
        + f"device {args.device}, "
        f"{torch.get_num_threads()} threads"
    )
    if args.device == "cpu":  # the Train panel's images/s depend on these (engine.fastpaths; issue 17)
        print(
            f"CPU {fastpaths.cpu_model()}, capability {torch.backends.cpu.get_cpu_capability()}; "
            f"fast paths, {fastpaths.describe('training')}",
            flush=True,
        )
    results = []
    if args.only in (None, "ours"):
        torch.manual_seed(0)
        ours = MaskRCNN(
            ModelConfig(
                num_classes=2,
                min_size=sizes,
                max_size=args.max_size,
                detections_per_image=500,
                box_batch_per_image=args.roi_samples,
                backbone_norm=args.backbone_norm,
            )
        )
        results.append(run_one("ours", ours, dataset, cfg, split, out, args.device))
    if args.only in (None, "torchvision"):
        torch.manual_seed(0)
        tv = TorchvisionAdapter(2, sizes, args.max_size, args.roi_samples)
        results.append(run_one("torchvision", tv, dataset, cfg, split, out, args.device))
    print(f"\n{'model':12s} {'mask AP':>8s} {'AP50':>6s} {'AP75':>6s} {'wall s':>8s} {'img/s':>6s}")
    for r in results:
        print(
            f"{r['name']:12s} {r['mask_AP']:8.3f} {r['mask_AP50']:6.3f} {r['mask_AP75']:6.3f} {r['wall_s']:8.0f} "
            f"{r['images_per_s']:6.2f}"
        )
    if len(results) == 2:
        print(f"throughput ours/torchvision: {results[0]['images_per_s'] / results[1]['images_per_s']:.2f}")
    out.mkdir(parents=True, exist_ok=True)
    (out / "results.json").write_text(json.dumps(results, indent=2))
    return 0
