"""The inference worker: owns the Predictor; its methods run on the inference thread.

The GUI never calls the Predictor (it is not thread-safe, and a backbone run takes seconds on a CPU).
``InferenceClient`` runs these methods on its ``LatestWins`` thread (gui/workers/latest.py): interactive
requests are latest wins, so a slider that moves a hundred times while the worker is busy leaves one
request, the newest. Batches ("Predict all") run in the same thread and serve the newest request and
the drawn boxes between images, so the image on screen stays responsive during a batch. Every box the
user draws is served, in order (each one is an edit the user waits for).
"""

from __future__ import annotations

import os
import threading
import time
import traceback
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PySide6.QtCore import QObject, Signal

from engine.devices import choose_device
from engine.structures import Prediction, PredictSettings


@dataclass(frozen=True)
class Request:
    """Predict ``image`` (pixels already loaded by the GUI, keyed by its path) under ``settings``.

    ``generation`` is the id of the request that brought this image: results of an older generation
    are stale (the user has moved to another image or model)."""

    id: int
    generation: int
    key: str
    image: np.ndarray
    settings: PredictSettings


@dataclass(frozen=True)
class Result:
    request: Request
    prediction: Prediction
    elapsed_ms: float


@dataclass(frozen=True)
class BoxRequest:
    """The mask head's mask for a box the user drew on image ``key`` (pixels given, in case the
    Predictor's cache holds another image by now)."""

    id: int
    key: str
    image: np.ndarray
    box: tuple[float, float, float, float]
    label: int
    threshold: float


@dataclass(frozen=True)
class ModelInfo:
    path: str
    class_names: list[str]
    device: str
    description: str
    max_detections: int = 100  # the model's own cap (the slider starts there until the user moves it)
    num_proposals: int = 1000  # the model's own proposal count after the RPN's NMS (likewise)
    augment: str | None = None  # the augmentation preset it was trained with, when it names one


def error_message(exc: BaseException, what: str) -> str:
    """A one-paragraph message for the user (out of memory gets advice; bugs keep their type)."""
    import torch

    from engine.data import ImageLoadError
    from engine.interop import WeightsError

    if isinstance(exc, torch.cuda.OutOfMemoryError) or "out of memory" in str(exc).lower():
        return f"{what}: out of memory. Try the CPU (Device in the Model panel), fewer proposals, or a smaller image."
    if isinstance(exc, (WeightsError, ImageLoadError, FileNotFoundError)):
        return f"{what}: {exc}"
    return f"{what}: {type(exc).__name__}: {exc}"


