"""The model: which weights, on which device, and 'Predict all' with its progress and Cancel.

The scale of the user's images: the model's own (as its file says: each image to a short side, or pixel scale by
a factor), or pixel scale set as the typical size of the objects in the images (px), as Cellpose's diameter: the
factor is the model's own object size (network pixels) over the user's, so objects reach the network at the size it
learnt, and a large image is predicted in tiles. Cancel (or Esc while a tiled image is predicted) stops it between
two tiles.

Issue 13: the panel says whether the model in use is the folder's own (bug 2); when the model's classes are not the
folder's, a Classes box says so and offers the choices (map them to the folder's classes, show only the folder's,
add them, train a new head); the folder's runs are listed, each marked when cancelled or stopped before its end,
with Use and Delete… (bug 8).
"""

from __future__ import annotations

from dataclasses import replace

from PySide6.QtCore import Qt, Signal
from PySide6.QtGui import QAction, QKeySequence
from PySide6.QtWidgets import (
    QComboBox,
    QDoubleSpinBox,
    QFormLayout,
    QGridLayout,
    QGroupBox,
    QHBoxLayout,
    QLabel,
    QListWidget,
    QListWidgetItem,
    QProgressBar,
    QPushButton,
    QVBoxLayout,
    QWidget,
)

from gui.panels.wheel_guard import guard_wheel
from gui.session.project import ClassStatus, model_name, model_note
from gui.session.session import Session
from gui.training.process import RunInfo
from gui.workers.inference_worker import ModelInfo, describe_scale, model_object_size, scale_factor_for

DEVICES = (("Auto", "auto"), ("CUDA", "cuda"), ("CPU", "cpu"))
OWN, PIXEL = 0, 1  # the scale combo's entries
CLASS_CHOICES = (
    ("undecided", "Not chosen yet: the other classes are hidden"),
    ("matching", "Show only this folder's classes"),
    ("map", "Map them to this folder's classes"),
    ("add", "Add them to this folder's classes"),
)
IGNORE = "(hide)"  # a model class mapped to none of the folder's


