"""The GUI side of inference: request ids, the inference thread, dropping stale results.

``InferenceClient`` runs the ``InferenceWorker`` on a ``LatestWins`` thread named "inference" (low
priority) with cores - 1 torch threads (``engine.devices.worker_threads``): one core stays free for the
GUI thread; see benchmarks/gui_stall.py: that, not a lower CPU priority, is what keeps the event loop
smooth. It turns the worker's signals into fresh results only:

- every request gets an id; the request that brings a new image (or follows new weights) starts a new
  *generation*; a result of another generation is stale (the user moved on) and is dropped;
- within a generation a result older than the one on screen is dropped too; a newer one is shown even
  if the slider has moved since, so the picture follows the slider while it moves;
- the worker only ever sees the newest request (latest wins), so slider events coalesce by design.

Loading a model, drawn boxes and batches are ``call``s on the same thread: each one runs, in order.

A tiled image reports its tiles as they are done (``predict_progress``); ``cancel_prediction`` stops it between
two tiles (``predict_cancelled``, then ``prediction_ready`` with the detections of the tiles done:
``Result.tiles_done``), and so does a new generation (the result would be stale anyway: nothing is shown).
Between requests the worker precomputes what the sliders can reach (InferenceWorker.idle_step): any request, box
or call pre-empts it.
``set_scale`` changes how the model scales images (see InferenceWorker.set_scale); the caller predicts the image
again as a new generation.
"""

from __future__ import annotations

import itertools

import numpy as np
from PySide6.QtCore import QObject, QThread, Signal

from engine.devices import worker_threads
from engine.structures import PredictSettings
from gui.workers.inference_worker import BoxRequest, InferenceWorker, ModelInfo, Request, Result
from gui.workers.latest import LatestWins


