"""``python -m engine defaults``: show or change the inference defaults stored in a model file.

The weights stay as they are; only the settings a model brings along change: how many proposals the RPN
keeps, how many detections are kept per image, the score threshold and the NMS IoUs. The app's sliders,
``predict`` and ``evaluate`` start from these (the app's sliders until the user moves them).

The scale policy (issue 12) says how images are resized for the model: ``--scale short-side`` (each image to
the model's input short side, torchvision's convention) or ``--scale pixel-scale --scale-factor F`` (every image
by F, so objects keep their pixel size; large images are predicted in tiles of ``--tile-size`` network pixels
overlapping by ``--tile-overlap``, engine.tiling). ``--object-size`` records the typical object size the model
learnt, in network pixels: from it the app's Model panel turns "my objects are d px" into the factor
F = object size / d (Cellpose's diameter).
"""

from __future__ import annotations

import sys

from safetensors import safe_open

from engine.cli.common import UserError, existing_path, imply_pixel_scale, make_parser, output_file, run
from engine.config import SCALE_POLICIES

SETTINGS = {  # flag -> (ModelConfig field, type, what)
    "--proposals": ("rpn_post_nms_top_n_test", int, "proposals the RPN keeps after its NMS"),
    "--candidates": ("rpn_pre_nms_top_n_test", int, "RPN candidates per FPN level before its NMS"),
    "--detections": ("detections_per_image", int, "detections kept per image"),
    "--score-threshold": ("box_score_threshold", float, "lowest detection score kept"),
    "--box-nms": ("box_nms_iou", float, "box NMS IoU"),
    "--rpn-nms": ("rpn_nms_iou", float, "RPN NMS IoU"),
}


SCALE_SETTINGS = {  # flag -> (ModelConfig field, type, what)
    "--scale": ("scale_policy", str, "short-side (resize to the input short side) or pixel-scale (by --scale-factor)"),
    "--scale-factor": ("scale_factor", float, "pixel-scale: every image is resized by this factor (implies it)"),
    "--tile-size": ("tile_size", int, "pixel-scale: tiles of at most this many network pixels a side"),
    "--tile-overlap": ("tile_overlap", int, "pixel-scale: overlap of tiles, network pixels (default: largest anchor)"),
    "--object-size": (
        "object_size",
        float,
        "typical object size the model learnt, in network pixels (the app turns "
        "the objects' size in your images into the scale factor from it)",
    ),
}


def build_parser():  # noqa: ANN201
    parser = make_parser("defaults", __doc__.splitlines()[0].split(": ", 1)[1])
    parser.add_argument("--weights", required=True, help="one of our .safetensors checkpoints")
    parser.add_argument("--out", help="write the changed model here (default: print the settings only)")
    for flag, (_, kind, what) in SETTINGS.items():
        parser.add_argument(flag, type=kind, help=what)
    for flag, (_, kind, what) in SCALE_SETTINGS.items():
        parser.add_argument(flag, type=kind, help=what, choices=SCALE_POLICIES if flag == "--scale" else None)
    return parser


def scale_changes(args) -> dict:  # noqa: ANN001 - argparse.Namespace
    """The ModelConfig fields the scale flags set; --scale-factor alone means pixel-scale."""
    changes = {}
    for flag, (field, _, _) in SCALE_SETTINGS.items():
        value = getattr(args, flag[2:].replace("-", "_"))
        if value is not None:
            changes[field] = value
    imply_pixel_scale(changes)
    if "scale_factor" in changes:
        if not 0.01 <= changes["scale_factor"] <= 100:
            raise UserError(f"--scale-factor {changes['scale_factor']}: must be between 0.01 and 100")
    return changes


def describe_scale(config) -> list[str]:  # noqa: ANN001 - ModelConfig
    """The scale policy as the lines ``defaults`` prints."""
    pixel = config.scale_policy == "pixel-scale"
    lines = [f"{'--scale':18s} {config.scale_policy:>11s}  how images are resized for the model"]
    if pixel:
        lines.append(f"{'--scale-factor':18s} {config.scale_factor:>11g}  every image is resized by this factor")
    else:
        lines.append(
            f"{'--scale-factor':18s} {'-':>11s}  (short-side: short side {config.min_size[-1]} px, "
            f"long side at most {config.max_size} px)"
        )
    overlap = f"{config.tile_overlap_px}" + (" (auto)" if config.tile_overlap is None else "")
    lines.append(f"{'--tile-size':18s} {config.tile_size:>11d}  network pixels per tile side (pixel-scale only)")
    lines.append(f"{'--tile-overlap':18s} {overlap:>11s}  network pixels of overlap (pixel-scale only)")
    size = "-" if config.object_size is None else f"{config.object_size:g}"
    lines.append(f"{'--object-size':18s} {size:>11s}  typical object size the model learnt, network pixels")
    return lines


def main(argv: list[str] | None = None) -> int:
    return run(_main, argv)


def _stored_as_half(path) -> bool:  # noqa: ANN001
    with safe_open(str(path), "pt") as f:
        return any(str(f.get_slice(k).get_dtype()) == "F16" for k in f.keys())


def _main(argv: list[str]) -> int:
    from engine.checkpoint import load_checkpoint, save_checkpoint
    from engine.interop import WeightsError

    args = build_parser().parse_args(argv)
    path = existing_path(args.weights, "--weights", "file")
    if path.suffix.lower() != ".safetensors":
        raise UserError(f"--weights {path}: give one of our .safetensors checkpoints (from `python -m engine train`)")
    try:
        model, info = load_checkpoint(path)
    except (WeightsError, ValueError, OSError) as error:
        raise UserError(f"--weights {path}: {error}") from error
    changes = {}
    for flag, (field, _, _) in SETTINGS.items():
        value = getattr(args, flag[2:].replace("-", "_"))
        if value is not None:
            if field == "box_score_threshold" or field.endswith("_iou"):
                if not 0 <= value <= 1:
                    raise UserError(f"{flag} {value}: must be between 0 and 1")
            elif value < 1:
                raise UserError(f"{flag} {value}: must be at least 1")
            changes[field] = value
    changes.update(scale_changes(args))
    if changes and not args.out:
        raise UserError("give --out FILE to write the changed model (the original stays as it is)")
    try:
        config = model.config.replace(**changes)
    except ValueError as error:
        raise UserError(str(error)) from error
    for flag, (field, _, what) in SETTINGS.items():
        print(f"{flag:18s} {getattr(config, field)!s:>11s}  {what}")
    print("\n".join(describe_scale(config)))
    if args.out:
        out = output_file(args.out, "--out")
        model.config = config
        save_checkpoint(model, out, info.class_names, info.history, info.extra, half=_stored_as_half(path))
        print(f"wrote {out}", file=sys.stderr)
    return 0
