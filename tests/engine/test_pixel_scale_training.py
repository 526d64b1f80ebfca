"""Training at pixel scale (issue 12, point 3): random crops at the model's scale, small images padded, not
upscaled; cut instances clipped; deterministic across a resume; the policy saved with the checkpoint."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from test_training import TINY

from engine import MaskRCNN
from engine.checkpoint import load_checkpoint
from engine.config import AugmentConfig, TrainConfig
from engine.data import Category, Dataset, ImageRecord, Instance
from engine.data.augment.geometric import masks_to_boxes_xyxy, window_masks
from engine.training.loop import LAST, train
from engine.training.samples import MIN_VISIBLE, TrainingSamples

SIDE = 24  # every object is a SIDE x SIDE square
REPO = Path(__file__).resolve().parents[2]


def _squares(folder: Path, sizes: list[tuple[int, int]]) -> Dataset:
    """Images of (width, height) with SIDE px squares, one per 60 px cell at a random place in it (a regular grid
    of equal squares makes ties among anchors, which rounding breaks differently from run to run)."""
    folder.mkdir(parents=True, exist_ok=True)
    g = np.random.default_rng(0)
    records = []
    for k, (width, height) in enumerate(sizes):
        pixels = (g.random((height, width, 3)) * 60 + 40).astype(np.uint8)
        instances = []
        for cy in range(8, height - SIDE - 12, 60):
            for cx in range(8, width - SIDE - 12, 60):
                y, x = cy + int(g.integers(0, 12)), cx + int(g.integers(0, 12))
                mask = np.zeros((height, width), bool)
                mask[y : y + SIDE, x : x + SIDE] = True
                pixels[mask] = (220, 90, 60)
                instances.append(Instance.from_mask(mask, 1))
        Image.fromarray(pixels).save(folder / f"im{k}.png")
        records.append(ImageRecord(f"im{k}.png", width, height, instances, state="reviewed", id=k + 1))
    return Dataset(folder, records, [Category(1, "square")])


def _network(model: MaskRCNN, samples: list[tuple[torch.Tensor, dict]]):
    """What the network trains on: the model's own training resize of the samples."""
    model.train()
    return model.preprocess([s[0] for s in samples], [dict(s[1]) for s in samples])


def _inner_sides(target: dict, hw: tuple[int, int]) -> list[tuple[float, float]]:
    """(width, height) of each target mask's box that does not touch the crop's border (a whole square)."""
    out = []
    for x0, y0, x1, y1 in masks_to_boxes_xyxy(target["masks"]).tolist():
        if x0 > 0 and y0 > 0 and x1 < hw[1] and y1 < hw[0]:
            out.append((x1 - x0, y1 - y0))
    return out


@pytest.mark.parametrize("factor", [0.5, 2.0])
def test_large_image_trains_on_crops_of_the_crop_size_at_the_factor_scale(tmp_path, factor):
    dataset = _squares(tmp_path / "data", [(640, 480)])
    crop = 128
    samples = TrainingSamples(dataset, [1], 800, 1333, AugmentConfig(hflip=0.5), scale_factor=factor, crop_size=crop)
    model = MaskRCNN(TINY.replace(scale_policy="pixel-scale", scale_factor=factor))
    window = round(crop / factor)
    drawn = [samples.sample(0, seed) for seed in range(6)]
    assert all(image.shape[-2:] == (window, window) for image, _ in drawn)  # image pixels, before the model's resize
    batch, targets = _network(model, drawn)
    sides = []
    for hw, target in zip(batch.image_sizes, targets):
        assert abs(hw[0] - crop) <= max(1, factor) and abs(hw[1] - crop) <= max(1, factor)
        assert target["masks"].shape[-2:] == hw
        sides += _inner_sides(target, hw)  # object sizes measured on the masks the network trains on
    assert sides, "no whole square in any crop"
    for w, h in sides:
        assert abs(w - factor * SIDE) <= 1 and abs(h - factor * SIDE) <= 1, (w, h)
    assert len({tuple(d[0][0, :4, :4].flatten().tolist()) for d in drawn}) > 1  # the windows move


def test_scale_jitter_trains_at_the_factor_down_to_one_minus_x(tmp_path):
    dataset = _squares(tmp_path / "data", [(640, 480)])
    factor, crop = 1.0, 128
    augment = AugmentConfig(hflip=0.0, scale_jitter=0.5)
    samples = TrainingSamples(dataset, [1], 800, 1333, augment, scale_factor=factor, crop_size=crop)
    model = MaskRCNN(TINY.replace(scale_policy="pixel-scale", scale_factor=factor))
    batch, targets = _network(model, [samples.sample(0, seed) for seed in range(8)])
    sides = [s for hw, t in zip(batch.image_sizes, targets) for s in _inner_sides(t, hw)]
    assert all(abs(hw[0] - crop) <= 1 and abs(hw[1] - crop) <= 1 for hw in batch.image_sizes)
    assert all(0.5 * SIDE - 1 <= w <= SIDE + 1 for w, _ in sides)
    assert max(w for w, _ in sides) - min(w for w, _ in sides) >= 3  # scales differ between crops


