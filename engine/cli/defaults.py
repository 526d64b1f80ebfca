"""``python -m engine defaults``: show or change the inference defaults stored in a model file.

The weights stay as they are; only the settings a model brings along change: how many proposals the RPN
keeps, how many detections are kept per image, the score threshold and the NMS IoUs. The app's sliders,
``predict`` and ``evaluate`` start from these (the app's sliders until the user moves them).
"""

from __future__ import annotations

import sys

from safetensors import safe_open

from engine.cli.common import UserError, existing_path, make_parser, output_file, run

SETTINGS = {  # flag -> (ModelConfig field, type, what)
    "--proposals": ("rpn_post_nms_top_n_test", int, "proposals the RPN keeps after its NMS"),
    "--candidates": ("rpn_pre_nms_top_n_test", int, "RPN candidates per FPN level before its NMS"),
    "--detections": ("detections_per_image", int, "detections kept per image"),
    "--score-threshold": ("box_score_threshold", float, "lowest detection score kept"),
    "--box-nms": ("box_nms_iou", float, "box NMS IoU"),
    "--rpn-nms": ("rpn_nms_iou", float, "RPN NMS IoU"),
}


def build_parser():  # noqa: ANN201
    parser = make_parser("defaults", __doc__.splitlines()[0].split(": ", 1)[1])
    parser.add_argument("--weights", required=True, help="one of our .safetensors checkpoints")
    parser.add_argument("--out", help="write the changed model here (default: print the settings only)")
    for flag, (_, kind, what) in SETTINGS.items():
        parser.add_argument(flag, type=kind, help=what)
    return parser


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
    if changes and not args.out:
        raise UserError("give --out FILE to write the changed model (the original stays as it is)")
    try:
        config = model.config.replace(**changes)
    except ValueError as error:
        raise UserError(str(error)) from error
    for flag, (field, _, what) in SETTINGS.items():
        print(f"{flag:18s} {getattr(config, field)!s:>8s}  {what}")
    if args.out:
        out = output_file(args.out, "--out")
        model.config = config
        save_checkpoint(model, out, info.class_names, info.history, info.extra, half=_stored_as_half(path))
        print(f"wrote {out}", file=sys.stderr)
    return 0
