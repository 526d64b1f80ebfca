"""Staged inference with a cache: the engine side of the app's live sliders.

An image is predicted in tiles (engine.tiling): one tile for a ``short-side`` model or an image that fits one
tile at the model's ``pixel-scale``, overlapping tiles for a larger one (the seam rule, the merge and what each
slider move re-runs across tiles are in engine.tiling's docstring). Per tile the Predictor keeps the RPN
candidates, the box head outputs of the candidates it has seen and the mask probabilities of every detection it
has seen; the FPN features are kept within ``feature_budget`` bytes (always for a single-tile image). A change of

- score threshold, box NMS IoU or maximum detections re-runs only the selection (threshold + NMS, then the seam
  rule); masks come from the cache, and only detections never seen before go through the mask head;
- mask threshold re-thresholds the cached 28x28 probabilities;
- RPN NMS IoU or the number of proposals kept re-runs the RPN's NMS over its cached candidates; the box
  head runs only on candidates it has not seen yet (its outputs are kept per candidate);
- a new image or new weights run the backbone.

A tile whose features were dropped re-runs its backbone when a change needs the box or mask head there.
``stage_runs`` counts how often each stage ran (per tile), so tests can assert that the backbone ran once.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable
from dataclasses import replace

import numpy as np
import torch

from engine import tiling
from engine.model.box_utils import scale_boxes
from engine.model.mask_rcnn import MaskRCNN
from engine.model.paste import expand_boxes_to_int, interpolation_matrix
from engine.structures import InstanceMask, Prediction, PredictSettings

TILE_KEY_SHIFT = 32  # a detection's key: tile index << 32 | (RPN candidate * classes + class) within the tile
MASK_CHUNK = 128  # detections per mask-head call (the head's 28x28x256 activations: ~100 MB per 128)


class _TileState:
    """One tile's staged cache (network pixels inside; ``offset`` and the two sizes map back to the image)."""

    def __init__(self, tile: tiling.Tile) -> None:
        self.tile = tile
        self.size: tuple[int, int] | None = None  # the tile at the network's scale, before padding
        self.original = (tile.height, tile.width)
        self.roi_levels: list[torch.Tensor] | None = None  # P2..P5, dropped beyond the feature budget
        self.rpn_candidates = None  # (boxes, prob, level) of the pre-NMS RPN candidates
        self.box_logits = None  # box head outputs per RPN candidate, filled on demand
        self.box_deltas = None
        self.box_done = None
        self.proposal_key: tuple | None = None
        self.keep = None  # indices of the current proposals among the candidates
        self.candidates = None
        self.mask_probs: dict[int, torch.Tensor] = {}

    @property
    def image_sizes(self) -> list[tuple[int, int]]:
        return [self.size]

    def feature_bytes(self) -> int:
        return sum(t.numel() * t.element_size() for t in self.roi_levels or [])

    def to_image(self, boxes: torch.Tensor) -> torch.Tensor:
        """(N,4) network pixels of this tile -> image pixels."""
        out = scale_boxes(boxes, self.size, self.original)
        return out + torch.tensor([self.tile.x0, self.tile.y0] * 2, dtype=out.dtype, device=out.device)

    def to_network(self, boxes: torch.Tensor) -> torch.Tensor:
        """(N,4) image pixels -> network pixels of this tile."""
        shift = torch.tensor([self.tile.x0, self.tile.y0] * 2, dtype=boxes.dtype, device=boxes.device)
        return scale_boxes(boxes - shift, self.original, self.size)


