"""``python -m engine predict | evaluate | convert`` run in-process on tiny data: files on disk, exit codes, stderr."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import SHARED_DATA
from PIL import Image
from pycocotools.coco import COCO
from safetensors.torch import save_file
from test_evaluate import DISC, SQUARE, GroundTruthModel, make_shapes_dataset

from engine.__main__ import main
from engine.checkpoint import CheckpointInfo, save_checkpoint
from engine.config import ModelConfig
from engine.data import read_dataset
from engine.model.mask_rcnn import MaskRCNN

TINY = dict(
    min_size=(64,), max_size=96, fpn_channels=32, fpn_groups=8, representation_size=64, mask_head_channels=16,
    rpn_pre_nms_top_n_test=100, rpn_post_nms_top_n_test=50,
)  # fmt: skip


def _tiny_checkpoint(path: Path, class_names: list[str]) -> Path:
    torch.manual_seed(0)
    return save_checkpoint(MaskRCNN(ModelConfig(num_classes=len(class_names) + 1, **TINY)), path, class_names)


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A COCO project folder (img1..3.png + ann.json, categories disc=3, square=7) and a tiny model beside it."""
    root = tmp_path_factory.mktemp("cli")
    make_shapes_dataset(root / "data")
    _tiny_checkpoint(root / "model.safetensors", ["disc", "square"])
    return root


def _error_lines(capsys: pytest.CaptureFixture) -> list[str]:
    return [line for line in capsys.readouterr().err.splitlines() if line.strip()]


def _read_json(path: Path):  # noqa: ANN202
    return json.loads(path.read_text())


# ----- predict -----


def test_predict_on_a_coco_project_writes_loadable_results_and_overlays(project: Path, tmp_path: Path, capsys) -> None:  # noqa: ANN001
    out, overlays = tmp_path / "res" / "preds.json", tmp_path / "overlays"
    argv = ["predict", "--weights", str(project / "model.safetensors"), "--images", str(project / "data")]
    code = main(argv + ["--out", str(out), "--overlays", str(overlays), "--score-threshold", "0.0", "--device", "cpu"])
    assert code == 0, capsys.readouterr().err
    results, meta = _read_json(out), _read_json(out.with_name("preds.meta.json"))
    assert [im["id"] for im in meta["images"]] == [1, 2, 3]  # the COCO file's ids
    assert [im["file_name"] for im in meta["images"]] == ["img1.png", "img2.png", "img3.png"]
    assert meta["categories"] == [{"id": DISC, "name": "disc"}, {"id": SQUARE, "name": "square"}]
    assert results, "a random model with threshold 0 detects something"
    for r in results:
        assert set(r) == {"image_id", "category_id", "bbox", "score", "segmentation"}
        assert r["category_id"] in (DISC, SQUARE) and 0.0 <= r["score"] <= 1.0
        assert isinstance(r["segmentation"]["counts"], str) and r["segmentation"]["size"] == [64, 80]
    gt = COCO(str(out.with_name("preds.meta.json")))
    loaded = gt.loadRes(str(out))
    assert len(loaded.getAnnIds()) == len(results)
    gt_ids = COCO(str(project / "data" / "ann.json"))  # the dataset's own file accepts the results too
    assert len(gt_ids.loadRes(str(out)).getAnnIds()) == len(results)
    # overlays: one PNG per image, same size, and where a detection is the pixels changed
    pngs = sorted(p.name for p in overlays.iterdir())
    assert pngs == ["img1.png", "img2.png", "img3.png"]
    drawn = np.asarray(Image.open(overlays / "img1.png").convert("RGB"))
    original = np.asarray(Image.open(project / "data" / "img1.png").convert("RGB"))
    assert drawn.shape == original.shape
    if any(r["image_id"] == 1 for r in results):
        assert (drawn != original).any(axis=2).mean() > 0.01


def test_predict_threshold_filters(project: Path, tmp_path: Path) -> None:
    base = ["predict", "--weights", str(project / "model.safetensors"), "--images", str(project / "data" / "img1.png")]
    assert main(base + ["--out", str(tmp_path / "all.json"), "--score-threshold", "0"]) == 0
    assert main(base + ["--out", str(tmp_path / "top.json"), "--score-threshold", "1"]) == 0  # 0 to 1 (issue 15)
    everything = _read_json(tmp_path / "all.json")
    assert everything and all(r["score"] >= 1 for r in _read_json(tmp_path / "top.json"))
    assert {r["image_id"] for r in everything} == {1}  # a single image file is image 1
    assert _read_json(tmp_path / "all.meta.json")["images"][0]["file_name"] == "img1.png"


