"""The Train panel: what to train on and how long, Train / Cancel, live progress and curves, and the
models trained in this project (pick one to go back to it)."""

from __future__ import annotations

from pathlib import Path

from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import (
    QComboBox,
    QDoubleSpinBox,
    QFormLayout,
    QFrame,
    QGroupBox,
    QHBoxLayout,
    QLabel,
    QListWidget,
    QListWidgetItem,
    QProgressBar,
    QPushButton,
    QScrollArea,
    QSpinBox,
    QVBoxLayout,
    QWidget,
)

from engine.config import AUGMENT_PRESET_NOTES, AUGMENT_PRESETS, DEFAULT_EPOCHS, TrainConfig
from gui.panels.loss_plot import LossPlot, ap_summary
from gui.panels.model_panel import DEVICES
from gui.panels.wheel_guard import guard_wheel
from gui.training.process import TrainRequest


def run_ap(path: Path) -> str:
    """A run's last validation, as its model file's history records it ("mask AP 0.280 (AP50 0.498)"), or ""
    (no validation, or a file that cannot be read: the list shows the run anyway). Read once per file version:
    the list is refreshed after every edit."""
    from engine.checkpoint import read_info  # (torch: the app has it loaded; the panel's import need not)

    try:
        key = (str(path), path.stat().st_mtime_ns)
        if key not in _RUN_AP:
            history = read_info(path).history
            last = next((h for h in reversed(history) if isinstance(h, dict) and "val_mask_AP" in h), None)
            metrics = {k.removeprefix("val_"): v for k, v in (last or {}).items() if isinstance(v, (int, float))}
            _RUN_AP[key] = ap_summary(metrics)
    except (OSError, ValueError):  # WeightsError is a ValueError
        return ""
    return _RUN_AP[key]


_RUN_AP: dict[tuple[str, int], str] = {}  # (model file, its mtime) -> run_ap's answer


def _spin(minimum: int, maximum: int, value: int, special: str = "") -> QSpinBox:
    spin = QSpinBox()
    spin.setRange(minimum, maximum)
    spin.setValue(value)
    if special:
        spin.setSpecialValueText(special)
    return spin


