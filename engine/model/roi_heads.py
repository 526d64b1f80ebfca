"""RoI heads (seed section 6): box head, mask head, their training samples, losses and inference."""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torchvision.ops import batched_nms, box_iou, roi_align

from engine.fastpaths import use as use_fastpath
from engine.model.box_utils import BoxCoder, clip_boxes, nonsmall_mask
from engine.model.losses import image_index_of, reduce_loss
from engine.model.matching import BELOW_LOW, BETWEEN, match, sample_balanced, sample_generator
from engine.model.pooler import multiscale_roi_align


class BoxHead(nn.Module):
    """flatten(256x7x7) -> FC 1024 + ReLU -> FC 1024 + ReLU -> class logits (K) and deltas (4K)."""

    def __init__(self, in_features: int, representation: int, num_classes: int) -> None:
        super().__init__()
        self.fc6 = nn.Linear(in_features, representation)
        self.fc7 = nn.Linear(representation, representation)
        self.cls_score = nn.Linear(representation, num_classes)
        self.bbox_pred = nn.Linear(representation, num_classes * 4)
        nn.init.normal_(self.cls_score.weight, std=0.01)
        nn.init.normal_(self.bbox_pred.weight, std=0.001)
        for layer in (self.cls_score, self.bbox_pred):
            nn.init.zeros_(layer.bias)

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor]:
        """(N,C,7,7) -> logits (N,K), deltas (N,4K)."""
        x = F.relu(fast_linear(x.flatten(1), self.fc6), inplace=True)
        x = F.relu(fast_linear(x, self.fc7), inplace=True)
        return self.cls_score(x), self.bbox_pred(x)


_HAS_ONEDNN_LINEAR = torch.backends.mkldnn.is_available() and hasattr(torch._C._nn, "mkldnn_linear")  # private API
_ONEDNN_MIN_MACS = 50_000_000  # below this the conversions cost more than the GEMM saves


def fast_linear(x: Tensor, layer: nn.Linear) -> Tensor:
    """``layer(x)``; on the CPU without autograd, large products go through oneDNN's GEMM instead of BLAS when
    that was measured faster on this machine (``engine.fastpaths``, path ``onednn_linear``).

    The same product in another summation order (differences ~1e-6 relative). Measured on a 2-core AMD EPYC
    (AVX2 for MKL there), fc6 for 1000 RoIs (1000x12544 @ 12544x1024) took 180 ms with the conversions against
    430 ms through torch's MKL sgemm; on an Intel CPU, where MKL is fast, it can lose (docs/PERFORMANCE.md).
    Autograd, CUDA, half precision and builds without oneDNN take ``layer(x)``.
    """
    if (
        x.device.type != "cpu"
        or x.dtype != torch.float32
        or torch.is_grad_enabled()
        or x.dim() != 2
        or x.shape[0] * layer.in_features * layer.out_features < _ONEDNN_MIN_MACS
        or not _HAS_ONEDNN_LINEAR
        or not use_fastpath("onednn_linear")
    ):
        return layer(x)
    return onednn_linear(x, layer)


def onednn_linear(x: Tensor, layer: nn.Linear) -> Tensor:
    """``layer(x)`` for a 2-D float32 CPU ``x`` through oneDNN's matmul (no autograd), conversions included."""
    return _onednn_linear(x.contiguous().to_mkldnn(), layer.weight, layer.bias).to_dense()


def _onednn_linear(x: Tensor, weight: Tensor, bias: Tensor | None) -> Tensor:
    return torch._C._nn.mkldnn_linear(x, weight, bias)


class MaskHead(nn.Module):
    """4 x (Conv3x3 256 + ReLU) on 14x14 -> ConvTranspose 2x2/2 + ReLU -> Conv1x1 K: (N,K,28,28) logits."""

    def __init__(self, in_channels: int, channels: int, layers: int, num_classes: int) -> None:
        super().__init__()
        convs = []
        for i in range(layers):
            convs.append(nn.Conv2d(in_channels if i == 0 else channels, channels, 3, padding=1))
        self.convs = nn.ModuleList(convs)
        self.deconv = nn.ConvTranspose2d(channels, channels, 2, stride=2)
        self.logits = nn.Conv2d(channels, num_classes, 1)
        for m in self.modules():
            if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d)):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
                nn.init.zeros_(m.bias)

    def features(self, x: Tensor) -> Tensor:
        """(N,C,14,14) -> (N,channels,28,28) before the per-class 1x1 conv (channels-last on the CPU where that
        was measured faster: ``engine.fastpaths``, path ``mask_channels_last``)."""
        if x.device.type == "cpu" and use_fastpath("mask_channels_last"):
            x = x.contiguous(memory_format=torch.channels_last)
        for conv in self.convs:
            x = F.relu(conv(x), inplace=True)
        return F.relu(self.deconv(x), inplace=True)

    def forward(self, x: Tensor) -> Tensor:
        """(N,C,14,14) -> (N,K,28,28) logits."""
        return self.logits(self.features(x))

    def class_logits(self, x: Tensor, labels: Tensor) -> Tensor:
        """(N,C,14,14), labels (N,) -> (N,28,28) logits of each RoI's own class only (K times less work)."""
        feats = self.features(x)
        weight = self.logits.weight[labels, :, 0, 0]  # (N,channels)
        return torch.einsum("nchw,nc->nhw", feats, weight) + self.logits.bias[labels][:, None, None]


