"""The Edit and Tools menus, the tool bar and their shortcuts (labelme's where it has one).

labelme's: Ctrl+N polygon (also P), Ctrl+R box (also R), Ctrl+J edit mode, Delete, Ctrl+Z undo,
Ctrl+Shift+Z redo, Ctrl+S save, A / D images, [ and ] brush size, Ctrl+wheel zoom. Ours: B brush,
E eraser, L cut line, S split into parts, M merge, V vertex mode (any mask as rings of vertices; V again
or Esc leaves), Space accept the selected prediction, Shift+A accept all shown, 1-9 class, Ctrl+Return mark
the image reviewed.
"""

from __future__ import annotations

from collections.abc import Callable

from PySide6.QtCore import Qt
from PySide6.QtGui import QAction, QActionGroup, QKeySequence
from PySide6.QtWidgets import QMainWindow, QMenuBar, QToolBar

from gui.editing.editor import Editor

TOOLS = (
    ("edit", "&Edit Mode", ("Ctrl+J",), "Select masks and predictions; drag polygon vertices"),
    ("polygon", "&Polygon", ("Ctrl+N", "P"), "Click vertices; click the first one or press Enter to close"),
    ("box", "&Box", ("Ctrl+R", "R"), "Drag a box: the model's mask for it (a rectangle without a model)"),
    ("brush", "&Brush", ("B",), "Paint into the selected mask (a new one when none is selected)"),
    ("eraser", "&Eraser", ("E",), "Erase from the selected mask (or the one under the stroke)"),
    ("line", "&Cut Line", ("L",), "Drag a line across a mask to cut it in two"),
    ("vertex", "&Vertices", ("V",), "Edit the selected mask's outline and holes as vertices (V again leaves)"),
)


def _toggle_tool(editor: Editor, name: str) -> None:
    """A tool's key. V in vertex mode leaves it (back to Edit mode, the mask still selected), unless a
    prediction is selected there: then that one is accepted and edited."""
    selection = editor.session.selection
    leave = name == "vertex" and editor.tool_name == "vertex" and (selection.annotations or selection.prediction < 0)
    editor.set_tool("edit" if leave else name)


def _delete(editor: Editor) -> None:
    """Delete: the vertex under the mouse in vertex mode, else the selected masks (or reject a prediction)."""
    tool = editor.tools[editor.tool_name]
    delete_hovered = getattr(tool, "delete_hovered", None)
    if delete_hovered is not None and delete_hovered(editor.canvas):
        return
    editor.delete_selected()


def _replay(editor: Editor, step) -> None:  # noqa: ANN001
    """Undo / redo, through the active tool when it keeps its shape on screen across them (vertex mode)."""
    around = getattr(editor.tools[editor.tool_name], "around_replay", None)
    if around is not None:
        around(step)
    else:
        step()


def _action(window: QMainWindow, menu, text: str, slot, shortcuts=(), tip: str = "") -> QAction:  # noqa: ANN001
    action = QAction(text, window)
    action.setShortcuts([QKeySequence(s) for s in shortcuts])
    action.setShortcutContext(Qt.ShortcutContext.WindowShortcut)
    if tip:
        action.setStatusTip(tip)
        action.setToolTip(f"{text.replace('&', '')} ({', '.join(shortcuts)}): {tip}" if shortcuts else tip)
    action.triggered.connect(lambda _checked=False: slot())
    menu.addAction(action)
    return action


def build_edit_menu(window: QMainWindow, bar: QMenuBar, editor: Editor, add_class: Callable[[], object]) -> tuple:
    """The Edit menu; returns its (undo, redo, accept, accept all, box uses the model) actions."""
    menu = bar.addMenu("&Edit")
    undo = _action(window, menu, "&Undo", lambda: _replay(editor, editor.undo), ("Ctrl+Z",))
    redo = _action(window, menu, "&Redo", lambda: _replay(editor, editor.redo), ("Ctrl+Shift+Z", "Ctrl+Y"))
    stack = editor.undo_stack
    for action, can, changed in (
        (undo, stack.canUndo, stack.canUndoChanged),
        (redo, stack.canRedo, stack.canRedoChanged),
    ):
        action.setEnabled(can())
        changed.connect(action.setEnabled)
    stack.undoTextChanged.connect(lambda text: undo.setText(f"&Undo {text}".strip()))
    stack.redoTextChanged.connect(lambda text: redo.setText(f"&Redo {text}".strip()))
    menu.addSeparator()
    accept = _action(
        window, menu, "&Accept Prediction", editor.accept_selected, ("Space",), "The selected prediction becomes a mask"
    )
    accept_all = _action(
        window, menu, "Accept &All Shown", editor.accept_all, ("Shift+A",), "Every prediction above the threshold"
    )
    tip = "The selected masks (or reject a prediction; in vertex mode the vertex under the mouse)"
    _action(window, menu, "&Delete", lambda: _delete(editor), ("Delete",), tip)
    _action(window, menu, "&Split into Parts", editor.split_selected, ("S",), "One mask per connected part")
    _action(window, menu, "&Merge Selected", editor.merge_selected, ("M",), "Two or more selected masks become one")
    _action(window, menu, "Mark Image &Reviewed", editor.mark_reviewed, ("Ctrl+Return",), "Train on it as it is")
    menu.addSeparator()
    _action(window, menu, "Brush &Bigger", lambda: editor.grow_brush(1.25), ("]",))
    _action(window, menu, "Brush &Smaller", lambda: editor.grow_brush(0.8), ("[",))
    classes = menu.addMenu("&Class")
    for number in range(1, 10):
        _action(window, classes, f"Class {number}", lambda n=number: editor.pick_class(n), (str(number),))
    _action(window, classes, "&Add Class…", add_class)
    box_model = QAction("Box Uses the &Model", window, checkable=True)
    box_model.setChecked(editor.box_uses_model)
    box_model.toggled.connect(lambda on: setattr(editor, "box_uses_model", on))
    menu.addAction(box_model)
    return undo, redo, accept, accept_all, box_model


def build_tools_menu(window: QMainWindow, bar: QMenuBar, editor: Editor, edit: tuple) -> tuple:
    """The Tools menu and the tool bar (the tools, then accept, accept all, undo, redo from ``edit``)."""
    undo, redo, accept, accept_all, _box_model = edit
    menu = bar.addMenu("&Tools")
    toolbar = QToolBar("Tools", window)
    toolbar.setObjectName("toolbar_tools")
    toolbar.setToolButtonStyle(Qt.ToolButtonStyle.ToolButtonTextOnly)
    window.addToolBar(Qt.ToolBarArea.TopToolBarArea, toolbar)
    group = QActionGroup(window)
    tools: dict[str, QAction] = {}
    for name, text, shortcuts, tip in TOOLS:
        action = _action(window, menu, text, lambda n=name: _toggle_tool(editor, n), shortcuts, tip)
        action.setCheckable(True)
        group.addAction(action)
        toolbar.addAction(action)
        tools[name] = action
    tools[editor.tool_name].setChecked(True)
    editor.tool_changed.connect(lambda name: tools[name].setChecked(True))
    toolbar.addSeparator()
    for action in (accept, accept_all, undo, redo):
        toolbar.addAction(action)
    return tools, toolbar
