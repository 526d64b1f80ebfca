"""Editing: the Editor (undo stack, tools) over the Session, Qt-free mask operations, the tools."""
