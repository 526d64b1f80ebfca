"""``python -m engine predict``: run a model over images; COCO results JSON and optional overlay PNGs.

The results file is a plain COCO *results* list (what ``COCO.loadRes`` reads). Its image and category
ids are the dataset's when ``--images`` holds a COCO dataset whose categories match the model's class
names; otherwise images are numbered 1..N in sorted path order and category id = model label. Either
way ``<out stem>.meta.json`` lists the images (id, file_name, width, height) and categories (id, name)
in COCO form with an empty "annotations" list, so ``COCO(meta).loadRes(results)`` works.

Under ``torchrun --nproc_per_node=N -m engine predict ...`` the images are dealt round-robin over the N processes
(each with the whole model, on its own GPU when there are several), rank 0 gathers what each found and writes the
one results file (and its meta file) atomically, in the same order and with the same ids as a single process.
"""

from __future__ import annotations

import json
import os
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFont
from tqdm import tqdm

from engine.cli.common import (
    UserError,
    add_device_argument,
    choose_device,
    existing_path,
    load_model,
    make_parser,
    number,
    output_file,
    run,
    warn,
)
from engine.data import read_dataset
from engine.data.annotations import default_category_color
from engine.data.errors import DatasetError, ImageLoadError
from engine.data.io.atomic import atomic_write_text
from engine.data.io.images import is_image_file, load_image
from engine.data.io.mask_readers import image_files
from engine.evaluate import ClassMismatchError, label_to_category_map, prediction_to_coco


@dataclass
class ImageItem:
    """One image to predict on: its id in the results, path and the name written to the meta file."""

    id: int
    path: Path
    file_name: str


@dataclass
class Categories:
    """Model label -> (category id, name, RGB colour) for the results and overlays."""

    by_label: dict[int, tuple[int, str, tuple[int, int, int]]]

    def meta(self) -> list[dict]:
        seen: dict[int, str] = {}
        for category_id, name, _ in self.by_label.values():
            seen.setdefault(category_id, name)
        return [{"id": cid, "name": name} for cid, name in sorted(seen.items())]


def build_parser():  # noqa: ANN201
    parser = make_parser("predict", "Run a model over images: COCO results JSON and optional overlay PNGs.")
    parser.add_argument("--weights", required=True, help="model file (.safetensors checkpoint or torchvision .pth)")
    parser.add_argument(
        "--images", required=True, help="an image file, a folder of images, or a dataset (COCO/labelme JSON or folder)"
    )
    parser.add_argument("--out", required=True, help="COCO results JSON to write (the meta file goes beside it)")
    parser.add_argument("--overlays", help="folder for overlay PNGs (masks, outlines, boxes and labels drawn)")
    parser.add_argument(
        "--score-threshold",
        type=number(float, 0, 1),
        default=0.5,
        help="keep detections scoring at least this, 0 to 1 (default: 0.5)",
    )
    parser.add_argument(
        "--mask-threshold",
        type=number(float, 0, 1),
        default=0.5,
        help="mask probability cut-off, 0 to 1 (default: 0.5)",
    )
    add_device_argument(parser)
    return parser


def meta_path(out: Path) -> Path:
    """``preds.json`` -> ``preds.meta.json``."""
    return out.with_name(f"{out.stem}.meta.json")


def _relative(path: Path, root: Path) -> str:
    try:
        return Path(os.path.relpath(path, root)).as_posix()
    except ValueError:
        return path.as_posix()


def _numbered(paths: list[Path], root: Path) -> list[ImageItem]:
    return [ImageItem(i, p, _relative(p, root)) for i, p in enumerate(sorted(paths), start=1)]


def collect_images(source: Path, class_names: list[str], num_classes: int) -> tuple[list[ImageItem], Categories]:
    """The images under ``source`` and the label -> category table (see the module doc); warns per problem."""
    generic = Categories({k: (k, n, default_category_color(k)) for k, n in enumerate(class_names, start=1)})
    if source.is_file() and is_image_file(source):
        return [ImageItem(1, source, source.name)], generic
    if source.is_file() and source.suffix.lower() != ".json":
        raise UserError(f"--images {source}: not an image file or a .json annotation file")
    try:
        dataset = read_dataset(source)
    except DatasetError as error:
        paths = [] if source.is_file() else image_files(source)
        if not paths:
            raise
        warn(f"{error}; predicting on the image files in the folder only")
        return _numbered(paths, source), generic
    for line in dataset.warnings:
        warn(line)
    root = source if source.is_dir() else source.parent
    if dataset.source_format != "coco":
        return _numbered([dataset.image_path(im) for im in dataset.images], root), generic
    items = [ImageItem(im.id, dataset.image_path(im), _relative(dataset.image_path(im), root)) for im in dataset.images]
    try:
        mapping = label_to_category_map(dataset, class_names, num_classes)
    except ClassMismatchError as error:
        warn(f"{error}; the results use the model's labels as category ids instead (see the meta file)")
        return items, generic
    table = {}
    for label, category_id in mapping.items():
        category = dataset.category_by_id(category_id)
        table[label] = (category_id, category.name, category.color)
    return items, Categories(table)


