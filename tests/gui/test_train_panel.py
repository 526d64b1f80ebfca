"""The Train panel end to end: accept predictions on two images, train a few iterations in the trainer
process (``python -m engine train --events-jsonl``), watch the curves, get the new model on screen;
and a run cancelled after its first step."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PySide6.QtCore import Qt

from engine.checkpoint import read_info
from gui.training.process import CANCEL_FILE, MODEL_FILE, MODELS_FOLDER
from tests.gui.test_editing import LEFT, SHIFT, file_annotations, file_state, press, wait_saved

TRAIN_TIMEOUT_MS = 180_000


def accept_on_two_images(qtbot, window) -> None:  # noqa: ANN001
    """A few predictions accepted on images 0 and 1, each marked reviewed: two reviewed images to train on."""
    window.thresholds.sliders["max_detections"].set_value(4)
    qtbot.waitUntil(lambda: len(window.prediction) == 4 and window.is_idle(), timeout=10000)
    press(qtbot, window, Qt.Key.Key_A, SHIFT)
    press(qtbot, window, Qt.Key.Key_Return, Qt.KeyboardModifier.ControlModifier)
    press(qtbot, window, Qt.Key.Key_D)
    qtbot.waitUntil(lambda: window.index == 1 and window.prediction is not None and window.is_idle(), timeout=30000)
    press(qtbot, window, Qt.Key.Key_A, SHIFT)
    press(qtbot, window, Qt.Key.Key_Return, Qt.KeyboardModifier.ControlModifier)
    doc = wait_saved(qtbot, window)
    assert [file_state(doc, f"img_{i}.png") for i in range(3)] == ["reviewed", "reviewed", "not_run"]
    assert len(file_annotations(doc, "img_0.png")) == len(file_annotations(doc, "img_1.png")) == 4


def set_up_panel(qtbot, window, iterations: int):  # noqa: ANN001, ANN201
    """Model > Train (Ctrl+T), then the panel's own widgets: a tiny, short CPU run."""
    press(qtbot, window, Qt.Key.Key_T, Qt.KeyboardModifier.ControlModifier)
    panel = window.train_panel
    assert window.train_dock.isVisible() and panel.train_button.isEnabled() and not panel.cancel_button.isEnabled()
    assert panel.subset.currentData() == "reviewed" and "(2)" in panel.subset.currentText()
    panel.unit.setCurrentText("iterations")
    panel.length.setValue(iterations)
    panel.batch_size.setValue(1)
    panel.input_size.setValue(64)
    panel.max_size.setValue(96)
    panel.threads.setValue(1)
    panel.val_split.setValue(0.0)
    panel.device.setCurrentIndex(panel.device.findData("cpu"))
    assert panel.start_from.currentData() is True  # fine-tune the model on screen
    options = panel.options()
    assert options.config.iterations == iterations and options.input_size == 64 and options.device == "cpu"
    return panel


def wait_until_ended(qtbot, window) -> str:  # noqa: ANN001
    trainer = window.trainer
    ended = lambda: trainer.run is not None and not trainer.running and bool(trainer.last_outcome)  # noqa: E731
    qtbot.waitUntil(ended, timeout=TRAIN_TIMEOUT_MS)
    return trainer.last_outcome


def steps(window) -> list:  # noqa: ANN001 (TrainEvents)
    return [e for e in window.trainer.run.events if e.kind == "step"]


@pytest.fixture
def annotated(qtbot, loaded):  # noqa: ANN001
    accept_on_two_images(qtbot, loaded)
    return loaded


