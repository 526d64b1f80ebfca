"""Entry point: ``python main.py [FOLDER_OR_IMAGE] [--weights FILE]`` (installed as ``maskrcnn-studio``).

What opens with no arguments: the last folder and weights (settings), else the bundled sample
(resources/sample/ and resources/models/*.safetensors) when present, else an empty window that says
what to do. Smoke mode (``--screenshot OUT.png --quit-after-load``) runs the model on the first image,
saves a picture of the window, prints ``detections: N`` and exits 0 (1 when something failed).

The start-up guard (issue 15): opening a folder marks it in the settings until its first image is shown
(``Settings.mark_opening``). A mark still there at start-up means the app ended while opening that folder
(a file in it crashed a native library, say), so a plain start (no path given) opens nothing, says so,
and offers to open it anyway: one bad file cannot make every restart crash.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
SAMPLE_FOLDER = REPO / "resources" / "sample"
MODELS_FOLDER = REPO / "resources" / "models"


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="maskrcnn-studio", description="Mask R-CNN Studio")
    parser.add_argument("path", nargs="?", help="a folder of images, an annotation .json or an image")
    parser.add_argument("--weights", help="model weights: our .safetensors, or a torchvision .pth")
    parser.add_argument("--device", choices=("auto", "cuda", "cpu"), help="where the model runs")
    parser.add_argument("--settings", help="settings file (default: the per-user one)")
    parser.add_argument("--threads", type=int, help="torch threads for inference (default: cores - 1)")
    parser.add_argument("--screenshot", help="save a picture of the window here once the first image is predicted")
    parser.add_argument("--quit-after-load", action="store_true", help="exit once the first image is shown")
    parser.add_argument("--size", default="1280x800", help="window size in smoke mode, WxH")
    return parser.parse_args(argv)


def bundled_sample() -> tuple[Path | None, Path | None]:
    """(sample folder, sample model) when they are in resources/, else None for what is missing."""
    folder = SAMPLE_FOLDER if SAMPLE_FOLDER.is_dir() and any(SAMPLE_FOLDER.iterdir()) else None
    models = sorted(MODELS_FOLDER.glob("*.safetensors")) if MODELS_FOLDER.is_dir() else []
    return folder, (models[0] if models else None)


def choose_startup(args: argparse.Namespace, settings) -> tuple[str | None, str | None]:  # noqa: ANN001
    """What to open: arguments first, then the last session's folder/weights, then the bundled sample."""
    sample_folder, sample_model = bundled_sample()
    path = args.path
    if path is None and settings.last_folder and Path(settings.last_folder).exists():
        path = settings.last_folder
    if path is None and sample_folder is not None:
        path = str(sample_folder)
    weights = args.weights
    if weights is None and settings.last_weights and Path(settings.last_weights).is_file():
        weights = settings.last_weights
    if weights is None and sample_model is not None:
        weights = str(sample_model)
    return path, weights


def interrupted_open(args: argparse.Namespace, settings) -> str:  # noqa: ANN001 - gui.window.settings.Settings
    """What the last start was opening when it ended (a crash, a kill), for a plain start not to reopen it;
    "" when it got to its first image, or when a path is given (the user chose what to open)."""
    return settings.opening if args.path is None else ""


def configure_torch_threads(threads: int | None) -> int:
    """Leave a core for the GUI thread (the worker thread sets the same number for itself)."""
    import torch

    from engine.devices import worker_threads

    count = threads or worker_threads()
    torch.set_num_threads(count)
    return count


_garbage_collector = None  # pyqtgraph's GarbageCollector, kept alive for the life of the process


def create_app(argv: list[str] | None = None):  # noqa: ANN201 - QApplication
    """The QApplication (created once) with pyqtgraph configured row-major, and Python's cyclic garbage
    collection moved onto the GUI thread.

    Left automatic, the collector runs in whichever thread happens to allocate, often the inference thread;
    when it frees a Qt object there, Qt's object lock and Python's GIL can be taken in opposite orders by
    the two threads and the app hangs (seen in the GUI tests: ~QObject in the worker waiting for the GIL,
    the GUI thread holding the GIL and waiting for that lock). pyqtgraph's GarbageCollector turns automatic
    collection off and collects from a timer on the GUI thread instead.
    """
    global _garbage_collector
    import pyqtgraph as pg
    from pyqtgraph.util.garbage_collector import GarbageCollector
    from PySide6.QtWidgets import QApplication

    pg.setConfigOptions(imageAxisOrder="row-major", antialias=False)
    app = QApplication.instance() or QApplication(argv or [sys.argv[0]])
    app.setApplicationName("Mask R-CNN Studio")
    app.setOrganizationName("MaskRCNNStudio")
    if _garbage_collector is None:
        _garbage_collector = GarbageCollector(interval=0.5)
    return app


def main(argv: list[str] | None = None) -> int:
    args = parse_args(sys.argv[1:] if argv is None else argv)
    app = create_app()
    from gui.window.main_window import MainWindow
    from gui.window.settings import Settings

    settings = Settings(args.settings)
    if args.device:
        settings.device = args.device
    threads = configure_torch_threads(args.threads)
    window = MainWindow(settings, torch_threads=threads)
    path, weights = choose_startup(args, settings)
    crashed = interrupted_open(args, settings)
    if crashed:
        path = None  # not what crashed the last start, nor anything else in its place: the user chooses
    smoke = None
    if args.quit_after_load or args.screenshot:
        from gui.smoke import SmokeRun

        width, height = (int(v) for v in args.size.lower().split("x"))
        window.resize(width, height)
        smoke = SmokeRun(window, args.screenshot, expect_model=weights is not None)
    try:
        window.show()
        if smoke is None:  # smoke mode's size is the one asked for; else the whole window is on screen
            from PySide6.QtCore import QTimer

            for delay in (0, 500):  # the window manager's frame is known only once it has framed the window
                QTimer.singleShot(delay, window.fit_to_screen)
        open_startup(window, path, weights, explicit=bool(args.weights))
        if not path and crashed:
            offer_reopen(window, crashed)
        if smoke is not None:
            smoke.start()
        code = app.exec()
    except BaseException:
        window.shutdown()  # its threads joined: a QThread destroyed while running aborts the process
        raise
    return smoke.exit_code if smoke is not None else code


def open_startup(window, path: str | None, weights: str | None, explicit: bool) -> None:  # noqa: ANN001 - MainWindow
    """Load the start-up model and open the start-up folder. ``explicit``: the model was named on the command line
    (``--weights``), so it wins over the folder's remembered model and becomes the folder's model, as a model chosen
    with Model > Open Weights does; the last session's model or the bundled one leaves the folder's own in charge."""
    if weights:
        window.load_weights(weights, explicit=explicit)
    if path:
        window.open_path(path)


def offer_reopen(window, path: str) -> None:  # noqa: ANN001 - MainWindow
    """The last start ended while opening ``path``: say so, and offer to open it anyway."""
    text = (
        f"Mask R-CNN Studio closed unexpectedly while opening {path} last time, so it was not opened again "
        "(a file in it may crash the app). Open it anyway, or open another folder (File > Open Folder…)."
    )
    window.messages.offer(text, "Open anyway", lambda: window.open_path(path))


if __name__ == "__main__":
    sys.exit(main())
