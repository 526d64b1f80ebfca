"""Export of a model to run without this package: a torchvision ``MaskRCNN`` (state dict + the Python that builds it),
TorchScript, and ONNX for onnxruntime.

All three go through the same torchvision model. ``torchvision_source(config, class_names)`` writes the Python of
a ``build()`` that makes a torchvision ``MaskRCNN`` with this model's architecture and inference settings (backbone
normalisation, FPN normalisation and levels, anchors, RPN and RoI-head thresholds, input scale policy); that same
text is what ``to_torchvision`` executes, so the lines a user gets are the lines tested. Our state dict is renamed to
torchvision's keys (the inverse of ``engine.interop.convert_state_dict``) and loaded strictly.

What does not travel: tiling (engine.tiling) of images larger than a tile at pixel scale (an exported model runs
every image whole), the staged cache behind the app's sliders, and the score / mask thresholds chosen in the app
(the exported model returns every detection above the model's ``box_score_threshold`` with mask probabilities).
A pixel-scale model resizes every image by its factor (a small ``PixelScale`` transform in the generated code);
ONNX is exported for one fixed input size, as torchvision's own ONNX export is tested.
"""

from __future__ import annotations

import io
import json
import math
import re
import warnings
from pathlib import Path

import torch
from torch import Tensor

from engine.config import ModelConfig
from engine.data.io.atomic import atomic_write_bytes, atomic_write_text
from engine.interop import WeightsError
from engine.model.mask_rcnn import MaskRCNN

FORMATS = ("onnx", "torchscript", "torchvision")

# our key pattern -> torchvision's (first match wins): the inverse of engine.interop's rules
_KEY_RULES = [
    (r"^backbone\.fpn\.lateral\.(\d+)\.(\d+)\.", r"backbone.fpn.inner_blocks.\1.\2."),
    (r"^backbone\.fpn\.output\.(\d+)\.(\d+)\.", r"backbone.fpn.layer_blocks.\1.\2."),
    (r"^rpn\.head\.conv\.(weight|bias)$", r"rpn.head.conv.0.0.\1"),
    (r"^roi_heads\.box_head\.(cls_score|bbox_pred)\.", r"roi_heads.box_predictor.\1."),
    (r"^roi_heads\.mask_head\.convs\.(\d+)\.", r"roi_heads.mask_head.\1.0."),
    (r"^roi_heads\.mask_head\.deconv\.", r"roi_heads.mask_predictor.conv5_mask."),
    (r"^roi_heads\.mask_head\.logits\.", r"roi_heads.mask_predictor.mask_fcn_logits."),
]


def torchvision_state_dict(model: MaskRCNN) -> dict[str, Tensor]:
    """Our state dict under torchvision's names (float32, contiguous, on the CPU); BatchNorm's step counter dropped
    (torchvision's FrozenBatchNorm2d has none)."""
    out = {}
    for key, value in model.state_dict().items():
        if key.endswith("num_batches_tracked"):
            continue
        for pattern, repl in _KEY_RULES:
            new, n = re.subn(pattern, repl, key)
            if n:
                key = new
                break
        value = value.detach().to("cpu").contiguous()
        out[key] = value.float() if value.is_floating_point() else value
    return out


def check_exportable(config: ModelConfig) -> None:
    """WeightsError for a setting torchvision's MaskRCNN cannot express (each would change the detections)."""
    problems = []
    if tuple(config.rpn_box_weights) != (1.0, 1.0, 1.0, 1.0):
        problems.append(f"rpn_box_weights {config.rpn_box_weights} (torchvision's RPN uses 1, 1, 1, 1)")
    if not math.isclose(config.box_min_size, 1e-2):
        problems.append(f"box_min_size {config.box_min_size} (torchvision's RoI heads use 0.01)")
    if problems:
        raise WeightsError("this model cannot be written as a torchvision MaskRCNN: " + "; ".join(problems))


def _norm_source(model: MaskRCNN, kind: str, groups: int) -> str:
    """The ``norm_layer`` a torchvision ResNet / FPN is built with, as Python source."""
    if kind == "gn":
        return f"lambda c: nn.GroupNorm(min({groups}, c), c)"
    eps = next((float(m.eps) for m in model.backbone.body.modules() if hasattr(m, "eps")), 1e-5)
    return f"lambda c: FrozenBatchNorm2d(c, eps={eps!r})"


