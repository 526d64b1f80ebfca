"""Issue 13, bug 9: a validation's AP is shown as numbers (box and mask AP, AP50): a label on the AP plot, a
line in the Train panel, and per run in the list of the project's models."""

from __future__ import annotations

from PySide6.QtCore import Qt

from engine.checkpoint import save_checkpoint
from engine.training.events import TrainEvent
from gui.training.process import MODEL_FILE, MODELS_FOLDER
from tests.gui.conftest import CLASS_NAMES, tiny_model
from tests.gui.test_editing import CTRL

METRICS = {"box_AP": 0.3124, "box_AP50": 0.5511, "mask_AP": 0.2801, "mask_AP50": 0.4983, "mask_AP75": 0.2}


def test_a_validation_shows_its_numbers_on_the_plot_and_in_the_panel(driver, image_folder):
    app = driver
    assert app.open(image_folder)
    app.press(Qt.Key.Key_T, CTRL)  # Model > Train
    plot = app.window.train_panel.plot
    assert plot.validation_text() == ("", "")
    app.window.trainer._on_event(TrainEvent("validation", 20, 20, metrics=METRICS))  # as the trainer reports it
    on_plot, line = plot.validation_text()
    for text in (on_plot, line):
        assert "box AP 0.312 (AP50 0.551)" in text and "mask AP 0.280 (AP50 0.498)" in text
    assert "iteration 20" in line
    assert plot.ap_label in plot.ap_plot.getPlotItem().items  # drawn on the AP plot
    assert plot.ap_line.isVisible()
    x, y = plot.points("mask_AP")
    assert list(x) == [20.0] and abs(y[0] - 0.2801) < 1e-9
    plot.reset()  # a new run starts clean
    assert plot.validation_text() == ("", "")


def test_the_run_list_shows_each_runs_last_validation(driver, image_folder):
    history = [
        {"iteration": 10, "loss": 1.0},
        {"iteration": 10, "val_mask_AP": 0.125, "val_mask_AP50": 0.25},
        {"iteration": 20, "val_mask_AP": 0.25, "val_mask_AP50": 0.5},
    ]
    with_val = image_folder / MODELS_FOLDER / "20260101-120000" / MODEL_FILE
    without = image_folder / MODELS_FOLDER / "20260101-110000" / MODEL_FILE
    for path, runs in ((with_val, history), (without, history[:1])):
        path.parent.mkdir(parents=True)
        save_checkpoint(tiny_model(), path, class_names=CLASS_NAMES, history=runs)
    app = driver
    assert app.open(image_folder)
    models = app.window.train_panel.models
    rows = [models.item(r).text() for r in range(models.count())]
    assert rows == ["20260101-120000  mask AP 0.250 (AP50 0.500)", "20260101-110000"]
