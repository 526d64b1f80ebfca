"""The Train panel while "Start from" COCO / ImageNet downloads its weights (issue 14, point 2): the trainer's
"download" events (``train --events-jsonl``) show as "Downloading <title>: 45 / 170 MB" and on the progress bar
until the run starts, with a stand-in trainer (the real download is tests/engine/test_hub_download_progress.py's)."""

from __future__ import annotations

import json

from PySide6.QtCore import Qt

FAKE_TRAINER = r'''
"""Stands in for ``python -m engine train --events-jsonl --weights coco`` with the weights not yet in the hub cache:
a download event of 45 of 170 MB, then (once the test writes "go") the last one and the start, then a cancelled run
when the cancel file comes. Its arguments go to calls.jsonl."""
import json, sys, time
from pathlib import Path

args = sys.argv[1:]
cancel = Path(args[args.index("--cancel-file") + 1])
here = Path(__file__).parent
(here / "calls.jsonl").write_text(json.dumps(args) + "\n")
say = lambda **event: print(json.dumps(event), flush=True)
file = "/hub/checkpoints/maskrcnn_resnet50_fpn_coco-bf2d0c1e.pth"
title = "COCO Mask R-CNN (ResNet-50 FPN)"
say(kind="download", message=title, path=file, bytes_done=45_000_000, bytes_total=170_000_000)
while not (here / "go").exists():
    time.sleep(0.02)
say(kind="download", message=title, path=file, bytes_done=170_000_000, bytes_total=170_000_000)
say(kind="start", train_images=1, val_images=0, class_names=["cell", "blob"])
while not cancel.exists():
    time.sleep(0.02)
say(kind="cancelled", iteration=0, total=4, message="cancelled", path="")
'''


def test_the_panel_shows_the_weights_download_until_the_run_starts(ready, tmp_path, monkeypatch):
    from tests.gui.conftest import stand_in_trainer
    from tests.gui.test_editing import CTRL, SHIFT

    fake = stand_in_trainer(monkeypatch, tmp_path / "fake_trainer", FAKE_TRAINER)

    app = ready
    app.press(Qt.Key.Key_A, SHIFT)  # something to train on: the predictions accepted, the image reviewed
    app.press(Qt.Key.Key_Return, CTRL)
    app.saved()
    app.open_train_panel()
    app.set_train_option("start_from", "coco")
    app.set_train_option("unit", "iterations")
    app.set_train_option("length", 4)
    app.press_train()
    app.wait_until(lambda: app.train_status().startswith("Downloading"), timeout=20000)
    assert app.train_status() == (
        "Downloading COCO Mask R-CNN (ResNet-50 FPN): 45 / 170 MB (once: it is kept in the torch hub cache, "
        "/hub/checkpoints)"
    )
    assert app.train_progress_text() == "45 / 170 MB" and app.train_progress() == (45_000, 170_000)
    args = json.loads((fake / "calls.jsonl").read_text())
    assert args[args.index("--weights") + 1] == "coco"

    (fake / "go").write_text("")
    app.wait_until(lambda: app.train_status().startswith("Training on 1 image"), timeout=20000)
    assert app.train_progress_text() == "0 / 4"  # the run's own bar again once the download is over
    app.press_cancel_training()
    assert app.wait_training_ended(20000) == "cancelled"


FAILING_DOWNLOAD = r'''
"""Stands in for a trainer whose weights download breaks off at 45 of 170 MB (no network any more)."""
import json, sys

say = lambda **event: print(json.dumps(event), flush=True)
say(kind="download", message="COCO Mask R-CNN (ResNet-50 FPN)", path="/hub/checkpoints/coco.pth",
    bytes_done=45_000_000, bytes_total=170_000_000)
print("RuntimeError: could not download coco.pth: the network is unreachable", file=sys.stderr, flush=True)
sys.exit(1)
'''


def test_a_download_that_fails_does_not_leave_its_figure_on_the_bar(ready, tmp_path, monkeypatch):
    from tests.gui.conftest import stand_in_trainer
    from tests.gui.test_editing import CTRL, SHIFT

    stand_in_trainer(monkeypatch, tmp_path / "fake_trainer", FAILING_DOWNLOAD)
    app = ready
    app.press(Qt.Key.Key_A, SHIFT)
    app.press(Qt.Key.Key_Return, CTRL)
    app.saved()
    app.open_train_panel()
    app.set_train_option("start_from", "coco")
    app.press_train()
    assert app.wait_training_ended(20000) == "failed"
    assert "network is unreachable" in app.train_status()
    assert app.train_progress_text() == "failed before the first iteration"  # not "45 / 170 MB"
    assert app.train_progress() == (0, 1)
