"""Staged inference with a cache: the engine side of the app's live sliders.

Per image the Predictor keeps the FPN features, the RPN head outputs, the box head outputs for the
current proposals and the mask probabilities of every detection it has seen. A change of

- score threshold, box NMS IoU or maximum detections re-runs only the selection (threshold + NMS);
  masks come from the cache, and only detections never seen before go through the mask head;
- mask threshold re-thresholds the cached 28x28 probabilities;
- RPN NMS IoU or the number of proposals kept re-runs the RPN's NMS over its cached candidates; the box
  head runs only on candidates it has not seen yet (its outputs are kept per candidate);
- a new image or new weights run the backbone.

``stage_runs`` counts how often each stage ran, so tests can assert that the backbone ran once.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable
from dataclasses import replace

import numpy as np
import torch

from engine.model.box_utils import scale_boxes
from engine.model.mask_rcnn import MaskRCNN
from engine.model.paste import expand_boxes_to_int, interpolation_matrix
from engine.structures import InstanceMask, Prediction, PredictSettings


class Predictor:
    """``Predictor(model).predict(image, settings)``; call again with new settings to re-use the caches."""

    def __init__(self, model: MaskRCNN, device: str | torch.device = "cpu") -> None:
        self.device = torch.device(device)
        self.model = model.to(self.device).eval()
        self.stage_runs: Counter[str] = Counter()
        self._image_key: object = None
        self._clear_image()

    # ----- cache management -----
    def _clear_image(self) -> None:
        self._batch = None
        self._roi_levels = None
        self._rpn_candidates = None  # (boxes, prob, level) of the pre-NMS RPN candidates
        self._box_logits = None  # box head outputs per RPN candidate, filled on demand
        self._box_deltas = None
        self._box_done = None
        self._proposal_key: tuple | None = None
        self._keep = None  # indices of the current proposals among the candidates
        self._candidates = None
        self._mask_probs: dict[int, torch.Tensor] = {}
        self._crops: dict[tuple[int, float], InstanceMask] = {}

    def set_model(self, model: MaskRCNN) -> None:
        """New weights: everything cached is stale."""
        self.model = model.to(self.device).eval()
        self._image_key = None
        self._clear_image()

    # ----- stages -----
    @torch.no_grad()
    def _run_backbone(self, image: torch.Tensor, cancel: Callable[[], bool] | None) -> None:
        self.stage_runs["backbone"] += 1
        batch, _ = self.model.preprocess([image.to(self.device)])
        features = self.model.features(batch)
        _check(cancel)
        roi_levels = self.model.roi_levels(features)
        rpn_out = self.model.rpn.raw_outputs(list(features.values()), batch.padded_hw)
        self.stage_runs["rpn_head"] += 1
        cfg = self.model.config
        self._rpn_candidates = self.model.rpn.candidates(rpn_out, batch.image_sizes, cfg.rpn_pre_nms_top_n_test)[0]
        self._batch, self._roi_levels = batch, roi_levels
        n = len(self._rpn_candidates[0])
        self._box_logits = torch.zeros((n, cfg.num_classes), device=self.device)
        self._box_deltas = torch.zeros((n, 4 * cfg.num_classes), device=self.device)
        self._box_done = torch.zeros(n, dtype=torch.bool, device=self.device)

    @torch.no_grad()
    def _run_proposals(self, rpn_nms_iou: float, num_proposals: int) -> None:
        """NMS over the cached RPN candidates; the box head runs only on candidates it has not seen."""
        self.stage_runs["rpn_post"] += 1
        keep = self.model.rpn.select(self._rpn_candidates, rpn_nms_iou, num_proposals)
        missing = keep[~self._box_done[keep]]
        if len(missing):
            self.stage_runs["box_head"] += 1
            boxes = [self._rpn_candidates[0][missing]]
            logits, deltas = self.model.roi_heads.box_outputs(self._roi_levels, boxes, self._batch.image_sizes)
            self._box_logits[missing], self._box_deltas[missing] = logits, deltas
            self._box_done[missing] = True
        proposals = [self._rpn_candidates[0][keep]]
        self._candidates = self.model.roi_heads.candidates(
            self._box_logits[keep], self._box_deltas[keep], proposals, self._batch.image_sizes
        )[0]
        self._keep = keep
        self._proposal_key = (rpn_nms_iou, num_proposals)

    @torch.no_grad()
    def _masks_for(self, dets) -> list[torch.Tensor]:  # noqa: ANN001 - roi_heads.Detections
        keys = dets.source.tolist()
        missing = [i for i, k in enumerate(keys) if k not in self._mask_probs]
        if missing:
            self.stage_runs["mask_head"] += 1
            idx = torch.tensor(missing, device=dets.boxes.device)
            probs = self.model.roi_heads.mask_probs(
                self._roi_levels, [dets.boxes[idx]], [dets.labels[idx]], self._batch.image_sizes
            )[0]
            for i, p in zip(missing, probs):
                self._mask_probs[keys[i]] = p
        return [self._mask_probs[k] for k in keys]

    # ----- public -----
    def set_image(
        self, image: np.ndarray | torch.Tensor, key: object = None, cancel: Callable[[], bool] | None = None
    ) -> bool:
        """Run the backbone on ``image`` ((H,W,3) uint8 or (3,H,W) float in [0,1]) unless ``key`` is cached.

        Returns True when the backbone ran. ``cancel()`` is asked between stages; True raises Cancelled.
        """
        if key is not None and key == self._image_key:
            return False
        self._clear_image()
        self._image_key = None
        self._run_backbone(to_tensor(image), cancel)
        self._image_key = key if key is not None else object()
        return True

    def predict(
        self,
        image: np.ndarray | torch.Tensor | None = None,
        settings: PredictSettings | None = None,
        key: object = None,
        cancel: Callable[[], bool] | None = None,
    ) -> Prediction:
        """Detections for ``image`` (or the current one when None) under ``settings``; re-uses caches.

        ``cancel()`` is asked between stages (a stale request can stop early); True raises Cancelled.
        ``timings_ms`` lists only the stages that ran.
        """
        start = time.perf_counter()
        timings: dict[str, float] = {}
        if image is not None and self.set_image(image, key, cancel):
            timings["backbone"] = 1000 * (time.perf_counter() - start)
        if self._batch is None:
            raise RuntimeError("no image: call predict(image) or set_image(image) first")
        settings = self.resolve(settings or PredictSettings())
        if self._proposal_key != (settings.rpn_nms_iou, settings.num_proposals):
            _check(cancel)
            t = time.perf_counter()
            self._run_proposals(settings.rpn_nms_iou, settings.num_proposals)
            timings["proposals+box_head"] = 1000 * (time.perf_counter() - t)
        _check(cancel)
        t = time.perf_counter()
        pred = self._select(settings)
        timings["select+masks"] = 1000 * (time.perf_counter() - t)
        timings["total"] = 1000 * (time.perf_counter() - start)
        pred.timings_ms = timings
        return pred

    @torch.no_grad()
    def mask_from_box(self, box: tuple[float, float, float, float], label: int, threshold: float = 0.5) -> InstanceMask:
        """The mask head's mask for a box the user drew (x1,y1,x2,y2 in image pixels) and class ``label``.

        The box goes to the mask head as a proposal on the current image's cached features.
        """
        if self._batch is None:
            raise RuntimeError("no image: call predict(image) or set_image(image) first")
        if not 1 <= label < self.model.config.num_classes:
            raise ValueError(f"label {label} is not a class of this model (1..{self.model.config.num_classes - 1})")
        size, original = self._batch.image_sizes[0], self._batch.original_sizes[0]
        boxes = torch.tensor([box], dtype=torch.float32, device=self.device)
        net_boxes = scale_boxes(boxes, original, size)
        labels = torch.tensor([label], device=self.device)
        self.stage_runs["mask_head"] += 1
        probs = self.model.roi_heads.mask_probs(self._roi_levels, [net_boxes], [labels], self._batch.image_sizes)[0]
        return paste_crops(probs, boxes, original[0], original[1], threshold)[0]

    def resolve(self, settings: PredictSettings) -> PredictSettings:
        """Fill the ``None`` fields from the model's configuration."""
        cfg = self.model.config
        return replace(
            settings,
            box_nms_iou=cfg.box_nms_iou if settings.box_nms_iou is None else settings.box_nms_iou,
            rpn_nms_iou=cfg.rpn_nms_iou if settings.rpn_nms_iou is None else settings.rpn_nms_iou,
            num_proposals=cfg.rpn_post_nms_top_n_test if settings.num_proposals is None else settings.num_proposals,
            max_detections=cfg.detections_per_image if settings.max_detections is None else settings.max_detections,
        )

    @torch.no_grad()
    def _select(self, settings: PredictSettings) -> Prediction:
        self.stage_runs["select"] += 1
        batch = self._batch
        size, original = batch.image_sizes[0], batch.original_sizes[0]
        dets = self.model.roi_heads.select(
            self._candidates, settings.score_threshold, settings.box_nms_iou, settings.max_detections
        )
        num_fg = self.model.config.num_classes - 1
        # a detection's key: (RPN candidate, class), stable across RPN-NMS changes, so caches survive them
        dets.source = self._keep[dets.source // num_fg] * num_fg + dets.source % num_fg
        probs = self._masks_for(dets)
        boxes = scale_boxes(dets.boxes, size, original)
        masks = self._crops_for(dets.source.tolist(), probs, boxes, original, settings.mask_threshold)
        proposals = scale_boxes(self._rpn_candidates[0][self._keep], size, original)
        return Prediction(
            height=original[0],
            width=original[1],
            boxes=boxes.cpu().numpy().astype(np.float32),
            scores=dets.scores.cpu().numpy().astype(np.float32),
            labels=dets.labels.cpu().numpy(),
            masks=masks,
            proposals=proposals.cpu().numpy().astype(np.float32),
            proposal_scores=self._rpn_candidates[1][self._keep].cpu().numpy().astype(np.float32),
            keys=dets.source.cpu().numpy(),
            settings=settings,
        )

    def _crops_for(self, keys, probs, boxes, original, threshold) -> list[InstanceMask]:  # noqa: ANN001
        out: list[InstanceMask | None] = [self._crops.get((k, threshold)) for k in keys]
        todo = [i for i, c in enumerate(out) if c is None]
        if todo:
            stacked = torch.stack([probs[i] for i in todo])
            for i, crop in zip(todo, paste_crops(stacked, boxes[todo], original[0], original[1], threshold)):
                self._crops[(keys[i], threshold)] = crop
                out[i] = crop
        return out  # type: ignore[return-value]


class Cancelled(Exception):
    """The caller's cancel() said stop between two stages; the caches stay consistent."""


def _check(cancel: Callable[[], bool] | None) -> None:
    if cancel is not None and cancel():
        raise Cancelled


def paste_crops(
    probs: torch.Tensor, boxes: torch.Tensor, height: int, width: int, threshold: float
) -> list[InstanceMask]:
    """(N,M,M) probabilities, (N,4) boxes -> per-instance crops of ``paste_masks(...) > threshold``.

    The same resampling as the model's full-image paste, computed inside each box only.
    """
    m = probs.shape[-1]
    padded = torch.nn.functional.pad(probs.float(), (1, 1, 1, 1))
    ibox = expand_boxes_to_int(boxes.float(), float(m + 2) / m)
    x0 = ibox[:, 0].clamp(min=0, max=width)
    y0 = ibox[:, 1].clamp(min=0, max=height)
    x1 = (ibox[:, 2] + 1).clamp(min=0, max=width)
    y1 = (ibox[:, 3] + 1).clamp(min=0, max=height)
    crops = []
    for i in range(len(probs)):  # small matrices per instance: the crop, not the whole image
        xa, ya, xb, yb = int(x0[i]), int(y0[i]), int(x1[i]), int(y1[i])
        if xb <= xa or yb <= ya:
            crops.append(InstanceMask(xa, ya, np.zeros((0, 0), dtype=bool)))
            continue
        rx = interpolation_matrix(ibox[i : i + 1, 0], ibox[i : i + 1, 2], m + 2, xb)[0, xa:]
        ry = interpolation_matrix(ibox[i : i + 1, 1], ibox[i : i + 1, 3], m + 2, yb)[0, ya:]
        crop = ry @ padded[i] @ rx.T
        crops.append(InstanceMask(xa, ya, (crop > threshold).cpu().numpy()))
    return crops


def to_tensor(image: np.ndarray | torch.Tensor) -> torch.Tensor:
    """(H,W,3) uint8 / (H,W) gray / (3,H,W) float -> (3,H,W) float32 in [0,1]."""
    if isinstance(image, torch.Tensor):
        if image.dim() != 3 or image.shape[0] != 3:
            raise ValueError(f"expected a (3,H,W) tensor, got {tuple(image.shape)}")
        return image.float()
    array = np.asarray(image)
    if array.ndim == 2:
        array = np.repeat(array[:, :, None], 3, axis=2)
    if array.ndim != 3 or array.shape[2] not in (3, 4):
        raise ValueError(f"expected an (H,W,3) image, got shape {array.shape}")
    array = array[:, :, :3]
    scale = 255.0 if array.dtype == np.uint8 else 1.0
    return torch.from_numpy(np.ascontiguousarray(array)).permute(2, 0, 1).float() / scale
