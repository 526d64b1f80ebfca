"""The Train panel: what to train on and how long, Train / Cancel, live progress and curves, and the
models trained in this project (pick one to go back to it)."""

from __future__ import annotations

from pathlib import Path

from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import (
    QCheckBox,
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

from engine.config import AUGMENT_PRESET_NOTES, AUGMENT_PRESETS, DEFAULT_EPOCHS, QUICK_FINE_TUNE, TrainConfig
from gui.panels.loss_plot import LossPlot, ap_summary
from gui.panels.model_panel import DEVICES
from gui.panels.wheel_guard import guard_wheel
from gui.training.process import TrainRequest, run_info


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


BUNDLED_MODELS = Path(__file__).resolve().parents[2] / "resources" / "models"  # the app's (gui/app.py) too


def bundled_model() -> Path | None:
    """The nuclei model shipped in resources/models, when it is there."""
    models = sorted(BUNDLED_MODELS.glob("*.safetensors")) if BUNDLED_MODELS.is_dir() else []
    return models[0] if models else None


def start_choices() -> list[tuple[str, object]]:
    """The Train panel's "Start from" list: (text, value); True is the current model, False scratch, a text the
    ``--weights`` the trainer gets (a file, or a short name that engine.hub downloads when it is not cached)."""
    choices: list[tuple[str, object]] = [("the current model", True)]
    bundled = bundled_model()
    if bundled is not None:
        choices.append(("the bundled nuclei model", str(bundled)))
    choices += [
        ("COCO Mask R-CNN (ResNet-50, ~170 MB)", "coco"),
        ("ImageNet ResNet-18 (~45 MB)", "imagenet:resnet18"),
        ("ImageNet ResNet-50 (~100 MB)", "imagenet:resnet50"),
        ("scratch (new ResNet-18)", False),
    ]
    return choices


RESUMABLE_ROLE = Qt.ItemDataRole.UserRole + 1  # a models list row: the run can be resumed
RENEWED = "the class layers (box classifier, box regression, mask outputs) are renewed for this project's classes"


def _classes_of(weights: str) -> list[str] | None:
    """The class names a model file records (our checkpoints; torchvision's COCO model by its short name), else None."""
    from engine import hub  # (torch: the app has it loaded; the panel's import need not)
    from engine.checkpoint import COCO_NAMES, read_info

    if hub.is_alias(weights):
        return [n for n in COCO_NAMES if n != "N/A"] if hub.pretrained(weights).stem.startswith("maskrcnn") else None
    if not str(weights).endswith(".safetensors"):
        return None
    try:
        return list(read_info(weights).class_names)
    except (OSError, ValueError):
        return None


def _download_note(spec: str) -> str:
    from engine import hub

    weights = hub.pretrained(spec)
    if hub.cached(spec) is not None:
        return f"{weights.title}: in the torch hub cache ({hub.hub_checkpoints()})."
    return (
        f"{weights.title}: downloaded once ({weights.megabytes:.0f} MB) into {hub.hub_checkpoints()} when training "
        "starts (without a network: put the file there yourself; the error names it)."
    )


def _count(names: list[str]) -> str:
    shown = ", ".join(names[:4]) + ("…" if len(names) > 4 else "")
    return f"{len(names)} class{'es' if len(names) != 1 else ''}: {shown}"


def start_note(start: object, current: str = "") -> str:
    """What a start keeps and renews, in words for the panel."""
    if start is False:
        return "Every weight starts fresh (ResNet-18): needs many annotated images and a long run."
    if start is True:
        if not current:
            return "No model in use: the run starts from scratch."
        names = _classes_of(current)
        described = f" ({_count(names)})" if names else ""
        return f"Fine-tunes the model in use{described}; when this project's classes differ, {RENEWED}."
    spec = str(start)
    if spec.startswith("imagenet"):
        return (
            _download_note(spec) + " Only the backbone is pretrained: the FPN, RPN and heads start fresh for this "
            "project's classes."
        )
    names = _classes_of(spec)
    prefix = _download_note(spec) + " " if spec == "coco" else ""
    listed = f"Its {_count(names)}. " if names else ""
    return f"{prefix}{listed}Everything is kept; when this project's classes differ, {RENEWED}."


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
    resume_requested = Signal(str)  # the model file of a stopped run to continue

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
        for text, value in start_choices():
            self.start_from.addItem(text, value)
        quick = QUICK_FINE_TUNE
        self.quick = QCheckBox("Quick fine-tune")  # issue 14, point 3: a few corrected images, a few CPU minutes
        self.quick.setToolTip(
            f"From the model in use: {quick.iterations} iterations (a few minutes of a CPU), every corrected image "
            f"trains (no validation split)"
            + (f", ResNet stages frozen: {quick.frozen_stages}" if quick.frozen_stages else "")
            + ". Chosen by measurement: docs/WALKTHROUGH.md."
        )
        self.start_note = QLabel()  # what the chosen start keeps, renews, downloads
        self.start_note.setWordWrap(True)
        self.start_note.setObjectName("startNote")
        self.current_weights = ""  # the model in use (set_models), described when "the current model" is chosen
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
        self._bar = "idle"  # what the bar shows: idle, busy (start-up), download, iterations, ended
        self.status = QLabel("Accept or correct masks, mark the images you checked reviewed (Ctrl+Return), then train.")
        self.status.setWordWrap(True)
        self.plot = LossPlot()
        self.models = QListWidget()
        self.models.setMaximumHeight(90)
        self.use_model = QPushButton("Use this model")
        self.resume_button = QPushButton("Resume")  # a cancelled or stopped run whose training state is kept
        self.resume_button.setToolTip("Continue the chosen run where it stopped (python -m engine train --resume)")
        self.resume_button.setEnabled(False)
        self._running = False
        self._layout()
        guard_wheel(self)  # the wheel scrolls the options; it changes a spin box or combo only once focused
        self.start_from.currentIndexChanged.connect(lambda _index: self._describe_start())
        self.quick.toggled.connect(self._on_quick)
        self._describe_start()
        self.train_button.clicked.connect(self.train_requested)
        self.cancel_button.clicked.connect(self.cancel_requested)
        self.use_model.clicked.connect(self._on_use)
        self.models.itemDoubleClicked.connect(lambda _item: self._on_use())
        self.models.currentRowChanged.connect(lambda _row: self._update_resume())
        self.resume_button.clicked.connect(self._on_resume)

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
        form.addRow(self.quick)
        form.addRow(self.start_note)
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
        model_buttons = QHBoxLayout()
        model_buttons.addWidget(self.use_model)
        model_buttons.addWidget(self.resume_button)
        left.addLayout(model_buttons)
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
        start = self.start_from.currentData()
        return TrainRequest(
            config=config,
            epochs=None if iterations else float(self.length.value()),
            subset=self.subset.currentData(),
            device=self.device.currentData(),
            from_current=start is True,
            val_split=float(self.val_split.value()),
            input_size=self.input_size.value(),
            max_size=self.max_size.value(),
            threads=self.threads.value(),
            extra=(["--weights", start] if isinstance(start, str) else [])  # a pretrained start; False: scratch
            + (QUICK_FINE_TUNE.flags() if self.quick.isChecked() else []),
        )

    def _on_quick(self, on: bool) -> None:
        """Quick fine-tune sets what it decides (length, rate, start, validation) and greys those out: what is shown
        is what runs."""
        quick = QUICK_FINE_TUNE
        if on:
            self.unit.setCurrentText("iterations")
            self.length.setValue(quick.iterations)
            self.lr.setValue(quick.lr)
            self.val_split.setValue(quick.val_split)
            self.start_from.setCurrentIndex(max(0, self.start_from.findData(True)))
        for widget in (self.length, self.unit, self.lr, self.val_split, self.start_from):
            widget.setEnabled(not on)

    def set_augment(self, preset: str) -> None:
        """Select the augmentation preset ``preset`` (a name of engine.config.AUGMENT_PRESETS) if listed."""
        index = self.augment.findData(preset)
        if index >= 0:
            self.augment.setCurrentIndex(index)

    def set_counts(self, reviewed: int, annotated: int) -> None:
        self.subset.setItemText(0, f"Reviewed images ({reviewed})")
        self.subset.setItemText(1, f"All annotated images ({annotated})")

    def set_running(self, running: bool) -> None:
        self._running = running
        self.train_button.setEnabled(not running)
        self.cancel_button.setEnabled(running)
        self._update_resume()

    def set_starting(self, total: int, done: int = 0) -> None:
        """A run started: ``done`` / ``total`` iterations when the length is known (in iterations, or a run resumed),
        else a busy bar saying so until the trainer's first step tells (it read "0 / 1" for a 4-iteration run)."""
        if total > 0:
            self.set_progress(done, total)
        else:
            self.progress.setRange(0, 0)
            self.progress.setFormat("starting…")
            self._bar = "busy"

    def set_download(self, done: int, total: int) -> None:
        """The pretrained weights downloading before the run starts: ``done`` / ``total`` bytes (in kB: the bar's
        range is a 32-bit int), or a busy bar with the MB so far when the server gives no length."""
        if total > 0:
            self.progress.setRange(0, max(1, total // 1000))
            self.progress.setValue(min(done, total) // 1000)
            self.progress.setFormat(f"{done / 1e6:.0f} / {total / 1e6:.0f} MB")
        else:
            self.progress.setRange(0, 0)
            self.progress.setFormat(f"{done / 1e6:.0f} MB")
        self._bar = "download"

    def set_progress(self, iteration: int, total: int) -> None:
        self.progress.setRange(0, max(1, total))
        self.progress.setValue(min(iteration, max(1, total)))
        self.progress.setFormat(f"{iteration} / {total}")
        self._bar = "iterations"

    def end_progress(self, outcome: str) -> None:
        """A run ended: a bar that counted iterations keeps how far it got; one that showed a download or the
        start-up (a run that failed or was cancelled before its first iteration) says so instead of going on."""
        if self._bar != "iterations" and outcome != "done":
            self.progress.setRange(0, 1)
            self.progress.setValue(0)
            self.progress.setFormat("failed before the first iteration" if outcome == "failed" else outcome)
            self._bar = "ended"

    def set_models(self, paths: list[Path], current: str) -> None:
        """The project's models, newest first: the run's name, its last validation AP, whether it is in use."""
        if current != self.current_weights:
            self.current_weights = current
            self._describe_start()
        chosen = self.models.currentItem().data(Qt.ItemDataRole.UserRole) if self.models.currentItem() else ""
        self.models.blockSignals(True)
        self.models.clear()
        for path in paths:
            ap = run_ap(path)
            run = run_info(path)  # its date (the folder), how far it got, cancelled or stopped: all runs share a name
            in_use = "  (in use)" if str(path) == current else ""
            item = QListWidgetItem(run.label(size=False) + (f"  {ap}" if ap else "") + in_use)
            item.setData(Qt.ItemDataRole.UserRole, str(path))
            item.setData(RESUMABLE_ROLE, run.can_resume)
            tip = str(path) + (f"\nlast validation: {ap}" if ap else "\nno validation")
            item.setToolTip(tip + ("\nResume continues it where it stopped" if run.can_resume else ""))
            self.models.addItem(item)
            if str(path) == chosen:
                self.models.setCurrentItem(item)
        self.models.blockSignals(False)
        self._update_resume()

    def _update_resume(self) -> None:
        item = self.models.currentItem()
        self.resume_button.setEnabled(not self._running and item is not None and bool(item.data(RESUMABLE_ROLE)))

    def _on_resume(self) -> None:
        item = self.models.currentItem()
        if item is not None and item.data(RESUMABLE_ROLE) and not self._running:
            self.resume_requested.emit(item.data(Qt.ItemDataRole.UserRole))

    def _describe_start(self) -> None:
        self.start_note.setText(start_note(self.start_from.currentData(), self.current_weights))

    def _on_use(self) -> None:
        item = self.models.currentItem()
        if item is not None:
            self.model_chosen.emit(item.data(Qt.ItemDataRole.UserRole))
