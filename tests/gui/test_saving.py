"""A save that dies half-way (the disk fills up, the write is cut off): the annotations file on disk is
the previous one, byte for byte; the window says so and keeps the edits; the next good save writes them."""

from __future__ import annotations

import errno
import json
import os
from pathlib import Path

import pytest
from PySide6.QtCore import Qt
from PySide6.QtWidgets import QMessageBox

from engine.data.io import atomic
from gui.window import menus
from tests.gui.conftest import write_images
from tests.gui.test_editing import (
    CTRL,
    RECT,
    TRIANGLE,
    draw_polygon,
    file_masks,
    open_folder,
    press,
    wait_saved,
)


class CutOffWrites:
    """Stands in for ``os`` in engine/data/io/atomic.py: a file opened for the temp copy takes half of the
    bytes, then the write fails as a full disk does. Everything else is the real ``os``."""

    def __init__(self) -> None:
        self.failing = True
        self.attempts = 0
        self.partial: list[tuple[str, int, int]] = []  # (temp file, bytes written, bytes asked)

    def __getattr__(self, name: str):  # noqa: ANN204
        return getattr(os, name)

    def fdopen(self, fd: int, *args, **kwargs):  # noqa: ANN002, ANN003, ANN201
        real = os.fdopen(fd, *args, **kwargs)
        if not self.failing:
            return real
        self.attempts += 1
        return _HalfFile(real, self)


class _HalfFile:
    def __init__(self, real, owner: CutOffWrites) -> None:  # noqa: ANN001
        self.real, self.owner = real, owner

    def __enter__(self) -> _HalfFile:
        return self

    def __exit__(self, *exc) -> None:  # noqa: ANN002
        self.real.close()

    def write(self, data: bytes) -> int:
        half = len(data) // 2
        self.real.write(data[:half])
        self.real.flush()
        self.owner.partial.append((self.real.name, os.path.getsize(self.real.name), len(data)))
        raise OSError(errno.ENOSPC, "No space left on device")

    def __getattr__(self, name: str):  # noqa: ANN204
        return getattr(self.real, name)


@pytest.fixture
def folder(tmp_path) -> Path:
    path = tmp_path / "imgs"
    write_images(path, 2)
    return path


@pytest.fixture(autouse=True)
def never_block_on_a_dialog(monkeypatch):  # noqa: ANN001
    """A failed test may leave a save failing: closing the window then asks; answer Discard, never block."""
    monkeypatch.setattr(QMessageBox, "question", staticmethod(lambda *a, **k: QMessageBox.StandardButton.Discard))


@pytest.fixture
def cut(window, monkeypatch) -> CutOffWrites:  # noqa: ANN001
    """Writes fail until the test sets ``failing = False``; they work again before the window closes (a
    failing save on close would ask with a modal dialog)."""
    cut_off = CutOffWrites()
    cut_off.failing = False
    monkeypatch.setattr(atomic, "os", cut_off)
    yield cut_off
    cut_off.failing = False


def temp_files(folder: Path) -> list[Path]:
    return sorted(folder.glob(".annotations.json.*.tmp"))


def test_a_save_cut_off_midway_leaves_the_old_file_and_the_next_save_writes_the_edits(qtbot, window, folder, cut):
    open_folder(qtbot, window, folder)
    draw_polygon(qtbot, window, RECT)
    wait_saved(qtbot, window)
    path = window.saver.path
    old_bytes = path.read_bytes()
    assert len(file_masks(wait_saved(qtbot, window))) == 1

    cut.failing = True
    draw_polygon(qtbot, window, TRIANGLE)  # the autosave (writer thread) fails half-way through
    qtbot.waitUntil(lambda: "Could not save" in window.error_text(), timeout=5000)
    assert cut.attempts == 1 and cut.partial and 0 < cut.partial[0][1] < cut.partial[0][2]  # really cut off
    assert "No space left on device" in window.error_text() and "kept in memory" in window.error_text()
    assert path.read_bytes() == old_bytes and temp_files(folder) == []  # the half-written temp file is gone
    assert len(window.project.records[0].instances) == 2 and len(window.editor.shown) == 2
    assert window.saver.dirty and window.windowTitle().startswith("*")

    press(qtbot, window, Qt.Key.Key_S, CTRL)  # Ctrl+S while the disk is still full
    assert cut.attempts == 2 and path.read_bytes() == old_bytes and temp_files(folder) == []
    assert "Could not save" in window.error_text() and window.saver.dirty

    press(qtbot, window, Qt.Key.Key_D)  # moving on to the next image tries again, and keeps the edits
    qtbot.waitUntil(lambda: window.index == 1 and window.is_idle(), timeout=10000)
    qtbot.waitUntil(lambda: cut.attempts == 3, timeout=5000)  # on the autosave thread
    assert path.read_bytes() == old_bytes
    assert "Could not save" in window.error_text()  # the next image loading does not hide the failure
    assert len(window.project.records[0].instances) == 2
    press(qtbot, window, Qt.Key.Key_A)
    qtbot.waitUntil(lambda: window.index == 0 and window.image is not None and window.is_idle(), timeout=10000)
    assert len(window.editor.shown) == 2  # still on screen

    cut.failing = False  # space again
    press(qtbot, window, Qt.Key.Key_S, CTRL)
    assert not window.saver.dirty and not window.windowTitle().startswith("*")
    assert window.error_text() == "" and "Saved" in window.status_text.text()
    masks = file_masks(wait_saved(qtbot, window))
    assert len(masks) == 2 and path.read_bytes() != old_bytes and temp_files(folder) == []


