"""Mask R-CNN Studio's desktop app: PySide6 + pyqtgraph on top of ``engine/`` (which never imports Qt)."""