def prediction_results(pred, image_id: int, categories: Categories) -> list[dict]:  # noqa: ANN001 - Prediction
    """engine.inference.Prediction -> COCO results (xywh boxes, RLE masks with str counts, made from the crops)."""
    return prediction_to_coco(pred, image_id, {label: cid for label, (cid, _, _) in categories.by_label.items()})


MASK_ALPHA = 0.45


def _outline(mask: np.ndarray) -> np.ndarray:
    """(h,w) bool -> the mask's pixels that touch the background (4-neighbourhood) or the crop's edge."""
    padded = np.pad(mask, 1)
    inner = padded[:-2, 1:-1] & padded[2:, 1:-1] & padded[1:-1, :-2] & padded[1:-1, 2:]
    return mask & ~inner


def draw_overlay(
    pixels: np.ndarray,
    pred,  # noqa: ANN001 - engine.inference.Prediction
    names: dict[int, str],
    colors: dict[int, tuple[int, int, int]],
) -> Image.Image:
    """(H,W,3) uint8 image + detections -> RGB image with translucent masks, outlines, boxes, "class score".

    Drawn crop by crop on a uint8 copy (a float copy of a 10k x 10k image would take 1.2 GB)."""
    canvas = np.array(pixels[..., :3], dtype=np.uint8, copy=True)
    order = np.argsort(pred.scores, kind="stable")  # best last: drawn on top
    for i in order:
        crop = pred.masks[i]
        if crop.mask.size == 0:
            continue
        color = np.array(colors.get(int(pred.labels[i]), default_category_color(int(pred.labels[i]))), np.float32)
        h, w = crop.mask.shape
        region = canvas[crop.y0 : crop.y0 + h, crop.x0 : crop.x0 + w]
        blended = (1 - MASK_ALPHA) * region[crop.mask].astype(np.float32) + MASK_ALPHA * color
        region[crop.mask] = np.clip(blended + 0.5, 0, 255).astype(np.uint8)
        region[_outline(crop.mask)] = color.astype(np.uint8)
    image = Image.fromarray(canvas)
    draw = ImageDraw.Draw(image)
    font = ImageFont.load_default()
    for i in order:
        label = int(pred.labels[i])
        color = tuple(colors.get(label, default_category_color(label)))
        x1, y1, x2, y2 = (float(v) for v in pred.boxes[i])
        draw.rectangle([x1, y1, x2, y2], outline=color, width=2)
        text = f"{names.get(label, f'class {label}')} {float(pred.scores[i]):.2f}"
        left, top, right, bottom = draw.textbbox((0, 0), text, font=font)
        tx, ty = x1, max(0.0, y1 - (bottom - top) - 4)
        draw.rectangle([tx, ty, tx + right - left + 4, ty + bottom - top + 4], fill=color)
        ink = (0, 0, 0) if sum(color) > 380 else (255, 255, 255)
        draw.text((tx + 2 - left, ty + 2 - top), text, fill=ink, font=font)
    return image


def _overlay_name(item: ImageItem, used: set[str]) -> str:
    name = f"{Path(item.file_name).stem}.png"
    if name in used:
        name = f"{Path(item.file_name).stem}_{item.id}.png"
    used.add(name)
    return name


class TileBar:
    """``progress(done, total)`` of Predictor.predict as a tqdm bar over the tiles, shown for tiled images only."""

    def __init__(self, enabled: bool = True) -> None:
        self.bar: tqdm | None = None
        self.enabled = enabled  # under torchrun only rank 0 draws bars

    def __call__(self, done: int, total: int) -> None:
        if self.bar is None and total > 1 and self.enabled:
            self.bar = tqdm(total=total, desc="tiles", unit="tile", file=sys.stderr, leave=False, dynamic_ncols=True)
        if self.bar is not None:
            self.bar.update(done - self.bar.n)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


@dataclass
class ImageResult:
    """What one image gave: its COCO results and meta entry, or why it was skipped."""

    index: int  # position in the image list: the gathered results are written in this order
    results: list[dict]
    meta: dict | None = None
    skipped: dict | None = None


