"""``python -m engine train`` end to end on a tiny synthetic set."""

from __future__ import annotations

import torch
from synthetic import make_dataset

from engine.__main__ import main
from engine.checkpoint import load_checkpoint, save_checkpoint
from engine.data import write_coco


def _data(tmp_path):
    dataset = make_dataset(tmp_path / "data", n_images=3, size=64)
    write_coco(dataset, tmp_path / "data" / "annotations.json")
    return tmp_path / "data"


ARGS = ["--iters", "2", "--input-size", "64", "--max-size", "64", "--warmup", "1", "--threads", "2"]


def test_train_writes_a_checkpoint_with_classes_and_history(tmp_path, capsys):
    data = _data(tmp_path)
    assert main(["train", "--data", str(data), "--out", str(tmp_path / "run"), "--val-split", "0.34", *ARGS]) == 0
    model, info = load_checkpoint(tmp_path / "run" / "model.safetensors")
    assert info.class_names == ["disc", "square"] and model.config.min_size == (64,)
    assert [h["iteration"] for h in info.history if "loss" in h] == [1, 2]
    assert any("val_mask_AP" in h for h in info.history)  # validated on the held-out image
    out = capsys.readouterr()
    assert "training on 2 images" in out.out and "mask AP" in out.out and "it/s" in out.err  # tqdm on stderr


def test_fine_tune_from_a_checkpoint_with_other_classes(tmp_path, capsys):
    from engine import MaskRCNN, ModelConfig

    data = _data(tmp_path)
    torch.manual_seed(0)
    start = MaskRCNN(ModelConfig(num_classes=4, min_size=(64,), max_size=64))
    save_checkpoint(start, tmp_path / "start.safetensors", ["a", "b", "c"])
    code = main(
        [
            "train",
            "--data",
            str(data),
            "--out",
            str(tmp_path / "ft"),
            "--weights",
            str(tmp_path / "start.safetensors"),
            *ARGS,
        ]
    )
    assert code == 0
    assert "the class layers (box classifier, box regression and mask outputs) are renewed" in capsys.readouterr().err
    tuned, info = load_checkpoint(tmp_path / "ft" / "model.safetensors")
    assert tuned.config.num_classes == 3 and info.class_names == ["disc", "square"]


