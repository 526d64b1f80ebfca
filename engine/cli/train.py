"""``python -m engine train``: train or fine-tune a model; tqdm progress; works under torchrun.

The training, augmentation and model flags are made from engine.config's dataclasses (engine.cli.flags):
a new field there is a new flag here. The rest (data, output, run control) is written below.
"""

from __future__ import annotations

import argparse
import os
import sys

import torch

from engine.cli.common import UserError, choose_device, existing_path, imply_pixel_scale, make_parser, number, run
from engine.cli.flags import add_flags, flag_fields, flag_name, given
from engine.config import AUGMENT_PRESET_NOTES, AUGMENT_PRESETS, DEFAULT_EPOCHS, AugmentConfig, ModelConfig, TrainConfig
from engine.training.subsets import TRAIN_SUBSETS


def build_parser() -> argparse.ArgumentParser:
    p = make_parser("train", "Train or fine-tune a Mask R-CNN.")
    p.add_argument("--data", required=True, help="annotated images: COCO JSON, labelme folder, mask folders, ...")
    val = p.add_mutually_exclusive_group()
    val.add_argument("--val", help="a separate annotated set for validation")
    val.add_argument(
        "--val-split",
        type=number(float, 0, 0.9),
        default=0.0,
        help="fraction of --data held out for validation, 0 to 0.9",
    )
    p.add_argument(
        "--out",
        required=True,
        help="folder for the run: model.safetensors (float16 once finished), and while the run can be resumed "
        "(running, cancelled, failed) its training state",
    )
    p.add_argument(
        "--subset",
        choices=TRAIN_SUBSETS,
        default="annotated",
        help="train on images with annotations (default) or only on images marked reviewed",
    )
    p.add_argument("--weights", help="start from: our .safetensors, torchvision Mask R-CNN or ImageNet ResNet .pth")
    p.add_argument("--device", default="auto", help="auto | cpu | cuda | cuda:N")
    p.add_argument("--threads", type=number(int, 1, 4096), default=None, help="CPU threads for torch")
    p.add_argument("--resume", action="store_true", help="continue the run in --out exactly where it stopped")
    p.add_argument(
        "--events-jsonl",
        action="store_true",
        help="print one JSON object per event on stdout instead of a progress bar (for programs; "
        "engine.training.events.TrainEvent reads them back)",
    )
    p.add_argument("--cancel-file", default=None, help="stop cleanly (keeping a checkpoint) once this file exists")
    p.add_argument(
        "--float32",
        action="store_true",
        help="keep the finished model in float32 (default float16: half the size; loading restores float32)",
    )
    p.add_argument(
        "--keep-best",
        action="store_true",
        help="also keep the weights of the best validation as model_best.safetensors (default: the last only)",
    )
    p.add_argument(
        "--half-copy",
        action="store_true",
        help="keep the finished model in float32 and also write model.fp16.safetensors (float16 weights)",
    )
    training = p.add_argument_group("training (engine.config.TrainConfig)")
    length = training.add_mutually_exclusive_group()
    length.add_argument(
        "--epochs",
        type=number(float, 0, None, above=True),
        help=f"passes over the training images (default {DEFAULT_EPOCHS:g} without --iters)",
    )
    add_flags(training, TrainConfig, into={"iterations": length})
    augment = p.add_argument_group("augmentation (engine.config.AugmentConfig): a preset, single values over it")
    augment.add_argument(
        "--augment",
        choices=sorted(AUGMENT_PRESETS),
        default="flips",
        help="; ".join(f"{name}: {note}" for name, note in AUGMENT_PRESET_NOTES.items()) + " (default flips)",
    )
    add_flags(augment, AugmentConfig)
    model = p.add_argument_group("model (engine.config.ModelConfig)")
    model.add_argument(
        "--input-size",
        type=number(int, 32, 32768),
        default=None,
        help="short side of the network input, 32 to 32768 (default: the model's, 800)",
    )
    add_flags(model, ModelConfig)
    return p


