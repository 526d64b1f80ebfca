"""Smoke mode: wait for the first image's prediction (or its failure), grab the window, report, quit."""

from __future__ import annotations

import sys

from PySide6.QtCore import QObject, QTimer
from PySide6.QtWidgets import QApplication

TIMEOUT_MS = 300_000


class SmokeRun(QObject):
    def __init__(self, window, screenshot: str | None, expect_model: bool) -> None:  # noqa: ANN001
        super().__init__(window)
        self.window = window
        self.screenshot = screenshot
        self.expect_model = expect_model
        self.exit_code = 1
        self._done = False
        client = window.inference
        client.prediction_ready.connect(lambda _r: QTimer.singleShot(50, self._finish))
        client.request_failed.connect(lambda message: self._fail(message))
        client.model_failed.connect(lambda message: self._fail(message))

    def start(self) -> None:
        QTimer.singleShot(TIMEOUT_MS, lambda: self._fail("timed out waiting for the first prediction"))
        if not self.expect_model or self.window.project is None or self.window.image is None:
            QTimer.singleShot(200, self._finish)  # nothing to wait for: show what there is

    def _finish(self) -> None:
        if self._done:
            return
        self._done = True
        window = self.window
        QApplication.processEvents()
        if self.screenshot:
            window.grab().save(self.screenshot)
        print(f"detections: {len(window.shown)}", flush=True)
        self.exit_code = 0 if (window.prediction is not None or not self.expect_model) else 1
        if window.error_text():
            print(f"message: {window.error_text()}", file=sys.stderr, flush=True)
        window.close()
        QApplication.instance().quit()

    def _fail(self, message: str) -> None:
        if self._done:
            return
        print(f"error: {message}", file=sys.stderr, flush=True)
        self._finish()
        self.exit_code = 1
