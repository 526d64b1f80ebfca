"""Persistent settings (last folder, thresholds, device, window layout) through QSettings.

Also the scale the user set for each model file (``model_scale``), keyed by the file's path.

The location is, in order: the ``path`` given (tests pass a file in tmp_path), the environment
variable ``MASKRCNN_STUDIO_SETTINGS``, or the platform's per-user place for "MaskRCNNStudio/Studio".
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import asdict, fields
from pathlib import Path

from PySide6.QtCore import QByteArray, QSettings

from engine.structures import PredictSettings

ENV_VAR = "MASKRCNN_STUDIO_SETTINGS"
RECENT_LIMIT = 8


class Settings:
    """A typed face on QSettings; every getter has a default, so a fresh or damaged file is fine."""

    def __init__(self, path: str | Path | None = None) -> None:
        path = path or os.environ.get(ENV_VAR)
        if path:
            self.qsettings = QSettings(str(path), QSettings.Format.IniFormat)
        else:
            self.qsettings = QSettings(
                QSettings.Format.IniFormat, QSettings.Scope.UserScope, "MaskRCNNStudio", "Studio"
            )

    # ----- plain values -----
    def get(self, key: str, default, kind: type = str):  # noqa: ANN001, ANN201 - like QSettings.value
        value = self.qsettings.value(key, default)
        if value is None:
            return default
        try:
            if kind is bool:
                return value if isinstance(value, bool) else str(value).lower() in ("1", "true", "yes")
            return kind(value)
        except (TypeError, ValueError):
            return default

    def has(self, key: str) -> bool:
        return self.qsettings.contains(key)

    def set(self, key: str, value) -> None:  # noqa: ANN001
        self.qsettings.setValue(key, value)

    def sync(self) -> None:
        self.qsettings.sync()

    # ----- folders, weights, device -----
    @property
    def last_folder(self) -> str:
        return self.get("paths/last_folder", "")

    def remember_folder(self, folder: str | Path) -> None:
        folder = str(folder)
        self.set("paths/last_folder", folder)
        recent = [f for f in self.recent_folders() if f != folder]
        self.set("paths/recent_folders", [folder, *recent][:RECENT_LIMIT])

    def recent_folders(self) -> list[str]:
        value = self.qsettings.value("paths/recent_folders", [])
        if isinstance(value, str):
            value = [value]
        return [str(v) for v in (value or []) if v]

    # ----- the start-up guard (issue 15): a folder that crashed the app is not reopened without asking -----
    @property
    def opening(self) -> str:
        """The path being opened, set before reading it and cleared once its first image is shown: still
        set at start-up, it names what was being opened when the app last ended without clearing it
        (a crash, a kill)."""
        return self.get("paths/opening", "")

    def mark_opening(self, path: str | Path) -> None:
        self.set("paths/opening", str(path))
        self.sync()  # on disk before the reading starts: a segfault there must find it

    def clear_opening(self) -> None:
        if self.has("paths/opening"):
            self.qsettings.remove("paths/opening")
            self.sync()

    @property
    def last_weights(self) -> str:
        return self.get("paths/last_weights", "")

    @last_weights.setter
    def last_weights(self, path: str) -> None:
        self.set("paths/last_weights", str(path))

    @property
    def device(self) -> str:
        value = self.get("model/device", "auto")
        return value if value in ("auto", "cuda", "cpu") else "auto"

    @device.setter
    def device(self, value: str) -> None:
        self.set("model/device", value)

    # ----- the user's scale per model file (issue 12) -----
    @staticmethod
    def _scale_key(path: str | Path) -> str:
        return "model_scale/" + hashlib.sha1(str(path).encode()).hexdigest()[:16]

    def model_scale(self, path: str | Path) -> float | None:
        """The object size (px) the user set for model file ``path`` (pixel scale), None for the model's own scale."""
        size = self.get(self._scale_key(path), 0.0, float)
        return size if 1.0 <= size <= 5000.0 else None

    def remember_model_scale(self, path: str | Path, object_size: float | None) -> None:
        key = self._scale_key(path)
        if object_size is None:
            self.qsettings.remove(key)
        else:
            self.set(key, float(object_size))

    # ----- thresholds -----
    def predict_settings(self) -> PredictSettings:
        defaults = PredictSettings()
        values = {}
        for f in fields(PredictSettings):
            default = getattr(defaults, f.name)
            kind = int if f.name in ("num_proposals", "max_detections") else float
            stored = self.qsettings.value(f"thresholds/{f.name}", None)
            try:
                values[f.name] = default if stored in (None, "", "None") else kind(stored)
            except (TypeError, ValueError):
                values[f.name] = default
        return PredictSettings(**values)

    def save_predict_settings(self, settings: PredictSettings) -> None:
        for name, value in asdict(settings).items():
            self.set(f"thresholds/{name}", "None" if value is None else value)

    # ----- window layout -----
    def window_state(self) -> tuple[QByteArray | None, QByteArray | None]:
        geometry = self.qsettings.value("window/geometry")
        state = self.qsettings.value("window/state")
        return (
            geometry if isinstance(geometry, QByteArray) else None,
            state if isinstance(state, QByteArray) else None,
        )

    def layout_record(self) -> str:
        """What the saved layout looked like (gui/window/layout.py's ``describe``, as JSON); "" when none."""
        return self.get("window/layout", "")

    def save_window_state(self, geometry: QByteArray, state: QByteArray, record: str = "") -> None:
        self.set("window/geometry", geometry)
        self.set("window/state", state)
        self.set("window/layout", record)

    def forget_window_state(self, geometry: bool = True) -> None:
        """A saved layout found broken is dropped (and its geometry, unless ``geometry`` is False)."""
        keys = ("window/state", "window/layout") + (("window/geometry",) if geometry else ())
        for key in keys:
            self.qsettings.remove(key)
