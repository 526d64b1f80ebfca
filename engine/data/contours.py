"""Mask -> polygons by following pixel cracks (the edges between foreground and background pixels).

Each outer boundary of an 8-connected foreground component becomes one closed polygon whose vertices
lie on pixel corners, so pycocotools rasterises it back to the same pixels except for holes, which are
dropped (labelme polygons cannot hold holes), and where ``tolerance`` > 0 lets Douglas-Peucker remove
vertices that stray less than that many pixels from the simplified outline.
"""

from __future__ import annotations

import numpy as np

# Offsets of the crack vertices: pixel (row r, column c) covers x in [c, c+1), y in [r, r+1).
# Edges run with the foreground on their right in image coordinates (y down), so outer
# boundaries have positive shoelace area and holes negative.
_STEPS = {"top": (1, 0), "right": (0, 1), "bottom": (-1, 0), "left": (0, -1)}


def mask_to_polygons(mask: np.ndarray, tolerance: float = 0.0, min_area: float = 1.0) -> list[list[float]]:
    """Bool mask (H,W) -> polygons [[x0,y0,x1,y1,...], ...] (outer boundaries, pixel-corner coordinates)."""
    rows, cols = np.nonzero(mask)
    if rows.size == 0:
        return []
    top, left = rows.min(), cols.min()
    crop = np.zeros((rows.max() - top + 3, cols.max() - left + 3), dtype=bool)
    crop[rows - top + 1, cols - left + 1] = True
    polygons = []
    for loop in _trace_loops(crop):
        if _signed_area(loop) < min_area:
            continue
        if tolerance > 0:
            loop = _simplify_closed(loop, tolerance)
        if len(loop) < 3:
            continue
        shifted = loop + np.array([left - 1, top - 1], dtype=np.float64)
        polygons.append([float(v) for v in shifted.ravel()])
    return polygons


def _crack_edges(padded: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Start and end corners (N,2) int (x, y) of every foreground/background crack, foreground on the right."""
    starts, ends = [], []
    inside = padded[1:-1, 1:-1]
    neighbours = {
        "top": padded[:-2, 1:-1],
        "right": padded[1:-1, 2:],
        "bottom": padded[2:, 1:-1],
        "left": padded[1:-1, :-2],
    }
    corner_of = {"top": (0, 0), "right": (1, 0), "bottom": (1, 1), "left": (0, 1)}
    for side, neighbour in neighbours.items():
        rows, cols = np.nonzero(inside & ~neighbour)
        dx, dy = corner_of[side]
        start = np.stack([cols + 1 + dx, rows + 1 + dy], axis=1)
        starts.append(start)
        ends.append(start + np.array(_STEPS[side]))
    return np.concatenate(starts), np.concatenate(ends)


def _trace_loops(padded: np.ndarray) -> list[np.ndarray]:
    """Link the cracks of a zero-bordered mask into closed loops of corner vertices (K,2) float."""
    starts, ends = _crack_edges(padded)
    width = padded.shape[1] + 1
    start_keys = starts[:, 1] * width + starts[:, 0]
    outgoing: dict[int, list[int]] = {}
    for edge, key in enumerate(start_keys.tolist()):
        outgoing.setdefault(key, []).append(edge)
    directions = (ends - starts).tolist()
    end_keys = (ends[:, 1] * width + ends[:, 0]).tolist()
    used = np.zeros(len(starts), dtype=bool)
    loops = []
    for first in range(len(starts)):
        if used[first]:
            continue
        vertices, edge = [], first
        while not used[edge]:
            used[edge] = True
            vertices.append(starts[edge])
            edge = _next_edge(outgoing[end_keys[edge]], directions[edge], directions, used)
            if edge is None:
                break
        loops.append(_drop_collinear(np.array(vertices, dtype=np.float64)))
    return loops


def _next_edge(candidates: list[int], heading: list[int], directions: list[list[int]], used: np.ndarray) -> int | None:
    """Pick the next crack; at a saddle corner the one that keeps diagonal neighbours together (8-connected)."""
    free = [edge for edge in candidates if not used[edge]]
    if len(free) <= 1:
        return free[0] if free else None
    for edge in free:
        dx, dy = directions[edge]
        if heading[0] * dy - heading[1] * dx == -1:
            return edge
    return free[0]


def _drop_collinear(loop: np.ndarray) -> np.ndarray:
    """Keep only the vertices where the direction changes."""
    previous = np.roll(loop, 1, axis=0)
    following = np.roll(loop, -1, axis=0)
    incoming, outgoing = loop - previous, following - loop
    turns = incoming[:, 0] * outgoing[:, 1] - incoming[:, 1] * outgoing[:, 0] != 0
    return loop[turns]


def _signed_area(loop: np.ndarray) -> float:
    x, y = loop[:, 0], loop[:, 1]
    return float(np.sum(x * np.roll(y, -1) - np.roll(x, -1) * y) / 2.0)


def _simplify_closed(loop: np.ndarray, tolerance: float) -> np.ndarray:
    """Douglas-Peucker on a closed loop, split at vertex 0 and the vertex farthest from it."""
    if len(loop) <= 4:
        return loop
    far = int(np.argmax(np.sum((loop - loop[0]) ** 2, axis=1)))
    first = _simplify_open(loop[: far + 1], tolerance)
    second = _simplify_open(np.concatenate([loop[far:], loop[:1]]), tolerance)
    return np.concatenate([first[:-1], second[:-1]])


def _simplify_open(points: np.ndarray, tolerance: float) -> np.ndarray:
    keep = np.zeros(len(points), dtype=bool)
    keep[[0, -1]] = True
    stack = [(0, len(points) - 1)]
    while stack:
        start, end = stack.pop()
        if end - start < 2:
            continue
        segment = points[end] - points[start]
        offsets = points[start + 1 : end] - points[start]
        length = np.hypot(*segment)
        if length == 0:
            distances = np.hypot(offsets[:, 0], offsets[:, 1])
        else:
            distances = np.abs(segment[0] * offsets[:, 1] - segment[1] * offsets[:, 0]) / length
        index = int(np.argmax(distances))
        if distances[index] > tolerance:
            split = start + 1 + index
            keep[split] = True
            stack.extend([(start, split), (split, end)])
    return points[keep]
