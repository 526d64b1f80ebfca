"""Projects are read off the GUI thread: a 100 MB COCO file takes seconds to parse and check.

Latest wins (gui/workers/latest.py), as for images: a second open while one is being read reads the
newest path next, and each job carries a token so the controller ignores the answer to an open that a
later one superseded. ``Project.open`` is Qt-free and builds new objects only, so it may run here; what
is read reaches the GUI thread as a queued signal, and only there is it put into the Session.
"""

from __future__ import annotations

import atexit

from PySide6.QtCore import QObject, Signal

from engine.data import DatasetError, ImageLoadError
from gui.session.project import Project
from gui.workers.latest import LatestWins

# Openers not shut down by their owner (a controller built without a window, in a test): their threads are
# stopped at exit, as a QThread destroyed while it runs aborts the process.
_openers: list[ProjectOpener] = []


@atexit.register
def _shutdown_openers() -> None:
    for opener in _openers:
        opener.shutdown()


class ProjectOpener(QObject):
    read = Signal(int, str, object)  # token, path, Project
    failed = Signal(int, str, str)  # token, path, message ("Cannot open PATH: why")

    def __init__(self) -> None:
        super().__init__()  # no parent: kept in ``_openers`` until shut down, whoever owns it
        self.jobs = LatestWins("project-opener", self._open)
        self.jobs.failed.connect(self._on_bug)
        self._closed = False
        _openers.append(self)

    def request(self, token: int, path: str) -> None:
        self.jobs.put((token, path))

    def _open(self, job: tuple[int, str]) -> None:
        """On the opener thread; the signals reach the GUI thread queued."""
        token, path = job
        try:
            project = Project.open(path)
        except (DatasetError, ImageLoadError, OSError) as exc:
            self.failed.emit(token, path, f"Cannot open {path}: {exc}")
            return
        except Exception as exc:  # noqa: BLE001 - a reader's bug (or a file it did not foresee) is one message too
            self.failed.emit(token, path, f"Cannot open {path}: {type(exc).__name__}: {exc}")
            return
        self.read.emit(token, path, project)

    def _on_bug(self, job: tuple[int, str], message: str) -> None:
        token, path = job
        self.failed.emit(token, path, f"Cannot open {path}: {message}")  # the controller hears back for every token

    def shutdown(self, timeout_ms: int = 10000) -> None:
        """Stop the thread; a read under way is left to finish on its own (joined at exit) after ``timeout_ms``."""
        if self._closed:
            return
        self._closed = True
        self.jobs.shutdown(timeout_ms)
        if self in _openers:
            _openers.remove(self)