def test_the_next_edit_after_a_failed_autosave_saves_everything(qtbot, window, folder, cut):
    open_folder(qtbot, window, folder)
    cut.failing = True
    draw_polygon(qtbot, window, RECT)
    qtbot.waitUntil(lambda: "Could not save" in window.error_text(), timeout=5000)
    assert not window.saver.path.exists() and temp_files(folder) == []  # no file rather than half a file
    cut.failing = False
    draw_polygon(qtbot, window, TRIANGLE)  # the autosave of this edit carries the first one too
    masks = file_masks(wait_saved(qtbot, window))
    assert len(masks) == 2 and window.error_text() == ""
    assert "Could not save" not in window.status_text.text()  # the status line does not keep the old error


def test_switching_images_leaves_the_writing_to_the_autosave_thread(qtbot, window, folder, monkeypatch):
    """A large annotations file takes seconds to write: moving to the next image must not wait for it."""
    import threading

    from gui.workers import autosave

    writers: list[str] = []
    real_write = autosave.write_coco

    def recording_write(*args, **kwargs):  # noqa: ANN002, ANN003, ANN202
        writers.append(threading.current_thread().name)
        return real_write(*args, **kwargs)

    monkeypatch.setattr(autosave, "write_coco", recording_write)
    open_folder(qtbot, window, folder)
    for timer in (window.saver._timer, window.saver._deadline):  # only the image switch can start this save
        timer.setInterval(60_000)
    draw_polygon(qtbot, window, RECT)
    assert window.saver.dirty and writers == []
    press(qtbot, window, Qt.Key.Key_D)
    qtbot.waitUntil(lambda: not window.saver.dirty, timeout=10000)
    assert writers and threading.main_thread().name not in writers
    assert len(file_masks(json.loads(window.saver.path.read_text()))) == 1


def test_closing_while_saving_fails_asks_and_cancel_keeps_the_window_and_the_edits(
    qtbot, window, folder, cut, monkeypatch
):
    open_folder(qtbot, window, folder)
    draw_polygon(qtbot, window, RECT)
    wait_saved(qtbot, window)
    old_bytes = window.saver.path.read_bytes()
    cut.failing = True
    draw_polygon(qtbot, window, TRIANGLE)
    questions = []

    def answer(*args, **kwargs):  # noqa: ANN002, ANN003, ANN202
        questions.append(args[2] if len(args) > 2 else "")
        return QMessageBox.StandardButton.Cancel

    monkeypatch.setattr(QMessageBox, "question", staticmethod(answer))
    window.close()
    assert len(questions) == 1 and "No space left on device" in questions[0]
    assert window.isVisible() and window.saver.dirty and len(window.project.records[0].instances) == 2
    assert window.saver.path.read_bytes() == old_bytes
    cut.failing = False
    press(qtbot, window, Qt.Key.Key_S, CTRL)
    assert len(file_masks(wait_saved(qtbot, window))) == 2


def menu_action(window, text: str):  # noqa: ANN001, ANN201
    for menu_action_ in window.menuBar().actions():
        for action in menu_action_.menu().actions():
            if action.text() == text:
                return action
    raise AssertionError(f"no menu entry {text!r}")


def test_a_read_only_annotations_file_says_so_and_file_save_as_writes_the_edits_elsewhere(
    qtbot, window, folder, monkeypatch
):
    open_folder(qtbot, window, folder)
    draw_polygon(qtbot, window, RECT)
    path = window.saver.path
    assert len(file_masks(wait_saved(qtbot, window))) == 1
    os.chmod(path, 0o444)  # read-only, in a writable folder
    old_bytes = path.read_bytes()
    draw_polygon(qtbot, window, TRIANGLE)
    qtbot.waitUntil(lambda: "read-only" in window.error_text(), timeout=5000)
    assert "Save As" in window.error_text() and path.read_bytes() == old_bytes
    assert "next edit or Ctrl+S" not in window.error_text()  # retrying cannot help a read-only file
    assert (path.stat().st_mode & 0o777) == 0o444 and window.saver.dirty

    elsewhere = folder / "mine.json"
    monkeypatch.setattr(menus.QFileDialog, "getSaveFileName", staticmethod(lambda *a, **k: (str(elsewhere), "")))
    menu_action(window, "Save &As…").trigger()
    assert window.saver.path == elsewhere and window.project.annotation_path() == elsewhere
    assert window.error_text() == "" and not window.saver.dirty and "mine.json" in window.status_text.text()
    assert path.read_bytes() == old_bytes
    draw_polygon(qtbot, window, [(70, 65), (110, 65), (90, 90)])  # the next edit is saved there too
    qtbot.waitUntil(lambda: not window.saver.dirty, timeout=5000)
    assert len(file_masks(json.loads(elsewhere.read_text()))) == 3 and path.read_bytes() == old_bytes
    assert temp_files(folder) == []
