"""The inference worker: owns the Predictor; its methods run on the inference thread.

The GUI never calls the Predictor (it is not thread-safe, and a backbone run takes seconds on a CPU).
``InferenceClient`` runs these methods on its ``LatestWins`` thread (gui/workers/latest.py): interactive
requests are latest wins, so a slider that moves a hundred times while the worker is busy leaves one
request, the newest. Batches ("Predict all") run in the same thread and serve the newest request and
the drawn boxes between images, so the image on screen stays responsive during a batch. Every box the
user draws is served, in order (each one is an edit the user waits for).

A large image at pixel scale is predicted in tiles (engine.tiling): the worker reports ``progress`` after each
tile and stops between tiles when the user cancels or the request goes stale (another image, model or scale);
the tiles done stay in the Predictor's cache, so predicting the image again goes on from there. The user's scale
for a model's images (``set_scale``: pixel scale for objects of a given size, or the model's own) replaces the
scale fields of the loaded model's configuration, without reading the weights again. A cancelled tiled prediction
is answered by ``cancelled`` and then, when tiles were done, a ``Result`` holding their detections
(``tiles_done`` < ``tiles``), so the screen shows what was found.

Instant sliders (issue 12.4): after a complete result for the image on screen, ``idle_step`` (the client's
LatestWins runs it whenever the thread has nothing else to do) precomputes, one small step at a time, what every
slider position can show (``SLIDER_REACH``: engine.inference.Predictor.idle_step). A request, a drawn box or any
call pre-empts it between steps, and within a step that re-runs a tile's backbone, between its stages.
"""

from __future__ import annotations

import os
import threading
import time
import traceback
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
from PySide6.QtCore import QObject, Signal

from engine.config import ModelConfig
from engine.devices import choose_device
from engine.structures import Prediction, PredictSettings, Reach


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
    tiles: int = 1  # how many tiles the image was predicted in
    tiles_done: int | None = None  # a cancelled prediction's tiles done (the prediction holds theirs); None: all

    @property
    def complete(self) -> bool:
        return self.tiles_done is None


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
    config: ModelConfig | None = None  # as the file has it (the scale the model brings)
    object_size: float | None = None  # the user's scale: pixel scale for objects of this many image px (None: own)

    @property
    def scaled_config(self) -> ModelConfig | None:
        """The configuration predictions run under: the file's, at the user's scale."""
        return None if self.config is None else scaled_config(self.config, self.object_size)


def model_object_size(config: ModelConfig) -> tuple[float, bool]:
    """The typical object size the model learnt (equivalent diameter, network pixels) and whether its file records
    it; when it does not, twice its smallest anchor is assumed (the bundled nuclei model: 32 px; its training
    nuclei measure 28 px, 19-38 px for the middle half, at the scales it trained at)."""
    if config.object_size is not None:
        return float(config.object_size), True
    return 2.0 * float(min(config.anchor_sizes)), False


def scale_factor_for(config: ModelConfig, object_size: float) -> float:
    """The pixel-scale factor that brings objects of ``object_size`` image pixels to the model's own object size
    (Cellpose's diameter rule), within the factors a ModelConfig accepts."""
    return min(100.0, max(0.01, model_object_size(config)[0] / float(object_size)))


def scaled_config(config: ModelConfig, object_size: float | None) -> ModelConfig:
    """``config`` at pixel scale for objects of ``object_size`` image pixels; None: ``config`` as it is."""
    if object_size is None:
        return config
    return config.replace(scale_policy="pixel-scale", scale_factor=scale_factor_for(config, object_size))


def describe_scale(config: ModelConfig) -> str:
    """How images are scaled for ``config``, in a few words ("short side 512 px", "pixel scale x1.40")."""
    if config.scale_policy == "pixel-scale":
        return f"pixel scale \u00d7{config.scale_factor:.3g}"
    return f"short side {config.min_size[-1]} px"


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


def _slider_values(first: int, last: int) -> tuple[float, ...]:
    """The values a 0.01-step slider sends (``position * 0.01``, as gui.panels.controls computes them)."""
    return tuple(p * 0.01 for p in range(first, last + 1))


