"""Leftovers of the loop drive under Xvfb (issue 13, docs/GUI.md "The whole loop on another folder"), each driven
through the window as a user does: rejections kept with the project, an explicit --weights winning over the
folder's remembered model, runs told apart by name, the loss plot after one step, the status bar at 1280x800, and
Resume for a stopped run."""

from __future__ import annotations

import json
import re

import numpy as np
from pycocotools.coco import COCO
from PySide6.QtCore import Qt

from tests.gui.conftest import write_images


def reject_rows(app, count: int) -> list[np.ndarray]:  # noqa: ANN001
    """Pick the first shown prediction and press Delete, ``count`` times; the boxes rejected."""
    boxes = []
    for _ in range(count):
        before = len(app.shown)
        boxes.append(app.prediction.boxes[app.shown[0]].copy())
        app.pick_row(0)
        app.press(Qt.Key.Key_Delete)
        app.wait_until(lambda: len(app.shown) == before - 1 and app.is_idle(), timeout=10000)  # noqa: B023
    return boxes


def shown_boxes(app) -> list[np.ndarray]:  # noqa: ANN001
    return [app.prediction.boxes[i] for i in app.shown]


def test_rejections_are_kept_when_the_folder_is_opened_again(ready, tmp_path):
    app = ready
    app.filter_class("")
    folder = app.project.root
    first = len(app.shown)
    assert first >= 3
    rejected = reject_rows(app, 2)
    app.press(Qt.Key.Key_Z, Qt.KeyboardModifier.ControlModifier)  # the second rejection undone: it shows again
    app.wait_until(lambda: len(app.shown) == first - 1 and app.is_idle())
    other = tmp_path / "other"
    write_images(other, count=1, seed=5)
    assert app.open(other, wait_for_prediction=True)  # leave the folder ...
    assert app.open(folder, wait_for_prediction=True)  # ... and come back: the first image again
    app.filter_class("")
    assert app.index == 0
    assert len(app.shown) == first - 1, app.instance_rows()  # the rejection holds; the undone one does not
    assert not any(np.allclose(box, rejected[0]) for box in shown_boxes(app))
    assert any(np.allclose(box, rejected[1]) for box in shown_boxes(app))
    # the image list's figures count only what is left to decide (the loop drive saw a reviewed image's work rise)
    app.wait_until(lambda: re.search(rf"\b{first - 1} det\b", app.image_rows()[0]) is not None, timeout=10000)
    stored = json.loads((folder / "models" / "rejections.json").read_text())
    assert list(stored["images"]) == ["img_0.png"] and len(stored["images"]["img_0.png"]["rejected"]) == 1
    coco = COCO(str(folder / "annotations.json"))  # the COCO file stays valid and holds no rejection
    assert coco.getAnnIds() == []

    # another model: only its predictions that repeat the rejected mask (mask IoU >= 0.5) stay hidden
    from tests.gui.test_model_follows_project import model_file

    (crop,) = app.project.rejected[0]
    no = crop.full(96, 128)
    app.load_model(model_file(tmp_path / "other_model.safetensors", ["cell", "blob"], seed=3))
    app.wait_until(lambda: "other_model" in (app.model_path() or "") and app.prediction is not None and app.is_idle())
    masks = [m.full(96, 128) for m in app.prediction.masks]
    iou = [(m & no).sum() / max(1, (m | no).sum()) for m in masks]
    assert app.shown == [i for i in range(len(masks)) if iou[i] < 0.5]


def test_weights_named_on_the_command_line_win_over_the_folders_model(driver, tmp_path):
    from gui.app import choose_startup, open_startup, parse_args
    from tests.gui.test_model_follows_project import coco_folder, memory, model_file

    app = driver
    folder = coco_folder(tmp_path / "stained", ["cell", "blob"])
    run = model_file(folder / "models" / "20260101-000000" / "model.safetensors", ["cell", "blob"], seed=1)
    (folder / "models" / "project.json").write_text(json.dumps({"model": "models/20260101-000000/model.safetensors"}))
    chosen = model_file(tmp_path / "chosen.safetensors", ["cell", "blob"], seed=2)

    args = parse_args([str(folder), "--weights", str(chosen)])  # python main.py FOLDER --weights FILE
    path, weights = choose_startup(args, app.window.settings)
    open_startup(app.window, path, weights, explicit=bool(args.weights))
    app.wait_until(lambda: app.prediction is not None and app.model_path() == str(chosen) and app.is_idle(), 30000)
    app.qtbot.wait(300)  # a load of the folder's own model, had one been asked for, would be under way by now
    assert app.weights_path() == str(chosen) and app.model_path() == str(chosen) and app.is_idle()
    assert app.status() == (
        "Model in use: chosen.safetensors, as the command line asked instead of this folder's model run "
        "20260101-000000 of stained; it is this folder's model now"
    )
    assert memory(folder)["model"] == str(chosen)
    assert app.model_note() == "This folder's model"
    assert run.is_file()  # the old run is still listed, to go back to
    assert app.runs_listed()[0].startswith("20260101-000000")