def test_small_image_is_padded_not_upscaled(tmp_path):
    dataset = _squares(tmp_path / "data", [(100, 80), (640, 480)])
    crop = 256
    samples = TrainingSamples(dataset, [1, 2], 800, 1333, AugmentConfig(hflip=0.0), scale_factor=1.0, crop_size=crop)
    small, large = samples.sample(0, 1), samples.sample(1, 2)
    assert small[0].shape[-2:] == (80, 100)  # whole, at the factor's scale
    model = MaskRCNN(TINY.replace(scale_policy="pixel-scale", scale_factor=1.0))
    batch, targets = _network(model, [small, large])
    assert batch.image_sizes[0] == (80, 100) and batch.padded_hw == (256, 256)  # padded with the batch
    assert _inner_sides(targets[0], (80, 100)) == [(SIDE, SIDE)] * len(_inner_sides(targets[0], (80, 100)))
    assert len(_inner_sides(targets[0], (80, 100))) >= 1
    short_side = MaskRCNN(TINY.replace(min_size=(crop,), max_size=2 * crop))  # would upscale it to the input size
    assert _network(short_side, [small])[0].image_sizes[0] == (crop, 320)


def test_cut_instances_keep_their_visible_part():
    full = torch.zeros((4, 50, 50), dtype=torch.uint8)
    full[0, 10:20, 10:20] = 1  # inside the window
    full[1, 10:20, 25:35] = 1  # half inside
    full[2, 30:40, 29:39] = 1  # 1 column of 10 inside: 10 % ...
    full[3, 0:5, 40:50] = 1  # outside
    full[2, 39, 29] = 0  # ... minus one of its pixels: 9 of 99, below 10 %
    window = (5, 0, 40, 30)  # y0, x0, h, w
    boxes = masks_to_boxes_xyxy(full).long()
    crops = [m[b[1] : b[3], b[0] : b[2]] for m, b in zip(full, boxes)]
    areas = full.flatten(1).sum(1)
    masks, cut_boxes, kept = window_masks(crops, boxes, areas, window, min_visible=MIN_VISIBLE)
    assert kept.tolist() == [0, 1]
    assert torch.equal(masks, full[kept][:, 5:45, 0:30])
    assert cut_boxes.tolist() == masks_to_boxes_xyxy(masks).tolist() == [[10, 5, 20, 15], [25, 5, 30, 15]]
    masks, cut_boxes, kept = window_masks(crops, boxes, areas, window, min_visible=0.0)
    assert kept.tolist() == [0, 1, 2]


def test_cut_instances_in_samples_are_clipped_with_boxes_from_their_masks(tmp_path):
    dataset = _squares(tmp_path / "data", [(640, 480)])
    samples = TrainingSamples(
        dataset, [1], 800, 1333, AugmentConfig(hflip=0.5, vflip=0.5), scale_factor=1.0, crop_size=100
    )
    cut = 0
    for seed in range(10):
        image, target = samples.sample(0, seed)
        masks = target["masks"]
        assert masks.shape[1:] == image.shape[-2:] and len(target["labels"]) == len(masks)
        assert torch.equal(target["boxes"], masks_to_boxes_xyxy(masks))
        areas = masks.flatten(1).sum(1)
        assert bool((areas >= MIN_VISIBLE * SIDE * SIDE).all())
        cut += int((areas < SIDE * SIDE).sum())
    assert cut > 0


