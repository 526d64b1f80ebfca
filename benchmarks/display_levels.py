"""What display contrast (issue 13, item 15) costs when an image is put on the canvas, and its parts.

    QT_QPA_PLATFORM=offscreen python benchmarks/display_levels.py            # 1000x1000 and 6000x4000 RGB
    QT_QPA_PLATFORM=offscreen python benchmarks/display_levels.py --big      # and 10,000 x 10,000

A dim RGB image (values 0-59, as a microscope's) goes to ``Canvas.set_image`` without a display mapping
(plain) and through the Display panel's auto contrast (stretched), alternately, in the same run; each time
includes one repaint. Then, on the 6000x4000 image alone: the percentiles on the subsample
(``levels.auto_range``), the paired-byte lookup (``levels.apply_table``) and numpy's plain ``table[image]``.
Best of ``--rounds``. The machine these figures come from is loaded: compare columns of one run.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np  # noqa: E402


def best_ms(call, rounds: int) -> float:  # noqa: ANN001
    times = []
    for _ in range(rounds):
        start = time.perf_counter()
        call()
        times.append(time.perf_counter() - start)
    return 1000 * min(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--big", action="store_true", help="also 10,000 x 10,000 (2 x 300 MB of memory)")
    args = parser.parse_args()

    from PySide6.QtWidgets import QApplication

    from gui.canvas import levels
    from gui.canvas.view import Canvas
    from gui.panels.display_panel import DisplayPanel

    app = QApplication.instance() or QApplication([])
    canvas = Canvas()
    canvas.resize(1000, 700)
    canvas.show()
    panel = DisplayPanel()
    rng = np.random.default_rng(0)
    shapes = [(1000, 1000), (4000, 6000)] + ([(10_000, 10_000)] if args.big else [])
    print(f"{'image':>14} {'plain ms':>9} {'stretched ms':>13} {'ratio':>6}")
    for shape in shapes:
        image = np.repeat((rng.random(shape) * 60).astype(np.uint8)[:, :, None], 3, axis=2)

        def show(display, image=image):  # noqa: ANN001, ANN202
            canvas.display = display
            canvas.set_image(image)
            canvas.repaint()
            app.processEvents()

        plain = best_ms(lambda: show(None), args.rounds)
        stretched = best_ms(lambda: show(panel.display_pixels), args.rounds)
        label = f"{shape[1]}x{shape[0]}"
        print(f"{label:>14} {plain:9.0f} {stretched:13.0f} {stretched / plain:6.1f}")
    image = np.repeat((rng.random((4000, 6000)) * 60).astype(np.uint8)[:, :, None], 3, axis=2)
    table = levels.lookup_table(*levels.auto_range(image))
    print("6000x4000 RGB:")
    print(f"  auto_range (subsample)   {best_ms(lambda: levels.auto_range(image), args.rounds):7.0f} ms")
    print(f"  apply_table (pairs)      {best_ms(lambda: levels.apply_table(image, table), args.rounds):7.0f} ms")
    print(f"  table[image] (numpy)     {best_ms(lambda: table[image], args.rounds):7.0f} ms")
    print(f"  np.percentile (all)      {best_ms(lambda: np.percentile(image, (1, 99.8)), 1):7.0f} ms")


if __name__ == "__main__":
    main()
