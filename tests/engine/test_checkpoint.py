"""Checkpoints: safetensors round trip, half precision, metadata, and clear errors on bad files."""

from __future__ import annotations

import pytest
import torch
from safetensors.torch import save_file

from engine import MaskRCNN, ModelConfig
from engine.checkpoint import load_checkpoint, load_weights, read_info, save_checkpoint
from engine.interop import WeightsError

CFG = ModelConfig(num_classes=3, fpn_channels=64, fpn_groups=16, representation_size=128, mask_head_channels=32)


def test_round_trip_keeps_weights_config_names_and_history(tmp_path):
    torch.manual_seed(0)
    model = MaskRCNN(CFG)
    model.backbone.body.bn1.running_mean.fill_(0.25)
    path = save_checkpoint(
        model, tmp_path / "m.safetensors", ["cell", "debris"], history=[{"iteration": 5, "loss": 1.5}]
    )
    loaded, info = load_checkpoint(path)
    assert info.config == CFG and info.class_names == ["cell", "debris"] and info.history[0]["loss"] == 1.5
    for (k, a), b in zip(model.state_dict().items(), loaded.state_dict().values()):
        assert torch.equal(a, b), k
    assert not loaded.training


def test_half_precision_halves_the_file_and_loads_as_float32(tmp_path):
    model = MaskRCNN(CFG)
    full = save_checkpoint(model, tmp_path / "full.safetensors")
    half = save_checkpoint(model, tmp_path / "half.safetensors", half=True)
    assert half.stat().st_size < 0.55 * full.stat().st_size
    loaded, _ = load_checkpoint(half)
    w = loaded.roi_heads.box_head.fc6.weight
    assert w.dtype == torch.float32
    assert torch.allclose(w, model.roi_heads.box_head.fc6.weight, atol=1e-3)


def test_wrong_shape_names_the_tensor(tmp_path):
    path = save_checkpoint(MaskRCNN(CFG), tmp_path / "m.safetensors")
    from safetensors import safe_open

    with safe_open(str(path), framework="pt") as f:
        meta = f.metadata()
        tensors = {k: f.get_tensor(k) for k in f.keys()}
    tensors["roi_heads.box_head.fc6.weight"] = torch.zeros(5, 5)
    save_file(tensors, str(path), metadata=meta)
    with pytest.raises(WeightsError, match=r"fc6.weight has shape \(5, 5\)"):
        load_checkpoint(path)


def test_not_ours_or_not_safetensors(tmp_path):
    other = tmp_path / "other.safetensors"
    save_file({"x": torch.zeros(2)}, str(other))
    with pytest.raises(WeightsError, match="not a Mask R-CNN Studio checkpoint"):
        read_info(other)
    junk = tmp_path / "junk.safetensors"
    junk.write_bytes(b"\x00" * 10)
    with pytest.raises(WeightsError, match="not a readable"):
        load_weights(junk)
    with pytest.raises(WeightsError, match="no such file"):
        load_weights(tmp_path / "nope.safetensors")


def test_failed_write_keeps_the_previous_checkpoint(tmp_path, monkeypatch):
    path = save_checkpoint(MaskRCNN(CFG), tmp_path / "m.safetensors", ["a", "b"])
    before = path.read_bytes()

    def broken_replace(src, dst):
        raise OSError("disk full")

    monkeypatch.setattr("engine.data.io.atomic.os.replace", broken_replace)
    with pytest.raises(OSError):
        save_checkpoint(MaskRCNN(CFG), path, ["c", "d"])
    assert path.read_bytes() == before
    assert list(tmp_path.iterdir()) == [path]  # no temporary file left behind
