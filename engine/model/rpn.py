"""Region Proposal Network (seed section 5): head, anchor assignment, losses and proposals."""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torchvision.ops import batched_nms, box_iou

from engine.model.anchors import AnchorGenerator
from engine.model.box_utils import BoxCoder, clip_boxes, nonsmall_mask
from engine.model.losses import reduce_loss
from engine.model.matching import BELOW_LOW, BETWEEN, match, sample_balanced, sample_generator


class RPNHead(nn.Module):
    """Conv3x3(C) + ReLU shared across levels, then Conv1x1 -> A logits and Conv1x1 -> 4A deltas."""

    def __init__(self, channels: int, num_anchors: int) -> None:
        super().__init__()
        self.conv = nn.Conv2d(channels, channels, 3, padding=1)
        self.cls_logits = nn.Conv2d(channels, num_anchors, 1)
        self.bbox_pred = nn.Conv2d(channels, 4 * num_anchors, 1)
        for layer in (self.conv, self.cls_logits, self.bbox_pred):
            nn.init.normal_(layer.weight, std=0.01)
            nn.init.zeros_(layer.bias)

    def forward(self, features: list[Tensor]) -> tuple[list[Tensor], list[Tensor]]:
        """[(B,C,H_l,W_l)] -> logits [(B,A,H_l,W_l)], deltas [(B,4A,H_l,W_l)]."""
        logits, deltas = [], []
        for x in features:
            t = F.relu(self.conv(x), inplace=True)
            logits.append(self.cls_logits(t))
            deltas.append(self.bbox_pred(t))
        return logits, deltas


@dataclass
class RPNOutput:
    """Raw RPN outputs flattened over levels, location-major then anchor (matches the anchors' order)."""

    logits: Tensor  # (B, N) objectness logits
    deltas: Tensor  # (B, N, 4)
    anchors: list[Tensor]  # per level (N_l, 4), the same for every image of the batch
    num_per_level: list[int]


def flatten_levels(logits: list[Tensor], deltas: list[Tensor]) -> tuple[Tensor, Tensor]:
    """[(B,A,H,W)], [(B,4A,H,W)] -> (B, sum H*W*A), (B, sum H*W*A, 4)."""
    flat_logits, flat_deltas = [], []
    for lg, dl in zip(logits, deltas):
        b, a, h, w = lg.shape
        flat_logits.append(lg.permute(0, 2, 3, 1).reshape(b, -1))
        flat_deltas.append(dl.view(b, a, 4, h, w).permute(0, 3, 4, 1, 2).reshape(b, -1, 4))
    return torch.cat(flat_logits, 1), torch.cat(flat_deltas, 1)


