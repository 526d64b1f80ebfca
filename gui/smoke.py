"""Smoke mode: wait for the first image's prediction (or its failure), grab the window, report, quit."""

from __future__ import annotations

import sys
import time

from PySide6.QtCore import QObject, QTimer
from PySide6.QtWidgets import QApplication

TIMEOUT_S = 300.0


class SmokeRun(QObject):
    def __init__(self, window, screenshot: str | None, expect_model: bool) -> None:  # noqa: ANN001
        super().__init__(window)
        self.window = window
        self.screenshot = screenshot
        self.expect_model = expect_model
        self.exit_code = 1
        self.failure = ""
        self._done = False
        self._deadline = time.monotonic() + TIMEOUT_S
        self._poll = QTimer(self)
        self._poll.setInterval(50)
        self._poll.timeout.connect(self._check)
        window.inference.model_failed.connect(self._fail)
        window.inference.request_failed.connect(self._fail)

    def start(self) -> None:
        self._poll.start()

    def _ready(self) -> bool:
        session, controller = self.window.session, self.window.controller
        if controller.reading:
            return False  # the project is being read (off the GUI thread)
        if session.project is None or controller.loading:
            return session.project is None  # nothing opened: show the empty window
        if session.image is None or not self.expect_model:
            return True  # the image failed to load, or there is no model to wait for
        return session.prediction is not None and controller.is_idle()

    def _check(self) -> None:
        if self.failure or self._ready():
            self._finish()
        elif time.monotonic() > self._deadline:
            self._fail("timed out waiting for the first prediction")

    def _fail(self, message: str) -> None:
        self.failure = self.failure or message
        self._finish()

    def _finish(self) -> None:
        if self._done:
            return
        self._done = True
        self._poll.stop()
        window = self.window
        QApplication.processEvents()
        if self.screenshot:
            window.grab().save(self.screenshot)
        print(f"detections: {len(window.session.shown)}", flush=True)
        if self.failure:
            print(f"error: {self.failure}", file=sys.stderr, flush=True)
        elif window.messages.error_text():
            print(f"message: {window.messages.error_text()}", file=sys.stderr, flush=True)
        ok = not self.failure and (window.session.prediction is not None or not self.expect_model)
        self.exit_code = 0 if ok else 1
        window.close()
        QApplication.instance().quit()