def test_user_errors_exit_2_with_one_line(tmp_path, capsys):
    assert main(["train", "--data", str(tmp_path / "missing"), "--out", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: --data") and "no such file" in err[0]
    empty = tmp_path / "empty"
    empty.mkdir()
    from PIL import Image

    Image.new("RGB", (32, 32)).save(empty / "a.png")
    assert main(["train", "--data", str(empty), "--out", str(tmp_path / "o")]) == 2
    assert "no annotated images" in capsys.readouterr().err


def test_events_as_json_lines_and_cancel_file(tmp_path, capsys):
    import json

    data = _data(tmp_path)
    assert main(["train", "--data", str(data), "--out", str(tmp_path / "run"), "--events-jsonl", *ARGS]) == 0
    events = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert events[0] == {"kind": "start", "train_images": 3, "val_images": 0, "class_names": ["disc", "square"]}
    steps = [e for e in events if e["kind"] == "step"]
    assert [e["iteration"] for e in steps] == [1, 2] and steps[0]["losses"]["loss"] > 0
    assert events[-1]["kind"] == "done"
    stop = tmp_path / "stop"
    stop.write_text("")
    args = ["train", "--data", str(data), "--out", str(tmp_path / "run2"), "--events-jsonl", "--cancel-file", str(stop)]
    assert main([*args, *ARGS]) == 0
    events = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert events[-1]["kind"] == "cancelled" and (tmp_path / "run2" / "model.safetensors").is_file()


def test_groupnorm_backbone_and_a_half_precision_copy(tmp_path, capsys):
    data = _data(tmp_path)
    out = tmp_path / "gn"
    assert main(["train", "--data", str(data), "--out", str(out), "--backbone-norm", "gn", "--half-copy", *ARGS]) == 0
    model, _ = load_checkpoint(out / "model.safetensors")
    half, info = load_checkpoint(out / "model.fp16.safetensors")
    assert model.config.backbone_norm == "gn"
    assert isinstance(model.backbone.body.bn1, torch.nn.GroupNorm)
    assert (out / "model.fp16.safetensors").stat().st_size < 0.6 * (out / "model.safetensors").stat().st_size
    for (key, a), b in zip(model.state_dict().items(), half.state_dict().values()):
        assert b.dtype == a.dtype, key  # loading restores float32
        assert torch.allclose(a, b, rtol=1e-3, atol=1e-4), key
    assert [h["iteration"] for h in info.history if "loss" in h] == [1, 2]
    capsys.readouterr()
    weights = str(out / "model.safetensors")
    code = main(
        [
            "train",
            "--data",
            str(data),
            "--out",
            str(tmp_path / "x"),
            "--weights",
            weights,
            "--backbone-norm",
            "bn",
            *ARGS,
        ]
    )
    assert code == 2 and "--backbone-norm changes the backbone" in capsys.readouterr().err


def test_val_split_divides_only_the_trainable_images():
    from engine.cli.train import _split

    reviewed = [3, 17, 42, 88, 95]  # 5 reviewed images in a folder of 100: 1 validates, 4 train
    train_ids, val_ids = _split(reviewed, 0.2, seed=0)
    assert len(val_ids) == 1 and sorted(train_ids + val_ids) == reviewed
    assert _split(reviewed, 0.2, seed=0) == (train_ids, val_ids)  # deterministic
    assert _split([7], 0.5, seed=0) == ([7], [])  # one image: it trains
    train_ids, val_ids = _split(list(range(10)), 0.9, seed=1)
    assert len(train_ids) == 1 and len(val_ids) == 9  # always something to train on


def test_intensity_augmentation_flags_reach_the_run_and_bad_values_are_one_line(tmp_path, capsys):
    data = _data(tmp_path)
    out = tmp_path / "aug"
    flags = ["--gamma-jitter", "0.7", "--contrast-jitter", "0.3", "--brightness-jitter", "0.1"]
    flags += ["--invert", "0.3", "--grayscale", "0.3", "--blur", "0.3"]
    assert main(["train", "--data", str(data), "--out", str(out), *flags, *ARGS]) == 0
    _, info = load_checkpoint(out / "model.safetensors")
    saved = info.extra["train_config"]["augment"]
    assert (saved["gamma_jitter"], saved["contrast_jitter"], saved["brightness_jitter"]) == (0.7, 0.3, 0.1)
    assert (saved["invert"], saved["grayscale"], saved["blur"]) == (0.3, 0.3, 0.3)
    assert all(h["loss"] > 0 for h in info.history if "loss" in h)
    capsys.readouterr()
    assert main(["train", "--data", str(data), "--out", str(tmp_path / "bad"), "--invert", "2", *ARGS]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: photometric --invert (invert) out of range")
    assert not (tmp_path / "bad" / "model.safetensors").exists()


def test_augment_preset_and_single_flags_over_it():
    from engine.cli.train import augmentation, build_parser
    from engine.config import AUGMENT_PRESETS, AugmentConfig, TrainConfig

    base = ["--data", "d", "--out", "o"]
    assert augmentation(build_parser().parse_args(base)) == AugmentConfig()  # flips: TrainConfig's defaults
    values = augmentation(
        build_parser().parse_args([*base, "--augment", "microscopy", "--blur", "0", "--vflip", "0.2"])
    )
    assert values == AUGMENT_PRESETS["microscopy"].replace(blur=0.0, vflip=0.2)
    cfg = TrainConfig(augment=values)
    assert cfg.augment.gamma_jitter == 0.7 and cfg.augment.blur == 0.0 and cfg.augment.vflip == 0.2


def test_the_preset_a_saved_train_config_used():
    import dataclasses

    from engine.config import AUGMENT_PRESETS, TrainConfig, augment_preset_of

    assert augment_preset_of(None) is None and augment_preset_of({}) is None
    assert augment_preset_of(dataclasses.asdict(TrainConfig())) == "flips"
    microscopy = dataclasses.asdict(TrainConfig(augment=AUGMENT_PRESETS["microscopy"]))
    assert augment_preset_of(microscopy) == "microscopy"
    mix = {**microscopy, "augment": {**microscopy["augment"], "invert": 0.0}}
    assert augment_preset_of(mix) is None  # a mix of its own
    with_jitter = {**microscopy, "augment": {**microscopy["augment"], "scale_jitter": 0.5}}
    assert augment_preset_of(with_jitter) == "microscopy"  # no preset sets scale jitter: it does not count


# What an earlier version saved as train_config: augmentation fields flat beside lr (the bundled model has this).
FLAT_MICROSCOPY = {
    "iterations": 600, "batch_size": 2, "optimizer": "sgd", "lr": 0.01, "momentum": 0.9, "weight_decay": 0.0001,
    "warmup_iters": 20, "warmup_factor": 0.001, "schedule": "cosine", "lr_steps": [0.67, 0.89], "grad_clip": 10.0,
    "amp": True, "hflip": 0.5, "vflip": 0.5, "gamma_jitter": 0.7, "contrast_jitter": 0.3, "brightness_jitter": 0.1,
    "invert": 0.3, "grayscale": 0.3, "blur": 0.3, "seed": 0, "val_every": 100, "checkpoint_every": 100,
    "max_bad_steps": 20,
}  # fmt: skip


def test_a_flat_train_config_of_an_earlier_version_reads_into_the_nested_form(tmp_path):
    from engine import MaskRCNN, ModelConfig
    from engine.checkpoint import read_info
    from engine.config import AUGMENT_PRESETS, TrainConfig, augment_preset_of

    cfg = TrainConfig.from_dict(FLAT_MICROSCOPY)
    assert cfg.augment == AUGMENT_PRESETS["microscopy"] and cfg.lr_steps == (0.67, 0.89) and cfg.iterations == 600
    assert TrainConfig.from_dict(cfg.to_dict()) == cfg
    assert augment_preset_of(FLAT_MICROSCOPY) == "microscopy"
    assert augment_preset_of({**FLAT_MICROSCOPY, "blur": 0.1}) is None
    path = tmp_path / "old.safetensors"
    save_checkpoint(MaskRCNN(ModelConfig(min_size=(64,), max_size=64)), path, extra={"train_config": FLAT_MICROSCOPY})
    saved = read_info(path).extra["train_config"]
    assert saved["augment"]["gamma_jitter"] == 0.7 and "gamma_jitter" not in saved and saved["lr"] == 0.01
    assert augment_preset_of(saved) == "microscopy"
    odd = {**FLAT_MICROSCOPY, "a_field_of_another_version": 1}  # not a TrainConfig: left as it was, still loads
    save_checkpoint(MaskRCNN(ModelConfig(min_size=(64,), max_size=64)), path, extra={"train_config": odd})
    assert read_info(path).extra["train_config"] == odd and augment_preset_of(odd) is None


def test_every_config_field_is_a_flag_and_a_config_writes_back_as_flags():
    import dataclasses

    from engine.cli.flags import config_arguments, flag_name, given
    from engine.cli.train import augmentation, build_parser, train_config
    from engine.config import AUGMENT_PRESETS, AugmentConfig, TrainConfig

    parser, base = build_parser(), ["--data", "d", "--out", "o"]
    flags = {a for action in parser._actions for a in action.option_strings}
    for cls in (TrainConfig, AugmentConfig):
        for f in dataclasses.fields(cls):
            if f.name != "augment":
                assert flag_name(f) in flags, f.name
    args = parser.parse_args([*base, "--momentum", "0.8", "--lr-steps", "0.5", "0.75", "--no-amp", "--blur-sigma", "2"])
    assert given(args, TrainConfig) == {"momentum": 0.8, "lr_steps": (0.5, 0.75), "amp": False}
    cfg = train_config(args, num_images=10)
    assert (cfg.momentum, cfg.lr_steps, cfg.amp, cfg.augment.blur_sigma) == (0.8, (0.5, 0.75), False, 2.0)
    assert cfg.iterations == 60 and cfg.warmup_iters == 30 and cfg.lr == 0.01  # 12 epochs of 10 images, batch 2
    adamw = train_config(parser.parse_args([*base, "--optimizer", "adamw", "--iters", "7"]), num_images=10)
    assert adamw.lr == 1e-4 and adamw.iterations == 7 and adamw.warmup_iters == 3
    wanted = TrainConfig(iterations=33, lr=0.02, momentum=0.85, amp=False, lr_steps=(0.5,), seed=3)
    wanted = wanted.replace(augment=AUGMENT_PRESETS["microscopy"].replace(blur=0.1, scale_jitter=0.25))
    argv = [*base, "--augment", "microscopy", *config_arguments(wanted, TrainConfig())]
    argv += config_arguments(wanted.augment, AUGMENT_PRESETS["microscopy"])
    parsed = parser.parse_args(argv)
    assert train_config(parsed, num_images=1).replace(warmup_iters=100) == wanted
    assert augmentation(parsed) == wanted.augment


def test_scale_jitter_is_an_augmentation_setting(tmp_path, capsys):
    data = _data(tmp_path)
    out = tmp_path / "jitter"
    assert main(["train", "--data", str(data), "--out", str(out), "--scale-jitter", "0.5", *ARGS]) == 0
    model, info = load_checkpoint(out / "model.safetensors")
    assert model.config.min_size == (32, 64)  # short sides drawn per image; 64 (the input size) at test time
    assert info.extra["train_config"]["augment"]["scale_jitter"] == 0.5
    capsys.readouterr()
    assert main(["train", "--data", str(data), "--out", str(tmp_path / "bad"), "--scale-jitter", "1.5", *ARGS]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: augmentation --scale-jitter (scale_jitter) out of range")


def test_other_class_names_renew_the_class_layers_and_the_app_is_told(tmp_path, capsys):
    """Issue 13, bug 2: a model of two other classes (person, bicycle) fine-tuned on two classes (disc, square) would
    have trained person's layers as disc without a word: its class layers are renewed, said on stderr and, for the
    app, as a warning event after "start"; a finished run can no longer be resumed, and says why."""
    import json

    from engine import MaskRCNN, ModelConfig

    data = _data(tmp_path)
    torch.manual_seed(0)
    start = MaskRCNN(ModelConfig(num_classes=3, min_size=(64,), max_size=64))
    weights = tmp_path / "start.safetensors"
    save_checkpoint(start, weights, ["person", "bicycle"])
    args = ["train", "--data", str(data), "--out", str(tmp_path / "ft"), "--weights", str(weights)]
    assert main([*args, *ARGS, "--events-jsonl"]) == 0
    captured = capsys.readouterr()
    events = [json.loads(line) for line in captured.out.splitlines() if line.startswith("{")]
    assert [e["kind"] for e in events[:2]] == ["start", "warning"]
    assert "2 classes (person, bicycle), the data 2 classes (disc, square)" in events[1]["message"]
    assert "renewed" in events[1]["message"] and "renewed" in captured.err
    tuned, _ = load_checkpoint(tmp_path / "ft" / "model.safetensors")
    old = start.roi_heads.box_head.cls_score.weight
    assert not torch.allclose(tuned.roi_heads.box_head.cls_score.weight, old.half().float())
    torch.testing.assert_close(  # the rest is kept (up to float16's rounding)
        tuned.backbone.body.conv1.weight, start.backbone.body.conv1.weight, atol=0.05, rtol=0.05
    )
    assert main(["train", "--data", str(data), "--out", str(tmp_path / "ft"), *ARGS, "--resume"]) == 2
    assert "has finished" in capsys.readouterr().err


def test_the_same_classes_in_another_order_keep_their_layers_reordered():
    from engine import MaskRCNN, ModelConfig
    from engine.cli.train import with_classes_in_order

    torch.manual_seed(0)
    model = MaskRCNN(ModelConfig(num_classes=3, min_size=(64,), max_size=64))
    before = {k: v.clone() for k, v in model.state_dict().items()}
    with_classes_in_order(model, ["square", "disc"], ["disc", "square"])
    after = model.state_dict()
    for key, per_class in (("roi_heads.box_head.cls_score.weight", 1), ("roi_heads.box_head.bbox_pred.weight", 4)):
        old, new = before[key], after[key]
        torch.testing.assert_close(new[:per_class], old[:per_class])  # background
        torch.testing.assert_close(new[per_class : 2 * per_class], old[2 * per_class :])  # disc was second
        torch.testing.assert_close(new[2 * per_class :], old[per_class : 2 * per_class])
    bias = "roi_heads.mask_head.logits.bias"
    torch.testing.assert_close(after[bias][1], before[bias][2])