class Predictor:
    """``Predictor(model).predict(image, settings)``; call again with new settings to re-use the caches.

    ``feature_budget``: bytes of FPN features kept across tiles of a multi-tile image (least recently used
    dropped first; 0 keeps none: the command line's choice, whose memory then stays at one tile's).
    """

    def __init__(
        self, model: MaskRCNN, device: str | torch.device = "cpu", feature_budget: int = 512 * 1024**2
    ) -> None:
        self.device = torch.device(device)
        self.model = model.to(self.device).eval()
        self.feature_budget = feature_budget
        self.stage_runs: Counter[str] = Counter()
        self._image_key: object = None
        self._clear_image()

    # ----- cache management -----
    def _clear_image(self) -> None:
        self._image = None  # the caller's array or tensor, cropped per tile on demand
        self._hw: tuple[int, int] | None = None
        self._tiles: list[_TileState] = []
        self._featured: list[int] = []  # tiles holding features, least recently used first
        self._crops: dict[tuple[int, float], InstanceMask] = {}
        self._timings: dict[str, float] = {}

    def set_model(self, model: MaskRCNN) -> None:
        """New weights: everything cached is stale."""
        self.model = model.to(self.device).eval()
        self._image_key = None
        self._clear_image()

    @property
    def tiles(self) -> list[tiling.Tile]:
        """The current image's tiles (one when it is not tiled)."""
        return [t.tile for t in self._tiles]

    def _add_time(self, stage: str, start: float) -> None:
        self._timings[stage] = self._timings.get(stage, 0.0) + 1000 * (time.perf_counter() - start)

    # ----- stages, per tile -----
    @torch.no_grad()
    def _ensure_features(self, ts: _TileState, cancel: Callable[[], bool] | None) -> None:
        """Run the backbone (and the first time the RPN head) of a tile whose features are not kept."""
        if ts.roi_levels is not None:
            self._featured.remove(ts.tile.index)
            self._featured.append(ts.tile.index)
            return
        start = time.perf_counter()
        self.stage_runs["backbone"] += 1
        tile = ts.tile
        batch, _ = self.model.preprocess([crop_tensor(self._image, tile).to(self.device)])
        features = self.model.features(batch)
        _check(cancel)
        roi_levels = self.model.roi_levels(features)
        if ts.rpn_candidates is None:
            rpn_out = self.model.rpn.raw_outputs(list(features.values()), batch.padded_hw)
            self.stage_runs["rpn_head"] += 1
            cfg = self.model.config
            candidates = self.model.rpn.candidates(rpn_out, batch.image_sizes, cfg.rpn_pre_nms_top_n_test)[0]
            n = len(candidates[0])
            ts.box_logits = torch.zeros((n, cfg.num_classes), device=self.device)
            ts.box_deltas = torch.zeros((n, 4 * cfg.num_classes), device=self.device)
            ts.box_done = torch.zeros(n, dtype=torch.bool, device=self.device)
            ts.rpn_candidates = candidates
            ts.size = batch.image_sizes[0]
        ts.roi_levels = roi_levels
        self._featured.append(tile.index)
        self._add_time("backbone", start)

    def _release_features(self) -> None:
        """Drop the least recently used tiles' features beyond the budget (a single-tile image keeps its own)."""
        if len(self._tiles) <= 1:
            return
        total = sum(self._tiles[i].feature_bytes() for i in self._featured)
        while self._featured and total > self.feature_budget:
            ts = self._tiles[self._featured.pop(0)]
            total -= ts.feature_bytes()
            ts.roi_levels = None

    @torch.no_grad()
    def _run_proposals(self, ts: _TileState, rpn_nms_iou: float, num_proposals: int, cancel) -> None:  # noqa: ANN001
        """NMS over the cached RPN candidates; the box head runs only on candidates it has not seen."""
        start = time.perf_counter()
        self.stage_runs["rpn_post"] += 1
        keep = self.model.rpn.select(ts.rpn_candidates, rpn_nms_iou, num_proposals)
        missing = keep[~ts.box_done[keep]]
        if len(missing):
            self._ensure_features(ts, cancel)
            self.stage_runs["box_head"] += 1
            boxes = [ts.rpn_candidates[0][missing]]
            logits, deltas = self.model.roi_heads.box_outputs(ts.roi_levels, boxes, ts.image_sizes)
            ts.box_logits[missing], ts.box_deltas[missing] = logits, deltas
            ts.box_done[missing] = True
        proposals = [ts.rpn_candidates[0][keep]]
        ts.candidates = self.model.roi_heads.candidates(
            ts.box_logits[keep], ts.box_deltas[keep], proposals, ts.image_sizes
        )[0]
        ts.keep = keep
        ts.proposal_key = (rpn_nms_iou, num_proposals)
        self._add_time("proposals+box_head", start)

    @torch.no_grad()
    def _masks_for(self, ts: _TileState, keys: list[int], boxes, labels, cancel) -> list[torch.Tensor]:  # noqa: ANN001
        """Mask probabilities of a tile's detections (network boxes and labels), from the cache where seen."""
        missing = [i for i, k in enumerate(keys) if k not in ts.mask_probs]
        if missing:
            self._ensure_features(ts, cancel)
            self.stage_runs["mask_head"] += 1
            for s in range(0, len(missing), MASK_CHUNK):
                idx = torch.tensor(missing[s : s + MASK_CHUNK], device=boxes.device)
                probs = self.model.roi_heads.mask_probs(ts.roi_levels, [boxes[idx]], [labels[idx]], ts.image_sizes)[0]
                for i, p in zip(idx.tolist(), probs):
                    ts.mask_probs[keys[i]] = p
        return [ts.mask_probs[k] for k in keys]

    @torch.no_grad()
    def _select_tile(self, ts: _TileState, settings: PredictSettings, cancel) -> dict:  # noqa: ANN001
        """One tile's detections under ``settings`` in image pixels, after the seam rule, with mask probabilities."""
        start = time.perf_counter()
        self.stage_runs["select"] += 1
        dets = self.model.roi_heads.select(
            ts.candidates, settings.score_threshold, settings.box_nms_iou, settings.max_detections
        )
        num_fg = self.model.config.num_classes - 1
        # a detection's key: (RPN candidate, class), stable across RPN-NMS changes, so caches survive them
        local = ts.keep[dets.source // num_fg] * num_fg + dets.source % num_fg
        boxes = ts.to_image(dets.boxes)
        proposals = ts.to_image(ts.rpn_candidates[0][ts.keep])
        proposal_scores = ts.rpn_candidates[1][ts.keep]
        at_seam = torch.zeros(len(boxes), dtype=torch.bool, device=boxes.device)
        if len(self._tiles) > 1:
            factor = ts.size[0] / max(1, ts.original[0])
            mine = tiling.owned(boxes, ts.tile, tiling.EDGE_MARGIN / factor)
            boxes, local = boxes[mine], local[mine]
            dets.boxes, dets.scores, dets.labels = dets.boxes[mine], dets.scores[mine], dets.labels[mine]
            at_seam = tiling.crosses_core_edge(boxes, ts.tile)
            inside = tiling.owned(proposals, ts.tile, -float("inf"))
            proposals, proposal_scores = proposals[inside], proposal_scores[inside]
        probs = self._masks_for(ts, local.tolist(), dets.boxes, dets.labels, cancel)
        self._add_time("select+masks", start)
        return {
            "boxes": boxes,
            "scores": dets.scores,
            "labels": dets.labels,
            "keys": local + (ts.tile.index << TILE_KEY_SHIFT),
            "probs": probs,
            "at_seam": at_seam,
            "proposals": proposals,
            "proposal_scores": proposal_scores,
        }

    # ----- public -----
    def set_image(
        self, image: np.ndarray | torch.Tensor, key: object = None, cancel: Callable[[], bool] | None = None
    ) -> bool:
        """Take ``image`` ((H,W,3) uint8 or (3,H,W) float in [0,1]) unless ``key`` is cached, and run the backbone
        when the image is one tile (a tiled image runs its tiles in ``predict``).

        Returns True when the image is new. ``cancel()`` is asked between stages; True raises Cancelled.
        """
        if key is not None and key == self._image_key:
            return False
        self._clear_image()
        self._image_key = None
        height, width = image_hw(image)
        self._image, self._hw = image, (height, width)
        self._tiles = [_TileState(t) for t in tiling.grid_for(height, width, self.model.config)]
        if len(self._tiles) == 1:
            self._ensure_features(self._tiles[0], cancel)
        self._image_key = key if key is not None else object()
        return True

    def predict(
        self,
        image: np.ndarray | torch.Tensor | None = None,
        settings: PredictSettings | None = None,
        key: object = None,
        cancel: Callable[[], bool] | None = None,
        progress: Callable[[int, int], None] | None = None,
    ) -> Prediction:
        """Detections for ``image`` (or the current one when None) under ``settings``; re-uses caches.

        ``cancel()`` is asked between stages and tiles (a stale request can stop early; the tiles done stay
        cached); True raises Cancelled. ``progress(done, total)`` is called after each tile.
        ``timings_ms`` lists only the stages that ran (summed over tiles).
        """
        start = time.perf_counter()
        self._timings = {}
        if image is not None:
            self.set_image(image, key, cancel)
        if not self._tiles:
            raise RuntimeError("no image: call predict(image) or set_image(image) first")
        settings = self.resolve(settings or PredictSettings())
        parts = []
        for done, ts in enumerate(self._tiles, start=1):
            _check(cancel)
            if ts.rpn_candidates is None:
                self._ensure_features(ts, cancel)
                _check(cancel)
            if ts.proposal_key != (settings.rpn_nms_iou, settings.num_proposals):
                self._run_proposals(ts, settings.rpn_nms_iou, settings.num_proposals, cancel)
                _check(cancel)
            parts.append(self._select_tile(ts, settings, cancel))
            self._release_features()
            if progress is not None:
                progress(done, len(self._tiles))
        t = time.perf_counter()
        pred = self._merge(parts, settings)
        self._add_time("select+masks", t)
        timings = dict(self._timings)
        timings["total"] = 1000 * (time.perf_counter() - start)
        pred.timings_ms = timings
        return pred

    def _merge(self, parts: list[dict], settings: PredictSettings) -> Prediction:
        """The tiles' detections as one Prediction: cross-seam duplicates removed, best score first."""
        height, width = self._hw

        def cat(name: str) -> torch.Tensor:
            return torch.cat([p[name] for p in parts])

        boxes, scores, labels, keys = cat("boxes"), cat("scores"), cat("labels"), cat("keys")
        probs = [q for p in parts for q in p["probs"]]
        if len(parts) > 1:
            keep = tiling.seam_nms(boxes, scores, labels, cat("at_seam"), settings.box_nms_iou)
            order = torch.argsort(torch.where(keep, scores, -1.0), descending=True, stable=True)
            order = order[: int(keep.sum())]
            boxes, scores, labels, keys = boxes[order], scores[order], labels[order], keys[order]
            probs = [probs[i] for i in order.tolist()]
        masks = self._crops_for(keys.tolist(), probs, boxes, (height, width), settings.mask_threshold)
        return Prediction(
            height=height,
            width=width,
            boxes=boxes.cpu().numpy().astype(np.float32),
            scores=scores.cpu().numpy().astype(np.float32),
            labels=labels.cpu().numpy(),
            masks=masks,
            proposals=cat("proposals").cpu().numpy().astype(np.float32),
            proposal_scores=cat("proposal_scores").cpu().numpy().astype(np.float32),
            keys=keys.cpu().numpy(),
            settings=settings,
        )

    @torch.no_grad()
    def mask_from_box(self, box: tuple[float, float, float, float], label: int, threshold: float = 0.5) -> InstanceMask:
        """The mask head's mask for a box the user drew (x1,y1,x2,y2 in image pixels) and class ``label``.

        The box goes to the mask head as a proposal on the features of the tile that holds it best.
        """
        if not self._tiles:
            raise RuntimeError("no image: call predict(image) or set_image(image) first")
        if not 1 <= label < self.model.config.num_classes:
            raise ValueError(f"label {label} is not a class of this model (1..{self.model.config.num_classes - 1})")
        boxes = torch.tensor([box], dtype=torch.float32, device=self.device)
        ts = self._tiles[_best_tile(self.tiles, box)]
        self._ensure_features(ts, None)
        net_boxes = ts.to_network(boxes)
        labels = torch.tensor([label], device=self.device)
        self.stage_runs["mask_head"] += 1
        probs = self.model.roi_heads.mask_probs(ts.roi_levels, [net_boxes], [labels], ts.image_sizes)[0]
        self._release_features()
        return paste_crops(probs, boxes, self._hw[0], self._hw[1], threshold)[0]

    def model_settings(self) -> PredictSettings:
        """The model's own settings (its score and mask thresholds): what ``model(images)`` returns."""
        cfg = self.model.config
        return self.resolve(PredictSettings(score_threshold=cfg.box_score_threshold, mask_threshold=cfg.mask_threshold))

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

    def _crops_for(self, keys, probs, boxes, original, threshold) -> list[InstanceMask]:  # noqa: ANN001
        out: list[InstanceMask | None] = [self._crops.get((k, threshold)) for k in keys]
        todo = [i for i, c in enumerate(out) if c is None]
        if todo:
            stacked = torch.stack([probs[i] for i in todo])
            for i, crop in zip(todo, paste_crops(stacked, boxes[todo], original[0], original[1], threshold)):
                self._crops[(keys[i], threshold)] = crop
                out[i] = crop
        return out  # type: ignore[return-value]


def _best_tile(tiles: list[tiling.Tile], box) -> int:  # noqa: ANN001
    """The tile that holds ``box`` with the most room around it (the one whose core holds its centre when whole)."""
    x1, y1, x2, y2 = (float(v) for v in box)
    cx, cy = (x1 + x2) / 2, (y1 + y2) / 2

    def room(t: tiling.Tile) -> float:
        inside = min(x1 - t.x0, y1 - t.y0, t.x1 - x2, t.y1 - y2)
        in_core = t.core[0] <= cx < t.core[2] and t.core[1] <= cy < t.core[3]
        return inside + (0.5 if in_core else 0.0)

    return max(range(len(tiles)), key=lambda i: room(tiles[i]))


def image_hw(image: np.ndarray | torch.Tensor) -> tuple[int, int]:
    """(H, W) of an image ``to_tensor`` accepts; ValueError for any other shape."""
    if isinstance(image, torch.Tensor):
        if image.dim() != 3 or image.shape[0] != 3:
            raise ValueError(f"expected a (3,H,W) tensor, got {tuple(image.shape)}")
        return int(image.shape[1]), int(image.shape[2])
    shape = np.shape(image)
    if len(shape) == 2 or (len(shape) == 3 and shape[2] in (3, 4)):
        return int(shape[0]), int(shape[1])
    raise ValueError(f"expected an (H,W,3) image, got shape {shape}")


def crop_tensor(image: np.ndarray | torch.Tensor, tile: tiling.Tile) -> torch.Tensor:
    """The tile's pixels as a (3,h,w) float32 tensor in [0,1] (the whole image is never converted at once)."""
    if isinstance(image, torch.Tensor):
        return image[:, tile.y0 : tile.y1, tile.x0 : tile.x1].float()
    return to_tensor(np.asarray(image)[tile.y0 : tile.y1, tile.x0 : tile.x1])


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
    # One read of the bounds and one of all the crops' pixels: on a GPU each read is a device sync, and
    # reading per instance made 5-6 syncs per new detection (tests/engine/test_cuda.py counts them).
    bounds = torch.stack([x0, y0, x1, y1], dim=1).tolist()
    pieces = []
    for i, (xa, ya, xb, yb) in enumerate(bounds):  # small matrices per instance: the crop, not the image
        if xb <= xa or yb <= ya:
            continue
        rx = interpolation_matrix(ibox[i : i + 1, 0], ibox[i : i + 1, 2], m + 2, xb)[0, xa:]
        ry = interpolation_matrix(ibox[i : i + 1, 1], ibox[i : i + 1, 3], m + 2, yb)[0, ya:]
        pieces.append((ry @ padded[i] @ rx.T > threshold).flatten())
    flat = torch.cat(pieces).cpu().numpy() if pieces else np.zeros(0, dtype=bool)
    crops, start = [], 0
    for xa, ya, xb, yb in bounds:
        h, w = max(0, yb - ya), max(0, xb - xa)
        if h == 0 or w == 0:
            crops.append(InstanceMask(xa, ya, np.zeros((0, 0), dtype=bool)))
            continue
        crops.append(InstanceMask(xa, ya, flat[start : start + h * w].reshape(h, w)))
        start += h * w
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
