"""Autosave: every edit is written to the project's COCO file, debounced, off the GUI thread, atomically.

- ``edited()`` after each edit bumps the edit version and (re)starts a short timer (DEBOUNCE_MS); a
  second timer, started by the first unsaved edit and not restarted by the next ones, bounds the wait
  (MAX_WAIT_MS): under steady editing (an edit every 300 ms keeps restarting the debounce) a save still
  starts at most MAX_WAIT_MS after the first edit it carries. When either fires, a snapshot of the
  dataset (shallow copies; the instance lists and the instances are shared: edits swap them, never
  change them in place) goes to the "autosave" thread. Only the snapshot runs on the GUI thread: the thread
  builds the JSON and writes it in pieces with ``write_coco`` (temp file, fsync, os.replace): a crash
  or a kill mid-write leaves the old file. The annotations of instances that an earlier save wrote are
  not encoded again: their texts are kept (``AnnotationTexts``; same bytes as a full encode).
  Latest wins (gui/workers/latest.py): a snapshot superseded before its turn is never written.
- ``flush()`` writes the newest version now, on the calling thread (Ctrl+S, closing): it waits for a
  write under way, so an older snapshot can never overwrite a newer one (a lock and the version number
  decide). ``save_soon()`` hands the newest version to the thread without waiting.
- A failed write keeps the edits in memory and says why (``failed``); the next edit or flush retries.
  ``saved`` follows every success that is not older than a standing failure (what clears the message);
  a failure reported after a newer success is dropped. A read-only file is not replaced: the message
  says so and what to do; ``save_as`` writes to another file and saves there from then on.
- Opening a project (``attach``) removes the temp files that killed saves left next to its file.
"""

from __future__ import annotations

import threading
from pathlib import Path
from typing import TypeVar

from PySide6.QtCore import QObject, QTimer, Signal

from engine.data import Dataset, write_coco
from engine.data.io.atomic import ReadOnlyFileError, check_writable, remove_stale_temp_files
from engine.data.io.writers import AnnotationTexts, annotation_texts
from gui.workers.latest import LatestWins

T = TypeVar("T")
DEBOUNCE_MS = 400
MAX_WAIT_MS = 1000  # a save starts at most this long after the first unsaved edit


def snapshot(dataset: Dataset) -> Dataset:
    """A copy that later edits do not touch, made on the GUI thread (~1 ms for 2,000 images): the
    dataset, records and categories copied shallowly (every field kept, nothing re-validated). The
    instance lists are shared, not copied (copying a million pointers took 50-90 ms): an edit gives the
    record a new list and never changes a list or an instance in place (gui/editing/undo.py,
    engine.data.Instance is frozen; tests/gui/test_undo.py checks it)."""
    twin = _shallow(dataset)
    twin.images = [_shallow(record) for record in dataset.images]
    twin.categories = [_shallow(category) for category in dataset.categories]
    twin.warnings = []
    return twin


def _shallow(item: T) -> T:
    """A new object of the same dataclass with the same field values (no __init__: ~4x faster than
    copy.copy or dataclasses.replace, which matters for thousands of records)."""
    twin = object.__new__(type(item))
    twin.__dict__.update(item.__dict__)
    return twin


def save_error(path: Path, exc: Exception) -> str:
    """The message of a failed save."""
    if isinstance(exc, ReadOnlyFileError):
        return (
            f"Could not save {path.name}: the file is read-only (its permissions do not allow writing), so it "
            f"was left as it is. Make it writable (e.g. chmod u+w {path}) or save the annotations to "
            "another file with File > Save As…"
        )
    return f"Could not save {path.name}: {exc}"