def torchvision_source(model: MaskRCNN, class_names: list[str], weights_file: str = "model.pth") -> str:
    """The Python module (text) whose ``build()`` returns an untrained torchvision MaskRCNN of this model's
    architecture and inference settings; its docstring says how to load ``weights_file`` into it."""
    cfg = model.config
    check_exportable(cfg)
    channels = [64, 128, 256, 512] if cfg.backbone in ("resnet18", "resnet34") else [256, 512, 1024, 2048]
    levels = 4 + int(cfg.fpn_extra_pool)
    tv_ratios = tuple(1.0 / r for r in cfg.aspect_ratios)  # torchvision's ratio is h / w, ours w / h
    c, k = cfg.fpn_channels, cfg.num_classes
    lines = [
        f'"""A torchvision Mask R-CNN with the architecture of a Mask R-CNN Studio model ({k - 1} classes), needing',
        "only torch and torchvision:",
        "",
        "    import torch",
        "    model = build()",
        f'    model.load_state_dict(torch.load("{weights_file}", weights_only=True))',
        "    model.eval()",
        "    out = model([image])[0]  # image: (3,H,W) float RGB in [0,1]; boxes, labels, scores, masks (N,1,H,W)",
        "",
        "Labels index CLASSES (0 is the background). Written by `python -m engine export --format torchvision`.",
        '"""',
        "",
        "import math",
        "from typing import Optional",
        "",
        "import torch",
        "from torch import Tensor, nn",
        "from torchvision.models import " + cfg.backbone,
        "from torchvision.models.detection import MaskRCNN",
        "from torchvision.models.detection.anchor_utils import AnchorGenerator",
        "from torchvision.models.detection.backbone_utils import BackboneWithFPN",
        "from torchvision.models.detection.faster_rcnn import FastRCNNPredictor, TwoMLPHead",
        "from torchvision.models.detection.mask_rcnn import MaskRCNNHeads, MaskRCNNPredictor",
        "from torchvision.models.detection.transform import GeneralizedRCNNTransform, _resize_image_and_masks",
        "from torchvision.ops import MultiScaleRoIAlign",
        "from torchvision.ops.misc import FrozenBatchNorm2d",
        "",
        f"CLASSES = {json.dumps(['__background__', *class_names], ensure_ascii=False)}",
        "",
    ]
    if cfg.scale_policy == "pixel-scale":
        factor = float(cfg.scale_factor)
        lines += [
            "",
            "class PixelScale(GeneralizedRCNNTransform):",
            f'    """Every image resized by {factor!r} whatever its size (the model\'s pixel scale; inference)."""',
            "",
            "    def resize(",
            "        self, image: Tensor, target: Optional[dict[str, Tensor]] = None",
            "    ) -> tuple[Tensor, Optional[dict[str, Tensor]]]:",
            "        h, w = image.shape[-2], image.shape[-1]",
            f"        size = (max(1, int(w * {factor!r})), max(1, int(h * {factor!r})))",
            "        if size == (w, h):",
            "            return image, target",
            "        image, _ = _resize_image_and_masks(image, 1, 1, None, size)",
            "        return image, target",
            "",
        ]
    lines += [
        "",
        "def build() -> MaskRCNN:",
        f"    body = {cfg.backbone}(norm_layer={_norm_source(model, cfg.backbone_norm, 32)})",
        "    layers = {'layer1': '0', 'layer2': '1', 'layer3': '2', 'layer4': '3'}",
    ]
    fpn_norm = _norm_source(model, "gn", cfg.fpn_groups) if cfg.fpn_norm == "gn" else "None"
    lines.append(f"    backbone = BackboneWithFPN(body, layers, {channels}, {c}, norm_layer={fpn_norm})")
    if not cfg.fpn_extra_pool:
        lines.append("    backbone.fpn.extra_blocks = None  # P2-P5 only: no max-pooled P6")
    sizes = tuple((int(s),) for s in cfg.anchor_sizes)
    lines.append(f"    anchors = AnchorGenerator({sizes!r}, ({tv_ratios!r},) * {levels})")
    if not cfg.round_anchors:  # torchvision rounds its base anchors to whole pixels; this model's are exact
        lines += [
            "    anchors.cell_anchors = [  # exact (unrounded) base anchors, w / h ratios",
            "        torch.tensor([[-s * math.sqrt(r) / 2, -s / math.sqrt(r) / 2, s * math.sqrt(r) / 2,"
            " s / math.sqrt(r) / 2]",
            f"                      for r in {tuple(cfg.aspect_ratios)!r}], dtype=torch.float32)",
            "        for (s,) in anchors.sizes",
            "    ]",
        ]
    names = [str(i) for i in range(4)]
    resolution = cfg.box_roi_size
    lines += [
        "    model = MaskRCNN(",
        "        backbone,",
        f"        min_size={cfg.min_size[-1]},",
        f"        max_size={cfg.max_size},",
        f"        image_mean={list(cfg.image_mean)!r},",
        f"        image_std={list(cfg.image_std)!r},",
        f"        size_divisible={cfg.size_divisible},",
        "        rpn_anchor_generator=anchors,",
        f"        rpn_pre_nms_top_n_test={cfg.rpn_pre_nms_top_n_test},",
        f"        rpn_post_nms_top_n_test={cfg.rpn_post_nms_top_n_test},",
        f"        rpn_nms_thresh={cfg.rpn_nms_iou!r},",
        f"        rpn_score_thresh={cfg.rpn_score_threshold!r},",
        f"        box_roi_pool=MultiScaleRoIAlign({names}, {resolution}, {cfg.roi_sampling_ratio}),",
        f"        box_head=TwoMLPHead({c} * {resolution} ** 2, {cfg.representation_size}),",
        f"        box_predictor=FastRCNNPredictor({cfg.representation_size}, {k}),",
        f"        box_score_thresh={cfg.box_score_threshold!r},",
        f"        box_nms_thresh={cfg.box_nms_iou!r},",
        f"        box_detections_per_img={cfg.detections_per_image},",
        f"        bbox_reg_weights={tuple(cfg.box_weights)!r},",
        f"        mask_roi_pool=MultiScaleRoIAlign({names}, {cfg.mask_roi_size}, {cfg.roi_sampling_ratio}),",
        f"        mask_head=MaskRCNNHeads({c}, {[cfg.mask_head_channels] * cfg.mask_head_layers}, 1),",
        f"        mask_predictor=MaskRCNNPredictor({cfg.mask_head_channels}, {cfg.mask_head_channels}, {k}),",
        "    )",
    ]
    if not math.isclose(cfg.rpn_min_box_size, 1e-3):
        lines.append(f"    model.rpn.min_size = {cfg.rpn_min_box_size!r}")
    if cfg.scale_policy == "pixel-scale":
        lines.append(
            f"    model.transform = PixelScale({cfg.min_size[-1]}, {cfg.max_size}, {list(cfg.image_mean)!r}, "
            f"{list(cfg.image_std)!r}, size_divisible={cfg.size_divisible})"
        )
    lines += ["    return model", ""]
    return "\n".join(lines)


