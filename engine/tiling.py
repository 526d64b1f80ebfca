"""Tiled inference for large images at pixel scale (issue 12): the tile grid, the seam rule and the merge.

A model with ``scale_policy == "pixel-scale"`` resizes every image by ``scale_factor``; an image larger than
``tile_size`` network pixels is then predicted in overlapping tiles (``tile_grid``), each a crop of the image in
original pixels that the model's own ``preprocess`` resizes, so a tile is exactly what a small image would be.
A ``short-side`` model resizes the whole image to at most ``max_size`` and is never tiled.

Tile size and overlap (ModelConfig.tile_size = 1024, tile_overlap = the largest anchor size by default):

- 1024 network pixels: ResNet-18-FPN features of a 1024 x 1024 tile are ~85 MB (P2 alone 64 MB) and the
  backbone peaks at ~1.4 GB RSS with the model; a 2048 tile peaks at ~3 GB, too close to the 4 GB a 10k image
  may use, for 10 % less time per pixel (measured on 2 CPU cores: 7.1, 6.1 and 5.4 s/Mpx at 512, 1024, 2048).
  The detection cap (``detections_per_image``) is per tile, so a 10k image at scale 1 (144 tiles) can hold
  144 x the cap.
- The overlap is at least the largest object the model is expected to see at its scale, which the anchors
  state: an object no larger than the overlap whose box centre lies in a tile's core (below) lies wholly inside
  that tile, with at least (overlap - size) / 2 pixels of context around it.

Seam rule (chosen over merging the halves of cut objects: no mask surgery, every mask comes from one tile's
features, so it equals what an untiled run sees whenever the object is inside the tile). The overlaps are
split down their middle into cores that partition the image; a tile keeps a detection when its box centre lies
in the tile's core and its box stays ``EDGE_MARGIN`` network pixels clear of every tile edge that is not an
image edge (a box that touches such an edge is a cut object, which the neighbouring tile sees whole). A whole
object seen by two tiles has nearly the same box in both, so one centre wins; a box whose centre lands on the
two sides of a core boundary in the two tiles (an object straddling it, boxes a pixel apart) is removed by
``seam_nms``: class-aware NMS at the box-NMS IoU among the kept detections that reach across a core boundary.
Per tile: at most ``detections_per_image`` detections, chosen before the seam rule.

Measured with the bundled model on a 3 x 3 mosaic of a 256 px nuclei image, tiles of 256 + 128 px
(tests/engine/test_tiling.py): 9 x the single image's count (+-1 %), no two detections overlapping by box IoU
> 0.5, each object cut by a tile edge one instance, its mask at IoU 0.97 (median) with the untiled run's. Masks
are not identical across tiles because that model normalises with GroupNorm, whose statistics span the whole
input: the same nucleus predicted in the 256 px image and inside the untiled mosaic already differs as much
(median IoU 0.96). A model with frozen BatchNorm has only the receptive field's context to lose.

The staged cache (engine.inference.Predictor) keeps per tile the RPN candidates, the box head outputs of the
candidates it has seen, the masks of the detections it has seen (pasted into their boxes as probabilities) and NMS
tables; FPN features are kept only within a memory budget (always for a single-tile image). A move of

- the mask threshold re-thresholds the cached probabilities of every tile (no network);
- the score threshold, box NMS IoU or detection cap re-runs the selection, the seam rule and ``seam_nms`` across
  all tiles; tiles whose new detections have no cached mask re-run their backbone (unless their features are
  in the budget) and the mask head on those detections only;
- the RPN NMS IoU or the proposal count re-runs the RPN's NMS per tile; the box head runs on candidates it has
  not seen, for which a tile without kept features re-runs its backbone.

After the first result the Predictor's idle precompute (``Predictor.idle_step``) fills, tile by tile, the tables and
masks every slider position reaches, so that a later move of any slider runs no network in any tile; a partial
result (a prediction cancelled between tiles) holds the detections the finished tiles own.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torchvision.ops import batched_nms

EDGE_MARGIN = 2.0  # network pixels: a box closer than this to a tile edge inside the image is a cut object


@dataclass(frozen=True)
class Tile:
    """A tile: pixels [x0, x1) x [y0, y1) of the image (original pixels), and the core whose box centres it owns."""

    index: int
    x0: int
    y0: int
    x1: int
    y1: int
    core: tuple[float, float, float, float]  # cx0, cy0, cx1, cy1
    image_hw: tuple[int, int]

    @property
    def width(self) -> int:
        return self.x1 - self.x0

    @property
    def height(self) -> int:
        return self.y1 - self.y0


def axis_spans(length: int, tile: int, overlap: int) -> list[tuple[int, int]]:
    """[start, end) of the fewest tiles of at most ``tile`` pixels covering ``length`` with overlaps >= ``overlap``,
    all of one size, spread evenly (the last ends at ``length``)."""
    if length <= tile:
        return [(0, length)]
    if not 0 <= overlap < tile:
        raise ValueError(f"overlap {overlap} must be smaller than the tile ({tile})")
    n = math.ceil((length - overlap) / (tile - overlap))
    size = min(tile, math.ceil((length + (n - 1) * overlap) / n))
    starts = [(i * (length - size)) // (n - 1) for i in range(n)]
    return [(s, s + size) for s in starts]


def _cores(spans: list[tuple[int, int]], length: int) -> list[tuple[float, float]]:
    """Each span's core: the overlaps split down their middle (the cores partition [0, length))."""
    bounds = [0.0] + [(spans[i + 1][0] + spans[i][1]) / 2 for i in range(len(spans) - 1)] + [float(length)]
    return [(bounds[i], bounds[i + 1]) for i in range(len(spans))]


