"""Pretrained weights by short name (engine/hub.py): the hub cache, a download through torchvision's weights API when
the file is absent (mocked: these machines have no network), and the message when there is no network."""

from __future__ import annotations

import urllib.error

import pytest
import torch
import torchvision
from synthetic import make_dataset

from engine import MaskRCNN, hub
from engine.__main__ import main
from engine.checkpoint import load_checkpoint, load_weights
from engine.cli.common import UserError, load_model
from engine.data import write_coco
from engine.interop import WeightsError


@pytest.fixture
def fake_download(monkeypatch):
    """torch.hub.download_url_to_file replaced by one that writes a freshly initialised torchvision ResNet-18's state
    dict (the keys and shapes of the real file, other numbers): the calls are recorded as (url, dst, hash_prefix)."""
    calls = []

    def download(url, dst, hash_prefix=None, progress=True):  # noqa: ANN001, ANN202
        calls.append((url, dst, hash_prefix))
        torch.manual_seed(7)
        torch.save(torchvision.models.resnet18(weights=None).state_dict(), dst)

    monkeypatch.setattr(torch.hub, "download_url_to_file", download)
    return calls


@pytest.fixture
def no_network(monkeypatch):
    """Every URL opened by torch.hub fails as it does on a machine without a network."""

    def urlopen(*args, **kwargs):  # noqa: ANN002, ANN003, ANN202
        raise urllib.error.URLError("[Errno -3] Temporary failure in name resolution")

    monkeypatch.setattr(torch.hub, "urlopen", urlopen)


def test_imagenet_resolves_to_the_resnet_file_in_the_hub_cache(hub_dir, fake_download):
    hub_dir.mkdir(parents=True)
    torch.manual_seed(3)
    resnet = torchvision.models.resnet18(weights=None)
    torch.save(resnet.state_dict(), hub_dir / "resnet18-f37072fd.pth")
    model, info = load_weights("imagenet")
    assert torch.equal(model.backbone.body.conv1.weight, resnet.conv1.weight)
    assert torch.equal(model.backbone.body.layer4[1].conv2.weight, resnet.layer4[1].conv2.weight)
    assert info.source.endswith("resnet18-f37072fd.pth")
    assert fake_download == []  # there: nothing downloaded


def test_a_missing_file_is_downloaded_from_torchvisions_address_into_the_hub_cache(hub_dir, fake_download, capsys):
    model, info = load_weights("imagenet")
    url = torchvision.models.ResNet18_Weights.IMAGENET1K_V1.url
    assert fake_download == [(url, str(hub_dir / "resnet18-f37072fd.pth"), "f37072fd")]
    assert (hub_dir / "resnet18-f37072fd.pth").is_file() and info.source == str(hub_dir / "resnet18-f37072fd.pth")
    torch.manual_seed(7)
    assert torch.equal(model.backbone.body.conv1.weight, torchvision.models.resnet18(weights=None).conv1.weight)
    assert f"downloading ImageNet ResNet-18 (45 MB) from {url}" in capsys.readouterr().err
    load_weights("imagenet")
    assert len(fake_download) == 1  # the second time it is in the cache


@pytest.mark.parametrize(
    ("name", "weights"),
    [
        ("coco", torchvision.models.detection.MaskRCNN_ResNet50_FPN_Weights.COCO_V1),
        ("imagenet:resnet50", torchvision.models.ResNet50_Weights.IMAGENET1K_V1),
        ("imagenet:resnet18", torchvision.models.ResNet18_Weights.IMAGENET1K_V1),
    ],
)
def test_each_short_name_downloads_torchvisions_file(hub_dir, fake_download, name, weights):
    path = hub.resolve(name)
    assert fake_download[0][0] == weights.url
    assert path == hub_dir / weights.url.rsplit("/", 1)[-1] and path.is_file()


def test_without_a_network_the_message_names_the_file_the_address_and_the_folder(hub_dir, no_network):
    url = torchvision.models.detection.MaskRCNN_ResNet50_FPN_Weights.COCO_V1.url
    with pytest.raises(WeightsError) as caught:
        load_weights("coco")
    message = str(caught.value)
    assert "maskrcnn_resnet50_fpn_coco-bf2d0c1e.pth is not in the torch hub cache" in message
    assert f"could not be downloaded (URLError: [Errno -3] Temporary failure in name resolution); download {url} " in (
        message
    )
    assert "into that folder" in message and str(hub_dir) in message
    assert not list(hub_dir.glob("*")), "a failed download leaves no file (not even a partial one)"
    with pytest.raises(UserError, match=str(hub_dir)):
        load_model("imagenet:resnet50", torch.device("cpu"))


def test_train_without_a_network_is_one_error_line(tmp_path, hub_dir, no_network, capsys):
    data = make_dataset(tmp_path / "data", n_images=2, size=64)
    write_coco(data, tmp_path / "data" / "annotations.json")
    code = main(["train", "--data", str(tmp_path / "data"), "--out", str(tmp_path / "run"), "--weights", "imagenet"])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2
    assert err[-1].startswith("error: imagenet: resnet18-f37072fd.pth is not in the torch hub cache")
    assert str(hub_dir) in err[-1] and "Traceback" not in "\n".join(err)


def test_training_starts_from_the_downloaded_weights(tmp_path, hub_dir, fake_download, capsys):
    data = make_dataset(tmp_path / "data", n_images=2, size=64)
    write_coco(data, tmp_path / "data" / "annotations.json")
    args = ["--iters", "1", "--input-size", "64", "--max-size", "64", "--warmup", "0", "--threads", "2"]
    # a learning rate of 1e-12: the one step leaves the weights where they started, to compare with the file
    args += ["--lr", "1e-12", "--weight-decay", "0"]
    code = main(
        ["train", "--data", str(tmp_path / "data"), "--out", str(tmp_path / "run"), "--weights", "imagenet", *args]
    )
    assert code == 0, capsys.readouterr().err
    assert [call[1] for call in fake_download] == [str(hub_dir / "resnet18-f37072fd.pth")]
    trained, info = load_checkpoint(tmp_path / "run" / "model.safetensors")
    file = torch.load(hub_dir / "resnet18-f37072fd.pth", weights_only=True)
    # (the finished model may be stored in float16: equal up to its rounding; a fresh start is nowhere near)
    for ours, theirs in [("conv1", "conv1.weight"), ("layer3.0.conv1", "layer3.0.conv1.weight")]:
        weight = trained.backbone.body.get_submodule(ours).weight
        assert torch.allclose(weight, file[theirs], rtol=1e-3, atol=1e-5)
        assert not torch.allclose(weight, MaskRCNN(trained.config).backbone.body.get_submodule(ours).weight, atol=1e-2)
    assert info.class_names == ["disc", "square"] and trained.config.backbone == "resnet18"
