"""Restoring and saving the window's persistent state: layout, thresholds, device, overlays, brush.

The layout is saved with a record of what it looked like (gui/window/layout.py) and restored only when that
record shows a sound layout that fits a screen of this machine; otherwise the window opens as on a first run
(fitting the screen, docks at their default sizes) and the broken layout is dropped from the settings.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Protocol

from PySide6.QtCore import QRect
from PySide6.QtWidgets import QDockWidget, QMainWindow

from engine.config import ModelConfig
from gui.canvas.view import Canvas
from gui.editing.editor import Editor
from gui.panels.controls import OverlayPanel, ThresholdPanel
from gui.panels.model_panel import ModelPanel
from gui.window import layout
from gui.window.settings import Settings
from gui.workers.inference_worker import ModelInfo


class Persisted(Protocol):
    """The parts of the window whose state is kept between runs (the main window is one)."""

    settings: Settings
    docks: list[QDockWidget]
    thresholds: ThresholdPanel
    model_panel: ModelPanel
    overlays: OverlayPanel
    canvas: Canvas
    editor: Editor
    keeper: layout.DockKeeper


def restore(window: QMainWindow, parts: Persisted) -> None:
    settings = parts.settings
    restore_layout(window, parts)
    defaults = ModelConfig()
    stored = settings.predict_settings()
    parts.thresholds.set_settings(
        replace(
            stored,
            box_nms_iou=stored.box_nms_iou if stored.box_nms_iou is not None else defaults.box_nms_iou,
            rpn_nms_iou=stored.rpn_nms_iou if stored.rpn_nms_iou is not None else defaults.rpn_nms_iou,
            num_proposals=stored.num_proposals or defaults.rpn_post_nms_top_n_test,
            max_detections=stored.max_detections or defaults.detections_per_image,
        )
    )
    parts.thresholds.sliders["proposals_shown"].set_value(settings.get("view/proposals_shown", 100, int))
    parts.model_panel.set_device(settings.device)
    for name, check in parts.overlays.checks.items():
        check.setChecked(settings.get(f"view/show_{name}", check.isChecked(), bool))
        parts.canvas.set_layer_visible(name, check.isChecked())  # also when the box did not change
    parts.overlays.opacity.setValue(settings.get("view/mask_opacity", parts.overlays.opacity.value(), int))
    parts.canvas.set_mask_opacity(parts.overlays.opacity.value() / 100)
    parts.editor.brush_radius = settings.get("edit/brush_radius", parts.editor.brush_radius, int)
    parts.editor.box_uses_model = settings.get("edit/box_uses_model", True, bool)


def restore_layout(window: QMainWindow, parts: Persisted) -> list[str]:
    """The saved geometry and dock layout when their record is sound and the window fits a screen here, else
    the first run's (and the saved one is forgotten). Returns what was wrong with the saved one ([]: none, or
    nothing saved)."""
    settings = parts.settings
    parts.keeper.watch()  # docks added since the keeper was made (the window is built by then)
    geometry, state = settings.window_state()
    if geometry is None and state is None:
        layout.place_first_window(window)
        layout.reset(window)
        return []
    record = layout.decode(settings.layout_record())
    found = layout.problems(record)
    frame = (record or {}).get("frame")
    if not found and not (isinstance(frame, list) and len(frame) == 4 and layout.on_some_screen(QRect(*frame), 8)):
        found.append("the window does not fit this screen")  # saved on a larger or another screen
    restored = geometry is not None and state is not None and not found
    if not (restored and window.restoreGeometry(geometry) and window.restoreState(state)):
        settings.forget_window_state()
        layout.place_first_window(window)
        layout.reset(window)
        return found or ["unreadable"]
    parts.keeper.load(record.get("keeper"), window.size())
    return []


def save(window: QMainWindow, parts: Persisted) -> None:
    settings = parts.settings
    record = layout.describe(window)
    frame = window.frameGeometry()
    record["frame"] = [frame.x(), frame.y(), frame.width(), frame.height()]
    record["keeper"] = parts.keeper.to_dict()
    settings.save_window_state(window.saveGeometry(), window.saveState(), layout.encode(record))
    settings.save_predict_settings(parts.thresholds.settings())
    settings.set("view/proposals_shown", parts.thresholds.proposals_shown())
    settings.device = parts.model_panel.device_value()
    for name, check in parts.overlays.checks.items():
        settings.set(f"view/show_{name}", check.isChecked())
    settings.set("view/mask_opacity", parts.overlays.opacity.value())
    settings.set("edit/brush_radius", parts.editor.brush_radius)
    settings.set("edit/box_uses_model", parts.editor.box_uses_model)
    settings.sync()


def model_loaded(parts: Persisted, info: ModelInfo) -> None:
    """Remember the model; the sliders the user never moved start at its own detection and proposal counts."""
    parts.settings.last_weights = info.path
    for name, value in (("max_detections", info.max_detections), ("num_proposals", info.num_proposals)):
        if not parts.settings.has(f"thresholds/{name}"):  # never chosen: the model's own
            parts.thresholds.sliders[name].set_value(value)