def augmentation(args: argparse.Namespace) -> AugmentConfig:
    """The --augment preset, with any augmentation flag given on its own taking over; a UserError when out of range."""
    return _config(lambda: AUGMENT_PRESETS[args.augment].replace(**given(args, AugmentConfig)))


def train_config(args: argparse.Namespace, num_images: int) -> TrainConfig:
    """The TrainConfig the flags ask for: without --iters, --epochs (default DEFAULT_EPOCHS) passes over
    ``num_images``; lr 1e-4 for adamw unless --lr; the warm-up at most half the run."""
    values = given(args, TrainConfig)
    cfg = _config(lambda: TrainConfig(**values, augment=augmentation(args)))
    if "iterations" not in values:
        epochs = DEFAULT_EPOCHS if args.epochs is None else args.epochs
        cfg = cfg.replace(iterations=max(1, round(epochs * num_images / cfg.batch_size)))
    if "lr" not in values and cfg.optimizer == "adamw":
        cfg = cfg.replace(lr=1e-4)
    return cfg.replace(warmup_iters=min(cfg.warmup_iters, cfg.iterations // 2))


def _config(make):  # noqa: ANN001, ANN202
    """``make()`` (a config), its ValueError as a UserError naming the setting that is out of range."""
    try:
        return make()
    except ValueError as error:
        message = str(error)
        for f in (f for cls in (TrainConfig, AugmentConfig, ModelConfig) for f in flag_fields(cls)):
            if message.startswith(f"{f.name} ") or f" {f.name} " in message.split(":")[0]:
                message = message.replace(f.name, f"{flag_name(f)} ({f.name})", 1)
                break
        raise UserError(f"{message}; see python -m engine train --help") from error


def build_model(args, class_names: list[str], notes: list[str] | None = None):  # noqa: ANN001
    """The model to train: from --weights (class layers re-initialised if the classes differ, said in ``notes``
    and on stderr) or new."""
    from engine.checkpoint import load_weights
    from engine.interop import with_new_class_layers
    from engine.model.mask_rcnn import MaskRCNN

    k = len(class_names) + 1
    changes = imply_pixel_scale(given(args, ModelConfig))
    if args.input_size is not None:
        changes["min_size"] = (args.input_size,)
    if not args.weights:
        return MaskRCNN(_config(lambda: ModelConfig(num_classes=k, **changes)))
    for f in flag_fields(ModelConfig):
        if f.name in changes and "changes" in f.metadata:
            raise UserError(
                f"{flag_name(f)} changes {f.metadata['changes']}: use it when training from scratch, not with --weights"
            )
    model, info = load_weights(args.weights, num_classes=None)
    unnamed = all(name == f"class {i}" for i, name in enumerate(info.class_names, start=1))  # a file without names
    if model.config.num_classes == k and sorted(info.class_names) == sorted(class_names) and not unnamed:
        model = with_classes_in_order(model, list(info.class_names), class_names)  # the same classes, reordered
    elif model.config.num_classes != k or (list(info.class_names) != list(class_names) and not unnamed):
        # the same count of other classes would train person's layers as nucleus: renewed as well
        note = class_layers_note(list(info.class_names), class_names)
        print(f"note: {args.weights}: {note}", file=sys.stderr)
        if notes is not None:
            notes.append(note)
        model = with_new_class_layers(model, k)
    if model.config.frozen_stages and "frozen_stages" not in changes:
        # which stages train is this run's choice (--frozen-stages), not something a model hands on: a quick
        # fine-tune's frozen ResNet would otherwise stay frozen in every later run started from it
        changes["frozen_stages"] = 0
    if not changes:
        return model
    new = MaskRCNN(_config(lambda: model.config.replace(**changes)))
    new.load_state_dict(model.state_dict())
    return new


def with_classes_in_order(model, model_classes: list[str], data_classes: list[str]):  # noqa: ANN001, ANN201
    """``model`` with its class layers' rows reordered from ``model_classes`` to ``data_classes`` (the same names in
    another order: a project whose classes were added in another order keeps what the model learnt of each)."""
    from engine.interop import _is_class_specific

    if model_classes == data_classes:
        return model
    order = [0] + [model_classes.index(name) + 1 for name in data_classes]  # background stays first
    state = model.state_dict()
    k = len(order)
    for key, value in state.items():
        if _is_class_specific(key):
            rows = value.reshape(k, value.shape[0] // k, *value.shape[1:])  # (K+1, rows per class, ...)
            state[key] = rows[order].reshape(value.shape)
    model.load_state_dict(state)
    return model


def class_layers_note(model_classes: list[str], data_classes: list[str]) -> str:
    """What a run from a model of other classes says (the app shows it too): the class layers start fresh."""

    def named(names: list[str]) -> str:
        shown = ", ".join(names[:6]) + (", …" if len(names) > 6 else "")
        return f"{len(names)} class{'es' if len(names) != 1 else ''} ({shown})"

    return (
        f"the model has {named(model_classes)}, the data {named(data_classes)}: the class layers (box classifier, "
        "box regression and mask outputs) are renewed and learnt from scratch; the rest of the network is kept"
    )


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
    from engine.training.subsets import training_ids

    if args.threads is not None:
        torch.set_num_threads(args.threads)
    device = str(choose_device(args.device))
    out = _output_folder(args)
    data_path = existing_path(args.data, "--data")
    dataset = read_dataset(data_path)
    trainable = training_ids(dataset.images, args.subset)
    if not trainable:
        raise UserError(f"--data {data_path}: no {args.subset} images to train on")
    cfg = train_config(args, len(trainable))  # a value out of range is reported before anything is built
    val_dataset, val_ids = None, []
    if args.val:
        val_dataset = read_dataset(existing_path(args.val, "--val"))
        val_ids = [im.id for im in val_dataset.images if im.instances]
        train_ids = trainable
    elif args.val_split > 0:
        train_ids, val_ids = _split(trainable, args.val_split, cfg.seed)
    else:
        train_ids = trainable
    _check_image_sizes(dataset, train_ids)
    _check_image_sizes(val_dataset or dataset, val_ids)
    class_names = [c.name for c in sorted(dataset.categories, key=lambda c: c.id)]
    cfg = train_config(args, len(train_ids))  # --epochs count the images that train
    torch.manual_seed(cfg.seed)  # the same seed gives the same initial weights
    notes: list[str] = []
    main_process = int(os.environ.get("RANK", "0")) == 0
    if args.events_jsonl and main_process:
        _download_with_events(args.weights)
    model = build_model(args, class_names, notes)
    out.mkdir(parents=True, exist_ok=True)  # an OSError (one line) now, not after the run
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
        half=not (args.float32 or args.half_copy),
        keep_best=args.keep_best,
    )
    if args.events_jsonl:
        status = _print_events(events, main_process, len(train_ids), len(val_ids), class_names, notes)
        _check_model_written(out, main_process)
        _write_half_copy(args, main_process)
        return status
    if main_process:
        print(
            f"training on {len(train_ids)} images ({', '.join(class_names[:6])}), validating on {len(val_ids)}; "
            f"{cfg.iterations} iterations of {cfg.batch_size} on {device}; input {model.config.min_size[-1]}px"
        )
    bar = tqdm(total=cfg.iterations, disable=not main_process, unit="it", dynamic_ncols=True)
    try:
        for event in events:
            if event.kind == "step":
                bar.n = event.iteration
                losses = event.losses
                bar.set_postfix(loss=f"{losses['loss']:.3f}", lr=f"{event.lr:.2g}", img_s=f"{event.images_per_s:.1f}")
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
    finally:
        bar.close()  # an error then starts a line of its own
    _check_model_written(out, main_process)
    path = _write_half_copy(args, main_process)
    if path:
        print(f"saved {path}")
    return 0


MODEL_FILES = ("model.safetensors", "model_best.safetensors", "model.fp16.safetensors")  # what a run writes


def _output_folder(args):  # noqa: ANN001, ANN202 - Path
    """--out as a folder (made later): a file there, or --weights naming a model this run would write over (without
    --resume), is a UserError before anything is read or trained."""
    from pathlib import Path

    out = Path(args.out).expanduser()
    if out.exists() and not out.is_dir():
        raise UserError(f"--out {out}: is a file; give a folder for the model and its training state")
    if args.weights and not args.resume:
        weights = Path(args.weights).expanduser()
        if weights.is_file() and any(weights.resolve() == (out / name).resolve() for name in MODEL_FILES):
            raise UserError(
                f"--weights {weights} is in --out {out}, where this run writes its model: the starting weights "
                "would be overwritten; give another --out (or --resume to continue that run)"
            )
    return out


def _check_model_written(out, main_process: bool) -> None:  # noqa: ANN001
    """A run that ends without a model never ends with status 0 (the trainer saves one or raises TrainingError;
    this is the last guard)."""
    from engine.training.loop import LAST

    if main_process and not (out / LAST).is_file():
        raise UserError(f"the run ended without writing {out / LAST}; see the messages above")


def _write_half_copy(args, main_process: bool) -> str:  # noqa: ANN001
    """With --half-copy: the finished model (kept in float32 then) again in float16, as model.fp16.safetensors."""
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


def _check_image_sizes(dataset, ids: list[int]) -> None:  # noqa: ANN001 - engine.data.Dataset
    """The data layer's ImageLoadError now, before the model is built, for an image of ``ids`` that is missing or of
    another size than the annotations say (headers only): not mid-run, nor at the validation after the last step."""
    from engine.data.io.images import image_size, wrong_size_error

    wanted = set(ids)
    for record in (image for image in dataset.images if image.id in wanted):
        path = dataset.image_path(record)
        size = image_size(path)
        if size != (record.width, record.height):
            raise wrong_size_error(path, size, (record.width, record.height))


def _split(ids: list[int], fraction: float, seed: int) -> tuple[list[int], list[int]]:
    """The trainable images ``ids`` split into train / val (unannotated images never count); one image trains."""
    from engine.data.annotations import split_ids

    return (sorted(ids), []) if len(ids) < 2 else split_ids(ids, fraction, seed)


def _download_with_events(weights: str | None) -> None:
    """--weights coco / imagenet not yet in the hub cache, with --events-jsonl: downloaded here, before the model is
    built, with "download" events as it goes, so the app shows "Downloading ...: 45 / 170 MB" rather than a silent
    "Starting…" for minutes. Without a network the error is the one build_model would give (HubWeightsMissing)."""
    from engine import hub
    from engine.training.events import TrainEvent

    if not weights or not hub.is_alias(weights) or hub.cached(weights) is not None:
        return
    info = hub.pretrained(weights)
    target = str(hub.hub_checkpoints() / info.file_name)

    def said(done: int, total: int) -> None:
        event = TrainEvent("download", message=info.title, path=target, bytes_done=done, bytes_total=total)
        print(event.to_json(), flush=True)

    hub.resolve(weights, progress=said)


def _print_events(events, main_process: bool, n_train: int, n_val: int, class_names: list[str], notes=()) -> int:  # noqa: ANN001
    """One JSON object per line on stdout: a "start" TrainEvent, a "warning" per note (class layers renewed), then
    each TrainEvent (engine.training.events)."""
    from engine.training.events import TrainEvent

    def emit(event: TrainEvent) -> None:
        if main_process:
            print(event.to_json(), flush=True)

    emit(TrainEvent("start", train_images=n_train, val_images=n_val, class_names=class_names))
    for note in notes:
        emit(TrainEvent("warning", message=note))
    for event in events:
        emit(event)
    return 0
