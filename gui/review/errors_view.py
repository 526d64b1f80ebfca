"""The Errors view (Shift+E): where the model disagrees with the image's annotations, in colours on the canvas.

The model's detections (all of them above the score threshold, also those hidden under an annotation) are
matched to the image's annotations by engine.ground_truth: false positives red, poor masks (IoU < 0.5 with
the object they found) yellow, objects no detection found blue, right ones a thin green outline. It draws into
one layer of its own above the predictions, and the status line says the counts and the image's mask AP50.
"""

from __future__ import annotations

import math

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import QObject, QRectF, Signal

from engine.ground_truth import ImageErrors, find_errors, image_ap
from gui.canvas import overlay
from gui.canvas.view import Canvas
from gui.session.protocols import Messages
from gui.session.session import Session

COLORS = {
    "false_positive": (235, 30, 30),
    "poor": (255, 200, 0),
    "missed": (40, 110, 255),
    "good": (60, 200, 80),
}
FILL_ALPHA = {"false_positive": 110, "poor": 110, "missed": 110, "good": 0}  # right ones: outline only
LAYER_Z = 6.5  # above the prediction boxes (6), below the editing tools' feedback (7+)


class ErrorsView(QObject):
    active_changed = Signal(bool)

    def __init__(self, session: Session, canvas: Canvas, messages: Messages, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.session, self.canvas, self.messages = session, canvas, messages
        self.active = False
        self.errors: ImageErrors | None = None
        self.ap50 = math.nan
        self.layer = pg.ImageItem(axisOrder="row-major")
        self.layer.setZValue(LAYER_Z)
        canvas.view.addItem(self.layer)
        self._rect = (0, 0, 0, 0)
        session.events.shown.connect(lambda _shown: self.refresh())
        session.events.record.connect(lambda row: self.refresh() if row == session.index else None)
        session.events.pixels.connect(lambda _image: self.refresh())

    def set_active(self, on: bool) -> None:
        if on == self.active:
            return
        self.active = on
        self.active_changed.emit(on)
        self.refresh()
        if not on:
            self.messages.show_status("Errors view off")

    def toggle(self) -> None:
        self.set_active(not self.active)

    def compute(self) -> tuple[ImageErrors, list, list] | None:
        """The current image's errors, and the detection and annotation crops they index (None: nothing to
        compare: no prediction or no annotation)."""
        session, project = self.session, self.session.project
        pred = session.prediction
        if pred is None or project is None or session.record is None or session.image is None:
            return None
        truth = [(i, project.crop(session.index, i)) for i in project.annotations(session.index)]
        truth = [(i, c) for i, c in truth if c.mask.size]
        if not truth:
            return None
        gt_crops = [c for _, c in truth]
        gt_names = [project.category_style(i.category_id)[1] for i, _ in truth]
        pred_names = [session.class_name(int(label)) for label in pred.labels]
        errors = find_errors(pred.masks, pred.scores, gt_crops, pred_names, gt_names)
        self.ap50 = image_ap(pred.masks, pred.scores, gt_crops, pred_classes=pred_names, gt_classes=gt_names)
        return errors, list(pred.masks), gt_crops

    def refresh(self) -> None:
        if not self.active:
            self.errors = None
            self.layer.clear()
            return
        found = self.compute()
        if found is None:
            self.errors = None
            self.layer.clear()
            why = "no prediction yet" if self.session.prediction is None else "this image has no annotations"
            self.messages.show_status(f"Errors view: nothing to compare ({why}); it needs ground truth and a model")
            return
        errors, preds, truths = found
        self.errors = errors
        crops, colors, alphas = [], [], []
        for kind, items, source in (
            ("false_positive", errors.false_positive, preds),
            ("poor", errors.poor, preds),
            ("missed", errors.missed, truths),
            ("good", errors.good, preds),
        ):
            for i in items:
                crops.append(source[i])
                colors.append(COLORS[kind])
                alphas.append(FILL_ALPHA[kind])
        self._draw(crops, colors, alphas)
        c = errors.counts()
        self.messages.show_status(  # short: the status bar shares its line with the edit status
            f"Errors: {c['false_positive']} false pos. (red) · {c['poor']} poor masks (yellow) · "
            f"{c['missed']} missed (blue) · {c['good']} right · AP50 {self.ap50:.2f}"
        )

    def _draw(self, crops: list, colors: list, alphas: list[int]) -> None:
        height, width = self.session.image.shape[:2]
        labels = overlay.label_map(crops, height, width)
        if labels.empty or not crops:
            self.layer.clear()
            self._rect = (0, 0, 0, 0)
            return
        table = overlay.palette(colors)
        table[1:, 3] = alphas
        rgba = overlay.colorize(labels.labels, table)
        rgba[overlay.boundary(labels.labels, 2), 3] = 255
        self.layer.setImage(rgba, autoLevels=False, levels=None)
        self._rect = labels.rect()
        self.layer.setRect(QRectF(*self._rect))

    def full_rgba(self) -> np.ndarray:
        """The layer as drawn on a full-image (H,W,4) canvas (for tests and screenshots)."""
        image = self.session.image
        if image is None:
            return np.zeros((0, 0, 4), np.uint8)
        full = np.zeros((*image.shape[:2], 4), dtype=np.uint8)
        drawn = self.layer.image
        if self.active and drawn is not None and self._rect[2]:
            x0, y0 = self._rect[:2]
            full[y0 : y0 + drawn.shape[0], x0 : x0 + drawn.shape[1]] = drawn
        return full
