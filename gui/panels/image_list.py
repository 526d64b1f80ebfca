"""The folder's images with their state: not run, predicted, annotated, reviewed, unreadable.

Bound to a Session (``bind``), it lists the project's images, marks the current one and repaints an
image's state when the Session says it changed; a row picked by the user is reported as the image's index in
the project (``current_changed``). Where the model has run, a row also shows the image's figures (detections
shown, expected work and, with ground truth, the model's mask AP50: gui/review/figures.py), and the list can
be ordered by that work, most first (after Predict All), or back in file order."""

from __future__ import annotations

from pathlib import Path
from typing import Protocol

from PySide6.QtCore import Qt, Signal
from PySide6.QtGui import QBrush, QColor
from PySide6.QtWidgets import QCheckBox, QHBoxLayout, QLabel, QListWidget, QListWidgetItem, QVBoxLayout, QWidget

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
INDEX_ROLE = Qt.ItemDataRole.UserRole + 1  # the image's index in the project (rows may be sorted)


class ImageFigures(Protocol):
    """What a row shows besides the state (gui/review/figures.py makes them; a Protocol, so that the panel does
    not import the room that drives it)."""

    work: float

    def text(self) -> str: ...


class ImageList(QWidget):
    current_changed = Signal(int)  # the picked image's index in the project

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.summary = QLabel("No folder open")
        self.sort_check = QCheckBox("Most work first")
        self.sort_check.setToolTip(
            "Order the images by the corrections their predictions are expected to need (the sum of 1 - confidence "
            "over the detections shown), most first; unchecked: file order"
        )
        self.list = QListWidget()
        self.list.setUniformItemSizes(True)
        self.list.setTextElideMode(Qt.TextElideMode.ElideMiddle)  # long names keep their start and end
        self.list.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(4, 4, 4, 4)
        header = QHBoxLayout()
        header.addWidget(self.summary, 1)
        header.addWidget(self.sort_check)
        layout.addLayout(header)
        layout.addWidget(self.list)
        self.list.currentRowChanged.connect(self._on_row)
        self.sort_check.toggled.connect(lambda _on: self._order())
        self._states: list[str] = []
        self._paths: list[str] = []
        self._figures: dict[int, ImageFigures] = {}
        self._items: list[QListWidgetItem] = []  # by project index

    def bind(self, session: Session) -> None:
        def opened(project) -> None:  # noqa: ANN001
            paths = project.paths if project is not None else []
            self.set_images(paths, [session.display_state(row) for row in range(len(paths))])

        session.events.project.connect(opened)
        session.events.image.connect(self.set_current)
        session.events.record.connect(lambda row: self.set_state(row, session.display_state(row)))

    def set_images(self, paths: list[str], states: list[str]) -> None:
        self._states, self._paths, self._figures = list(states), list(paths), {}
        self._items = []
        self.list.blockSignals(True)
        self.list.clear()
        self.list.blockSignals(False)
        for index, path in enumerate(paths):
            item = QListWidgetItem()
            item.setToolTip(path)
            item.setData(Qt.ItemDataRole.UserRole, path)
            item.setData(INDEX_ROLE, index)
            self._items.append(item)
            self._paint(index)
        self.sort_check.blockSignals(True)
        self.sort_check.setChecked(False)  # a new folder opens in file order
        self.sort_check.blockSignals(False)
        self._order()
        self._update_summary()

    def set_state(self, index: int, state: str) -> None:
        if not 0 <= index < len(self._items):
            return
        self._states[index] = state
        self._paint(index)
        self._update_summary()

    def state(self, index: int) -> str:
        return self._states[index]

    # ----- figures and order -----
    def set_figures(self, index: int, figures: ImageFigures | None) -> None:
        """Image ``index``'s detections, expected work and AP50 (None: forget them); re-sorts when sorted."""
        if not 0 <= index < len(self._items):
            return
        if figures is None:
            self._figures.pop(index, None)
        else:
            self._figures[index] = figures
        self._paint(index)
        if self.sort_check.isChecked():
            self._order()

    def figures(self, index: int) -> ImageFigures | None:
        return self._figures.get(index)

    def sort_by_work(self, on: bool = True) -> None:
        self.sort_check.setChecked(on)

    def sorted_by_work(self) -> bool:
        return self.sort_check.isChecked()

    def order(self) -> list[int]:
        """Project indices in the order the rows show them."""
        return [self.list.item(r).data(INDEX_ROLE) for r in range(self.list.count())]

    def _order(self) -> None:
        """Rebuild the rows in file order, or by expected work (most first; images without figures after, in file
        order), keeping the current image current."""
        current = self.current_index()
        indices = list(range(len(self._items)))
        if self.sort_check.isChecked():
            known = sorted((i for i in indices if i in self._figures), key=lambda i: (-self._figures[i].work, i))
            indices = known + [i for i in indices if i not in self._figures]
        if indices == self.order():
            return
        self.list.blockSignals(True)
        while self.list.count():
            self.list.takeItem(0)  # the items are kept (``_items``): only their rows change
        for index in indices:
            self.list.addItem(self._items[index])
        if current >= 0:
            self.list.setCurrentRow(indices.index(current))
        self.list.blockSignals(False)

    # ----- drawing -----
    def _paint(self, index: int) -> None:
        item, state = self._items[index], self._states[index]
        text = f"[{STATE_TEXT.get(state, state)}]  {Path(self._paths[index]).name}"
        figures = self._figures.get(index)
        if figures is not None:
            text += f"   {figures.text()}"
        item.setText(text)
        item.setForeground(QBrush(STATE_COLOR.get(state, QColor(0, 0, 0))))

    def _update_summary(self) -> None:
        total = len(self._states)
        counts = {s: self._states.count(s) for s in ("predicted", "annotated", "reviewed")}
        self.summary.setText(
            f"{total} images: {counts['reviewed']} reviewed, {counts['annotated']} annotated, "
            f"{counts['predicted']} predicted"
        )

    # ----- current image -----
    def _on_row(self, row: int) -> None:
        item = self.list.item(row)
        if item is not None:
            self.current_changed.emit(int(item.data(INDEX_ROLE)))

    def set_current(self, index: int) -> None:
        if 0 <= index < len(self._items):
            self.list.setCurrentItem(self._items[index])

    def current_index(self) -> int:
        """The current image's index in the project (-1: none)."""
        item = self.list.currentItem()
        return int(item.data(INDEX_ROLE)) if item is not None else -1

    def current(self) -> int:
        return self.current_index()

    def row_text(self, row: int) -> str:
        """The text of the ``row``-th row as shown (in the list's current order)."""
        item = self.list.item(row)
        return item.text() if item else ""
