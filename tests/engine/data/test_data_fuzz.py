"""Fuzz (issue 15): hypothesis mutates COCO and labelme files and their images (values swapped for others of
any type, huge/negative/NaN numbers, dropped keys, deep nesting, flipped bytes, truncated or resized images)
and checks that reading, decoding every mask, loading the images and converting end either in success or
in DatasetError/ImageLoadError with a message: never another exception, a signal or a hang.

Every case runs in one guarded worker process (data_guard.py; restarted after a crash), so a segfault
fails the case, which hypothesis then shrinks, instead of killing the run. A step that opens the case in
the window can join data_guard.STEPS later; the cases here do not depend on the steps.
"""

from __future__ import annotations

import base64
import io
import json
import math
import os
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from data_guard import GuardedWorker
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st
from PIL import Image

from engine.data.masks import encode_mask

WIDTH, HEIGHT = 24, 16
CASES = int(os.environ.get("FUZZ_CASES", "300"))  # CI-sized; FUZZ_CASES=5000 for a longer hunt
DEEP = "__deep__"  # replaced in the JSON text by that many nested lists (json.dumps would recurse too deep)


def _mask_png(mask: np.ndarray) -> str:
    buffer = io.BytesIO()
    Image.fromarray(mask.astype(np.uint8) * 255).convert("1").save(buffer, format="PNG")
    return base64.b64encode(buffer.getvalue()).decode()


def _rle_example() -> dict[str, Any]:
    mask = np.zeros((HEIGHT, WIDTH), dtype=bool)
    mask[3:9, 10:20] = True
    return encode_mask(mask)


def coco_base() -> dict[str, Any]:
    image = {"width": WIDTH, "height": HEIGHT, "license": 1, "coco_url": "http://x/a.png"}
    return {
        "info": {"description": "fuzz", "year": 2017},
        "licenses": [{"id": 1, "name": "CC"}],
        "images": [{"id": 1, "file_name": "a.png", **image}, {"id": 2, "file_name": "b.png", **image}],
        "annotations": [
            {"id": 1, "image_id": 1, "category_id": 1, "segmentation": [[1, 1, 9, 1, 9, 9]], "bbox": [1, 1, 8, 8]},
            {"id": 2, "image_id": 1, "category_id": 2, "segmentation": [[12, 2, 20, 2, 16, 8], [2, 10, 6, 10, 4, 14]]},
            {"id": 3, "image_id": 2, "category_id": 1, "segmentation": _rle_example(), "iscrowd": 0},
            {"id": 4, "image_id": 2, "category_id": 1, "segmentation": {"size": [HEIGHT, WIDTH], "counts": [40, 344]}},
            {"id": 5, "image_id": 2, "category_id": 2, "bbox": [3.5, 4.5, 6, 5], "iscrowd": 1},
        ],
        "categories": [{"id": 1, "name": "cell", "supercategory": "bio"}, {"id": 2, "name": "debris"}],
    }


def labelme_base() -> dict[str, Any]:
    crop = np.zeros((4, 5), dtype=bool)
    crop[1:3, 1:4] = True
    shapes = [
        {"label": "cell", "points": [[1, 1], [9, 1], [9, 9]], "shape_type": "polygon", "group_id": None},
        {"label": "cell", "points": [[12, 2], [20, 9]], "shape_type": "rectangle", "group_id": 3},
        {"label": "cell", "points": [[5, 12], [5, 14]], "shape_type": "circle", "group_id": 3},
        {"label": "blob", "points": [[14, 10], [18, 13]], "shape_type": "mask", "mask": _mask_png(crop)},
        {"label": "__ignore__", "points": [[0, 0], [3, 0], [3, 3]], "shape_type": "polygon"},
    ]
    return {
        "version": "5.0.1",
        "flags": {},
        "shapes": shapes,
        "imagePath": "a.png",
        "imageData": None,
        "imageHeight": HEIGHT,
        "imageWidth": WIDTH,
    }


def json_paths(value: Any, prefix: tuple = ()) -> list[tuple]:
    """Every place in a JSON value, the value itself first."""
    paths = [prefix]
    if isinstance(value, dict):
        for key, item in value.items():
            paths += json_paths(item, (*prefix, key))
    elif isinstance(value, list):
        for index, item in enumerate(value):
            paths += json_paths(item, (*prefix, index))
    return paths


