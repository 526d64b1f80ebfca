"""The full model (seed section 7): images -> ResNet-FPN -> RPN -> RoI heads -> boxes, labels, scores, masks."""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass

import torch
from torch import Tensor, nn

from engine.config import ModelConfig
from engine.fastpaths import use as use_fastpath
from engine.model.backbone import ResNetFPN
from engine.model.box_utils import scale_boxes
from engine.model.matching import sample_generator
from engine.model.paste import paste_masks
from engine.model.roi_heads import RoIHeads
from engine.model.rpn import RegionProposalNetwork
from engine.model.transform import (
    batch_images,
    input_scale,
    normalize,
    resize,
    scale_target,
)


@dataclass
class ImageBatch:
    tensor: Tensor  # (B,3,H,W) normalised, resized, padded
    image_sizes: list[tuple[int, int]]  # resized size of each image before padding
    original_sizes: list[tuple[int, int]]

    @property
    def padded_hw(self) -> tuple[int, int]:
        return (self.tensor.shape[-2], self.tensor.shape[-1])


class MaskRCNN(nn.Module):
    """``MaskRCNN(ModelConfig(num_classes=K))``; K counts the background.

    eval: ``model([img (3,H,W) float in [0,1], ...])`` -> [{boxes (N,4), labels (N,), scores (N,),
    masks (N,1,H,W) in [0,1]}] in input-image pixels. train: ``model(images, targets)`` -> dict of
    loss_objectness, loss_rpn_box_reg, loss_classifier, loss_box_reg, loss_mask.
    """

    def __init__(self, config: ModelConfig | None = None) -> None:
        super().__init__()
        cfg = config or ModelConfig()
        self.config = cfg
        self.backbone = ResNetFPN(
            cfg.backbone,
            cfg.backbone_norm,
            cfg.fpn_channels,
            cfg.fpn_norm,
            cfg.fpn_groups,
            cfg.fpn_extra_pool,
            cfg.gradient_checkpointing,
            cfg.frozen_stages,
        )
        self.rpn = RegionProposalNetwork(cfg)
        self.roi_heads = RoIHeads(cfg)

    def preprocess(self, images: list[Tensor], targets: list[dict[str, Tensor]] | None = None):
        """Normalise, resize (random min size in training) and pad -> (ImageBatch, resized targets)."""
        cfg = self.config
        resized, sizes, originals, new_targets = [], [], [], []
        for i, image in enumerate(images):
            if image.dim() != 3 or image.shape[0] != 3:
                raise ValueError(f"image {i} must be (3,H,W), got {tuple(image.shape)}")
            h, w = image.shape[-2:]
            originals.append((h, w))
            image = normalize(image, cfg.image_mean, cfg.image_std)
            gen = sample_generator(targets[i], 2, torch.device("cpu")) if targets is not None else None
            scale = input_scale(h, w, cfg, self.training, gen)
            if (int(h * scale), int(w * scale)) != (h, w):  # the same size would be an exact identity
                image = resize(image, scale)
            resized.append(image)
            sizes.append((image.shape[-2], image.shape[-1]))
            if targets is not None:
                same = sizes[-1] == (h, w)
                new_targets.append(dict(targets[i]) if same else scale_target(targets[i], scale, (h, w), sizes[-1]))
        batch = ImageBatch(batch_images(resized, cfg.size_divisible), sizes, originals)
        return batch, (new_targets if targets is not None else None)

    def features(self, batch: ImageBatch) -> OrderedDict[str, Tensor]:
        """FPN levels {"p2": (B,256,H/4,W/4), ...}.

        On the CPU the convolutions run channels-last (oneDNN's fast layout; same numbers up to rounding) where
        that was measured faster on this machine (``engine.fastpaths``, path ``channels_last``).
        """
        x = batch.tensor
        if x.device.type == "cpu" and use_fastpath("channels_last"):
            x = x.contiguous(memory_format=torch.channels_last)
        return self.backbone(x)

    @staticmethod
    def roi_levels(features: OrderedDict[str, Tensor]) -> list[Tensor]:
        """P2..P5, contiguous: the levels RoIAlign pools from (P6, when present, only feeds the RPN).

        torchvision's roi_align copies a channels-last input to contiguous on every call; one copy here
        serves the box and the mask pooling.
        """
        return [features[k].contiguous() for k in ("p2", "p3", "p4", "p5")]

    def forward(self, images: list[Tensor], targets: list[dict[str, Tensor]] | None = None):
        if self.training and targets is None:
            raise ValueError("training mode needs targets (boxes, labels, masks per image)")
        batch, targets = self.preprocess(images, targets)
        features = self.features(batch)
        proposals, rpn_losses = self.rpn(list(features.values()), batch.image_sizes, batch.padded_hw, targets)
        if self.training:
            losses = self.roi_heads(self.roi_levels(features), proposals, batch.image_sizes, targets)
            return {**rpn_losses, **losses}
        dets, masks = self.roi_heads(self.roi_levels(features), proposals, batch.image_sizes)
        return [
            self.postprocess(d, m, s, o) for d, m, s, o in zip(dets, masks, batch.image_sizes, batch.original_sizes)
        ]

    @staticmethod
    def postprocess(det, mask_probs: Tensor, size, original) -> dict[str, Tensor]:
        """Detections in network pixels -> boxes in original pixels and (N,1,H,W) pasted masks."""
        boxes = scale_boxes(det.boxes, size, original)
        masks = paste_masks(mask_probs, boxes, original[0], original[1])
        return {"boxes": boxes, "labels": det.labels, "scores": det.scores, "masks": masks[:, None]}
