"""Restoring and saving the window's persistent state: layout, thresholds, device, overlays, brush."""

from __future__ import annotations

from dataclasses import replace
from typing import TYPE_CHECKING

from PySide6.QtCore import Qt

from engine.config import ModelConfig

if TYPE_CHECKING:
    from gui.window.main_window import MainWindow


def restore(window: MainWindow) -> None:
    settings = window.settings
    geometry, state = settings.window_state()
    if geometry is not None:
        window.restoreGeometry(geometry)
    else:
        window.resize(1280, 800)
    if state is None or not window.restoreState(state):
        # first run: room for file names and the instance table on the left, the sliders on the right
        window.resizeDocks(window.docks, [270, 270, 310], Qt.Orientation.Horizontal)
        window.resizeDocks(window.docks[:2], [300, 400], Qt.Orientation.Vertical)
    defaults = ModelConfig()
    stored = settings.predict_settings()
    window.thresholds.set_settings(
        replace(
            stored,
            box_nms_iou=stored.box_nms_iou if stored.box_nms_iou is not None else defaults.box_nms_iou,
            rpn_nms_iou=stored.rpn_nms_iou if stored.rpn_nms_iou is not None else defaults.rpn_nms_iou,
            num_proposals=stored.num_proposals or defaults.rpn_post_nms_top_n_test,
            max_detections=stored.max_detections or defaults.detections_per_image,
        )
    )
    window.thresholds.sliders["proposals_shown"].set_value(settings.get("view/proposals_shown", 100, int))
    window.model_panel.set_device(settings.device)
    for name, check in window.overlays.checks.items():
        check.setChecked(settings.get(f"view/show_{name}", check.isChecked(), bool))
        window.canvas.set_layer_visible(name, check.isChecked())  # also when the box did not change
    window.overlays.opacity.setValue(settings.get("view/mask_opacity", window.overlays.opacity.value(), int))
    window.canvas.set_mask_opacity(window.overlays.opacity.value() / 100)
    window.editor.brush_radius = settings.get("edit/brush_radius", window.editor.brush_radius, int)
    window.editor.box_uses_model = settings.get("edit/box_uses_model", True, bool)


def save(window: MainWindow) -> None:
    settings = window.settings
    settings.save_window_state(window.saveGeometry(), window.saveState())
    settings.save_predict_settings(window.thresholds.settings())
    settings.set("view/proposals_shown", window.thresholds.proposals_shown())
    settings.device = window.model_panel.device_value()
    for name, check in window.overlays.checks.items():
        settings.set(f"view/show_{name}", check.isChecked())
    settings.set("view/mask_opacity", window.overlays.opacity.value())
    settings.set("edit/brush_radius", window.editor.brush_radius)
    settings.set("edit/box_uses_model", window.editor.box_uses_model)
    settings.sync()