def test_same_seed_same_crop_and_a_resumed_run_continues_exactly(tmp_path):
    dataset = _squares(tmp_path / "data", [(400, 300), (90, 70), (300, 300)])
    augment = AugmentConfig(hflip=0.5, vflip=0.5, scale_jitter=0.3, gamma_jitter=0.5)
    a = TrainingSamples(dataset, [1, 2, 3], 800, 1333, augment, scale_factor=0.75, crop_size=128)
    b = TrainingSamples(dataset, [1, 2, 3], 800, 1333, augment, scale_factor=0.75, crop_size=128)
    for seed in (3, 17):
        (ia, ta), (ib, tb) = a.sample(0, seed), b.sample(0, seed)
        assert torch.equal(ia, ib) and torch.equal(ta["masks"], tb["masks"]) and torch.equal(ta["boxes"], tb["boxes"])
    config = TINY.replace(num_classes=2, scale_policy="pixel-scale", scale_factor=0.75)
    fast = TrainConfig(iterations=4, batch_size=2, lr=0.01, warmup_iters=2, amp=False, crop_size=128, augment=augment)

    def model(seed: int) -> MaskRCNN:
        torch.manual_seed(seed)
        return MaskRCNN(config)

    full = [e for e in train(model(0), dataset, fast, tmp_path / "full") if e.kind == "step"]
    stop_after = iter([False, False, True])
    list(train(model(0), dataset, fast, tmp_path / "part", cancel=lambda: next(stop_after)))
    rest = [e for e in train(model(5), dataset, fast, tmp_path / "part", resume=True) if e.kind == "step"]
    assert [e.iteration for e in rest] == [3, 4]
    for x, y in zip(full[2:], rest):
        for name in x.losses:
            assert y.losses[name] == pytest.approx(x.losses[name], rel=1e-5, abs=1e-7), name
    saved, info = load_checkpoint(tmp_path / "full" / LAST)
    assert saved.config == config  # the policy it trained at; min_size untouched by the scale jitter
    assert info.extra["train_config"]["crop_size"] == 128


def test_cli_trains_at_pixel_scale_on_the_sample_and_fine_tuning_keeps_it(tmp_path, capsys):
    from engine.__main__ import main

    sample = REPO / "resources" / "sample"
    if not sample.is_dir():
        pytest.skip("resources/sample is absent")
    # The smallest run that goes through the CLI: one step of one 64 px crop with 64 RoIs (the policy is what is
    # tested, not what is learnt; 2 steps of 2 crops of 128 px with 512 RoIs cost ~4x as much)
    run = ["--iters", "1", "--batch-size", "1", "--warmup", "0", "--threads", "2", "--crop-size", "64"]
    run += ["--roi-samples", "64"]
    out = tmp_path / "pixel"
    argv = ["train", "--data", str(sample), "--out", str(out), "--scale", "pixel-scale", "--scale-factor", "0.5"]
    assert main([*argv, *run]) == 0
    model, _ = load_checkpoint(out / LAST)
    assert (model.config.scale_policy, model.config.scale_factor) == ("pixel-scale", 0.5)
    capsys.readouterr()
    assert main(["defaults", "--weights", str(out / LAST)]) == 0
    shown = capsys.readouterr().out
    assert "pixel-scale" in shown and "0.5" in shown
    tuned = tmp_path / "tuned"
    assert main(["train", "--data", str(sample), "--out", str(tuned), "--weights", str(out / LAST), *run]) == 0
    model, _ = load_checkpoint(tuned / LAST)
    assert (model.config.scale_policy, model.config.scale_factor) == ("pixel-scale", 0.5)


def test_instances_come_whole_from_polygons_and_from_a_wrong_box_in_the_file(tmp_path):
    from engine.data.masks import encode_mask

    dataset = _squares(tmp_path / "data", [(200, 150)])
    record = dataset.images[0]
    square = np.zeros((150, 200), bool)
    square[100:130, 150:190] = True
    wrong_box = Instance(category_id=1, mask=encode_mask(square), box=[160.0, 110.0, 5.0, 5.0])
    polygon = Instance(category_id=1, mask=[[20.5, 100.2, 60.7, 100.2, 60.7, 140.9, 20.5, 140.9]])
    record.instances[:] = [wrong_box, polygon]
    samples = TrainingSamples(dataset, [1], 800, 1333, AugmentConfig(hflip=0.0), scale_factor=1.0, crop_size=256)
    _, target = samples.sample(0, 0)
    expected = torch.from_numpy(np.stack([square, polygon.decode_mask(150, 200)])).to(torch.uint8)
    assert torch.equal(target["masks"], expected)
    assert torch.equal(target["boxes"], masks_to_boxes_xyxy(expected))


def test_a_scale_factor_alone_makes_train_build_a_pixel_scale_model(tmp_path):
    """As in `defaults`: --scale-factor is the factor of pixel-scale; with short-side it is refused."""
    from engine.cli.common import UserError
    from engine.cli.train import build_model, build_parser

    base = ["--data", str(tmp_path), "--out", str(tmp_path / "out"), "--backbone", "resnet18"]
    model = build_model(build_parser().parse_args([*base, "--scale-factor", "2"]), ["nucleus"])
    assert (model.config.scale_policy, model.config.scale_factor) == ("pixel-scale", 2.0)
    with pytest.raises(UserError, match="short-side"):
        build_model(build_parser().parse_args([*base, "--scale", "short-side", "--scale-factor", "2"]), ["nucleus"])
