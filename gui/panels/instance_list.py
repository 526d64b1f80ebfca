"""The detections shown on the image: class, score, area; filtered by class; the selected one highlighted.

Bound to a Session (``bind``), it lists the predictions shown and selects the Session's selected row; a
row picked by the user is only reported (``selected``): the Session holds the selection."""

from __future__ import annotations

from collections.abc import Sequence

from PySide6.QtCore import Qt, Signal
from PySide6.QtGui import QColor, QPixmap
from PySide6.QtWidgets import (
    QAbstractItemView,
    QComboBox,
    QHeaderView,
    QLabel,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
    QWidget,
)

from gui.canvas.overlay import instance_color
from gui.panels.wheel_guard import guard_wheel
from gui.session.session import Session

ALL_CLASSES = "All classes"


class InstanceList(QWidget):
    selected = Signal(int)  # instance index among those shown, -1 for none
    filter_changed = Signal(str)  # class name, or "" for all

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.class_filter = QComboBox()
        self.class_filter.addItem(ALL_CLASSES)
        self.summary = QLabel("")
        self.table = QTableWidget(0, 3)
        self.table.setHorizontalHeaderLabels(["class", "score", "area"])
        self.table.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.table.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
        self.table.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.table.verticalHeader().setDefaultSectionSize(20)
        self.table.verticalHeader().hide()
        header = self.table.horizontalHeader()
        header.setSectionResizeMode(0, QHeaderView.ResizeMode.Stretch)
        header.setSectionResizeMode(1, QHeaderView.ResizeMode.ResizeToContents)
        header.setSectionResizeMode(2, QHeaderView.ResizeMode.ResizeToContents)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(4, 4, 4, 4)
        layout.addWidget(self.class_filter)
        layout.addWidget(self.summary)
        layout.addWidget(self.table)
        self.table.itemSelectionChanged.connect(self._on_selection)
        self.class_filter.currentTextChanged.connect(self._on_filter)
        guard_wheel(self)

    def bind(self, session: Session) -> None:
        """List the Session's shown predictions, select its selected one; a row the user picks selects it."""
        self.selected.connect(lambda row: session.select((), row))  # a prediction, or none
        session.events.shown.connect(lambda _shown: self.show_prediction(session))
        session.events.selection.connect(lambda selection: self.select(selection.prediction))

        def classes(*_args: object) -> None:  # the model's, else (no model yet) the project's
            project_names = session.project.category_names() if session.project else []
            self.set_classes(session.class_names or project_names)

        session.events.project.connect(classes)
        session.events.model.connect(classes)

    def show_prediction(self, session: Session) -> None:
        """The Session's shown predictions, one row each (class, score, area, colour swatch)."""
        pred = session.prediction
        if pred is None:
            self.set_instances([], 0)
            return
        rows = [
            (session.class_name(int(pred.labels[i])), float(pred.scores[i]), pred.masks[i].area,
             instance_color(int(pred.keys[i])))
            for i in session.shown
        ]  # fmt: skip
        self.set_instances(rows, len(pred))

    def set_classes(self, names: Sequence[str]) -> None:
        """The class names a filter can pick (the model's), keeping the current choice when possible."""
        current = self.class_filter.currentText()
        self.class_filter.blockSignals(True)
        self.class_filter.clear()
        self.class_filter.addItem(ALL_CLASSES)
        self.class_filter.addItems([n for n in dict.fromkeys(names) if n != "N/A"])
        index = self.class_filter.findText(current)
        self.class_filter.setCurrentIndex(max(index, 0))
        self.class_filter.blockSignals(False)
        if index < 0 and current != ALL_CLASSES:
            self.filter_changed.emit("")

    def current_filter(self) -> str:
        text = self.class_filter.currentText()
        return "" if text == ALL_CLASSES else text

    def set_instances(self, rows: Sequence[tuple[str, float | None, int, tuple[int, int, int]]], total: int) -> None:
        """rows: (class name, score or None, area in pixels, RGB colour) per shown instance."""
        self.table.blockSignals(True)
        self.table.setRowCount(len(rows))
        for r, (name, score, area, color) in enumerate(rows):
            swatch = QPixmap(10, 10)
            swatch.fill(QColor(*color))
            name_item = QTableWidgetItem(name)
            name_item.setIcon(swatch)
            score_item = QTableWidgetItem("" if score is None else f"{score:.3f}")
            area_item = QTableWidgetItem(str(area))
            for item in (score_item, area_item):
                item.setTextAlignment(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
            self.table.setItem(r, 0, name_item)
            self.table.setItem(r, 1, score_item)
            self.table.setItem(r, 2, area_item)
        self.table.clearSelection()
        self.table.blockSignals(False)
        hidden = total - len(rows)
        self.summary.setText(f"{len(rows)} instances" + (f" ({hidden} hidden by the filter)" if hidden else ""))

    def select(self, index: int) -> None:
        self.table.blockSignals(True)
        if 0 <= index < self.table.rowCount():
            self.table.selectRow(index)
            self.table.scrollToItem(self.table.item(index, 0))
        else:
            self.table.clearSelection()
        self.table.blockSignals(False)

    def row_count(self) -> int:
        return self.table.rowCount()

    def row(self, r: int) -> tuple[str, str, str]:
        return tuple(self.table.item(r, c).text() for c in range(3))

    def _on_selection(self) -> None:
        rows = self.table.selectionModel().selectedRows()
        self.selected.emit(rows[0].row() if rows else -1)

    def _on_filter(self, text: str) -> None:
        self.filter_changed.emit("" if text == ALL_CLASSES else text)
