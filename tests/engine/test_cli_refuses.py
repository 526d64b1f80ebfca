"""The command line refuses what it cannot do well, with one ``error:`` line and nothing trained or written
(issue 15, item 8): zero or negative lengths and sizes, fractions and probabilities out of 0..1 or NaN, an --out that
is a file, a conversion onto its own source."""

from __future__ import annotations

import dataclasses
import json
import math

import pytest
from synthetic import make_dataset

from engine.__main__ import main
from engine.cli.flags import flag_fields, flag_name
from engine.config import AugmentConfig, ModelConfig, TrainConfig, in_range
from engine.data import write_coco

FAST = ["--input-size", "64", "--max-size", "64", "--warmup", "1", "--threads", "1"]


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    folder = tmp_path_factory.mktemp("refuses") / "data"
    write_coco(make_dataset(folder, n_images=3, size=64), folder / "annotations.json")
    return folder


def _one_error(capsys) -> str:
    out = capsys.readouterr()
    assert "Traceback" not in out.err
    errors = [line for line in out.err.splitlines() if line.startswith("error:")]
    assert len(errors) == 1, out.err
    return errors[0]


TRAIN_CASES = [
    ["--iters", "0"],
    ["--epochs", "0"],
    ["--epochs", "-1"],
    ["--lr", "0"],
    ["--lr", "nan"],
    ["--input-size", "0"],
    ["--input-size", "-10"],
    ["--threads", "0"],
    ["--threads", "-3"],
    ["--val-split", "1.5"],
    ["--val-split", "-0.1"],
    ["--vflip", "2"],
    ["--warmup", "-1"],
    ["--scale-jitter", "1.5"],
    ["--max-size", "1"],
    ["--anchor-sizes", "0", "0", "0", "0"],
    ["--anchor-sizes", "32"],
    ["--roi-samples", "0"],
    ["--detections", "0"],
    ["--batch-size", "0"],
    ["--momentum", "-1"],
    ["--grad-clip", "-1"],
    ["--lr-steps", "0.5", "2"],
    ["--max-bad-steps", "0"],
]


@pytest.mark.parametrize("case", TRAIN_CASES, ids=" ".join)
def test_train_refuses_a_value_out_of_range_before_anything_runs(case, data, tmp_path, capsys):
    out = tmp_path / "run"
    length = [] if case[0] in ("--iters", "--epochs") else ["--iters", "1"]  # the two exclude each other
    assert main(["train", "--data", str(data), "--out", str(out), *FAST, *length, *case]) == 2
    line = _one_error(capsys)
    assert case[0] in line, line  # the flag is named
    assert not (out / "model.safetensors").exists()


def test_every_flag_with_a_range_is_checked_by_its_config():
    """Each generated flag with a range refuses a value below it (and NaN for floats) through the dataclass."""
    for cls in (TrainConfig, AugmentConfig, ModelConfig):
        for f in flag_fields(cls):
            if "range" not in f.metadata:
                continue
            low, _ = f.metadata["range"]
            below = (low - 1) if low is not None else -math.inf
            value = tuple(below for _ in f.default) if isinstance(f.default, tuple) else below
            assert not in_range(below, f.metadata)
            with pytest.raises(ValueError, match=f.name):
                cls(**{f.name: value})
            if isinstance(f.default, float):
                with pytest.raises(ValueError, match=f.name):
                    cls(**{f.name: math.nan})
            assert flag_name(f)  # every ranged field is a flag


def test_every_numeric_train_flag_has_a_range():
    for cls in (TrainConfig, AugmentConfig):
        for f in flag_fields(cls):
            kind = f.type if isinstance(f.type, str) else f.type.__name__
            if kind.startswith(("int", "float", "tuple")):
                assert "range" in f.metadata, f.name
    assert {f.name for f in dataclasses.fields(ModelConfig) if "range" in f.metadata} >= {
        "min_size",
        "max_size",
        "anchor_sizes",
        "box_batch_per_image",
        "detections_per_image",
    }