def test_training_from_the_panel_plots_losses_writes_a_model_and_predicts_with_it(qtbot, annotated, weights_file):
    window = annotated
    panel = set_up_panel(qtbot, window, iterations=2)
    old_prediction, requests = window.prediction, window.inference.requests_sent
    qtbot.mouseClick(panel.train_button, LEFT)
    assert window.trainer.running and not panel.train_button.isEnabled() and panel.cancel_button.isEnabled()
    outcome = wait_until_ended(qtbot, window)
    assert outcome == "done", f"{panel.status.text()}\n{window.trainer.run.stderr[-3000:]}"

    kinds = [e.kind for e in window.trainer.run.events]
    assert kinds[0] == "start" and kinds[-1] == "done" and len(steps(window)) == 2
    x, y = panel.plot.points("loss")
    assert list(x) == [1.0, 2.0] and np.isfinite(y).all() and (y > 0).all()
    assert list(y) == [s.losses["loss"] for s in steps(window)]
    assert len(panel.plot.points("loss_mask")[0]) == 2
    assert panel.progress.value() == panel.progress.maximum() == 2

    run_folder = window.trainer.run.out_dir
    model = run_folder / MODEL_FILE
    assert run_folder.parent == window.project.root / MODELS_FOLDER and model.is_file()
    info = read_info(model)
    assert info.extra.get("iteration") == 2
    assert not (run_folder / CANCEL_FILE).exists()

    assert window.weights_path == str(model) != str(weights_file)  # the window switched to the new model
    qtbot.waitUntil(
        lambda: window.inference.model is not None and window.inference.model.path == str(model)
        and window.prediction is not old_prediction and window.is_idle(),
        timeout=60000,
    )  # fmt: skip
    assert window.inference.requests_sent > requests and window.prediction.height == 96
    names = [panel.models.item(r).text() for r in range(panel.models.count())]
    assert names == [f"{run_folder.name}  (in use)"]
    assert window.error_text() == ""


def test_a_run_cancelled_after_its_first_step_ends_cancelled_and_the_app_goes_on(qtbot, annotated, weights_file):
    window = annotated
    panel = set_up_panel(qtbot, window, iterations=500)
    qtbot.mouseClick(panel.train_button, LEFT)
    qtbot.waitUntil(lambda: len(steps(window)) >= 1, timeout=TRAIN_TIMEOUT_MS)
    qtbot.mouseClick(panel.cancel_button, LEFT)
    assert "Cancelling" in panel.status.text()
    outcome = wait_until_ended(qtbot, window)
    assert outcome == "cancelled", f"{panel.status.text()}\n{window.trainer.run.stderr[-3000:]}"

    events = window.trainer.run.events
    assert events[-1].kind == "cancelled" and "done" not in [e.kind for e in events]
    assert 0 < len(steps(window)) < 500
    assert len(panel.plot.points("loss")[0]) == len(steps(window))
    assert "cancelled" in panel.status.text().lower()
    assert panel.train_button.isEnabled() and not panel.cancel_button.isEnabled()
    run_folder: Path = window.trainer.run.out_dir
    assert (run_folder / MODEL_FILE).is_file() and not (run_folder / CANCEL_FILE).exists()  # a checkpoint is kept
    assert window.weights_path == str(weights_file)  # a cancelled run is not loaded
    assert window.error_text() == ""

    press(qtbot, window, Qt.Key.Key_D)  # the app goes on: the next image is predicted
    qtbot.waitUntil(lambda: window.index == 2 and window.prediction is not None and window.is_idle(), timeout=30000)
    assert window.instances.row_count() == len(window.prediction) > 0


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


def test_the_augmentation_choice_reaches_the_trainer(qtbot, window):
    from engine.cli.train import augmentation, build_parser
    from engine.config import AUGMENT_PRESETS
    from gui.training.process import train_arguments

    panel = window.train_panel
    assert panel.options().config.augment == AUGMENT_PRESETS["flips"]
    panel.augment.setCurrentIndex(panel.augment.findData("microscopy"))
    args = train_arguments(Path("a.json"), Path("run"), None, panel.options())
    parsed = build_parser().parse_args(args[3:])  # what the trainer process parses
    assert augmentation(parsed) == AUGMENT_PRESETS["microscopy"]


