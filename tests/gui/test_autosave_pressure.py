"""Autosave under steady editing (issue 15, item 2): an edit every 300 ms keeps restarting the 400 ms
debounce, yet a save starts at most MAX_WAIT_MS after the first unsaved edit; a process killed
(SIGKILL) at any moment of such editing leaves a valid annotations file holding a prefix of the edits
and loses at most MAX_LOST of them.

The bound: a snapshot taken at time s holds every edit made before s. The next one is taken at most
MAX_WAIT_MS after the first edit that follows s, and is on disk one write (W) later. A kill before that
loses the edits made from that first edit on: at most ceil((MAX_WAIT_MS + W) / period) of them, 4 for a
300 ms period and a write under 200 ms. MAX_LOST allows 6 for a loaded 2-core machine (timers that fire
late, a slower write). Before the maximum wait, a kill lost every edit (40 of 40 in the issue).
"""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from engine.data.io.atomic import temp_files
from gui.workers.autosave import DEBOUNCE_MS, MAX_WAIT_MS, AutoSaver
from tests.gui.test_autosave import add_instance, annotations_in, small_dataset

PERIOD_MS = 300  # an edit every 300 ms: faster than the debounce, so it alone would never fire
MAX_LOST = 6
RUNS = 6  # kills: at a random moment, or (every other run) while a write is under way
REPO = Path(__file__).resolve().parents[2]

# The editing process: a project of one image with 2,000 instances (a write takes ~0.1-0.3 s, so that
# kills land in the middle of writes too), an edit every PERIOD_MS that adds instance number n, printed
# once made. "ready" is printed once the project is open and its stale temp files are gone.
EDITOR = textwrap.dedent(
    """
    import sys, threading
    from pathlib import Path
    from PySide6.QtCore import QCoreApplication, QTimer
    from engine.data import Category, Dataset, ImageRecord, Instance
    from gui.workers.autosave import AutoSaver

    folder, period = Path(sys.argv[1]), int(sys.argv[2])
    app = QCoreApplication([])
    bulk = [Instance(2, [[x % 900 + 1.0, x // 9 % 900 + 1.0, x % 900 + 9.0, x // 9 % 900 + 1.0, x % 900 + 5.0,
                         x // 9 % 900 + 8.0]], id=100000 + x) for x in range(2000)]
    record = ImageRecord("a.png", 1000, 1000, [])
    dataset = Dataset(folder, [record], [Category(1, "edit"), Category(2, "bulk")])
    saver = AutoSaver()
    saver.attach(dataset, folder / "annotations.json")
    made = [0]

    def edit():
        made[0] += 1
        n = made[0]
        record.instances = [*record.instances, Instance(1, [[1.0, 1.0, 9.0, 1.0, 5.0, 1.0 + n]], id=n)]
        saver.edited()
        print(n, flush=True)

    def start():
        record.instances = list(bulk)
        print("ready", flush=True)
        QTimer.singleShot(0, edit)
        timer.start()

    timer = QTimer()
    timer.setInterval(period)
    timer.timeout.connect(edit)
    saver.jobs.call(lambda: QTimer.singleShot(0, app, start))  # after the stale temp files are removed
    app.exec()
    """
)


def test_steady_editing_saves_at_most_max_wait_after_the_first_unsaved_edit(qtbot, tmp_path):
    assert PERIOD_MS < DEBOUNCE_MS < MAX_WAIT_MS
    dataset = small_dataset(tmp_path / "project")
    saver = AutoSaver()
    saver.attach(dataset, dataset.source_path)
    saves: list[float] = []
    saver.saved.connect(lambda _path: saves.append(time.monotonic()))
    edits: list[float] = []

    def edit() -> None:
        add_instance(dataset, saver)
        edits.append(time.monotonic())

    try:
        qtbot.wait(50)
        for _ in range(14):  # 4.2 s of an edit every 300 ms
            edit()
            qtbot.wait(PERIOD_MS)
        during = list(saves)
        written_during = annotations_in(saver.path) if saver.path.exists() else 0
        qtbot.waitUntil(lambda: not saver.dirty, timeout=5000)
    finally:
        saver.shutdown()
    assert len(during) >= 2, f"{len(during)} saves while editing for 4.2 s"  # the debounce alone: 0
    assert during[0] - edits[0] < MAX_WAIT_MS / 1000 + 1.0  # ~1 s; slack for a loaded machine
    assert written_during >= 1 + 14 - MAX_LOST
    assert annotations_in(saver.path) == 15


@pytest.mark.skipif(os.name != "posix", reason="SIGKILL")
def test_a_kill_at_any_moment_of_steady_editing_leaves_a_valid_file_and_loses_few_edits(tmp_path):
    folder = tmp_path / "project"
    folder.mkdir()
    path = folder / "annotations.json"
    rng = random.Random(15)
    env = {**os.environ, "QT_QPA_PLATFORM": "offscreen", "PYTHONPATH": str(REPO)}
    losses, mid_write = [], 0
    for run in range(RUNS):
        path.unlink(missing_ok=True)  # each run starts a new project in the same folder
        leftovers = temp_files(path)
        editor = subprocess.Popen(
            [sys.executable, "-c", EDITOR, str(folder), str(PERIOD_MS)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            cwd=REPO,
            env=env,
        )
        try:
            assert editor.stdout.readline().strip() == "ready", editor.stderr.read()
            assert not set(leftovers) & set(temp_files(path))  # opening removed the last kill's temp files
            time.sleep(rng.uniform(1.0, 4.5))
            deadline = time.monotonic() + 3
            while run % 2 and not temp_files(path) and time.monotonic() < deadline:
                time.sleep(0.002)  # every other run: kill as soon as a write is under way
            mid_write += bool(temp_files(path))
            editor.send_signal(signal.SIGKILL)
            editor.wait(10)
        finally:
            if editor.poll() is None:
                editor.kill()
                editor.wait()
        made = max((int(line) for line in editor.stdout.read().split() if line.isdigit()), default=0)
        if path.exists():
            document = json.loads(path.read_text())  # always valid JSON: never half a file
            ids = sorted(a["id"] for a in document["annotations"] if a["category_id"] == 1)
            assert ids == list(range(1, len(ids) + 1)), f"run {run}: not a prefix of the edits: {ids}"
            kept = len(ids)
        else:
            kept = 0  # killed before the first save
        losses.append(made - kept)
        assert 0 <= made - kept <= MAX_LOST, f"run {run}: {made} edits made, {kept} on disk (lost {made - kept})"
        editor.stdout.close()
        editor.stderr.close()
    print(f"edits lost per kill: {losses} (bound {MAX_LOST}); killed during a write: {mid_write} of {RUNS}")
    assert mid_write >= 1  # the file stayed valid through kills in the middle of writes too
