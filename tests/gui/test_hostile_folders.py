"""Hostile folders in the app (issue 15, item 6): each ends in one clear message and the rest opens.

- At start-up, anything that escaped ``main`` (a symlink loop's RuntimeError from ``Path.resolve``, say)
  left the worker threads running and Qt aborted the process ("QThread: Destroyed while thread
  'autosave' is still running"); LatestWins' shutdown only helps when someone calls it.
- From File > Open, an exception the reader did not turn into a DatasetError was printed to stderr by
  the slot and nothing was shown.
- A mask that cannot be decoded raised inside the image's display (the editor's refresh): the image was
  never predicted, no message, and smoke mode waited for its timeout. Now it is reported and skipped.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import Driver, write_images

REPO = Path(__file__).resolve().parents[2]


def smoke(*args: str, entry: str = "", timeout: int = 240) -> subprocess.CompletedProcess:
    code = entry + "\nimport sys\nfrom gui.app import main\nsys.exit(main(sys.argv[1:]))\n"
    env = {**os.environ, "QT_QPA_PLATFORM": "offscreen"}
    command = [sys.executable, "-c", code, *args, "--quit-after-load", "--threads", "1"]
    return subprocess.run(command, cwd=REPO, env=env, capture_output=True, text=True, timeout=timeout)


def coco_folder(folder: Path) -> Path:
    write_images(folder, count=2)
    square = [[10, 10, 40, 10, 40, 40, 10, 40]]
    doc = {
        "images": [{"id": i + 1, "file_name": f"img_{i}.png", "width": 128, "height": 96} for i in range(2)],
        "categories": [{"id": 1, "name": "cell"}],
        "annotations": [
            {"id": 1, "image_id": 1, "category_id": 1, "segmentation": square},
            {"id": 2, "image_id": 1, "category_id": 1, "segmentation": [[60, 50, 90, 50, 90, 80, 60, 80]]},
        ],
    }
    (folder / "annotations.json").write_text(json.dumps(doc))
    return folder


@pytest.fixture
def loop(tmp_path) -> Path:
    """A folder path that is a symbolic link to itself."""
    path = tmp_path / "loop"
    path.symlink_to(path)
    return path


@pytest.fixture
def excepthook(monkeypatch) -> list[str]:
    """Exceptions that reach sys.excepthook (what a Qt slot's uncaught exception does)."""
    caught: list[str] = []
    monkeypatch.setattr(sys, "excepthook", lambda kind, value, tb: caught.append(f"{kind.__name__}: {value}"))
    return caught


def test_a_symlink_loop_given_at_start_up_is_one_message_not_an_abort(tmp_path, loop):
    result = smoke(str(loop), "--settings", str(tmp_path / "s.ini"))
    assert result.returncode == 1, result.stderr[-2000:]  # nothing opened: smoke mode says it failed
    assert "QThread: Destroyed" not in result.stderr and "Traceback" not in result.stderr, result.stderr[-2000:]
    assert f"message: Cannot open {loop}" in result.stderr and "loop" in result.stderr.split("message:")[1]


def test_an_exception_escaping_start_up_stops_the_threads_first(tmp_path, weights_file):
    """Whatever escapes ``main`` (here a failing weights load) is a traceback and exit code 1, not a
    Qt abort with the autosave thread still running."""
    entry = (
        "from gui.window.main_window import MainWindow\n"
        "def broken(self, path, **_options): raise RuntimeError('weights exploded')\n"
        "MainWindow.load_weights = broken\n"
    )
    result = smoke("--weights", str(weights_file), "--settings", str(tmp_path / "s.ini"), entry=entry)
    assert result.returncode == 1 and result.returncode != -signal.SIGABRT, result.stderr[-2000:]
    assert "QThread: Destroyed" not in result.stderr
    assert "RuntimeError: weights exploded" in result.stderr


def _menu_action(window, text: str):  # noqa: ANN001, ANN202
    for menu_action in window.menuBar().actions():
        for action in menu_action.menu().actions():
            if action.text() == text:
                return action
    raise AssertionError(text)


def test_file_open_of_a_symlink_loop_or_a_reader_bug_gives_one_message(
    qtbot, window, tmp_path, loop, monkeypatch, excepthook
):
    from PySide6.QtWidgets import QFileDialog

    from gui.session import project as project_module

    driver = Driver(qtbot, window)
    folder = coco_folder(tmp_path / "data")
    chosen = [str(loop)]
    monkeypatch.setattr(QFileDialog, "getExistingDirectory", staticmethod(lambda *a, **k: chosen[0]))
    open_folder = _menu_action(window, "Open &Folder…")
    open_folder.trigger()
    driver.wait_until(lambda: not window.controller.reading)  # the project is read off the GUI thread
    assert excepthook == []
    assert driver.error().startswith(f"Cannot open {loop}") and "symbolic link" in driver.error()
    assert driver.project is None

    def reader_bug(path):  # noqa: ANN001, ANN202 - a reader that raises what it should not
        raise TypeError("'NoneType' object is not subscriptable")

    monkeypatch.setattr(project_module, "read_dataset", reader_bug)
    chosen[0] = str(folder)
    open_folder.trigger()
    driver.wait_until(lambda: not window.controller.reading)
    assert excepthook == []
    assert driver.error() == f"Cannot open {folder}: TypeError: 'NoneType' object is not subscriptable"
    monkeypatch.undo()  # the reader again; the same folder opens
    monkeypatch.setattr(sys, "excepthook", lambda kind, value, tb: excepthook.append(str(value)))
    assert driver.open(folder)
    assert driver.error() == "" and len(driver.project) == 2 and excepthook == []


def test_a_mask_that_cannot_be_decoded_is_reported_and_skipped_and_the_image_is_predicted(
    qtbot, window, weights_file, tmp_path, monkeypatch, excepthook
):
    """The reader validates RLE now (engine/data/masks.py), so the failure is injected: instance id 2's
    decode raises as pycocotools did on garbage counts ("Invalid RLE mask representation")."""
    from engine.data import Instance

    real_decode = Instance.decode_mask

    def decode(self, height, width):  # noqa: ANN001, ANN202
        if self.id == 2:
            raise ValueError("Invalid RLE mask representation")
        return real_decode(self, height, width)

    monkeypatch.setattr(Instance, "decode_mask", decode)
    driver = Driver(qtbot, window)
    driver.load_model(weights_file)
    assert driver.open(coco_folder(tmp_path / "data"), wait_for_prediction=True)  # predicted: no hang
    assert excepthook == []
    assert driver.image is not None and driver.annotations_drawn() == 1  # the good annotation is drawn
    message = driver.error()
    assert "id 2" in message and "img_0.png" in message and "Invalid RLE mask representation" in message
    assert message.count("could not be decoded") == 1  # one message, however often the crop is asked for
    driver.go_to(1)  # the next image loads as usual and takes the message away
    driver.wait_until(lambda: driver.index == 1 and driver.image is not None and driver.is_idle(), timeout=30000)
    assert driver.error() == ""


def test_smoke_mode_with_a_mask_that_cannot_be_decoded_predicts_and_exits(tmp_path, weights_file):
    """It used to wait for its 300 s timeout: the image was never predicted."""
    entry = (
        "from engine.data import Instance\n"
        "real = Instance.decode_mask\n"
        "def decode(self, height, width):\n"
        "    if self.id == 2: raise ValueError('Invalid RLE mask representation')\n"
        "    return real(self, height, width)\n"
        "Instance.decode_mask = decode\n"
    )
    folder = coco_folder(tmp_path / "data")
    result = smoke(str(folder), "--weights", str(weights_file), "--settings", str(tmp_path / "s.ini"), entry=entry)
    assert result.returncode == 0, result.stderr[-2000:]
    assert "detections:" in result.stdout and "could not be decoded" in result.stderr
