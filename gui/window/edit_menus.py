"""The Edit and Tools menus, the tool bar and their shortcuts (labelme's where it has one).

labelme's: Ctrl+N polygon (also P), Ctrl+R box (also R), Ctrl+J edit mode, Delete, Ctrl+Z undo,
Ctrl+Shift+Z redo, Ctrl+S save, A / D images, [ and ] brush size, Ctrl+wheel zoom. Ours: B brush,
E eraser, L cut line, S split into parts, M merge, Space accept the selected prediction, Shift+A
accept all shown, 1-9 class, Ctrl+Return mark the image reviewed.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from PySide6.QtCore import Qt
from PySide6.QtGui import QAction, QActionGroup, QKeySequence
from PySide6.QtWidgets import QToolBar

if TYPE_CHECKING:
    from gui.window.main_window import MainWindow

TOOLS = (
    ("edit", "&Edit Mode", ("Ctrl+J",), "Select masks and predictions; drag polygon vertices"),
    ("polygon", "&Polygon", ("Ctrl+N", "P"), "Click vertices; click the first one or press Enter to close"),
    ("box", "&Box", ("Ctrl+R", "R"), "Drag a box: the model's mask for it (a rectangle without a model)"),
    ("brush", "&Brush", ("B",), "Paint into the selected mask (a new one when none is selected)"),
    ("eraser", "&Eraser", ("E",), "Erase from the selected mask (or the one under the stroke)"),
    ("line", "&Cut Line", ("L",), "Drag a line across a mask to cut it in two"),
)


def _action(window: MainWindow, menu, text: str, slot, shortcuts=(), tip: str = "") -> QAction:  # noqa: ANN001
    action = QAction(text, window)
    action.setShortcuts([QKeySequence(s) for s in shortcuts])
    action.setShortcutContext(Qt.ShortcutContext.WindowShortcut)
    if tip:
        action.setStatusTip(tip)
        action.setToolTip(f"{text.replace('&', '')} ({', '.join(shortcuts)}): {tip}" if shortcuts else tip)
    action.triggered.connect(lambda _checked=False: slot())
    menu.addAction(action)
    return action


def build_edit_menu(window: MainWindow, bar) -> None:  # noqa: ANN001
    editor = window.editor
    menu = bar.addMenu("&Edit")
    window.undo_action = _action(window, menu, "&Undo", editor.undo, ("Ctrl+Z",))
    window.redo_action = _action(window, menu, "&Redo", editor.redo, ("Ctrl+Shift+Z", "Ctrl+Y"))
    stack = editor.undo_stack
    for action, can, changed in (
        (window.undo_action, stack.canUndo, stack.canUndoChanged),
        (window.redo_action, stack.canRedo, stack.canRedoChanged),
    ):
        action.setEnabled(can())
        changed.connect(action.setEnabled)
    stack.undoTextChanged.connect(lambda text: window.undo_action.setText(f"&Undo {text}".strip()))
    stack.redoTextChanged.connect(lambda text: window.redo_action.setText(f"&Redo {text}".strip()))
    menu.addSeparator()
    window.accept_action = _action(
        window, menu, "&Accept Prediction", editor.accept_selected, ("Space",), "The selected prediction becomes a mask"
    )
    window.accept_all_action = _action(
        window, menu, "Accept &All Shown", editor.accept_all, ("Shift+A",), "Every prediction above the threshold"
    )
    _action(window, menu, "&Delete", editor.delete_selected, ("Delete",), "The selected masks (or reject a prediction)")
    _action(window, menu, "&Split into Parts", editor.split_selected, ("S",), "One mask per connected part")
    _action(window, menu, "&Merge Selected", editor.merge_selected, ("M",), "Two or more selected masks become one")
    _action(window, menu, "Mark Image &Reviewed", editor.mark_reviewed, ("Ctrl+Return",), "Train on it as it is")
    menu.addSeparator()
    _action(window, menu, "Brush &Bigger", lambda: editor.grow_brush(1.25), ("]",))
    _action(window, menu, "Brush &Smaller", lambda: editor.grow_brush(0.8), ("[",))
    classes = menu.addMenu("&Class")
    for number in range(1, 10):
        _action(window, classes, f"Class {number}", lambda n=number: editor.pick_class(n), (str(number),))
    _action(window, classes, "&Add Class…", window.classes.ask_add)
    box_model = QAction("Box Uses the &Model", window, checkable=True)
    box_model.setChecked(editor.box_uses_model)
    box_model.toggled.connect(lambda on: setattr(editor, "box_uses_model", on))
    menu.addAction(box_model)
    window.box_model_action = box_model


def build_tools_menu(window: MainWindow, bar) -> None:  # noqa: ANN001
    editor = window.editor
    menu = bar.addMenu("&Tools")
    toolbar = QToolBar("Tools", window)
    toolbar.setObjectName("toolbar_tools")
    toolbar.setToolButtonStyle(Qt.ToolButtonStyle.ToolButtonTextOnly)
    window.addToolBar(Qt.ToolBarArea.TopToolBarArea, toolbar)
    group = QActionGroup(window)
    window.tool_actions = {}
    for name, text, shortcuts, tip in TOOLS:
        action = _action(window, menu, text, lambda n=name: editor.set_tool(n), shortcuts, tip)
        action.setCheckable(True)
        group.addAction(action)
        toolbar.addAction(action)
        window.tool_actions[name] = action
    window.tool_actions[editor.tool_name].setChecked(True)
    editor.tool_changed.connect(lambda name: window.tool_actions[name].setChecked(True))
    toolbar.addSeparator()
    for action in (window.accept_action, window.accept_all_action, window.undo_action, window.redo_action):
        toolbar.addAction(action)
    window.tools_toolbar = toolbar