class RegionProposalNetwork(nn.Module):
    """Anchors + head; ``forward`` gives proposals per image (and losses in training)."""

    def __init__(self, cfg) -> None:  # noqa: ANN001 - ModelConfig, kept untyped to avoid a cycle
        super().__init__()
        self.anchor_generator = AnchorGenerator(cfg.anchor_sizes, cfg.aspect_ratios, cfg.round_anchors)
        self.head = RPNHead(cfg.fpn_channels, len(cfg.aspect_ratios))
        self.box_coder = BoxCoder(cfg.rpn_box_weights)
        self.cfg = cfg

    def raw_outputs(self, features: list[Tensor], padded_hw: tuple[int, int]) -> RPNOutput:
        """Run the head and lay out its outputs with the anchors; everything the proposals need."""
        logits, deltas = self.head(features)
        anchors = self.anchor_generator(
            padded_hw, [tuple(f.shape[-2:]) for f in features], features[0].device, features[0].dtype
        )
        num_per_level = [lg[0].numel() for lg in logits]
        flat_logits, flat_deltas = flatten_levels(logits, deltas)
        return RPNOutput(flat_logits, flat_deltas, anchors, num_per_level)

    def candidates(
        self, out: RPNOutput, image_sizes: list[tuple[int, int]], pre_nms_top_n: int
    ) -> list[tuple[Tensor, Tensor, Tensor]]:
        """Top-k per level on logits, decode, clip, drop tiny boxes -> per image (boxes, prob, level), (C,...)."""
        logits = out.logits.detach()
        top_idx, levels, offset = [], [], 0
        for lvl, n in enumerate(out.num_per_level):
            k = min(pre_nms_top_n, n)
            idx = logits[:, offset : offset + n].topk(k, dim=1).indices + offset
            top_idx.append(idx)
            levels.append(torch.full((k,), lvl, dtype=torch.int64, device=logits.device))
            offset += n
        top_idx = torch.cat(top_idx, 1)
        level_ids = torch.cat(levels)
        all_anchors = torch.cat(out.anchors)
        result = []
        for i, (h, w) in enumerate(image_sizes):
            idx = top_idx[i]
            boxes = self.box_coder.decode(out.deltas[i, idx].detach(), all_anchors[idx])[:, 0]
            boxes = clip_boxes(boxes, h, w)
            scores = torch.sigmoid(logits[i, idx])
            keep = nonsmall_mask(boxes, self.cfg.rpn_min_box_size) & (scores >= self.cfg.rpn_score_threshold)
            result.append((boxes[keep], scores[keep], level_ids[keep]))
        return result

    @staticmethod
    def select(candidates: tuple[Tensor, Tensor, Tensor], nms_iou: float, post_nms_top_n: int) -> Tensor:
        """NMS per level over one image's candidates -> (P,) indices of the kept ones, best first."""
        boxes, scores, levels = candidates
        return batched_nms(boxes, scores, levels, nms_iou)[:post_nms_top_n]

    def propose(
        self,
        out: RPNOutput,
        image_sizes: list[tuple[int, int]],
        pre_nms_top_n: int,
        post_nms_top_n: int,
        nms_iou: float,
    ) -> tuple[list[Tensor], list[Tensor]]:
        """Candidates, then NMS per level -> proposals [(P,4)] and their objectness [(P,)] per image."""
        boxes_out, scores_out = [], []
        for cand in self.candidates(out, image_sizes, pre_nms_top_n):
            keep = self.select(cand, nms_iou, post_nms_top_n)
            boxes_out.append(cand[0][keep])
            scores_out.append(cand[1][keep])
        return boxes_out, scores_out

    def forward(
        self,
        features: list[Tensor],
        image_sizes: list[tuple[int, int]],
        padded_hw: tuple[int, int],
        targets: list[dict[str, Tensor]] | None = None,
    ) -> tuple[list[Tensor], dict[str, Tensor]]:
        """Proposals [(P,4)] per image, and in training the losses objectness / rpn_box_reg."""
        cfg = self.cfg
        out = self.raw_outputs(features, padded_hw)
        training = self.training
        pre = cfg.rpn_pre_nms_top_n_train if training else cfg.rpn_pre_nms_top_n_test
        post = cfg.rpn_post_nms_top_n_train if training else cfg.rpn_post_nms_top_n_test
        proposals, _ = self.propose(out, image_sizes, pre, post, cfg.rpn_nms_iou)
        losses: dict[str, Tensor] = {}
        if training:
            if targets is None:
                raise ValueError("targets are needed in training mode")
            losses = self.losses(out, targets)
        return proposals, losses

    def losses(self, out: RPNOutput, targets: list[dict[str, Tensor]]) -> dict[str, Tensor]:
        """BCE over 256 sampled anchors per image, Smooth L1 (beta 1/9) over the sampled positives."""
        cfg = self.cfg
        anchors = torch.cat(out.anchors)
        labels, reg_targets = [], []
        for t in targets:
            gt = t["boxes"].to(anchors.dtype)
            matches = match(box_iou(gt, anchors), cfg.rpn_fg_iou, cfg.rpn_bg_iou, allow_low_quality=True)
            lab = (matches >= 0).to(anchors.dtype)
            lab[matches == BELOW_LOW] = 0.0
            lab[matches == BETWEEN] = -1.0
            matched = gt[matches.clamp(min=0)] if gt.numel() else torch.zeros_like(anchors)
            labels.append(lab)
            reg_targets.append(self.box_coder.encode(anchors, matched))
        pos, neg = [], []
        for lab, t in zip(labels, targets):
            gen = sample_generator(t, 0, lab.device)
            p, n = sample_balanced(lab, cfg.rpn_batch_per_image, cfg.rpn_positive_fraction, gen)
            pos.append(p)
            neg.append(n)
        num_images = len(labels)
        image_of = torch.arange(num_images, device=anchors.device).repeat_interleave(len(anchors))
        pos, neg = torch.cat(pos), torch.cat(neg)
        sampled = pos | neg
        labels_flat = torch.cat(labels)
        reg_flat = torch.cat(reg_targets)
        logits = out.logits.reshape(-1)
        deltas = out.deltas.reshape(-1, 4)
        box_items = F.smooth_l1_loss(deltas[pos], reg_flat[pos], beta=cfg.rpn_box_beta, reduction="none").sum(1)
        norm_mask = pos if cfg.rpn_box_loss_norm == "positives" else sampled
        norm = torch.bincount(image_of[norm_mask], minlength=num_images)
        box_loss = reduce_loss(box_items, image_of[pos], num_images, cfg.loss_reduction, norm)
        cls_items = F.binary_cross_entropy_with_logits(logits[sampled], labels_flat[sampled], reduction="none")
        cls_loss = reduce_loss(cls_items, image_of[sampled], num_images, cfg.loss_reduction)
        return {"loss_objectness": cls_loss, "loss_rpn_box_reg": box_loss}