class Processes:
    """This process's place under torchrun (rank, world size, device), or a single process; ``gather`` collects the
    per-image results of every process on rank 0. The process group is the training loop's
    (engine.training.loop._setup_distributed: gloo on the CPU, NCCL with one GPU per local rank)."""

    def __init__(self, device) -> None:  # noqa: ANN001 - torch.device
        self.world = int(os.environ.get("WORLD_SIZE", "1"))
        self.rank, self.device = 0, device
        if self.world > 1:
            from engine.training.loop import _setup_distributed

            dist = _setup_distributed(device)
            self.rank, self.device = dist.rank, dist.device

    @property
    def main(self) -> bool:
        return self.rank == 0

    def shard(self, items: list) -> list[tuple[int, object]]:
        """(index, item) of this process's share: every world-th image from its rank on (round-robin, so images of
        similar size in a sorted folder spread evenly)."""
        return [(i, item) for i, item in enumerate(items) if i % self.world == self.rank]

    def gather(self, mine: list[ImageResult]) -> list[ImageResult]:
        """Every process's results on rank 0, in image order (others get an empty list)."""
        if self.world == 1:
            return mine
        import torch.distributed as dist

        everything: list | None = [None] * self.world if self.main else None
        dist.gather_object(mine, everything, dst=0)
        if not self.main:
            return []
        return sorted((r for part in everything for r in part), key=lambda r: r.index)

    def close(self) -> None:
        if self.world > 1:
            import torch.distributed as dist

            dist.destroy_process_group()


def predict_command(argv: list[str]) -> int:
    args = build_parser().parse_args(argv)
    device = choose_device(args.device)
    processes = Processes(device)
    try:
        return _predict(args, processes)
    finally:
        processes.close()


def _predict(args, processes: Processes) -> int:  # noqa: ANN001 - argparse.Namespace
    from engine.inference import Predictor
    from engine.structures import PredictSettings

    source = existing_path(args.images, "--images")
    out = output_file(args.out, "--out")
    overlays = Path(args.overlays).expanduser() if args.overlays else None
    if overlays is not None and overlays.is_file():
        raise UserError(f"--overlays {overlays}: is a file; give a folder for the PNGs")
    device = processes.device
    model, info = load_model(args.weights, device)  # also a short name: coco, imagenet (engine/hub.py)
    weights = args.weights if not Path(args.weights).exists() else Path(args.weights).expanduser()  # as given
    items, categories = collect_images(source, info.class_names, model.config.num_classes)
    if not items:
        raise UserError(f"--images {source}: holds no images")
    out.parent.mkdir(parents=True, exist_ok=True)  # fail now, not after the run, when it cannot be made
    if overlays is not None:
        overlays.mkdir(parents=True, exist_ok=True)
    used_names: set[str] = set()
    png_names = [_overlay_name(item, used_names) for item in items]  # decided before sharding: the same names
    predictor = Predictor(model, device, feature_budget=0)  # one tile's features at a time (engine.tiling)
    settings = PredictSettings(score_threshold=args.score_threshold, mask_threshold=args.mask_threshold)
    mine: list[ImageResult] = []
    share = processes.shard(items)
    desc = "predict" if processes.world == 1 else f"predict (process 1 of {processes.world})"
    bar = tqdm(share, desc=desc, unit="image", file=sys.stderr, dynamic_ncols=True, disable=not processes.main)
    for index, item in bar:
        try:
            pixels = load_image(item.path)
        except ImageLoadError as error:
            warn(f"{error}; skipped", lambda line: tqdm.write(line, file=sys.stderr))
            mine.append(ImageResult(index, [], skipped={"file_name": item.file_name, "reason": str(error)}))
            continue
        tile_bar = TileBar(enabled=processes.main)
        try:
            pred = predictor.predict(pixels, settings, progress=tile_bar)
        finally:
            tile_bar.close()
        meta = {"id": item.id, "file_name": item.file_name, "width": pred.width, "height": pred.height}
        mine.append(ImageResult(index, prediction_results(pred, item.id, categories), meta=meta))
        if overlays is not None:
            names = {label: name for label, (_, name, _) in categories.by_label.items()}
            colors = {label: color for label, (_, _, color) in categories.by_label.items()}
            png = draw_overlay(pixels, pred, names, colors)
            png.save(overlays / png_names[index])
    bar.close()
    gathered = processes.gather(mine)
    if not processes.main:
        return 0  # rank 0 writes the one results file
    results = [r for image in gathered for r in image.results]
    images_meta = [image.meta for image in gathered if image.meta is not None]
    skipped = [image.skipped for image in gathered if image.skipped is not None]
    if not images_meta:
        raise UserError(f"none of the {len(items)} image(s) under {source} could be read (see the warnings above)")
    meta = {
        "info": {"description": "images and categories of the results in " + out.name, "weights": str(weights)},
        "images": images_meta,
        "annotations": [],
        "categories": categories.meta(),
        "skipped": skipped,
        "score_threshold": args.score_threshold,
    }
    atomic_write_text(out, json.dumps(results))
    atomic_write_text(meta_path(out), json.dumps(meta, indent=1))
    print(
        f"{len(results)} detections on {len(images_meta)} image(s) -> {out} (ids and names: {meta_path(out).name})"
        + (f"; {len(skipped)} unreadable image(s) skipped" if skipped else "")
        + (f"; overlays in {overlays}" if overlays is not None else "")
        + (f"; {processes.world} processes" if processes.world > 1 else "")
    )
    return 0


def main(argv: list[str] | None = None) -> int:
    """``python -m engine predict ...`` -> exit status."""
    return run(predict_command, argv)