class TrainPanel(QWidget):
    train_requested = Signal()
    cancel_requested = Signal()
    model_chosen = Signal(str)  # path of a model of this project

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.subset = QComboBox()
        self.subset.addItem("Reviewed images", "reviewed")
        self.subset.addItem("All annotated images", "annotated")
        self.length = QDoubleSpinBox()
        self.length.setRange(1, 100_000)
        self.length.setDecimals(0)
        self.length.setValue(DEFAULT_EPOCHS)  # the trainer's defaults (engine.config), as the command line's
        self.unit = QComboBox()
        self.unit.addItems(["epochs", "iterations"])
        self.lr = QDoubleSpinBox()
        self.lr.setDecimals(4)
        self.lr.setRange(0.0, 1.0)
        self.lr.setSingleStep(0.001)
        self.lr.setValue(TrainConfig().lr)
        self.lr.setSpecialValueText("default")
        self.device = QComboBox()
        for text, value in DEVICES:
            self.device.addItem(text, value)
        self.start_from = QComboBox()
        self.start_from.addItem("the current model", True)
        self.start_from.addItem("scratch (new ResNet-18)", False)
        self.val_split = QDoubleSpinBox()
        self.val_split.setRange(0.0, 0.5)
        self.val_split.setSingleStep(0.05)
        self.val_split.setValue(0.2)
        self.input_size = _spin(0, 4096, 0, "model's")
        self.max_size = _spin(0, 8192, 0, "model's")
        self.threads = _spin(0, 256, 0, "cores - 1")
        self.batch_size = _spin(1, 64, TrainConfig().batch_size)
        self.augment = QComboBox()
        for name in AUGMENT_PRESETS:
            self.augment.addItem(name.capitalize(), name)
        self.augment.setToolTip(
            "\n".join(f"{name.capitalize()}: {note}." for name, note in AUGMENT_PRESET_NOTES.items())
        )
        self.train_button = QPushButton("Train")
        self.train_button.setObjectName("trainButton")
        self.cancel_button = QPushButton("Cancel")
        self.cancel_button.setEnabled(False)
        self.progress = QProgressBar()
        self.progress.setRange(0, 1)
        self.progress.setValue(0)
        self.status = QLabel("Accept or correct masks, mark the images you checked reviewed (Ctrl+Return), then train.")
        self.status.setWordWrap(True)
        self.plot = LossPlot()
        self.models = QListWidget()
        self.models.setMaximumHeight(90)
        self.use_model = QPushButton("Use this model")
        self._layout()
        guard_wheel(self)  # the wheel scrolls the options; it changes a spin box or combo only once focused
        self.train_button.clicked.connect(self.train_requested)
        self.cancel_button.clicked.connect(self.cancel_requested)
        self.use_model.clicked.connect(self._on_use)
        self.models.itemDoubleClicked.connect(lambda _item: self._on_use())

    def _layout(self) -> None:
        form = QFormLayout()
        form.setContentsMargins(0, 0, 0, 0)
        form.addRow("Train on", self.subset)
        length = QHBoxLayout()
        length.addWidget(self.length, 1)
        length.addWidget(self.unit)
        form.addRow("Length", length)
        form.addRow("Learning rate", self.lr)
        form.addRow("Start from", self.start_from)
        form.addRow("Validation split", self.val_split)
        form.addRow("Device", self.device)
        advanced = QGroupBox("Advanced")
        advanced_form = QFormLayout(advanced)
        advanced_form.addRow("Input size (short side)", self.input_size)
        advanced_form.addRow("Max size (long side)", self.max_size)
        advanced_form.addRow("Batch size", self.batch_size)
        advanced_form.addRow("Augmentation", self.augment)
        advanced_form.addRow("CPU threads", self.threads)
        buttons = QHBoxLayout()
        buttons.addWidget(self.train_button)
        buttons.addWidget(self.cancel_button)
        left = QVBoxLayout()
        left.addLayout(form)
        left.addWidget(advanced)
        left.addLayout(buttons)
        left.addWidget(self.progress)
        left.addWidget(self.status)
        left.addWidget(QLabel("Models of this project"))
        left.addWidget(self.models)
        left.addWidget(self.use_model)
        left.addStretch(1)
        options = QWidget()
        options.setLayout(left)
        options.setMaximumWidth(330)
        # Only the options scroll: the dock stays within a small screen and the loss plot is always seen whole.
        scroll = QScrollArea()
        scroll.setWidgetResizable(True)
        scroll.setFrameShape(QFrame.Shape.NoFrame)
        scroll.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        scroll.setWidget(options)
        scroll.setFixedWidth(330 + scroll.verticalScrollBar().sizeHint().width() + 2)
        row = QHBoxLayout(self)
        row.setContentsMargins(4, 4, 4, 4)
        row.addWidget(scroll)
        row.addWidget(self.plot, 1)

    def options(self) -> TrainRequest:
        """The request the widgets describe: a TrainConfig (what is not shown keeps its default) and the rest."""
        iterations = self.unit.currentText() == "iterations"
        defaults = TrainConfig()
        config = defaults.replace(
            iterations=int(self.length.value()) if iterations else defaults.iterations,
            lr=self.lr.value() or defaults.lr,
            batch_size=self.batch_size.value(),
            augment=AUGMENT_PRESETS[self.augment.currentData()],
        )
        return TrainRequest(
            config=config,
            epochs=None if iterations else float(self.length.value()),
            subset=self.subset.currentData(),
            device=self.device.currentData(),
            from_current=bool(self.start_from.currentData()),
            val_split=float(self.val_split.value()),
            input_size=self.input_size.value(),
            max_size=self.max_size.value(),
            threads=self.threads.value(),
        )

    def set_augment(self, preset: str) -> None:
        """Select the augmentation preset ``preset`` (a name of engine.config.AUGMENT_PRESETS) if listed."""
        index = self.augment.findData(preset)
        if index >= 0:
            self.augment.setCurrentIndex(index)

    def set_counts(self, reviewed: int, annotated: int) -> None:
        self.subset.setItemText(0, f"Reviewed images ({reviewed})")
        self.subset.setItemText(1, f"All annotated images ({annotated})")

    def set_running(self, running: bool) -> None:
        self.train_button.setEnabled(not running)
        self.cancel_button.setEnabled(running)

    def set_progress(self, iteration: int, total: int) -> None:
        self.progress.setRange(0, max(1, total))
        self.progress.setValue(min(iteration, max(1, total)))
        self.progress.setFormat(f"{iteration} / {total}")

    def set_models(self, paths: list[Path], current: str) -> None:
        """The project's models, newest first: the run's name, its last validation AP, whether it is in use."""
        self.models.clear()
        for path in paths:
            ap = run_ap(path)
            in_use = "  (in use)" if str(path) == current else ""
            item = QListWidgetItem(path.parent.name + (f"  {ap}" if ap else "") + in_use)
            item.setData(Qt.ItemDataRole.UserRole, str(path))
            item.setToolTip(str(path) + (f"\nlast validation: {ap}" if ap else "\nno validation"))
            self.models.addItem(item)

    def _on_use(self) -> None:
        item = self.models.currentItem()
        if item is not None:
            self.model_chosen.emit(item.data(Qt.ItemDataRole.UserRole))