def build_from_source(source: str):  # noqa: ANN201 - torchvision MaskRCNN
    """Run the text ``torchvision_source`` wrote and call its ``build()`` (our own generated code, never a user's)."""
    import hashlib
    import linecache

    # TorchScript compiles PixelScale.resize from its source: kept where inspect finds it, under a name of its own
    filename = f"<maskrcnn-studio export {hashlib.sha1(source.encode()).hexdigest()[:12]}>"
    linecache.cache[filename] = (len(source), None, source.splitlines(keepends=True), filename)
    namespace: dict = {"__name__": "maskrcnn_studio_export"}
    exec(compile(source, filename, "exec"), namespace)  # noqa: S102 - text made by torchvision_source
    return namespace["build"]()


def to_torchvision(model: MaskRCNN, class_names: list[str]):  # noqa: ANN201 - torchvision MaskRCNN
    """A torchvision MaskRCNN (eval mode, CPU) giving this model's detections, built by torchvision_source's code."""
    tv = build_from_source(torchvision_source(model, class_names))
    result = tv.load_state_dict(torchvision_state_dict(model), strict=False)
    missing = [k for k in result.missing_keys if not k.endswith("num_batches_tracked")]
    if missing or result.unexpected_keys:
        raise WeightsError(
            f"the torchvision model does not take these weights: missing {missing[:4]}, "
            f"unexpected {list(result.unexpected_keys)[:4]}"
        )
    return tv.eval()


