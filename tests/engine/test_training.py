"""Training mode: losses on real and empty images, overfitting a handful of images, gradient checkpointing."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from pycocotools import mask as mask_utils
from synthetic import make_image

from engine import MaskRCNN, ModelConfig
from engine.evaluate import mask_ap_from_tensors

LOSS_NAMES = {"loss_objectness", "loss_rpn_box_reg", "loss_classifier", "loss_box_reg", "loss_mask"}

TINY = ModelConfig(
    num_classes=3,
    min_size=(96,),
    max_size=96,
    fpn_channels=64,
    fpn_groups=16,
    representation_size=256,
    mask_head_channels=64,
    anchor_sizes=(16, 32, 64, 128),
    rpn_pre_nms_top_n_train=300,
    rpn_post_nms_top_n_train=100,
    rpn_pre_nms_top_n_test=300,
    rpn_post_nms_top_n_test=100,
    rpn_batch_per_image=64,
    box_batch_per_image=64,
)


def _coco_targets(folder, n):
    """The first n coco128 images with their instances as torchvision-style targets (crowd excluded)."""
    ann = json.loads((folder / "annotations" / "instances_train2017.json").read_text())
    by_image = {}
    for a in ann["annotations"]:
        if not a["iscrowd"]:
            by_image.setdefault(a["image_id"], []).append(a)
    cat_index = {c["id"]: i + 1 for i, c in enumerate(sorted(ann["categories"], key=lambda c: c["id"]))}
    out = []
    for info in sorted(ann["images"], key=lambda i: i["file_name"]):
        if info["id"] not in by_image:
            continue
        h, w = info["height"], info["width"]
        anns = by_image[info["id"]]
        masks = np.stack(
            [mask_utils.decode(mask_utils.merge(mask_utils.frPyObjects(a["segmentation"], h, w))) for a in anns]
        )
        boxes = torch.tensor(
            [[a["bbox"][0], a["bbox"][1], a["bbox"][0] + a["bbox"][2], a["bbox"][1] + a["bbox"][3]] for a in anns]
        )
        labels = torch.tensor([cat_index[a["category_id"]] for a in anns])
        out.append((info["file_name"], {"boxes": boxes.float(), "labels": labels, "masks": torch.from_numpy(masks)}))
        if len(out) == n:
            break
    return out


def test_losses_are_finite_on_real_images(coco128_images):
    from shared_data import SHARED_DATA

    pairs = _coco_targets(SHARED_DATA / "coco128", 2)
    from PIL import Image

    images = [
        torch.from_numpy(np.array(Image.open(SHARED_DATA / "coco128" / "train2017" / name).convert("RGB")))
        .permute(2, 0, 1)
        .float()
        / 255
        for name, _ in pairs
    ]
    torch.manual_seed(0)
    model = MaskRCNN(ModelConfig(num_classes=81, min_size=(320,), max_size=480)).train()
    losses = model(images, [t for _, t in pairs])
    assert set(losses) == LOSS_NAMES
    for name, value in losses.items():
        assert torch.isfinite(value), name
        assert value.item() > 0, name
    sum(losses.values()).backward()
    grads = [p.grad for p in model.parameters() if p.requires_grad]
    assert all(g is not None and torch.isfinite(g).all() for g in grads)


def test_images_without_objects_give_zero_box_and_mask_loss():
    torch.manual_seed(0)
    model = MaskRCNN(TINY).train()
    empty = {
        "boxes": torch.zeros((0, 4)),
        "labels": torch.zeros((0,), dtype=torch.int64),
        "masks": torch.zeros((0, 96, 96), dtype=torch.uint8),
    }
    losses = model(
        [torch.rand(3, 96, 96), torch.rand(3, 80, 96)],
        [dict(empty), {**empty, "masks": torch.zeros((0, 80, 96), dtype=torch.uint8)}],
    )
    assert losses["loss_rpn_box_reg"].item() == 0.0
    assert losses["loss_box_reg"].item() == 0.0
    assert losses["loss_mask"].item() == 0.0
    assert losses["loss_objectness"].item() > 0 and losses["loss_classifier"].item() > 0
    sum(losses.values()).backward()  # still differentiable: every head gets a (zero) gradient


def test_overfits_a_handful_of_images():
    """A few CPU seconds of training on 4 synthetic images reaches mask AP50 > 0.9 on them."""
    torch.manual_seed(0)
    data = [make_image(seed, size=96) for seed in range(4)]
    model = MaskRCNN(TINY).train()
    # 90 steps, not 150 (~0.4 s each on a 2-core CPU): at 80 this run already reaches AP50 1.0 (torch seeds 0-2;
    # 0.958 with seed 3, 0.917 at 60 steps), so 90 keeps a margin over the 0.9 asked for at 60 % of the cost.
    steps = 90
    opt = torch.optim.AdamW(model.parameters(), lr=3e-3, weight_decay=1e-4)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=3e-3, total_steps=steps, pct_start=0.1)
    for it in range(steps):
        batch = [data[(2 * it) % 4], data[(2 * it + 1) % 4]]
        losses = model([b[0] for b in batch], [dict(b[1]) for b in batch])
        opt.zero_grad()
        sum(losses.values()).backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 10.0)
        opt.step()
        sched.step()
    model.eval()
    with torch.no_grad():
        predictions = model([d[0] for d in data])
    stats = mask_ap_from_tensors(predictions, [d[1] for d in data], num_classes=3)
    assert stats["AP50"] > 0.9, stats


def _one_step(checkpointing: bool):
    torch.manual_seed(0)
    model = MaskRCNN(TINY.replace(gradient_checkpointing=checkpointing)).train()
    image, target = make_image(3, size=96)
    torch.manual_seed(1)
    losses = model([image], [target])
    sum(losses.values()).backward()
    return model, losses


def test_gradient_checkpointing_same_losses_gradients_and_bn_statistics():
    plain, plain_losses = _one_step(False)
    ckpt, ckpt_losses = _one_step(True)
    for name in LOSS_NAMES:
        assert ckpt_losses[name].item() == pytest.approx(plain_losses[name].item(), rel=1e-5, abs=1e-7)
    for (name, p), q in zip(plain.named_parameters(), ckpt.parameters()):
        if p.grad is not None:
            assert torch.allclose(p.grad, q.grad, rtol=1e-4, atol=1e-6), name
    bn_plain = plain.backbone.body.layer3[0].bn1
    bn_ckpt = ckpt.backbone.body.layer3[0].bn1
    assert bn_ckpt.num_batches_tracked.item() == 1  # advanced once per step, not twice
    assert torch.allclose(bn_plain.running_mean, bn_ckpt.running_mean, atol=1e-6)
    assert torch.allclose(bn_plain.running_var, bn_ckpt.running_var, atol=1e-6)
    assert not torch.allclose(bn_ckpt.running_mean, torch.zeros_like(bn_ckpt.running_mean))