def test_out_naming_a_file_is_refused_before_training(data, tmp_path, capsys):
    out = tmp_path / "taken.txt"
    out.write_text("mine")
    assert main(["train", "--data", str(data), "--out", str(out), *FAST, "--iters", "1"]) == 2
    assert "is a file" in _one_error(capsys) and out.read_text() == "mine"


@pytest.mark.parametrize(
    "case",
    [["--score-threshold", "5"], ["--score-threshold", "-1"], ["--score-threshold", "nan"], ["--mask-threshold", "2"]],
    ids=" ".join,
)
def test_predict_refuses_thresholds_outside_zero_to_one(case, tmp_path, capsys):
    image = tmp_path / "a.png"
    from PIL import Image

    Image.new("RGB", (32, 32)).save(image)
    weights = tmp_path / "w.safetensors"
    weights.write_bytes(b"x")  # never read: the flag is refused first
    args = ["predict", "--weights", str(weights), "--images", str(image), "--out", str(tmp_path / "p.json"), *case]
    assert main(args) == 2
    assert case[0] in _one_error(capsys)
    assert not (tmp_path / "p.json").exists()


def _labelme_folder(folder):
    from PIL import Image

    folder.mkdir()
    Image.new("RGB", (40, 30)).save(folder / "a.png")
    shapes = [
        {
            "label": "cell",
            "points": [[2, 2], [20, 2], [20, 20]],
            "shape_type": "polygon",
            "group_id": None,
            "flags": {},
        },
        {"label": "__ignore__", "points": [[25, 5], [35, 5], [35, 15]], "shape_type": "polygon", "flags": {}},
    ]
    doc = {"version": "5.0.1", "flags": {}, "shapes": shapes, "imagePath": "a.png", "imageData": None}
    doc.update(imageHeight=30, imageWidth=40)
    (folder / "a.json").write_text(json.dumps(doc))
    return folder


def test_convert_onto_its_own_labelme_folder_is_refused_and_the_files_are_kept(tmp_path, capsys):
    folder = _labelme_folder(tmp_path / "lm")
    before = (folder / "a.json").read_bytes()
    assert main(["convert", "--from", str(folder), "--to", str(folder)]) == 2
    assert "--from" in _one_error(capsys)
    assert (folder / "a.json").read_bytes() == before


def test_convert_onto_its_own_coco_file_is_refused(tmp_path, capsys):
    folder = tmp_path / "c"
    write_coco(make_dataset(folder, n_images=1, size=32), folder / "annotations.json")
    before = (folder / "annotations.json").read_bytes()
    assert main(["convert", "--from", str(folder / "annotations.json"), "--to", str(folder / "annotations.json")]) == 2
    assert "--from" in _one_error(capsys)
    assert (folder / "annotations.json").read_bytes() == before


@pytest.mark.parametrize("which", ["--val", "--val-split"])
def test_a_validation_image_of_another_size_stops_train_before_its_first_step(data, tmp_path, capsys, which):
    """Issue 15, item 12: the training images are checked when the loop reads them (engine.data.torch_dataset); the
    validation images, read only at the end, are checked up front too, with the data layer's error."""
    import shutil

    from PIL import Image

    copy = tmp_path / "data"
    shutil.copytree(data, copy)
    doc = json.loads((copy / "annotations.json").read_text())
    victim = doc["images"][-1]
    Image.new("RGB", (victim["width"] + 1, victim["height"])).save(copy / victim["file_name"])
    if which == "--val":
        args = ["--data", str(data), "--val", str(copy)]
    else:
        args = ["--data", str(copy), "--val-split", "0.34", "--seed", "0"]
    out = tmp_path / "run"
    assert main(["train", *args, "--out", str(out), *FAST, "--iters", "2", "--events-jsonl"]) == 2
    captured = capsys.readouterr()
    kinds = [json.loads(line)["kind"] for line in captured.out.splitlines() if line.startswith("{")]
    assert "step" not in kinds  # before the first step
    (line,) = [line for line in captured.err.splitlines() if line.startswith("error:")]
    assert "Traceback" not in captured.err
    assert "pixels but the annotations say" in line and victim["file_name"] in line
    assert not (out / "model.safetensors").exists()
