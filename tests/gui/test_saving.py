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
from tests.gui.conftest import Driver, write_images
from tests.gui.test_editing import CTRL, RECT, TRIANGLE, draw, file_masks


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
def cut(driver, monkeypatch) -> CutOffWrites:  # noqa: ANN001
    """Writes fail until the test sets ``failing = False``; they work again before the window closes (a
    failing save on close would ask with a modal dialog)."""
    cut_off = CutOffWrites()
    cut_off.failing = False
    monkeypatch.setattr(atomic, "os", cut_off)
    yield cut_off
    cut_off.failing = False


def temp_files(folder: Path) -> list[Path]:
    return sorted(folder.glob(".annotations.json.*.tmp"))


def kept(app: Driver, index: int = 0) -> int:
    """How many annotations the open project holds for image ``index`` (in memory, saved or not)."""
    return len(app.project.records[index].instances)


def test_a_save_cut_off_midway_leaves_the_old_file_and_the_next_save_writes_the_edits(driver, folder, cut):
    app = driver
    assert app.open(folder)
    draw(app, RECT)
    app.saved()
    path = app.saved_path()
    old_bytes = path.read_bytes()
    assert len(file_masks(app.saved())) == 1

    cut.failing = True
    draw(app, TRIANGLE)  # the autosave (writer thread) fails half-way through
    app.wait_until(lambda: "Could not save" in app.error(), timeout=5000)
    assert cut.attempts == 1 and cut.partial and 0 < cut.partial[0][1] < cut.partial[0][2]  # really cut off
    assert "No space left on device" in app.error() and "kept in memory" in app.error()
    assert path.read_bytes() == old_bytes and temp_files(folder) == []  # the half-written temp file is gone
    assert kept(app) == 2 and app.annotations_drawn() == 2
    assert app.unsaved() and app.title().startswith("*")

    app.press(Qt.Key.Key_S, CTRL)  # Ctrl+S while the disk is still full
    assert cut.attempts == 2 and path.read_bytes() == old_bytes and temp_files(folder) == []
    assert "Could not save" in app.error() and app.unsaved()

    app.press(Qt.Key.Key_D)  # moving on to the next image tries again, and keeps the edits
    app.wait_until(lambda: app.index == 1 and app.is_idle(), timeout=10000)
    app.wait_until(lambda: cut.attempts == 3, timeout=5000)  # on the autosave thread
    assert path.read_bytes() == old_bytes
    assert "Could not save" in app.error()  # the next image loading does not hide the failure
    assert kept(app) == 2
    app.press(Qt.Key.Key_A)
    app.wait_until(lambda: app.index == 0 and app.image is not None and app.is_idle(), timeout=10000)
    assert app.annotations_drawn() == 2  # still on screen

    cut.failing = False  # space again
    app.press(Qt.Key.Key_S, CTRL)
    assert not app.unsaved() and not app.title().startswith("*")
    assert app.error() == "" and "Saved" in app.status()
    masks = file_masks(app.saved())
    assert len(masks) == 2 and path.read_bytes() != old_bytes and temp_files(folder) == []


def test_the_next_edit_after_a_failed_autosave_saves_everything(driver, folder, cut):
    app = driver
    assert app.open(folder)
    cut.failing = True
    draw(app, RECT)
    app.wait_until(lambda: "Could not save" in app.error(), timeout=5000)
    assert not app.saved_path().exists() and temp_files(folder) == []  # no file rather than half a file
    cut.failing = False
    draw(app, TRIANGLE)  # the autosave of this edit carries the first one too
    masks = file_masks(app.saved())
    assert len(masks) == 2 and app.error() == ""
    assert "Could not save" not in app.status()  # the status line does not keep the old error


def test_switching_images_leaves_the_writing_to_the_autosave_thread(driver, folder, monkeypatch):
    """A large annotations file takes seconds to write: moving to the next image must not wait for it."""
    import threading

    from gui.workers import autosave

    app = driver
    writers: list[str] = []
    real_write = autosave.write_coco

    def recording_write(*args, **kwargs):  # noqa: ANN002, ANN003, ANN202
        writers.append(threading.current_thread().name)
        return real_write(*args, **kwargs)

    monkeypatch.setattr(autosave, "write_coco", recording_write)
    assert app.open(folder)
    app.autosave_waits(60_000)  # only the image switch can start this save
    draw(app, RECT)
    assert app.unsaved() and writers == []
    app.press(Qt.Key.Key_D)
    app.wait_until(lambda: not app.unsaved(), timeout=10000)
    assert writers and threading.main_thread().name not in writers
    assert len(file_masks(json.loads(app.saved_path().read_text()))) == 1


def test_closing_while_saving_fails_asks_and_cancel_keeps_the_window_and_the_edits(driver, folder, cut, monkeypatch):
    app = driver
    assert app.open(folder)
    draw(app, RECT)
    app.saved()
    old_bytes = app.saved_path().read_bytes()
    cut.failing = True
    draw(app, TRIANGLE)
    questions = []

    def answer(*args, **kwargs):  # noqa: ANN002, ANN003, ANN202
        questions.append(args[2] if len(args) > 2 else "")
        return QMessageBox.StandardButton.Cancel

    monkeypatch.setattr(QMessageBox, "question", staticmethod(answer))
    still_open = app.close_window()
    assert len(questions) == 1 and "No space left on device" in questions[0]
    assert still_open and app.unsaved() and kept(app) == 2
    assert app.saved_path().read_bytes() == old_bytes
    cut.failing = False
    app.press(Qt.Key.Key_S, CTRL)
    assert len(file_masks(app.saved())) == 2


def test_a_read_only_annotations_file_says_so_and_file_save_as_writes_the_edits_elsewhere(driver, folder, monkeypatch):
    app = driver
    assert app.open(folder)
    draw(app, RECT)
    path = app.saved_path()
    assert len(file_masks(app.saved())) == 1
    os.chmod(path, 0o444)  # read-only, in a writable folder
    old_bytes = path.read_bytes()
    draw(app, TRIANGLE)
    app.wait_until(lambda: "read-only" in app.error(), timeout=5000)
    assert "Save As" in app.error() and path.read_bytes() == old_bytes
    assert "next edit or Ctrl+S" not in app.error()  # retrying cannot help a read-only file
    assert (path.stat().st_mode & 0o777) == 0o444 and app.unsaved()

    elsewhere = folder / "mine.json"
    monkeypatch.setattr(menus.QFileDialog, "getSaveFileName", staticmethod(lambda *a, **k: (str(elsewhere), "")))
    app.menu("Save &As…")
    assert app.saved_path() == elsewhere and app.project.annotation_path() == elsewhere
    assert app.error() == "" and not app.unsaved() and "mine.json" in app.status()
    assert path.read_bytes() == old_bytes
    draw(app, [(70, 65), (110, 65), (90, 90)])  # the next edit is saved there too
    app.wait_until(lambda: not app.unsaved(), timeout=5000)
    assert len(file_masks(json.loads(elsewhere.read_text()))) == 3 and path.read_bytes() == old_bytes
    assert temp_files(folder) == []
