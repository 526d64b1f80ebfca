"""Review mode (Shift+R): walks the image's shown predictions from least to most confident, each centred and
zoomed on the canvas and selected, so that the Edit menu's keys act on it.

Space accepts, Delete rejects, a digit accepts it as that class (the Edit menu's own actions); B or E accept it
and switch to the brush or eraser to fix its mask; P or R reject it and switch to the polygon or box tool to
draw it anew; Tab and Shift+Tab move among the ones not decided yet. A decision hides the prediction (as it
does outside the queue), and the queue moves on to the next one, unless a fixing tool is active (the user is
still drawing: Tab moves on, and brings back the edit tool). When no prediction is left undecided the image is
marked reviewed (the undoable Ctrl+Return step), as a person has looked at every one.

Optionally (Review > Colour by Confidence) the predictions are drawn red (doubtful) to green (sure).
"""

from __future__ import annotations

from PySide6.QtCore import QObject, QRectF, QTimer, Signal

from gui.canvas import overlay
from gui.canvas.view import Canvas
from gui.editing.editor import Editor
from gui.review.queue import ReviewQueue, confidences
from gui.session.protocols import Messages
from gui.session.session import Session

FIX_BY_EDITING = ("brush", "eraser")  # accept the prediction, then fix its mask
FIX_BY_REDRAWING = ("polygon", "box")  # reject the prediction, then draw the object anew
MIN_VIEW = 96  # image pixels: a tiny detection is still shown with some of its surroundings
CONTEXT = 3.0  # the view shows this many times the detection's box