# What the sliders of gui.panels.controls.SLIDERS reach (tests/gui/test_idle_sliders.py checks the two agree): the
# score slider's lowest value, every box-NMS and RPN-NMS position, the most proposals and detections.
SLIDER_REACH = Reach(
    min_score=0.0,
    box_nms_values=_slider_values(5, 100),
    rpn_nms_values=_slider_values(10, 100),
    max_proposals=2000,
    max_detections=1000,
)


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
    progress = Signal(int, int, int)  # request id, tiles done, tiles (a tiled image only; 0 done: starting)
    cancelled = Signal(int, int, int)  # request id, tiles done, tiles: stopped between tiles
    scale_set = Signal(object)  # ModelInfo at the scale now in force

    def __init__(self, torch_threads: int | None = None, nice: int = 0) -> None:
        super().__init__()
        self.predictor = None
        self.torch_threads = torch_threads
        self.nice = nice
        self.cancel_batch = threading.Event()
        self.pause_before_predict: threading.Event | None = None  # tests hold a request mid-flight with it
        self.box_jobs: deque[BoxRequest] = deque()  # every box is served (no latest-wins), in order
        # Written by the GUI thread, read here between tiles: requests up to this id are cancelled by the user;
        # a request of another generation than this one is stale.
        self.cancelled_upto = 0
        self.current_generation = 0
        self._pending_scale: tuple[str, float | None] | None = None  # (model path, object size): see set_scale
        self._scale_lock = threading.Lock()
        self.info: ModelInfo | None = None  # the model loaded, at the scale in force
        self._threads_set = False
        # Idle precompute: what the sliders reach (None: none), whether the thread has other work (set by the
        # client: its LatestWins' has_work), and the image whose complete result is on screen (None: no idle work).
        self.idle_reach: Reach | None = SLIDER_REACH
        self.has_work: Callable[[], bool] = lambda: False
        self._idle_key: str | None = None

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
            self.info = ModelInfo(
                path,
                list(info.class_names),
                resolved,
                description,
                cfg.detections_per_image,
                cfg.rpn_post_nms_top_n_test,
                augment_preset_of(info.extra.get("train_config")),
                cfg,
            )
            self.model_loaded.emit(self.info)
        except Exception as exc:  # noqa: BLE001 - any failure becomes a message; the app goes on
            self.model_failed.emit(error_message(exc, f"Cannot load {Path(path).name}"))

    def ask_scale(self, path: str, object_size: float | None) -> None:
        """From the GUI thread: the user's scale for model ``path`` (None: the model's own), applied by ``set_scale``
        on this thread before the next prediction (also between the images of a batch, so a batch never delays it).
        """
        with self._scale_lock:
            self._pending_scale = (str(path), object_size)

    def set_scale(self) -> None:
        """Apply the scale ``ask_scale`` left if it is for the model loaded: its configuration's scale fields are
        replaced and the Predictor's caches cleared (the weights stay); ``scale_set`` tells the GUI."""
        with self._scale_lock:
            pending, self._pending_scale = self._pending_scale, None
        if pending is None or self.predictor is None or self.info is None or pending[0] != self.info.path:
            return
        info = replace(self.info, object_size=pending[1])
        model = self.predictor.model
        if info.scaled_config != model.config:
            model.config = info.scaled_config
            self.predictor.set_model(model)  # everything cached was computed at the old scale
        self.info = info
        self.scale_set.emit(info)

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
        self.set_scale()
        self.started.emit(request.id)
        if self.pause_before_predict is not None:
            self.pause_before_predict.wait(timeout=30)
        from engine import tiling
        from engine.inference import Cancelled, image_hw

        start = time.perf_counter()
        tiles = [0, 1]  # done, total: cancel and progress act between the tiles of a tiled image only

        def progress(done: int, total: int) -> None:
            tiles[:] = [done, total]
            self.progress.emit(request.id, done, total)

        def cancel() -> bool:
            return tiles[1] > 1 and (request.id <= self.cancelled_upto or request.generation != self.current_generation)

        self._idle_key = None
        try:
            height, width = image_hw(request.image)
            total = len(tiling.grid_for(height, width, self.predictor.model.config))
            if total > 1:
                progress(0, total)
            prediction = self.predictor.predict(
                request.image, request.settings, key=request.key, cancel=cancel, progress=progress
            )
        except Cancelled as stop:
            self.cancelled.emit(request.id, *tiles)
            if stop.partial is not None and request.generation == self.current_generation:
                # the user's cancel (not a stale request): show the detections of the tiles done
                elapsed = 1000 * (time.perf_counter() - start)
                self.finished.emit(Result(request, stop.partial, elapsed, tiles[1], tiles_done=tiles[0]))
            return
        except Exception as exc:  # noqa: BLE001
            traceback.print_exc()
            self.failed.emit(request.id, error_message(exc, f"Inference failed on {Path(request.key).name}"))
            self._release_memory()
            return
        elapsed = 1000 * (time.perf_counter() - start)
        self._idle_key = request.key
        self.finished.emit(Result(request, prediction, elapsed, len(self.predictor.tiles)))

    def idle_step(self) -> bool:
        """One step of the precompute for the image on screen (after its complete result); True while work is left.
        Nothing when another image took the Predictor meanwhile (a batch, a box on another image) or a model or
        scale change cleared it: the next complete result starts it again."""
        if self.idle_reach is None or self.predictor is None or self._idle_key is None:
            return False
        if self.predictor.image_key != self._idle_key:
            self._idle_key = None
            return False
        try:
            return self.predictor.idle_step(self.idle_reach, cancel=self.has_work)
        except Exception:  # noqa: BLE001 - idle work is optional (e.g. out of memory): stop it, keep the app
            traceback.print_exc()
            self._idle_key = None
            self._release_memory()
            return False

    def _release_memory(self) -> None:
        import torch

        if torch.cuda.is_available():
            torch.cuda.empty_cache()

    def run_batch(self, paths: list[str], settings: PredictSettings, serve_requests: Callable[[], None]) -> None:
        """Predict every path in turn; ``serve_requests`` (the newest interactive request) and the drawn
        boxes go first between images; cancellable."""
        from engine.data import load_image
        from engine.inference import Cancelled

        self._ensure_threads()
        total = len(paths)
        self.batch_started.emit(total)
        for done, path in enumerate(paths, start=1):
            serve_requests()
            self.serve_boxes()
            self.set_scale()
            if self.cancel_batch.is_set() or self.predictor is None:
                self.batch_done.emit(True)
                return
            if self.pause_before_predict is not None:
                self.pause_before_predict.wait(timeout=30)
            try:
                prediction = self.predictor.predict(
                    load_image(path), settings, key=path, cancel=self.cancel_batch.is_set
                )
            except Cancelled:  # between the tiles of a large image
                self.batch_done.emit(True)
                return
            except Exception as exc:  # noqa: BLE001
                self.failed.emit(-1, error_message(exc, f"Predict all: {Path(path).name}"))
                prediction = None
            self.batch_item.emit(done, total, path, prediction)
        self.batch_done.emit(self.cancel_batch.is_set())
