"""Autosave: every edit is written to the project's COCO file, debounced, off the GUI thread, atomically.

- ``edited()`` after each edit bumps the edit version and (re)starts a short timer; when it fires, a
  snapshot of the dataset (new lists, copied records and categories: cheap, and safe because edits
  swap instances instead of changing them) goes to the writer thread, which builds the JSON and
  writes it with ``write_coco`` (temp file, fsync, os.replace): a crash mid-write leaves the old file.
- ``flush()`` writes the newest version now, on the calling thread (image switch, Ctrl+S, closing):
  it waits for a write under way, so an older snapshot can never overwrite a newer one (a lock and
  the version number decide).
- A failed write keeps the edits in memory and says why (``failed``); the next edit or flush retries.
"""

from __future__ import annotations

import threading
from dataclasses import replace
from pathlib import Path

from PySide6.QtCore import QObject, QThread, QTimer, Signal, Slot

from engine.data import Dataset, write_coco
from gui.workers.inference_worker import Mailbox

DEBOUNCE_MS = 400


def snapshot(dataset: Dataset) -> Dataset:
    """A copy that later edits do not touch (instances are shared: they are never changed in place)."""
    images = [replace(record, instances=list(record.instances)) for record in dataset.images]
    categories = [replace(category) for category in dataset.categories]
    return Dataset(dataset.root, images, categories, [], dataset.source_format, dataset.source_path)


class _Writer:
    """Writes versions in increasing order only; shared by the thread and ``flush``."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.written = 0

    def write(self, version: int, dataset: Dataset, path: Path) -> str | None:
        """None when written (or already superseded), else the error message."""
        with self.lock:
            if version <= self.written:
                return None
            try:
                write_coco(dataset, path)
            except (OSError, ValueError) as exc:
                return f"Could not save {path.name}: {exc}"
            self.written = version
            return None


class _SaveWorker(QObject):
    done = Signal(int, str)  # version, error message ("" when saved)

    def __init__(self, mailbox: Mailbox, writer: _Writer) -> None:
        super().__init__()
        self.mailbox, self.writer = mailbox, writer

    @Slot()
    def wake(self) -> None:
        while (job := self.mailbox.take()) is not None:
            version, dataset, path = job
            self.done.emit(version, self.writer.write(version, dataset, path) or "")


class AutoSaver(QObject):
    saved = Signal(str)  # path
    failed = Signal(str)  # message
    dirty_changed = Signal(bool)
    _wake = Signal()

    def __init__(self, parent: QObject | None = None, debounce_ms: int = DEBOUNCE_MS) -> None:
        super().__init__(parent)
        self.dataset: Dataset | None = None
        self.path: Path | None = None
        self.version = 0  # edits made
        self.saved_version = 0
        self.last_error = ""
        self._writer = _Writer()
        self._mailbox = Mailbox()
        self._worker = _SaveWorker(self._mailbox, self._writer)
        self._thread = QThread()
        self._thread.setObjectName("autosave")
        self._worker.moveToThread(self._thread)
        self._wake.connect(self._worker.wake)
        self._worker.done.connect(self._on_done)
        self._thread.start()
        self._timer = QTimer(self)
        self._timer.setSingleShot(True)
        self._timer.setInterval(debounce_ms)
        self._timer.timeout.connect(self.save_soon)

    def attach(self, dataset: Dataset | None, path: Path | None) -> None:
        """A new project (flush the old one first): nothing is dirty."""
        self._timer.stop()
        self.dataset, self.path = dataset, path
        with self._writer.lock:
            self.version = self.saved_version = self._writer.written = 0
        self.last_error = ""
        self.dirty_changed.emit(False)

    @property
    def dirty(self) -> bool:
        return self.saved_version < self.version

    def edited(self) -> None:
        was_dirty = self.dirty
        self.version += 1
        self._timer.start()
        if not was_dirty:
            self.dirty_changed.emit(True)

    def save_soon(self) -> None:
        """Hand the newest snapshot to the writer thread."""
        self._timer.stop()
        if self.dataset is None or self.path is None or not self.dirty:
            return
        if self._mailbox.put((self.version, snapshot(self.dataset), self.path)):
            self._wake.emit()

    def flush(self) -> bool:
        """Write now (waiting for a write under way); True when everything is on disk."""
        self._timer.stop()
        if self.dataset is None or self.path is None or not self.dirty:
            return not self.dirty
        version = self.version
        self._on_done(version, self._writer.write(version, snapshot(self.dataset), self.path) or "")
        return not self.dirty

    def ensure_file(self) -> bool:
        """Flush, and write the file even without edits when it does not exist yet (training reads it)."""
        if self.dataset is not None and self.path is not None and not self.path.exists():
            self.version += 1
        return self.flush()

    def _on_done(self, version: int, error: str) -> None:
        if error:
            if version == self.version:  # an older failure is moot once a newer version is on its way
                self.last_error = error
                self.failed.emit(error)
            return
        was_dirty = self.dirty
        self.saved_version = max(self.saved_version, min(version, self._writer.written))
        self.last_error = ""
        self.saved.emit(str(self.path))
        if was_dirty and not self.dirty:
            self.dirty_changed.emit(False)

    def shutdown(self, timeout_ms: int = 10000) -> None:
        self._timer.stop()
        self._thread.quit()
        self._thread.wait(timeout_ms)
