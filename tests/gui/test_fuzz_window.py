"""Fuzz, the window step (issue 15): mutated COCO and labelme folders opened in the real window.

The cases are tests/engine/data/test_data_fuzz.py's (hypothesis mutates the JSON, flips bytes, truncates,
swaps the images for broken ones). Each is opened with ``MainWindow.open_path`` in one guarded worker
process (offscreen Qt; restarted after a crash), which waits until the first image is shown or has
failed, steps to the next image, and reports. A case passes when it ends in success or in one message in
the banner or the status line, with no exception reaching ``sys.excepthook`` (where a Qt slot's uncaught
exception goes) or ``threading.excepthook``; a segfault or a hang of the worker fails it instead of the
run. CI-sized: FUZZ_WINDOW_CASES (default 60) cases, well under 90 s; set it higher for a longer hunt.
"""

from __future__ import annotations

import json
import os
import selectors
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[2]
CASES = int(os.environ.get("FUZZ_WINDOW_CASES", "60"))
CASE_TIMEOUT_S = 30.0
MEMORY_LIMIT_BYTES = 12 * 1024**3  # address space: torch and Qt map a lot; a runaway allocation still stops


# ----- the worker (runs in its own process: ``python tests/gui/test_fuzz_window.py --serve``) -----
def serve() -> None:
    import faulthandler
    import resource
    import threading
    import traceback

    faulthandler.enable()
    soft, hard = resource.getrlimit(resource.RLIMIT_AS)
    limit = MEMORY_LIMIT_BYTES if hard == resource.RLIM_INFINITY else min(MEMORY_LIMIT_BYTES, hard)
    resource.setrlimit(resource.RLIMIT_AS, (limit, hard))
    os.environ["QT_QPA_PLATFORM"] = "offscreen"
    sys.path.insert(0, str(REPO))
    from PySide6.QtWidgets import QMessageBox

    from gui.app import create_app
    from gui.window.main_window import MainWindow
    from gui.window.settings import Settings

    uncaught: list[str] = []

    def record(kind, value, tb) -> None:  # noqa: ANN001
        uncaught.append("".join(traceback.format_exception(kind, value, tb))[-3000:])

    sys.excepthook = record
    threading.excepthook = lambda args: record(args.exc_type, args.exc_value, args.exc_traceback)
    QMessageBox.question = staticmethod(lambda *a, **k: QMessageBox.StandardButton.Discard)
    app = create_app()
    settings_dir = tempfile.mkdtemp(prefix="fuzz-window-")
    window = MainWindow(Settings(Path(settings_dir) / "settings.ini"), torch_threads=1)
    window.resize(900, 600)
    window.show()
    out = sys.stdout
    sys.stdout = sys.stderr
    print("ready", file=out, flush=True)

    def settle(deadline: float) -> bool:
        """Events until the image on screen is loaded (or failed) and nothing is in flight."""
        while time.monotonic() < deadline:
            app.processEvents()
            if window.controller.is_idle():
                for _ in range(3):
                    app.processEvents()
                return True
            time.sleep(0.005)
        return False

    for line in sys.stdin:
        path = line.rstrip("\n")
        if not path:
            continue
        uncaught.clear()
        started = time.monotonic()
        report: dict[str, Any] = {}
        try:
            report["opened"] = bool(window.open_path(path))
        except BaseException as error:  # noqa: BLE001 - what the test looks for
            record(type(error), error, error.__traceback__)
            report["opened"] = False
        report["settled"] = settle(started + CASE_TIMEOUT_S - 5)
        session = window.session
        report.update(
            error=window.messages.error_text(),
            status=window.messages.status.text(),
            images=len(session.project) if session.project is not None else 0,
            shown=session.image is not None,
        )
        if report["opened"] and report["images"] > 1:  # the next image too (D)
            window.controller.step(1)
            report["settled"] &= settle(started + CASE_TIMEOUT_S - 2)
            report["second_error"] = window.messages.error_text()
        report["uncaught"] = list(uncaught)
        report["seconds"] = time.monotonic() - started
        print(json.dumps(report), file=out, flush=True)
    window.shutdown()