def export_torchvision(model: MaskRCNN, class_names: list[str], path: str | Path) -> tuple[Path, Path]:
    """``path`` (a torch.save state dict of tensors only: torch.load(weights_only=True) opens it) and ``<stem>.py``
    beside it with ``build()``; both written atomically. -> (weights file, Python file)."""
    path = Path(path)
    source = torchvision_source(model, class_names, weights_file=path.name)
    to_torchvision(model, class_names)  # the written lines build a model that takes the written weights
    buffer = io.BytesIO()
    torch.save(torchvision_state_dict(model), buffer)
    atomic_write_bytes(path, buffer.getvalue())
    code = path.with_suffix(".py")
    atomic_write_text(code, source)
    return path, code


def export_torchscript(model: MaskRCNN, class_names: list[str], path: str | Path) -> Path:
    """``torch.jit.script`` of the torchvision model, saved atomically; after ``import torchvision`` (its operators),
    ``torch.jit.load(path)([image])`` returns (losses, detections) as torchvision's scripted detection models do.
    The class names are in the file's extra file ``classes.json``."""
    tv = to_torchvision(model, class_names)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # torch's deprecation notes on TorchScript: it still runs, as asked for
        scripted = torch.jit.script(tv)
        buffer = io.BytesIO()
        torch.jit.save(scripted, buffer, _extra_files={"classes.json": json.dumps(class_names)})
    atomic_write_bytes(Path(path), buffer.getvalue())
    return Path(path)


def default_onnx_size(config: ModelConfig) -> tuple[int, int]:
    """(height, width) of the ONNX input when none is given: one tile's image pixels at pixel scale, else a square
    of the model's input size."""
    if config.scale_policy == "pixel-scale":
        side = max(32, int(config.tile_size / config.scale_factor))
        return side, side
    return config.min_size[-1], config.min_size[-1]


ONNX_INPUT, ONNX_OUTPUTS = "image", ("boxes", "labels", "scores", "masks")


def export_onnx(
    model: MaskRCNN, class_names: list[str], path: str | Path, size: tuple[int, int], opset: int = 17
) -> Path:
    """ONNX of the torchvision model for one input size: input ``image`` (3, H, W) float32 RGB in [0, 1]; outputs
    ``boxes`` (N,4) x1 y1 x2 y2 in input pixels, ``labels`` (N,) int64, ``scores`` (N,), ``masks`` (N,1,H,W)
    probabilities. The class names, input size and score threshold are in the file's metadata. Written atomically."""
    import onnx  # the export extra: pip install "maskrcnn-studio[export]"

    tv = to_torchvision(model, class_names)
    example = torch.rand(3, *size)
    buffer = io.BytesIO()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # tracer notes on Python values it records as constants: the size is fixed
        torch.onnx.export(
            tv,
            ([example],),
            buffer,
            dynamo=False,  # torchvision's detection models are exported (and tested upstream) through the tracer
            opset_version=opset,
            input_names=[ONNX_INPUT],
            output_names=list(ONNX_OUTPUTS),
            do_constant_folding=True,
        )
    proto = onnx.load_from_string(buffer.getvalue())
    meta = {
        "classes": json.dumps(["__background__", *class_names], ensure_ascii=False),
        "input_size": json.dumps(list(size)),
        "input": "image (3,H,W) float32 RGB in [0,1], H x W as input_size",
        "score_threshold": str(model.config.box_score_threshold),
        "producer": "Mask R-CNN Studio (python -m engine export)",
    }
    for key, value in meta.items():
        entry = proto.metadata_props.add()
        entry.key, entry.value = key, value
    atomic_write_bytes(Path(path), proto.SerializeToString())
    return Path(path)