def test_the_train_panel_fits_a_1280x800_screen(qtbot, window):
    window.resize(1280, 800)
    window.train_dock.show()
    qtbot.waitUntil(lambda: window.train_dock.isVisible(), timeout=5000)
    assert window.minimumSizeHint().height() <= 800 and window.minimumSize().height() <= 800
    window.resize(1280, 800)
    qtbot.wait(50)
    assert window.height() <= 800
    plot = window.train_panel.plot  # the loss curves are seen whole: only the options column scrolls
    assert window.train_dock.geometry().contains(plot.mapTo(window, plot.rect().bottomRight()))


def test_the_panel_takes_the_augmentation_the_model_was_trained_with(qtbot, window, tmp_path):
    import dataclasses

    from engine.checkpoint import save_checkpoint
    from engine.config import AUGMENT_PRESETS
    from tests.gui.conftest import CLASS_NAMES, tiny_model

    trained = tmp_path / "microscopy.safetensors"
    record = {"lr": 0.01, **dataclasses.asdict(AUGMENT_PRESETS["microscopy"])}  # flat, as earlier versions saved
    save_checkpoint(tiny_model(), trained, class_names=CLASS_NAMES, extra={"train_config": record})
    window.load_weights(trained)
    qtbot.waitUntil(lambda: window.inference.model is not None, timeout=30000)
    assert window.train_panel.augment.currentData() == "microscopy"
    plain = tmp_path / "plain.safetensors"
    save_checkpoint(tiny_model(), plain, class_names=CLASS_NAMES, extra={"train_config": {**record, "blur": 0.1}})
    window.train_panel.augment.setCurrentIndex(0)
    window.load_weights(plain)  # a mix of its own matches no preset: the panel keeps the user's choice
    qtbot.waitUntil(lambda: window.inference.model is not None and str(window.inference.model.path) == str(plain))
    assert window.train_panel.augment.currentData() == "flips"


def test_the_panel_starts_on_the_trainers_defaults(qtbot, window):
    from engine.cli.train import build_parser, train_config
    from engine.config import DEFAULT_EPOCHS, TrainConfig
    from gui.training.process import train_arguments

    panel = window.train_panel
    request = panel.options()
    assert request.config == TrainConfig() and request.epochs == DEFAULT_EPOCHS  # one set of defaults: the CLI's
    args = train_arguments(Path("a.json"), Path("run"), None, request)
    assert "--lr" not in args and "--batch-size" not in args and "--iters" not in args
    parsed, plain = build_parser().parse_args(args[3:]), build_parser().parse_args(["--data", "a", "--out", "o"])
    assert train_config(parsed, num_images=10) == train_config(plain, num_images=10)  # 12 epochs, lr 0.01
    panel.unit.setCurrentText("iterations")
    panel.length.setValue(7)
    panel.lr.setValue(0.02)
    panel.batch_size.setValue(1)
    parsed = build_parser().parse_args(train_arguments(Path("a.json"), Path("run"), None, panel.options())[3:])
    cfg = train_config(parsed, num_images=10)
    assert (cfg.iterations, cfg.lr, cfg.batch_size) == (7, 0.02, 1)


def test_the_panel_counts_the_images_the_trainer_trains_on(qtbot, window, tmp_path):
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
    assert window.open_path(folder)
    qtbot.waitUntil(lambda: window.project is not None and window.is_idle(), timeout=30000)
    window.trainer.refresh()
    saved = read_dataset(folder / "annotations.json").images  # what the trainer process reads
    subset = window.train_panel.subset
    for row, name in enumerate(("reviewed", "annotated")):
        assert subset.itemData(row) == name
        assert f"({len(training_ids(saved, name))})" in subset.itemText(row), (name, subset.itemText(row))
    assert "(1)" in subset.itemText(0) and "(2)" in subset.itemText(1)
