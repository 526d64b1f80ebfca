"""Command line: ``python -m engine <command>`` (also installed as ``maskrcnn``)."""

from __future__ import annotations

import sys

COMMANDS = {
    "train": ("engine.cli.train", "train or fine-tune a model on annotated images"),
    "predict": ("engine.cli.predict", "run a model over images: COCO results JSON, overlay PNGs"),
    "evaluate": ("engine.cli.evaluate", "COCO box and mask AP of a model on annotated images"),
    "export": ("engine.cli.export", "write a model as ONNX, TorchScript or a torchvision MaskRCNN"),
    "convert": ("engine.cli.convert", "convert annotations between formats (COCO, labelme, mask folders)"),
    "defaults": ("engine.cli.defaults", "show or change a model's inference defaults (proposals, detections)"),
    "bench": ("engine.cli.bench", "our network vs torchvision's: ms per image and ratio"),
    "bench-train": ("engine.cli.bench_train", "learning benchmark: ours vs torchvision from scratch on the nuclei set"),
}


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] in ("-h", "--help") or argv[0] not in COMMANDS:
        print("usage: python -m engine {" + ",".join(COMMANDS) + "} ...\n")
        for name, (_, help_text) in COMMANDS.items():
            print(f"  {name:10s} {help_text}")
        return 0 if argv and argv[0] in ("-h", "--help") else 2
    module_name, _ = COMMANDS[argv[0]]
    module = __import__(module_name, fromlist=["main"])
    return int(module.main(argv[1:]) or 0)


if __name__ == "__main__":
    sys.exit(main())
