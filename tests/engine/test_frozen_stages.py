"""--frozen-stages (the quick fine-tune's frozen ResNet, issue 14 point 3): the run's choice, not the model's."""

from __future__ import annotations

import torch
from test_training import TINY

from engine.checkpoint import save_checkpoint
from engine.cli.train import build_model, build_parser
from engine.model.mask_rcnn import MaskRCNN


def _trainable(model: MaskRCNN) -> tuple[set[str], set[str]]:
    """(names of trainable ResNet parameters, names of trainable parameters outside the ResNet)."""
    body = {n for n, p in model.named_parameters() if p.requires_grad and ".body." in n}
    rest = {n for n, p in model.named_parameters() if p.requires_grad and ".body." not in n}
    return body, rest


def test_frozen_stages_freeze_the_resnet_only_and_a_later_run_trains_it_again(tmp_path):
    torch.manual_seed(0)
    start = tmp_path / "start.safetensors"
    save_checkpoint(MaskRCNN(TINY.replace(num_classes=2)), start, ["nucleus"])
    base = ["--data", str(tmp_path), "--out", str(tmp_path / "out"), "--weights", str(start)]

    quick = build_model(build_parser().parse_args([*base, "--frozen-stages", "5"]), ["nucleus"])
    body, rest = _trainable(quick)
    assert not body  # the whole ResNet is frozen ...
    assert any(n.startswith("rpn") for n in rest) and any("mask" in n for n in rest)  # ... the rest trains
    assert any("fpn" in n for n in rest)

    two = build_model(build_parser().parse_args([*base, "--frozen-stages", "2"]), ["nucleus"])
    body, _ = _trainable(two)
    stem_and_layer1 = ("backbone.body.conv1.", "backbone.body.bn1.", "backbone.body.layer1.")
    assert body == {n for n, _ in two.named_parameters() if ".body." in n and not n.startswith(stem_and_layer1)}
    assert any(".layer2." in n for n in body)

    # a model saved by a quick fine-tune carries frozen_stages 5; a run from it without the flag trains it all
    frozen_file = tmp_path / "quick.safetensors"
    save_checkpoint(quick, frozen_file, ["nucleus"])
    again = build_model(build_parser().parse_args([*base[:-1], str(frozen_file)]), ["nucleus"])
    body, _ = _trainable(again)
    assert again.config.frozen_stages == 0
    assert body == {n for n, _ in again.named_parameters() if ".body." in n}
