"""GUI test fixtures: offscreen Qt, a temporary settings file, a tiny model, a folder of small PNGs."""

from __future__ import annotations

import os

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")  # before anything imports Qt

from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402
from PIL import Image  # noqa: E402

from engine.checkpoint import save_checkpoint  # noqa: E402
from engine.config import ModelConfig  # noqa: E402
from engine.model.mask_rcnn import MaskRCNN  # noqa: E402

TINY = dict(
    num_classes=3, min_size=(128,), max_size=256, fpn_channels=64, fpn_groups=16, representation_size=128,
    mask_head_channels=32,
)  # fmt: skip
CLASS_NAMES = ["cell", "blob"]


def tiny_model(seed: int = 0) -> MaskRCNN:
    """Random weights scaled so that scores spread over (0.3, 1) and masks fill most of their box."""
    torch.manual_seed(seed)
    model = MaskRCNN(ModelConfig(**TINY))
    with torch.no_grad():
        model.roi_heads.box_head.cls_score.weight.mul_(50)
        model.roi_heads.box_head.cls_score.bias.copy_(torch.tensor([0.0, 0.0, 0.5]))
        model.roi_heads.mask_head.logits.bias.fill_(1.0)
    return model.eval()


def write_images(folder: Path, count: int = 3, size: tuple[int, int] = (96, 128), seed: int = 0) -> list[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    paths = []
    for i in range(count):
        pixels = (rng.random((*size, 3)) * 255).astype(np.uint8)
        path = folder / f"img_{i}.png"
        Image.fromarray(pixels).save(path)
        paths.append(path)
    return paths


@pytest.fixture(autouse=True)
def _no_user_settings(tmp_path, monkeypatch):
    """Belt and braces: even a Settings() built without a path lands in tmp_path, never the user's file."""
    from gui.window.settings import ENV_VAR

    monkeypatch.setenv(ENV_VAR, str(tmp_path / "default-settings.ini"))


def pytest_collection_modifyitems(items):  # noqa: ANN001
    """GUI tests drive real mouse events and threads on a loaded 2-core machine: one that fails is run
    again (up to twice) before it counts as failed, and pytest's summary reports each rerun."""
    for item in items:
        if "tests/gui/" in str(item.fspath).replace("\\", "/"):
            item.add_marker(pytest.mark.flaky(reruns=2))


@pytest.fixture(autouse=True)
def _never_block_on_a_dialog(monkeypatch):
    """A modal question (unsaved edits on close) would wait forever offscreen: answer Discard, as the
    window's teardown wants; tests about that dialog patch it with their own answer."""
    from PySide6.QtWidgets import QMessageBox

    monkeypatch.setattr(QMessageBox, "question", staticmethod(lambda *a, **k: QMessageBox.StandardButton.Discard))


@pytest.fixture(scope="session")
def weights_file(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("model") / "tiny.safetensors"
    save_checkpoint(tiny_model(), path, class_names=CLASS_NAMES)
    return path


@pytest.fixture
def image_folder(tmp_path) -> Path:
    folder = tmp_path / "images"
    write_images(folder)
    return folder


@pytest.fixture
def settings(tmp_path):
    from gui.window.settings import Settings

    return Settings(tmp_path / "settings.ini")


@pytest.fixture
def window(qtbot, settings):
    """The real main window with a temporary settings file; the worker thread is stopped afterwards."""
    from gui.app import create_app
    from gui.window.main_window import MainWindow

    create_app()
    win = MainWindow(settings, torch_threads=1)
    qtbot.addWidget(win)
    win.resize(1000, 700)
    win.show()
    yield win
    win.shutdown()


@pytest.fixture
def loaded(qtbot, window, weights_file, image_folder):
    """The window with the tiny model and the image folder open, first prediction on screen."""
    window.load_weights(weights_file)
    qtbot.waitUntil(lambda: window.inference.model is not None, timeout=30000)
    assert window.open_path(image_folder)
    qtbot.waitUntil(lambda: window.prediction is not None and window.is_idle(), timeout=30000)
    return window
