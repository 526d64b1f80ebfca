"""Dock panels of the main window: image list, instance list, thresholds/overlays, model."""
