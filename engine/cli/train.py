"""``python -m engine train``: train or fine-tune a model; tqdm progress; works under torchrun."""

from __future__ import annotations

import argparse
import os
import sys

import torch

from engine.cli.common import UserError, choose_device, existing_path, make_parser, run
from engine.config import AUGMENT_FIELDS, AUGMENT_PRESETS, ModelConfig, TrainConfig


def build_parser() -> argparse.ArgumentParser:
    p = make_parser("train", "Train or fine-tune a Mask R-CNN.")
    p.add_argument("--data", required=True, help="annotated images: COCO JSON, labelme folder, mask folders, ...")
    val = p.add_mutually_exclusive_group()
    val.add_argument("--val", help="a separate annotated set for validation")
    val.add_argument("--val-split", type=float, default=0.0, help="fraction of --data held out for validation")
    p.add_argument("--out", required=True, help="folder for model.safetensors, model_best.safetensors, state")
    length = p.add_mutually_exclusive_group()
    length.add_argument("--iters", type=int, help="optimizer steps")
    length.add_argument("--epochs", type=float, help="passes over the training images")
    p.add_argument("--weights", help="start from: our .safetensors, torchvision Mask R-CNN or ImageNet ResNet .pth")
    p.add_argument("--device", default="auto", help="auto | cpu | cuda | cuda:N")
    p.add_argument("--batch-size", type=int, default=2, help="global batch (split over torchrun processes)")
    p.add_argument("--lr", type=float, default=None, help="peak learning rate (default 0.01 SGD, 1e-4 AdamW)")
    p.add_argument("--optimizer", choices=("sgd", "adamw"), default="sgd")
    p.add_argument("--schedule", choices=("cosine", "step"), default="cosine")
    p.add_argument("--warmup", type=int, default=100, help="warm-up iterations")
    p.add_argument("--input-size", type=int, default=None, help="short side of the network input (default 800)")
    p.add_argument("--max-size", type=int, default=None, help="cap on the long side (default 1333)")
    p.add_argument("--scale-jitter", type=float, default=0.0, help="train on short sides down to (1-x) * size")
    p.add_argument("--backbone", choices=("resnet18", "resnet34", "resnet50"), default=None)
    p.add_argument(
        "--backbone-norm",
        choices=("bn", "gn"),
        default=None,
        help="normalisation in the ResNet when training from scratch: bn (the seed's BatchNorm, default) or gn "
        "(GroupNorm: steadier with batches of 1-4 images)",
    )
    p.add_argument("--detections", type=int, default=None, help="detections kept per image (default 100)")
    p.add_argument("--roi-samples", type=int, default=None, help="RoIs sampled per image for the heads (default 512)")
    p.add_argument(
        "--anchor-sizes",
        type=int,
        nargs="+",
        default=None,
        help="anchor size per FPN level, e.g. 16 32 64 128 for small objects (default 32 64 128 256)",
    )
    p.add_argument(
        "--augment",
        choices=sorted(AUGMENT_PRESETS),
        default="flips",
        help="augmentation preset: flips (left-right only) or microscopy (flips both ways, random gamma, contrast, "
        "brightness, inversion, grayscale and blur); the flags below override single values",
    )
    p.add_argument("--vflip", type=float, default=None, help="vertical flip probability (e.g. 0.5 for microscopy)")
    p.add_argument(
        "--gamma-jitter", type=float, default=None, help="random gamma exp(U(-x, x)) per image, e.g. 0.7: gammas 0.5-2"
    )
    p.add_argument("--contrast-jitter", type=float, default=None, help="random contrast 1 +- x per image, e.g. 0.3")
    p.add_argument("--brightness-jitter", type=float, default=None, help="random brightness offset +- x, e.g. 0.1")
    p.add_argument(
        "--invert",
        type=float,
        default=None,
        help="probability of inverting an image (bright on dark <-> dark on bright)",
    )
    p.add_argument("--grayscale", type=float, default=None, help="probability of dropping an image's colours")
    p.add_argument("--blur", type=float, default=None, help="probability of a Gaussian blur (sigma 0.5-1.5 px)")
    p.add_argument("--no-amp", action="store_true", help="no float16 autocast on CUDA")
    p.add_argument("--val-every", type=int, default=0)
    p.add_argument("--checkpoint-every", type=int, default=0)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--resume", action="store_true", help="continue the run in --out exactly where it stopped")
    p.add_argument("--threads", type=int, default=None, help="CPU threads for torch")
    p.add_argument(
        "--subset",
        choices=("annotated", "reviewed"),
        default="annotated",
        help="train on images with annotations (default) or only on images marked reviewed",
    )
    p.add_argument(
        "--events-jsonl",
        action="store_true",
        help="print one JSON object per event on stdout instead of a progress bar (for programs)",
    )
    p.add_argument("--cancel-file", default=None, help="stop cleanly (keeping a checkpoint) once this file exists")
    p.add_argument(
        "--half-copy",
        action="store_true",
        help="also write model.fp16.safetensors (float16 weights, half the size; loading restores float32)",
    )
    return p


