"""--resume takes the model and the training state only when one save wrote both (issue 15, item 10): a kill between
the two writes, a file missing or files of two runs are refused before anything is loaded."""

from __future__ import annotations

import shutil

import pytest
import torch
from synthetic import make_dataset
from test_training import TINY

import engine.training.loop as loop
from engine import MaskRCNN
from engine.checkpoint import read_info
from engine.config import TrainConfig
from engine.training.loop import LAST, STATE, TrainingError, train
from engine.training.state import read_train_state_info

CFG = TrainConfig(iterations=6, batch_size=2, lr=0.01, warmup_iters=1, amp=False, checkpoint_every=2)


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    return make_dataset(tmp_path_factory.mktemp("pairs") / "data", n_images=3)


def _model():
    torch.manual_seed(0)
    return MaskRCNN(TINY)


def test_a_kill_between_the_model_and_state_writes_is_refused_on_resume(dataset, tmp_path, monkeypatch):
    out = tmp_path / "run"
    real = loop.save_train_state

    def killed_at_4(path, optimizer, iteration, *args, **kwargs):
        if iteration == 4:
            raise KeyboardInterrupt  # the process dies after the model's write, before the state's
        return real(path, optimizer, iteration, *args, **kwargs)

    monkeypatch.setattr(loop, "save_train_state", killed_at_4)
    with pytest.raises(KeyboardInterrupt):
        list(train(_model(), dataset, CFG, out))
    monkeypatch.undo()
    assert read_info(out / LAST).extra["iteration"] == 4 and read_train_state_info(out / STATE)[0] == 2
    model_bytes, state_bytes = (out / LAST).read_bytes(), (out / STATE).read_bytes()
    with pytest.raises(TrainingError, match=r"iteration 4\).*iteration 2\) are not from the same save"):
        list(train(_model(), dataset, CFG, out, resume=True))
    assert (out / LAST).read_bytes() == model_bytes and (out / STATE).read_bytes() == state_bytes


def test_the_files_of_two_runs_at_the_same_iteration_are_refused(dataset, tmp_path):
    stop = iter([False, False, True])
    list(train(_model(), dataset, CFG, tmp_path / "a", cancel=lambda: next(stop)))
    stop = iter([False, False, True])
    list(train(_model(), dataset, CFG.replace(seed=1), tmp_path / "b", cancel=lambda: next(stop)))
    shutil.copy(tmp_path / "b" / STATE, tmp_path / "a" / STATE)
    with pytest.raises(TrainingError, match="not from the same save"):
        list(train(_model(), dataset, CFG, tmp_path / "a", resume=True))


@pytest.mark.parametrize("missing", [STATE, LAST])
def test_one_file_without_the_other_is_refused(dataset, tmp_path, missing):
    stop = iter([False, True])
    list(train(_model(), dataset, CFG, tmp_path / "run", cancel=lambda: next(stop)))
    (tmp_path / "run" / missing).unlink()
    with pytest.raises(TrainingError, match=f"but no {missing}"):
        list(train(_model(), dataset, CFG, tmp_path / "run", resume=True))


def test_a_matching_pair_resumes_where_it_stopped(dataset, tmp_path):
    stop = iter([False, False, False, True])
    list(train(_model(), dataset, CFG, tmp_path / "run", cancel=lambda: next(stop)))
    steps = [e.iteration for e in train(_model(), dataset, CFG, tmp_path / "run", resume=True) if e.kind == "step"]
    assert steps == [4, 5, 6]


def test_the_command_line_says_it_in_one_line(dataset, tmp_path, capsys):
    from engine.__main__ import main
    from engine.data import write_coco

    write_coco(dataset, dataset.root / "annotations.json")
    out = tmp_path / "run"
    args = ["train", "--data", str(dataset.root), "--out", str(out), "--input-size", "64", "--max-size", "64"]
    args += ["--iters", "2", "--warmup", "1", "--threads", "2"]
    stop = tmp_path / "stop"
    stop.touch()  # cancelled before its first step: a run that can be resumed (a finished one has no state)
    assert main([*args, "--cancel-file", str(stop)]) == 0
    state = out / STATE
    stale = state.read_bytes()
    assert main([*args[:-6], "--iters", "4", "--warmup", "1", "--threads", "2", "--resume"]) == 0
    state.write_bytes(stale)  # the state of iteration 2 beside the model of iteration 4
    capsys.readouterr()
    assert main([*args[:-6], "--iters", "6", "--warmup", "1", "--threads", "2", "--resume"]) == 2
    err = capsys.readouterr().err
    (line,) = [line for line in err.splitlines() if line.startswith("error:")]
    assert "not from the same save" in line and "Traceback" not in err