class ModelPanel(QGroupBox):
    open_requested = Signal()
    device_changed = Signal(str)
    predict_all_requested = Signal()
    cancel_requested = Signal()
    predict_requested = Signal()  # the current image again
    scale_requested = Signal(object)  # float: pixel scale for objects of that many px in the images; None: the model's
    class_choice_changed = Signal(str, object)  # mode (gui.session.project.CLASS_MODES), {model class: folder class}
    train_head_requested = Signal()
    run_chosen = Signal(str)  # a run's model file: use it
    run_delete_requested = Signal(str)  # a run's model file: delete its run (the controller confirms)

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__("Model", parent)
        self.name = QLabel("No model")
        self.name.setWordWrap(True)
        self.detail = QLabel("")
        self.detail.setWordWrap(True)
        self.project_note = QLabel("")  # whether the model in use is the folder's own
        self.project_note.setWordWrap(True)
        self._build_classes()
        self._build_runs()
        self.open_button = QPushButton("Open weights…")
        self.device = QComboBox()
        for text, value in DEVICES:
            self.device.addItem(text, value)
        self.scale = QComboBox()
        self.scale.addItems(["Model's own", "Pixel scale"])
        self.scale.setToolTip(
            "How images are scaled for the model. Pixel scale: objects keep their size in pixels, whatever the image "
            "size; a large image is predicted in tiles (microscopy, aerial, inspection images)"
        )
        self.object_size = QDoubleSpinBox()
        self.object_size.setRange(1.0, 5000.0)
        self.object_size.setDecimals(1)
        self.object_size.setSuffix(" px")
        self.object_size.setKeyboardTracking(False)  # applied on Enter or leaving the box, not on every digit
        self.object_size.setToolTip(
            "The typical size (diameter) of the objects in your images, in pixels: the scale factor is the model's own "
            "object size over it"
        )
        self.scale_note = QLabel("")
        self.scale_note.setWordWrap(True)
        self.predict = QPushButton("Predict")
        self.predict.setToolTip("Predict the image on screen again (after a Cancel: on from the tiles done)")
        self.predict_all = QPushButton("Predict all")
        self.cancel = QPushButton("Cancel")
        self.cancel.setToolTip("Stop Predict all, or a large image's prediction between two tiles (Esc)")
        self.cancel.setEnabled(False)
        # Esc cancels while something can be cancelled (disabled otherwise: Esc then reaches the canvas's tools)
        self.cancel_action = QAction("Cancel prediction", self)
        self.cancel_action.setShortcut(QKeySequence(Qt.Key.Key_Escape))
        self.cancel_action.setShortcutContext(Qt.ShortcutContext.WindowShortcut)
        self.cancel_action.setEnabled(False)
        self.addAction(self.cancel_action)
        self._batch_running = False
        self._tiles_running = False
        self._info: ModelInfo | None = None
        self.progress = QProgressBar()
        self.progress.setVisible(False)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(6, 6, 6, 6)
        layout.addWidget(self.name)
        layout.addWidget(self.detail)
        layout.addWidget(self.project_note)
        layout.addWidget(self.classes_box)
        row = QHBoxLayout()
        row.addWidget(self.open_button)
        row.addWidget(QLabel("Device"))
        row.addWidget(self.device)
        layout.addLayout(row)
        grid = QGridLayout()
        grid.addWidget(QLabel("Scale"), 0, 0)
        grid.addWidget(self.scale, 0, 1)
        self.object_size_label = QLabel("Object size")
        grid.addWidget(self.object_size_label, 1, 0)
        grid.addWidget(self.object_size, 1, 1)
        grid.setColumnStretch(1, 1)
        layout.addLayout(grid)
        layout.addWidget(self.scale_note)
        row = QHBoxLayout()
        row.addWidget(self.predict)
        row.addWidget(self.predict_all)
        row.addWidget(self.cancel)
        layout.addLayout(row)
        layout.addWidget(self.progress)
        layout.addWidget(self.runs_box)
        guard_wheel(self)  # in the scrolling Controls dock: the wheel scrolls it unless the combo has focus
        self.open_button.clicked.connect(self.open_requested)
        self.device.currentIndexChanged.connect(lambda _i: self.device_changed.emit(self.device_value()))
        self.predict.clicked.connect(self.predict_requested)
        self.predict_all.clicked.connect(self.predict_all_requested)
        self.cancel.clicked.connect(self.cancel_requested)
        self.cancel_action.triggered.connect(self.cancel_requested)
        self.scale.currentIndexChanged.connect(lambda _i: self._scale_edited())
        self.object_size.valueChanged.connect(lambda _v: self._scale_edited())
        self.set_scale_info(None)

    def bind(self, session: Session) -> None:
        """Show the Session's model reference and what it is (or "loading…"), and whether it is the folder's."""
        session.events.model.connect(lambda path: self.set_model(path, session.model_description))
        for event in (session.events.model, session.events.project):
            event.connect(lambda *_: self.project_note.setText(model_note(session.project, session.weights_path)))

    # ----- the model's classes against the folder's (issue 13, bug 2) -----
    def _build_classes(self) -> None:
        self.classes_box = QGroupBox("Classes")
        self.classes_note = QLabel("")
        self.classes_note.setWordWrap(True)
        self.class_mode = QComboBox()
        for mode, text in CLASS_CHOICES:
            self.class_mode.addItem(text, mode)
        self.class_map = QFormLayout()  # one combo per model class the folder lacks, in map mode
        self.class_map_combos: dict[str, QComboBox] = {}
        self.train_head = QPushButton("Train a new head…")
        self.train_head.setToolTip(
            "Open the Train panel to train the model on this folder's classes: its class layers are renewed"
        )
        box = QVBoxLayout(self.classes_box)
        box.setContentsMargins(4, 4, 4, 4)
        box.addWidget(self.classes_note)
        box.addWidget(self.class_mode)
        box.addLayout(self.class_map)
        box.addWidget(self.train_head)
        self.classes_box.setVisible(False)
        self.class_mode.currentIndexChanged.connect(lambda _i: self._class_choice_edited())
        self.train_head.clicked.connect(self.train_head_requested)

    def set_class_status(self, status: ClassStatus) -> None:
        """Show the model's classes against the folder's (hidden when they agree); sends nothing."""
        self.classes_box.setVisible(status.mismatch)
        self.classes_note.setText(status.describe())
        self.class_mode.blockSignals(True)
        self.class_mode.setCurrentIndex(max(0, self.class_mode.findData(status.mode)))
        self.class_mode.blockSignals(False)
        mapping = dict(status.mapping)
        wanted = list(status.foreign) if status.mode == "map" else []
        if list(self.class_map_combos) != wanted or any(
            self.class_map_combos[n].count() != len(status.project_names) + 1 for n in wanted
        ):
            while self.class_map.rowCount():
                self.class_map.removeRow(0)
            self.class_map_combos = {}
            for name in wanted:
                combo = QComboBox()
                combo.addItem(IGNORE, "")
                for project_name in status.project_names:
                    combo.addItem(project_name, project_name)
                combo.currentIndexChanged.connect(lambda _i: self._class_choice_edited())
                self.class_map_combos[name] = combo
                self.class_map.addRow(f"{name} \u2192", combo)
            guard_wheel(self.classes_box)
        for name, combo in self.class_map_combos.items():
            combo.blockSignals(True)
            combo.setCurrentIndex(max(0, combo.findData(mapping.get(name, ""))))
            combo.blockSignals(False)

    def class_choice(self) -> tuple[str, dict[str, str]]:
        """(mode, map) as the Classes box shows them."""
        mapping = {name: combo.currentData() or "" for name, combo in self.class_map_combos.items()}
        return self.class_mode.currentData(), mapping

    def _class_choice_edited(self) -> None:
        mode, mapping = self.class_choice()
        self.class_choice_changed.emit(mode, mapping)

    # ----- the folder's runs (issue 13, bug 8) -----
    def _build_runs(self) -> None:
        self.runs_box = QGroupBox("Models of this folder")
        self.runs = QListWidget()
        self.runs.setMaximumHeight(110)
        self.use_run = QPushButton("Use")
        self.delete_run = QPushButton("Delete run…")
        self.delete_run.setToolTip("Delete the chosen run's folder (its model and training state) from the disk")
        self.runs_note = QLabel("")
        self.runs_note.setWordWrap(True)
        box = QVBoxLayout(self.runs_box)
        box.setContentsMargins(4, 4, 4, 4)
        box.addWidget(self.runs)
        row = QHBoxLayout()
        row.addWidget(self.use_run)
        row.addWidget(self.delete_run)
        box.addLayout(row)
        box.addWidget(self.runs_note)
        self.use_run.clicked.connect(lambda: self._run_action(self.run_chosen))
        self.delete_run.clicked.connect(lambda: self._run_action(self.run_delete_requested))
        self.runs.itemDoubleClicked.connect(lambda _item: self._run_action(self.run_chosen))
        self.runs.currentRowChanged.connect(lambda _row: self._update_run_buttons())
        self._current_model = ""
        self._update_run_buttons()

    def set_runs(self, runs: list[RunInfo], current: str) -> None:
        """The folder's runs, newest first: name, how it ended when not finished, size, whether it is in use."""
        chosen = self.chosen_run()
        self._current_model = current
        self.runs.blockSignals(True)
        self.runs.clear()
        for run in runs:
            item = QListWidgetItem(run.label(in_use=str(run.model) == current))
            item.setData(Qt.ItemDataRole.UserRole, str(run.model))
            tip = [str(run.model)]
            if run.resumable:
                tip.append("its training state is kept: it can be resumed (python -m engine train --resume)")
            item.setToolTip("\n".join(tip))
            self.runs.addItem(item)
            if str(run.model) == chosen:
                self.runs.setCurrentItem(item)
        self.runs.blockSignals(False)
        total = sum(run.size for run in runs)
        self.runs_note.setText(f"{len(runs)} run{'s' if len(runs) != 1 else ''}, {total / 1e6:.0f} MB" if runs else "")
        self._update_run_buttons()

    def run_rows(self) -> list[str]:
        return [self.runs.item(r).text() for r in range(self.runs.count())]

    def chosen_run(self) -> str:
        item = self.runs.currentItem()
        return item.data(Qt.ItemDataRole.UserRole) if item is not None else ""

    def _update_run_buttons(self) -> None:
        chosen = self.chosen_run()
        self.use_run.setEnabled(bool(chosen) and chosen != self._current_model)
        self.delete_run.setEnabled(bool(chosen))

    def _run_action(self, signal: Signal) -> None:
        chosen = self.chosen_run()
        if chosen:
            signal.emit(chosen)

    def device_value(self) -> str:
        return self.device.currentData()

    def set_device(self, value: str) -> None:
        index = self.device.findData(value)
        self.device.blockSignals(True)
        self.device.setCurrentIndex(max(index, 0))
        self.device.blockSignals(False)

    def set_model(self, path: str, detail: str) -> None:
        # a run by its folder and date: every run's file is model.safetensors
        self.name.setText(model_name(path) if path else "No model")
        self.name.setToolTip(path)
        self.detail.setText(detail)

    # ----- scale -----
    def chosen_object_size(self) -> float | None:
        """The scale as the panel shows it: the object size for pixel scale, None for the model's own."""
        return float(self.object_size.value()) if self.scale.currentIndex() == PIXEL else None

    def _scale_edited(self) -> None:
        self._show_scale()
        chosen = self.chosen_object_size()
        if self._info is not None and chosen != self._info.object_size:
            self._info = replace(self._info, object_size=chosen)  # what is asked for (the worker answers)
            self.scale_requested.emit(chosen)

    def set_scale_info(self, info: ModelInfo | None) -> None:
        """Show the scale of the model loaded (``info.object_size``: the user's choice, None for the model's own);
        sends nothing."""
        self._info = info if info is not None and info.config is not None else None
        for widget in (self.scale, self.object_size):
            widget.blockSignals(True)
        if self._info is None:
            self.scale.setItemText(OWN, "Model's own")
            self.scale.setCurrentIndex(OWN)
        else:
            config = self._info.config
            self.scale.setItemText(OWN, f"Model's: {describe_scale(config)}")
            self.scale.setCurrentIndex(OWN if self._info.object_size is None else PIXEL)
            if self._info.object_size is not None:
                self.object_size.setValue(self._info.object_size)
            else:  # the size at which the model's own scale would be right
                factor = config.scale_factor if config.scale_policy == "pixel-scale" else 1.0
                self.object_size.setValue(model_object_size(config)[0] / factor)
        for widget in (self.scale, self.object_size):
            widget.blockSignals(False)
        self._show_scale()

    def _show_scale(self) -> None:
        pixel = self.scale.currentIndex() == PIXEL
        self.scale.setEnabled(self._info is not None)
        self.object_size.setEnabled(self._info is not None and pixel)
        self.object_size_label.setEnabled(self._info is not None and pixel)
        if self._info is None:
            self.scale_note.setText("")
            return
        config = self._info.config
        size, recorded = model_object_size(config)
        source = "recorded in its file" if recorded else "assumed: twice its smallest anchor; its file does not say"
        learnt = f"The model's object size: ~{size:.0f} px ({source})."
        if pixel:
            factor = scale_factor_for(config, self.object_size.value())
            text = f"Factor \u00d7{factor:.3g}: your objects reach the network at the model's object size."
            text += " Large images are predicted in tiles."
        elif config.scale_policy == "pixel-scale":
            text = (
                f"Factor \u00d7{config.scale_factor:.3g}, the model's own: right for objects of "
                f"~{size / config.scale_factor:.0f} px in your images."
            )
        else:
            text = (
                f"Each image is resized to a short side of {config.min_size[-1]} px, whatever its size; for objects "
                "of a fixed size in large images, choose Pixel scale."
            )
        self.scale_note.setText(f"{text} {learnt}")
        self.scale_note.setToolTip(learnt)

    # ----- predicting -----
    def set_predicting(self, running: bool) -> None:
        """A large image's tiles are being predicted (Cancel and Esc stop them)."""
        self._tiles_running = running
        self._update_cancel()

    def _update_cancel(self) -> None:
        running = self._batch_running or self._tiles_running
        self.cancel.setEnabled(running)
        self.cancel_action.setEnabled(running)

    def set_batch(self, running: bool, done: int = 0, total: int = 0) -> None:
        self.predict_all.setEnabled(not running)
        self._batch_running = running
        self._update_cancel()
        self.progress.setVisible(running or done > 0)
        self.progress.setRange(0, max(total, 1))
        self.progress.setValue(done)
        self.progress.setFormat(f"{done} / {total}")
