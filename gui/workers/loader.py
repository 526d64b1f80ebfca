"""Image files are decoded off the GUI thread (a 6000x4000 PNG takes most of a second).

Latest wins (gui/workers/latest.py), as for inference: pressing D ten times quickly decodes the image
being decoded now and then only the last one; each job carries a token and the window ignores
answers to tokens it no longer waits for.
"""

from __future__ import annotations

from PySide6.QtCore import QObject, Signal

from engine.data import ImageLoadError, load_image
from gui.workers.latest import LatestWins


class ImageLoader(QObject):
    loaded = Signal(int, str, object)  # token, path, (H,W,3) uint8
    failed = Signal(int, str, str)  # token, path, message

    def __init__(self, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.jobs = LatestWins("image-loader", self._load, parent=self)
        self.jobs.failed.connect(self._on_bug)

    def request(self, token: int, path: str) -> None:
        self.jobs.put((token, path))

    def _load(self, job: tuple[int, str]) -> None:
        """On the loader thread; the signals reach the window queued."""
        token, path = job
        try:
            image = load_image(path)
        except (ImageLoadError, OSError, ValueError) as exc:
            self.failed.emit(token, path, str(exc))
            return
        self.loaded.emit(token, path, image)

    def _on_bug(self, job: tuple[int, str], message: str) -> None:
        self.failed.emit(*job, message)  # the window must hear back for every token it waits for

    def shutdown(self, timeout_ms: int = 10000) -> None:
        self.jobs.shutdown(timeout_ms)
