"""The app with 5,000 instances on one image (issue 12, item 5): GUI-thread time per user action.

    QT_QPA_PLATFORM=offscreen python benchmarks/many_instances.py                      # this tree
    QT_QPA_PLATFORM=offscreen python benchmarks/many_instances.py --compare OLD_TREE   # OLD_TREE, then this one
    QT_QPA_PLATFORM=offscreen python benchmarks/many_instances.py --instances 2000 --profile slider

The real window (offscreen) with ``--instances`` predictions of nucleus size (ellipses of 10-48 px, a few
touching) on a 3000x3000 image, then the same accepted as annotations (Shift+A), then a 10,000 x 10,000
image with as many predictions. Each action is timed on the GUI thread from the call until the event loop
has nothing left to do (the repaint it causes included): wall time, and the GUI thread's own CPU time
(``time.thread_time``: what the other load of a shared machine does not inflate as much).

- slider: a new result after a slider move (the shown set alternates between all and 90 %): the Session's
  prediction and shown set, the canvas (masks, outlines, boxes), the instance list, one paint;
- hover / select prediction: the mouse moves over another detection (highlight), a detection is picked;
- select / delete / undo / brush annotation: with every prediction accepted (N annotations): one picked,
  deleted (Delete), the delete undone (Ctrl+Z), a brush stroke (press + release of the brush tool) on one;
- autosave: after one edit, the longest gap between the ticks of a 5 ms timer on the GUI thread from the
  hand-over until the file is written;
- list scroll / list filter: the instance table scrolled by a page (and painted); the class filter set to
  one class and back;
- 10k image: the image shown (``Canvas.set_image``), one pan step with the whole image in view, a zoom step
  (in or out, about the centre), a pan step at 1:1.

``--compare OLD_TREE`` runs the same script against the gui/ and engine/ of another checkout (e.g. ``git
archive`` of an older commit) in one process, then against this tree in another, and prints both tables
and the ratios: the "before" and "after" of one run on the same machine.
"""

from __future__ import annotations

import argparse
import cProfile
import gc
import json
import os
import pstats
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
HERE = Path(__file__).resolve().parent
SIZE = 3000
BIG = 10_000


def blobs(height: int, width: int, count: int, seed: int):  # noqa: ANN201 - Prediction
    """``count`` filled ellipses of 10-48 px (nuclei at pixel scale), spread over the image, best first."""
    import numpy as np

    from engine.structures import InstanceMask, Prediction, PredictSettings

    rng = np.random.default_rng(seed)
    boxes, masks = [], []
    for _ in range(count):
        h, w = (int(v) for v in rng.integers(10, 48, 2))
        x0, y0 = int(rng.integers(0, width - w)), int(rng.integers(0, height - h))
        yy, xx = np.mgrid[0:h, 0:w]
        mask = ((yy - h / 2 + 0.5) / (h / 2)) ** 2 + ((xx - w / 2 + 0.5) / (w / 2)) ** 2 <= 1
        masks.append(InstanceMask(x0, y0, mask))
        boxes.append([x0, y0, x0 + w, y0 + h])
    n = len(masks)
    proposals = np.asarray(boxes, np.float32)[: min(n, 1000)]
    return Prediction(
        height, width, np.asarray(boxes, np.float32), np.linspace(0.99, 0.3, n, dtype=np.float32),
        rng.integers(1, 3, n), masks, proposals, np.linspace(1, 0, len(proposals), dtype=np.float32),
        np.arange(n), PredictSettings(),
    )  # fmt: skip


def subset(prediction, fraction: float):  # noqa: ANN001, ANN201
    from engine.structures import Prediction

    p, keep = prediction, int(len(prediction) * fraction)
    return Prediction(
        p.height, p.width, p.boxes[:keep], p.scores[:keep], p.labels[:keep], p.masks[:keep], p.proposals,
        p.proposal_scores, p.keys[:keep], p.settings,
    )  # fmt: skip