def input_sizes(size: int, jitter: float) -> tuple[int, ...]:
    """Short sides for multi-scale training, the largest last (it is also the test size)."""
    if jitter <= 0:
        return (size,)
    low = int(size * (1 - jitter)) // 32 * 32
    return tuple(range(max(low, 32), size, 32)) + (size,)


def augmentation(args) -> dict[str, float]:  # noqa: ANN001
    """TrainConfig's augmentation fields: the --augment preset, with any flag given on its own taking over."""
    values = dict(AUGMENT_PRESETS[args.augment])
    for name in AUGMENT_FIELDS:
        if getattr(args, name) is not None:
            values[name] = getattr(args, name)
    return values


def build_model(args, class_names: list[str]):  # noqa: ANN001
    """The model to train: from --weights (class layers re-initialised if the classes differ) or new."""
    from engine.checkpoint import load_weights
    from engine.interop import with_new_class_layers
    from engine.model.mask_rcnn import MaskRCNN

    k = len(class_names) + 1
    if args.weights:
        model, info = load_weights(args.weights, num_classes=None)
        if model.config.num_classes != k or (info.class_names and info.class_names != class_names):
            if model.config.num_classes != k:
                print(
                    f"note: {args.weights} has {model.config.num_classes - 1} classes, the data {k - 1}: "
                    "the class layers start fresh",
                    file=sys.stderr,
                )
            model = with_new_class_layers(model, k) if model.config.num_classes != k else model
        cfg = model.config
    else:
        cfg = ModelConfig(num_classes=k, backbone=args.backbone or "resnet18")
    changes = {}
    size = args.input_size or max(cfg.min_size)
    if args.input_size or args.scale_jitter:
        changes["min_size"] = input_sizes(size, args.scale_jitter)
    if args.max_size:
        changes["max_size"] = args.max_size
    if args.detections:
        changes["detections_per_image"] = args.detections
    if args.roi_samples:
        changes["box_batch_per_image"] = args.roi_samples
    if args.backbone_norm:
        if args.weights:
            raise UserError(
                "--backbone-norm changes the backbone: use it when training from scratch, not with --weights"
            )
        changes["backbone_norm"] = args.backbone_norm
    if args.anchor_sizes:
        if args.weights:
            raise UserError("--anchor-sizes changes the RPN: use it when training from scratch, not with --weights")
        changes["anchor_sizes"] = tuple(args.anchor_sizes)
    if not changes:
        return model if args.weights else MaskRCNN(cfg)
    new = MaskRCNN(cfg.replace(**changes))
    if args.weights:
        new.load_state_dict(model.state_dict())
    return new


def main(argv: list[str] | None = None) -> int:
    return run(_main, argv)


def _main(argv: list[str]) -> int:
    from engine.training.loop import TrainingError

    args = build_parser().parse_args(argv)
    try:
        return run_training(args)
    except TrainingError as error:
        raise UserError(str(error)) from error


