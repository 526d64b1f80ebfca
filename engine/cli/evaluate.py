"""``python -m engine evaluate``: COCO box and mask AP of a model on an annotated dataset, as a table."""

from __future__ import annotations

import json
import sys
from typing import Any

from tqdm import tqdm

from engine.cli.common import (
    add_device_argument,
    choose_device,
    existing_path,
    load_model,
    make_parser,
    output_file,
    run,
    warn,
)
from engine.data import read_dataset
from engine.data.io.atomic import atomic_write_text
from engine.evaluate import STAT_NAMES, evaluate_model

COLUMN_TITLES = {"AP": "AP", "AP50": "AP50", "AP75": "AP75", "APs": "AP S", "APm": "AP M", "APl": "AP L"}


def build_parser():  # noqa: ANN201
    parser = make_parser("evaluate", "COCO box and mask AP (IoU .50:.95, .50, .75; small/medium/large; per class).")
    parser.add_argument("--weights", required=True, help="model file (.safetensors checkpoint or torchvision .pth)")
    parser.add_argument("--data", required=True, help="annotated dataset: COCO/labelme JSON, or a dataset folder")
    parser.add_argument("--json", dest="json_out", help="also write the numbers to this JSON file")
    add_device_argument(parser)
    return parser


def _value(v: float) -> str:
    return "   -  " if v < 0 else f"{100 * v:6.1f}"


def format_table(result: dict[str, Any]) -> str:
    """The metrics as a plain-text table (AP in percent; '-' where COCO leaves a value undefined)."""
    header = "        " + "".join(f"{COLUMN_TITLES[n]:>7s}" for n in STAT_NAMES)
    lines = [
        f"{result['images']} image(s); AP in percent (COCO: IoU .50:.95, up to {result.get('max_detections', 100)} "
        "detections per image)",
        header,
    ]
    for key, title in (("bbox", "box"), ("segm", "mask")):
        lines.append(f"{title:8s}" + "".join(f" {_value(result[key][n])}" for n in STAT_NAMES))
    if result["per_class"]:
        width = max(12, *(len(name) for name in result["per_class"]))
        lines += ["", f"{'class':{width}s}  mask AP"]
        lines += [f"{name:{width}s}  {_value(ap)}" for name, ap in result["per_class"].items()]
    if result.get("categories_not_evaluated"):
        names = ", ".join(result["categories_not_evaluated"])
        lines += ["", f"not evaluated (the model has no class of that name): {names}"]
    return "\n".join(lines)


def evaluate_command(argv: list[str]) -> int:
    args = build_parser().parse_args(argv)
    weights = existing_path(args.weights, "--weights", "file")
    data = existing_path(args.data, "--data")
    json_out = output_file(args.json_out, "--json") if args.json_out else None
    device = choose_device(args.device)
    dataset = read_dataset(data)
    for line in dataset.warnings:
        warn(line)
    model, info = load_model(weights, device)
    bars: list[tqdm] = []  # made on the first progress call: nothing is drawn when evaluate_model refuses

    def progress(done: int, total: int) -> None:
        if not bars:
            bars.append(tqdm(total=total, desc="evaluate", unit="image", file=sys.stderr, dynamic_ncols=True))
        bars[0].update(done - bars[0].n)

    try:
        result = evaluate_model(model, dataset, None, info.class_names, device, progress)
    finally:
        for bar in bars:
            bar.close()
    print(format_table(result))
    if json_out is not None:
        document = {"weights": str(weights), "data": str(data), **result}
        atomic_write_text(json_out, json.dumps(document, indent=2))
        print(f"metrics written to {json_out}")
    return 0


def main(argv: list[str] | None = None) -> int:
    """``python -m engine evaluate ...`` -> exit status."""
    return run(evaluate_command, argv)