COCO_PATHS = json_paths(coco_base())
LABELME_PATHS = json_paths(labelme_base())

hostile_numbers = st.sampled_from(
    [0, -1, 1, 2**31, 2**32 + 1, 2**53, 2**63, 10**400, -(10**400), 1e7, 5e8, -5e8, 1e30, -1e30, 1e308, -1e308]
    + [math.nan, math.inf, -math.inf, 0.5, -0.0, 1e-300]
)
hostile_values = st.one_of(
    hostile_numbers,
    st.integers(),
    st.floats(),
    st.sampled_from([None, True, False, "", "x", "é©", "../../etc/passwd", "\x00", [], {}, [[]], [None], {"a": 1}]),
    st.text(max_size=6),
    st.lists(hostile_numbers, min_size=1, max_size=8),
    st.lists(st.lists(hostile_numbers, min_size=1, max_size=8), min_size=1, max_size=2),
    st.builds(
        lambda counts: {"size": [HEIGHT, WIDTH], "counts": counts},
        st.one_of(st.text(max_size=12), st.lists(st.integers(-5, 400), max_size=6)),
    ),
    st.integers(1, 3000).map(lambda depth: f"{DEEP}{depth}"),
)
edits = st.tuples(
    st.sampled_from(["replace", "delete", "wrap", "perturb", "perturb"]), st.integers(0, 10**6), hostile_values
)
byte_flips = st.lists(st.tuples(st.floats(0, 1, exclude_max=True), st.integers(1, 255)), max_size=4)
image_changes = st.sampled_from(["none", "none", "flip", "truncate", "resize", "empty", "text", "huge_header"])


def apply_edit(document: Any, paths: list[tuple], edit: tuple) -> Any:
    """``document`` with one edit at one of ``paths`` (picked by the edit's number)."""
    operation, pick, value = edit
    path = paths[pick % len(paths)]
    if not path:
        return value if operation == "replace" else [document] if operation == "wrap" else {}
    parent = document
    for key in path[:-1]:
        if not _has(parent, key):
            return document  # an earlier edit removed or replaced this place
        parent = parent[key]
    key = path[-1]
    if not _has(parent, key):
        return document
    if operation == "perturb":
        parent[key] = perturb(parent[key], pick)
    elif operation == "delete":
        del parent[key]
    elif operation == "wrap":
        parent[key] = [parent[key]]
    else:
        parent[key] = value
    return document


