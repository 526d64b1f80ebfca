"""The longest event-loop stall while inference runs (target <= 50 ms), real window, ResNet-18 FPN.

    QT_QPA_PLATFORM=offscreen python benchmarks/gui_stall.py            # the configurations side by side
    QT_QPA_PLATFORM=offscreen python benchmarks/gui_stall.py --threads 1 --nice 10   # one of them

A QTimer ticks every 5 ms on the GUI thread and records the gaps between ticks. The window opens a
folder of 800x1067 images and steps through them (a backbone run each), with the score slider moving
while each image is being predicted. The largest gap while the worker is busy is the stall the user
would feel. Each configuration runs in its own process: torch threads of the worker, and the nice
value (CPU priority) of the worker thread and the OpenMP threads it starts.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from gui_common import REPO, resnet18_model, test_image


def measure(threads: int, nice: int, images: int, folder: Path, weights: Path) -> None:
    from PySide6.QtCore import QElapsedTimer, QEventLoop, Qt, QTimer

    from gui.app import configure_torch_threads, create_app
    from gui.window.main_window import MainWindow
    from gui.window.settings import Settings

    app = create_app()
    configure_torch_threads(threads)
    window = MainWindow(Settings(folder / "settings.ini"), torch_threads=threads)
    window.inference.worker.nice = nice
    window.resize(1280, 800)
    window.show()
    clock, gaps_busy, gaps_idle, last = QElapsedTimer(), [], [], [0.0]
    clock.start()

    def tick() -> None:
        now = clock.nsecsElapsed() / 1e6
        (gaps_busy if window.inference.busy else gaps_idle).append(now - last[0])
        last[0] = now

    timer = QTimer()
    timer.setTimerType(Qt.TimerType.PreciseTimer)
    timer.timeout.connect(tick)

    def wait(condition) -> None:  # noqa: ANN001
        deadline = time.monotonic() + 300
        while not condition() and time.monotonic() < deadline:
            app.processEvents(QEventLoop.ProcessEventsFlag.AllEvents, 20)

    window.load_weights(weights)
    wait(lambda: window.inference.model is not None)
    window.open_path(folder)
    wait(lambda: window.prediction is not None)  # warm-up image, not measured
    last[0] = clock.nsecsElapsed() / 1e6
    timer.start(5)
    slider = window.thresholds.sliders["score_threshold"]
    per_image = []
    for i in range(1, images):
        start = time.perf_counter()
        window.step(1)
        for k in range(20):  # the user drags the slider while the backbone runs
            slider.set_value(0.3 + 0.01 * (k + i))
            app.processEvents(QEventLoop.ProcessEventsFlag.AllEvents, 30)
        wait(lambda: not window.inference.busy and window.prediction is not None)
        per_image.append(time.perf_counter() - start)
    timer.stop()
    window.close()
    busy = sorted(gaps_busy)
    print(
        f"threads {threads} nice {nice:2d}: longest stall while busy {busy[-1]:6.1f} ms, "
        f"99th pct {busy[int(0.99 * (len(busy) - 1))]:5.1f} ms, median tick {statistics.median(busy):4.1f} ms "
        f"({len(busy)} ticks); image + 20 slider moves {1000 * statistics.median(per_image):.0f} ms",
        flush=True,
    )


def prepare(folder: Path, images: int) -> Path:
    from PIL import Image

    from engine.checkpoint import save_checkpoint

    folder.mkdir(parents=True, exist_ok=True)
    for i in range(images):
        Image.fromarray(test_image(seed=10 + i)).save(folder / f"image_{i}.png")
    weights = folder.parent / "resnet18.safetensors"
    save_checkpoint(resnet18_model(), weights)
    return weights


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--threads", type=int)
    parser.add_argument("--nice", type=int)
    parser.add_argument("--images", type=int, default=4)
    parser.add_argument("--folder", type=Path)
    args = parser.parse_args()
    os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
    if args.threads is not None and args.folder is not None:
        measure(args.threads, args.nice or 0, args.images, args.folder, args.folder.parent / "resnet18.safetensors")
        return
    cores = os.cpu_count() or 2
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp) / "images"
        prepare(folder, args.images)
        print(f"{cores} cores; the app's default is threads {max(1, cores - 1)}, nice 0")
        configs = [(max(1, cores - 1), 0), (cores, 0), (max(1, cores - 1), 10), (cores, 10)]
        if args.threads is not None:
            configs = [(args.threads, args.nice or 0)]
        for threads, nice in configs:
            command = [sys.executable, __file__, "--threads", str(threads), "--nice", str(nice)]
            command += ["--images", str(args.images), "--folder", str(folder)]
            subprocess.run(command, env={**os.environ, "PYTHONPATH": str(REPO)}, check=False)


if __name__ == "__main__":
    main()