def test_runs_are_told_apart_by_date_iterations_and_how_they_ended(ready):
    from tests.gui.test_runs import make_run

    app, models = ready, ready.project.root / "models"
    done = make_run(models / "20260101-090000", 40, 40)
    make_run(models / "20260101-100000", 12, 40, "cancelled", state=True)
    make_run(models / "20260101-110000", 8, 40, state=True)  # killed: stopped before its end
    app.load_model(done)
    app.wait_until(lambda: app.model_path() == str(done) and app.is_idle(), timeout=30000)
    app.open_train_panel()
    expected = ["20260101-110000  stopped at 8 / 40", "20260101-100000  cancelled at 12 / 40"]
    expected.append("20260101-090000  40 iterations")
    assert app.models_listed() == [expected[0], expected[1], expected[2] + "  (in use)"]  # the Train panel's list
    assert app.project_models_menu() == expected  # Model > Project Models
    assert app.runs_listed()[2].startswith("20260101-090000  40 iterations  ")  # the Model panel's list, with sizes
    assert app.model_shown() == f"run 20260101-090000 of {app.project.root.name}"  # not "model.safetensors"


FAKE_TRAINER = r'''
"""Stands in for ``python -m engine train --events-jsonl``: prints the events a run of TOTAL iterations prints, up to
STOP (then waits for the cancel file and leaves a stopped run: a float32 model and a training state), or to the end
(a finished model). Its arguments go to calls.jsonl, so the test sees what each start asked for."""
import json, shutil, sys, time
from pathlib import Path

args = sys.argv[1:]
out, cancel = Path(args[args.index("--out") + 1]), Path(args[args.index("--cancel-file") + 1])
here = Path(__file__).parent
with open(here / "calls.jsonl", "a") as f:
    f.write(json.dumps(args) + "\n")
total, stop = 4, 1
say = lambda **event: print(json.dumps(event), flush=True)
losses = lambda i: {"loss": 2.0 - 0.2 * i, "loss_classifier": 0.5, "loss_box_reg": 0.4, "loss_mask": 0.6,
                    "loss_objectness": 0.3, "loss_rpn_box_reg": 0.2}
say(kind="start", train_images=1, val_images=0, class_names=["cell", "blob"])
first = 1
if "--resume" in args:
    first = stop + 1
for i in range(first, total + 1):
    say(kind="step", iteration=i, total=total, epoch=float(i), losses=losses(i), lr=0.01, images_per_s=1.0, eta_s=1.0)
    if i == stop and "--resume" not in args:
        while not cancel.exists():
            time.sleep(0.02)
        shutil.copy(here / "stopped.safetensors", out / "model.safetensors")
        (out / "train_state.safetensors").write_bytes(b"\0" * 100)
        say(kind="cancelled", iteration=i, total=total, message="cancelled", path=str(out / "model.safetensors"))
        sys.exit(0)
shutil.copy(here / "finished.safetensors", out / "model.safetensors")
(out / "train_state.safetensors").unlink(missing_ok=True)
say(kind="done", iteration=total, total=total, path=str(out / "model.safetensors"))
'''


def test_one_step_is_plotted_the_bar_counts_the_run_and_a_cancelled_run_resumes(ready, tmp_path, monkeypatch):
    """Issue 13 loop leftovers 4 and 6, with a stand-in trainer (the real one is tests/gui/test_train_panel.py's)."""
    from engine.checkpoint import save_checkpoint
    from tests.gui.conftest import CLASS_NAMES, stand_in_trainer, tiny_model
    from tests.gui.test_editing import CTRL, SHIFT

    fake = stand_in_trainer(monkeypatch, tmp_path / "fake_trainer", FAKE_TRAINER)
    stopped = {"iteration": 1, "train_config": {"iterations": 4}, "stopped": "cancelled"}
    save_checkpoint(tiny_model(), fake / "stopped.safetensors", CLASS_NAMES, extra=stopped)
    finished = {"iteration": 4, "train_config": {"iterations": 4}}
    save_checkpoint(tiny_model(1), fake / "finished.safetensors", CLASS_NAMES, extra=finished, half=True)

    app = ready
    app.press(Qt.Key.Key_A, SHIFT)  # something to train on: the predictions accepted, the image reviewed
    app.press(Qt.Key.Key_Return, CTRL)
    app.saved()
    app.open_train_panel()
    app.set_train_option("unit", "iterations")
    app.set_train_option("length", 4)
    app.press_train()
    assert app.train_progress_text() == "0 / 4"  # was "0 / 1" until the first step
    app.wait_until(lambda: len(app.loss_curve("loss")[0]) == 1, timeout=20000)
    assert app.train_progress_text() == "1 / 4"
    assert app.dot_drawn_at("loss", 1, 1.8)  # one sample: a dot where it lies (a line of one point draws nothing)
    assert app.train_buttons() == (False, True)

    app.press_cancel_training()
    assert app.wait_training_ended(20000) == "cancelled"
    assert app.models_listed()[0].endswith("cancelled at 1 / 4")
    assert app.resume_offered(0)
    app.press_resume(0)
    assert app.wait_training_ended(20000) == "done"
    calls = [json.loads(line) for line in (fake / "calls.jsonl").read_text().splitlines()]
    assert calls[1] == [*calls[0], "--resume"]  # the same run, its own options, in its own folder
    run = app.train_run().out_dir
    assert app.train_progress_text() == "4 / 4" and len(app.loss_curve("loss")[0]) == 3  # 2, 3, 4: a line again
    app.wait_until(lambda: app.model_path() == str(run / "model.safetensors") and app.is_idle(), timeout=30000)
    assert app.models_listed() == [f"{run.name}  4 iterations  (in use)"]
    assert sorted(p.name for p in run.iterdir()) == ["model.safetensors"]  # finished: its model only
    assert not app.resume_offered(0)


