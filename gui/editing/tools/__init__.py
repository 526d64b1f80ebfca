"""Canvas tools: mouse gestures -> Editor operations. One tool is active at a time (Editor.set_tool)."""

from __future__ import annotations

from gui.editing.tools.base import EditorTool, ToolHost
from gui.editing.tools.draw import BoxTool, LineTool, PolygonTool
from gui.editing.tools.edit import EditTool
from gui.editing.tools.paint import BrushTool
from gui.editing.tools.vertex import VertexTool
from gui.session.session import Session

TOOL_NAMES = ("edit", "polygon", "box", "brush", "eraser", "line", "vertex")


def build_tools(session: Session, editor: ToolHost) -> dict[str, EditorTool]:
    return {
        "edit": EditTool(session, editor),
        "polygon": PolygonTool(session, editor),
        "box": BoxTool(session, editor),
        "brush": BrushTool(session, editor, erase=False),
        "eraser": BrushTool(session, editor, erase=True),
        "line": LineTool(session, editor),
        "vertex": VertexTool(session, editor),
    }
