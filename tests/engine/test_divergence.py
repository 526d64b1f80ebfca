"""A diverging run never reports success, never saves exploded weights as the model and never writes over its
starting weights (issue 15, item 5)."""

from __future__ import annotations

import math

import pytest
import torch
from synthetic import make_dataset
from test_training import TINY

from engine import MaskRCNN
from engine.__main__ import main
from engine.checkpoint import read_info
from engine.data import write_coco
from engine.training.loop import EXPLOSION_FACTOR, largest_weight, weights_problem

FAST = ["--input-size", "64", "--max-size", "64", "--warmup", "1", "--threads", "2"]


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    folder = tmp_path_factory.mktemp("diverge") / "data"
    write_coco(make_dataset(folder, n_images=3, size=64), folder / "annotations.json")
    return folder


def _error(capsys) -> str:
    captured = capsys.readouterr()
    assert "Traceback" not in captured.err
    (line,) = [line for line in captured.err.splitlines() if "error:" in line]
    assert "saved " not in captured.out
    return line


def test_a_run_that_diverges_into_a_new_folder_fails_and_says_so(data, tmp_path, capsys):
    out = tmp_path / "run"
    assert main(["train", "--data", str(data), "--out", str(out), *FAST, "--lr", "1e6", "--iters", "6"]) == 2
    line = _error(capsys)
    assert "diverged" in line and "lower the learning rate" in line and "no model written" in line
    assert not (out / "model.safetensors").exists() and not (out / "train_state.safetensors").exists()


def test_a_diverging_run_keeps_the_good_model_and_its_starting_weights(data, tmp_path, capsys):
    good = tmp_path / "good"
    assert main(["train", "--data", str(data), "--out", str(good), *FAST, "--iters", "2"]) == 0
    start = tmp_path / "start.safetensors"
    start.write_bytes((good / "model.safetensors").read_bytes())
    before = {p.name: p.read_bytes() for p in [*good.iterdir(), start]}  # a finished run: its model only
    capsys.readouterr()
    args = ["--weights", str(start), "--lr", "1e6", "--iters", "30"]  # stops after 20 non-finite losses
    assert main(["train", "--data", str(data), "--out", str(good), *FAST, *args]) == 2
    line = _error(capsys)
    assert "diverged" in line and "of iteration 2 is kept" in line
    after = {p.name: p.read_bytes() for p in [*good.iterdir(), start]}
    assert after == before


def test_a_run_never_writes_over_its_starting_weights(data, tmp_path, capsys):
    run = tmp_path / "run"
    assert main(["train", "--data", str(data), "--out", str(run), *FAST, "--iters", "1"]) == 0
    model = run / "model.safetensors"
    before = model.read_bytes()
    capsys.readouterr()
    assert main(["train", "--data", str(data), "--out", str(run), "--weights", str(model), *FAST, "--iters", "1"]) == 2
    assert "would be overwritten" in _error(capsys)
    assert model.read_bytes() == before


def test_exploded_weights_defined():
    torch.manual_seed(0)
    model = MaskRCNN(TINY)
    start = largest_weight(model)
    assert 0 < start < 10 and weights_problem(model, start) == ""
    with torch.no_grad():
        weight = next(model.parameters())
        weight[0].fill_(start * 3)  # a few times the start: training does that
        assert weights_problem(model, start) == ""
        weight[0].fill_(EXPLOSION_FACTOR * max(1.0, start) * 1.5)
        assert "largest weight" in weights_problem(model, start)
        weight[0].fill_(math.nan)
        assert "not finite" in weights_problem(model, start)
        weight[0].fill_(0.0)
        buffers = [b for b in model.buffers() if b.is_floating_point()]
        buffers[0].fill_(math.inf)
        assert "not finite" in weights_problem(model, start)


def test_a_saved_run_records_the_size_of_its_start(data, tmp_path):
    from engine.training.loop import LAST

    assert main(["train", "--data", str(data), "--out", str(tmp_path / "r"), *FAST, "--iters", "1"]) == 0
    extra = read_info(tmp_path / "r" / LAST).extra
    assert extra["start_largest_weight"] > 0 and "state_stamp" not in extra  # finished: no state pairs with it
