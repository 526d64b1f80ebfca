"""Import of torchvision models and weight files: ``from_torchvision`` and ``load_torchvision_weights``.

A torchvision ``MaskRCNN`` on a ResNet-FPN backbone is read for its hyper-parameters and weights and
returned as our ``MaskRCNN`` configured to give the same detections. Weight files are opened with
``torch.load(weights_only=True)``: no pickled code runs.
"""

from __future__ import annotations

import re
import warnings
from pathlib import Path

import torch
from torch import Tensor, nn

from engine.config import ModelConfig, torchvision_like
from engine.model.blocks import FrozenBatchNorm2d
from engine.model.mask_rcnn import MaskRCNN

# torchvision key pattern -> ours (applied in order, first match wins).
_KEY_RULES = [
    (r"^backbone\.fpn\.inner_blocks\.(\d+)\.(?:0\.)?(weight|bias)$", r"backbone.fpn.lateral.\1.0.\2"),
    (r"^backbone\.fpn\.layer_blocks\.(\d+)\.(?:0\.)?(weight|bias)$", r"backbone.fpn.output.\1.0.\2"),
    (r"^rpn\.head\.conv\.(?:0\.0\.)?(weight|bias)$", r"rpn.head.conv.\1"),
    (r"^roi_heads\.box_predictor\.(cls_score|bbox_pred)\.", r"roi_heads.box_head.\1."),
    (r"^roi_heads\.mask_head\.(\d+)\.0\.(weight|bias)$", r"roi_heads.mask_head.convs.\1.\2"),
    (r"^roi_heads\.mask_predictor\.conv5_mask\.", r"roi_heads.mask_head.deconv."),
    (r"^roi_heads\.mask_predictor\.mask_fcn_logits\.", r"roi_heads.mask_head.logits."),
]


class WeightsError(ValueError):
    """A weight file or model that cannot be used, with a message that says what to do."""


def convert_state_dict(tv_state: dict[str, Tensor]) -> dict[str, Tensor]:
    """torchvision Mask R-CNN state dict -> ours (key renames only; tensors are shared)."""
    out = {}
    for key, value in tv_state.items():
        legacy = re.match(r"^roi_heads\.mask_head\.mask_fcn(\d+)\.(weight|bias)$", key)
        if legacy:
            key = f"roi_heads.mask_head.{int(legacy.group(1)) - 1}.0.{legacy.group(2)}"
        for pattern, repl in _KEY_RULES:
            new, n = re.subn(pattern, repl, key)
            if n:
                key = new
                break
        out[key] = value
    return out


def _depth_from_layers(layer_blocks: list[int], bottleneck: bool) -> str:
    if bottleneck and layer_blocks == [3, 4, 6, 3]:
        return "resnet50"
    if not bottleneck and layer_blocks == [2, 2, 2, 2]:
        return "resnet18"
    if not bottleneck and layer_blocks == [3, 4, 6, 3]:
        return "resnet34"
    kind = "Bottleneck" if bottleneck else "BasicBlock"
    raise WeightsError(f"unsupported ResNet ({kind} x {layer_blocks}); use ResNet-18, 34 or 50")


