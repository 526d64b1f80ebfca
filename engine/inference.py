"""Staged inference with a cache: the engine side of the app's live sliders.

An image is predicted in tiles (engine.tiling): one tile for a ``short-side`` model or an image that fits one
tile at the model's ``pixel-scale``, overlapping tiles for a larger one (the seam rule, the merge and what each
slider move re-runs across tiles are in engine.tiling's docstring). Per tile the Predictor keeps the RPN
candidates, the box head outputs of the candidates it has seen and, for every detection it has seen, its mask
pasted into its box as probabilities (so a mask-threshold move is one comparison per pixel) and its mask quality
(engine.quality.mask_confidence). The FPN features are kept within ``feature_budget`` bytes (always for a
single-tile image). A change of

- score threshold, box NMS IoU or maximum detections re-runs only the selection (threshold + NMS, then the seam
  rule); masks come from the cache, and only detections never seen before go through the mask head;
- mask threshold re-thresholds the cached probabilities;
- RPN NMS IoU or the number of proposals kept re-runs the RPN's NMS over its cached candidates; the box
  head runs only on candidates it has not seen yet (its outputs are kept per candidate);
- a new image or new weights run the backbone.

Instant sliders (issue 12.4). Two facts make every slider a lookup once the network has seen what it can reach:

- greedy NMS is prefix-consistent: NMS over the candidates scoring above ``s`` keeps exactly the candidates that
  NMS over those above any lower floor keeps, less those scoring ``<= s``. One NMS run per (proposal set, box IoU)
  at the lowest reachable score (an *NMS table*) therefore answers every score threshold and detection cap by
  slicing; an NMS run made for a slider move is kept the same way, valid for every higher threshold;
- the RPN's NMS per value of the RPN-NMS slider is kept (its keep list, cut at the most proposals reachable), so
  an RPN-NMS or proposal-count move is a slice of it too (measured: one RPN NMS over ~7,000 candidates of a tile
  costs 20-100 ms, 91 slider values x tiles too many to run on a move, cheap to run once at idle).

``idle_step(reach)`` does that work in small pre-emptible steps (one NMS, or one chunk of mask-head RoIs sized to
``IDLE_STEP_S``), most useful first: the NMS tables and masks the score slider reaches at the current settings,
then those of every box-NMS value, then the RPN tables, the box head on every proposal they reach and the masks
each RPN-NMS value shows at the current box NMS, last the masks of every candidate above the lowest score that
those proposals hold (what any other combination can show: after that no move runs the network). Its network
runs are counted as ``idle_*`` stages. What it holds is bounded by ``precompute_budget`` bytes: past it, the
lowest-scoring masks not on screen are dropped and idle work stops below their score (a later move that reaches
them runs the mask head, as before); past half of it in RPN and box-NMS tables, idle work makes no more tables
(the moves they would serve run their NMS, and the box head where it has not run).

A tile whose features were dropped re-runs its backbone when a change needs the box or mask head there.
``stage_runs`` counts how often each stage ran (per tile), so tests can assert that the backbone ran once.
A prediction cancelled between tiles raises ``Cancelled`` whose ``partial`` holds the detections of the tiles done.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace

import numpy as np
import torch
from torchvision.ops import batched_nms

from engine import tiling
from engine.model.box_utils import nonsmall_mask, scale_boxes
from engine.model.mask_rcnn import MaskRCNN
from engine.model.paste import expand_boxes_to_int, interpolation_matrix
from engine.quality import mask_confidence
from engine.structures import InstanceMask, Prediction, PredictSettings, Reach

TILE_KEY_SHIFT = 32  # a detection's key: tile index << 32 | (RPN candidate * classes + class) within the tile
MASK_CHUNK = 128  # detections per mask-head call (the head's 28x28x256 activations: ~100 MB per 128)
IDLE_STEP_S = 0.05  # seconds an idle step aims at: a slider move waits at most about this long for it
# RoIs per idle step at most, whatever the rate measured: a rate measured while the machine was quiet must not make
# a step of seconds when it is loaded (measured: 128 mask-head RoIs took 10 s under a load of 20 on 2 cores)
IDLE_MASK_CHUNK, IDLE_BOX_CHUNK = 16, 256
NMS_ENTRIES = 256  # NMS tables kept per tile (the current proposal set's and the current box IoU's come first)
MASK_ENTRY_OVERHEAD = 200  # bytes per cached mask besides its pixels (the Python objects)
# a tile's mask buffer grows by this factor (amortised appends): at most 25 % spare capacity while idle work adds
MASK_BUFFER_GROWTH = 1.25


class _Mask:
    """A detection's cached mask: where its pasted probabilities lie in its tile's ``_MaskStore`` buffer (``off``,
    ``h`` x ``w``, image pixels from (x0, y0)), its quality, its score."""

    __slots__ = ("x0", "y0", "h", "w", "off", "quality", "score", "idle")

    def __init__(self, x0: int, y0: int, h: int, w: int, off: int, quality: float, score: float, idle: bool) -> None:
        self.x0, self.y0, self.h, self.w, self.off = x0, y0, h, w, off
        self.quality, self.score, self.idle = quality, score, idle

    @property
    def nbytes(self) -> int:
        return 4 * self.h * self.w + MASK_ENTRY_OVERHEAD


class _MaskStore:
    """A tile's cached masks: every mask's probabilities (pasted into its box, float32 as ``paste_soft`` gives them)
    back to back in one flat buffer, so a mask-threshold move thresholds the shown masks in one numpy comparison
    and their crops are views of that one bool result (measured with ~5,000 shown masks: a comparison and an
    ``InstanceMask`` per mask cost ~10 us each, and the objects it allocated set off full garbage collections of
    100+ ms). The buffer grows by ``MASK_BUFFER_GROWTH``; masks dropped by the budget leave holes until
    ``compact``. The crops at the last threshold are kept (a score or NMS move at the same threshold reuses them)."""

    def __init__(self) -> None:
        self.soft = np.zeros(0, dtype=np.float32)
        self.used = 0  # pixels written (live and dropped ones)
        self.dead = 0  # pixels of dropped masks
        self.entries: dict[int, _Mask] = {}
        self._threshold: float | None = None
        self._crops: dict[int, InstanceMask] = {}

    def __contains__(self, key: int) -> bool:
        return key in self.entries

    def __getitem__(self, key: int) -> _Mask:
        return self.entries[key]

    def items(self):  # noqa: ANN201
        return self.entries.items()

    @property
    def buffer_bytes(self) -> int:
        return self.soft.nbytes

    def add(self, keys: list[int], pasted: list[tuple[int, int, np.ndarray]], quality, scores, idle: bool) -> int:  # noqa: ANN001
        """Append a mask-head chunk's pasted masks (``paste_soft``'s output); returns the bytes they add."""
        total = sum(soft.size for _, _, soft in pasted)
        if self.used + total > len(self.soft):
            grown = np.empty(max(self.used + total, int(len(self.soft) * MASK_BUFFER_GROWTH)), dtype=np.float32)
            grown[: self.used] = self.soft[: self.used]
            self.soft = grown
        added = 0
        for k, (x0, y0, soft), q, sc in zip(keys, pasted, quality, scores):
            h, w = soft.shape
            self.soft[self.used : self.used + h * w] = soft.ravel()
            entry = self.entries[k] = _Mask(x0, y0, h, w, self.used, q, sc, idle)
            self.used += h * w
            added += entry.nbytes
        return added

    def pop(self, key: int) -> _Mask:
        entry = self.entries.pop(key)
        self._crops.pop(key, None)
        self.dead += entry.h * entry.w
        return entry

    def compact(self) -> None:
        """Close the holes dropped masks left and give back the spare capacity (after the budget drops)."""
        if self.dead == 0 and len(self.soft) == self.used:
            return
        live = sorted(self.entries.values(), key=lambda e: e.off)
        soft = np.empty(sum(e.h * e.w for e in live), dtype=np.float32)
        at = 0
        for e in live:
            n = e.h * e.w
            soft[at : at + n] = self.soft[e.off : e.off + n]
            e.off, at = at, at + n
        self.soft, self.used, self.dead = soft, at, 0

    def crops(self, keys: list[int], threshold: float) -> list[InstanceMask]:
        """The masks of ``keys`` at ``threshold`` (``probability > threshold``, as ``paste_crops``), as views of
        one bool array per call; crops already made at this threshold are reused."""
        if threshold != self._threshold:
            self._threshold, self._crops = threshold, {}  # the old crops (and the bool arrays they view) go
        crops = self._crops
        todo = [k for k in keys if k not in crops]
        if todo:
            entries = [self.entries[k] for k in todo]
            offs = np.fromiter((e.off for e in entries), dtype=np.int64, count=len(entries))
            sizes = np.fromiter((e.h * e.w for e in entries), dtype=np.int64, count=len(entries))
            need = int(sizes.sum())
            lo, hi = int(offs.min()), int((offs + sizes).max())
            t = np.float32(threshold)
            if hi - lo <= 2 * need:  # the shown masks lie close together: compare the span (1 op per pixel)
                flags, starts = self.soft[lo:hi] > t, offs - lo
            else:  # few masks spread over a large buffer: gather only their pixels
                starts = np.cumsum(sizes) - sizes
                flags = self.soft[np.repeat(offs - starts, sizes) + np.arange(need)] > t
            for k, e, s in zip(todo, entries, starts.tolist()):
                crops[k] = InstanceMask(e.x0, e.y0, flags[s : s + e.h * e.w].reshape(e.h, e.w))
        return [crops[k] for k in keys]


@dataclass
class _Nms:
    """Box NMS over one proposal set's candidates scoring above ``floor``: ``keys`` (flat candidate indices) and
    ``scores``, best first, cut at ``cap``; it answers any threshold >= floor and any cap <= cap."""

    floor: float
    cap: int
    keys: torch.Tensor
    scores: torch.Tensor

    def answers(self, score: float, cap: int) -> bool:
        return score >= self.floor and (cap <= self.cap or len(self.keys) < self.cap)

    @property
    def nbytes(self) -> int:
        return self.keys.numel() * self.keys.element_size() + self.scores.numel() * self.scores.element_size()


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
        self.box_version = 0  # bumped when the box head fills rows: the decoded candidates follow it
        self.decoded: dict | None = None  # every candidate decoded per class, flat (candidate * classes + class)
        self.rpn_keeps: dict[float, tuple[int, torch.Tensor]] = {}  # RPN NMS IoU -> (cap, keep[:cap]), int32
        self.proposal_key: tuple | None = None
        self.keep = None  # indices of the current proposals among the candidates
        self.shown_proposals = None  # (boxes, scores) of the current proposals in image pixels, this tile's own
        self.nms: dict[tuple, _Nms] = {}  # (proposal key, box NMS IoU) -> NMS table
        self.masks = _MaskStore()

    @property
    def image_sizes(self) -> list[tuple[int, int]]:
        return [self.size]

    def feature_bytes(self) -> int:
        return sum(t.numel() * t.element_size() for t in self.roi_levels or [])

    def table_bytes(self) -> int:
        rpn = sum(k.numel() * k.element_size() for _, k in self.rpn_keeps.values())
        dec = sum(v.numel() * v.element_size() for v in (self.decoded or {}).values() if isinstance(v, torch.Tensor))
        return rpn + dec + sum(e.nbytes for e in self.nms.values())

    def to_image(self, boxes: torch.Tensor) -> torch.Tensor:
        """(N,4) network pixels of this tile -> image pixels."""
        out = scale_boxes(boxes, self.size, self.original)
        return out + torch.tensor([self.tile.x0, self.tile.y0] * 2, dtype=out.dtype, device=out.device)

    def to_network(self, boxes: torch.Tensor) -> torch.Tensor:
        """(N,4) image pixels -> network pixels of this tile."""
        shift = torch.tensor([self.tile.x0, self.tile.y0] * 2, dtype=boxes.dtype, device=boxes.device)
        return scale_boxes(boxes - shift, self.original, self.size)

    def proposal_rows(self, key: tuple) -> torch.Tensor:
        """The candidates of proposal set ``key`` = (RPN NMS IoU, count), from the RPN table (caller ensures it)."""
        return self.rpn_keeps[key[0]][1][: key[1]].long()


class Predictor:
    """``Predictor(model).predict(image, settings)``; call again with new settings to re-use the caches.

    ``feature_budget``: bytes of FPN features kept across tiles of a multi-tile image (least recently used
    dropped first; 0 keeps none: the command line's choice, whose memory then stays at one tile's).
    ``precompute_budget``: bytes of cached masks (pasted probabilities) past which ``idle_step`` drops the
    lowest-scoring ones not on screen and stops computing below them.
    """

    def __init__(
        self,
        model: MaskRCNN,
        device: str | torch.device = "cpu",
        feature_budget: int = 512 * 1024**2,
        precompute_budget: int = 256 * 1024**2,
    ) -> None:
        self.device = torch.device(device)
        self.model = model.to(self.device).eval()
        self.feature_budget = feature_budget
        self.precompute_budget = precompute_budget
        self.stage_runs: Counter[str] = Counter()
        self.nms_runs: Counter[str] = Counter()  # NMS runs that fill the tables ("rpn", "box"; "idle_" at idle)
        self._image_key: object = None
        self._clear_image()

    # ----- cache management -----
    def _clear_image(self) -> None:
        self._image = None  # the caller's array or tensor, cropped per tile on demand
        self._hw: tuple[int, int] | None = None
        self._tiles: list[_TileState] = []
        self._featured: list[int] = []  # tiles holding features, least recently used first
        self._timings: dict[str, float] = {}
        self._settings: PredictSettings | None = None  # of the last complete prediction: idle work starts there
        self._shown: set[tuple[int, int]] = set()  # (tile, key) of the detections last returned: never dropped
        self._mask_bytes = 0
        self._table_bytes = 0  # RPN and box-NMS tables: idle work makes no more past half the precompute budget
        self._floor = -1.0  # idle work computes no mask scoring at or below this (raised by the budget)
        self._idle: Iterator[str] | None = None
        self._idle_for: tuple | None = None
        self._idle_cancel: Callable[[], bool] | None = None
        self._stage_prefix = ""
        self._mask_rate = 0.01  # seconds per mask-head RoI, measured: sizes the idle steps

    def set_model(self, model: MaskRCNN) -> None:
        """New weights: everything cached is stale."""
        self.model = model.to(self.device).eval()
        self._image_key = None
        self._clear_image()

    @property
    def tiles(self) -> list[tiling.Tile]:
        """The current image's tiles (one when it is not tiled)."""
        return [t.tile for t in self._tiles]

    @property
    def image_key(self) -> object:
        return self._image_key

    def held_bytes(self) -> dict[str, int]:
        """What the caches hold: masks (pasted probabilities), tables (RPN and box NMS, decoded candidates, box
        head outputs) and FPN features, in bytes."""
        heads = sum(
            t.box_logits.numel() * 4 + t.box_deltas.numel() * 4 for t in self._tiles if t.box_logits is not None
        )
        return {
            "masks": self._mask_bytes,
            "tables": sum(t.table_bytes() for t in self._tiles) + heads,
            "features": sum(t.feature_bytes() for t in self._tiles),
        }

    def _add_time(self, stage: str, start: float) -> None:
        self._timings[stage] = self._timings.get(stage, 0.0) + 1000 * (time.perf_counter() - start)

    def _count(self, stage: str) -> None:
        self.stage_runs[self._stage_prefix + stage] += 1

    @property
    def _num_fg(self) -> int:
        return self.model.config.num_classes - 1

    # ----- stages, per tile -----
    @torch.no_grad()
    def _ensure_features(self, ts: _TileState, cancel: Callable[[], bool] | None) -> None:
        """Run the backbone (and the first time the RPN head) of a tile whose features are not kept."""
        if ts.roi_levels is not None:
            self._featured.remove(ts.tile.index)
            self._featured.append(ts.tile.index)
            return
        start = time.perf_counter()
        self._count("backbone")
        tile = ts.tile
        batch, _ = self.model.preprocess([crop_tensor(self._image, tile).to(self.device)])
        features = self.model.features(batch)
        _check(cancel)
        roi_levels = self.model.roi_levels(features)
        if ts.rpn_candidates is None:
            rpn_out = self.model.rpn.raw_outputs(list(features.values()), batch.padded_hw)
            self._count("rpn_head")
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

    def _rpn_keep(self, ts: _TileState, rpn_nms_iou: float, count: int) -> torch.Tensor:
        """The RPN's NMS at ``rpn_nms_iou`` cut at ``count``: a slice of the kept table, else one NMS (kept)."""
        cap, keep = ts.rpn_keeps.get(rpn_nms_iou, (0, None))
        if keep is None or not (count <= cap or len(keep) < cap):
            self.nms_runs[self._stage_prefix + "rpn"] += 1
            keep = self.model.rpn.select(ts.rpn_candidates, rpn_nms_iou, count)
            old = ts.rpn_keeps.get(rpn_nms_iou)
            self._table_bytes -= 0 if old is None else old[1].numel() * 4
            ts.rpn_keeps[rpn_nms_iou] = (count, keep.to(torch.int32))  # int32: 91 of them per tile
            self._table_bytes += keep.numel() * 4
        return keep[:count].long()

    @torch.no_grad()
    def _box_head(self, ts: _TileState, rows: torch.Tensor, cancel) -> None:  # noqa: ANN001
        """Box head outputs for the candidates ``rows`` that have none yet."""
        missing = rows[~ts.box_done[rows]]
        if len(missing):
            self._ensure_features(ts, cancel)
            self._count("box_head")
            boxes = [ts.rpn_candidates[0][missing]]
            logits, deltas = self.model.roi_heads.box_outputs(ts.roi_levels, boxes, ts.image_sizes)
            ts.box_logits[missing], ts.box_deltas[missing] = logits, deltas
            ts.box_done[missing] = True
            ts.box_version += 1

    def _decoded(self, ts: _TileState) -> dict:
        """Every candidate's per-class box (network and image pixels), score, size test and seam flags, flat.

        Decoding is per row (softmax, box decoding, clipping), so decoding all rows at once gives each row what
        decoding its proposal set alone gives; rows the box head has not seen are never read."""
        if ts.decoded is not None and ts.decoded["version"] == ts.box_version:
            return ts.decoded
        cand = self.model.roi_heads.candidates(ts.box_logits, ts.box_deltas, [ts.rpn_candidates[0]], ts.image_sizes)[0]
        boxes = cand.boxes.reshape(-1, 4)
        image_boxes = ts.to_image(boxes)
        out = {
            "version": ts.box_version,
            "boxes": boxes,
            "scores": cand.scores.reshape(-1),
            "image_boxes": image_boxes,
            "nonsmall": nonsmall_mask(boxes, self.model.config.box_min_size),
        }
        if len(self._tiles) > 1:
            factor = ts.size[0] / max(1, ts.original[0])
            out["owned"] = tiling.owned(image_boxes, ts.tile, tiling.EDGE_MARGIN / factor)
            out["at_seam"] = tiling.crosses_core_edge(image_boxes, ts.tile)
        ts.decoded = out
        return out

    @torch.no_grad()
    def _set_proposals(self, ts: _TileState, rpn_nms_iou: float, count: int, cancel) -> None:  # noqa: ANN001
        """The proposals at these RPN settings; the box head runs only on candidates it has not seen."""
        start = time.perf_counter()
        self._count("rpn_post")
        keep = self._rpn_keep(ts, rpn_nms_iou, count)
        self._box_head(ts, keep, cancel)
        ts.keep = keep
        ts.proposal_key = (rpn_nms_iou, count)
        proposals = ts.to_image(ts.rpn_candidates[0][keep])
        scores = ts.rpn_candidates[1][keep]
        if len(self._tiles) > 1:
            inside = tiling.owned(proposals, ts.tile, -float("inf"))
            proposals, scores = proposals[inside], scores[inside]
        ts.shown_proposals = (proposals, scores)
        self._add_time("proposals+box_head", start)

    def _nms_table(self, ts: _TileState, key: tuple, rows: torch.Tensor, iou: float, floor: float, cap: int) -> _Nms:
        """Box NMS over proposal set ``key``'s candidates scoring above ``floor`` (what roi_heads.select runs at
        that threshold, in the same order), kept per tile (see the module docstring)."""
        entry = ts.nms.get((key, iou))
        if entry is not None and entry.answers(floor, cap):
            return entry
        self.nms_runs[self._stage_prefix + "box"] += 1
        dec = self._decoded(ts)
        fg = self._num_fg
        flat = (rows[:, None] * fg + torch.arange(fg, device=rows.device)).reshape(-1)
        scores = dec["scores"][flat]
        flat = flat[scores > floor]
        flat = flat[dec["nonsmall"][flat]]
        scores = dec["scores"][flat]
        order = batched_nms(dec["boxes"][flat], scores, flat % fg + 1, iou)[:cap]
        entry = _Nms(floor, cap, flat[order].to(torch.int32), scores[order])
        old = ts.nms.pop((key, iou), None)
        self._table_bytes += entry.nbytes - (0 if old is None else old.nbytes)
        ts.nms[(key, iou)] = entry
        while len(ts.nms) > NMS_ENTRIES:
            self._table_bytes -= ts.nms.pop(next(iter(ts.nms))).nbytes
        return entry

    @torch.no_grad()
    def _masks_for(self, ts: _TileState, keys: list[int], cancel, idle: bool = False) -> None:  # noqa: ANN001
        """Mask entries for a tile's detections (flat candidate keys) that have none: mask head, quality, paste."""
        missing = [k for k in keys if k not in ts.masks.entries]
        if not missing:
            return
        self._ensure_features(ts, cancel)
        self._count("mask_head")
        dec = self._decoded(ts)
        fg = self._num_fg
        height, width = self._hw
        for s in range(0, len(missing), MASK_CHUNK):
            start = time.perf_counter()
            idx = torch.tensor(missing[s : s + MASK_CHUNK], device=self.device)
            labels = idx % fg + 1
            probs = self.model.roi_heads.mask_probs(ts.roi_levels, [dec["boxes"][idx]], [labels], ts.image_sizes)[0]
            # the head's own probabilities of each detection's class, as engine.quality asks
            quality = mask_confidence(probs).cpu().tolist()
            softs = paste_soft(probs, dec["image_boxes"][idx], height, width)
            scores = dec["scores"][idx].cpu().tolist()
            self._mask_bytes += ts.masks.add(idx.tolist(), softs, quality, scores, idle)
            self._mask_rate = 0.5 * self._mask_rate + 0.5 * (time.perf_counter() - start) / len(idx)

    @torch.no_grad()
    def _select_tile(self, ts: _TileState, settings: PredictSettings, cancel) -> dict:  # noqa: ANN001
        """One tile's detections under ``settings`` in image pixels, after the seam rule, with their masks cached."""
        start = time.perf_counter()
        self._count("select")
        s, cap = settings.score_threshold, settings.max_detections
        table = self._nms_table(ts, ts.proposal_key, ts.keep, settings.box_nms_iou, s, cap)
        keys = table.keys[table.scores > s][:cap].long()
        dec = self._decoded(ts)
        at_seam = torch.zeros(len(keys), dtype=torch.bool, device=keys.device)
        if len(self._tiles) > 1:
            keys = keys[dec["owned"][keys]]
            at_seam = dec["at_seam"][keys]
        self._masks_for(ts, keys.tolist(), cancel)
        self._add_time("select+masks", start)
        return {
            "boxes": dec["image_boxes"][keys],
            "scores": dec["scores"][keys],
            "labels": keys % self._num_fg + 1,
            "keys": keys + (ts.tile.index << TILE_KEY_SHIFT),
            "at_seam": at_seam,
            "proposals": ts.shown_proposals[0],
            "proposal_scores": ts.shown_proposals[1],
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
        cached); True raises Cancelled, whose ``partial`` is the Prediction of the tiles done (None before the
        first). ``progress(done, total)`` is called after each tile.
        ``timings_ms`` lists only the stages that ran (summed over tiles).
        """
        start = time.perf_counter()
        self._timings = {}
        self._idle, self._idle_for = None, None  # idle work re-derives what is left from the caches and settings
        if image is not None:
            self.set_image(image, key, cancel)
        if not self._tiles:
            raise RuntimeError("no image: call predict(image) or set_image(image) first")
        settings = self.resolve(settings or PredictSettings())
        parts = []
        try:
            for done, ts in enumerate(self._tiles, start=1):
                _check(cancel)
                if ts.rpn_candidates is None:
                    self._ensure_features(ts, cancel)
                    _check(cancel)
                if ts.proposal_key != (settings.rpn_nms_iou, settings.num_proposals):
                    self._set_proposals(ts, settings.rpn_nms_iou, settings.num_proposals, cancel)
                    _check(cancel)
                parts.append(self._select_tile(ts, settings, cancel))
                self._release_features()
                if progress is not None:
                    progress(done, len(self._tiles))
        except Cancelled as stop:
            if parts:
                stop.partial = self._finish(parts, settings, start)
            raise
        pred = self._finish(parts, settings, start)
        self._settings = settings
        self._enforce_budget()
        return pred

    def _finish(self, parts: list[dict], settings: PredictSettings, start: float) -> Prediction:
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
        if len(self._tiles) > 1:
            keep = tiling.seam_nms(boxes, scores, labels, cat("at_seam"), settings.box_nms_iou)
            order = torch.argsort(torch.where(keep, scores, -1.0), descending=True, stable=True)
            order = order[: int(keep.sum())]
            boxes, scores, labels, keys = boxes[order], scores[order], labels[order], keys[order]
        keys_np = keys.cpu().numpy()
        tile_of, local = keys_np >> TILE_KEY_SHIFT, keys_np & ((1 << TILE_KEY_SHIFT) - 1)
        self._shown = set(zip(tile_of.tolist(), local.tolist()))
        # each tile's shown masks thresholded at once (_MaskStore.crops), then put back in score order
        masks: list[InstanceMask] = [None] * len(keys_np)  # type: ignore[list-item]
        quality = np.zeros(len(keys_np), dtype=np.float32)
        for i in np.unique(tile_of).tolist():
            rows = np.flatnonzero(tile_of == i).tolist()
            store, ks = self._tiles[i].masks, local[tile_of == i].tolist()
            for r, crop in zip(rows, store.crops(ks, settings.mask_threshold)):
                masks[r] = crop
            quality[rows] = [store.entries[k].quality for k in ks]
        return Prediction(
            height=height,
            width=width,
            boxes=boxes.cpu().numpy().astype(np.float32),
            scores=scores.cpu().numpy().astype(np.float32),
            labels=labels.cpu().numpy(),
            masks=masks,
            proposals=cat("proposals").cpu().numpy().astype(np.float32),
            proposal_scores=cat("proposal_scores").cpu().numpy().astype(np.float32),
            keys=keys_np,
            settings=settings,
            mask_quality=quality,
        )

    # ----- idle precompute (issue 12.4) -----
    def idle_step(self, reach: Reach, cancel: Callable[[], bool] | None = None) -> bool:
        """One small step of the precompute for the image and settings of the last complete prediction; True while
        work is left. ``cancel()`` is asked inside a step that has to re-run a tile's backbone (a step is otherwise
        short: ``IDLE_STEP_S``); a cancelled step is redone from the caches by the next call."""
        if self._settings is None:
            return False
        state = (self._image_key, self._settings, reach)
        if self._idle_for == state and self._idle is None:
            return False  # done for these settings
        if self._idle is None or self._idle_for != state:
            self._idle, self._idle_for = self._precompute(reach), state
        self._idle_cancel, self._stage_prefix = cancel, "idle_"
        try:
            next(self._idle)
            return True
        except StopIteration:
            self._idle = None
            return False
        except Cancelled:
            self._idle, self._idle_for = None, None
            return True
        finally:
            self._idle_cancel, self._stage_prefix = None, ""
            self._release_features()
            self._enforce_budget()

    def idle_done(self, reach: Reach) -> bool:
        """Whether the precompute for the last complete prediction is finished (False before any)."""
        return (
            self._settings is not None
            and self._idle is None
            and self._idle_for
            == (
                self._image_key,
                self._settings,
                reach,
            )
        )

    def _idle_order(self) -> list[_TileState]:
        """Tiles holding features first (most recently used first: the last to be dropped), then the rest."""
        featured = [self._tiles[i] for i in reversed(self._featured)]
        return featured + [t for t in self._tiles if t.roi_levels is None]

    def _idle_masks(self, ts: _TileState, keys: torch.Tensor) -> Iterator[str]:
        """Masks for ``keys`` (best first) above the floor, in steps of about IDLE_STEP_S."""
        dec = self._decoded(ts)
        keys = keys[dec["scores"][keys] > self._floor]
        todo = [k for k in keys.tolist() if k not in ts.masks.entries]
        while todo:
            n = max(1, min(IDLE_MASK_CHUNK, int(IDLE_STEP_S / max(self._mask_rate, 1e-4))))
            chunk, todo = todo[:n], todo[n:]
            self._masks_for(ts, chunk, self._idle_cancel, idle=True)
            yield "masks"
            todo = [k for k in todo if dec["scores"][k] > self._floor]

    def _precompute(self, reach: Reach) -> Iterator[str]:
        """The idle work, most useful first (see the module docstring); yields after each step."""
        settings = self._settings
        floor = reach.min_score
        cap = max(settings.max_detections, reach.max_detections)
        current = (settings.rpn_nms_iou, settings.num_proposals)
        iou = settings.box_nms_iou
        multi = len(self._tiles) > 1

        def shown_keys(ts: _TileState, table: _Nms) -> torch.Tensor:
            keys = table.keys[:cap].long()
            return keys[self._decoded(ts)["owned"][keys]] if multi else keys

        # 1. the score slider and the detection cap at the current NMS settings
        for ts in self._tiles:
            self._nms_table(ts, current, ts.keep, iou, floor, cap)
            yield "nms"
        for ts in self._idle_order():
            yield from self._idle_masks(ts, shown_keys(ts, self._nms_table(ts, current, ts.keep, iou, floor, cap)))
        # 2. the box-NMS slider
        values = [v for v in reach.box_nms_values if v != iou]
        for ts in self._tiles:
            for v in values:
                if self._tables_full():
                    break
                self._nms_table(ts, current, ts.keep, v, floor, cap)
                yield "nms"
        for ts in self._idle_order():
            tables = [ts.nms.get((current, v)) for v in values]
            keys = [shown_keys(ts, t) for t in tables if t is not None and t.answers(floor, cap)]
            if keys:
                yield from self._idle_masks(ts, _best_first(ts, self._decoded(ts), keys))
        # 3. the RPN-NMS and proposal-count sliders: RPN tables, the box head on what they reach, their masks
        most = max(settings.num_proposals, reach.max_proposals)
        rpn_values = [v for v in reach.rpn_nms_values if v != settings.rpn_nms_iou]
        for ts in self._idle_order():
            for v in [settings.rpn_nms_iou, *rpn_values]:  # the current value too: up to the most proposals
                if self._tables_full():
                    break
                self._rpn_keep(ts, v, most)
                yield "rpn"
            reached = [v for v in rpn_values if v in ts.rpn_keeps]
            rows = torch.unique(torch.cat([ts.rpn_keeps[v][1][:most] for v in [settings.rpn_nms_iou, *reached]]))
            rows = rows.long()
            missing = rows[~ts.box_done[rows]]
            step = max(1, min(IDLE_BOX_CHUNK, int(40 * IDLE_STEP_S / max(self._mask_rate, 1e-4))))  # ~40x cheaper
            for s in range(0, len(missing), step):
                self._box_head(ts, missing[s : s + step], self._idle_cancel)
                yield "box_head"
            keys = []
            for v in reached:
                key = (v, settings.num_proposals)
                if self._tables_full():
                    break
                table = self._nms_table(ts, key, ts.proposal_rows(key), iou, floor, cap)
                keys.append(shown_keys(ts, table))
                yield "nms"
            if keys:
                yield from self._idle_masks(ts, _best_first(ts, self._decoded(ts), keys))
        # 4. every other combination (another proposal count, RPN NMS with another box NMS, ...): the masks of every
        # candidate those proposals hold above the floor, best first. Their NMS still runs on a move, the network not.
        for ts in self._idle_order():
            dec = self._decoded(ts)
            rows = torch.unique(torch.cat([k[:most] for _, k in ts.rpn_keeps.values()])).long()
            rows = rows[ts.box_done[rows]]
            fg = self._num_fg
            flat = (rows[:, None] * fg + torch.arange(fg, device=rows.device)).reshape(-1)
            flat = flat[(dec["scores"][flat] > floor) & dec["nonsmall"][flat]]
            if multi:
                flat = flat[dec["owned"][flat]]
            yield from self._idle_masks(ts, _best_first(ts, dec, [flat]))

    def _tables_full(self) -> bool:
        return self._table_bytes > self.precompute_budget // 2

    def _enforce_budget(self) -> None:
        """Past ``precompute_budget``, drop the lowest-scoring masks not on screen (to 90 % of it) and raise the
        floor below which idle work computes none."""
        if self._mask_bytes <= self.precompute_budget:
            return
        entries = [
            (m.score, i, k)
            for i, ts in enumerate(self._tiles)
            for k, m in ts.masks.items()
            if (i, k) not in self._shown
        ]
        entries.sort()
        target = 0.9 * self.precompute_budget
        for score, i, k in entries:
            if self._mask_bytes <= target:
                break
            self._mask_bytes -= self._tiles[i].masks.pop(k).nbytes
            self._floor = max(self._floor, score)
        for ts in self._tiles:  # the dropped masks' pixels are given back, not just left as holes
            if ts.masks.dead:
                ts.masks.compact()

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
        self._count("mask_head")
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


def _best_first(ts: _TileState, dec: dict, keys: list[torch.Tensor]) -> torch.Tensor:
    """The union of ``keys`` (flat candidate indices), best score first."""
    union = torch.unique(torch.cat(keys))
    return union[torch.argsort(dec["scores"][union], descending=True, stable=True)]


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
    """The caller's cancel() said stop between two stages; the caches stay consistent. ``partial``: the Prediction
    of the tiles done when a tiled prediction stopped after its first tile (their detections only), else None."""

    def __init__(self, *args: object) -> None:
        super().__init__(*args)
        self.partial: Prediction | None = None


def _check(cancel: Callable[[], bool] | None) -> None:
    if cancel is not None and cancel():
        raise Cancelled


def paste_soft(probs: torch.Tensor, boxes: torch.Tensor, height: int, width: int) -> list[tuple[int, int, np.ndarray]]:
    """(N,M,M) probabilities, (N,4) boxes -> per instance (x0, y0, (h,w) float32 probabilities inside its box):
    ``paste_masks`` resampling computed inside each box only, before the threshold (so a threshold move is one
    comparison per pixel)."""
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
        pieces.append((ry @ padded[i] @ rx.T).flatten())
    flat = torch.cat(pieces).cpu().numpy() if pieces else np.zeros(0, dtype=np.float32)
    out, start = [], 0
    for xa, ya, xb, yb in bounds:
        h, w = max(0, yb - ya), max(0, xb - xa)
        if h == 0 or w == 0:
            out.append((xa, ya, np.zeros((0, 0), dtype=np.float32)))
            continue
        out.append((xa, ya, flat[start : start + h * w].reshape(h, w)))
        start += h * w
    return out


def paste_crops(
    probs: torch.Tensor, boxes: torch.Tensor, height: int, width: int, threshold: float
) -> list[InstanceMask]:
    """(N,M,M) probabilities, (N,4) boxes -> per-instance crops of ``paste_masks(...) > threshold``."""
    pasted = paste_soft(probs, boxes, height, width)
    return [InstanceMask(x0, y0, soft > np.float32(threshold)) for x0, y0, soft in pasted]


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
