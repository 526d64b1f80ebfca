"""RejectionSaver: the project's rejected predictions written to ``<folder>/models/rejections.json`` after a change.

A rejection (Delete on a prediction) and its undo change ``Project.rejected`` through the undo stack, whose commands
report every change as an edit (``Editor.edited``). After a short pause (a burst of Deletes in the review queue is
one write) the rejections are compared with what was last written and, when they differ, written atomically
(gui/session/rejections.py; a small file, written on the GUI thread). Opening another folder and closing the window
write what is pending first. A folder that cannot be written keeps its rejections for the session and says so.
"""

from __future__ import annotations

from PySide6.QtCore import QObject, QTimer

from gui.session.project import Project
from gui.session.protocols import Messages
from gui.session.rejections import RejectionStore, rejections_path
from gui.session.session import Session

DELAY_MS = 400


class RejectionSaver(QObject):
    def __init__(self, session: Session, messages: Messages, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.session, self.messages = session, messages
        self._project: Project | None = None  # the project whose rejections are tracked
        self._store: RejectionStore | None = None
        self._written: tuple = ()  # the fingerprint of what the file holds (or was read from it)
        self._timer = QTimer(self)
        self._timer.setSingleShot(True)
        self._timer.setInterval(DELAY_MS)
        self._timer.timeout.connect(self.flush)
        session.events.project.connect(self._on_project)
        self._on_project(session.project)

    def _on_project(self, project: Project | None) -> None:
        if project is self._project:
            return
        self.flush()  # the folder being left: its rejections on disk first
        self._project = project
        self._store = RejectionStore(project.root) if project is not None else None
        self._written = self._store.fingerprint(project.rejected) if project is not None else ()

    def edited(self) -> None:
        """An edit, its undo or redo (a rejection among them, perhaps): written after a pause."""
        if self._project is not None:
            self._timer.start()

    def flush(self) -> bool:
        """Write the rejections now when they changed; False when the write failed (the message says so)."""
        self._timer.stop()
        project, store = self._project, self._store
        if project is None or store is None:
            return True
        fingerprint = store.fingerprint(project.rejected)
        if fingerprint == self._written:
            return True
        sizes = [(record.height, record.width) for record in project.records]
        try:
            store.write(project.rejected, project.paths, sizes)
        except OSError as exc:
            self.messages.show_status(
                f"Could not save the rejected predictions to {rejections_path(project.root)} ({exc}); they are "
                "hidden until the folder is closed"
            )
            return False
        self._written = fingerprint
        return True
