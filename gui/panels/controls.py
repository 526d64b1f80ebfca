"""Sliders for the thresholds and toggles for the overlay layers.

Every slider emits on each move (``tracking``): the main window hands the newest settings to the
inference client, whose mailbox keeps only the latest, so moving fast never queues requests.
"""

from __future__ import annotations

from dataclasses import dataclass

from engine.structures import PredictSettings
from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import QCheckBox, QFormLayout, QGroupBox, QHBoxLayout, QLabel, QSlider, QVBoxLayout, QWidget


@dataclass(frozen=True)
class SliderSpec:
    name: str  # PredictSettings field, or a display-only name
    label: str
    minimum: int
    maximum: int
    scale: float  # value = position * scale
    tip: str


SLIDERS = (
    SliderSpec("score_threshold", "Score threshold", 0, 100, 0.01, "Detections scoring at or below this are hidden"),
    SliderSpec("box_nms_iou", "Box NMS IoU", 5, 100, 0.01, "Boxes of one class overlapping more than this are merged"),
    SliderSpec("rpn_nms_iou", "RPN NMS IoU", 10, 100, 0.01, "Overlap at which the RPN drops a weaker proposal"),
    SliderSpec("num_proposals", "Proposals kept", 10, 2000, 1, "Proposals the RPN keeps for the box head"),
    SliderSpec("proposals_shown", "Proposals drawn", 0, 1000, 1, "How many of the best proposals to draw"),
    SliderSpec("mask_threshold", "Mask threshold", 5, 95, 0.01, "Mask probability a pixel needs to belong"),
    SliderSpec("max_detections", "Max detections", 1, 1000, 1, "The best this many detections are kept"),
)
PREDICT_FIELDS = ("score_threshold", "box_nms_iou", "rpn_nms_iou", "num_proposals", "mask_threshold", "max_detections")


class LabeledSlider(QWidget):
    value_changed = Signal(float)

    def __init__(self, spec: SliderSpec, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.spec = spec
        self.slider = QSlider(Qt.Orientation.Horizontal)
        self.slider.setObjectName(spec.name)
        self.slider.setRange(spec.minimum, spec.maximum)
        self.slider.setToolTip(spec.tip)
        self.slider.setPageStep(max(1, (spec.maximum - spec.minimum) // 20))
        self.readout = QLabel()
        self.readout.setMinimumWidth(40)
        self.readout.setAlignment(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
        layout = QHBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(self.slider, 1)
        layout.addWidget(self.readout)
        self.slider.valueChanged.connect(self._on_moved)
        self._on_moved(self.slider.value(), emit=False)

    def value(self) -> float:
        return self.slider.value() * self.spec.scale

    def set_value(self, value: float, emit: bool = True) -> None:
        position = round(value / self.spec.scale)
        self.slider.blockSignals(not emit)
        self.slider.setValue(max(self.spec.minimum, min(self.spec.maximum, position)))
        self.slider.blockSignals(False)
        self._on_moved(self.slider.value(), emit=False)

    def _on_moved(self, position: int, emit: bool = True) -> None:
        value = position * self.spec.scale
        self.readout.setText(f"{value:.2f}" if self.spec.scale < 1 else str(int(value)))
        if emit:
            self.value_changed.emit(value)


class ThresholdPanel(QGroupBox):
    """The sliders; ``settings()`` reads them as PredictSettings."""

    settings_changed = Signal()
    proposals_shown_changed = Signal(int)

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__("Thresholds", parent)
        form = QFormLayout(self)
        form.setContentsMargins(6, 6, 6, 6)
        self.sliders: dict[str, LabeledSlider] = {}
        for spec in SLIDERS:
            slider = LabeledSlider(spec)
            form.addRow(spec.label, slider)
            self.sliders[spec.name] = slider
            if spec.name == "proposals_shown":
                slider.value_changed.connect(lambda v: self.proposals_shown_changed.emit(int(v)))
            else:
                slider.value_changed.connect(lambda _v: self.settings_changed.emit())

    def settings(self) -> PredictSettings:
        values = {name: self.sliders[name].value() for name in PREDICT_FIELDS}
        values["num_proposals"] = int(values["num_proposals"])
        values["max_detections"] = int(values["max_detections"])
        return PredictSettings(**values)

    def set_settings(self, settings: PredictSettings) -> None:
        """Move the sliders without emitting (``None`` fields must be resolved first)."""
        for name in PREDICT_FIELDS:
            value = getattr(settings, name)
            if value is not None:
                self.sliders[name].set_value(value, emit=False)

    def proposals_shown(self) -> int:
        return int(self.sliders["proposals_shown"].value())


class OverlayPanel(QGroupBox):
    """A checkbox per layer and the mask opacity."""

    layer_toggled = Signal(str, bool)
    opacity_changed = Signal(float)
    TOGGLES = (
        ("masks", "Masks"),
        ("outlines", "Mask outlines"),
        ("boxes", "Boxes and labels"),
        ("proposals", "RPN proposals"),
        ("annotations", "Annotations"),
    )

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__("Overlays", parent)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(6, 6, 6, 6)
        self.checks: dict[str, QCheckBox] = {}
        for name, text in self.TOGGLES:
            check = QCheckBox(text)
            check.setObjectName(f"show_{name}")
            check.setChecked(name != "proposals")
            check.toggled.connect(lambda on, n=name: self.layer_toggled.emit(n, on))
            layout.addWidget(check)
            self.checks[name] = check
        self.hide_matched_check = QCheckBox("Hide predictions matching an annotation")
        self.hide_matched_check.setObjectName("hide_matched")
        self.hide_matched_check.setToolTip("Accepted, drawn or rejected masks hide the predictions they match")
        self.hide_matched_check.setChecked(True)
        layout.addWidget(self.hide_matched_check)
        row = QHBoxLayout()
        row.addWidget(QLabel("Mask opacity"))
        self.opacity = QSlider(Qt.Orientation.Horizontal)
        self.opacity.setObjectName("mask_opacity")
        self.opacity.setRange(0, 100)
        self.opacity.setValue(45)
        self.opacity.valueChanged.connect(lambda v: self.opacity_changed.emit(v / 100))
        row.addWidget(self.opacity, 1)
        layout.addLayout(row)

    def hide_matched(self) -> bool:
        return self.hide_matched_check.isChecked()