def picture(height: int, width: int):  # noqa: ANN201 - (H,W,3) uint8
    import numpy as np

    rng = np.random.default_rng(1)
    tile = (rng.random((500, 500, 3)) * 120 + 60).astype(np.uint8)
    return np.ascontiguousarray(np.tile(tile, (-(-height // 500), -(-width // 500), 1))[:height, :width])


def run(args: argparse.Namespace) -> dict[str, list[tuple[float, float]]]:
    import numpy as np
    from PySide6.QtCore import QElapsedTimer, QEventLoop, QPointF, Qt, QTimer

    from gui.app import create_app
    from gui.window.main_window import MainWindow
    from gui.window.settings import Settings

    app = create_app()
    tmp = Path(tempfile.mkdtemp(prefix="many_instances_"))
    folder = tmp / "data"
    folder.mkdir()
    from PIL import Image

    Image.fromarray(picture(SIZE, SIZE)).save(folder / "dense.png")
    window = MainWindow(Settings(tmp / "settings.ini"), torch_threads=1)
    window.resize(1280, 800)
    window.show()
    session, editor, canvas, controller = window.session, window.editor, window.canvas, window.controller
    session.class_names = ["cell", "blob"]
    results: dict[str, list[tuple[float, float]]] = {}
    # (wall ms, CPU ms) of each garbage collection (pyqtgraph collects on a GUI-thread timer); the CPU time is
    # what the collection itself cost where the machine's other load stretches the wall time
    collections: list[tuple[float, float]] = []
    collection_start = [0.0, 0.0]

    def on_collection(phase: str, info: dict) -> None:
        if phase == "start":
            collection_start[:] = [time.perf_counter(), time.thread_time()]
        else:
            wall, cpu = time.perf_counter() - collection_start[0], time.thread_time() - collection_start[1]
            collections.append((1000 * wall, 1000 * cpu))

    gc.callbacks.append(on_collection)
    longest_collection: dict[str, tuple[float, float]] = {}
    profilers = {name: cProfile.Profile(time.thread_time) for name in args.profile.split(",") if name}  # CPU time

    def settle() -> None:
        app.processEvents()
        app.processEvents()  # the scene's dirty items are processed first, the paint they ask for next

    def timed(name: str, action) -> None:  # noqa: ANN001
        profiler = profilers.get(name)
        if profiler is not None:
            profiler.enable()
        collections.clear()
        wall, cpu = time.perf_counter(), time.thread_time()
        action()
        settle()
        canvas.viewport().repaint()  # a paint even where the platform would have deferred it
        results.setdefault(name, []).append((time.perf_counter() - wall, time.thread_time() - cpu))
        longest_collection[name] = max(longest_collection.get(name, (0.0, 0.0)), max(collections, default=(0.0, 0.0)))
        if profiler is not None:
            profiler.disable()

    def wait(condition, timeout: float = 120.0) -> None:  # noqa: ANN001
        end = time.monotonic() + timeout
        while not condition():
            if time.monotonic() > end:
                raise SystemExit("timed out")
            app.processEvents(QEventLoop.ProcessEventsFlag.AllEvents, 20)

    assert window.open_path(folder)
    wait(lambda: controller.is_idle() and session.image is not None)
    prediction = blobs(SIZE, SIZE, args.instances, seed=0)
    session.set_prediction(prediction)
    controller.refilter()
    settle()
    shown = len(session.shown)

    # ----- predictions -----
    sections = set(args.sections.split(","))
    for i in range(args.repeats if "predictions" in sections else 0):
        p = prediction if i % 2 else subset(prediction, 0.9)

        def slider(p=p) -> None:  # noqa: ANN001
            session.set_prediction(p)
            controller.refilter()

        timed("slider", slider)
    session.set_prediction(prediction)
    controller.refilter()
    settle()
    rng = np.random.default_rng(5)
    rows = rng.choice(len(session.shown), args.repeats if "predictions" in sections else 0, replace=False)
    for row in rows:
        box = prediction.boxes[session.shown[int(row)]]
        center = QPointF(float(box[0] + box[2]) / 2, float(box[1] + box[3]) / 2)
        scene = canvas.view.mapViewToScene(center)
        timed("hover", lambda scene=scene: canvas._on_mouse_moved(scene))
        timed("select prediction", lambda row=row: session.select((), int(row)))

    # ----- annotations: every prediction accepted -----
    session.clear_selection()
    start = time.perf_counter()
    if sections & {"annotations", "list"}:
        editor.accept_all()
    settle()
    accepted = time.perf_counter() - start
    autosave_gaps, idle_gaps = [], []
    clock = QElapsedTimer()
    clock.start()
    ticks: list[float] = []
    timer = QTimer()
    timer.setTimerType(Qt.TimerType.PreciseTimer)
    timer.setInterval(5)
    timer.timeout.connect(lambda: ticks.append(clock.nsecsElapsed() / 1e6))
    saver = window.saver
    brush = editor.tools["brush"]
    for _ in range(args.repeats if "annotations" in sections else 0):
        instances = session.project.annotations(session.index)
        target = instances[int(rng.integers(len(instances)))]
        timed("select annotation", lambda target=target: editor.select([target]))
        timed("delete annotation", editor.delete_selected)
        timed("undo", editor.undo)
        instances = session.project.annotations(session.index)
        target = instances[int(rng.integers(len(instances)))]
        editor.select([target])
        editor.set_tool("brush")
        crop = session.project.crop(session.index, target)
        x, y = crop.x0 + crop.mask.shape[1] / 2, crop.y0 + crop.mask.shape[0] / 2

        def stroke(x=x, y=y) -> None:  # noqa: ANN001
            brush.press(canvas, QPointF(x, y), None)
            brush.move(canvas, QPointF(x + 6, y + 3), None)
            brush.release(canvas, QPointF(x + 8, y + 4), None)

        timed("brush", stroke)
        editor.set_tool("edit")
        settle()
        # the autosave of that edit: the longest gap between ticks while the file is written
        saver._stop_timers()
        written = []
        saver.saved.connect(written.append)
        ticks[:] = [clock.nsecsElapsed() / 1e6]
        sampler = StackSampler(clock)
        collections.clear()
        timer.start()
        saver.save_soon()
        wait(lambda written=written: written or saver.last_error, 60)
        timer.stop()
        ticks.append(clock.nsecsElapsed() / 1e6)
        sampler.stop()
        saver.saved.disconnect(written.append)
        gaps = np.diff(ticks)
        autosave_gaps.append((max(gaps) / 1000, 0.0))
        worst = int(np.argmax(gaps))
        print(
            f"# autosave {len(autosave_gaps)}: {saver._writer.memo.encoded} annotations encoded, "
            f"{ticks[-1] - ticks[0]:.0f} ms to the saved signal, longest GUI gap {gaps[worst]:.0f} ms "
            f"from {ticks[worst] - ticks[0]:.0f} ms; longest garbage collection (any thread) "
            f"{max(collections, default=(0.0, 0.0))[0]:.0f} ms",
            file=sys.stderr,
        )
        if gaps[worst] > 50:  # where the GUI thread was during that gap (sampled every 2 ms from another thread)
            print(sampler.report(ticks[worst], ticks[worst + 1]), file=sys.stderr)
        # the same while nothing runs: what the machine's other load alone does to the timer
        lasted = ticks[-1] - ticks[0]
        ticks[:] = [clock.nsecsElapsed() / 1e6]
        timer.start()
        wait(lambda lasted=lasted: clock.nsecsElapsed() / 1e6 - ticks[0] >= lasted)
        timer.stop()
        ticks.append(clock.nsecsElapsed() / 1e6)
        idle_gaps.append((max(np.diff(ticks)) / 1000, 0.0))
    if autosave_gaps:
        results["autosave (longest GUI gap)"] = autosave_gaps
        results["idle, as long (longest gap)"] = idle_gaps

    # ----- the instance list -----
    listing = window.instances
    table = listing.table
    bar = table.verticalScrollBar()
    for i in range(args.repeats if "list" in sections else 0):

        def scroll(i=i) -> None:  # noqa: ANN001
            bar.setValue((i * 7919) % max(1, bar.maximum()))
            table.viewport().repaint()

        timed("list scroll", scroll)
    combo = listing.class_filter
    for i in range(args.repeats if "list" in sections else 0):
        timed("list filter", lambda i=i: combo.setCurrentIndex(1 + i % 2 if i % 3 else 0))
    combo.setCurrentIndex(0)
    rows_listed = table.model().rowCount()

    # ----- a 10k x 10k image -----
    editor.undo_stack.clear()
    big = picture(BIG, BIG) if "big" in sections else None
    for _ in range(2 if big is not None else 0):
        timed("10k: image shown", lambda: (canvas.set_image(None), canvas.set_image(big)))
    big_prediction = blobs(BIG, BIG, args.instances if big is not None else 0, seed=1)
    session.set_prediction(big_prediction)
    session.set_shown(list(range(len(big_prediction))))
    canvas.fit()
    settle()
    view = canvas.view
    repeats = args.repeats if big is not None else 0
    for i in range(repeats):
        timed(
            "10k: pan, whole image",
            lambda i=i: (view.translateBy(x=(-1) ** i * 200.0, y=150.0), canvas._refresh_detail()),
        )
    canvas.fit()
    settle()
    for i in range(repeats):
        factor = 0.6 if (i // 4) % 2 == 0 else 1 / 0.6

        def zoom(factor=factor) -> None:  # noqa: ANN001
            view.scaleBy((factor, factor), center=view.viewRect().center())
            canvas._refresh_detail()

        timed("10k: zoom step", zoom)
    view.setRange(xRange=(5000, 6200), yRange=(5000, 5750), padding=0)
    canvas._refresh_detail()
    settle()
    for i in range(repeats):
        timed("10k: pan at 1:1", lambda i=i: (view.translateBy(x=(-1) ** i * 40.0, y=30.0), canvas._refresh_detail()))
    saver.flush()
    window.close()
    app.processEvents()
    print(
        f"# {args.instances} predictions on {SIZE}x{SIZE} ({shown} shown), accept all {accepted:.1f} s, "
        f"{rows_listed} rows listed; the same count on {BIG}x{BIG}",
        file=sys.stderr,
    )
    gc.callbacks.remove(on_collection)
    print(
        "# longest garbage collection within an action, wall ms (CPU ms): "
        + ", ".join(f"{name} {wall:.1f} ({cpu:.1f})" for name, (wall, cpu) in longest_collection.items()),
        file=sys.stderr,
    )
    for name, profiler in profilers.items():
        if name not in results:  # pstats cannot read a profiler that never ran
            print(f"# no action named {name!r} ran (names: {', '.join(results)})", file=sys.stderr)
            continue
        print(f"# profile of {name!r}", file=sys.stderr)
        pstats.Stats(profiler, stream=sys.stderr).sort_stats(os.environ.get("PROFILE_SORT", "cumtime")).print_stats(45)
    return results


class StackSampler:
    """Samples the GUI thread's Python stack every 2 ms from a thread of its own (it needs the GIL too, so a
    sample lands whenever the interpreter switches): where the GUI thread stands during a long gap, whether in
    a handler, a lock or the event loop waiting for the GIL."""

    def __init__(self, clock) -> None:  # noqa: ANN001 - QElapsedTimer
        import threading
        import traceback

        self.samples: list[tuple[float, str, str]] = []  # (ms, GUI thread's innermost frames, other threads')
        self._stop = threading.Event()
        main = threading.main_thread().ident

        def run() -> None:
            while not self._stop.wait(0.002):
                now = clock.nsecsElapsed() / 1e6
                frames = sys._current_frames()
                gui = frames.get(main)
                mine = threading.get_ident()
                others = "; ".join(
                    traceback.format_stack(frame, limit=1)[-1].strip().splitlines()[0]
                    for ident, frame in frames.items()
                    if ident not in (main, mine)
                )
                text = "".join(traceback.format_stack(gui, limit=4)) if gui is not None else ""
                self.samples.append((now, text, others))

        self._thread = threading.Thread(target=run, daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join()

    def report(self, start: float, end: float) -> str:
        inside = [s for s in self.samples if start <= s[0] <= end]
        counts: dict[str, int] = {}
        for _, text, others in inside:
            key = text + "   other threads: " + others
            counts[key] = counts.get(key, 0) + 1
        lines = [f"#   {len(inside)} samples in the gap; the GUI thread's most frequent stacks:"]
        for key, count in sorted(counts.items(), key=lambda kv: -kv[1])[:3]:
            lines.append(f"#   {count} x\n{key}")
        return "\n".join(lines)


def table_text(label: str, results: dict[str, list[list[float]]]) -> str:
    lines = [f"{label}", f"{'action':28s} {'median ms':>10s} {'worst ms':>10s} {'CPU median':>11s} {'CPU worst':>10s}"]
    for name, values in results.items():
        wall, cpu = [1000 * v[0] for v in values], [1000 * v[1] for v in values]
        lines.append(
            f"{name:28s} {statistics.median(wall):10.1f} {max(wall):10.1f} "
            f"{statistics.median(cpu):11.1f} {max(cpu):10.1f}"
        )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--instances", type=int, default=5000)
    parser.add_argument("--repeats", type=int, default=12)
    parser.add_argument("--tree", type=Path, default=HERE.parent, help="the checkout whose gui/ and engine/ run")
    parser.add_argument("--compare", type=Path, help="another checkout: run it first, then --tree")
    parser.add_argument("--sections", default="predictions,annotations,list,big", help="which parts to run")
    parser.add_argument("--profile", default="", help="cProfile these actions (names as printed, comma-separated)")
    parser.add_argument("--json", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.compare is not None:
        tables = {}
        for label, tree in (("before", args.compare), ("after", args.tree)):
            command = [sys.executable, __file__, "--tree", str(tree), "--json"]
            command += ["--instances", str(args.instances), "--repeats", str(args.repeats), "--sections", args.sections]
            load = os.getloadavg()[0]
            out = subprocess.run(command, check=False, capture_output=True, text=True)
            sys.stderr.write(out.stderr[-2000:] if "Traceback" in out.stderr or out.returncode else "")
            if out.returncode:  # e.g. an abort at exit after the figures were printed: they are still used
                print(f"# {label}: exit status {out.returncode}", file=sys.stderr)
            if not out.stdout.strip():
                raise SystemExit(f"{label}: no figures")
            sys.stderr.write("".join(line + "\n" for line in out.stderr.splitlines() if line.startswith("# ")))
            tables[label] = json.loads(out.stdout.strip().splitlines()[-1])
            print(table_text(f"{label} ({tree}), load average {load:.1f} at start", tables[label]), "\n", flush=True)
        print(f"{'action':28s} {'median after/before':>20s} {'worst after/before':>20s}")
        for name, after in tables["after"].items():
            before = tables["before"].get(name)
            if before:
                b, a = [1000 * v[0] for v in before], [1000 * v[0] for v in after]
                print(f"{name:28s} {statistics.median(a) / statistics.median(b):20.2f} {max(a) / max(b):20.2f}")
        return
    sys.path.insert(0, str(args.tree.resolve()))
    results = run(args)
    if args.json:
        print(json.dumps(results))
    else:
        print(
            table_text(
                f"{args.tree.resolve()} ({os.cpu_count()} cores, load average {os.getloadavg()[0]:.1f})", results
            )
        )


if __name__ == "__main__":
    main()
