"""The longest GUI-thread stall while a large COCO project opens (issue 15, item 11), before and after.

    QT_QPA_PLATFORM=offscreen python benchmarks/open_stall.py                  # 2,000 images x 500 polygons
    QT_QPA_PLATFORM=offscreen python benchmarks/open_stall.py --images 200 --instances 100

A synthetic COCO file (polygons of 8 points; one 1000x1000 PNG hard-linked as every image) is opened in the
real window (``MainWindow``, no model) twice, each time from an empty window:

- before: the read on the GUI thread, as ``ImageController.open_path`` did it (``Project.open`` there, then the
  same steps the controller takes once a project is read);
- after: ``MainWindow.open_path``, which reads on the opener thread (gui/workers/opener.py).

Each is timed from the call until the first image is on screen and nothing is in flight. The stall is the
longest gap between the ticks of a 5 ms PreciseTimer on the GUI thread (what the user feels as a frozen
window), also given without the garbage collections in it (the app collects from a GUI-thread timer, and a
full collection walks every object of a million-instance project whoever made them).

Figures (2 shared CPU cores, 2,000 x 500 polygons, 165 MB): before, the longest stall was 13.7 s (the whole read;
29.5 s with the Instances panel's table items of the time, under more load); after, 1.6 s, all of it while
reading: ``json.loads`` (engine/data/io/json_files.py) parses the file in one C call that holds the GIL, so the
GUI thread waits for it; from the project's arrival to the first image 0.5 s. Parsing in pieces (the
annotations array an element at a time) would take that last second and a half away too.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np  # noqa: E402
from PIL import Image  # noqa: E402
from PySide6.QtCore import QElapsedTimer, QEventLoop, Qt, QTimer  # noqa: E402

from gui.app import create_app  # noqa: E402


def write_project(folder: Path, images: int, instances: int) -> Path:
    """annotations.json with ``images`` x ``instances`` polygons; every image file is one hard-linked PNG."""
    folder.mkdir(parents=True, exist_ok=True)
    first = folder / "img_00000.png"
    Image.fromarray(np.full((1000, 1000, 3), 90, np.uint8)).save(first)
    for image in range(1, images):
        os.link(first, folder / f"img_{image:05d}.png")
    annotations = []
    for image in range(images):
        for i in range(instances):
            x, y = 20 + (i * 37) % 940, 20 + (i * 53) % 940
            polygon = [x, y, x + 12, y + 2, x + 20, y + 10, x + 18, y + 22, x + 9, y + 28, x, y + 20, x - 6, y + 12]
            annotations.append(
                {
                    "id": len(annotations) + 1,
                    "image_id": image + 1,
                    "category_id": 1 + i % 3,
                    "segmentation": [polygon],
                    "bbox": [x - 6, y, 26, 28],
                    "area": 400,
                    "iscrowd": 0,
                }
            )
    doc = {
        "images": [
            {"id": i + 1, "file_name": f"img_{i:05d}.png", "width": 1000, "height": 1000} for i in range(images)
        ],
        "categories": [{"id": 1, "name": "cell"}, {"id": 2, "name": "nucleus"}, {"id": 3, "name": "debris"}],
        "annotations": annotations,
    }
    path = folder / "annotations.json"
    path.write_text(json.dumps(doc, separators=(",", ":")))
    return path


class StallClock:
    """Gaps between the ticks of a 5 ms timer on the GUI thread, and the garbage collections meanwhile."""

    def __init__(self) -> None:
        self.clock = QElapsedTimer()
        self.clock.start()
        self.gaps: list[tuple[float, float]] = []
        self.collections: list[tuple[float, float]] = []
        self._last = 0.0
        self._collection_start = 0.0
        self.timer = QTimer()
        self.timer.setTimerType(Qt.TimerType.PreciseTimer)
        self.timer.setInterval(5)
        self.timer.timeout.connect(self._tick)
        gc.callbacks.append(self._on_collection)

    def now(self) -> float:
        return self.clock.nsecsElapsed() / 1e6

    def _tick(self) -> None:
        now = self.now()
        self.gaps.append((self._last, now))
        self._last = now

    def _on_collection(self, phase: str, _info: dict) -> None:
        if phase == "start":
            self._collection_start = self.now()
        else:
            self.collections.append((self._collection_start, self.now()))

    def start(self) -> None:
        self.gaps.clear()
        self.collections.clear()
        self._last = self.now()
        self.timer.start()

    def stop(self, split: float = float("inf")) -> tuple[float, float, float, float]:
        """Longest gaps in ms, the gap up to now included: (all, all not counting garbage collection, those that
        ended before ``split``, those that ended after it)."""
        self._tick()
        self.timer.stop()

        def own(gap: tuple[float, float]) -> float:
            start, end = gap
            overlap = sum(max(0.0, min(end, c_end) - max(start, c_start)) for c_start, c_end in self.collections)
            return end - start - overlap

        before = [end - start for start, end in self.gaps if end < split]
        after = [end - start for start, end in self.gaps if end >= split]
        longest = max(end - start for start, end in self.gaps)
        return longest, max(map(own, self.gaps)), max(before, default=0.0), max(after, default=0.0)


def open_on_the_gui_thread(window, path: Path) -> None:  # noqa: ANN001 - MainWindow
    """What ``ImageController.open_path`` did before the opener thread: ``Project.open`` on the GUI thread,
    then the steps the controller takes with a project read."""
    from gui.session.project import Project

    controller = window.controller
    window.settings.mark_opening(str(path))
    controller._open_token += 1
    project = Project.open(path)
    controller._on_project_read(controller._open_token, str(path), project)


def measure(app, window, path: Path, synchronous: bool) -> tuple[float, float, float, float, float]:  # noqa: ANN001
    """Seconds to the first image, then the longest stalls in ms: all, without garbage collection, while the
    file was read (until the project reached the Session), and after (the Session's events, the first image)."""
    stalls = StallClock()
    read_at: list[float] = []
    window.controller.opened.connect(lambda _ok: read_at.append(stalls.now()))
    stalls.start()
    began = time.perf_counter()
    if synchronous:
        open_on_the_gui_thread(window, path)
    else:
        assert window.open_path(path)
    deadline = time.monotonic() + 600
    while not (window.session.image is not None and window.controller.is_idle()):
        app.processEvents(QEventLoop.ProcessEventsFlag.AllEvents, 5)
        if time.monotonic() > deadline:
            raise SystemExit(f"timed out opening {path}: {window.messages.error_text()}")
    for _ in range(20):  # what the open leaves for the next moments (the image list, the GC timer)
        app.processEvents(QEventLoop.ProcessEventsFlag.AllEvents, 5)
        time.sleep(0.005)
    took = time.perf_counter() - began
    stall, own, reading, after = stalls.stop(read_at[0] if read_at else float("inf"))
    if window.messages.error_text():
        raise SystemExit(f"opening failed: {window.messages.error_text()}")
    return took, stall, own, reading, after


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--images", type=int, default=2000)
    parser.add_argument("--instances", type=int, default=500)
    args = parser.parse_args()

    app = create_app()
    from gui.window.main_window import MainWindow
    from gui.window.settings import Settings

    tmp = Path(tempfile.mkdtemp(prefix="open_stall_"))
    began = time.perf_counter()
    path = write_project(tmp / "data", args.images, args.instances)
    size = path.stat().st_size / 1e6
    took = time.perf_counter() - began
    print(f"{args.images} images x {args.instances} polygons: {size:.0f} MB written in {took:.1f} s")
    figures = {}
    for name, synchronous in (("before (read on the GUI thread)", True), ("after (read on the opener thread)", False)):
        window = MainWindow(Settings(tmp / f"settings-{synchronous}.ini"), torch_threads=1)
        window.resize(1280, 800)
        window.show()
        app.processEvents()
        figures[name] = measure(app, window, path, synchronous)
        took, stall, own, reading, after = figures[name]
        split = (
            ""
            if synchronous  # the read and the steps after it are one stall
            else f"; {reading:.0f} ms while reading, {after:.0f} ms from the project's arrival to the first image"
        )
        print(
            f"{name}: first image after {took:.1f} s, longest GUI-thread stall {stall:.0f} ms "
            f"({own:.0f} ms not counting garbage collection{split})",
            flush=True,
        )
        window.shutdown()
        window.close()
        window.deleteLater()
        app.processEvents()
        gc.collect()
    shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
