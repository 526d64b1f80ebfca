"""A checkpoint's metadata is checked before anything is built from it (issue 15, item 9): sizes out of range, a
config its tensors do not bear out (nothing allocated for it), class names of the wrong count; a hostile .pth is
refused without passing on torch's advice to load it with weights_only=False."""

from __future__ import annotations

import json
import os
import pickle

import pytest
import torch
from safetensors.torch import load_file, save_file
from test_training import TINY

import engine.checkpoint as checkpoint
from engine import MaskRCNN
from engine.__main__ import main
from engine.checkpoint import load_checkpoint, load_weights, read_info, save_checkpoint
from engine.interop import WeightsError


@pytest.fixture(scope="module")
def good(tmp_path_factory):
    torch.manual_seed(0)
    path = tmp_path_factory.mktemp("hostile") / "good.safetensors"
    save_checkpoint(MaskRCNN(TINY), path, ["cell", "nucleus"])
    return path


def _rewritten(source, target, tensors=None, **changes):
    """``source``'s checkpoint with its metadata config (or another key) changed."""
    from safetensors import safe_open

    with safe_open(str(source), framework="pt") as f:
        meta = dict(f.metadata())
    config = json.loads(meta["config"])
    for key, value in changes.items():
        if key == "class_names":
            meta["class_names"] = json.dumps(value)
        else:
            config[key] = value
    meta["config"] = json.dumps(config)
    save_file(load_file(str(source)) if tensors is None else tensors, str(target), metadata=meta)
    return target


@pytest.mark.parametrize(
    "changes",
    [
        {"min_size": [0]},
        {"min_size": [-800]},
        {"min_size": []},
        {"min_size": ["big"]},
        {"max_size": 0},
        {"max_size": -1},
        {"max_size": 10**12},
        {"max_size": "1333"},
        {"mask_roi_size": 100_000},
        {"detections_per_image": 0},
        {"fpn_groups": 7},
    ],
    ids=lambda c: json.dumps(c),
)
def test_sizes_out_of_range_are_a_weights_error(good, tmp_path, changes):
    path = _rewritten(good, tmp_path / "bad.safetensors", **changes)
    with pytest.raises(WeightsError):
        load_checkpoint(path)


class Built(Exception):
    pass


def test_a_config_the_tensors_do_not_bear_out_allocates_nothing(good, tmp_path, monkeypatch):
    """A 1.6 KB file declaring representation_size 400,000: refused from the header's shapes, no model built."""
    path = _rewritten(good, tmp_path / "huge.safetensors", {"x": torch.zeros(4)}, representation_size=400_000)
    assert os.path.getsize(path) < 4096
    real = MaskRCNN.__init__

    def only_on_meta(self, config):  # noqa: ANN001
        if torch.empty(0).device.type != "meta":
            raise Built(f"a model was built with representation_size {config.representation_size}")
        real(self, config)

    monkeypatch.setattr(checkpoint.MaskRCNN, "__init__", only_on_meta)
    with pytest.raises(WeightsError, match="weights missing"):
        load_checkpoint(path)


def test_a_config_that_disagrees_with_full_tensors_names_the_key(good, tmp_path, monkeypatch):
    path = _rewritten(good, tmp_path / "wide.safetensors", representation_size=400_000)
    real = MaskRCNN.__init__

    def only_on_meta(self, config):  # noqa: ANN001
        if torch.empty(0).device.type != "meta":
            raise Built("a model was built")
        real(self, config)

    monkeypatch.setattr(checkpoint.MaskRCNN, "__init__", only_on_meta)
    with pytest.raises(
        WeightsError,
        match=r"roi_heads\.box_head\.\w+\.weight has shape \(\d+, 256\), the configured model needs \(\d+, 400000\)",
    ):
        load_checkpoint(path)


@pytest.mark.parametrize("names", [["cell"], ["cell", "nucleus", "extra"], [], ["cell", 7]])
def test_class_names_of_the_wrong_count_are_a_weights_error(good, tmp_path, names):
    path = _rewritten(good, tmp_path / "names.safetensors", class_names=names)
    with pytest.raises(WeightsError, match="class names"):
        read_info(path)
    with pytest.raises(WeightsError):
        load_checkpoint(path)


def test_a_good_checkpoint_still_loads(good):
    model, info = load_checkpoint(good)
    assert info.class_names == ["cell", "nucleus"] and model.config == TINY


class Payload:
    def __reduce__(self):
        return (os.system, ("echo owned > /dev/null",))


@pytest.mark.parametrize("kind", ["torch.save", "pickle"])
def test_a_hostile_pth_is_refused_without_torchs_weights_only_advice(tmp_path, capsys, kind):
    path = tmp_path / "evil.pth"
    if kind == "torch.save":
        torch.save({"backbone.body.conv1.weight": Payload()}, path)
    else:
        path.write_bytes(pickle.dumps(Payload(), protocol=2))
    with pytest.raises(WeightsError) as caught:
        load_weights(path)
    message = str(caught.value)
    assert "weights_only" not in message and "Re-running" not in message and "trusted source" not in message
    assert "not a plain state-dict file" in message and "\n" not in message
    image = tmp_path / "a.png"
    from PIL import Image

    Image.new("RGB", (32, 32)).save(image)
    assert main(["predict", "--weights", str(path), "--images", str(image), "--out", str(tmp_path / "p.json")]) == 2
    err = capsys.readouterr().err
    (line,) = [line for line in err.splitlines() if line.startswith("error:")]
    assert "weights_only" not in err and "Traceback" not in err and "could run code" in line
