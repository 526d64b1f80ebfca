"""The Train panel end to end: accept predictions on two images, train a few iterations in the trainer
process (``python -m engine train --events-jsonl``), watch the curves, get the new model on screen;
and a run cancelled after its first step."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PySide6.QtCore import Qt

from engine.checkpoint import read_info
from gui.training.process import CANCEL_FILE, MODEL_FILE, MODELS_FOLDER
from tests.gui.conftest import Driver
from tests.gui.test_editing import CTRL, SHIFT, file_annotations, file_state

TRAIN_TIMEOUT_MS = 180_000


def accept_on_two_images(app: Driver) -> None:
    """A few predictions accepted on images 0 and 1, each marked reviewed: two reviewed images to train on."""
    app.set_slider("max_detections", 4)
    app.wait_until(lambda: len(app.prediction) == 4 and app.is_idle(), timeout=10000)
    app.press(Qt.Key.Key_A, SHIFT)
    app.press(Qt.Key.Key_Return, CTRL)
    app.press(Qt.Key.Key_D)
    app.wait_until(lambda: app.index == 1 and app.prediction is not None and app.is_idle(), timeout=30000)
    app.press(Qt.Key.Key_A, SHIFT)
    app.press(Qt.Key.Key_Return, CTRL)
    doc = app.saved()
    assert [file_state(doc, f"img_{i}.png") for i in range(3)] == ["reviewed", "reviewed", "not_run"]
    assert len(file_annotations(doc, "img_0.png")) == len(file_annotations(doc, "img_1.png")) == 4


def set_up_panel(app: Driver, iterations: int) -> None:
    """Model > Train (Ctrl+T), then the panel's own widgets: a tiny, short CPU run."""
    app.press(Qt.Key.Key_T, CTRL)
    assert app.train_panel_shown() and app.train_buttons() == (True, False)
    assert app.train_option("subset") == "reviewed" and "(2)" in app.train_choices("subset")[0][1]
    app.set_train_option("unit", "iterations")
    app.set_train_option("length", iterations)
    app.set_train_option("batch_size", 1)
    app.set_train_option("input_size", 64)
    app.set_train_option("max_size", 96)
    app.set_train_option("threads", 1)
    app.set_train_option("val_split", 0.0)
    app.set_train_option("device", "cpu")
    assert app.train_option("start_from") is True  # fine-tune the model on screen
    options = app.train_request()
    assert options.config.iterations == iterations and options.input_size == 64 and options.device == "cpu"


def steps(app: Driver) -> list:  # (TrainEvents)
    return [e for e in app.train_run().events if e.kind == "step"]


@pytest.fixture
def annotated(ready) -> Driver:
    accept_on_two_images(ready)
    return ready


def test_training_from_the_panel_plots_losses_writes_a_model_and_predicts_with_it(annotated, weights_file):
    app = annotated
    set_up_panel(app, iterations=2)
    old_prediction, requests = app.prediction, app.requests_sent()
    app.press_train()
    assert app.training() and app.train_buttons() == (False, True)
    outcome = app.wait_training_ended(TRAIN_TIMEOUT_MS)
    assert outcome == "done", f"{app.train_status()}\n{app.train_run().stderr[-3000:]}"

    kinds = [e.kind for e in app.train_run().events]
    assert kinds[0] == "start" and kinds[-1] == "done" and len(steps(app)) == 2
    x, y = app.loss_curve("loss")
    assert list(x) == [1.0, 2.0] and np.isfinite(y).all() and (y > 0).all()
    assert list(y) == [s.losses["loss"] for s in steps(app)]
    assert len(app.loss_curve("loss_mask")[0]) == 2
    value, maximum = app.train_progress()
    assert value == maximum == 2

    run_folder = app.train_run().out_dir
    model = run_folder / MODEL_FILE
    assert run_folder.parent == app.project.root / MODELS_FOLDER and model.is_file()
    info = read_info(model)
    assert info.extra.get("iteration") == 2
    assert not (run_folder / CANCEL_FILE).exists()
    # one model file per finished run, in float16; no training state left behind (issue 13, bug 8)
    assert sorted(p.name for p in run_folder.iterdir()) == [MODEL_FILE]
    from safetensors import safe_open

    with safe_open(str(model), framework="pt") as f:
        assert f.get_tensor("roi_heads.box_head.cls_score.weight").dtype == torch.float16

    assert app.weights_path() == str(model) != str(weights_file)  # the window switched to the new model
    app.wait_until(
        lambda: app.model_path() == str(model) and app.prediction is not old_prediction and app.is_idle(),
        timeout=60000,
    )
    assert app.requests_sent() > requests and app.prediction.height == 96
    assert app.models_listed() == [f"{run_folder.name}  2 iterations  (in use)"]
    (row,) = app.runs_listed()  # the Model panel's list: finished (no mark), its size, in use
    assert row.startswith(run_folder.name) and row.endswith("(in use)") and "cancelled" not in row
    assert app.error() == ""


