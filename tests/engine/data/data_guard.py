"""A guarded worker process for hostile-input tests: it opens a data folder as the app and the CLI do and
reports how each step ended, so that a segfault, an out-of-memory kill or a hang fails one case instead
of killing the test run.

The parent (``GuardedWorker``) keeps one worker process for many cases (no Python start per case): it
sends a folder per line on stdin and reads one JSON line back. When the worker dies (a signal, an exit)
or passes the timeout, the case is reported as "crash" or "hang" and a fresh worker starts for the next.

Steps (run in this order; a step that raises DatasetError/ImageLoadError ends the case there):
- ``read``: engine.data.read_dataset on the folder;
- ``decode``: every instance's mask decoded at its image's size;
- ``images``: every image loaded, at the size the annotations say;
- ``convert``: what ``maskrcnn convert`` does: write_coco and read it back, write_labelme.
A step for the window can be added to STEPS (a function of (folder, state) that runs in the worker).

Outcomes: "ok" (every step passed), "project_error" (DatasetError or ImageLoadError, with its message),
"other" (any other exception: a bug), "crash" (the worker died), "hang" (past the timeout).
"""

from __future__ import annotations

import json
import os
import selectors
import subprocess
import sys
import tempfile
import time
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[3]
MEMORY_LIMIT_BYTES = 3 * 1024**3  # a step that wants more fails with MemoryError instead of swapping the machine


def _step_read(folder: Path, state: dict[str, Any]) -> None:
    from engine.data import read_dataset

    state["dataset"] = dataset = read_dataset(folder)
    state["warnings"] = list(dataset.warnings)
    state["instances"] = dataset.num_instances


def _step_decode(folder: Path, state: dict[str, Any]) -> None:
    dataset = state["dataset"]
    pixels = 0
    for image in dataset.images:
        for instance in image.instances:
            pixels += int(instance.decode_mask(image.height, image.width).sum())
    state["mask_pixels"] = pixels


def _step_images(folder: Path, state: dict[str, Any]) -> None:
    from engine.data import ImageLoadError, load_image

    dataset = state["dataset"]
    failed = []
    for image in dataset.images:
        try:
            pixels = load_image(dataset.image_path(image))
        except ImageLoadError as error:  # the app shows it and goes on to the next image
            failed.append(str(error))
            continue
        if pixels.shape[:2] != (image.height, image.width):
            failed.append(f"{image.path}: {pixels.shape[1]}x{pixels.shape[0]}, not {image.width}x{image.height}")
    state["image_errors"] = failed


def _step_convert(folder: Path, state: dict[str, Any]) -> None:
    from engine.data import read_dataset, write_coco, write_labelme

    dataset = state["dataset"]
    with tempfile.TemporaryDirectory() as out:
        write_coco(dataset, Path(out) / "coco" / "annotations.json")
        again = read_dataset(Path(out) / "coco" / "annotations.json")
        if again.num_instances != dataset.num_instances:
            raise AssertionError(f"write_coco then read_dataset: {dataset.num_instances} -> {again.num_instances}")
        write_labelme(dataset, Path(out) / "labelme")


STEPS: dict[str, Callable[[Path, dict[str, Any]], None]] = {
    "read": _step_read,
    "decode": _step_decode,
    "images": _step_images,
    "convert": _step_convert,
}


def run_case(folder: Path, steps: list[str]) -> dict[str, Any]:
    """Run ``steps`` on ``folder`` in this process; the report as a JSON-able dict."""
    from engine.data import DatasetError, ImageLoadError

    state: dict[str, Any] = {}
    report: dict[str, Any] = {"outcome": "ok", "step": None}
    for name in steps:
        report["step"] = name
        try:
            STEPS[name](folder, state)
        except (DatasetError, ImageLoadError) as error:
            report.update(outcome="project_error", type=type(error).__name__, message=str(error))
            break
        except BaseException as error:  # noqa: BLE001 - any other exception is what the test looks for
            report.update(outcome="other", type=type(error).__name__, message=str(error)[:2000])
            report["traceback"] = traceback.format_exc()[-4000:]
            break
    for key in ("warnings", "instances", "mask_pixels", "image_errors"):
        if key in state:
            report[key] = state[key]
    return report


