"""Drive the real window through a few scenes and save pictures of it (run by scripts/screenshots.sh).

    python scripts/screenshots.py FOLDER WEIGHTS OUT_DIR [--image NAME_PREFIX] [--only large_image]

Scenes: main (masks, outlines, boxes with labels), proposals (the RPN's top proposals),
zoomed (zoomed in, an instance selected, a higher score threshold), annotations (the folder's
ground truth), no_model (no weights: what the window says), editing, training, large_image (a 4 x 4
mosaic of the folder's dense image at pixel scale, predicted in tiles). Each is QWidget.grab of the
window; one is also captured from the X server (import -window root) when DISPLAY is set.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def wait(app, condition, timeout: float = 120.0) -> None:  # noqa: ANN001
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise TimeoutError("the window did not get there in time")
        app.processEvents()
        time.sleep(0.01)


def settle(app, window, seconds: float = 0.4) -> None:  # noqa: ANN001
    wait(app, lambda: not window.inference.busy and not window.controller.reading)  # a project is read off-thread
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        app.processEvents()
        time.sleep(0.01)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("folder")
    parser.add_argument("weights")
    parser.add_argument("out", type=Path)
    parser.add_argument("--image", default="", help="start on the first image whose file name starts with this")
    parser.add_argument("--only", choices=["large_image"], help="only this scene")
    args = parser.parse_args()
    from gui.app import configure_torch_threads, create_app
    from gui.window.main_window import MainWindow
    from gui.window.settings import Settings

    app = create_app()
    args.out.mkdir(parents=True, exist_ok=True)
    threads = configure_torch_threads(None)
    with tempfile.TemporaryDirectory() as tmp:
        window = MainWindow(Settings(Path(tmp) / "s.ini"), torch_threads=threads)
        window.resize(1280, 800)
        window.move(0, 0)
        window.show()
        if args.only:
            window.load_weights(args.weights)
            wait(app, lambda: window.inference.model is not None)
            large_image_scene(app, window, Path(args.folder), Path(tmp), args.out)
            window.close()
            return 0
        window.open_path(args.folder)
        settle(app, window)
        window.grab().save(str(args.out / "no_model.png"))
        window.load_weights(args.weights)
        wait(app, lambda: window.inference.model is not None)
        start = next((i for i, p in enumerate(window.project.paths) if Path(p).name.startswith(args.image)), 0)
        window.go_to(start)
        scenes(app, window, args.out)
        edit_and_train_scenes(app, window, Path(args.folder), Path(tmp), args.out)
        large_image_scene(app, window, Path(args.folder), Path(tmp), args.out)
        window.close()
    return 0


def scenes(app, window, out: Path) -> None:  # noqa: ANN001
    window.overlays.checks["annotations"].setChecked(False)
    window.thresholds.sliders["score_threshold"].set_value(0.4)
    wait(app, lambda: window.prediction is not None)
    settle(app, window)
    window.grab().save(str(out / "main.png"))
    if os.environ.get("DISPLAY") and shutil.which("import"):
        subprocess.run(["import", "-window", "root", str(out / "xvfb_root.png")], check=False)
    window.overlays.checks["masks"].setChecked(False)
    window.overlays.checks["boxes"].setChecked(False)
    window.overlays.checks["proposals"].setChecked(True)
    window.thresholds.sliders["proposals_shown"].set_value(150)
    settle(app, window)
    window.grab().save(str(out / "proposals.png"))
    window.overlays.checks["proposals"].setChecked(False)
    window.overlays.checks["masks"].setChecked(True)
    window.overlays.checks["boxes"].setChecked(True)
    window.thresholds.sliders["score_threshold"].set_value(0.7)
    settle(app, window)
    if window.shown:
        crop = window.prediction.masks[window.shown[0]]
        cx, cy = crop.x0 + crop.mask.shape[1] / 2, crop.y0 + crop.mask.shape[0] / 2
        window.canvas.view.setRange(xRange=(cx - 60, cx + 60), yRange=(cy - 40, cy + 40), padding=0)
        window.instances.table.selectRow(0)
    settle(app, window)
    window.grab().save(str(out / "zoomed.png"))
    window.canvas.fit()
    window.overlays.checks["annotations"].setChecked(True)
    window.overlays.checks["masks"].setChecked(False)
    window.overlays.checks["boxes"].setChecked(False)
    settle(app, window)
    window.grab().save(str(out / "annotations.png"))


def edit_and_train_scenes(app, window, folder: Path, tmp: Path, out: Path) -> None:  # noqa: ANN001
    """On a copy of three images without annotations (the sample's file stays untouched): accept the
    predictions, draw a polygon half-way (editing.png), then a short real training run (training.png)."""
    from PySide6.QtCore import Qt

    from engine.data.io.images import is_image_file

    project = tmp / "project"
    project.mkdir()
    images = sorted(p for p in folder.iterdir() if is_image_file(p))[:3]
    for path in images:
        shutil.copy(path, project / path.name)
    window.open_path(project)
    wait(app, lambda: window.prediction is not None)
    settle(app, window)
    window.thresholds.sliders["score_threshold"].set_value(0.6)
    settle(app, window)
    window.overlays.checks["masks"].setChecked(True)
    window.overlays.checks["boxes"].setChecked(True)
    window.editor.accept_all()
    window.go_to(1)  # the next image: its predictions, with a polygon being drawn
    wait(app, lambda: window.prediction is not None and window.index == 1)
    settle(app, window)
    window.editor.set_tool("polygon")
    h, w = window.canvas.image_shape
    tool = window.editor.tools["polygon"]
    for fx, fy in ((0.55, 0.55), (0.8, 0.6), (0.85, 0.85), (0.6, 0.9)):
        tool.points.append((fx * w, fy * h))
    tool.cursor_point = (0.5 * w, 0.75 * h)
    tool._draw(window.canvas)
    settle(app, window)
    window.grab().save(str(out / "editing.png"))
    tool.cancel(window.canvas)
    window.editor.set_tool("edit")
    window.editor.accept_all()
    window.editor.mark_reviewed()
    window.train_dock.show()
    panel = window.train_panel
    panel.unit.setCurrentText("iterations")
    panel.length.setValue(12)
    window.resize(1280, 800)
    window.resizeDocks([window.train_dock], [330], Qt.Orientation.Vertical)
    window.trainer.start()
    wait(app, lambda: not window.trainer.running, timeout=900)
    settle(app, window, 1.0)
    window.grab().save(str(out / "training.png"))


DENSE_IMAGE = "0ea221716cf13710214dcd331a61cea48308c3940df1d28cfc7fd817c83714e1.png"  # 696 x 520, 369 nuclei of ~21 px
NUCLEUS_PX = 20.0


def large_image_scene(app, window, folder: Path, tmp: Path, out: Path) -> None:  # noqa: ANN001
    """A 4 x 4 mosaic of the folder's dense image (2784 x 2080 px, ~5,900 nuclei) with the model at pixel scale for
    nuclei of 20 px (set in the Model panel as a user does), predicted in tiles: large_image.png."""
    import numpy as np
    from PIL import Image

    from gui.panels.model_panel import PIXEL

    source = folder / DENSE_IMAGE
    if not source.exists():
        print(f"large_image: no {DENSE_IMAGE} in {folder}; skipped", file=sys.stderr)
        return
    mosaic = tmp / "large"
    mosaic.mkdir()
    pixels = np.asarray(Image.open(source).convert("RGB"))
    Image.fromarray(np.tile(pixels, (4, 4, 1))).save(mosaic / "mosaic_4x4.png")
    panel = window.model_panel
    panel.object_size.setValue(NUCLEUS_PX)
    panel.scale.setCurrentIndex(PIXEL)
    window.overlays.checks["annotations"].setChecked(False)
    window.overlays.checks["proposals"].setChecked(False)
    window.overlays.checks["masks"].setChecked(True)
    window.overlays.checks["boxes"].setChecked(False)  # thousands of boxes hide the masks at this zoom
    window.thresholds.sliders["score_threshold"].set_value(0.5)
    window.train_dock.hide()
    window.open_path(mosaic)
    wait(app, lambda: window.prediction is not None and window.prediction.height == 4 * pixels.shape[0], 1800)
    settle(app, window, 1.0)
    window.canvas.fit()
    settle(app, window, 0.5)
    window.grab().save(str(out / "large_image.png"))
    to_palette(out / "large_image.png")
    print(f"large_image: {len(window.shown)} nuclei shown; {window.messages.timing.text()}", file=sys.stderr)


def to_palette(path: Path, colors: int = 256) -> None:
    """Rewrite a screenshot PNG with a palette of ``colors`` (thousands of masks: 580 KB in RGB, 250 KB so)."""
    from PIL import Image

    image = Image.open(path).convert("RGB")
    image.quantize(colors, method=Image.Quantize.MEDIANCUT, dither=Image.Dither.NONE).save(path, optimize=True)


if __name__ == "__main__":
    sys.exit(main())