def _config_from_model(tv) -> ModelConfig:  # noqa: ANN001 - torchvision MaskRCNN
    body, fpn = tv.backbone.body, tv.backbone.fpn
    names = list(dict(body.named_children()))
    if "layer4" not in names or len(fpn.inner_blocks) != 4:
        raise WeightsError("only ResNet-FPN backbones returning layer1..layer4 are supported")
    blocks = [len(getattr(body, f"layer{i}")) for i in range(1, 5)]
    depth = _depth_from_layers(blocks, hasattr(body.layer1[0], "conv3"))
    norm_types = {type(m).__name__ for m in body.modules() if "Norm" in type(m).__name__}
    if norm_types == {"FrozenBatchNorm2d"}:
        backbone_norm = "frozen_bn"
    elif norm_types == {"BatchNorm2d"}:
        backbone_norm = "bn"
    else:
        raise WeightsError(f"unsupported backbone normalisation {sorted(norm_types)}")
    if any(len(list(b.children())) > 1 for b in fpn.layer_blocks):
        raise WeightsError("FPN with normalisation layers (e.g. maskrcnn_resnet50_fpn_v2) is not supported")
    extra = type(fpn.extra_blocks).__name__ if fpn.extra_blocks is not None else None
    if extra not in (None, "LastLevelMaxPool"):
        raise WeightsError(f"unsupported FPN extra block {extra}")
    tr, rpn, roi = tv.transform, tv.rpn, tv.roi_heads
    ag = rpn.anchor_generator
    ratios = {tuple(float(r) for r in ar) for ar in ag.aspect_ratios}
    if len(ratios) != 1 or any(len(s) != 1 for s in ag.sizes):
        raise WeightsError("anchors must be one size per level with the same aspect ratios on every level")
    if getattr(tr, "fixed_size", None) is not None:
        raise WeightsError("a transform with fixed_size is not supported")
    box_head = roi.box_head
    if not hasattr(box_head, "fc6"):
        raise WeightsError("only the two-FC box head (TwoMLPHead) is supported")
    mask_convs = [m for m in roi.mask_head.modules() if isinstance(m, nn.Conv2d)]
    if any(c.dilation != (1, 1) for c in mask_convs):
        raise WeightsError("dilated mask heads are not supported")
    return torchvision_like(num_classes=roi.box_predictor.cls_score.out_features, backbone=depth).replace(
        backbone_norm=backbone_norm,
        fpn_channels=fpn.layer_blocks[0][0].out_channels
        if isinstance(fpn.layer_blocks[0], nn.Sequential)
        else fpn.layer_blocks[0].out_channels,
        fpn_extra_pool=extra is not None,
        min_size=tuple(int(s) for s in tr.min_size),
        max_size=int(tr.max_size),
        image_mean=tuple(float(v) for v in tr.image_mean),
        image_std=tuple(float(v) for v in tr.image_std),
        size_divisible=int(tr.size_divisible),
        anchor_sizes=tuple(int(s[0]) for s in ag.sizes),
        aspect_ratios=tuple(1.0 / r for r in next(iter(ratios))),
        round_anchors=True,
        rpn_fg_iou=float(rpn.proposal_matcher.high_threshold),
        rpn_bg_iou=float(rpn.proposal_matcher.low_threshold),
        rpn_batch_per_image=int(rpn.fg_bg_sampler.batch_size_per_image),
        rpn_positive_fraction=float(rpn.fg_bg_sampler.positive_fraction),
        rpn_pre_nms_top_n_train=int(rpn._pre_nms_top_n["training"]),
        rpn_pre_nms_top_n_test=int(rpn._pre_nms_top_n["testing"]),
        rpn_post_nms_top_n_train=int(rpn._post_nms_top_n["training"]),
        rpn_post_nms_top_n_test=int(rpn._post_nms_top_n["testing"]),
        rpn_nms_iou=float(rpn.nms_thresh),
        rpn_score_threshold=float(rpn.score_thresh),
        rpn_min_box_size=float(rpn.min_size),
        rpn_box_weights=tuple(float(w) for w in rpn.box_coder.weights),
        roi_sampling_ratio=int(roi.box_roi_pool.sampling_ratio),
        box_roi_size=int(roi.box_roi_pool.output_size[0]),
        mask_roi_size=int(roi.mask_roi_pool.output_size[0]),
        representation_size=int(box_head.fc6.out_features),
        mask_head_layers=len(mask_convs),
        mask_head_channels=int(mask_convs[-1].out_channels),
        box_fg_iou=float(roi.proposal_matcher.high_threshold),
        box_bg_iou=float(roi.proposal_matcher.low_threshold),
        box_batch_per_image=int(roi.fg_bg_sampler.batch_size_per_image),
        box_positive_fraction=float(roi.fg_bg_sampler.positive_fraction),
        box_weights=tuple(float(w) for w in roi.box_coder.weights),
        box_score_threshold=float(roi.score_thresh),
        box_nms_iou=float(roi.nms_thresh),
        detections_per_image=int(roi.detections_per_img),
    )


def from_torchvision(tv) -> MaskRCNN:  # noqa: ANN001 - torchvision.models.detection.MaskRCNN
    """Our MaskRCNN with the hyper-parameters and weights of a torchvision ResNet-FPN Mask R-CNN."""
    cfg = _config_from_model(tv)
    frozen = [p for n, p in tv.backbone.body.named_parameters() if not p.requires_grad]
    if frozen:  # trainable_backbone_layers: count how many leading stages torchvision froze
        stages = ["conv1", "layer1", "layer2", "layer3", "layer4"]
        trainable = {n.split(".")[0] for n, p in tv.backbone.body.named_parameters() if p.requires_grad}
        cfg = cfg.replace(frozen_stages=next((i for i, s in enumerate(stages) if s in trainable), 5))
    model = MaskRCNN(cfg)
    _load_converted(model, tv.state_dict())
    eps_values = {float(m.eps) for m in tv.backbone.body.modules() if hasattr(m, "eps")}
    if len(eps_values) == 1:  # FrozenBN eps: torchvision has used both 0 and 1e-5
        eps = eps_values.pop()
        for m in model.backbone.body.modules():
            if isinstance(m, (FrozenBatchNorm2d, nn.BatchNorm2d)):
                m.eps = eps
    return model.train(tv.training)


def _load_converted(model: MaskRCNN, tv_state: dict[str, Tensor]) -> None:
    ours = convert_state_dict(tv_state)
    expected = model.state_dict()
    missing = sorted(set(expected) - set(ours))
    unexpected = sorted(k for k in set(ours) - set(expected) if not k.endswith("num_batches_tracked"))
    if missing or unexpected:
        raise WeightsError(
            f"weights do not fit the model: missing {missing[:5]}{'...' if len(missing) > 5 else ''}, "
            f"unexpected {unexpected[:5]}{'...' if len(unexpected) > 5 else ''}"
        )
    for key, value in ours.items():
        if key in expected and expected[key].shape != value.shape:
            raise WeightsError(
                f"{key}: shape {tuple(value.shape)} in the file, the model needs {tuple(expected[key].shape)}"
            )
    model.load_state_dict({k: v for k, v in ours.items() if k in expected}, strict=True)


