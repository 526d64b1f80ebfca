"""Pretrained weights by short name from torch's hub cache (engine/hub.py)."""

from __future__ import annotations

import pytest
import torch
import torchvision

from engine.checkpoint import load_weights
from engine.cli.common import UserError, load_model
from engine.interop import WeightsError


@pytest.fixture
def hub_dir(tmp_path):
    old = torch.hub.get_dir()
    torch.hub.set_dir(str(tmp_path / "hub"))
    yield tmp_path / "hub" / "checkpoints"
    torch.hub.set_dir(old)


def test_imagenet_resolves_to_the_resnet_file_in_the_hub_cache(hub_dir):
    hub_dir.mkdir(parents=True)
    torch.manual_seed(3)
    resnet = torchvision.models.resnet18(weights=None)
    torch.save(resnet.state_dict(), hub_dir / "resnet18-f37072fd.pth")
    model, info = load_weights("imagenet")
    assert torch.equal(model.backbone.body.conv1.weight, resnet.conv1.weight)
    assert torch.equal(model.backbone.body.layer4[1].conv2.weight, resnet.layer4[1].conv2.weight)
    assert info.source.endswith("resnet18-f37072fd.pth")


def test_a_missing_hub_file_says_what_to_download_and_where(hub_dir):
    with pytest.raises(WeightsError, match=r"maskrcnn_resnet50_fpn_coco-\*\.pth.*download https://"):
        load_weights("coco")
    with pytest.raises(UserError, match=str(hub_dir)):
        load_model("imagenet:resnet50", torch.device("cpu"))
