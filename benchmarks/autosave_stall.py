"""GUI-thread time per autosave of a large project (issue 15, item 11): the snapshot, the stall, flush.

    QT_QPA_PLATFORM=offscreen python benchmarks/autosave_stall.py                  # 2,000 images x 500
    QT_QPA_PLATFORM=offscreen python benchmarks/autosave_stall.py --images 200 --instances 100

A synthetic COCO project (polygons of 8 points, all distinct Instance objects) is attached to an
AutoSaver in the app's QApplication (``create_app``: garbage collection on a GUI-thread timer, as in
the app). Each round makes one edit (a new instance list on one image, as
the editor does), then times what the GUI thread spends:

- hand-over: ``save_soon()``, i.e. the snapshot handed to the autosave thread (the only part that
  should run on the GUI thread);
- stall: the longest gap between the ticks of a 5 ms PreciseTimer on the GUI thread while the
  autosave thread serialises and writes (what the user feels as a frozen window);
- write: from the hand-over to the ``saved`` signal (how long the file takes; not on the GUI thread);
- flush: ``flush()`` after one more edit, which writes on the calling thread (Ctrl+S, closing, and
  the image switch as long as the window flushes there).

The stall is also given without the garbage collections in it, and the longest collection: the app
collects from a GUI-thread timer (``create_app``), and a full collection walks every object of the
project (0.4-1.7 s for a million instances) whoever made the garbage; that part is not the autosave's.

Run it on an older commit (a ``git worktree``) for the "before" figures: it only uses the public
AutoSaver interface.
"""

from __future__ import annotations

import argparse
import copy
import gc
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from PySide6.QtCore import QElapsedTimer, QEventLoop, Qt, QTimer  # noqa: E402

from engine.data import Category, Dataset, ImageRecord, Instance  # noqa: E402
from gui.app import create_app  # noqa: E402
from gui.workers.autosave import AutoSaver  # noqa: E402


def synthetic_dataset(root: Path, images: int, instances: int) -> Dataset:
    """``images`` records of 1000x1000 with ``instances`` distinct polygon instances each."""
    templates = []
    for i in range(instances):
        x, y = 20 + (i * 37) % 940, 20 + (i * 53) % 940
        polygon = [
            x,
            y,
            x + 12,
            y + 2,
            x + 20,
            y + 10,
            x + 18,
            y + 22,
            x + 9,
            y + 28,
            x,
            y + 20,
            x - 6,
            y + 12,
            x - 3,
            y + 4,
        ]
        templates.append(Instance(category_id=1 + i % 3, mask=[[float(v) for v in polygon]], origin="manual"))
    records = []
    for image in range(images):
        copies = [copy.copy(template) for template in templates]  # distinct objects, no re-validation
        records.append(ImageRecord(f"img_{image:05d}.png", 1000, 1000, copies, state="reviewed", id=image + 1))
    categories = [Category(1, "cell"), Category(2, "nucleus"), Category(3, "debris")]
    return Dataset(root, records, categories, source_format="coco", source_path=root / "annotations.json")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--images", type=int, default=2000)
    parser.add_argument("--instances", type=int, default=500)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()

    app = create_app()
    folder = Path(tempfile.mkdtemp(prefix="autosave_stall_"))
    started = time.perf_counter()
    dataset = synthetic_dataset(folder, args.images, args.instances)
    print(f"{args.images} images x {args.instances} instances built in {time.perf_counter() - started:.1f} s")
    gc.collect()  # the young objects of the build are collected once, as the app does after opening

    saver = AutoSaver()
    saver.attach(dataset, folder / "annotations.json")
    saved = []
    saver.saved.connect(saved.append)
    clock = QElapsedTimer()
    clock.start()
    gaps: list[tuple[float, float]] = []  # (start, end) ms between two ticks
    last = [0.0]

    def tick() -> None:
        now = clock.nsecsElapsed() / 1e6
        gaps.append((last[0], now))
        last[0] = now

    timer = QTimer()
    timer.setTimerType(Qt.TimerType.PreciseTimer)
    timer.setInterval(5)
    timer.timeout.connect(tick)
    collections: list[tuple[int, float, float]] = []  # (generation, start, end) ms of each garbage collection
    collection_start = [0.0]

    def on_collection(phase: str, info: dict) -> None:
        now = clock.nsecsElapsed() / 1e6
        if phase == "start":
            collection_start[0] = now
        else:
            collections.append((info["generation"], collection_start[0], now))

    def without_collections(gap: tuple[float, float]) -> float:
        start, end = gap
        return end - start - sum(max(0.0, min(end, c_end) - max(start, c_start)) for _, c_start, c_end in collections)

    gc.callbacks.append(on_collection)

    def edit(round_index: int) -> None:
        record = dataset.images[round_index % len(dataset.images)]
        record.instances = record.instances[1:] + record.instances[:1]  # a new list, as the editor does
        saver.edited()

    hand_overs, stalls, own_stalls, writes, flushes, collected = [], [], [], [], [], []
    for round_index in range(args.rounds):
        edit(round_index)
        saved.clear()
        last[0] = clock.nsecsElapsed() / 1e6
        gaps.clear()
        collections.clear()
        timer.start()
        began = time.perf_counter()
        saver.save_soon()
        hand_overs.append((time.perf_counter() - began) * 1000)
        while not saved and saver.last_error == "":
            app.processEvents(QEventLoop.ProcessEventsFlag.AllEvents, 5)
        writes.append(time.perf_counter() - began)
        timer.stop()
        if saver.last_error:
            sys.exit(f"save failed: {saver.last_error}")
        stalls.append(max((end - start for start, end in gaps), default=0.0))
        own_stalls.append(max(map(without_collections, gaps), default=0.0))
        collected.append(max(((c[2] - c[1], c[0]) for c in collections), default=(0.0, 0)))
        edit(round_index + 1)
        began = time.perf_counter()
        saver.flush()
        flushes.append(time.perf_counter() - began)
        print(
            f"round {round_index + 1}: hand-over {hand_overs[-1]:.1f} ms, longest GUI stall {stalls[-1]:.0f} ms, "
            f"{own_stalls[-1]:.0f} ms not counting garbage collection (longest collection meanwhile: "
            f"{collected[-1][0]:.0f} ms, generation {collected[-1][1]}), write {writes[-1]:.1f} s, "
            f"flush on the GUI thread {flushes[-1]:.1f} s"
        )
    size = (folder / "annotations.json").stat().st_size / 1e6
    print(
        f"file {size:.0f} MB; median: hand-over {statistics.median(hand_overs):.1f} ms, longest GUI stall "
        f"{statistics.median(stalls):.0f} ms ({statistics.median(own_stalls):.0f} ms not counting garbage "
        f"collection), write {statistics.median(writes):.1f} s, "
        f"flush {statistics.median(flushes):.1f} s"
    )
    saver.shutdown()
    for path in folder.iterdir():
        path.unlink()
    folder.rmdir()


if __name__ == "__main__":
    main()