# torch's words around the reason a weights-only load failed, among them its advice to load with weights_only=False,
# which would run whatever code the file holds: never passed on.
_TORCH_ADVICE = ("weights_only", "Weights only load failed", "Please file an issue", "Check the documentation")


def _unpickling_reason(error: BaseException) -> str:
    """The reason in a torch.load error, without torch's advice to re-run it with ``weights_only=False``."""
    lines = [line.strip() for line in str(error).splitlines() if line.strip()]
    kept = [line for line in lines if not any(words in line for words in _TORCH_ADVICE)]
    return " ".join(kept) or "it holds more than tensors"


def _load_state(path: str | Path) -> dict[str, Tensor]:
    path = Path(path)
    if not path.is_file():
        raise WeightsError(f"{path}: no such file")
    try:
        with warnings.catch_warnings():  # torch's note on a pickle protocol it may not read: the error says enough
            warnings.filterwarnings("ignore", message="Detected pickle protocol")
            state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 - any unpickling failure means "not a plain weights file"
        raise WeightsError(
            f"{path}: not a plain state-dict file ({type(exc).__name__}: {_unpickling_reason(exc)}); it is not "
            "loaded, as loading anything more than tensors could run code from the file. Save it with "
            "torch.save(model.state_dict(), path), or use one of our .safetensors checkpoints."
        ) from exc
    if isinstance(state, dict) and "model" in state and isinstance(state["model"], dict):
        state = state["model"]
    if not isinstance(state, dict) or not all(isinstance(v, Tensor) for v in state.values()):
        raise WeightsError(f"{path}: expected a dict of tensors (a state dict)")
    return state


def load_torchvision_weights(
    path: str | Path, num_classes: int | None = None, config: ModelConfig | None = None
) -> MaskRCNN:
    """A torchvision Mask R-CNN state dict (our model configured as torchvision's) or an ImageNet ResNet
    state dict (the backbone of a model with ``config``, seed defaults otherwise) -> our MaskRCNN."""
    state = _load_state(path)
    if "conv1.weight" in state and "fc.weight" in state:
        return _model_from_imagenet(state, num_classes, config)
    if "backbone.body.conv1.weight" not in state or "roi_heads.mask_predictor.mask_fcn_logits.weight" not in state:
        raise WeightsError(
            f"{path}: neither a torchvision Mask R-CNN nor an ImageNet ResNet state dict "
            "(expected keys backbone.body.conv1.weight and roi_heads.mask_predictor..., or conv1.weight and fc.weight)"
        )
    if any(k.startswith("roi_heads.box_head.0.") for k in state):
        raise WeightsError(f"{path}: maskrcnn_resnet50_fpn_v2 weights are not supported (GroupNorm box head)")
    blocks = [len({k.split(".")[3] for k in state if k.startswith(f"backbone.body.layer{i}.")}) for i in range(1, 5)]
    depth = _depth_from_layers(blocks, "backbone.body.layer1.0.conv3.weight" in state)
    file_classes = state["roi_heads.box_predictor.cls_score.weight"].shape[0]
    cfg = torchvision_like(num_classes=file_classes, backbone=depth)
    model = MaskRCNN(cfg)
    _load_converted(model, state)
    if num_classes is not None and num_classes != file_classes:
        model = with_new_class_layers(model, num_classes)
    return model


def _model_from_imagenet(state, num_classes, config) -> MaskRCNN:  # noqa: ANN001
    blocks = [len({k.split(".")[1] for k in state if k.startswith(f"layer{i}.")}) for i in range(1, 5)]
    depth = _depth_from_layers(blocks, "layer1.0.conv3.weight" in state)
    cfg = (config or ModelConfig()).replace(backbone=depth)
    if num_classes is not None:
        cfg = cfg.replace(num_classes=num_classes)
    model = MaskRCNN(cfg)
    body_state = {k: v for k, v in state.items() if not k.startswith("fc.")}
    if cfg.backbone_norm == "gn":
        raise WeightsError("ImageNet BatchNorm weights cannot initialise a GroupNorm backbone; use backbone_norm='bn'")
    result = model.backbone.body.load_state_dict(body_state, strict=False)
    bad = [k for k in result.missing_keys if not k.endswith("num_batches_tracked")] + list(result.unexpected_keys)
    if bad:
        raise WeightsError(f"ImageNet weights do not fit a {depth}: {bad[:5]}")
    return model


def with_new_class_layers(model: MaskRCNN, num_classes: int) -> MaskRCNN:
    """The same network with freshly initialised class-specific layers for num_classes."""
    new = MaskRCNN(model.config.replace(num_classes=num_classes))
    state = {k: v for k, v in model.state_dict().items() if not _is_class_specific(k)}
    new.load_state_dict(state, strict=False)
    return new


def _is_class_specific(key: str) -> bool:
    return key.startswith(
        ("roi_heads.box_head.cls_score", "roi_heads.box_head.bbox_pred", "roi_heads.mask_head.logits")
    )
