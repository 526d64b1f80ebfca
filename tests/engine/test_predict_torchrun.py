"""``torchrun --nproc_per_node=2 -m engine predict``: the images are shared out over two processes (gloo on the CPU)
and rank 0 writes one results file, the same as a single process writes."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from pycocotools import mask as mask_utils

from engine.__main__ import main

ROOT = Path(__file__).resolve().parents[2]
BUNDLED = ROOT / "resources" / "models" / "nuclei_r18_gn.safetensors"
SAMPLES = sorted((ROOT / "resources" / "sample").glob("*.png"))


@pytest.fixture
def images(tmp_path) -> Path:
    """Three small crops of sample nuclei images (a few nuclei each: quick, and real detections)."""
    folder = tmp_path / "images"
    folder.mkdir()
    for i, path in enumerate(SAMPLES[:3]):
        crop = Image.open(path).convert("RGB").crop((0, 0, 96, 80 + 8 * i))
        crop.save(folder / f"crop{i}.png")
    return folder


def _by_image(results: list[dict]) -> dict[int, list[dict]]:
    grouped: dict[int, list[dict]] = {}
    for r in results:
        grouped.setdefault(r["image_id"], []).append(r)
    return {k: sorted(v, key=lambda r: -r["score"]) for k, v in grouped.items()}


@pytest.mark.slow  # ~20 s on a quiet 2-core CPU (three Python processes start), ~60 s on a loaded one
@pytest.mark.timeout(600)
def test_two_processes_write_the_results_of_one(tmp_path, images, capsys):
    single = tmp_path / "single" / "preds.json"
    assert main(["predict", "--weights", str(BUNDLED), "--images", str(images), "--out", str(single)]) == 0
    capsys.readouterr()

    shared = tmp_path / "shared" / "preds.json"
    env = {**os.environ, "OMP_NUM_THREADS": "1"}  # torchrun's own default, said here to keep its warning out
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2"]
    command += ["-m", "engine", "predict", "--weights", str(BUNDLED), "--images", str(images), "--out", str(shared)]
    run = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=540)
    assert run.returncode == 0, run.stderr[-3000:]
    assert run.stdout.count("detections on 3 image(s)") == 1 and "2 processes" in run.stdout  # rank 0 alone says it
    assert sorted(p.name for p in shared.parent.iterdir()) == ["preds.json", "preds.meta.json"]  # no temporary left

    meta_one = json.loads(single.with_name("preds.meta.json").read_text())
    meta_two = json.loads(shared.with_name("preds.meta.json").read_text())
    assert meta_two["images"] == meta_one["images"]  # same ids, names, sizes, in the same order
    assert meta_two["categories"] == meta_one["categories"]
    one, two = json.loads(single.read_text()), json.loads(shared.read_text())
    assert len(one) > 5 and len(two) == len(one)
    assert [r["image_id"] for r in two] == [r["image_id"] for r in one]  # written in image order
    by_one, by_two = _by_image(one), _by_image(two)
    for image_id, expected in by_one.items():
        got = by_two[image_id]
        assert len(got) == len(expected)
        # a process of one thread may round the last bits differently from a process of several
        np.testing.assert_allclose([r["bbox"] for r in got], [r["bbox"] for r in expected], atol=0.01)
        np.testing.assert_allclose([r["score"] for r in got], [r["score"] for r in expected], atol=1e-4)
        ious = mask_utils.iou([r["segmentation"] for r in got], [r["segmentation"] for r in expected], [0] * len(got))
        assert np.diag(np.asarray(ious)).min() > 0.98
        assert [r["category_id"] for r in got] == [r["category_id"] for r in expected]