# ----- the guard (in the test process) -----
class WindowWorker:
    def __init__(self) -> None:
        self.process: subprocess.Popen | None = None
        self.log = tempfile.TemporaryFile(mode="w+")

    def start(self) -> None:
        env = dict(os.environ, QT_QPA_PLATFORM="offscreen", PYTHONFAULTHANDLER="1")
        command = [sys.executable, __file__, "--serve"]
        self.process = subprocess.Popen(
            command, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=self.log, text=True, cwd=REPO, env=env
        )
        if self._read_line(120.0) != "ready":
            self.close()
            raise RuntimeError(f"the window worker did not start: {self.stderr_tail()}")

    def stderr_tail(self) -> str:
        self.log.seek(0)
        return self.log.read()[-3000:]

    def _read_line(self, timeout: float) -> str | None:
        assert self.process is not None and self.process.stdout is not None
        with selectors.DefaultSelector() as selector:
            selector.register(self.process.stdout, selectors.EVENT_READ)
            if not selector.select(timeout):
                return None
        line = self.process.stdout.readline()
        return line.rstrip("\n") if line else ""

    def run(self, path: Path) -> dict[str, Any]:
        if self.process is None or self.process.poll() is not None:
            self.start()
        assert self.process is not None and self.process.stdin is not None
        try:
            self.process.stdin.write(f"{path}\n")
            self.process.stdin.flush()
        except BrokenPipeError:
            pass
        line = self._read_line(CASE_TIMEOUT_S)
        if line:
            return {"outcome": "ran", **json.loads(line)}
        hung = line is None
        self.close()
        outcome = "hang" if hung else f"crash (exit {self.process.returncode})"
        return {"outcome": outcome, "stderr": self.stderr_tail()}

    def close(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait()


def check(report: dict[str, Any]) -> None:
    """Success, or one message in the banner or the status line; never an uncaught exception or a hang."""
    assert report["outcome"] == "ran", report
    assert report["uncaught"] == [], report["uncaught"][0]
    assert report["settled"], f"still busy after {CASE_TIMEOUT_S} s: {report}"
    if not report["opened"]:
        assert report["error"].startswith("Cannot open "), report  # why, in the banner
        return
    assert report["images"] >= 1 or report["status"], report
    if not report["shown"] and report["images"]:
        assert report["error"].strip(), report  # the image failed to load: the banner says why


if __name__ == "__main__" and sys.argv[1:] == ["--serve"]:
    serve()
    sys.exit(0)

# ----- the test -----
import pytest  # noqa: E402
from hypothesis import HealthCheck, event, given, settings  # noqa: E402

sys.path.insert(0, str(REPO / "tests" / "engine" / "data"))
import test_data_fuzz as fuzz  # noqa: E402 - the engine fuzz test's cases: one definition of a mutation


@pytest.fixture(scope="module")
def window_worker():
    worker = WindowWorker()
    yield worker
    worker.close()


def test_the_guard_reports_a_crash_and_starts_again(window_worker):
    report = window_worker.run(Path("/dev/null/<crash>"))  # opening it is a plain "Cannot open" message
    check(report)
    assert window_worker.process is not None
    window_worker.process.kill()  # as a segfault would end it
    window_worker.process.wait()
    assert window_worker.run(Path("/nonexistent"))["outcome"] == "ran"  # a fresh worker took over


@settings(
    max_examples=CASES,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.function_scoped_fixture],
)
@given(case=fuzz.cases())
def test_mutated_folders_open_in_the_window_or_say_why(window_worker, case):
    with tempfile.TemporaryDirectory(prefix="fuzz-window-") as folder:
        target = fuzz.build_case(Path(folder), case)
        report = window_worker.run(target)
    event(f"{case['kind']}: {'opened' if report.get('opened') else 'refused'}")
    check(report)
