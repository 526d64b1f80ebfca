"""The main window: canvas in the middle, images and instances on the left, classes and controls on
the right, the Train panel at the bottom.

The window owns no inference: it hands requests to ``InferenceClient`` and draws the fresh results it
gets back (gui/workers/inference.py). Edits go through the ``Editor`` (gui/editing/editor.py) and its undo stack, are
saved by the ``AutoSaver`` (gui/workers/autosave.py); training runs in a separate process (gui/training/controller.py).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PySide6.QtCore import Qt, QTimer
from PySide6.QtWidgets import QDockWidget, QLabel, QMainWindow, QProgressBar, QScrollArea, QVBoxLayout, QWidget

from engine.data import DatasetError, ImageLoadError
from engine.structures import Prediction, PredictSettings
from gui.canvas.overlay import instance_color
from gui.canvas.view import Canvas
from gui.editing.editor import Editor
from gui.panels.class_list import ClassList
from gui.panels.controls import OverlayPanel, ThresholdPanel
from gui.panels.image_list import ImageList
from gui.panels.instance_list import InstanceList
from gui.panels.model_panel import ModelPanel
from gui.panels.train_panel import TrainPanel
from gui.session.project import Project
from gui.training.controller import TrainController
from gui.window import menus, persist
from gui.window.editing import WindowEditing
from gui.window.messages import NO_FOLDER, NO_MODEL
from gui.window.settings import Settings
from gui.workers.autosave import AutoSaver
from gui.workers.inference import InferenceClient
from gui.workers.inference_worker import ModelInfo, Result
from gui.workers.loader import ImageLoader


class MainWindow(QMainWindow, WindowEditing):
    def __init__(self, settings: Settings, torch_threads: int | None = None) -> None:
        super().__init__()
        self.setWindowTitle("Mask R-CNN Studio")
        self.setObjectName("MainWindow")
        self.settings = settings
        self.inference = InferenceClient(torch_threads, self)
        self.loader = ImageLoader(self)
        self._load_token = 0
        self.loading = False
        self.project: Project | None = None
        self.index = -1
        self.image: np.ndarray | None = None
        self.prediction: Prediction | None = None
        self.shown: list[int] = []  # indices into self.prediction of the instances drawn
        self.class_names: list[str] = []
        self.weights_path = ""
        self._pending: Result | None = None
        self._banner_scope = ""  # what the red banner is about: which events take it away
        self._build()
        self._connect()
        menus.build_menus(self)
        self.setAcceptDrops(True)
        persist.restore(self)
        self._update_message()

    # ----- construction -----
    def _build(self) -> None:
        self.canvas = Canvas()
        self.banner = QLabel()
        self.banner.setObjectName("errorBanner")
        self.banner.setWordWrap(True)
        self.banner.setStyleSheet("QLabel#errorBanner { background: #b3261e; color: white; padding: 6px; }")
        self.banner.hide()
        central = QWidget()
        layout = QVBoxLayout(central)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.setSpacing(0)
        layout.addWidget(self.banner)
        layout.addWidget(self.canvas, 1)
        self.setCentralWidget(central)
        self.images = ImageList()
        self.instances = InstanceList()
        self.model_panel = ModelPanel()
        self.thresholds = ThresholdPanel()
        self.overlays = OverlayPanel()
        controls = QWidget()
        column = QVBoxLayout(controls)
        column.setContentsMargins(2, 2, 2, 2)
        for panel in (self.model_panel, self.thresholds, self.overlays):
            column.addWidget(panel)
        column.addStretch(1)
        scroll = QScrollArea()
        scroll.setWidgetResizable(True)
        scroll.setWidget(controls)
        self.docks = [
            self._dock("Images", self.images, Qt.DockWidgetArea.LeftDockWidgetArea),
            self._dock("Instances", self.instances, Qt.DockWidgetArea.LeftDockWidgetArea),
            self._dock("Controls", scroll, Qt.DockWidgetArea.RightDockWidgetArea),
        ]
        self.classes = ClassList()
        self.classes_dock = self._dock("Classes", self.classes, Qt.DockWidgetArea.RightDockWidgetArea)
        self.splitDockWidget(self.classes_dock, self.docks[2], Qt.Orientation.Vertical)
        self.train_panel = TrainPanel()
        # its options column scrolls rather than make the window taller than a small screen
        self.train_dock = self._dock("Train", self.train_panel, Qt.DockWidgetArea.BottomDockWidgetArea)
        self.train_dock.setFeatures(self.train_dock.features() | QDockWidget.DockWidgetFeature.DockWidgetClosable)
        self.train_dock.hide()
        self.editor = Editor(self)
        self.saver = AutoSaver(self)
        self.trainer = TrainController(self, self.train_panel)
        self.status_text = QLabel()
        self.edit_status = QLabel()
        self.timing = QLabel()
        self.busy = QProgressBar()
        self.busy.setRange(0, 0)
        self.busy.setMaximumWidth(120)
        self.busy.setVisible(False)
        self.statusBar().addWidget(self.status_text, 1)
        self.statusBar().addPermanentWidget(self.edit_status)
        self.statusBar().addPermanentWidget(self.timing)
        self.statusBar().addPermanentWidget(self.busy)

    def _dock(self, title: str, widget: QWidget, area: Qt.DockWidgetArea) -> QDockWidget:
        dock = QDockWidget(title, self)
        dock.setObjectName(f"dock_{title.lower()}")
        dock.setWidget(widget)
        dock.setFeatures(
            QDockWidget.DockWidgetFeature.DockWidgetMovable | QDockWidget.DockWidgetFeature.DockWidgetFloatable
        )
        self.addDockWidget(area, dock)
        return dock

    def _connect(self) -> None:
        client = self.inference
        client.prediction_ready.connect(self._on_result)
        client.request_failed.connect(lambda message: self.show_error(message, scope="result"))
        client.batch_failed.connect(self.show_error)
        client.model_loaded.connect(self._on_model_loaded)
        client.model_failed.connect(self._on_model_failed)
        client.busy_changed.connect(self.busy.setVisible)
        client.batch_item.connect(self._on_batch_item)
        client.batch_done.connect(self._on_batch_done)
        self.loader.loaded.connect(self._on_image_loaded)
        self.loader.failed.connect(self._on_image_failed)
        self.images.current_changed.connect(self.go_to)
        self.thresholds.settings_changed.connect(self._on_settings_changed)
        self.thresholds.proposals_shown_changed.connect(lambda _n: self._draw_proposals())
        self.overlays.layer_toggled.connect(self.canvas.set_layer_visible)
        self.overlays.opacity_changed.connect(self.canvas.set_mask_opacity)
        self.instances.filter_changed.connect(lambda _name: self._redraw())
        self.instances.selected.connect(self.canvas.set_selected)
        self.canvas.clicked.connect(self.instances.select)
        self.canvas.hovered.connect(self._on_hovered)
        self.model_panel.open_requested.connect(lambda: menus.open_weights_dialog(self))
        self.model_panel.device_changed.connect(self._on_device_changed)
        self.model_panel.predict_all_requested.connect(self.predict_all)
        self.model_panel.cancel_requested.connect(self.inference.cancel_batch)
        self._connect_editing()

    def save_settings(self) -> None:
        persist.save(self)

    # ----- opening things -----
    def open_path(self, path: str | Path) -> bool:
        """A folder, an annotation file or an image; False (and a message) when it cannot be read."""
        if not self.save_or_discard():
            return False
        try:
            project = Project.open(path)
        except (DatasetError, ImageLoadError, OSError) as exc:
            self.show_error(f"Cannot open {path}: {exc}")
            return False
        self.project = project
        self.saver.attach(project.dataset, project.annotation_path())
        self.editor.reset()
        self.trainer.refresh()
        self.settings.remember_folder(project.root)
        menus.update_recent(self)
        self.images.set_images(project.paths, project.states)
        self.instances.set_classes(self.class_names or project.category_names())
        self._update_title()
        if project.warnings:
            self.status_text.setText(f"{len(project.warnings)} warnings while reading: {project.warnings[0]}")
        self.index = -1
        if len(project):
            self.images.set_current(project.start_index)  # -> go_to
        return True

    def load_weights(self, path: str | Path) -> None:
        """Load a model (in the worker); the path is kept absolute, as settings and the trainer need it."""
        from engine import hub

        self.weights_path = hub.absolute_unless_alias(path)
        self.model_panel.set_model(self.weights_path, "loading…")
        self.inference.load_model(self.weights_path, self.model_panel.device_value())

    def go_to(self, index: int) -> None:
        """Show image ``index``: decoded in the loader thread, then predicted in the inference thread."""
        if self.project is None or not 0 <= index < len(self.project) or index == self.index:
            return
        self.editor.leave_image()
        self.saver.flush()  # a failure is shown; the edits stay in memory and are retried with the next save
        self.index = index
        self.images.set_current(index)
        self.prediction, self.shown = None, []
        self.inference.clear_image()  # whatever is in flight for the previous image is stale now
        self._redraw()
        self._load_token += 1
        self.loading = True
        self.status_text.setText(f"Loading {Path(self.project.paths[index]).name}…")
        self.loader.request(self._load_token, self.project.paths[index])

    def _on_image_loaded(self, token: int, path: str, image: np.ndarray) -> None:
        if token != self._load_token:
            return  # the user has moved on
        self.loading = False
        self.image = image
        self.hide_error("action", "image", "result")  # a model or save failure stays until it is resolved
        self.status_text.setText("")
        self.canvas.set_image(image)
        self.editor.refresh()
        self.inference.set_image(path, image, self.thresholds.settings())
        self._update_message()

    def _on_image_failed(self, token: int, path: str, message: str) -> None:
        if token != self._load_token:
            return
        self.loading = False
        self.image = None
        self.canvas.set_image(None)
        self.images.set_state(self.index, "error")
        self.show_error(message, scope="image")
        self._update_message()

    def step(self, delta: int) -> None:
        if self.project is not None and len(self.project):
            self.go_to(max(0, min(len(self.project) - 1, self.index + delta)))

    # ----- inference results -----
    def _on_settings_changed(self) -> None:
        self.inference.update_settings(self.thresholds.settings())

    def _on_result(self, result: Result) -> None:
        self._pending = result
        QTimer.singleShot(0, self._apply_pending)  # several results queued: draw only the newest

    def _apply_pending(self) -> None:
        result, self._pending = self._pending, None
        if result is None or self.project is None or result.request.key != self.project.paths[self.index]:
            return
        self.prediction = result.prediction
        self.hide_error("result")
        self._mark_predicted(self.index)
        self._redraw()
        times = result.prediction.timings_ms
        self.timing.setText(" · ".join(f"{k} {v:.0f} ms" for k, v in times.items()))

    def _redraw(self) -> None:
        pred, wanted = self.prediction, self.instances.current_filter()
        if pred is None:
            self.shown = []
            self.canvas.clear_overlays()
            self.instances.set_instances([], 0)
            return
        names = [self.class_name(label) for label in pred.labels]
        hidden = self.editor.hidden_predictions(pred) if self.overlays.hide_matched() else np.zeros(len(pred), bool)
        self.shown = [i for i in range(len(pred)) if (not wanted or names[i] == wanted) and not hidden[i]]
        colors = [instance_color(int(pred.keys[i])) for i in self.shown]
        labels = [f"{names[i]} {pred.scores[i]:.2f}" for i in self.shown]
        crops = [pred.masks[i] for i in self.shown]
        self.canvas.set_instances(crops, pred.boxes[self.shown], colors, labels)
        self._draw_proposals()
        rows = [(names[i], float(pred.scores[i]), crops[j].area, colors[j]) for j, i in enumerate(self.shown)]
        self.instances.set_instances(rows, len(pred))

    def _draw_proposals(self) -> None:
        if self.prediction is None:
            self.canvas.set_proposals(np.zeros((0, 4)))
            return
        self.canvas.set_proposals(self.prediction.proposals[: self.thresholds.proposals_shown()])

    def class_name(self, label: int) -> str:
        if 1 <= label <= len(self.class_names):
            return self.class_names[label - 1]
        return f"class {label}"

    def _on_hovered(self, index: int) -> None:
        if 0 <= index < len(self.shown) and self.prediction is not None:
            i = self.shown[index]
            pred = self.prediction
            text = f"{self.class_name(int(pred.labels[i]))}  score {pred.scores[i]:.3f}  area {pred.masks[i].area} px"
            self.status_text.setText(text)

    # ----- model -----
    def _on_model_loaded(self, info: ModelInfo) -> None:
        self.class_names = list(info.class_names)
        self.instances.set_classes(self.class_names)
        self.model_panel.set_model(info.path, info.description)
        self.settings.last_weights = info.path
        if not self.settings.has("thresholds/max_detections"):  # never chosen: the model's own cap
            self.thresholds.sliders["max_detections"].set_value(info.max_detections)
        if not self.settings.has("thresholds/num_proposals"):  # likewise its own proposal count
            self.thresholds.sliders["num_proposals"].set_value(info.num_proposals)
        self.status_text.setText(f"Model loaded: {Path(info.path).name} ({info.description})")
        if info.augment:  # fine-tuning goes on with the augmentation the model was trained with
            self.train_panel.set_augment(info.augment)
        self.trainer.refresh()
        self.hide_error("action", "model", "result")
        self._update_message()
        if self.image is not None:
            self.inference.resend(self.thresholds.settings())

    def _on_model_failed(self, message: str) -> None:
        self.model_panel.set_model(self.inference.model.path if self.inference.model else "", "")
        self.show_error(message, scope="model")
        self._update_message()

    def _on_device_changed(self, device: str) -> None:
        self.settings.device = device
        if self.weights_path:
            self.load_weights(self.weights_path)

    # ----- predict all -----
    def predict_all(self) -> None:
        if self.project is None or self.inference.model is None:
            self.show_error("Predict all needs a folder and a model." if self.project else NO_FOLDER)
            return
        if self.inference.predict_all(self.project.paths, self.thresholds.settings()):
            self.model_panel.set_batch(True, 0, len(self.project))

    def _on_batch_item(self, done: int, total: int, key: str, prediction: Prediction | None) -> None:
        self.model_panel.set_batch(True, done, total)
        if self.project is not None and key in self.project.paths:
            row = self.project.paths.index(key)
            if prediction is not None:
                self._mark_predicted(row)

    def _on_batch_done(self, cancelled: bool) -> None:
        self.model_panel.set_batch(False, self.model_panel.progress.value(), self.model_panel.progress.maximum())
        self.status_text.setText("Predict all: cancelled" if cancelled else "Predict all: done")

    # ----- messages -----
    def show_error(self, message: str, scope: str = "action") -> None:
        """A red banner over the canvas until what it is about is resolved (``scope``): "result" (an
        inference error: the next good result), "image" (the next image that loads), "model" (a model
        that loads), "save" (the next successful save), "action" (anything else: the next image)."""
        self._banner_scope = scope
        self.banner.setText(message)
        self.banner.show()
        self.status_text.setText(message.splitlines()[0] if message else "")

    def hide_error(self, *scopes: str) -> None:
        """Hide the banner; with ``scopes``, only when it is about one of them."""
        if not scopes or self._banner_scope in scopes:
            self.banner.hide()

    def error_text(self) -> str:
        return self.banner.text() if self.banner.isVisible() else ""

    def _update_message(self) -> None:
        if self.project is None:
            self.canvas.show_message(NO_FOLDER)
        elif self.image is None and self.index >= 0 and not self.loading:
            self.canvas.show_message("This image could not be read; see the message above. A / D: other images.")
        elif self.inference.model is None and not self.inference.loading_model:
            self.canvas.show_message(NO_MODEL)
            self.status_text.setText("No model: Model > Open Weights… (Ctrl+M)")
        else:
            self.canvas.show_message("")

    def current_settings(self) -> PredictSettings:
        return self.thresholds.settings()

    def is_idle(self) -> bool:
        """Nothing in flight and the newest result drawn (results are drawn from a zero-delay timer)."""
        return not self.loading and not self.inference.busy and self._pending is None

    # ----- Qt events -----
    def dragEnterEvent(self, event) -> None:  # noqa: ANN001, N802
        if event.mimeData().hasUrls():
            event.acceptProposedAction()

    def dropEvent(self, event) -> None:  # noqa: ANN001, N802
        menus.open_dropped(self, [url.toLocalFile() for url in event.mimeData().urls()])

    def closeEvent(self, event) -> None:  # noqa: ANN001, N802
        if not self.save_or_discard():
            event.ignore()
            return
        self.save_settings()
        self.shutdown()
        super().closeEvent(event)

    def shutdown(self) -> None:
        """Stop the worker threads (a batch is cancelled; a running inference is waited for), kill a
        training process, write what is not saved yet."""
        self.trainer.shutdown()
        self.saver.flush()
        self.saver.shutdown()
        self.inference.shutdown()
        self.loader.shutdown()