class ReviewMode(QObject):
    active_changed = Signal(bool)

    def __init__(
        self, session: Session, canvas: Canvas, editor: Editor, messages: Messages, parent: QObject | None = None
    ) -> None:
        super().__init__(parent)
        self.session, self.canvas, self.editor, self.messages = session, canvas, editor, messages
        self.queue: ReviewQueue | None = None
        self.colour_by_confidence = False
        self._built_from = None  # the Prediction the queue was built from (a slider move makes a new one)
        self._pending = False
        session.events.shown.connect(lambda _shown: self._on_shown())
        session.events.image.connect(lambda _index: self.stop("Review stopped: another image"))
        session.events.project.connect(lambda _project: self.stop(""))
        editor.tool_changed.connect(self._on_tool)

    # ----- starting and stopping -----
    @property
    def active(self) -> bool:
        return self.queue is not None

    def toggle(self) -> None:
        if self.active:
            self.stop("Review stopped")
        else:
            self.start()

    def start(self) -> bool:
        session = self.session
        if session.record is None or session.image is None:
            self.messages.show_status("Review needs an image: open a folder first")
            return False
        if session.prediction is None:
            self.messages.show_status("Review needs the model's predictions: load a model (Ctrl+M) and wait for them")
            return False
        self.editor.set_tool("edit")
        self._build()
        self.active_changed.emit(True)
        if self.queue.done:
            self._finish()
            return True
        self._show(self.queue.current())
        return True

    def stop(self, text: str = "") -> None:
        if self.queue is None:
            return
        self.queue, self._built_from = None, None
        self.active_changed.emit(False)
        if text:
            self.messages.show_status(text)

    def _build(self) -> None:
        self.queue = ReviewQueue.build(self.session.prediction, self.session.shown)
        self._built_from = self.session.prediction

    # ----- moving -----
    def next(self) -> None:
        self._step(1)

    def back(self) -> None:
        self._step(-1)

    def _step(self, delta: int) -> None:
        if self.queue is None:
            return
        if self.editor.tool_name != "edit":
            self.editor.set_tool("edit")  # leaving a fix: the next one is decided with the Edit keys again
        if self.queue.done:
            self._finish()
            return
        self._show(self.queue.step(delta))

    def _on_shown(self) -> None:
        if self.colour_by_confidence:
            self.recolour()
        if self.queue is None:
            return
        if self.session.prediction is not self._built_from:  # a slider moved: the queue anew, least sure first
            self._build()
            self._later()
            return
        self.queue.update(self._shown_keys())
        self._later()

    def _later(self) -> None:
        """Move on after the edit that changed what is shown has finished (it selects what it made last)."""
        if not self._pending:
            self._pending = True
            QTimer.singleShot(0, self._settle)

    def _settle(self) -> None:
        self._pending = False
        queue = self.queue
        if queue is None:
            return
        if self.editor.tool_name != "edit":
            return  # fixing: stay until Tab
        if queue.done:
            self._finish()
            return
        key = queue.current()
        if key is not None and key not in queue.decided and self._row_of(key) == self.session.selection.prediction:
            self._say()
            return
        self._show(queue.settle())

    def _finish(self) -> None:
        queue, record = self.queue, self.session.record
        count = len(queue) if queue is not None else 0
        self.stop()
        if record is None:
            return
        if record.state != "reviewed":
            self.editor.mark_reviewed()  # the undoable Ctrl+Return step
        self.messages.show_status(
            f"Review done: {count} predictions decided; the image is marked reviewed (Ctrl+Z takes it back)"
        )

    # ----- fixing -----
    def _on_tool(self, name: str) -> None:
        queue = self.queue
        if queue is None or name not in FIX_BY_EDITING + FIX_BY_REDRAWING:
            return
        key = queue.current()
        row = self._row_of(key) if key is not None else -1
        if row < 0:
            return
        self.session.select((), row)
        if name in FIX_BY_EDITING:
            self.editor.accept_selected()  # its mask becomes an annotation, selected: the brush paints into it
            self.messages.show_status(f"Fix the mask with the {name}; Tab: next")
        else:
            self.editor.delete_selected()  # rejected: what is drawn replaces it (Ctrl+Z brings it back)
            self.messages.show_status(f"Draw the object with the {name} tool; Tab: next")

    # ----- showing -----
    def _shown_keys(self) -> set[int]:
        pred = self.session.prediction
        return {int(pred.keys[i]) for i in self.session.shown} if pred is not None else set()

    def _row_of(self, key: int) -> int:
        pred = self.session.prediction
        if pred is None:
            return -1
        for row, i in enumerate(self.session.shown):
            if int(pred.keys[i]) == key:
                return row
        return -1

    def _show(self, key: int | None) -> None:
        row = self._row_of(key) if key is not None else -1
        if row < 0:
            return
        pred = self.session.prediction
        self.session.select((), row)
        x0, y0, x1, y1 = (float(v) for v in pred.boxes[self.session.shown[row]])
        side = max(MIN_VIEW, CONTEXT * max(x1 - x0, y1 - y0))
        cx, cy = (x0 + x1) / 2, (y0 + y1) / 2
        self.canvas.view.setRange(QRectF(cx - side / 2, cy - side / 2, side, side), padding=0)
        self.canvas.setFocus()
        self._say()

    def _say(self) -> None:
        queue = self.queue
        key = queue.current() if queue is not None else None
        if key is None:
            return
        # short: the status bar shares its line with the edit status and the timings
        self.messages.show_status(
            f"Review {queue.rank()}/{len(queue)} · conf. {queue.confidence.get(key, 0.0):.2f} · "
            f"{queue.remaining} left · Space/Del/1-9 decide · B/E/P/R fix · Tab next"
        )

    def current_row(self) -> int:
        """The instance list's row of the prediction under review (-1: none)."""
        key = self.queue.current() if self.queue is not None else None
        return self._row_of(key) if key is not None else -1

    # ----- colour by confidence -----
    def set_colour_by_confidence(self, on: bool) -> None:
        self.colour_by_confidence = on
        if on:
            self.recolour()
        else:
            self.canvas.draw_prediction(self.session)
        self.canvas.set_selected(self.session.selection.prediction)

    def recolour(self) -> None:
        """The shown predictions drawn red (least confident) to green (most), labelled with the confidence."""
        pred, shown, canvas = self.session.prediction, self.session.shown, self.canvas
        if pred is None:
            return
        conf = confidences(pred)
        colors = [overlay.confidence_color(conf[i]) for i in shown]
        labels = [f"{self.session.class_name(int(pred.labels[i]))} {conf[i]:.2f}" for i in shown]
        canvas.set_instances([pred.masks[i] for i in shown], pred.boxes[shown], colors, labels)
        canvas.set_selected(self.session.selection.prediction)