@dataclass
class BoxCandidates:
    """Per image: every (proposal, class) box with its score, before thresholding and NMS."""

    boxes: Tensor  # (P, K-1, 4) decoded and clipped, background dropped
    scores: Tensor  # (P, K-1) softmax scores


@dataclass
class Detections:
    boxes: Tensor  # (D,4) in the network's input pixels
    scores: Tensor  # (D,)
    labels: Tensor  # (D,) int64 in 1..K-1
    source: Tensor  # (D,) int64 flat index p * (K-1) + (label-1) into the candidates it came from


class RoIHeads(nn.Module):
    def __init__(self, cfg) -> None:  # noqa: ANN001 - ModelConfig
        super().__init__()
        self.cfg = cfg
        c = cfg.fpn_channels
        self.box_head = BoxHead(c * cfg.box_roi_size**2, cfg.representation_size, cfg.num_classes)
        self.mask_head = MaskHead(c, cfg.mask_head_channels, cfg.mask_head_layers, cfg.num_classes)
        self.box_coder = BoxCoder(cfg.box_weights)

    # ----- inference, in stages the Predictor can cache -----
    def box_outputs(self, features: list[Tensor], proposals: list[Tensor], image_sizes) -> tuple[Tensor, Tensor]:
        """P2..P5 features, proposals [(P_i,4)] -> class logits (sum P,K), deltas (sum P,4K)."""
        pooled = multiscale_roi_align(
            features, proposals, image_sizes, self.cfg.box_roi_size, self.cfg.roi_sampling_ratio
        )
        return self.box_head(pooled)

    def candidates(self, logits: Tensor, deltas: Tensor, proposals: list[Tensor], image_sizes) -> list[BoxCandidates]:
        """Decode per class, clip, softmax; one BoxCandidates per image."""
        boxes = self.box_coder.decode(deltas, torch.cat(proposals))
        scores = F.softmax(logits, -1)
        counts = [len(p) for p in proposals]
        out = []
        for b, s, (h, w) in zip(boxes.split(counts), scores.split(counts), image_sizes):
            out.append(BoxCandidates(clip_boxes(b, h, w)[:, 1:], s[:, 1:]))
        return out

    def select(self, cand: BoxCandidates, score_threshold: float, nms_iou: float, max_detections: int) -> Detections:
        """score > threshold, drop tiny boxes, NMS per class, keep the best max_detections."""
        num_fg = cand.scores.shape[1]
        scores = cand.scores.reshape(-1)
        idx = torch.where(scores > score_threshold)[0]
        boxes = cand.boxes.reshape(-1, 4)[idx]
        scores = scores[idx]
        keep = nonsmall_mask(boxes, self.cfg.box_min_size)
        idx, boxes, scores = idx[keep], boxes[keep], scores[keep]
        labels = idx % num_fg + 1
        keep = batched_nms(boxes, scores, labels, nms_iou)[:max_detections]
        return Detections(boxes[keep], scores[keep], labels[keep], idx[keep])

    def mask_probs(
        self, features: list[Tensor], boxes: list[Tensor], labels: list[Tensor], image_sizes
    ) -> list[Tensor]:
        """Boxes [(D_i,4)] with labels -> [(D_i,28,28)] mask probabilities of each box's class."""
        counts = [len(b) for b in boxes]
        if sum(counts) == 0:
            m = 2 * self.cfg.mask_roi_size
            return [boxes[0].new_zeros((n, m, m)) for n in counts]
        pooled = multiscale_roi_align(features, boxes, image_sizes, self.cfg.mask_roi_size, self.cfg.roi_sampling_ratio)
        probs = torch.sigmoid(self.mask_head.class_logits(pooled, torch.cat(labels)))
        return list(probs.split(counts))

    # ----- training -----
    def sample_training_rois(self, proposals: list[Tensor], targets: list[dict[str, Tensor]]):
        """Proposals + GT boxes, matched at IoU 0.5, 512 per image with <= 25% positive."""
        cfg = self.cfg
        rois, labels, matched_idx, reg_targets = [], [], [], []
        for props, t in zip(proposals, targets):
            gt = t["boxes"].to(props.dtype)
            props = torch.cat((props, gt))
            if gt.numel() == 0:
                m = torch.full((len(props),), BELOW_LOW, dtype=torch.int64, device=props.device)
            else:
                m = match(box_iou(gt, props), cfg.box_fg_iou, cfg.box_bg_iou, allow_low_quality=False)
            clamped = m.clamp(min=0)
            lab = t["labels"][clamped].to(torch.int64) if gt.numel() else torch.zeros_like(m)
            lab[m == BELOW_LOW] = 0
            lab[m == BETWEEN] = -1
            rois.append(props)
            labels.append(lab)
            matched_idx.append(clamped)
        for i, lab in enumerate(labels):
            gen = sample_generator(targets[i], 1, lab.device)
            pos, neg = sample_balanced(lab, cfg.box_batch_per_image, cfg.box_positive_fraction, gen)
            keep = torch.where(pos | neg)[0]
            gt = targets[i]["boxes"].to(rois[i].dtype)
            gt = gt if gt.numel() else gt.new_zeros((1, 4))
            rois[i], labels[i], matched_idx[i] = rois[i][keep], lab[keep], matched_idx[i][keep]
            reg_targets.append(self.box_coder.encode(rois[i], gt[matched_idx[i]]))
        return rois, labels, matched_idx, reg_targets

    def box_losses(
        self, logits: Tensor, deltas: Tensor, labels: list[Tensor], reg_targets: Tensor
    ) -> dict[str, Tensor]:
        """Cross-entropy over the sample; Smooth L1 on the GT class's deltas of positives / sample size."""
        mode, num_images = self.cfg.loss_reduction, len(labels)
        image_of = image_index_of([len(lab) for lab in labels], logits.device)
        labels = torch.cat(labels)
        cls_loss = reduce_loss(F.cross_entropy(logits, labels, reduction="none"), image_of, num_images, mode)
        pos = torch.where(labels > 0)[0]
        per_class = deltas.reshape(len(deltas), -1, 4)
        box_items = F.smooth_l1_loss(
            per_class[pos, labels[pos]], reg_targets[pos], beta=self.cfg.box_beta, reduction="none"
        ).sum(1)
        sampled = torch.bincount(image_of, minlength=num_images)
        box_loss = reduce_loss(box_items, image_of[pos], num_images, mode, sampled)
        return {"loss_classifier": cls_loss, "loss_box_reg": box_loss}

    def mask_loss(self, features, rois, labels, matched_idx, targets, image_sizes) -> Tensor:
        """Per-pixel BCE on the GT class channel against the GT mask RoI-aligned to 28x28, positives only."""
        pos_rois, pos_labels, mask_targets = [], [], []
        m = 2 * self.cfg.mask_roi_size
        for r, lab, idx, t in zip(rois, labels, matched_idx, targets):
            pos = torch.where(lab > 0)[0]
            pos_rois.append(r[pos])
            pos_labels.append(lab[pos])
            if pos.numel():
                mask_targets.append(project_masks(t["masks"], r[pos], idx[pos], m))
        if not mask_targets:
            return sum(p.sum() for p in self.mask_head.parameters()) * 0.0
        pooled = multiscale_roi_align(
            features, pos_rois, image_sizes, self.cfg.mask_roi_size, self.cfg.roi_sampling_ratio
        )
        logits = self.mask_head.class_logits(pooled, torch.cat(pos_labels))
        per_roi = F.binary_cross_entropy_with_logits(logits, torch.cat(mask_targets), reduction="none").mean((1, 2))
        image_of = image_index_of([len(p) for p in pos_rois], logits.device)
        return reduce_loss(per_roi, image_of, len(rois), self.cfg.loss_reduction)

    def forward(self, features, proposals, image_sizes, targets=None):
        """Training: dict of loss_classifier, loss_box_reg, loss_mask. Eval: list of Detections with masks."""
        if self.training:
            rois, labels, matched_idx, reg_targets = self.sample_training_rois(proposals, targets)
            logits, deltas = self.box_outputs(features, rois, image_sizes)
            losses = self.box_losses(logits, deltas, labels, torch.cat(reg_targets))
            losses["loss_mask"] = self.mask_loss(features, rois, labels, matched_idx, targets, image_sizes)
            return losses
        cfg = self.cfg
        logits, deltas = self.box_outputs(features, proposals, image_sizes)
        dets = [
            self.select(c, cfg.box_score_threshold, cfg.box_nms_iou, cfg.detections_per_image)
            for c in self.candidates(logits, deltas, proposals, image_sizes)
        ]
        masks = self.mask_probs(features, [d.boxes for d in dets], [d.labels for d in dets], image_sizes)
        return dets, masks


def project_masks(gt_masks: Tensor, boxes: Tensor, matched_idx: Tensor, size: int) -> Tensor:
    """GT masks (G,H,W), RoIs (N,4) matched to GT matched_idx (N,) -> (N,size,size) targets in [0,1]:
    each RoI's GT mask RoI-aligned (bilinear) onto the RoI box."""
    used, local = torch.unique(matched_idx, return_inverse=True)  # convert only the masks RoIs point at
    rois = torch.cat((local[:, None].to(boxes.dtype), boxes), dim=1)
    return roi_align(gt_masks[used][:, None].to(boxes.dtype), rois, (size, size), 1.0)[:, 0]