class InferenceWorker(QObject):
    """Its methods run on the inference thread; its signals reach the client queued, on the GUI thread."""

    started = Signal(int)  # request id, as the worker begins on it
    finished = Signal(object)  # Result
    failed = Signal(int, str)  # request id (-1: not a request), message
    model_loaded = Signal(object)  # ModelInfo
    model_failed = Signal(str)
    batch_item = Signal(int, int, str, object)  # done, total, key, Prediction | None (None: failed)
    batch_started = Signal(int)  # number of images
    batch_done = Signal(bool)  # cancelled
    box_mask = Signal(int, object, str)  # box request id, InstanceMask | None, error message

    def __init__(self, torch_threads: int | None = None, nice: int = 0) -> None:
        super().__init__()
        self.predictor = None
        self.torch_threads = torch_threads
        self.nice = nice
        self.cancel_batch = threading.Event()
        self.pause_before_predict: threading.Event | None = None  # tests hold a request mid-flight with it
        self.box_jobs: deque[BoxRequest] = deque()  # every box is served (no latest-wins), in order
        self._threads_set = False

    def _ensure_threads(self) -> None:
        """Once, in the worker thread: its torch thread count, and optionally a lower CPU priority (nice)
        for it and the OpenMP threads it starts. Off by default: on a busy machine nice +10 made inference
        2-5x slower for no clear gain in GUI smoothness (benchmarks/gui_stall.py)."""
        if self._threads_set:
            return
        self._threads_set = True
        if self.torch_threads:
            import torch

            torch.set_num_threads(self.torch_threads)  # OpenMP's setting is per calling thread: set it here
        if self.nice and hasattr(os, "setpriority"):
            try:  # Linux: the nice value is per thread; new threads inherit it
                tid = threading.get_native_id()
                os.setpriority(os.PRIO_PROCESS, tid, min(19, os.getpriority(os.PRIO_PROCESS, tid) + self.nice))
            except OSError:
                pass

    def load_model(self, path: str, device: str) -> None:
        self._ensure_threads()
        try:
            from engine.checkpoint import load_weights
            from engine.config import augment_preset_of
            from engine.inference import Predictor

            resolved = str(choose_device(device))
            model, info = load_weights(path, resolved)
            if self.predictor is None or str(self.predictor.device) != resolved:
                self.predictor = Predictor(model, resolved)
            else:
                self.predictor.set_model(model)
            cfg = info.config
            description = f"{cfg.backbone}, {cfg.num_classes - 1} classes, on {resolved}"
            self.model_loaded.emit(
                ModelInfo(
                    path,
                    list(info.class_names),
                    resolved,
                    description,
                    cfg.detections_per_image,
                    cfg.rpn_post_nms_top_n_test,
                    augment_preset_of(info.extra.get("train_config")),
                )
            )
        except Exception as exc:  # noqa: BLE001 - any failure becomes a message; the app goes on
            self.model_failed.emit(error_message(exc, f"Cannot load {Path(path).name}"))

    def serve_boxes(self) -> None:
        """Masks for the boxes the user drew (queued; also served between the images of a batch)."""
        self._ensure_threads()
        while self.box_jobs:
            job = self.box_jobs.popleft()
            if self.predictor is None:
                self.box_mask.emit(job.id, None, "No model loaded")
                continue
            try:
                self.predictor.set_image(job.image, key=job.key)  # no-op when the image is the cached one
                crop = self.predictor.mask_from_box(job.box, job.label, job.threshold)
            except Exception as exc:  # noqa: BLE001
                self.box_mask.emit(job.id, None, error_message(exc, "Mask from box"))
                continue
            self.box_mask.emit(job.id, crop, "")

    def predict(self, request: Request) -> None:
        """The newest interactive request (the handler of the client's latest-wins thread)."""
        self._ensure_threads()
        if self.predictor is None:
            self.failed.emit(request.id, "No model loaded")
            return
        self.started.emit(request.id)
        if self.pause_before_predict is not None:
            self.pause_before_predict.wait(timeout=30)
        start = time.perf_counter()
        try:
            prediction = self.predictor.predict(request.image, request.settings, key=request.key)
        except Exception as exc:  # noqa: BLE001
            traceback.print_exc()
            self.failed.emit(request.id, error_message(exc, f"Inference failed on {Path(request.key).name}"))
            self._release_memory()
            return
        self.finished.emit(Result(request, prediction, 1000 * (time.perf_counter() - start)))

    def _release_memory(self) -> None:
        import torch

        if torch.cuda.is_available():
            torch.cuda.empty_cache()

    def run_batch(self, paths: list[str], settings: PredictSettings, serve_requests: Callable[[], None]) -> None:
        """Predict every path in turn; ``serve_requests`` (the newest interactive request) and the drawn
        boxes go first between images; cancellable."""
        from engine.data import load_image

        self._ensure_threads()
        total = len(paths)
        self.batch_started.emit(total)
        for done, path in enumerate(paths, start=1):
            serve_requests()
            self.serve_boxes()
            if self.cancel_batch.is_set() or self.predictor is None:
                self.batch_done.emit(True)
                return
            if self.pause_before_predict is not None:
                self.pause_before_predict.wait(timeout=30)
            try:
                prediction = self.predictor.predict(load_image(path), settings, key=path)
            except Exception as exc:  # noqa: BLE001
                self.failed.emit(-1, error_message(exc, f"Predict all: {Path(path).name}"))
                prediction = None
            self.batch_item.emit(done, total, path, prediction)
        self.batch_done.emit(self.cancel_batch.is_set())
