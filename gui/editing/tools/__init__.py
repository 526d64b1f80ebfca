"""Canvas tools: mouse gestures -> Editor operations. One tool is active at a time (Editor.set_tool)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from gui.editing.tools.base import EditorTool
from gui.editing.tools.draw import BoxTool, LineTool, PolygonTool
from gui.editing.tools.edit import EditTool
from gui.editing.tools.paint import BrushTool

if TYPE_CHECKING:
    from gui.editing.editor import Editor

TOOL_NAMES = ("edit", "polygon", "box", "brush", "eraser", "line")


def build_tools(editor: Editor) -> dict[str, EditorTool]:
    return {
        "edit": EditTool(editor),
        "polygon": PolygonTool(editor),
        "box": BoxTool(editor),
        "brush": BrushTool(editor, erase=False),
        "eraser": BrushTool(editor, erase=True),
        "line": LineTool(editor),
    }