def tile_grid(height: int, width: int, tile: int, overlap: int) -> list[Tile]:
    """Tiles of at most ``tile`` x ``tile`` pixels over a height x width image, row by row."""
    rows, cols = axis_spans(height, tile, overlap), axis_spans(width, tile, overlap)
    row_cores, col_cores = _cores(rows, height), _cores(cols, width)
    tiles = []
    for (y0, y1), (cy0, cy1) in zip(rows, row_cores):
        for (x0, x1), (cx0, cx1) in zip(cols, col_cores):
            tiles.append(Tile(len(tiles), x0, y0, x1, y1, (cx0, cy0, cx1, cy1), (height, width)))
    return tiles


def grid_for(height: int, width: int, config) -> list[Tile]:  # noqa: ANN001 - ModelConfig
    """The tiles ``config`` predicts a height x width image in: one for a short-side model or an image that fits
    one tile at the model's scale; else ``tile_size`` / ``tile_overlap`` network pixels, in original pixels."""
    if config.scale_policy != "pixel-scale":
        return tile_grid(height, width, max(height, width), 0)
    factor = float(config.scale_factor)
    tile = max(1, math.floor(config.tile_size / factor))
    overlap = math.ceil(config.tile_overlap_px / factor)
    return tile_grid(height, width, tile, min(overlap, tile // 2))


def owned(boxes: torch.Tensor, tile: Tile, margin: float) -> torch.Tensor:
    """(N,4) boxes in image pixels -> (N,) bool: centre in the tile's core and clear of its inner edges
    by more than ``margin`` image pixels (an edge at the image's border does not count)."""
    height, width = tile.image_hw
    cx = (boxes[:, 0] + boxes[:, 2]) / 2
    cy = (boxes[:, 1] + boxes[:, 3]) / 2
    c = tile.core
    keep = (cx >= c[0]) & (cx < c[2]) & (cy >= c[1]) & (cy < c[3])
    if tile.x0 > 0:
        keep &= boxes[:, 0] > tile.x0 + margin
    if tile.y0 > 0:
        keep &= boxes[:, 1] > tile.y0 + margin
    if tile.x1 < width:
        keep &= boxes[:, 2] < tile.x1 - margin
    if tile.y1 < height:
        keep &= boxes[:, 3] < tile.y1 - margin
    return keep


def crosses_core_edge(boxes: torch.Tensor, tile: Tile) -> torch.Tensor:
    """(N,4) boxes in image pixels owned by ``tile`` -> (N,) bool: the box reaches over an inner core boundary."""
    height, width = tile.image_hw
    c = tile.core
    out = torch.zeros(len(boxes), dtype=torch.bool, device=boxes.device)
    if c[0] > 0:
        out |= boxes[:, 0] < c[0]
    if c[1] > 0:
        out |= boxes[:, 1] < c[1]
    if c[2] < width:
        out |= boxes[:, 2] > c[2]
    if c[3] < height:
        out |= boxes[:, 3] > c[3]
    return out


def seam_nms(
    boxes: torch.Tensor, scores: torch.Tensor, labels: torch.Tensor, at_seam: torch.Tensor, iou: float
) -> torch.Tensor:
    """(N,) bool keep: class-aware NMS at ``iou`` among the detections ``at_seam`` (those reaching over a core
    boundary); the others are kept. Within one tile NMS has run already, so this removes cross-seam duplicates."""
    keep = torch.ones(len(boxes), dtype=torch.bool, device=boxes.device)
    idx = torch.where(at_seam)[0]
    if len(idx) > 1:
        survivors = batched_nms(boxes[idx].float(), scores[idx].float(), labels[idx], iou)
        keep[idx] = False
        keep[idx[survivors]] = True
    return keep
