"""The Review menu and the wiring of the reviewer's aids: review mode, colour by confidence, the Errors view,
and the image list's per-image figures (filled from Predict All's results and from every prediction shown,
the list ordered by expected work once Predict All is done).

The figures are computed on their own latest-wins thread: with thousands of instances matching them and the
image's AP take most of a second, which on the GUI thread would follow every edit as a stall."""

from __future__ import annotations

from pathlib import Path

from PySide6.QtCore import QObject, Qt, QTimer, Signal
from PySide6.QtGui import QAction, QKeySequence
from PySide6.QtWidgets import QMainWindow

from engine.ground_truth import PairsCache
from engine.structures import Prediction
from gui.canvas.view import Canvas
from gui.editing.editor import Editor
from gui.editing.masks import matched
from gui.panels.image_list import ImageList
from gui.review.errors_view import ErrorsView
from gui.review.figures import ImageFigures, figures_for
from gui.review.mode import ReviewMode
from gui.session.protocols import Messages
from gui.session.session import Session
from gui.workers.latest import LatestWins

FIGURES_DELAY_MS = 250
MATCH_IOU = 0.5  # as the window's: a prediction this close to an annotation is hidden, so it is no work


class ReviewTools(QObject):
    _figures_ready = Signal(object, int, object)  # the project they were computed for, image index, ImageFigures
    _batch_figures_done = Signal(object)  # the project whose Predict All figures are all in

    def __init__(
        self,
        session: Session,
        canvas: Canvas,
        editor: Editor,
        images: ImageList,
        messages: Messages,
        inference: QObject,  # gui.workers.inference.InferenceClient: its batch_item and batch_done signals
        parent: QObject | None = None,
    ) -> None:
        super().__init__(parent)
        self.session, self.images, self.messages = session, images, messages
        self.mode = ReviewMode(session, canvas, editor, messages, self)
        self.errors = ErrorsView(session, canvas, messages, self)
        self.actions: dict[str, QAction] = {}
        # the current image's figures after a burst of edits or slider moves, not after each (matching thousands
        # of instances takes a noticeable moment)
        self._figures_timer = QTimer(self)
        self._figures_timer.setSingleShot(True)
        self._figures_timer.setInterval(FIGURES_DELAY_MS)
        self._figures_timer.timeout.connect(self._current_figures)
        session.events.shown.connect(lambda _shown: self._figures_timer.start())
        session.events.record.connect(lambda row: self._figures_timer.start() if row == session.index else None)
        inference.batch_item.connect(self._on_batch_item)
        inference.batch_done.connect(self._on_batch_done)
        self._worker = LatestWins("review-figures", self._compute, parent=self)
        # the current image's overlaps between detections and annotations, kept across its edits (figures thread)
        self._pairs = PairsCache()
        self._figures_ready.connect(self._on_figures)
        self._batch_figures_done.connect(self._sort_after_batch)

    def shutdown(self, timeout_ms: int = 2000) -> None:
        self._worker.shutdown(timeout_ms)

    # ----- the menu -----
    def build_menu(self, window: QMainWindow) -> None:
        """A Review menu before Help: the queue, moving in it, colour by confidence, the Errors view, the order."""
        bar = window.menuBar()
        help_action = next((a for a in bar.actions() if a.text() == "&Help"), None)
        menu = bar.addMenu("&Review")
        if help_action is not None:
            bar.insertMenu(help_action, menu)

        def add(name: str, text: str, slot, keys=(), tip: str = "", checkable: bool = False) -> QAction:  # noqa: ANN001
            action = QAction(text, window, checkable=checkable)
            action.setShortcuts([QKeySequence(k) for k in keys])
            action.setShortcutContext(Qt.ShortcutContext.WindowShortcut)
            action.setStatusTip(tip)
            action.setToolTip(tip)
            if checkable:
                action.toggled.connect(slot)
            else:
                action.triggered.connect(lambda _checked=False: slot())
            menu.addAction(action)
            self.actions[name] = action
            return action

        queue = add(
            "queue", "Review &Queue", self._toggle_queue, ("Shift+R",),
            "Walk the shown predictions from least to most confident; the image is reviewed when all are decided",
        )  # fmt: skip
        queue.setCheckable(True)  # checked while the queue runs (it ends by itself when all are decided)
        self.mode.active_changed.connect(queue.setChecked)
        # Tab moves keyboard focus elsewhere: these take it only while the queue runs
        nxt = add("next", "&Next in Queue", self.mode.next, ("Tab",), "The next undecided prediction")
        back = add("back", "&Previous in Queue", self.mode.back, ("Shift+Tab", "Shift+Backtab", "Backtab"))
        for action in (nxt, back):
            action.setEnabled(False)
            self.mode.active_changed.connect(action.setEnabled)
        menu.addSeparator()
        add(
            "colour", "&Colour by Confidence", self.mode.set_colour_by_confidence, (),
            "Predictions red (doubtful) to green (sure): the score times the mask's quality", checkable=True,
        )  # fmt: skip
        add(
            "errors", "&Errors View", self.errors.set_active, ("Shift+E",),
            "Against the annotations: false positives red, poor masks yellow, missed objects blue", checkable=True,
        )  # fmt: skip
        self.errors.active_changed.connect(self.actions["errors"].setChecked)
        order = add(
            "order", "Images by Expected &Work", self.images.sort_by_work, (),
            "Order the image list by the corrections its predictions are expected to need, most first",
            checkable=True,
        )  # fmt: skip
        self.images.sort_check.toggled.connect(order.setChecked)

    def _toggle_queue(self) -> None:
        self.mode.toggle()
        self.actions["queue"].setChecked(self.mode.active)  # a start refused (no prediction) leaves it unchecked

    # ----- per-image figures -----
    def _current_figures(self) -> None:
        session, project = self.session, self.session.project
        if session.prediction is None or project is None or session.record is None:
            return
        # the current image's figures: only the newest request matters (an edit burst leaves one)
        self._worker.put(self._job(session.index, session.prediction, list(session.shown)))

    def _job(self, index: int, prediction: Prediction, shown: list[int] | None) -> tuple:
        """What the figures need, gathered on the GUI thread (the project is not touched off it)."""
        project = self.session.project
        annotations, truth = project.annotations_and_crops(index)  # those the canvas drew for this edit
        names = [project.category_style(i.category_id)[1] for i in annotations]
        classes = [self.session.class_name(int(label)) for label in prediction.labels]
        references = None
        if shown is None:  # a Predict All result: what an annotation or a rejection already covers is no work
            references = [c for c in truth if c.mask.size] + list(project.rejected.get(index, []))
        return project, index, prediction, shown, truth, classes, names, references

    def _compute(self, job: tuple) -> None:
        """On the figures thread."""
        project, index, prediction, shown, truth, classes, names, references = job
        if shown is None:
            hidden = matched(prediction.masks, references, MATCH_IOU)
            shown = [i for i in range(len(prediction)) if not hidden[i]]
            figures = figures_for(prediction, shown, truth, classes, names)  # another image's: no cache
        else:
            figures = figures_for(prediction, shown, truth, classes, names, cache=self._pairs)
        self._figures_ready.emit(project, index, figures)

    def _on_figures(self, project: object, index: int, figures: ImageFigures) -> None:
        if project is self.session.project:  # not for a folder closed meanwhile
            self.images.set_figures(index, figures)

    def _on_batch_item(self, _done: int, _total: int, key: str, prediction: Prediction | None) -> None:
        project = self.session.project
        if project is None or prediction is None or key not in project.paths:
            return
        index = project.paths.index(key)
        if index == self.session.index:
            return  # the current image's figures follow what is shown (filters, decisions)
        self._worker.call(self._compute, self._job(index, prediction, None))  # every image's, in order

    def _on_batch_done(self, cancelled: bool) -> None:
        if cancelled or self.session.project is None:
            return
        # after the figures thread has worked through every image's (its calls run in order)
        project = self.session.project
        self._worker.call(lambda: self._batch_figures_done.emit(project))

    def _sort_after_batch(self, project: object) -> None:
        if project is not self.session.project:
            return
        self.images.sort_by_work(True)
        first = self.images.order()[0] if self.images.order() else -1
        name = Path(self.session.project.paths[first]).name if first >= 0 else ""
        self.messages.show_status(
            f"Predict all: done. Images ordered by expected work, most first ({name}); uncheck 'Most work first' "
            "for file order"
        )
