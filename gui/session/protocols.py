"""The small interfaces the rooms of gui/ meet through (typing.Protocol: nothing is imported to satisfy one).

The window builds the objects that implement them and hands them over: the editor, the image controller
and the training controller never see the window, only a Session and the protocols they need.
"""

from __future__ import annotations

from typing import Protocol


class Messages(Protocol):
    """Something that can tell the user: a status line, and an error banner until what it is about is
    resolved (``scope``: "result", "image", "model", "save", or "action": anything else)."""

    def show_status(self, text: str) -> None: ...

    def show_error(self, message: str, scope: str = "action") -> None: ...

    def hide_error(self, *scopes: str) -> None: ...


class BoxMasks(Protocol):
    """Something that can ask the model for the mask inside a box of the current image."""

    def can_mask_boxes(self) -> bool: ...

    def request_box_mask(self, box: tuple[float, float, float, float], label: int) -> int:
        """A request id; the answer comes back to ``Editor.on_box_mask`` (from a worker thread's signal)."""
        ...


class ModelLoader(Protocol):
    """Something that can load a model file (in a worker; the Session's model event says when it has)."""

    def load_weights(self, path: str) -> None: ...


class EditStore(Protocol):
    """Where the edits are written (the AutoSaver): ``ensure_file`` writes them now, False on failure."""

    last_error: str

    def ensure_file(self) -> bool: ...
