"""The folder's images with their state: not run, predicted, annotated, reviewed, unreadable.

Bound to a Session (``bind``), it lists the project's images, marks the current one and repaints an
image's state when the Session says it changed; a row picked by the user is reported (``current_changed``)."""

from __future__ import annotations

from pathlib import Path

from PySide6.QtCore import Qt, Signal
from PySide6.QtGui import QBrush, QColor
from PySide6.QtWidgets import QLabel, QListWidget, QListWidgetItem, QVBoxLayout, QWidget

from gui.session.session import Session

STATE_TEXT = {
    "not_run": "not run",
    "predicted": "predicted",
    "annotated": "annotated",
    "reviewed": "reviewed",
    "error": "unreadable",
}
STATE_COLOR = {
    "not_run": QColor(140, 140, 140),
    "predicted": QColor(40, 120, 220),
    "annotated": QColor(30, 150, 60),
    "reviewed": QColor(20, 110, 40),
    "error": QColor(200, 40, 40),
}


class ImageList(QWidget):
    current_changed = Signal(int)  # row

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.summary = QLabel("No folder open")
        self.list = QListWidget()
        self.list.setUniformItemSizes(True)
        self.list.setTextElideMode(Qt.TextElideMode.ElideMiddle)  # long names keep their start and end
        self.list.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(4, 4, 4, 4)
        layout.addWidget(self.summary)
        layout.addWidget(self.list)
        self.list.currentRowChanged.connect(self.current_changed)
        self._states: list[str] = []

    def bind(self, session: Session) -> None:
        def opened(project) -> None:  # noqa: ANN001
            paths = project.paths if project is not None else []
            self.set_images(paths, [session.display_state(row) for row in range(len(paths))])

        session.events.project.connect(opened)
        session.events.image.connect(self.set_current)
        session.events.record.connect(lambda row: self.set_state(row, session.display_state(row)))

    def set_images(self, paths: list[str], states: list[str]) -> None:
        self.list.blockSignals(True)
        self.list.clear()
        self._states = list(states)
        for path, state in zip(paths, states):
            item = QListWidgetItem()
            item.setToolTip(path)
            item.setData(Qt.ItemDataRole.UserRole, path)
            self.list.addItem(item)
            self._paint(item, Path(path).name, state)
        self.list.blockSignals(False)
        self._update_summary()

    def set_state(self, row: int, state: str) -> None:
        item = self.list.item(row)
        if item is None:
            return
        self._states[row] = state
        self._paint(item, Path(item.data(Qt.ItemDataRole.UserRole)).name, state)
        self._update_summary()

    def state(self, row: int) -> str:
        return self._states[row]

    def _paint(self, item: QListWidgetItem, name: str, state: str) -> None:
        item.setText(f"[{STATE_TEXT.get(state, state)}]  {name}")
        item.setForeground(QBrush(STATE_COLOR.get(state, QColor(0, 0, 0))))

    def _update_summary(self) -> None:
        total = len(self._states)
        counts = {s: self._states.count(s) for s in ("predicted", "annotated", "reviewed")}
        self.summary.setText(
            f"{total} images: {counts['reviewed']} reviewed, {counts['annotated']} annotated, "
            f"{counts['predicted']} predicted"
        )

    def set_current(self, row: int) -> None:
        self.list.setCurrentRow(row)

    def current(self) -> int:
        return self.list.currentRow()

    def row_text(self, row: int) -> str:
        item = self.list.item(row)
        return item.text() if item else ""