def run_training(args) -> int:  # noqa: ANN001
    from tqdm import tqdm

    from engine.data import read_dataset
    from engine.training.loop import train

    if args.threads:
        torch.set_num_threads(args.threads)
    device = str(choose_device(args.device))
    data_path = existing_path(args.data, "--data")
    dataset = read_dataset(data_path)
    if args.subset == "reviewed":
        annotated = [im.id for im in dataset.images if im.state == "reviewed"]
    else:
        annotated = [im.id for im in dataset.images if any(not i.iscrowd for i in im.instances)]
    if not annotated:
        raise UserError(f"--data {data_path}: no {args.subset} images to train on")
    val_dataset, val_ids = None, []
    if args.val:
        val_dataset = read_dataset(existing_path(args.val, "--val"))
        val_ids = [im.id for im in val_dataset.images if im.instances]
        train_ids = annotated
    elif args.val_split > 0:
        train_ids, val_ids = _split(annotated, args.val_split, args.seed)
    else:
        train_ids = annotated
    class_names = [c.name for c in sorted(dataset.categories, key=lambda c: c.id)]
    torch.manual_seed(args.seed)  # the same seed gives the same initial weights
    model = build_model(args, class_names)
    iters = args.iters or max(1, round((args.epochs or 12) * len(train_ids) / args.batch_size))
    lr = args.lr or (0.01 if args.optimizer == "sgd" else 1e-4)
    cfg = _train_config(
        iterations=iters,
        batch_size=args.batch_size,
        optimizer=args.optimizer,
        lr=lr,
        schedule=args.schedule,
        warmup_iters=min(args.warmup, iters // 2),
        amp=not args.no_amp,
        **augmentation(args),
        seed=args.seed,
        val_every=args.val_every,
        checkpoint_every=args.checkpoint_every,
    )
    main_process = int(os.environ.get("RANK", "0")) == 0
    cancel = (lambda: os.path.exists(args.cancel_file)) if args.cancel_file else None
    events = train(
        model,
        dataset,
        cfg,
        args.out,
        train_ids,
        val_ids,
        device,
        cancel=cancel,
        resume=args.resume,
        val_dataset=val_dataset,
    )
    if args.events_jsonl:
        status = _print_events(events, main_process, len(train_ids), len(val_ids), class_names)
        _write_half_copy(args, main_process)
        return status
    if main_process:
        print(
            f"training on {len(train_ids)} images ({', '.join(class_names[:6])}), validating on {len(val_ids)}; "
            f"{iters} iterations of {args.batch_size} on {device}; input {model.config.min_size[-1]}px"
        )
    bar = tqdm(total=iters, disable=not main_process, unit="it", dynamic_ncols=True)
    for event in events:
        if event.kind == "step":
            bar.n = event.iteration
            bar.set_postfix(loss=f"{event.losses['loss']:.3f}", lr=f"{event.lr:.2g}", img_s=f"{event.images_per_s:.1f}")
        elif event.kind == "validation" and event.metrics:
            m = event.metrics
            bar.write(
                f"iteration {event.iteration}: mask AP {m['mask_AP']:.3f}, AP50 {m['mask_AP50']:.3f}; "
                f"box AP {m['box_AP']:.3f}"
            )
        elif event.kind in ("warning", "cancelled"):
            bar.write(event.message)
        elif event.kind == "done" and main_process:
            bar.close()
            print(f"saved {event.path}")
    path = _write_half_copy(args, main_process)
    if path:
        print(f"saved {path}")
    return 0


def _train_config(**settings) -> TrainConfig:  # noqa: ANN003
    """TrainConfig, or a UserError naming the setting that is out of range."""
    try:
        return TrainConfig(**settings)
    except ValueError as error:
        raise UserError(f"{error}; see python -m engine train --help") from error


def _write_half_copy(args, main_process: bool) -> str:  # noqa: ANN001
    """With --half-copy: the final model again in float16 (for shipping; the float32 file stays for --resume)."""
    from pathlib import Path

    from engine.checkpoint import load_checkpoint, save_checkpoint
    from engine.training.loop import LAST

    last = Path(args.out) / LAST
    if not (args.half_copy and main_process and last.is_file()):
        return ""
    model, info = load_checkpoint(last)
    target = last.with_name("model.fp16.safetensors")
    save_checkpoint(model, target, info.class_names, info.history, info.extra, half=True)
    return str(target)


def _split(ids: list[int], fraction: float, seed: int) -> tuple[list[int], list[int]]:
    """The trainable images ``ids`` split into train / val (unannotated images never count); one image trains."""
    from engine.data.annotations import split_ids

    return (sorted(ids), []) if len(ids) < 2 else split_ids(ids, fraction, seed)


def _print_events(events, main_process: bool, n_train: int, n_val: int, class_names: list[str]) -> int:  # noqa: ANN001
    """One JSON object per line on stdout: {"kind": "start", ...}, then each TrainEvent as a dict."""
    import dataclasses
    import json

    def emit(obj: dict) -> None:
        if main_process:
            print(json.dumps(obj), flush=True)

    emit({"kind": "start", "train_images": n_train, "val_images": n_val, "class_names": class_names})
    for event in events:
        emit(dataclasses.asdict(event))
    return 0
