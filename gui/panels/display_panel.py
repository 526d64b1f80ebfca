"""The Display panel: how bright the image is shown (auto contrast on by default, or min / max / gamma by hand,
as Cellpose's); it changes what is shown only, never the pixels the model is given (gui/canvas/levels.py).

The choice is kept globally (QSettings), not per project: it is the viewer's preference for the screen and the
kind of images looked at, the same reason an image viewer keeps it; the project's annotation file is data
shared with others and holds none of it. With auto on, each image gets its own stretch, so a global setting
fits every folder; the hand-set min / max are in the 0-255 values of the image as loaded.
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np
from PySide6.QtCore import Signal
from PySide6.QtWidgets import (
    QCheckBox,
    QDoubleSpinBox,
    QGridLayout,
    QGroupBox,
    QLabel,
    QPushButton,
    QSpinBox,
)

from gui.canvas import levels
from gui.canvas.levels import Levels
from gui.panels.wheel_guard import guard_wheel

KEYS = {"auto": bool, "minimum": float, "maximum": float, "gamma": float}  # settings "display/<name>"


class DisplayPanel(QGroupBox):
    """Auto contrast, min, max, gamma, Reset. ``display_pixels`` is what the canvas shows an image through;
    ``changed`` asks the canvas to show the same image again."""

    changed = Signal()

    def __init__(self, settings=None, parent=None) -> None:  # noqa: ANN001 - gui.window.settings.Settings-like
        super().__init__("Display", parent)
        self.settings = settings
        self.levels = self._restored()
        self.shown = (0.0, 255.0)  # the range the image on screen was shown with
        low, high = levels.AUTO_PERCENTILES
        self.auto_check = QCheckBox(f"Auto contrast ({low:g}–{high:g} %)")
        self.auto_check.setToolTip(
            "Stretch each image between its 1st and 99.8th percentile for display (dim or 16-bit images);"
            " the model always gets the image as loaded"
        )
        self.minimum = QSpinBox()
        self.maximum = QSpinBox()
        for box, tip in ((self.minimum, "shown black"), (self.maximum, "shown white")):
            box.setRange(0, 255)
            box.setToolTip(f"Image values at or {'below' if box is self.minimum else 'above'} this are {tip}")
        self.gamma = QDoubleSpinBox()
        self.gamma.setRange(0.1, 5.0)
        self.gamma.setSingleStep(0.1)
        self.gamma.setDecimals(2)
        self.gamma.setToolTip("Below 1 brightens the midtones, above 1 darkens them")
        for box in (self.minimum, self.maximum, self.gamma):
            box.setKeyboardTracking(False)  # typed digits apply on Enter: "200" is one redraw, not three
        self.reset_button = QPushButton("Reset")
        self.reset_button.setToolTip("Auto contrast on, gamma 1")
        grid = QGridLayout(self)
        grid.addWidget(self.auto_check, 0, 0, 1, 4)
        grid.addWidget(QLabel("Min"), 1, 0)
        grid.addWidget(self.minimum, 1, 1)
        grid.addWidget(QLabel("Max"), 1, 2)
        grid.addWidget(self.maximum, 1, 3)
        grid.addWidget(QLabel("Gamma"), 2, 0)
        grid.addWidget(self.gamma, 2, 1)
        grid.addWidget(self.reset_button, 2, 3)
        self._show_levels()
        self.auto_check.toggled.connect(lambda on: self.set_levels(replace(self.levels, auto=on)))
        # a hand-set min or max is a manual choice: auto contrast goes off, as in Cellpose
        self.minimum.valueChanged.connect(lambda v: self._set_range(minimum=float(v)))
        self.maximum.valueChanged.connect(lambda v: self._set_range(maximum=float(v)))
        self.gamma.valueChanged.connect(lambda v: self.set_levels(replace(self.levels, gamma=float(v))))
        self.reset_button.clicked.connect(lambda: self.set_levels(Levels()))
        guard_wheel(self)

    # ----- what the canvas asks -----
    def display_pixels(self, image: np.ndarray) -> np.ndarray:
        """The pixels to show for ``image`` (uint8 as loaded); with auto on, the boxes show its range."""
        low, high = levels.shown_range(image, self.levels)
        self.shown = (low, high)
        if self.levels.auto:
            self._show_range(low, high)
        return levels.stretch(image, low, high, self.levels.gamma)

    def table_for(self, image: np.ndarray) -> np.ndarray | None:
        """The 256-entry table ``display_pixels`` would apply to ``image`` (None: it shows it as it is). For a
        caller that draws only part of a huge image at screen resolution: the range comes from the whole
        image's subsample, the lookup (``levels.apply_table``) then costs only the part drawn."""
        low, high = levels.shown_range(image, self.levels)
        self.shown = (low, high)
        if self.levels.auto:
            self._show_range(low, high)
        table = levels.lookup_table(low, high, self.levels.gamma)
        return None if levels.invisible(table) else table

    # ----- changing -----
    def set_levels(self, value: Levels) -> None:
        if value == self.levels:
            return
        self.levels = value
        self._show_levels()
        self._save()
        self.changed.emit()

    def _set_range(self, minimum: float | None = None, maximum: float | None = None) -> None:
        low = self.shown[0] if minimum is None else minimum
        high = self.shown[1] if maximum is None else maximum
        if high <= low:  # keep a usable range: the other end gives way
            if minimum is not None:
                high = min(255.0, low + 1.0)
            else:
                low = max(0.0, high - 1.0)
        self.set_levels(replace(self.levels, auto=False, minimum=low, maximum=high))

    def _show_levels(self) -> None:
        value = self.levels
        for widget, setter, v in (
            (self.auto_check, self.auto_check.setChecked, value.auto),
            (self.gamma, self.gamma.setValue, value.gamma),
        ):
            widget.blockSignals(True)
            setter(v)
            widget.blockSignals(False)
        if not value.auto:
            self._show_range(value.minimum, value.maximum)

    def _show_range(self, low: float, high: float) -> None:
        for box, v in ((self.minimum, low), (self.maximum, high)):
            box.blockSignals(True)
            box.setValue(int(round(v)))
            box.blockSignals(False)

    # ----- kept between runs -----
    def _restored(self) -> Levels:
        if self.settings is None:
            return Levels()
        default = Levels()
        values = {
            name: self.settings.get(f"display/{name}", getattr(default, name), kind) for name, kind in KEYS.items()
        }
        values["minimum"] = min(max(values["minimum"], 0.0), 254.0)
        values["maximum"] = min(max(values["maximum"], values["minimum"] + 1.0), 255.0)
        values["gamma"] = min(max(values["gamma"], 0.1), 5.0)
        return Levels(**values)

    def _save(self) -> None:
        if self.settings is not None:
            for name in KEYS:
                self.settings.set(f"display/{name}", getattr(self.levels, name))
