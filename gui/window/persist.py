"""Restoring and saving the window's persistent state: layout, thresholds, device, overlays, brush."""

from __future__ import annotations

from dataclasses import replace
from typing import Protocol

from PySide6.QtCore import Qt
from PySide6.QtWidgets import QDockWidget, QMainWindow

from engine.config import ModelConfig
from gui.canvas.view import Canvas
from gui.editing.editor import Editor
from gui.panels.controls import OverlayPanel, ThresholdPanel
from gui.panels.model_panel import ModelPanel
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


def restore(window: QMainWindow, parts: Persisted) -> None:
    settings = parts.settings
    geometry, state = settings.window_state()
    if geometry is not None:
        window.restoreGeometry(geometry)
    else:
        window.resize(1280, 800)
    if state is None or not window.restoreState(state):
        # first run: room for file names and the instance table on the left, the sliders on the right
        window.resizeDocks(parts.docks, [270, 270, 310], Qt.Orientation.Horizontal)
        window.resizeDocks(parts.docks[:2], [300, 400], Qt.Orientation.Vertical)
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


def save(window: QMainWindow, parts: Persisted) -> None:
    settings = parts.settings
    settings.save_window_state(window.saveGeometry(), window.saveState())
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
