"""Autosave: every edit is written to the project's COCO file, debounced, off the GUI thread, atomically.

- ``edited()`` after each edit bumps the edit version and (re)starts a short timer; when it fires, a
  snapshot of the dataset (new lists, copied records and categories: cheap, and safe because edits
  swap instances instead of changing them) goes to the "autosave" thread, which builds the JSON and
  writes it with ``write_coco`` (temp file, fsync, os.replace): a crash mid-write leaves the old file.
  Latest wins (gui/workers/latest.py): a snapshot superseded before its turn is never written.
- ``flush()`` writes the newest version now, on the calling thread (image switch, Ctrl+S, closing):
  it waits for a write under way, so an older snapshot can never overwrite a newer one (a lock and
  the version number decide).
- A failed write keeps the edits in memory and says why (``failed``); the next edit or flush retries.
"""

from __future__ import annotations

import threading
from dataclasses import replace
from pathlib import Path

from PySide6.QtCore import QObject, QTimer, Signal

from engine.data import Dataset, write_coco
from gui.workers.latest import LatestWins

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


class AutoSaver(QObject):
    saved = Signal(str)  # path
    failed = Signal(str)  # message
    dirty_changed = Signal(bool)
    _written = Signal(int, str)  # version, error message ("" when saved): from the autosave thread

    def __init__(self, parent: QObject | None = None, debounce_ms: int = DEBOUNCE_MS) -> None:
        super().__init__(parent)
        self.dataset: Dataset | None = None
        self.path: Path | None = None
        self.version = 0  # edits made
        self.saved_version = 0
        self.last_error = ""
        self._writer = _Writer()
        self._written.connect(self._on_done)
        self.jobs = LatestWins("autosave", self._write, parent=self)
        self.jobs.failed.connect(self._on_bug)
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
        self.jobs.put((self.version, snapshot(self.dataset), self.path))

    def _write(self, job: tuple[int, Dataset, Path]) -> None:
        """On the autosave thread."""
        version, dataset, path = job
        self._written.emit(version, self._writer.write(version, dataset, path) or "")

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

    def _on_bug(self, job: tuple[int, Dataset, Path], message: str) -> None:
        self._on_done(job[0], f"Could not save {job[2].name}: {message}")

    def shutdown(self, timeout_ms: int = 10000) -> None:
        self._timer.stop()
        self.jobs.shutdown(timeout_ms)
