"""The model: which weights, on which device, and 'Predict all' with its progress and Cancel."""

from __future__ import annotations

from pathlib import Path

from PySide6.QtCore import Signal
from PySide6.QtWidgets import (
    QComboBox,
    QGroupBox,
    QHBoxLayout,
    QLabel,
    QProgressBar,
    QPushButton,
    QVBoxLayout,
    QWidget,
)

from gui.panels.wheel_guard import guard_wheel
from gui.session.session import Session

DEVICES = (("Auto", "auto"), ("CUDA", "cuda"), ("CPU", "cpu"))


class ModelPanel(QGroupBox):
    open_requested = Signal()
    device_changed = Signal(str)
    predict_all_requested = Signal()
    cancel_requested = Signal()

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__("Model", parent)
        self.name = QLabel("No model")
        self.name.setWordWrap(True)
        self.detail = QLabel("")
        self.detail.setWordWrap(True)
        self.open_button = QPushButton("Open weights…")
        self.device = QComboBox()
        for text, value in DEVICES:
            self.device.addItem(text, value)
        self.predict_all = QPushButton("Predict all")
        self.cancel = QPushButton("Cancel")
        self.cancel.setEnabled(False)
        self.progress = QProgressBar()
        self.progress.setVisible(False)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(6, 6, 6, 6)
        layout.addWidget(self.name)
        layout.addWidget(self.detail)
        row = QHBoxLayout()
        row.addWidget(self.open_button)
        row.addWidget(QLabel("Device"))
        row.addWidget(self.device)
        layout.addLayout(row)
        row = QHBoxLayout()
        row.addWidget(self.predict_all)
        row.addWidget(self.cancel)
        layout.addLayout(row)
        layout.addWidget(self.progress)
        guard_wheel(self)  # in the scrolling Controls dock: the wheel scrolls it unless the combo has focus
        self.open_button.clicked.connect(self.open_requested)
        self.device.currentIndexChanged.connect(lambda _i: self.device_changed.emit(self.device_value()))
        self.predict_all.clicked.connect(self.predict_all_requested)
        self.cancel.clicked.connect(self.cancel_requested)

    def bind(self, session: Session) -> None:
        """Show the Session's model reference and what it is (or "loading…")."""
        session.events.model.connect(lambda path: self.set_model(path, session.model_description))

    def device_value(self) -> str:
        return self.device.currentData()

    def set_device(self, value: str) -> None:
        index = self.device.findData(value)
        self.device.blockSignals(True)
        self.device.setCurrentIndex(max(index, 0))
        self.device.blockSignals(False)

    def set_model(self, path: str, detail: str) -> None:
        self.name.setText(Path(path).name if path else "No model")
        self.name.setToolTip(path)
        self.detail.setText(detail)

    def set_batch(self, running: bool, done: int = 0, total: int = 0) -> None:
        self.predict_all.setEnabled(not running)
        self.cancel.setEnabled(running)
        self.progress.setVisible(running or done > 0)
        self.progress.setRange(0, max(total, 1))
        self.progress.setValue(done)
        self.progress.setFormat(f"{done} / {total}")
