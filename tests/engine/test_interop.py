"""Loading torchvision weight files: Mask R-CNN state dicts, ImageNet ResNets, and files that do not fit."""

from __future__ import annotations

import pytest
import torch
import torchvision
from torchvision.models.detection import maskrcnn_resnet50_fpn

from engine.cli.bench import randomise
from engine.interop import WeightsError, load_torchvision_weights
from engine.model.backbone import ResNet


@pytest.mark.parametrize("depth", ["resnet18", "resnet34", "resnet50"])
def test_imagenet_resnet_state_dict_loads_strictly(depth):
    tv = getattr(torchvision.models, depth)()
    ours = ResNet(depth, num_classes=1000)
    ours.load_state_dict(tv.state_dict(), strict=True)  # identical parameter names
    x = torch.rand(1, 3, 64, 64)
    assert torch.allclose(tv.eval()(x), ours.eval()(x), rtol=1e-4, atol=1e-4)  # eval folds BN into convs


def test_imagenet_file_initialises_the_backbone(tmp_path):
    tv = torchvision.models.resnet18()
    path = tmp_path / "resnet18-imagenet.pth"
    torch.save(tv.state_dict(), path)
    model = load_torchvision_weights(path, num_classes=3)
    assert model.config.backbone == "resnet18" and model.config.num_classes == 3
    assert torch.equal(model.backbone.body.layer3[1].conv2.weight, tv.layer3[1].conv2.weight)
    assert torch.equal(model.backbone.body.bn1.running_var, tv.bn1.running_var)


def test_coco_maskrcnn_file_gives_the_same_detections(tmp_path):
    torch.manual_seed(0)
    tv = maskrcnn_resnet50_fpn(weights=None, weights_backbone=None, min_size=224, max_size=320)
    randomise(tv, seed=3)
    path = tmp_path / "maskrcnn_resnet50_fpn_coco.pth"
    torch.save(tv.state_dict(), path)
    ours = load_torchvision_weights(path).eval()
    assert ours.config.num_classes == 91 and ours.config.backbone == "resnet50"
    # the file carries no transform settings: ours uses torchvision's defaults (800 / 1333), so compare there
    tv.transform.min_size, tv.transform.max_size = (800,), 1333
    image = [torch.rand(3, 180, 240)]
    with torch.no_grad():
        expected, actual = tv.eval()(image)[0], ours(image)[0]
    assert len(expected["boxes"]) == len(actual["boxes"]) > 0
    assert torch.allclose(expected["boxes"], actual["boxes"], atol=1e-2)
    assert torch.allclose(expected["scores"], actual["scores"], atol=1e-4)


def test_new_class_count_reinitialises_only_the_class_layers(tmp_path):
    torch.manual_seed(0)
    tv = maskrcnn_resnet50_fpn(weights=None, weights_backbone=None)
    path = tmp_path / "coco.pth"
    torch.save(tv.state_dict(), path)
    ours = load_torchvision_weights(path, num_classes=4)
    assert ours.roi_heads.box_head.cls_score.out_features == 4
    assert ours.roi_heads.mask_head.logits.out_channels == 4
    assert torch.equal(ours.roi_heads.box_head.fc6.weight, tv.roi_heads.box_head.fc6.weight)


def test_bad_files_say_what_is_wrong(tmp_path):
    with pytest.raises(WeightsError, match="no such file"):
        load_torchvision_weights(tmp_path / "missing.pth")
    junk = tmp_path / "junk.pth"
    junk.write_bytes(b"this is not a checkpoint")
    with pytest.raises(WeightsError, match="not a plain state-dict"):
        load_torchvision_weights(junk)
    other = tmp_path / "other.pth"
    torch.save({"foo.weight": torch.zeros(3)}, other)
    with pytest.raises(WeightsError, match="neither a torchvision Mask R-CNN nor an ImageNet ResNet"):
        load_torchvision_weights(other)
    wrong = tmp_path / "wrong.pth"
    state = maskrcnn_resnet50_fpn(weights=None, weights_backbone=None).state_dict()
    state["roi_heads.box_head.fc6.weight"] = torch.zeros(1024, 100)
    torch.save(state, wrong)
    with pytest.raises(WeightsError, match="fc6.weight: shape"):
        load_torchvision_weights(wrong)


def test_pickled_code_is_never_run(tmp_path):
    class Evil:
        def __reduce__(self):
            return (exec, (f"open({str(tmp_path / 'pwned')!r}, 'w').write('pwned')",))

    path = tmp_path / "evil.pth"
    torch.save({"model": Evil()}, path)
    with pytest.raises(WeightsError):
        load_torchvision_weights(path)
    assert not (tmp_path / "pwned").exists()
