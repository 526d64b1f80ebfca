"""The project's classes: pick the one to draw with (or to relabel the selection), add, rename, recolour,
delete (with its instances, or moving them to another class: asked when it has any).

Row k (1..9) is also what digit key k picks. Changes go through the Editor, so they can be undone.
"""

from __future__ import annotations

from collections.abc import Sequence

from PySide6.QtCore import Qt, Signal
from PySide6.QtGui import QAction, QColor, QPixmap
from PySide6.QtWidgets import (
    QColorDialog,
    QGridLayout,
    QInputDialog,
    QListWidget,
    QListWidgetItem,
    QMessageBox,
    QPushButton,
    QVBoxLayout,
    QWidget,
)

from engine.data import Category
from gui.editing.editor import Editor

NAME_ROLE = Qt.ItemDataRole.UserRole + 1  # a row's class name (its text starts with the digit key)


class ClassList(QWidget):
    chosen = Signal(int)  # category id picked by the user
    add_requested = Signal(str)
    rename_requested = Signal(int, str)
    recolor_requested = Signal(int, object)  # id, (r, g, b)
    delete_requested = Signal(int, object)  # id, the class its instances move to (None: deleted with it)

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.list = QListWidget()
        self.list.setObjectName("classList")
        self.add_button = QPushButton("Add…")
        self.rename_button = QPushButton("Rename…")
        self.color_button = QPushButton("Colour…")
        self.delete_button = QPushButton("Delete…")
        for button, tip in (
            (self.add_button, "Add a class"),
            (self.rename_button, "Rename the chosen class"),
            (self.color_button, "Change the chosen class's colour"),
            (self.delete_button, "Delete the chosen class (with its instances, or moving them to another class)"),
        ):
            button.setToolTip(tip)
        # two rows of two: in one row the dock's width at 1280x800 (~230 px) hid Colour… and Delete… off to the right
        buttons = QGridLayout()
        for k, button in enumerate((self.add_button, self.rename_button, self.color_button, self.delete_button)):
            buttons.addWidget(button, k // 2, k % 2)
        for text, slot in (("Rename…", self.ask_rename), ("Colour…", self.ask_color), ("Delete…", self.ask_delete)):
            action = QAction(text, self.list)
            action.triggered.connect(slot)
            self.list.addAction(action)  # the list's context menu
        self.list.setContextMenuPolicy(Qt.ContextMenuPolicy.ActionsContextMenu)
        self.usage = lambda _category_id: (0, 0)  # (instances, images) of a class: the Editor's, once bound
        layout = QVBoxLayout(self)
        layout.setContentsMargins(4, 4, 4, 4)
        layout.addWidget(self.list)
        layout.addLayout(buttons)
        self.list.currentItemChanged.connect(self._on_current)
        self.add_button.clicked.connect(self.ask_add)
        self.rename_button.clicked.connect(self.ask_rename)
        self.color_button.clicked.connect(self.ask_color)
        self.delete_button.clicked.connect(self.ask_delete)

    def bind(self, editor: Editor) -> None:
        """Show the Editor's classes and the one it draws with; what the user does here goes through it."""
        editor.categories_changed.connect(lambda: self.set_categories(editor.categories(), editor.category_id))
        self.chosen.connect(editor.set_category)  # relabels the selection, as digit keys do
        self.add_requested.connect(editor.add_category)
        self.rename_requested.connect(lambda cid, name: editor.edit_category(cid, name=name))
        self.recolor_requested.connect(lambda cid, color: editor.edit_category(cid, color=color))
        self.delete_requested.connect(editor.delete_category)
        self.usage = editor.category_usage

    def set_categories(self, categories: Sequence[Category], current: int | None) -> None:
        self.list.blockSignals(True)
        self.list.clear()
        for number, category in enumerate(categories, start=1):
            swatch = QPixmap(12, 12)
            swatch.fill(QColor(*category.color))
            key = f"{number}  " if number <= 9 else "   "
            item = QListWidgetItem(swatch, f"{key}{category.name}")
            item.setData(Qt.ItemDataRole.UserRole, category.id)
            item.setData(NAME_ROLE, category.name)
            item.setToolTip(f"class id {category.id}" + (f"; key {number}" if number <= 9 else ""))
            self.list.addItem(item)
            if category.id == current:
                self.list.setCurrentItem(item)
        self.list.blockSignals(False)
        has = self.list.count() > 0
        self.rename_button.setEnabled(has)
        self.color_button.setEnabled(has)
        self.delete_button.setEnabled(has)

    def current_id(self) -> int | None:
        item = self.list.currentItem()
        return None if item is None else int(item.data(Qt.ItemDataRole.UserRole))

    def names(self) -> list[str]:
        return [self.list.item(r).text().split(maxsplit=1)[-1] for r in range(self.list.count())]

    def _on_current(self, item: QListWidgetItem | None, _previous: QListWidgetItem | None) -> None:
        if item is not None:
            self.chosen.emit(int(item.data(Qt.ItemDataRole.UserRole)))

    def ask_add(self) -> None:
        name, ok = QInputDialog.getText(self, "Add a class", "Name of the new class:")
        if ok and name.strip():
            self.add_requested.emit(name.strip())

    def ask_rename(self) -> None:
        category_id, item = self.current_id(), self.list.currentItem()
        if category_id is None:
            return
        old = item.text().split(maxsplit=1)[-1]
        name, ok = QInputDialog.getText(self, "Rename the class", "New name:", text=old)
        if ok and name.strip():
            self.rename_requested.emit(category_id, name.strip())

    def ask_color(self) -> None:
        category_id, item = self.current_id(), self.list.currentItem()
        if category_id is None:
            return
        start = item.icon().pixmap(12, 12).toImage().pixelColor(6, 6)
        color = QColorDialog.getColor(start, self, "Class colour")
        if color.isValid():
            self.recolor_requested.emit(category_id, (color.red(), color.green(), color.blue()))

    def ask_delete(self) -> None:
        """Delete the chosen class; when it has instances, ask whether they go too or move to another class."""
        category_id, item = self.current_id(), self.list.currentItem()
        if category_id is None:
            return
        name = item.data(NAME_ROLE)
        count, images = self.usage(category_id)
        if not count:
            self.delete_requested.emit(category_id, None)
            return
        others = [
            (self.list.item(r).data(NAME_ROLE), int(self.list.item(r).data(Qt.ItemDataRole.UserRole)))
            for r in range(self.list.count())
            if self.list.item(r) is not item
        ]
        choice = ask_delete_choice(self, name, count, images, others)
        if choice is not None:
            self.delete_requested.emit(category_id, choice[1])


def ask_delete_choice(
    parent: QWidget, name: str, count: int, images: int, others: list[tuple[str, int]]
) -> tuple[str, int | None] | None:
    """Ask what becomes of the instances of class ``name`` when it is deleted: ("delete", None) they go with
    it, ("move", id) they move to the class ``id`` of ``others`` ((name, id) pairs), None: cancel."""
    box = QMessageBox(parent)
    box.setIcon(QMessageBox.Icon.Question)
    box.setWindowTitle("Delete a class")
    box.setText(f"The class {name} has {count} instances on {images} images.")
    box.setInformativeText("Delete them with the class, or keep them under another class? (Ctrl+Z undoes either.)")
    delete = box.addButton(f"Delete the {count} instances", QMessageBox.ButtonRole.DestructiveRole)
    move = box.addButton("Move them to…", QMessageBox.ButtonRole.AcceptRole) if others else None
    box.addButton(QMessageBox.StandardButton.Cancel)
    box.exec()
    if box.clickedButton() is delete:
        return "delete", None
    if move is not None and box.clickedButton() is move:
        names = [n for n, _ in others]
        label = f"Move the instances of {name} to:"
        target, ok = QInputDialog.getItem(parent, "Move the instances", label, names, 0, False)
        if ok and target in names:
            return "move", others[names.index(target)][1]
    return None