def test_at_1280x800_long_status_lines_are_elided_with_the_whole_text_as_tooltip_and_class_buttons_show(driver):
    app = driver
    app.resize(1280, 800)
    app.settle_layout()
    message = (
        "Review done: 34 predictions decided; the image is marked reviewed (Ctrl+Z takes the last decision back); "
        "Shift+R walks the next image's predictions, Tab the next prediction, and the image list says what is left"
    )
    app.window.messages.show_status(message)
    app.window.controller.timing.emit(
        "Model's: short side 512 px · stored by Predict all (a slider, Predict or a new model runs the model again) · "
        "backbone 1600 ms · rpn 20 ms · heads 300 ms"
    )
    app.settle_layout()
    status, timing, bar = app.window.messages.status, app.window.messages.timing, app.window.statusBar()
    assert app.window.width() == 1280  # the long texts did not widen the window
    assert status.text() == message and status.toolTip() == message  # the whole line, on hovering it
    shown = status.shown_text()
    assert shown.endswith("…") and message.startswith(shown[:-1])
    assert status.fontMetrics().horizontalAdvance(shown) <= status.contentsRect().width()
    assert status.width() >= bar.width() // 2  # the message gets most of the bar; the timing line is capped
    assert timing.toolTip().startswith("Model's: short side 512 px") and timing.shown_text().endswith("…")
    assert timing.geometry().right() <= bar.width()

    classes = app.window.classes
    buttons = (classes.add_button, classes.rename_button, classes.color_button, classes.delete_button)
    for button in buttons:  # each wholly on screen in the Classes dock, its text not cut
        assert button.visibleRegion().boundingRect() == button.rect(), button.text()
        assert button.width() >= button.sizeHint().width(), button.text()


def test_the_rejections_file_round_trips_and_keeps_what_it_cannot_place(tmp_path):
    """Qt-free: written and read back pixel for pixel; an image of another size (replaced since) or a damaged entry
    gives no rejection; an image this open does not hold keeps its entry through a write."""
    from engine.structures import InstanceMask
    from gui.session.rejections import RejectionStore, load_rejections, rejections_path

    mask = np.zeros((5, 7), bool)
    mask[1:4, 2:6] = True
    crop = InstanceMask(10, 20, mask)
    paths = [str(tmp_path / "a.png"), str(tmp_path / "sub" / "b.png")]
    sizes = [(96, 128), (50, 60)]
    rejections_path(tmp_path).parent.mkdir()
    rejections_path(tmp_path).write_text(json.dumps({"version": 1, "images": {"gone.png": {"size": [1, 1]}}}))
    RejectionStore(tmp_path).write({0: [crop], 1: []}, paths, sizes)
    stored = json.loads(rejections_path(tmp_path).read_text())
    assert sorted(stored["images"]) == ["a.png", "gone.png"]  # relative keys; the image not open kept
    (back,) = load_rejections(tmp_path, paths, sizes)[0]
    assert (back.x0, back.y0) == (10, 20) and np.array_equal(back.mask, mask)
    assert load_rejections(tmp_path, paths, [(95, 128), (50, 60)]) == {}  # a.png is another image now
    stored["images"]["a.png"]["rejected"].append({"x0": 125, "y0": 0, "rle": {"size": [2, 9], "counts": "x"}})
    rejections_path(tmp_path).write_text(json.dumps(stored))
    assert len(load_rejections(tmp_path, paths, sizes)[0]) == 1  # the damaged one skipped, the good one read