class _Writer:
    """Writes versions in increasing order only; shared by the thread and ``flush``. Keeps the JSON text of
    each annotation it wrote (``AnnotationTexts``, used under the lock): a save after one edit of 5,000
    annotations encodes the few instances the edit made, not all 5,000 again (350 ms of the thread's CPU,
    each slice of it keeping the GUI thread from the GIL)."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.written = 0
        self.memo = AnnotationTexts()

    def write(self, version: int, dataset: Dataset, path: Path, again: bool = False) -> str | None:
        """None when written (or already superseded), else the error message. ``again``: write even
        when this version is written (to another file: Save As)."""
        with self.lock:
            if version <= self.written and not again:
                return None
            try:
                check_writable(path)  # before building the document: a read-only file fails at once
                with annotation_texts(self.memo):
                    write_coco(dataset, path)
            except (OSError, ValueError) as exc:
                return save_error(path, exc)
            self.written = max(self.written, version)
            return None


class AutoSaver(QObject):
    saved = Signal(str)  # path
    failed = Signal(str)  # message
    dirty_changed = Signal(bool)
    _written = Signal(int, int, str)  # project, version, error message ("" when saved): from the thread

    def __init__(
        self, parent: QObject | None = None, debounce_ms: int = DEBOUNCE_MS, max_wait_ms: int = MAX_WAIT_MS
    ) -> None:
        super().__init__(parent)
        self.dataset: Dataset | None = None
        self.path: Path | None = None
        self.version = 0  # edits made
        self.saved_version = 0
        self.last_error = ""
        self._failed_version = 0  # the version that last_error is about
        self._project = 0  # attach() counts projects: a report about an earlier one is dropped
        self._writer = _Writer()
        self._written.connect(self._on_report)
        self.jobs = LatestWins("autosave", self._write, parent=self)
        self.jobs.failed.connect(self._on_bug)
        self._timer = QTimer(self)  # the debounce: restarted by each edit
        self._timer.setSingleShot(True)
        self._timer.setInterval(debounce_ms)
        self._timer.timeout.connect(self.save_soon)
        self._deadline = QTimer(self)  # the longest wait: started by the first unsaved edit only
        self._deadline.setSingleShot(True)
        self._deadline.setInterval(max_wait_ms)
        self._deadline.timeout.connect(self.save_soon)

    def attach(self, dataset: Dataset | None, path: Path | None) -> None:
        """A new project (flush the old one first): nothing is dirty. Leftover temp files of saves that
        were killed are removed (on the autosave thread)."""
        self._stop_timers()
        self.dataset, self.path = dataset, path
        with self._writer.lock:
            self.version = self.saved_version = self._writer.written = 0
            self._writer.memo = AnnotationTexts()  # the old project's instances are not kept alive
        self.last_error = ""
        self._failed_version = 0
        self._project += 1
        self.dirty_changed.emit(False)
        if path is not None:
            self.jobs.call(remove_stale_temp_files, path)

    @property
    def dirty(self) -> bool:
        return self.saved_version < self.version

    def edited(self) -> None:
        was_dirty = self.dirty
        self.version += 1
        self._timer.start()
        if not self._deadline.isActive():
            self._deadline.start()
        if not was_dirty:
            self.dirty_changed.emit(True)

    def save_soon(self) -> None:
        """Hand the newest snapshot to the writer thread (returns at once)."""
        self._stop_timers()
        if self.dataset is None or self.path is None or not self.dirty:
            return
        self.jobs.put((self.version, snapshot(self.dataset), self.path, self._project))

    def _write(self, job: tuple[int, Dataset, Path, int]) -> None:
        """On the autosave thread."""
        version, dataset, path, project = job
        self._written.emit(project, version, self._writer.write(version, dataset, path) or "")

    def _on_report(self, project: int, version: int, error: str) -> None:
        if project == self._project:
            self._on_done(version, error)

    def flush(self) -> bool:
        """Write now (waiting for a write under way); True when everything is on disk."""
        self._stop_timers()
        if self.dataset is None or self.path is None or not self.dirty:
            return not self.dirty
        version = self.version
        self._on_done(version, self._writer.write(version, snapshot(self.dataset), self.path) or "")
        return not self.dirty

    def save_as(self, path: str | Path) -> bool:
        """Write everything to ``path`` now (waiting for a write under way) and save there from then on;
        the dataset's source becomes that COCO file, so the project's ``annotation_path()`` is ``path``
        too. False (``failed``, ``last_error``) when it cannot be written: nothing is re-targeted."""
        if self.dataset is None:
            return False
        self._stop_timers()
        path = Path(path).expanduser().absolute()
        version = self.version
        error = self._writer.write(version, snapshot(self.dataset), path, again=True)
        if error:
            self.last_error, self._failed_version = error, version
            self.failed.emit(error)
            return False
        self.path = path
        self.dataset.source_format, self.dataset.source_path = "coco", path
        self._on_done(version, "")
        return True

    def ensure_file(self) -> bool:
        """Flush, and write the file even without edits when it does not exist yet (training reads it)."""
        if self.dataset is not None and self.path is not None and not self.path.exists():
            self.version += 1
        return self.flush()

    def _on_done(self, version: int, error: str) -> None:
        if error:
            # moot once a newer version is on its way, or when this one is on disk already (a flush wrote
            # it while the thread's failure was on its way here): never a stale "Could not save"
            if version == self.version and version > self.saved_version:
                self.last_error, self._failed_version = error, version
                self.failed.emit(error)
            return
        was_dirty = self.dirty
        self.saved_version = max(self.saved_version, min(version, self._writer.written))
        if self.last_error and version < self._failed_version:
            return  # an older version written after a newer one failed: the failure stands
        self.last_error = ""
        self.saved.emit(str(self.path))
        if was_dirty and not self.dirty:
            self.dirty_changed.emit(False)

    def _on_bug(self, job: object, message: str) -> None:
        if isinstance(job, tuple):  # a save job (version, dataset, path, project); a failed call() is printed
            self._on_report(job[3], job[0], f"Could not save {job[2].name}: {message}")

    def _stop_timers(self) -> None:
        self._timer.stop()
        self._deadline.stop()

    def shutdown(self, timeout_ms: int = 10000) -> None:
        self._stop_timers()
        self.jobs.shutdown(timeout_ms)
