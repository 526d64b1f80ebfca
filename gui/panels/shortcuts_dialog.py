"""Help > Shortcuts: every menu action with its keys, then the mouse gestures and the tools' keys.

The menu part is read from the actions themselves, so the list cannot go stale."""

from __future__ import annotations

from PySide6.QtGui import QAction, QKeySequence
from PySide6.QtWidgets import QDialog, QDialogButtonBox, QHeaderView, QMenu, QTableWidget, QTableWidgetItem, QVBoxLayout

GESTURES = (
    ("Canvas", "Ctrl+wheel", "Zoom about the cursor"),
    ("Canvas", "Wheel / Shift+wheel", "Scroll up-down / sideways"),
    ("Canvas", "Drag (edit mode) / middle drag", "Pan"),
    ("Edit mode", "Click / Ctrl+click", "Select a mask or a prediction / add a mask to the selection"),
    ("Edit mode", "Drag a vertex", "Move it (polygon masks)"),
    ("Edit mode", "Click an edge / Shift+click a vertex", "Insert / delete a vertex"),
    ("Edit mode", "Esc", "Clear the selection"),
    ("Vertex mode", "V (a mask selected)", "Its outline and holes as vertex handles (V, Esc, Enter leave)"),
    ("Vertex mode", "Drag a vertex", "Move it (any mask; holes are the dashed orange rings)"),
    ("Vertex mode", "Double-click / Alt+click an edge", "Insert a vertex there"),
    ("Vertex mode", "Right-click a vertex / Delete over it", "Delete the vertex"),
    ("Polygon", "Click / click the first vertex or Enter", "Add a vertex / close the polygon"),
    ("Polygon", "Backspace / Esc", "Remove the last vertex / drop the polygon"),
    ("Brush, eraser", "Drag or click", "Paint / erase (Esc: the next stroke starts a new mask)"),
    ("Box, cut line", "Drag", "Draw the box / the cutting line"),
)


def menu_shortcuts(window) -> list[tuple[str, str, str]]:  # noqa: ANN001
    """(menu, keys, action) for every action in the menu bar that has a shortcut."""
    rows = []

    def visit(menu: QMenu, path: str) -> None:
        for action in menu.actions():
            if action.menu() is not None:
                visit(action.menu(), f"{path} > {action.menu().title().replace('&', '')}")
            elif action.shortcuts():
                keys = ", ".join(s.toString(QKeySequence.SequenceFormat.NativeText) for s in action.shortcuts())
                rows.append((path, keys, action.text().replace("&", "")))

    for action in window.menuBar().actions():
        if isinstance(action, QAction) and action.menu() is not None:
            visit(action.menu(), action.menu().title().replace("&", ""))
    return rows


class ShortcutsDialog(QDialog):
    def __init__(self, window) -> None:  # noqa: ANN001
        super().__init__(window)
        self.setWindowTitle("Shortcuts")
        self.resize(640, 620)
        rows = menu_shortcuts(window) + list(GESTURES)
        self.table = QTableWidget(len(rows), 3)
        self.table.setHorizontalHeaderLabels(["Where", "Keys", "What"])
        self.table.verticalHeader().hide()
        self.table.setEditTriggers(QTableWidget.EditTrigger.NoEditTriggers)
        for r, row in enumerate(rows):
            for c, text in enumerate(row):
                self.table.setItem(r, c, QTableWidgetItem(text))
        self.table.horizontalHeader().setSectionResizeMode(2, QHeaderView.ResizeMode.Stretch)
        self.table.resizeColumnsToContents()
        buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Close)
        buttons.rejected.connect(self.close)
        layout = QVBoxLayout(self)
        layout.addWidget(self.table)
        layout.addWidget(buttons)

    def keys_for(self, what: str) -> str:
        """The keys listed for an action or gesture (for tests)."""
        for r in range(self.table.rowCount()):
            if self.table.item(r, 2).text() == what:
                return self.table.item(r, 1).text()
        return ""