def perturb(value: Any, pick: int) -> Any:
    """A near miss of ``value``: one character of a string changed (RLE counts stay in their alphabet), a
    number scaled, shifted or negated, a list one item shorter or with an item twice."""
    if isinstance(value, str) and value and not value.startswith(DEEP):
        where = pick % len(value)
        return value[:where] + chr(48 + (pick // 7) % 64) + value[where + 1 :]
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return [value + 1, -value, value * 2, value * 10**6, value + 0.5, value * 1e30][pick % 6]
    if isinstance(value, list) and value:
        return value[:-1] if pick % 2 else [*value, value[pick % len(value)]]
    return value


def _has(container: Any, key: Any) -> bool:
    if isinstance(container, dict):
        return key in container
    return isinstance(container, list) and isinstance(key, int) and key < len(container)


def dump(document: Any) -> str:
    text = json.dumps(document)
    while DEEP in text:
        start = text.index(f'"{DEEP}')
        end = text.index('"', start + 1)
        depth = int(text[start + 1 + len(DEEP) : end])
        text = text[:start] + "[" * depth + "]" * depth + text[end + 1 :]
    return text


def flip_bytes(data: bytes, flips: list[tuple[float, int]]) -> bytes:
    if not data:
        return data
    array = bytearray(data)
    for where, mask in flips:
        array[int(where * len(array))] ^= mask
    return bytes(array)


def write_image(path: Path, change: str, flips: list[tuple[float, int]]) -> None:
    width, height = (WIDTH + 3, HEIGHT - 2) if change == "resize" else (WIDTH, HEIGHT)
    buffer = io.BytesIO()
    Image.fromarray(np.full((height, width, 3), 120, dtype=np.uint8)).save(buffer, format="PNG")
    data = buffer.getvalue()
    if change == "flip":
        data = flip_bytes(data, flips or [(0.5, 0xFF)])
    elif change == "truncate":
        data = data[: len(data) // 2]
    elif change == "empty":
        data = b""
    elif change == "text":
        data = b"not an image"
    elif change == "huge_header":  # a PNG header that declares 100000 x 100000 pixels
        data = data[:16] + (100_000).to_bytes(4, "big") * 2 + data[24:]
    path.write_bytes(data)


@st.composite
def cases(draw: st.DrawFn) -> dict[str, Any]:
    kind = draw(st.sampled_from(["coco", "labelme"]))
    return {
        "kind": kind,
        "edits": draw(st.lists(edits, min_size=0, max_size=4)),
        "text_flips": draw(st.one_of(st.just([]), byte_flips)),
        "truncate": draw(st.sampled_from([None, None, None, 0.5, 0.99])),
        "image": draw(image_changes),
        "image_flips": draw(byte_flips),
        "open_file": draw(st.booleans()),
    }


def build_case(folder: Path, case: dict[str, Any]) -> Path:
    """Write the case's files into ``folder``; the path to open (the folder or its JSON file)."""
    coco = case["kind"] == "coco"
    document = coco_base() if coco else labelme_base()
    paths = COCO_PATHS if coco else LABELME_PATHS
    for edit in case["edits"]:
        document = apply_edit(document, paths, edit)
    data = flip_bytes(dump(document).encode("utf-8"), case["text_flips"])
    if case["truncate"] is not None:
        data = data[: int(len(data) * case["truncate"])]
    json_path = folder / ("annotations.json" if coco else "a.json")
    json_path.write_bytes(data)
    write_image(folder / "a.png", case["image"], case["image_flips"])
    if coco:
        write_image(folder / "b.png", "none", [])
    return json_path if case["open_file"] else folder


@pytest.fixture(scope="module")
def worker():
    with GuardedWorker(timeout=30.0) as guarded:
        yield guarded


@settings(
    max_examples=CASES,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.function_scoped_fixture],
)
@given(case=cases())
def test_mutated_files_open_or_fail_with_the_projects_error(worker, case):
    with tempfile.TemporaryDirectory(prefix="fuzz-") as folder:
        target = build_case(Path(folder), case)
        report = worker.run(target)
    event(f"{case['kind']}: {report['outcome']} at {report.get('step')}")
    assert report["outcome"] in ("ok", "project_error"), report
    if report["outcome"] == "project_error":
        assert report["message"].strip() and report["type"] in ("DatasetError", "ImageLoadError")
    assert report["seconds"] < 20, report


def test_the_guard_reports_each_outcome(tmp_path):
    """The harness itself: a valid case opens, a broken one is the project's error, a segfault and a hang are
    reported as such and the next case runs in a fresh worker."""
    plain = {"edits": [], "text_flips": [], "truncate": None, "image": "none", "image_flips": [], "open_file": False}
    with GuardedWorker(timeout=3.0) as guarded:
        (tmp_path / "good").mkdir()
        report = guarded.run(build_case(tmp_path / "good", {**plain, "kind": "coco"}))
        assert report["outcome"] == "ok" and report["instances"] == 5 and report["mask_pixels"] > 0, report
        (tmp_path / "broken").mkdir()
        report = guarded.run(build_case(tmp_path / "broken", {**plain, "kind": "labelme", "truncate": 0.5}))
        assert report["outcome"] == "project_error" and "a.json: not valid JSON" in report["message"], report
        assert guarded.run("<segfault>") == {
            "outcome": "crash",
            "message": "the worker killed by signal 11",
            "seconds": pytest.approx(0, abs=3),
        }
        assert guarded.run("<hang>")["outcome"] == "hang"
        (tmp_path / "labelme").mkdir()
        report = guarded.run(build_case(tmp_path / "labelme", {**plain, "kind": "labelme"}))
        assert report["outcome"] == "ok" and report["instances"] == 3 and guarded.starts == 3, report
