"""Image files are decoded off the GUI thread (a 6000x4000 PNG takes most of a second).

Same pattern as inference: a latest-wins mailbox, so pressing D ten times quickly decodes the image
being decoded now and then only the last one; each job carries a token and the window ignores
answers to tokens it no longer waits for.
"""

from __future__ import annotations

from PySide6.QtCore import QObject, QThread, Signal, Slot

from engine.data import ImageLoadError, load_image
from gui.workers.inference_worker import Mailbox


class _LoadWorker(QObject):
    loaded = Signal(int, str, object)  # token, path, (H,W,3) uint8
    failed = Signal(int, str, str)  # token, path, message

    def __init__(self, mailbox: Mailbox) -> None:
        super().__init__()
        self.mailbox = mailbox

    @Slot()
    def wake(self) -> None:
        while (job := self.mailbox.take()) is not None:
            token, path = job
            try:
                image = load_image(path)
            except (ImageLoadError, OSError, ValueError) as exc:
                self.failed.emit(token, path, str(exc))
                continue
            self.loaded.emit(token, path, image)


class ImageLoader(QObject):
    loaded = Signal(int, str, object)
    failed = Signal(int, str, str)
    _wake = Signal()

    def __init__(self, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.mailbox = Mailbox()
        self._worker = _LoadWorker(self.mailbox)
        self.thread = QThread()
        self.thread.setObjectName("image-loader")
        self._worker.moveToThread(self.thread)
        self._wake.connect(self._worker.wake)
        self._worker.loaded.connect(self.loaded)
        self._worker.failed.connect(self.failed)
        self.thread.start()

    def request(self, token: int, path: str) -> None:
        if self.mailbox.put((token, path)):
            self._wake.emit()

    def shutdown(self, timeout_ms: int = 10000) -> None:
        self.thread.quit()
        self.thread.wait(timeout_ms)
