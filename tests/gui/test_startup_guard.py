"""The start-up guard (issue 15, item 1): a folder that crashed the app is never reopened without asking.

A data file that crashes the process (a segfault in a native library while a mask is rasterised) used to
make every plain restart crash too: the folder was already the "last folder", and ``python main.py`` with
no arguments reopened it. Opening now marks the path in the settings until its first image is shown; a
mark still set at start-up means the last open never got there, and a plain start opens nothing, says so
and offers to open it anyway.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

from conftest import Driver, write_images

REPO = Path(__file__).resolve().parents[2]

# The app's entry point, with a hook: CRASH_ON_DECODE=1 kills the process (SIGKILL, as a segfault in
# pycocotools would end it) the first time a mask is decoded, i.e. while the first image is being shown.
ENTRY = """
import os, signal, sys
if os.environ.get("CRASH_ON_DECODE"):
    from engine.data import Instance
    Instance.decode_mask = lambda self, height, width: os.kill(os.getpid(), signal.SIGKILL)
from gui.app import main
sys.exit(main(sys.argv[1:]))
"""


def coco_folder(folder: Path) -> Path:
    write_images(folder, count=2)
    doc = {
        "images": [{"id": i + 1, "file_name": f"img_{i}.png", "width": 128, "height": 96} for i in range(2)],
        "categories": [{"id": 1, "name": "cell"}],
        "annotations": [
            {"id": 1, "image_id": 1, "category_id": 1, "segmentation": [[10, 10, 40, 10, 40, 40, 10, 40]]},
        ],
    }
    (folder / "annotations.json").write_text(json.dumps(doc))
    return folder


def start(settings_file: Path, *args: str, crash: bool = False) -> subprocess.CompletedProcess:
    env = {**os.environ, "QT_QPA_PLATFORM": "offscreen"}
    env.pop("CRASH_ON_DECODE", None)
    if crash:
        env["CRASH_ON_DECODE"] = "1"
    command = [sys.executable, "-c", ENTRY, *args, "--settings", str(settings_file), "--quit-after-load"]
    command += ["--threads", "1"]
    return subprocess.run(command, cwd=REPO, env=env, capture_output=True, text=True, timeout=240)


def test_a_folder_that_crashed_the_app_is_not_reopened_by_a_plain_start(tmp_path, weights_file):
    from gui.window.settings import Settings

    folder = coco_folder(tmp_path / "data")
    settings_file = tmp_path / "settings.ini"
    first = start(settings_file, str(folder), "--weights", str(weights_file), crash=True)
    assert first.returncode == -signal.SIGKILL, first.stderr[-2000:]  # killed while showing the first image
    # a plain start (no path), the file still there: the old code reopened the folder and died again
    second = start(settings_file, "--weights", str(weights_file), crash=True)
    assert second.returncode != -signal.SIGKILL, "the plain restart reopened the folder that crashed the app"
    assert second.returncode in (0, 1), second.stderr[-2000:]
    assert "closed unexpectedly while opening" in second.stderr and str(folder) in second.stderr
    assert "detections: 0" in second.stdout  # nothing opened
    # still nothing reopened on the next plain start: the mark stays until an open gets to its first image. What the
    # next start reads is the settings file, so it is read here instead of starting the app twice more (each start
    # imports torch and Qt: ~10 s on a busy 2-core CPU); the second start above showed what a start does with it.
    assert Settings(settings_file).opening == str(folder)
    # asked for by name, it opens (the user chose it), and once its first image shows, the mark goes
    fourth = start(settings_file, str(folder), "--weights", str(weights_file))
    assert fourth.returncode == 0, fourth.stderr[-2000:]
    assert Settings(settings_file).opening == "" and Path(Settings(settings_file).last_folder) == folder.resolve()


def test_the_offer_opens_the_folder_anyway_and_a_shown_image_clears_the_mark(qtbot, window, settings, tmp_path):
    from gui import app

    folder = coco_folder(tmp_path / "data")
    settings.mark_opening(folder)  # as a crash while opening it leaves the settings
    args = app.parse_args([])
    assert app.interrupted_open(args, settings) == str(folder)
    assert app.interrupted_open(app.parse_args([str(folder)]), settings) == ""  # a path given: the user chose
    driver = Driver(qtbot, window)
    app.offer_reopen(window, app.interrupted_open(args, settings))
    assert "closed unexpectedly while opening" in driver.error() and str(folder) in driver.error()
    button = window.messages.offer_button
    assert button.isVisible() and button.text() == "Open anyway"
    assert driver.project is None
    button.click()
    driver.wait_until(lambda: driver.image is not None and driver.is_idle(), timeout=30000)
    assert driver.project is not None and driver.project.root == folder.resolve()
    assert driver.error() == "" and not button.isVisible()
    assert settings.opening == ""  # cleared: the next plain start reopens it as the last folder


def test_the_mark_is_set_while_reading_and_cleared_when_the_open_fails(qtbot, window, settings, tmp_path, monkeypatch):
    from gui.session import project as project_module

    folder = coco_folder(tmp_path / "data")
    seen: list[str] = []
    real_read = project_module.read_dataset

    def read(path):  # noqa: ANN001, ANN202
        seen.append(settings.opening)
        return real_read(path)

    monkeypatch.setattr(project_module, "read_dataset", read)
    driver = Driver(qtbot, window)
    assert driver.open(folder)
    assert seen == [str(folder)] and settings.opening == ""
    assert not driver.open(tmp_path / "absent")  # a failure is a message, not a crash: no mark left
    assert "Cannot open" in driver.error() and settings.opening == ""


def test_with_a_model_the_open_ends_with_the_first_prediction_and_a_clean_close_ends_it_too(
    qtbot, window, settings, weights_file, tmp_path
):
    """A crash while the first image is predicted counts as one; quitting while it runs does not."""
    folder = coco_folder(tmp_path / "data")
    driver = Driver(qtbot, window)
    driver.load_model(weights_file)
    driver.hold_inference()
    assert driver.open(folder, wait=False)
    driver.wait_until(lambda: driver.image is not None)
    assert settings.opening == str(folder)  # the image is shown, its prediction not yet
    driver.release_inference()
    driver.wait_until(lambda: driver.prediction is not None and driver.is_idle(), timeout=30000)
    assert settings.opening == ""
    driver.hold_inference()
    assert driver.open(tmp_path / "data" / "img_1.png", wait=False)
    driver.wait_until(lambda: driver.image is not None)
    assert settings.opening == str(tmp_path / "data" / "img_1.png")
    driver.release_inference()
    window.close()  # quit before the prediction came: a clean exit, nothing to warn about next time
    assert settings.opening == ""
