"""The latest-wins worker thread (gui/workers/latest.py) on its own: no window, no model."""

from __future__ import annotations

import os

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

import subprocess  # noqa: E402
import sys  # noqa: E402
import threading  # noqa: E402
from pathlib import Path  # noqa: E402

import pytest  # noqa: E402

from gui.workers.latest import LatestWins  # noqa: E402


class Handler:
    """Records the jobs it sees and the thread it sees them on; ``hold`` keeps it inside a job."""

    def __init__(self, fail_on: object = None) -> None:
        self.seen: list[object] = []
        self.threads: set[str] = set()
        self.entered = threading.Event()
        self.hold = threading.Event()
        self.hold.set()
        self.fail_on = fail_on

    def __call__(self, job: object) -> None:
        self.threads.add(threading.current_thread().name)
        self.entered.set()
        self.hold.wait(timeout=30)
        if job == self.fail_on:
            raise ValueError(f"bad job {job}")
        self.seen.append(job)


@pytest.fixture
def worker(qapp):
    made: list[LatestWins] = []

    def make(handler: Handler) -> LatestWins:
        made.append(LatestWins("test-latest", handler))
        return made[-1]

    yield make
    for latest in made:
        latest.shutdown()


def test_a_hundred_jobs_while_the_handler_is_busy_serve_the_first_and_the_last(qtbot, worker):
    handler = Handler()
    handler.hold.clear()
    latest = worker(handler)
    for job in range(1, 101):
        latest.put(job)
        if job == 1:
            assert handler.entered.wait(timeout=10)  # the thread holds job 1 while 2..100 arrive
    handler.hold.set()
    qtbot.waitUntil(lambda: handler.seen == [1, 100], timeout=10000)
    qtbot.wait(50)
    assert handler.seen == [1, 100]
    assert handler.threads != {threading.current_thread().name}  # run on the worker thread, not here


def test_one_wake_up_per_served_job(qtbot, worker):
    handler = Handler()
    handler.hold.clear()
    latest = worker(handler)
    latest.put("first")
    assert handler.entered.wait(timeout=10)
    for job in range(50):
        latest.put(job)
    assert latest.wakes == 2  # one for "first", one for the slot refilled while it ran
    handler.hold.set()
    qtbot.waitUntil(lambda: len(handler.seen) == 2, timeout=10000)
    for job in ("a", "b", "c"):  # one at a time, each served before the next: a wake-up each
        latest.put(job)
        qtbot.waitUntil(lambda job=job: handler.seen[-1] == job, timeout=10000)
    assert handler.seen == ["first", 49, "a", "b", "c"]
    assert latest.wakes == len(handler.seen)


def test_calls_run_in_order_on_the_same_thread(qtbot, worker):
    handler = Handler()
    latest = worker(handler)
    calls: list[tuple[str, str]] = []
    latest.call(lambda: calls.append(("call 1", threading.current_thread().name)))
    latest.put("job")
    latest.call(lambda: calls.append(("call 2", threading.current_thread().name)))
    qtbot.waitUntil(lambda: len(calls) == 2, timeout=10000)
    assert [name for name, _ in calls] == ["call 1", "call 2"] and handler.seen == ["job"]
    assert {thread for _, thread in calls} == handler.threads  # one thread serves both


def test_shutdown_joins_the_thread_and_drops_the_unserved_job(qtbot, worker):
    handler = Handler()
    handler.hold.clear()
    latest = worker(handler)
    latest.put("running")
    assert handler.entered.wait(timeout=10)
    latest.put("waiting")
    threading.Timer(0.2, handler.hold.set).start()  # the job under way ends a little later
    assert latest.shutdown(timeout_ms=10000)
    assert latest.thread.isFinished() and not latest.thread.isRunning()
    assert handler.seen == ["running"]  # finished, not cut short; the waiting one never started
    latest.put("after")
    qtbot.wait(50)
    assert handler.seen == ["running"]
    assert latest.shutdown()  # a second shutdown is harmless


def test_an_exception_in_the_handler_is_reported_and_the_thread_goes_on(qtbot, worker, capsys):
    handler = Handler(fail_on="bad")
    latest = worker(handler)
    with qtbot.waitSignal(latest.failed, timeout=10000) as failure:
        latest.put("bad")
    assert failure.args == ["bad", "ValueError: bad job bad"]
    assert "ValueError: bad job bad" in capsys.readouterr().err  # the traceback is printed too
    latest.put("good")
    qtbot.waitUntil(lambda: handler.seen == ["good"], timeout=10000)
    assert latest.thread.isRunning()


def test_a_shutdown_that_gives_up_waiting_still_never_destroys_a_running_thread(tmp_path):
    """The job outlives shutdown's timeout and the interpreter exits at once: the thread is joined at exit
    (Qt aborts the process with "QThread: Destroyed while thread is still running" otherwise)."""
    script = tmp_path / "give_up.py"
    script.write_text(
        "import time\n"
        "from PySide6.QtCore import QCoreApplication\n"
        "from gui.workers.latest import LatestWins\n"
        "app = QCoreApplication([])\n"
        "latest = LatestWins('slow', lambda job: (time.sleep(1), print('job done', flush=True)))\n"
        "latest.put(1)\n"
        "time.sleep(0.2)\n"
        "print('joined' if latest.shutdown(timeout_ms=10) else 'gave up', flush=True)\n"
        "del latest\n"
    )
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[2])}
    run = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=60, env=env)
    assert run.stdout.split() == ["gave", "up", "job", "done"]
    assert "Destroyed while thread" not in run.stderr and run.returncode == 0