def test_predict_reports_corrupt_images_and_runs_the_rest(project: Path, tmp_path: Path, capsys) -> None:  # noqa: ANN001
    folder = tmp_path / "plain"
    folder.mkdir()
    for name in ("b.png", "d.png"):
        (folder / name).write_bytes((project / "data" / "img1.png").read_bytes())
    (folder / "a_garbage.png").write_bytes(b"this is not an image")
    good = (project / "data" / "img2.png").read_bytes()
    (folder / "c_truncated.png").write_bytes(good[: len(good) // 2])  # header fine, pixels cut off
    out = tmp_path / "p.json"
    argv = ["predict", "--weights", str(project / "model.safetensors"), "--images", str(folder), "--out", str(out)]
    assert main(argv + ["--score-threshold", "0"]) == 0
    warnings = [line for line in capsys.readouterr().err.splitlines() if line.startswith("warning:")]
    assert len(warnings) == 2
    assert "a_garbage.png" in warnings[0] and "c_truncated.png" in warnings[1]
    meta = _read_json(tmp_path / "p.meta.json")
    assert [(im["id"], im["file_name"]) for im in meta["images"]] == [(1, "b.png"), (3, "d.png")]
    assert [s["file_name"] for s in meta["skipped"]] == ["c_truncated.png"]
    assert meta["categories"] == [{"id": 1, "name": "disc"}, {"id": 2, "name": "square"}]  # plain folder: labels
    assert {r["image_id"] for r in _read_json(out)} <= {1, 3}
    COCO(str(tmp_path / "p.meta.json")).loadRes(str(out))


# ----- evaluate -----


def test_evaluate_prints_a_table_and_writes_json(project: Path, tmp_path: Path, capsys) -> None:  # noqa: ANN001
    out = tmp_path / "metrics.json"
    argv = ["evaluate", "--weights", str(project / "model.safetensors"), "--data", str(project / "data")]
    assert main(argv + ["--json", str(out), "--device", "auto"]) == 0
    printed = capsys.readouterr().out
    assert "AP50" in printed and "box" in printed and "mask" in printed and "disc" in printed
    metrics = _read_json(out)
    assert metrics["images"] == 3 and set(metrics["per_class"]) == {"disc", "square"}
    assert all(-1.0 <= v <= 1.0 for kind in ("bbox", "segm") for v in metrics[kind].values())


def test_evaluate_table_shows_the_numbers(project: Path, monkeypatch, capsys) -> None:  # noqa: ANN001
    """With a model that answers the ground truth, the table says 100.0 where COCO defines AP."""
    import engine.cli.evaluate as command

    dataset = read_dataset(project / "data")
    model = GroundTruthModel(dataset, {DISC: 2, SQUARE: 1})  # label 1 = square, as its class names say
    info = CheckpointInfo(config=ModelConfig(num_classes=3), class_names=["square", "disc"])
    monkeypatch.setattr(command, "load_model", lambda path, device: (model, info))
    assert main(["evaluate", "--weights", str(project / "model.safetensors"), "--data", str(project / "data")]) == 0
    lines = capsys.readouterr().out.splitlines()
    box = next(line for line in lines if line.startswith("box")).split()
    mask = next(line for line in lines if line.startswith("mask ")).split()
    assert box[1:6] == mask[1:6] == ["100.0"] * 5 and box[6] == "-"  # AP AP50 AP75 S M; no large object
    assert next(line for line in lines if line.startswith("square")).split()[1] == "100.0"


# ----- convert -----


def _masks_by_image(path: Path) -> dict[str, list[bytes]]:
    dataset = read_dataset(path)
    out = {}
    for image in dataset.images:
        names = {c.id: c.name for c in dataset.categories}
        masks = [
            names[i.category_id].encode() + np.packbits(i.decode_mask(image.height, image.width)).tobytes()
            for i in image.instances
            if not i.iscrowd
        ]
        out[Path(image.path).name] = sorted(masks)
    return out


def test_convert_round_trip_coco_labelme_coco(project: Path, tmp_path: Path, capsys) -> None:  # noqa: ANN001
    source = project / "data" / "ann.json"
    assert main(["convert", "--from", str(source), "--to", str(tmp_path / "lm")]) == 0
    assert "crowd region" in capsys.readouterr().err  # labelme cannot hold the crowd region: said so
    assert sorted(p.name for p in (tmp_path / "lm").glob("*.json")) == ["img1.json", "img2.json", "img3.json"]
    assert main(["convert", "--from", str(tmp_path / "lm"), "--to", str(tmp_path / "back.json")]) == 0
    assert _masks_by_image(tmp_path / "back.json") == _masks_by_image(source)  # the same pixels, crowd aside
    assert main(["convert", "--from", str(source), "--to", str(tmp_path / "copy.json")]) == 0
    copy = read_dataset(tmp_path / "copy.json")
    assert sum(i.iscrowd for im in copy.images for i in im.instances) == 1  # COCO keeps the crowd region
    assert _masks_by_image(tmp_path / "copy.json") == _masks_by_image(source)
    (tmp_path / "folder").mkdir()  # --format coco into an existing folder: its annotations.json
    assert main(["convert", "--from", str(source), "--to", str(tmp_path / "folder"), "--format", "coco"]) == 0
    assert _masks_by_image(tmp_path / "folder" / "annotations.json") == _masks_by_image(source)


def test_convert_real_labelme_example(tmp_path: Path) -> None:
    folder = SHARED_DATA / "labelme_example" / "data_annotated"
    if not folder.is_dir():
        pytest.skip(f"labelme example not found at {folder} (../shared/data is absent in a plain clone)")
    assert main(["convert", "--from", str(folder), "--to", str(tmp_path / "coco.json")]) == 0
    source, converted = read_dataset(folder), read_dataset(tmp_path / "coco.json")
    assert len(converted.images) == len(source.images) == 3
    assert [c.name for c in converted.categories] == [c.name for c in source.categories]
    assert converted.num_instances == source.num_instances > 0
    for a, b in zip(source.images, converted.images):
        assert Path(converted.image_path(b)).resolve() == Path(source.image_path(a)).resolve()


# ----- user errors: exit 2, one "error:" line, no traceback -----


@pytest.fixture(scope="module")
def bad_files(project: Path) -> dict[str, Path]:
    root = project / "bad"
    root.mkdir()
    (root / "notes.pth").write_text("not weights")
    save_file({"w": torch.zeros(2)}, str(root / "foreign.safetensors"))  # safetensors, but not our checkpoint
    torch.save({"w": torch.zeros(2)}, root / "other.pth")  # a state dict of some other network
    (root / "broken.json").write_text("{not json")
    _tiny_checkpoint(root / "pets.safetensors", ["cat", "dog"])
    _tiny_checkpoint(root / "three.safetensors", ["class 1", "class 2", "class 3"])
    return {p.stem: p for p in root.iterdir()}


ERROR_CASES = {
    "missing weights": (["evaluate", "--weights", "{root}/nope.safetensors", "--data", "{data}"], "nope.safetensors"),
    "missing data": (["evaluate", "--weights", "{model}", "--data", "{root}/nowhere"], "nowhere"),
    "text as weights": (
        ["predict", "--weights", "{bad}/notes.pth", "--images", "{data}", "--out", "{tmp}/o.json"],
        "notes.pth",
    ),
    "foreign safetensors": (
        ["evaluate", "--weights", "{bad}/foreign.safetensors", "--data", "{data}"],
        "not a Mask R-CNN Studio",
    ),
    "other state dict": (["evaluate", "--weights", "{bad}/other.pth", "--data", "{data}"], "other.pth"),
    "dataset as weights": (
        ["evaluate", "--weights", "{data}/ann.json", "--data", "{data}"],
        "not a model weights file",
    ),
    "class names": (["evaluate", "--weights", "{bad}/pets.safetensors", "--data", "{data}"], "'cat'"),
    "class count": (["evaluate", "--weights", "{bad}/three.safetensors", "--data", "{data}"], "3 unnamed classes"),
    "broken json": (["convert", "--from", "{bad}/broken.json", "--to", "{tmp}/x.json"], "broken.json"),
    "coco needs .json": (["convert", "--from", "{data}", "--to", "{tmp}/x.txt", "--format", "coco"], ".json"),
    "out is a folder": (["predict", "--weights", "{model}", "--images", "{data}", "--out", "{tmp}"], "is a folder"),
    "no images": (
        ["predict", "--weights", "{model}", "--images", "{empty}", "--out", "{tmp}/o.json"],
        "holds no images",
    ),
    "missing flag": (["predict", "--weights", "{model}"], "--images"),
    "bad number": (
        ["predict", "--weights", "{model}", "--images", "{data}", "--out", "o", "--score-threshold", "x"],
        "x",
    ),
}


@pytest.mark.parametrize("case", list(ERROR_CASES))
def test_user_errors_exit_2_with_one_line(case: str, project: Path, bad_files, tmp_path: Path, capsys) -> None:  # noqa: ANN001
    argv, expected = ERROR_CASES[case]
    (tmp_path / "empty").mkdir()
    places = {
        "root": project, "data": project / "data", "model": project / "model.safetensors",
        "bad": project / "bad", "tmp": tmp_path, "empty": tmp_path / "empty",
    }  # fmt: skip
    code = main([a.format(**places) for a in argv])
    captured = capsys.readouterr()
    lines = [line for line in captured.err.splitlines() if line.strip()]
    assert code == 2, captured
    assert len(lines) == 1 and lines[0].startswith("error: "), lines
    assert expected in lines[0] and "Traceback" not in captured.err + captured.out


def test_cuda_asked_for_without_cuda(project: Path, capsys) -> None:  # noqa: ANN001
    if torch.cuda.is_available():
        pytest.skip("CUDA is available here; the missing-CUDA message cannot be shown")
    argv = ["evaluate", "--weights", str(project / "model.safetensors"), "--data", str(project / "data")]
    assert main(argv + ["--device", "cuda"]) == 2
    (line,) = _error_lines(capsys)
    assert line.startswith("error: --device cuda") and "--device cpu" in line


@pytest.mark.parametrize("command", ["predict", "evaluate", "convert"])
def test_help(command: str, capsys) -> None:  # noqa: ANN001
    assert main([command, "--help"]) == 0
    text = capsys.readouterr().out
    assert text.startswith(f"usage: python -m engine {command}")
    flags = {"predict": ["--weights", "--images", "--out", "--overlays", "--score-threshold", "--device"]}
    flags |= {"evaluate": ["--weights", "--data", "--json", "--device"], "convert": ["--from", "--to", "--format"]}
    assert all(flag in text for flag in flags[command])


# ----- real data (skipped when ../shared/data is absent) -----


def test_convert_real_nuclei_masks_to_coco(tmp_path: Path) -> None:
    folder = SHARED_DATA / "nuclei_dsb2018" / "stage1_train"
    if not folder.is_dir():
        pytest.skip(f"nuclei set not found at {folder} (../shared/data is absent in a plain clone)")
    assert main(["convert", "--from", str(folder), "--to", str(tmp_path / "nuclei.json")]) == 0
    converted = read_dataset(tmp_path / "nuclei.json")
    assert (len(converted.images), converted.num_instances) == (20, 953)  # the counts the data README gives
    assert [c.name for c in converted.categories] == ["nucleus"]


def test_predict_on_a_16_bit_tiff_with_overlay(project: Path, tmp_path: Path) -> None:
    image = SHARED_DATA / "stardist_nuclei" / "img2d.tif"
    if not image.is_file():
        pytest.skip(f"stardist image not found at {image} (../shared/data is absent in a plain clone)")
    argv = ["predict", "--weights", str(project / "model.safetensors"), "--images", str(image)]
    assert (
        main(argv + ["--out", str(tmp_path / "p.json"), "--overlays", str(tmp_path / "ov"), "--score-threshold", "0"])
        == 0
    )
    meta = _read_json(tmp_path / "p.meta.json")
    assert meta["images"] == [{"id": 1, "file_name": "img2d.tif", "width": 512, "height": 512}]
    assert Image.open(tmp_path / "ov" / "img2d.png").size == (512, 512)
    COCO(str(tmp_path / "p.meta.json")).loadRes(str(tmp_path / "p.json"))


def test_defaults_prints_and_changes_the_inference_settings_and_keeps_the_weights(tmp_path: Path, capsys) -> None:  # noqa: ANN001
    from safetensors import safe_open

    from engine.checkpoint import load_checkpoint

    source = _tiny_checkpoint(tmp_path / "a.safetensors", ["cell"])
    model, _ = load_checkpoint(source)
    half = tmp_path / "half.safetensors"
    save_checkpoint(model, half, ["cell"], history=[{"iteration": 3}], half=True)
    assert main(["defaults", "--weights", str(half)]) == 0
    assert "--proposals" in capsys.readouterr().out
    out = tmp_path / "b.safetensors"
    assert (
        main(["defaults", "--weights", str(half), "--out", str(out), "--proposals", "2000", "--detections", "450"]) == 0
    )
    changed, info = load_checkpoint(out)
    assert changed.config.rpn_post_nms_top_n_test == 2000 and changed.config.detections_per_image == 450
    assert changed.config == model.config.replace(rpn_post_nms_top_n_test=2000, detections_per_image=450)
    assert info.class_names == ["cell"] and info.history == [{"iteration": 3}]
    with safe_open(str(out), "pt") as f:  # stored in float16 as its source was
        assert {str(f.get_slice(k).get_dtype()) for k in f.keys()} >= {"F16"}
    original, _ = load_checkpoint(half)
    for key, value in original.state_dict().items():
        assert torch.equal(value, changed.state_dict()[key]), key
    assert original.config == model.config  # the source file is untouched


def test_defaults_refuses_a_change_without_out_and_a_bad_value(tmp_path: Path, capsys) -> None:  # noqa: ANN001
    source = _tiny_checkpoint(tmp_path / "a.safetensors", ["cell"])
    assert main(["defaults", "--weights", str(source), "--proposals", "2000"]) == 2
    assert "--out" in _error_lines(capsys)[-1]
    assert (
        main(["defaults", "--weights", str(source), "--out", str(tmp_path / "b.safetensors"), "--box-nms", "1.5"]) == 2
    )
    assert "between 0 and 1" in _error_lines(capsys)[-1]
    assert not (tmp_path / "b.safetensors").exists()
