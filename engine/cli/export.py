"""``python -m engine export``: a model as ONNX, TorchScript or a torchvision MaskRCNN state dict, to run without
this package (engine/export.py)."""

from __future__ import annotations

from engine.cli.common import UserError, load_model, make_parser, number, output_file, run


def build_parser():  # noqa: ANN201
    parser = make_parser(
        "export", "Write a model as ONNX, TorchScript or a torchvision MaskRCNN, to run without this package."
    )
    parser.add_argument(
        "--weights", required=True, help="model file (.safetensors checkpoint, torchvision .pth, or coco / imagenet)"
    )
    parser.add_argument("--to", required=True, help="file to write (e.g. model.onnx, model.pt, model.pth)")
    parser.add_argument(
        "--format",
        required=True,
        choices=("onnx", "torchscript", "torchvision"),
        help="onnx (onnxruntime; one fixed input size), torchscript (torch.jit.load), or torchvision (a state dict "
        "and the Python that builds the torchvision MaskRCNN, written beside it as <name>.py)",
    )
    parser.add_argument(
        "--image-size",
        nargs=2,
        type=number(int, 32, 16384),
        metavar=("HEIGHT", "WIDTH"),
        help="onnx: the input size the file takes (default: one tile at pixel scale, else the model's input size "
        "square); images of another size are resized or padded to it by the caller",
    )
    parser.add_argument("--opset", type=number(int, 11, 30), default=17, help="onnx: the opset (default 17)")
    return parser


def export_command(argv: list[str]) -> int:
    args = build_parser().parse_args(argv)
    from engine import export

    target = output_file(args.to, "--to")
    if args.image_size and args.format != "onnx":
        raise UserError("--image-size is for --format onnx (TorchScript and torchvision take any size)")
    model, info = load_model(args.weights, _cpu())
    model = model.float().eval()
    export.check_exportable(model.config)
    target.parent.mkdir(parents=True, exist_ok=True)
    note = ""
    if model.config.scale_policy == "pixel-scale":
        note = (
            f" It resizes every image by {model.config.scale_factor:g} (the model's pixel scale) and runs it whole: "
            "large images are not tiled as they are here."
        )
    if args.format == "torchvision":
        weights, code = export.export_torchvision(model, info.class_names, target)
        print(code.read_text(encoding="utf-8"))
        print(
            f"wrote {weights} (state dict: torch.load(..., weights_only=True)) and {code} (the lines above): "
            f"from {code.stem} import build.{note}"
        )
    elif args.format == "torchscript":
        export.export_torchscript(model, info.class_names, target)
        print(
            f"wrote {target}: import torchvision (its nms and roi_align operators), then "
            f"torch.jit.load('{target.name}')([image]) -> (losses, [detections]); image (3,H,W) float RGB in [0,1]; "
            f"class names in the file's classes.json.{note}"
        )
    else:
        try:
            import onnx  # noqa: F401
        except ImportError:
            raise UserError('ONNX export needs the onnx package: pip install "maskrcnn-studio[export]"') from None
        size = tuple(args.image_size) if args.image_size else export.default_onnx_size(model.config)
        export.export_onnx(model, info.class_names, target, size, opset=args.opset)
        print(
            f"wrote {target}: input '{export.ONNX_INPUT}' (3, {size[0]}, {size[1]}) float32 RGB in [0,1]; outputs "
            f"{', '.join(export.ONNX_OUTPUTS)} (masks as (N,1,{size[0]},{size[1]}) probabilities); class names in its "
            f"metadata.{note}"
        )
    return 0


def _cpu():  # noqa: ANN202 - torch.device
    import torch

    return torch.device("cpu")  # an exported model is written from CPU tensors, whatever the machine has


def main(argv: list[str] | None = None) -> int:
    """``python -m engine export ...`` -> exit status."""
    return run(export_command, argv)