def test_a_run_cancelled_after_its_first_step_ends_cancelled_and_the_app_goes_on(annotated, weights_file):
    app = annotated
    set_up_panel(app, iterations=500)
    app.press_train()
    app.wait_until(lambda: len(steps(app)) >= 1, timeout=TRAIN_TIMEOUT_MS)
    app.press_cancel_training()
    assert "Cancelling" in app.train_status()
    outcome = app.wait_training_ended(TRAIN_TIMEOUT_MS)
    assert outcome == "cancelled", f"{app.train_status()}\n{app.train_run().stderr[-3000:]}"

    events = app.train_run().events
    assert events[-1].kind == "cancelled" and "done" not in [e.kind for e in events]
    assert 0 < len(steps(app)) < 500
    assert len(app.loss_curve("loss")[0]) == len(steps(app))
    assert "cancelled" in app.train_status().lower()
    assert app.train_buttons() == (True, False)
    run_folder: Path = app.train_run().out_dir
    assert (run_folder / MODEL_FILE).is_file() and not (run_folder / CANCEL_FILE).exists()  # a checkpoint is kept
    assert (run_folder / "train_state.safetensors").is_file()  # and its state, to resume it
    assert "cancelled at" in app.runs_listed()[0] and app.runs_listed()[0].startswith(run_folder.name)
    assert app.weights_path() == str(weights_file)  # a cancelled run is not loaded
    assert app.error() == ""

    app.press(Qt.Key.Key_D)  # the app goes on: the next image is predicted
    app.wait_until(lambda: app.index == 2 and app.prediction is not None and app.is_idle(), timeout=30000)
    assert app.shown_count() == len(app.prediction) > 0


def test_the_trainer_gets_absolute_paths_though_it_runs_in_its_own_folder(tmp_path, monkeypatch):
    from gui.training.process import TrainRequest, train_arguments

    monkeypatch.chdir(tmp_path)
    (tmp_path / "models").mkdir()
    args = train_arguments(Path("ann.json"), Path("models/run"), "models/start.safetensors", TrainRequest())
    for flag in ("--data", "--out", "--weights"):
        value = Path(args[args.index(flag) + 1])
        assert value.is_absolute() and value.is_relative_to(tmp_path), (flag, value)
    assert args[args.index("--weights") + 1] == str(tmp_path / "models" / "start.safetensors")
    assert args[args.index("--augment") + 1] == "flips"


def test_the_augmentation_choice_reaches_the_trainer(driver):
    from engine.cli.train import augmentation, build_parser
    from engine.config import AUGMENT_PRESETS
    from gui.training.process import train_arguments

    app = driver
    assert app.train_request().config.augment == AUGMENT_PRESETS["flips"]
    app.set_train_option("augment", "microscopy")
    args = train_arguments(Path("a.json"), Path("run"), None, app.train_request())
    parsed = build_parser().parse_args(args[3:])  # what the trainer process parses
    assert augmentation(parsed) == AUGMENT_PRESETS["microscopy"]


def test_the_train_panel_fits_a_1280x800_screen(driver):
    app = driver
    app.resize(1280, 800)
    app.open_train_panel()
    app.wait_until(app.train_panel_shown, timeout=5000)
    assert app.smallest_height() <= 800
    app.resize(1280, 800)
    app.qtbot.wait(50)
    assert app.window_size()[1] <= 800
    assert app.loss_plot_whole()  # the loss curves are seen whole: only the options column scrolls


