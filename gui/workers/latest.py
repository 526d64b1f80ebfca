"""One worker thread that serves the newest job only: the plumbing shared by inference, loading and autosave.

Why latest wins: the GUI asks faster than a job runs (a slider sends dozens of values while one
inference takes seconds on a CPU; D pressed ten times asks for ten decodes; every edit asks for a save).
Only the newest answer is worth computing, so the hand-over is one slot that a new job overwrites: a
hundred requests while the thread is busy leave one, the newest, and the thread never falls behind.
At most one wake-up is ever queued per job actually served (a wake-up goes out only when the slot was
empty), so the thread's event queue cannot fill up either.

``LatestWins.call`` runs other work on the same thread in order, every call (loading a model, a batch):
it and the wake-ups go through the same queue, so a job put after a call is served after it.

``set_idle(step)`` gives the thread work for when it has none (the inference worker's precompute for instant
sliders): ``step()`` runs one small piece and says whether more is left; each piece is its own event, queued behind
any wake-up or call, and none runs while a job or a call is waiting (``has_work``), so a new job waits at most one
piece.
"""

from __future__ import annotations

import atexit
import sys
import threading
import traceback
from collections.abc import Callable
from typing import Any

from PySide6.QtCore import QObject, Qt, QThread, Signal, Slot


class Mailbox:
    """A single-slot, latest-wins, thread-safe hand-over from the GUI thread to a worker thread."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._job: Any = None

    def put(self, job: Any) -> bool:
        """Store ``job`` (replacing any unserved one); True when the slot was empty (wake the worker)."""
        with self._lock:
            was_empty = self._job is None
            self._job = job
            return was_empty

    def waiting(self) -> bool:
        """Whether a job is waiting (a read without the lock: a hint for idle work to yield, never a hand-over)."""
        return self._job is not None

    def take(self) -> Any:
        """The newest job, or None; the slot is empty afterwards."""
        with self._lock:
            job, self._job = self._job, None
            return job


class _Server(QObject):
    """Lives in the worker thread: its slots are where the thread's work runs."""

    def __init__(self, owner: LatestWins) -> None:
        super().__init__()
        self.owner = owner

    @Slot()
    def wake(self) -> None:
        self.owner.serve()

    @Slot(object)
    def call(self, work: tuple[Callable[..., Any], tuple[Any, ...]]) -> None:
        fn, args = work
        self.owner.calls_done += 1
        if not self.owner.closing:
            self.owner._run(fn, fn, *args)
            self.owner.schedule_idle()

    @Slot()
    def idle(self) -> None:
        self.owner._run_idle()


# Threads a shutdown gave up waiting for: kept referenced (a QThread object destroyed while its thread
# runs aborts the process) and joined before the interpreter tears its objects down.
_still_running: list[tuple[QThread, _Server]] = []


@atexit.register
def _join_still_running() -> None:
    for thread, _server in _still_running:
        thread.wait()


class LatestWins(QObject):
    """A named QThread that runs ``handler(job)`` for the newest job ``put`` (lives in the GUI thread).

    An exception in the handler is printed and reported by ``failed``; the thread goes on with the
    next job. ``shutdown`` drops the unserved job, lets the one under way finish and joins the thread.
    """

    failed = Signal(object, str)  # the job (or the function given to call), "ExceptionType: message"
    _wake = Signal()
    _call = Signal(object)
    _idle = Signal()

    def __init__(
        self,
        name: str,
        handler: Callable[[Any], None],
        priority: QThread.Priority = QThread.Priority.InheritPriority,
        parent: QObject | None = None,
    ) -> None:
        super().__init__(parent)
        self.handler = handler
        self.mailbox = Mailbox()
        self.closing = False
        self.wakes = 0  # wake-ups sent: never more than jobs served (+1 for a job not served yet)
        self.calls_sent = 0  # written by the caller's thread only
        self.calls_done = 0  # written by the worker thread only: their difference is the calls waiting
        self.idle_steps = 0
        self._idle_step: Callable[[], bool] | None = None
        self._idle_scheduled = False  # worker thread only
        self._server = _Server(self)
        self.thread = QThread()
        self.thread.setObjectName(name)  # the OS thread's name too (top -H, py-spy, debuggers)
        self._server.moveToThread(self.thread)
        queued = Qt.ConnectionType.QueuedConnection  # even when called from the worker thread itself
        self._wake.connect(self._server.wake, queued)
        self._call.connect(self._server.call, queued)
        self._idle.connect(self._server.idle, queued)
        self.thread.start(priority)

    def put(self, job: Any) -> None:
        """Hand ``job`` over; an unserved older job is dropped."""
        if self.closing:
            return
        if self.mailbox.put(job):
            self.wakes += 1
            self._wake.emit()

    def call(self, fn: Callable[..., Any], *args: Any) -> None:
        """Run ``fn(*args)`` on the thread after what is queued before it; every call runs (no coalescing)."""
        if not self.closing:
            self.calls_sent += 1
            self._call.emit((fn, args))

    def set_idle(self, step: Callable[[], bool] | None) -> None:
        """Work for the idle thread: ``step()`` does one small piece, True while more is left (None: no idle work).
        It starts after the next job or call."""
        self._idle_step = step

    def has_work(self) -> bool:
        """A job or a call is waiting, or the thread is closing (any thread): idle work yields to it."""
        return self.closing or self.mailbox.waiting() or self.calls_sent > self.calls_done

    def schedule_idle(self) -> None:
        """On the worker thread: queue one idle piece unless one is queued (after what is queued already)."""
        if self._idle_step is not None and not self._idle_scheduled and not self.closing:
            self._idle_scheduled = True
            self._idle.emit()

    def _run_idle(self) -> None:
        self._idle_scheduled = False
        if self.closing or self._idle_step is None or self.has_work():
            return  # the job or call waiting runs first and queues the next piece when it is done
        self.idle_steps += 1
        try:
            more = self._idle_step()
        except Exception:  # noqa: BLE001 - idle work is optional: a bug in it must not end the thread
            traceback.print_exc()
            more = False
        if more:
            self.schedule_idle()

    def serve(self) -> None:
        """On the worker thread: handle the newest job until none is waiting (long calls, such as a batch,
        call it between their steps so the interactive job is not kept waiting)."""
        while not self.closing and (job := self.mailbox.take()) is not None:
            self._run(job, self.handler, job)
        self.schedule_idle()

    def _run(self, job: Any, fn: Callable[..., Any], *args: Any) -> None:
        try:
            fn(*args)
        except Exception as exc:  # noqa: BLE001 - a bug in one job must not end the thread
            traceback.print_exc()
            self.failed.emit(job, f"{type(exc).__name__}: {exc}")

    def shutdown(self, timeout_ms: int = 10000) -> bool:
        """Stop taking jobs, drop the unserved one, let the one under way finish, join the thread.

        True when joined. After ``timeout_ms`` the thread is left to finish on its own, kept alive and
        joined at exit, so Qt never destroys a running thread ("QThread: Destroyed while thread is still
        running" aborts the process)."""
        self.closing = True
        self.mailbox.take()
        self.thread.quit()
        if self.thread.wait(timeout_ms):
            return True
        print(f"{self.thread.objectName()} thread still busy after {timeout_ms} ms; joined at exit", file=sys.stderr)
        _still_running.append((self.thread, self._server))
        return False
