"""Between the workers and the Session: opening a project, switching images, applying inference results,
loading models, Predict all. Not a widget: a test can drive it with a Session and the workers.

It writes what is open into the Session (whose events redraw the widgets), hands requests to the
``InferenceClient`` and the ``ImageLoader`` and tells the user through ``Messages``. What it still
needs from the widgets comes in as callables (the sliders' settings, the chosen device) and as two
view settings the window keeps up to date (``class_filter``, ``hide_matched``).

The model follows the project (issue 13, bug 2): opening a folder loads the model it remembers
(gui/session/project.py's ``ProjectMemory``; a model chosen or trained while it is open is remembered), or says
that it has none and which model is in use. A model whose classes the folder lacks is never used silently: its
predictions of those classes are hidden until the user chooses (``set_class_choice``: map them to the folder's,
show only the folder's, add them), so Shift+A cannot bring foreign classes in by itself.

After Predict all, opening an image shows the result the batch stored for it (bug 7: it ran the whole model
again, ~5 s) as long as the model, its scale and the sliders are those of the batch; a slider moved, Predict, or a
new scale or model runs the model on it then.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

import numpy as np
from PySide6.QtCore import QObject, QTimer, Signal

from engine.structures import Prediction, PredictSettings
from gui.editing.masks import annotation_crops, matched
from gui.session.project import CLASS_MODES, ClassStatus, Project, foreign_classes, model_name
from gui.session.protocols import Messages
from gui.session.session import Session
from gui.window.messages import NO_FOLDER, NO_MODEL, UNREADABLE
from gui.workers.autosave import AutoSaver
from gui.workers.inference import InferenceClient
from gui.workers.inference_worker import ModelInfo, Result, describe_scale
from gui.workers.loader import ImageLoader
from gui.workers.opener import ProjectOpener

MATCH_IOU = 0.5  # a prediction this close to an annotation (or a rejected prediction) is hidden
STORED_LIMIT = 2000  # Predict all's results kept for opening images (the oldest go first)


class ImageController(QObject):
    timing = Signal(str)  # the newest result's stage timings
    hint = Signal(str)  # what the canvas should say over the image ("" for nothing)
    batch = Signal(bool, int, int)  # Predict all: running, done, total
    model_ready = Signal(object)  # ModelInfo, before the image on screen is predicted with it
    first_shown = Signal()  # the project just opened has shown its first image (or failed to, or has none), or the
    # open failed
    tile_progress = Signal(int, int)  # tiles done, tiles of the image being predicted (0, 0: none under way)
    predicting = Signal(bool)  # a tiled prediction is under way (it can be cancelled)
    scale_applied = Signal(object)  # ModelInfo: the user's scale for the model is in force
    opened = Signal(bool)  # an open ended: the project is in the Session (True), or a message says why not
    busy = Signal(bool)  # a project is being read (the busy bar)
    classes_changed = Signal(object)  # ClassStatus: the model's classes against the folder's, the user's choice

    def __init__(
        self,
        session: Session,
        inference: InferenceClient,
        loader: ImageLoader,
        saver: AutoSaver,
        messages: Messages,
        settings: Callable[[], PredictSettings],
        device: Callable[[], str],
        parent: QObject | None = None,
        opener: ProjectOpener | None = None,
    ) -> None:
        super().__init__(parent)
        self.session, self.inference, self.loader, self.saver = session, inference, loader, saver
        self.opener = opener or ProjectOpener()
        self.reading = ""  # the path being read (open_path), "" when none
        self._open_token = 0
        self.messages, self.settings, self.device = messages, settings, device
        self.class_filter = ""  # the instance list's class filter ("" for all)
        self.hide_matched = True  # hide predictions matching an annotation
        self.loading = False
        self._load_token = 0
        self._pending: Result | None = None
        self._batch = (0, 0)
        self._batch_project: Project | None = None  # the folder Predict all runs (or ran) over
        self._first_pending = False  # first_shown not emitted yet for the project just opened
        self._tiles_shown = False  # the status line shows a tiled prediction's progress
        self._shown_for: Prediction | None = None  # the prediction Session.shown was last chosen from
        self.model_classes: list[str] = []  # the loaded model's own class names (the Session's may be mapped)
        self.class_status = ClassStatus()
        self._remember_path = ""  # a model asked for while a project is open: remembered for it once loaded
        self._explicit = ""  # a model named on the command line: it wins over the next folder's remembered one
        # Predict all's results by image path, and the sliders they were made under (cleared by a new model/scale)
        self.stored: dict[str, tuple[Prediction, PredictSettings]] = {}
        self._batch_settings: PredictSettings | None = None
        self._open_note = ""  # what the status line says about the folder's model once its first image shows
        self._note_model = ""  # the model that note names as the one in use
        self._deferred: tuple[str, np.ndarray] | None = None  # the image on screen shows a stored result: its
        # pixels go to the model only when something asks for a new prediction
        inference.prediction_ready.connect(self._on_result)
        inference.request_failed.connect(lambda message: messages.show_error(message, scope="result"))
        inference.request_failed.connect(lambda _message: self._first_done())
        inference.predict_cancelled.connect(lambda *_: self._first_done())
        inference.batch_failed.connect(messages.show_error)
        inference.model_loaded.connect(self._on_model_loaded)
        inference.model_failed.connect(self._on_model_failed)
        inference.batch_item.connect(self._on_batch_item)
        inference.batch_done.connect(self._on_batch_done)
        inference.predict_progress.connect(self._on_tile_progress)
        inference.predict_cancelled.connect(self._on_prediction_cancelled)
        inference.request_failed.connect(lambda _message: self._end_tiles(clear_status=False))  # it shows the error
        inference.scale_set.connect(self._on_scale_set)
        self.opener.read.connect(self._on_project_read)
        self.opener.failed.connect(self._on_project_failed)
        loader.loaded.connect(self._on_image_loaded)
        loader.failed.connect(self._on_image_failed)
        saver.failed.connect(self._on_save_failed)
        saver.saved.connect(lambda _path: messages.hide_error("save"))

    # ----- opening things -----
    def open_path(self, path: str | Path) -> bool:
        """A folder, an annotation file or an image, read on the opener thread ("Opening NAME…" and the busy
        bar meanwhile; the window stays responsive); True: the read started (``opened`` says how it ended).
        An open asked for while another is read supersedes it. A failure is a message, and what is open stays.
        """
        self._open_token += 1
        self.reading = str(path)  # ``loading`` meanwhile: what waits for the open (smoke mode) waits for the read
        self.messages.show_status(f"Opening {Path(path).name or path}…")
        self.busy.emit(True)
        self.opener.request(self._open_token, str(path))
        return True

    def _on_project_read(self, token: int, path: str, project: Project) -> None:
        if token != self._open_token:
            return  # a later open superseded this one
        self._end_read()
        if self.saver.dirty and not self.saver.flush():  # an edit made while reading: on disk before the switch
            self._open_failed(f"Did not open {path}: the edits to the project open now could not be saved")
            return
        self.saver.attach(project.dataset, project.annotation_path())
        self.stored.clear()
        self._deferred = None
        self.session.open_project(project)
        if self.inference.batch_running:  # Predict all over the folder closed: its results have nowhere to go
            self.inference.cancel_batch()
        self.batch.emit(False, 0, 0)  # the last Predict all's "5 / 5" was another folder's
        self.messages.show_status("")
        self._follow_project_model(project)
        if project.warnings:
            self.messages.show_status(f"{len(project.warnings)} warnings while reading: {project.warnings[0]}")
        self._first_pending = True
        self.opened.emit(True)
        if len(project):
            self.go_to(project.start_index)
        else:
            self._first_done()

    def _follow_project_model(self, project: Project) -> None:
        """The folder's own model is loaded (unless in use already); else the status line says it has none, or that
        its model is missing, and which model is in use (the Model panel says it too: project.model_note)."""
        remembered, current = project.memory.model(), self.session.weights_path
        using = model_name(current) if current else "none"
        self._open_note, self._note_model = "", current
        explicit, self._explicit = self._explicit, ""
        if explicit and explicit == current:  # ``main.py FOLDER --weights FILE``: the user's choice now wins
            self._choose_explicit(project, current, remembered)
        elif remembered and remembered != current:
            from engine import hub

            if Path(remembered).is_file() or hub.is_alias(remembered):
                self.messages.show_status(f"Loading this folder's model {model_name(remembered)}…")
                self.load_weights(remembered, remember=False)
                return
            self._open_note = f"This folder's model {remembered} is missing; the model in use: {using}"
        elif not remembered:
            self._open_note = (
                f"This folder has no model of its own yet; the model in use: {using} (train one, or choose one: "
                "it is remembered for this folder)"
            )
        self.messages.show_status(self._open_note)
        self._load_class_choice()
        self._update_classes()

    def _choose_explicit(self, project: Project, current: str, remembered: str) -> None:
        """The model named on the command line is used, and becomes the folder's model as one chosen with Model >
        Open Weights does (the user named it for this folder; the folder's runs list leads back to the old one)."""
        loaded = self.inference.model is not None and str(self.inference.model.path) == current
        if remembered != current:
            if loaded:
                project.memory.remember_model(current)
            else:
                self._remember_path = current  # remembered once loaded (a file that fails to load is not)
        said = f"Model in use: {model_name(current)}, as the command line asked"
        if remembered == current:
            self._open_note = f"{said} (this folder's model)"
        else:
            before = f" instead of this folder's model {model_name(remembered)}" if remembered else ""
            self._open_note = f"{said}{before}; it is this folder's model now"

    def _on_project_failed(self, token: int, path: str, message: str) -> None:
        if token == self._open_token:
            self._end_read()
            self._open_failed(message)

    def _end_read(self) -> None:
        self.reading = ""
        self.busy.emit(False)

    @property
    def loading(self) -> bool:
        """A project is being read or an image decoded."""
        return self._loading_image or bool(self.reading)

    @loading.setter
    def loading(self, value: bool) -> None:
        self._loading_image = value

    def _open_failed(self, message: str) -> None:
        self.messages.show_error(message)
        self.update_hint()
        self._first_pending = True  # the open ended: the start-up guard's mark goes (``first_shown``)
        self._first_done()
        self.opened.emit(False)

    def _first_done(self, until_predicted: bool = False) -> None:
        """The project just opened got to its first image (``first_shown``); ``until_predicted``: with a
        model, its first prediction (or a failure) ends the open, so a crash in it counts as one too."""
        if until_predicted and (self.inference.model is not None or self.inference.loading_model):
            return
        if self._first_pending:
            self._first_pending = False
            self.first_shown.emit()

    def report_mask_errors(self) -> None:
        """Masks the project could not decode (skipped, not drawn): one message for all found so far."""
        project = self.session.project
        if project is None or not project.mask_errors:
            return
        errors, project.mask_errors = project.mask_errors, []
        more = f" (and {len(errors) - 1} more)" if len(errors) > 1 else ""
        self.messages.show_error(f"{errors[0]}{more}. The other annotations are shown.", scope="image")

    def go_to(self, index: int) -> None:
        """Show image ``index``: decoded in the loader thread, then predicted in the inference thread."""
        project = self.session.project
        if project is None or not 0 <= index < len(project) or index == self.session.index:
            return
        # written on the autosave thread, not here: a large file takes seconds to write (a failure is shown;
        # the edits stay in memory and are retried with the next save)
        self.saver.save_soon()
        self.inference.clear_image()  # whatever is in flight for the previous image is stale now
        self._deferred = None
        self._end_tiles()
        self.session.go_to(index)
        self.refilter()
        self._load_token += 1
        self.loading = True
        self.messages.show_status(f"Loading {Path(project.paths[index]).name}…")
        self.loader.request(self._load_token, project.paths[index])

    def step(self, delta: int) -> None:
        project = self.session.project
        if project is not None and len(project):
            self.go_to(max(0, min(len(project) - 1, self.session.index + delta)))

    def _on_image_loaded(self, token: int, path: str, image: np.ndarray) -> None:
        if token != self._load_token:
            return  # the user has moved on
        self.loading = False
        self.messages.hide_error("action", "image", "result", "offer")  # a model or save failure stays
        self.messages.show_status(self._notes())
        try:
            self.session.set_pixels(image)  # the canvas draws it, the editor the annotations
        except Exception as exc:  # noqa: BLE001 - whatever failed to draw, the image is still predicted
            import traceback

            traceback.print_exc()
            self.messages.show_error(f"Could not draw {Path(path).name}: {type(exc).__name__}: {exc}", scope="image")
        self.report_mask_errors()
        stored = self.stored_result(path)
        if stored is not None:  # Predict all's result, under the same model, scale and sliders: shown as it is
            self._deferred = (path, image)
            self.update_hint()
            self._show(stored, "stored by Predict all (a slider, Predict or a new model runs the model again)")
            return
        self.inference.set_image(path, image, self.settings())
        self.update_hint()
        self._first_done(until_predicted=True)

    def _on_image_failed(self, token: int, path: str, message: str) -> None:
        if token != self._load_token:
            return
        self.loading = False
        self.session.set_pixels(None)
        self.messages.show_error(message, scope="image")
        self.update_hint()
        self._first_done()

    # ----- inference results -----
    def settings_changed(self) -> None:
        if not self._send_deferred():
            self.inference.update_settings(self.settings())

    def stored_result(self, path: str) -> Prediction | None:
        """Predict all's prediction for image ``path`` when the sliders are still those it ran under (a new model
        or scale has cleared it), else None."""
        entry = self.stored.get(path)
        if entry is None or entry[1] != self.settings() or self.inference.model is None:
            return None
        return entry[0]

    def _send_deferred(self) -> bool:
        """The image on screen shows a stored result and something asks for a new prediction: its pixels go to the
        model now (a new generation; the first run on it computes what the sliders re-use). True when sent."""
        if self._deferred is None:
            return False
        path, image = self._deferred
        self._deferred = None
        if path != self.session.key:
            return False
        self.inference.set_image(path, image, self.settings())
        return True

    def _on_result(self, result: Result) -> None:
        self._pending = result
        QTimer.singleShot(0, self._apply_pending)  # several results queued: draw only the newest

    def _apply_pending(self) -> None:
        result, self._pending = self._pending, None
        if result is None or result.request.key != self.session.key:
            return
        self._show(result.prediction, f"{result.tiles} tiles" if result.tiles > 1 else "")

    def _show(self, prediction: Prediction, note: str = "") -> None:
        """Show ``prediction`` for the image on screen (fresh from the worker, or stored by Predict all: ``note``
        says which in the timing line)."""
        self.session.set_prediction(prediction)
        self.messages.hide_error("result")
        self.refilter()
        self.session.mark_predicted(self.session.index)  # after refilter: its row's observers read ``shown``
        self._first_done()
        self._end_tiles()
        notes = self._notes()
        if notes:
            self.messages.show_status(notes)
        self._open_note = ""  # said once the folder's first result is on screen
        model = self.inference.model
        scale = [describe_scale(model.scaled_config)] if model is not None and model.config is not None else []
        timings = [f"{k} {v:.0f} ms" for k, v in prediction.timings_ms.items()]
        self.timing.emit(" · ".join(scale + ([note] if note else []) + timings))
        shrunk = self.shrink_note(model)
        if shrunk:
            self.messages.show_status(shrunk)

    def shrink_note(self, model: ModelInfo | None) -> str:
        """What the status line says when the model's short-side policy shrinks the image on screen by more than
        2x (a 10,000 x 10,000 image predicted at 800 px: its objects at 8 % of their size), else ""."""
        image, config = self.session.image, model.scaled_config if model is not None else None
        if image is None or config is None or config.scale_policy == "pixel-scale":
            return ""  # at pixel scale the factor is the user's (or the model's) choice for the objects' size
        from engine.model.transform import input_scale

        factor = input_scale(image.shape[0], image.shape[1], config)
        if factor >= 0.5:
            return ""
        percent = f"{100 * factor:.0f}" if factor >= 0.01 else f"{100 * factor:.2g}"
        return (
            f"Shown at {percent} %: the model works at a short side of {config.min_size[-1]} px; "
            "set a pixel scale in the Model panel to keep objects at their size"
        )

    # ----- large images: tiles, cancel, scale -----
    def _on_tile_progress(self, done: int, total: int) -> None:
        self._tiles_shown = True
        self.tile_progress.emit(done, total)
        self.predicting.emit(True)
        if done < total:
            self.messages.show_status(f"Predicting tile {done + 1} / {total}… (Esc: cancel)")
        else:
            self.messages.show_status(f"Merging {total} tiles…")

    def _end_tiles(self, clear_status: bool = True) -> None:
        """No tiled prediction under way (any more): the status line and the progress bar say so."""
        if self._tiles_shown:
            self._tiles_shown = False
            self.tile_progress.emit(0, 0)
            self.predicting.emit(False)
            if clear_status:
                self.messages.show_status("")

    def cancel_prediction(self) -> None:
        """Esc or the Model panel's Cancel: stop the current image's prediction between two tiles."""
        self.inference.cancel_prediction()

    def _on_prediction_cancelled(self, done: int, total: int) -> None:
        self._end_tiles()
        self.messages.show_status(
            f"Prediction cancelled after {done} of {total} tiles; they are kept: Predict (or any slider) goes on "
            "from there"
        )

    def predict_again(self) -> None:
        """The Model panel's Predict: the current image again (after a cancel, it goes on from the tiles done)."""
        if self.session.image is None or self.inference.model is None:
            self.messages.show_error(NO_MODEL if self.session.image is not None else NO_FOLDER)
            return
        if not self._send_deferred():
            self.inference.resend(self.settings())

    def set_scale(self, object_size: float | None, predict: bool = True) -> None:
        """The user's scale for the model loaded (pixel scale for objects of ``object_size`` px; None: the model's
        own): set in the worker without reading the weights again, then (``predict``) the image is predicted anew."""
        if self.inference.model is None:
            return
        self.inference.set_scale(object_size)
        self.stored.clear()  # made at the old scale
        if predict and self.session.image is not None and not self._send_deferred():
            self.inference.resend(self.settings())  # a new generation: a prediction at the old scale stops

    def _on_scale_set(self, info: ModelInfo) -> None:
        self.stored.clear()
        self.scale_applied.emit(info)
        self.messages.show_status(f"Scale for {model_name(info.path)}: {describe_scale(info.scaled_config)}")

    def refilter(self) -> None:
        """Which predictions are shown: those of the filtered class, not hidden under an annotation."""
        pred = self.session.prediction
        if pred is None:
            self._shown_for = None
            self.session.set_shown([])
            return
        hidden = self.hidden_predictions(pred) if self.hide_matched else np.zeros(len(pred), bool)
        foreign = self._update_classes(pred)  # of a class the folder lacks, and the user has not let it in
        self.report_mask_errors()
        keep = ~(np.asarray(hidden, dtype=bool) | np.asarray(foreign, dtype=bool))
        wanted = self.class_filter
        if wanted:  # the class names per label, then per detection in numpy (no loop over thousands each edit)
            labels = np.asarray(pred.labels, dtype=np.int64).reshape(-1)
            unique = np.unique(labels)
            ok = np.array([self.session.class_name(int(label)) == wanted for label in unique], dtype=bool)
            keep &= ok[np.searchsorted(unique, labels)]
        shown = np.flatnonzero(keep).tolist()
        if pred is self._shown_for and shown == self.session.shown:
            return  # an edit that hides nothing new: the masks and the instance list are not redrawn
        self._shown_for = pred
        self.session.set_shown(shown)

    # ----- the model's classes against the folder's -----
    def _notes(self) -> str:
        """What the status line says when an image or its result is shown: on the folder's first, whether the model
        is its own; while a class mismatch is undecided, that its predictions are hidden and why."""
        undecided = self.class_status.describe() if self.class_status.mode == "undecided" else ""
        return " ".join(text for text in (self._open_note, undecided) if text)

    def _update_classes(self, prediction: Prediction | None = None) -> np.ndarray:
        """Work out the ClassStatus (emitted when it changed; the status line told once per mismatch) and, for
        ``prediction``, which of its detections are hidden for their class ((D,) bool)."""
        project = self.session.project
        project_names = project.category_names() if project is not None else []
        foreign = foreign_classes(self.model_classes, project_names) if self.inference.model is not None else []
        old = self.class_status
        mapping = dict(old.mapping)
        hide = np.zeros(len(prediction) if prediction is not None else 0, dtype=bool)
        status = ClassStatus(
            tuple(self.model_classes), tuple(project_names), tuple(foreign), old.mode,
            tuple((name, mapping.get(name, "")) for name in foreign), old.hidden,
        )  # fmt: skip
        if prediction is not None:
            if foreign:  # per class, then looked up per detection (thousands of them on a large image)
                own = self.model_classes
                hidden_class = np.array([True] + [not status.shown_name(name) for name in own])
                labels = np.asarray(prediction.labels, dtype=np.int64)
                hide = hidden_class[np.where((labels >= 1) & (labels <= len(own)), labels, 0)]
            status = replace(status, hidden=int(hide.sum()))
        if status != old:
            self.class_status = status
            self._apply_class_names()
            self.classes_changed.emit(status)
            if status.mismatch and (not old.mismatch or old.foreign != status.foreign):
                self.messages.show_status(status.describe())
        return hide

    def _apply_class_names(self) -> None:
        """The Session's class names: the model's, or in map mode the folder's class each maps to (what accepting
        a prediction files it under)."""
        status = self.class_status
        names = [(status.shown_name(n) or n) if status.mode == "map" else n for n in self.model_classes]
        if self.inference.model is not None and names != self.session.class_names:
            self.session.set_model(self.session.weights_path, names, self.session.model_description)

    def set_class_choice(self, mode: str, mapping: dict[str, str] | None = None) -> None:
        """The user's choice for the model's classes the folder lacks (the Model panel's Classes box): remembered
        for this folder and model, and applied to what is shown."""
        if mode not in CLASS_MODES:
            raise ValueError(f"class choice must be one of {CLASS_MODES}, got {mode!r}")
        mapping = {k: v for k, v in (mapping or {}).items() if k in self.model_classes}
        self.class_status = replace(
            self.class_status,
            mode=mode,
            mapping=tuple((name, mapping.get(name, "")) for name in self.class_status.foreign),
        )
        project = self.session.project
        if project is not None and self.session.weights_path:
            project.memory.remember_class_choice(self.session.weights_path, mode, mapping)
        self._apply_class_names()
        self._shown_for = None
        self.refilter()
        self.classes_changed.emit(self.class_status)
        self.messages.show_status(self.class_status.describe())

    def _load_class_choice(self, path: str = "") -> None:
        """The choice remembered for this folder and model ``path`` (default: the one in use); undecided when none."""
        project, path = self.session.project, path or self.session.weights_path
        mode, mapping = project.memory.class_choice(path) if project is not None and path else ("undecided", {})
        self.class_status = replace(self.class_status, mode=mode, mapping=tuple(mapping.items()))

    def hidden_predictions(self, prediction: Prediction) -> np.ndarray:
        """(D,) bool: predictions that match an annotation or a rejected prediction (IoU >= 0.5)."""
        session, project = self.session, self.session.project
        if project is None or session.record is None or session.image is None:
            return np.zeros(len(prediction), dtype=bool)
        crops = annotation_crops(project, session.index)[1]
        references = [c for c in crops if c.mask.size] + project.rejected.get(session.index, [])
        return matched(prediction.masks, references, MATCH_IOU)

    def is_idle(self) -> bool:
        """Nothing in flight and the newest result drawn (results are drawn from a zero-delay timer)."""
        return not self.loading and not self.inference.busy and self._pending is None

    # ----- box masks (the Editor's BoxMasks) -----
    def can_mask_boxes(self) -> bool:
        return self.inference.model is not None and self.session.image is not None

    def request_box_mask(self, box: tuple[float, float, float, float], label: int) -> int:
        threshold = self.settings().mask_threshold
        return self.inference.mask_from_box(self.session.key, self.session.image, box, label, threshold)

    # ----- model -----
    def load_weights(self, path: str | Path, remember: bool = True, explicit: bool = False) -> None:
        """Load a model (in the worker); the path is kept absolute, as settings and the trainer need it. With a
        folder open and ``remember``, it becomes the folder's model once loaded. ``explicit`` (named on the command
        line): the next folder opened keeps it instead of loading the model it remembers."""
        from engine import hub

        self.session.set_model(hub.absolute_unless_alias(path), description="loading…")
        self._explicit = self.session.weights_path if explicit else ""
        self._remember_path = self.session.weights_path if remember and self.session.project is not None else ""
        self.inference.load_model(self.session.weights_path, self.device())

    def reload(self) -> None:
        """The same model again (on another device)."""
        if self.session.weights_path:
            self.load_weights(self.session.weights_path)

    def _on_model_loaded(self, info: ModelInfo) -> None:
        self.model_ready.emit(info)
        self.stored.clear()  # made by another model (or the same file before a run replaced it)
        project = self.session.project
        if project is not None and self._remember_path and self._remember_path == info.path:
            project.memory.remember_model(info.path)  # before the Session's event: the Model panel reads it
        self._remember_path = ""
        if info.path != self._note_model:
            self._open_note = ""  # it named another model as the one in use (or none): moot now
        self.model_classes = list(info.class_names)
        self._load_class_choice(info.path)
        self.session.set_model(info.path, info.class_names, info.description)
        self.messages.show_status(f"Model loaded: {model_name(info.path)} ({info.description})")
        self.messages.hide_error("action", "model", "result")
        self._update_classes()
        self.update_hint()
        if self.session.image is not None and not self._send_deferred():
            self.inference.resend(self.settings())

    def _on_model_failed(self, message: str) -> None:
        model = self.inference.model
        self.session.set_model(model.path if model else "")  # the model in use stays
        self.messages.show_error(message, scope="model")
        self.update_hint()
        self._first_done()

    def bind_model_panel(self, panel: QObject, trainer: QObject) -> None:
        """The Model panel's Classes box (the user's choice for a model of other classes) and, through the
        TrainController, its list of the folder's runs and "Train a new head"."""
        self.classes_changed.connect(panel.set_class_status)
        panel.class_choice_changed.connect(self.set_class_choice)
        trainer.bind_model_panel(panel)
        panel.set_class_status(self.class_status)

    def update_hint(self) -> None:
        session = self.session
        if session.project is None:
            self.hint.emit(NO_FOLDER)
        elif session.image is None and session.index >= 0 and not self.loading:
            self.hint.emit(UNREADABLE)
        elif self.inference.model is None and not self.inference.loading_model:
            self.hint.emit(NO_MODEL)
            self.messages.show_status("No model: Model > Open Weights… (Ctrl+M)")
        else:
            self.hint.emit("")

    # ----- predict all -----
    def predict_all(self) -> None:
        project = self.session.project
        if project is None or self.inference.model is None:
            self.messages.show_error("Predict all needs a folder and a model." if project else NO_FOLDER)
            return
        settings = self.settings()
        if self.inference.predict_all(project.paths, settings):
            self._batch_settings = settings
            self._batch, self._batch_project = (0, len(project)), project
            self.batch.emit(True, 0, len(project))

    def _on_batch_item(self, done: int, total: int, key: str, prediction: Prediction | None) -> None:
        if self.session.project is not self._batch_project:
            return  # a batch over a folder no longer open (cancelled when it closed)
        self._batch = (done, total)
        self.batch.emit(True, done, total)
        project = self.session.project
        if project is not None and key in project.paths and prediction is not None:
            self.session.mark_predicted(project.paths.index(key))
            if self._batch_settings is not None:  # kept for opening the image later (bug 7)
                self.stored.pop(key, None)
                self.stored[key] = (prediction, self._batch_settings)
                while len(self.stored) > STORED_LIMIT:
                    self.stored.pop(next(iter(self.stored)))

    def _on_batch_done(self, cancelled: bool) -> None:
        if self.session.project is not self._batch_project:
            return  # another folder's batch: the panel was reset when this folder opened
        self.batch.emit(False, *self._batch)
        self.messages.show_status("Predict all: cancelled" if cancelled else "Predict all: done")

    # ----- saving -----
    def _on_save_failed(self, message: str) -> None:
        kept = "Your edits are kept in memory; they are saved with the next edit or Ctrl+S."
        if "read-only" in message:  # retrying will not help: the message says what will (Save As)
            kept = "Your edits are kept in memory."
        self.messages.show_error(f"{message}\n{kept}", scope="save")

    def save_as(self, path: str | Path) -> bool:
        """File > Save As…: write the annotations to ``path`` and save there from now on (a failure is
        shown as any failed save is, and nothing changes)."""
        if not self.saver.save_as(path):
            return False
        self.messages.show_status(f"Saved as {self.saver.path}; edits are saved there from now on")
        return True

    def save(self) -> bool:
        """Ctrl+S: write the edits now."""
        if self.saver.flush():
            self.messages.show_status(f"Saved {self.saver.path}" if self.saver.path else "Nothing to save")
            return True
        return False