def test_the_panel_takes_the_augmentation_the_model_was_trained_with(driver, tmp_path):
    import dataclasses

    from engine.checkpoint import save_checkpoint
    from engine.config import AUGMENT_PRESETS
    from tests.gui.conftest import CLASS_NAMES, tiny_model

    trained = tmp_path / "microscopy.safetensors"
    record = {"lr": 0.01, **dataclasses.asdict(AUGMENT_PRESETS["microscopy"])}  # flat, as earlier versions saved
    save_checkpoint(tiny_model(), trained, class_names=CLASS_NAMES, extra={"train_config": record})
    app = driver
    app.load_model(trained)
    assert app.train_option("augment") == "microscopy"
    plain = tmp_path / "plain.safetensors"
    save_checkpoint(tiny_model(), plain, class_names=CLASS_NAMES, extra={"train_config": {**record, "blur": 0.1}})
    app.set_train_option("augment", app.train_choices("augment")[0][0])
    app.load_model(plain, wait=False)  # a mix of its own matches no preset: the panel keeps the user's choice
    app.wait_until(lambda: app.model_path() == str(plain))
    assert app.train_option("augment") == "flips"


def test_the_panel_starts_on_the_trainers_defaults(driver):
    from engine.cli.train import build_parser, train_config
    from engine.config import DEFAULT_EPOCHS, TrainConfig
    from gui.training.process import train_arguments

    app = driver
    request = app.train_request()
    assert request.config == TrainConfig() and request.epochs == DEFAULT_EPOCHS  # one set of defaults: the CLI's
    args = train_arguments(Path("a.json"), Path("run"), None, request)
    assert "--lr" not in args and "--batch-size" not in args and "--iters" not in args
    parsed, plain = build_parser().parse_args(args[3:]), build_parser().parse_args(["--data", "a", "--out", "o"])
    assert train_config(parsed, num_images=10) == train_config(plain, num_images=10)  # 12 epochs, lr 0.01
    app.set_train_option("unit", "iterations")
    app.set_train_option("length", 7)
    app.set_train_option("lr", 0.02)
    app.set_train_option("batch_size", 1)
    parsed = build_parser().parse_args(train_arguments(Path("a.json"), Path("run"), None, app.train_request())[3:])
    cfg = train_config(parsed, num_images=10)
    assert (cfg.iterations, cfg.lr, cfg.batch_size) == (7, 0.02, 1)


def test_the_panel_counts_the_images_the_trainer_trains_on(driver, tmp_path):
    import dataclasses

    from engine.data import Category, Instance, read_dataset, write_coco
    from engine.training.subsets import training_ids
    from tests.gui.conftest import write_images

    folder = tmp_path / "project"
    write_images(folder, count=4)
    dataset = read_dataset(folder)
    dataset.categories = [Category(1, "cell")]
    square = Instance(1, [[10.0, 10.0, 40.0, 10.0, 40.0, 40.0, 10.0, 40.0]])
    first, second, third, fourth = dataset.images
    first.state, first.instances = "reviewed", [square]  # trains in both subsets
    second.state, second.instances = "predicted", [dataclasses.replace(square, origin="predicted")]  # in neither
    third.instances = [dataclasses.replace(square, iscrowd=True)]  # a crowd region only: in neither
    fourth.instances = [dataclasses.replace(square, origin="accepted")]  # annotated, not reviewed
    write_coco(dataset, folder / "annotations.json")
    app = driver
    assert app.open(folder)
    app.open_train_panel()  # Model > Train… counts afresh
    saved = read_dataset(folder / "annotations.json").images  # what the trainer process reads
    subset = app.train_choices("subset")
    for row, name in enumerate(("reviewed", "annotated")):
        assert subset[row][0] == name
        assert f"({len(training_ids(saved, name))})" in subset[row][1], (name, subset[row][1])
    assert "(1)" in subset[0][1] and "(2)" in subset[1][1]
