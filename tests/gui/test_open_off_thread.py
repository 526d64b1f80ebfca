"""Opening a project reads it off the GUI thread (issue 15, item 11: a 100 MB COCO file blocked the window 9.5 s).

The read is held on a ``threading.Event`` inside ``read_dataset`` so the tests can look at the window while it
runs: the read is on the opener thread, the GUI thread handles events (timers, the status line, the busy bar),
a second open supersedes the first, and a failure is one message as before. No timing here: the stall before
and after is measured by benchmarks/open_stall.py.
"""

from __future__ import annotations

import threading
from pathlib import Path

import pytest
from conftest import Driver, write_images
from PySide6.QtCore import QThread, QTimer


class HeldReads:
    """``read_dataset`` that records its thread and waits for ``release`` before reading."""

    def __init__(self, monkeypatch) -> None:  # noqa: ANN001
        from gui.session import project as project_module

        self.real = project_module.read_dataset
        self.threads: list[str] = []
        self.paths: list[str] = []
        self.gate = threading.Event()
        self.started = threading.Event()
        monkeypatch.setattr(project_module, "read_dataset", self)

    def __call__(self, path):  # noqa: ANN001, ANN204
        self.threads.append(QThread.currentThread().objectName() or threading.current_thread().name)
        self.paths.append(str(path))
        self.started.set()
        assert self.gate.wait(30), "the test never released the read"
        return self.real(path)

    def release(self) -> None:
        self.gate.set()


@pytest.fixture
def held(monkeypatch):
    reads = HeldReads(monkeypatch)
    yield reads
    reads.release()  # never leave the opener thread waiting


def folder_of(path: Path, count: int = 2) -> Path:
    write_images(path, count=count)
    return path


def test_the_read_runs_on_the_opener_thread_while_the_window_handles_events(qtbot, window, held, tmp_path):
    folder = folder_of(tmp_path / "data")
    driver = Driver(qtbot, window)
    assert window.open_path(folder)  # returns at once: the read has only started
    assert held.started.wait(10)
    assert held.threads == ["project-opener"]  # the opener's QThread, not the GUI thread
    ticks: list[int] = []
    timer = QTimer()
    timer.timeout.connect(lambda: ticks.append(1))
    timer.start(5)
    qtbot.waitUntil(lambda: len(ticks) >= 5, timeout=5000)  # the GUI thread runs its event loop meanwhile
    timer.stop()
    assert window.controller.reading and not window.controller.is_idle()
    assert driver.status() == "Opening data…" and not window.messages.busy.isHidden()
    assert window.session.project is None  # nothing half-read reaches the Session
    held.release()
    driver.wait_until(lambda: window.session.image is not None and driver.is_idle(), timeout=30000)
    assert len(window.session.project) == 2 and not window.controller.reading
    assert not driver.error()


def test_a_second_open_supersedes_the_first(qtbot, window, held, tmp_path):
    first, second = folder_of(tmp_path / "first", 2), folder_of(tmp_path / "second", 3)
    driver = Driver(qtbot, window)
    projects: list[Path] = []
    window.session.events.project.connect(lambda project: projects.append(project.root if project else None))
    assert window.open_path(first)
    assert held.started.wait(10)
    assert window.open_path(second)  # while the first is still being read
    assert driver.status() == "Opening second…"
    held.release()
    driver.wait_until(lambda: window.session.project is not None and driver.is_idle(), timeout=30000)
    qtbot.wait(50)  # anything late from the first read would have arrived by now
    assert projects == [second] and len(window.session.project) == 3
    assert held.paths[-1] == str(second)


def test_a_failed_read_is_one_message_and_what_is_open_stays(qtbot, window, tmp_path):
    folder = folder_of(tmp_path / "data")
    driver = Driver(qtbot, window)
    assert driver.open(folder)
    broken = tmp_path / "broken.json"
    broken.write_text("{not json")
    assert not driver.open(broken)
    assert driver.error().startswith(f"Cannot open {broken}")
    assert window.session.project.root == folder and window.session.image is not None
    assert not window.controller.reading and window.messages.busy.isHidden()
    assert window.settings.opening == ""  # the start-up guard's mark goes with the failed open


def test_closing_the_window_while_reading_does_not_wait_for_the_read(qtbot, window, held, tmp_path):
    folder = folder_of(tmp_path / "data")
    assert window.open_path(folder)
    assert held.started.wait(10)
    window.close()  # the window goes; the opener thread is joined once the read ends
    assert not window.isVisible()
    held.release()
