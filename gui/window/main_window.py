"""The main window: builds the widgets, the Session, the workers and the controllers, and wires them.

Canvas in the middle, images and instances on the left, classes and controls on the right, the Train
panel at the bottom. It holds no state of its own.

What is open lives in the ``Session`` (gui/session/session.py), whose events the widgets observe.
The ``ImageController`` (gui/window/controller.py) opens projects, switches images and applies the
inference results; the ``Editor`` (gui/editing/editor.py) edits through its undo stack; the
``AutoSaver`` (gui/workers/autosave.py) saves; training runs in a separate process
(gui/training/controller.py). The menus are gui/window/menus.py, saved settings gui/window/persist.py.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
from PySide6.QtCore import Qt, QTimer
from PySide6.QtWidgets import QDockWidget, QMainWindow, QScrollArea, QVBoxLayout, QWidget

from gui.canvas.view import Canvas
from gui.editing.editor import Editor
from gui.panels.class_list import ClassList
from gui.panels.controls import OverlayPanel, ThresholdPanel
from gui.panels.display_panel import DisplayPanel
from gui.panels.image_list import ImageList
from gui.panels.instance_list import InstanceList
from gui.panels.model_panel import ModelPanel
from gui.panels.train_panel import TrainPanel
from gui.review.tools import ReviewTools
from gui.session.session import Session
from gui.training.controller import TrainController
from gui.window import layout, menus, persist
from gui.window.controller import ImageController
from gui.window.messages import MessageBar, ask_discard
from gui.window.rejection_saver import RejectionSaver
from gui.window.settings import Settings
from gui.workers.autosave import AutoSaver
from gui.workers.inference import InferenceClient
from gui.workers.inference_worker import ModelInfo
from gui.workers.loader import ImageLoader


def _scrolled(widget: QWidget) -> QScrollArea:
    scroll = QScrollArea()
    scroll.setWidgetResizable(True)
    scroll.setWidget(widget)
    return scroll


class MainWindow(QMainWindow):
    def __init__(self, settings: Settings, torch_threads: int | None = None) -> None:
        super().__init__()
        self.setWindowTitle("Mask R-CNN Studio")
        self.setObjectName("MainWindow")
        self.settings = settings
        self._opening = ""  # what this window marked as being opened (Settings.mark_opening)
        self.session = Session()
        self.messages = MessageBar()
        self.status_text = self.messages.status  # the status line (scripts and older tests read it here)
        self._build_widgets()
        self.inference = InferenceClient(torch_threads, self)
        self.loader = ImageLoader(self)
        self.saver = AutoSaver(self)
        self.controller = ImageController(
            self.session, self.inference, self.loader, self.saver, self.messages,
            self.thresholds.settings, self.model_panel.device_value, self,
        )  # fmt: skip
        self.canvas.bind(self.session)  # first: the pixels are on the canvas before the editor redraws
        self.editor = Editor(self.session, self.canvas, self.controller, self.controller.go_to, self)
        self.trainer = TrainController(self.session, self.train_panel, self.saver, self.messages, self.controller, self)
        self.rejections = RejectionSaver(self.session, self.messages, self)  # kept with the project
        self._wire()
        self.menu_actions = menus.build_menus(self, self)
        # the review queue, colour by confidence, the Errors view, the image list's figures (issue 13, 11-13)
        review_parts = (self.session, self.canvas, self.editor, self.images, self.messages, self.inference)
        self.review = ReviewTools(*review_parts, self)
        self.review.build_menu(self)
        self.setAcceptDrops(True)
        persist.restore(self, self)
        self.controller.update_hint()

    # ----- construction -----
    def _build_widgets(self) -> None:
        self.canvas = Canvas()
        central = QWidget()
        column = QVBoxLayout(central)
        column.setContentsMargins(0, 0, 0, 0)
        column.setSpacing(0)
        column.addWidget(self.messages.banner_row)
        column.addWidget(self.canvas, 1)
        central.setMinimumSize(layout.CANVAS_MIN)  # a shrinking window takes from the docks, not all from the image
        self.setCentralWidget(central)
        self.images, self.instances, self.classes = ImageList(), InstanceList(), ClassList()
        self.model_panel, self.thresholds, self.overlays = ModelPanel(), ThresholdPanel(), OverlayPanel()
        self.display_panel = DisplayPanel(self.settings)  # contrast: what is shown only, kept globally
        self.canvas.display = self.display_panel.display_pixels
        self.canvas.display_table = self.display_panel.table_for  # the same contrast, for huge images' parts
        self.display_panel.changed.connect(self.canvas.redisplay)
        controls = QWidget()
        column = QVBoxLayout(controls)
        column.setContentsMargins(2, 2, 2, 2)
        for panel in (self.model_panel, self.thresholds, self.overlays, self.display_panel):
            column.addWidget(panel)
        column.addStretch(1)
        left, right = Qt.DockWidgetArea.LeftDockWidgetArea, Qt.DockWidgetArea.RightDockWidgetArea
        self.docks = [self._dock("Images", self.images, left), self._dock("Instances", self.instances, left),
                      self._dock("Controls", _scrolled(controls), right)]  # fmt: skip
        # scrolled too: its row of buttons would otherwise hold the right column at 346 px in a small window
        self.classes_dock = self._dock("Classes", _scrolled(self.classes), right)
        self.splitDockWidget(self.classes_dock, self.docks[2], Qt.Orientation.Vertical)
        self.train_panel = TrainPanel()
        # its options column scrolls rather than make the window taller than a small screen
        self.train_dock = self._dock("Train", self.train_panel, Qt.DockWidgetArea.BottomDockWidgetArea)
        self.train_dock.setFeatures(self.train_dock.features() | QDockWidget.DockWidgetFeature.DockWidgetClosable)
        self.train_dock.hide()
        self.messages.place_in(self.statusBar())
        self.keeper = layout.DockKeeper(self)  # docks come back after the window is shrunk and grown again

    def _dock(self, title: str, widget: QWidget, area: Qt.DockWidgetArea) -> QDockWidget:
        dock = QDockWidget(title, self)
        dock.setObjectName(f"dock_{title.lower()}")
        dock.setWidget(widget)
        dock.setFeatures(
            QDockWidget.DockWidgetFeature.DockWidgetMovable | QDockWidget.DockWidgetFeature.DockWidgetFloatable
        )
        self.addDockWidget(area, dock)
        return dock

    def _wire(self) -> None:
        session, controller, editor, messages = self.session, self.controller, self.editor, self.messages
        for widget in (self.images, self.instances, self.model_panel):
            widget.bind(session)
        self.classes.bind(editor)
        session.events.shown.connect(lambda _shown: self._draw_proposals())
        session.events.shown.connect(lambda _shown: self.messages.forget("hover"))  # the rows are renumbered
        session.events.selection.connect(lambda _selection: self._update_edit_status())
        session.events.project.connect(self._on_project)
        controller.model_ready.connect(self._on_model_ready)
        controller.first_shown.connect(self.settings.clear_opening)
        controller.timing.connect(messages.timing.setText)
        controller.hint.connect(self.canvas.show_message)
        controller.batch.connect(self.model_panel.set_batch)
        controller.bind_model_panel(self.model_panel, self.trainer)  # the folder's model, classes and runs
        self.inference.busy_changed.connect(messages.busy.setVisible)
        controller.busy.connect(messages.busy.setVisible)  # a project being read
        self.inference.box_mask_ready.connect(editor.on_box_mask)
        self.inference.box_mask_ready.connect(self._box_answered)  # after the editor has used the answer
        self.images.current_changed.connect(controller.go_to)
        self.thresholds.settings_changed.connect(controller.settings_changed)
        self.thresholds.proposals_shown_changed.connect(lambda _n: self._draw_proposals())
        self.overlays.layer_toggled.connect(self.canvas.set_layer_visible)
        self.overlays.opacity_changed.connect(self.canvas.set_mask_opacity)
        self.overlays.hide_matched_check.toggled.connect(lambda on: self._set_view(hide_matched=on))
        self.instances.filter_changed.connect(lambda name: self._set_view(class_filter=name))
        self.canvas.hovered.connect(self._on_hovered)
        self.model_panel.open_requested.connect(lambda: menus.open_weights_dialog(self, self))
        self.model_panel.device_changed.connect(self._on_device_changed)
        self.model_panel.predict_all_requested.connect(controller.predict_all)
        self.model_panel.cancel_requested.connect(self.inference.cancel_batch)
        self.model_panel.cancel_requested.connect(controller.cancel_prediction)
        self.model_panel.predict_requested.connect(controller.predict_again)
        self.model_panel.scale_requested.connect(self._on_scale_requested)
        controller.scale_applied.connect(self.model_panel.set_scale_info)
        controller.predicting.connect(self.model_panel.set_predicting)
        controller.tile_progress.connect(messages.show_progress)
        editor.changed.connect(controller.refilter)  # annotations hide the predictions they match
        editor.categories_changed.connect(self._update_edit_status)
        editor.edited.connect(self.saver.edited)
        editor.edited.connect(self.rejections.edited)
        editor.message.connect(messages.show_status)
        editor.tool_changed.connect(lambda _name: self._update_edit_status())
        editor.brush_changed.connect(lambda _radius: self._update_edit_status())
        self.saver.dirty_changed.connect(lambda _dirty: self._update_title())

    # ----- view reactions -----
    def _set_view(self, **view: object) -> None:
        """The class filter or hiding matched predictions changed: choose what is shown again."""
        for name, value in view.items():
            setattr(self.controller, name, value)
        self.controller.refilter()

    def _draw_proposals(self) -> None:
        prediction = self.session.prediction
        boxes = prediction.proposals[: self.thresholds.proposals_shown()] if prediction is not None else None
        self.canvas.set_proposals(boxes if boxes is not None else np.zeros((0, 4)))

    def _on_hovered(self, row: int) -> None:
        """The status line describes the detection under the mouse, and only while it is there."""
        text = self.session.describe(row)
        if text:
            self.messages.show_status(text, about="hover")
        else:
            self.messages.forget("hover")

    def _on_project(self, project) -> None:  # noqa: ANN001 - Project | None
        if project is not None:
            self.settings.remember_folder(project.root)
        menus.update_recent(self.menu_actions.recent_menu, self)
        self._update_title()

    def _on_model_ready(self, info: ModelInfo) -> None:
        persist.model_loaded(self, info)
        object_size = self.settings.model_scale(info.path)  # the scale the user set for this file, if any
        self.model_panel.set_scale_info(replace(info, object_size=object_size))
        if object_size is not None:
            self.controller.set_scale(object_size, predict=False)  # before the prediction that follows the load
        if info.augment:  # fine-tuning goes on with the augmentation the model was trained with
            self.train_panel.set_augment(info.augment)

    def _on_scale_requested(self, object_size: float | None) -> None:
        """The Model panel's scale: remembered for the model file, then in force (no reload of the weights)."""
        if self.inference.model is not None:
            self.settings.remember_model_scale(self.inference.model.path, object_size)
            self.controller.set_scale(object_size)

    def _on_device_changed(self, device: str) -> None:
        self.settings.device = device
        self.controller.reload()

    def _box_answered(self, *_answer: object) -> None:
        """The model answered a drawn box: "Box: asking the model…" is stale once no box waits any more."""
        if not self.editor.pending_boxes:
            self.messages.settle("Box:")

    def _update_edit_status(self) -> None:
        self.messages.edit_status.setText(self.editor.status_text())

    def _update_title(self) -> None:
        name = self.session.project.root.name if self.session.project else ""
        star = "*" if self.saver.dirty else ""
        self.setWindowTitle(f"{star}{name} — Mask R-CNN Studio" if name else "Mask R-CNN Studio")

    # ----- what the app entry point, the menus and drops call -----
    def open_path(self, path: str | Path) -> bool:
        """A folder, an annotation file or an image; False (and a message) when it cannot be read.

        The settings say "opening <path>" until its first image is shown (``first_shown``): a crash in
        between leaves the mark, and the next plain start does not open it again (gui/app.py)."""
        if not self.save_or_discard():
            return False
        self._opening = str(Path(path).expanduser().absolute())
        self.settings.mark_opening(self._opening)
        opened = self.controller.open_path(path)
        if not opened:
            self.settings.clear_opening()
        return opened

    def load_weights(self, path: str | Path, explicit: bool = False) -> None:
        """``explicit``: named on the command line; it wins over the model the next folder opened remembers."""
        self.controller.load_weights(path, explicit=explicit)

    def save_or_discard(self) -> bool:
        """Before closing or opening another folder: True when the edits are on disk or the user lets them go."""
        return self.saver.flush() or ask_discard(self, self.saver.last_error)

    def save_settings(self) -> None:
        persist.save(self, self)

    def reset_layout(self) -> None:
        """View > Reset Layout: the docks back in their places at their first-run sizes."""
        self.keeper.forget()
        layout.reset(self)
        QTimer.singleShot(0, self.keeper.take_all)  # these sizes are the ones to come back to

    def fit_to_screen(self) -> bool:
        """Once shown: a window that sticks out of its screen (title or status bar off screen) is made to fit."""
        return layout.fit_to_screen(self)

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
        if self._opening and self.settings.opening == self._opening:
            self.settings.clear_opening()  # a clean exit before the first image: no crash to remember
        self.shutdown()
        super().closeEvent(event)

    def shutdown(self) -> None:
        """Stop the worker threads (a batch is cancelled; a running inference is waited for), kill a
        training process, write what is not saved yet."""
        self.trainer.shutdown()
        self.saver.flush()
        self.rejections.flush()
        self.saver.shutdown()
        self.inference.shutdown()
        self.loader.shutdown()
        self.review.shutdown()
        self.controller.opener.shutdown(500)  # a long read under way is not waited for here (joined at exit)

    # ----- shortcuts for scripts that hold only the window (the Session, controller have it): scripts/screenshots.py
    # (project, index, prediction, shown, go_to), benchmarks/gui_stall.py (prediction, step),
    # tests/gui/test_worker.py (prediction, is_idle); tests go through tests/gui/conftest.py's Driver
    project = property(lambda self: self.session.project)
    index = property(lambda self: self.session.index)
    prediction = property(lambda self: self.session.prediction)
    shown = property(lambda self: self.session.shown)
    is_idle = property(lambda self: self.controller.is_idle)
    go_to = property(lambda self: self.controller.go_to)
    step = property(lambda self: self.controller.step)
