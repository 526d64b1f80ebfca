"""Images of extreme aspect ratios (1 x 5000, 100 x 3000, 2400 x 120 px) are predicted, evaluated and trained on
like any other (issue 15, item 7): a resized side never rounds to 0 px, and the RoI pooler's feature scale is the
stride at which a feature map covers the image, not the rounded ratio that padding throws off."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from PIL import Image
from test_training import TINY

from engine import MaskRCNN
from engine.__main__ import main
from engine.checkpoint import save_checkpoint
from engine.inference import Predictor
from engine.model.pooler import feature_scale
from engine.structures import PredictSettings

SHAPES = [(1, 5000), (5000, 1), (100, 3000), (3000, 100), (120, 2400), (2400, 120), (3, 700)]  # (height, width)
STANDARD = TINY.replace(min_size=(800,), max_size=1333)


def test_feature_scale_of_a_padded_flat_image():
    assert feature_scale((24, 336), (66, 1333)) == 0.25  # the padding makes 24 / 66 look like 1/2
    assert feature_scale((2, 42), (44, 1333)) == 1 / 32
    assert feature_scale((200, 336), (800, 1333)) == 0.25 and feature_scale((25, 42), (800, 1333)) == 1 / 32


@pytest.mark.parametrize(
    "config", [STANDARD, TINY.replace(scale_policy="pixel-scale", tile_size=256)], ids=["short", "pixel"]
)
def test_the_predictor_takes_any_aspect_ratio(config):
    torch.manual_seed(0)
    predictor = Predictor(MaskRCNN(config).eval(), "cpu", feature_budget=0)
    rng = np.random.default_rng(0)
    for height, width in SHAPES:
        pred = predictor.predict(rng.integers(0, 255, (height, width, 3), dtype=np.uint8), PredictSettings(0.0))
        assert (pred.height, pred.width) == (height, width)
        for crop in pred.masks:
            assert crop.y0 + crop.mask.shape[0] <= height and crop.x0 + crop.mask.shape[1] <= width


@pytest.fixture(scope="module")
def flat(tmp_path_factory):
    """A model and a COCO set of a 64 x 64 image and a 100 x 3000 one, each with a rectangle."""
    folder = tmp_path_factory.mktemp("flat")
    torch.manual_seed(0)
    save_checkpoint(MaskRCNN(STANDARD), folder / "model.safetensors", ["cell", "nucleus"])
    data = folder / "data"
    data.mkdir()
    images, annotations = [], []
    for index, (height, width) in enumerate([(64, 64), (100, 3000)], start=1):
        Image.fromarray(np.full((height, width, 3), 60 * index, np.uint8)).save(data / f"{index}.png")
        images.append({"id": index, "file_name": f"{index}.png", "height": height, "width": width})
        x0, y0, x1, y1 = 8, 8, min(width - 8, 56), height - 8
        polygon = [x0, y0, x1, y0, x1, y1, x0, y1]
        annotations.append(
            {
                "id": index,
                "image_id": index,
                "category_id": 1 + index % 2,
                "segmentation": [polygon],
                "bbox": [x0, y0, x1 - x0, y1 - y0],
                "area": (x1 - x0) * (y1 - y0),
                "iscrowd": 0,
            }
        )
    categories = [{"id": 1, "name": "cell"}, {"id": 2, "name": "nucleus"}]
    doc = {"images": images, "annotations": annotations, "categories": categories}
    (data / "annotations.json").write_text(json.dumps(doc))
    return folder


def test_predict_writes_every_image_of_a_folder_with_extreme_ones(flat, tmp_path, capsys):
    folder = tmp_path / "images"
    folder.mkdir()
    for height, width in [(64, 64), (1, 5000), (2400, 120), (100, 3000)]:
        Image.new("RGB", (width, height), (90, 90, 90)).save(folder / f"{height}x{width}.png")
    out = tmp_path / "preds.json"
    args = ["predict", "--weights", str(flat / "model.safetensors"), "--images", str(folder), "--out", str(out)]
    assert main([*args, "--score-threshold", "0", "--device", "cpu"]) == 0
    meta = json.loads((tmp_path / "preds.meta.json").read_text())
    sizes = {(im["height"], im["width"]) for im in meta["images"]}
    assert sizes == {(64, 64), (1, 5000), (2400, 120), (100, 3000)} and not meta["skipped"]
    assert "Traceback" not in capsys.readouterr().err


def test_evaluate_takes_an_extreme_image(flat, capsys):
    args = ["evaluate", "--weights", str(flat / "model.safetensors"), "--data", str(flat / "data"), "--device", "cpu"]
    assert main(args) == 0
    assert "Traceback" not in capsys.readouterr().err


def test_train_takes_an_extreme_image(flat, tmp_path):
    out = tmp_path / "run"
    args = ["train", "--data", str(flat / "data"), "--out", str(out), "--input-size", "64", "--max-size", "1333"]
    args += ["--batch-size", "1"]  # the flat image alone in its batch: a square one beside it hid the padding
    assert main([*args, "--iters", "2", "--warmup", "1", "--threads", "2", "--device", "cpu"]) == 0
    assert (out / "model.safetensors").is_file()