def _segfault() -> None:
    import ctypes

    ctypes.string_at(0)


SELF_TESTS: dict[str, Callable[[], None]] = {"<segfault>": _segfault, "<hang>": lambda: time.sleep(3600)}


def serve(steps: list[str]) -> None:
    """Worker loop: one folder per stdin line -> one JSON report per stdout line."""
    import faulthandler
    import resource

    faulthandler.enable()
    soft, hard = resource.getrlimit(resource.RLIMIT_AS)
    limit = MEMORY_LIMIT_BYTES if hard == resource.RLIM_INFINITY else min(MEMORY_LIMIT_BYTES, hard)
    resource.setrlimit(resource.RLIMIT_AS, (limit, hard))
    import engine.data  # noqa: F401 - imported before the first case, so its time does not count there

    out = sys.stdout
    sys.stdout = sys.stderr  # what the engine prints must not mix with the reports
    print("ready", file=out, flush=True)
    for line in sys.stdin:
        folder = line.rstrip("\n")
        if not folder:
            continue
        if folder in SELF_TESTS:  # the guard's own test: a segfault, or a hang
            SELF_TESTS[folder]()
        report = run_case(Path(folder), steps)
        print(json.dumps(report), file=out, flush=True)


class GuardedWorker:
    """A worker process that runs cases one at a time, restarted after a crash or a hang."""

    def __init__(self, steps: tuple[str, ...] = ("read", "decode", "images", "convert"), timeout: float = 20.0):
        unknown = set(steps) - set(STEPS)
        if unknown:
            raise ValueError(f"unknown steps {sorted(unknown)}")
        self.steps = steps
        self.timeout = timeout
        self.process: subprocess.Popen | None = None
        self.starts = 0

    def _start(self) -> None:
        env = dict(os.environ, PYTHONPATH=str(REPO) + os.pathsep + os.environ.get("PYTHONPATH", ""))
        env["PYTHONFAULTHANDLER"] = "1"
        self.process = subprocess.Popen(
            [sys.executable, __file__, "--serve", ",".join(self.steps)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            text=True,
            cwd=REPO,
            env=env,
        )
        self.starts += 1
        ready = self._read_line(60.0)
        if ready != "ready":
            self.close()
            raise RuntimeError(f"the guarded worker did not start (said {ready!r})")

    def _read_line(self, timeout: float) -> str | None:
        assert self.process is not None and self.process.stdout is not None
        with selectors.DefaultSelector() as selector:
            selector.register(self.process.stdout, selectors.EVENT_READ)
            if not selector.select(timeout):
                return None
        line = self.process.stdout.readline()
        return line.rstrip("\n") if line else ""

    def run(self, folder: str | Path) -> dict[str, Any]:
        """The report of one case (see the module doc for the outcomes)."""
        if self.process is None or self.process.poll() is not None:
            self._start()
        assert self.process is not None and self.process.stdin is not None
        started = time.monotonic()
        try:
            self.process.stdin.write(f"{folder}\n")
            self.process.stdin.flush()
        except BrokenPipeError:
            pass
        line = self._read_line(self.timeout)
        seconds = time.monotonic() - started
        if line:
            report = json.loads(line)
            report["seconds"] = seconds
            return report
        if line is None:
            self.close()
            return {"outcome": "hang", "message": f"no answer within {self.timeout} s", "seconds": seconds}
        code = self.process.wait()
        self.process = None
        how = f"killed by signal {-code}" if code < 0 else f"exited with status {code}"
        return {"outcome": "crash", "message": f"the worker {how}", "seconds": seconds}

    def close(self) -> None:
        if self.process is not None:
            self.process.kill()
            self.process.wait()
            self.process = None

    def __enter__(self) -> GuardedWorker:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


if __name__ == "__main__":
    if len(sys.argv) == 3 and sys.argv[1] == "--serve":
        serve(sys.argv[2].split(","))
    else:
        raise SystemExit("usage: data_guard.py --serve read,decode,images,convert")