class InferenceClient(QObject):
    prediction_ready = Signal(object)  # Result, fresh only
    request_failed = Signal(str)  # message, for the current image only
    model_loaded = Signal(object)  # ModelInfo
    model_failed = Signal(str)
    busy_changed = Signal(bool)
    batch_started = Signal(int)
    batch_item = Signal(int, int, str, object)  # done, total, key, Prediction | None
    batch_done = Signal(bool)
    batch_failed = Signal(str)
    box_mask_ready = Signal(int, object, str)  # box request id, InstanceMask | None, error message
    predict_progress = Signal(int, int)  # tiles done, tiles: the current image's prediction, tiled
    predict_cancelled = Signal(int, int)  # tiles done, tiles: the user stopped the current image's prediction
    scale_set = Signal(object)  # ModelInfo at the scale now in force

    def __init__(self, torch_threads: int | None = None, parent: QObject | None = None, nice: int = 0) -> None:
        super().__init__(parent)
        self.worker = InferenceWorker(torch_threads or worker_threads(), nice)
        self.jobs = LatestWins("inference", self.worker.predict, QThread.Priority.LowPriority, self)
        self.worker.has_work = lambda: self.jobs.has_work() or bool(self.worker.box_jobs)
        self.jobs.set_idle(self.worker.idle_step)  # the precompute for instant sliders, pre-empted by any request
        self.jobs.failed.connect(self._on_job_failed)
        self.worker.box_mask.connect(self._on_box_mask)
        self.worker.finished.connect(self._on_finished)
        self.worker.failed.connect(self._on_failed)
        self.worker.model_loaded.connect(self._on_model_loaded)
        self.worker.model_failed.connect(self._on_model_failed)
        self.worker.batch_started.connect(self.batch_started)
        self.worker.batch_item.connect(self.batch_item)
        self.worker.batch_done.connect(self._on_batch_done)
        self.worker.progress.connect(self._on_progress)
        self.worker.cancelled.connect(self._on_cancelled)
        self.worker.scale_set.connect(self._on_scale_set)
        self._ids = itertools.count(1)
        self._box_ids = itertools.count(1)
        self.boxes_pending = 0
        self.generation = 0
        self.latest_id = 0
        self.answered_id = 0
        self.shown_id = 0
        self.dropped_results = 0
        self.requests_sent = 0
        self.model: ModelInfo | None = None
        self.loading_model = False
        self.batch_running = False
        self._key: str | None = None
        self._image: np.ndarray | None = None

    # ----- requests -----
    @property
    def busy(self) -> bool:
        return self.loading_model or self.latest_id > self.answered_id or self.boxes_pending > 0

    def set_image(self, key: str, image: np.ndarray, settings: PredictSettings) -> int | None:
        """A new image: a new generation; results for the previous image become stale."""
        self._key, self._image = key, image
        return self._send(settings, new_generation=True)

    def clear_image(self) -> None:
        """No image (e.g. it failed to load): anything in flight is stale."""
        self._key, self._image = None, None
        self.generation = self.worker.current_generation = next(self._ids)
        self._settle()

    def update_settings(self, settings: PredictSettings) -> int | None:
        """Slider moved: the same image, new settings (the worker re-runs only the stages they touch)."""
        return self._send(settings, new_generation=False)

    def _send(self, settings: PredictSettings, new_generation: bool) -> int | None:
        if self._key is None or self.model is None:
            return None
        was_busy = self.busy
        request_id = next(self._ids)
        if new_generation:
            self.generation = self.worker.current_generation = request_id  # the one in flight stops between tiles
        self.latest_id = request_id
        self.requests_sent += 1
        request = Request(request_id, self.generation, self._key, self._image, settings)
        self.jobs.put(request)
        if not was_busy:
            self.busy_changed.emit(True)
        return request_id

    def _settle(self) -> None:
        was_busy = self.busy
        self.answered_id = self.latest_id
        if was_busy and not self.busy:
            self.busy_changed.emit(False)

    def _answer(self, request_id: int) -> None:
        was_busy = self.busy
        self.answered_id = max(self.answered_id, request_id)
        if was_busy and not self.busy:
            self.busy_changed.emit(False)

    def _on_finished(self, result: Result) -> None:
        self._answer(result.request.id)
        fresh = result.request.generation == self.generation and result.request.id > self.shown_id
        if not fresh:
            self.dropped_results += 1
            return
        self.shown_id = result.request.id
        self.prediction_ready.emit(result)

    def _on_failed(self, request_id: int, message: str) -> None:
        if request_id < 0:
            self.batch_failed.emit(message)
            return
        self._answer(request_id)
        if request_id >= self.generation:
            self.request_failed.emit(message)

    def _current(self, request_id: int) -> bool:
        """Whether request ``request_id`` is of the current generation and newer than the result on screen."""
        return request_id >= self.generation and request_id > self.shown_id

    def _on_progress(self, request_id: int, done: int, total: int) -> None:
        if self._current(request_id):
            self.predict_progress.emit(done, total)

    def cancel_prediction(self) -> None:
        """Stop the predictions asked so far between two tiles (the tiles done stay cached: asking again goes on
        from there)."""
        self.worker.cancelled_upto = self.latest_id

    def _on_cancelled(self, request_id: int, done: int, total: int) -> None:
        self._answer(request_id)
        if self._current(request_id):
            self.predict_cancelled.emit(done, total)
        else:
            self.dropped_results += 1  # stopped because it was stale

    def _on_job_failed(self, job: object, message: str) -> None:
        """A bug in the worker (its own failures come as ``failed``): answer the request all the same."""
        self._on_failed(job.id if isinstance(job, Request) else -1, message)

    # ----- masks for user boxes -----
    def mask_from_box(
        self, key: str, image: np.ndarray, box: tuple[float, float, float, float], label: int, threshold: float
    ) -> int:
        """Ask the worker for the model's mask inside ``box`` (xyxy image pixels); answered by box_mask_ready."""
        was_busy = self.busy
        request_id = next(self._box_ids)
        self.boxes_pending += 1
        self.worker.box_jobs.append(BoxRequest(request_id, key, image, tuple(map(float, box)), label, threshold))
        self.jobs.call(self.worker.serve_boxes)
        if not was_busy:
            self.busy_changed.emit(True)
        return request_id

    def _on_box_mask(self, request_id: int, crop, error: str) -> None:  # noqa: ANN001
        self.boxes_pending -= 1
        self.box_mask_ready.emit(request_id, crop, error)
        if not self.busy:
            self.busy_changed.emit(False)

    # ----- model -----
    def load_model(self, path: str, device: str) -> None:
        was_busy = self.busy
        self.loading_model = True
        if not was_busy:
            self.busy_changed.emit(True)
        self.jobs.call(self.worker.load_model, str(path), device)

    def _on_model_loaded(self, info: ModelInfo) -> None:
        self.model = info
        self.loading_model = False
        self.shown_id = 0
        self.model_loaded.emit(info)
        if not self.busy:
            self.busy_changed.emit(False)

    def _on_model_failed(self, message: str) -> None:
        self.loading_model = False
        self.model_failed.emit(message)
        if not self.busy:
            self.busy_changed.emit(False)

    def set_scale(self, object_size: float | None) -> None:
        """The user's scale for the model loaded: pixel scale for objects of ``object_size`` px, None: the model's
        own. Applied on the worker thread before its next prediction; ``scale_set`` answers."""
        if self.model is None:
            return
        self.worker.ask_scale(self.model.path, object_size)
        self.jobs.call(self.worker.set_scale)  # now, when no prediction follows

    def _on_scale_set(self, info: ModelInfo) -> None:
        if self.model is not None and info.path == self.model.path:
            self.model = info
            self.scale_set.emit(info)

    def resend(self, settings: PredictSettings) -> int | None:
        """Predict the current image again as a new generation (after new weights)."""
        return self._send(settings, new_generation=True)

    # ----- batch -----
    def predict_all(self, paths: list[str], settings: PredictSettings) -> bool:
        if self.model is None or self.batch_running or not paths:
            return False
        self.batch_running = True
        self.worker.cancel_batch.clear()
        self.jobs.call(self.worker.run_batch, list(paths), settings, self.jobs.serve)
        return True

    def cancel_batch(self) -> None:
        self.worker.cancel_batch.set()

    def _on_batch_done(self, cancelled: bool) -> None:
        self.batch_running = False
        self.batch_done.emit(cancelled)

    # ----- shutdown -----
    def shutdown(self, timeout_ms: int = 10000) -> None:
        self.worker.cancel_batch.set()
        if self.worker.pause_before_predict is not None:
            self.worker.pause_before_predict.set()
        self.jobs.shutdown(timeout_ms)
