"""GUI test fixtures: offscreen Qt, a temporary settings file, a tiny model, a folder of small PNGs, and the
``Driver``: the app as a user sees it (tests ask it what is shown, selected and saved instead of reaching
into the window's insides)."""

from __future__ import annotations

import os

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")  # before anything imports Qt

import json  # noqa: E402
from collections.abc import Callable  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402
from PIL import Image  # noqa: E402
from PySide6.QtCore import QPoint, QPointF, Qt  # noqa: E402
from PySide6.QtWidgets import QApplication, QDockWidget  # noqa: E402

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
    driver = Driver(qtbot, window)
    driver.load_model(weights_file)
    assert driver.open(image_folder, wait_for_prediction=True)
    return window


@pytest.fixture
def driver(qtbot, window) -> Driver:
    """The fresh window (nothing open), driven as a user does."""
    return Driver(qtbot, window)


@pytest.fixture
def ready(qtbot, loaded) -> Driver:
    """The ``loaded`` window (tiny model, image folder, first prediction on screen), driven as a user does."""
    return Driver(qtbot, loaded)


LEFT = Qt.MouseButton.LeftButton
MOVE_GAP_MS = 15  # pyqtgraph delivers at most one mouse move per 10 ms


class Driver:
    """Does what a user does (open, keys, clicks, drags, sliders) and answers what a user would see: what
    is shown and selected, the image list's rows, the status line, what is saved on disk. Waits go through
    ``wait_idle``: nothing loading, nothing inferring, the newest result drawn."""

    def __init__(self, qtbot, window) -> None:  # noqa: ANN001
        self.qtbot, self.window = qtbot, window

    # ----- what is open (the Session) -----
    @property
    def session(self):  # noqa: ANN201 - gui.session.session.Session
        return self.window.session

    @property
    def prediction(self):  # noqa: ANN201 - the current image's Prediction, or None
        return self.session.prediction

    @property
    def shown(self) -> list[int]:
        """Indices into ``prediction`` of the detections drawn, in the instance list's order."""
        return self.session.shown

    @property
    def index(self) -> int:
        return self.session.index

    @property
    def image(self) -> np.ndarray | None:
        return self.session.image

    @property
    def project(self):  # noqa: ANN201 - gui.session.project.Project | None
        return self.session.project

    def class_name(self, label: int) -> str:
        return self.session.class_name(int(label))

    # ----- doing -----
    def open(self, path: str | Path, wait: bool = True, wait_for_prediction: bool = False) -> bool:
        """File > Open (a folder, an annotation file or an image): waits for the project to be read (off the GUI
        thread; False when it could not be, or nothing was read), then for the image (and its prediction)."""
        controller = self.window.controller
        results: list[bool] = []
        controller.opened.connect(results.append)
        try:
            opened = self.window.open_path(path)
            if opened:
                self.wait_until(lambda: bool(results) and not controller.reading, timeout=30000)
                opened = results[-1]
        finally:
            controller.opened.disconnect(results.append)
        if opened and wait_for_prediction:
            self.wait_until(lambda: self.prediction is not None and self.is_idle(), timeout=30000)
        elif opened and wait:
            self.wait_until(lambda: self.image is not None and self.is_idle(), timeout=30000)
        return opened

    def load_model(self, path: str | Path, wait: bool = True) -> None:
        self.window.load_weights(path)
        if wait:
            self.wait_until(lambda: self.model_path() is not None, timeout=30000)

    def drop(self, paths: list[str]) -> None:
        from gui.window import menus

        menus.open_dropped(self.window, [str(p) for p in paths])

    def go_to(self, index: int) -> None:
        self.window.controller.go_to(index)

    def step(self, delta: int) -> None:
        self.window.controller.step(delta)

    def predict_all(self) -> None:
        self.window.controller.predict_all()

    def wait_until(self, condition: Callable[[], bool], timeout: int = 10000) -> None:
        self.qtbot.waitUntil(condition, timeout=timeout)

    def is_idle(self) -> bool:
        return self.window.controller.is_idle()

    def wait_idle(self, timeout: int = 30000) -> None:
        self.wait_until(self.is_idle, timeout=timeout)

    def set_slider(self, name: str, value: float) -> None:
        self.window.thresholds.sliders[name].set_value(value)

    def slider(self, name: str) -> float:
        return self.window.thresholds.sliders[name].value()

    def settings(self):  # noqa: ANN201 - PredictSettings
        """The thresholds as the sliders say."""
        return self.window.thresholds.settings()

    def show_layer(self, name: str, on: bool = True) -> None:
        self.window.overlays.checks[name].setChecked(on)

    def filter_class(self, name: str) -> None:
        """The instance list's class filter; "" for all classes."""
        combo = self.window.instances.class_filter
        combo.setCurrentIndex(0) if not name else combo.setCurrentText(name)

    def pick_row(self, row: int) -> None:
        """Click a row of the instance list."""
        self.window.instances.table.selectRow(row)

    def press(self, key, modifier=Qt.KeyboardModifier.NoModifier) -> None:  # noqa: ANN001
        """A key press on the canvas (where the focus is while drawing); menu shortcuts fire from there."""
        self.qtbot.keyClick(self.window.canvas, key, modifier)

    def type_in_window(self, key) -> None:  # noqa: ANN001
        """A key press on the window itself."""
        self.qtbot.keyClick(self.window, key)

    def menu(self, text: str) -> None:
        """Choose the menu entry called ``text``, as the menu bar spells it (with its &)."""
        for top in self.window.menuBar().actions():
            for action in top.menu().actions():
                if action.text() == text:
                    action.trigger()
                    return
        raise AssertionError(f"no menu entry {text!r}")

    def close_window(self) -> bool:
        """Close the window as its title bar's X does; True when it is still open (the close was refused)."""
        self.window.close()
        return self.window.isVisible()

    def widget_point(self, x: float, y: float) -> QPoint:
        return self.window.canvas.image_to_widget(x, y)

    def image_point(self, point: QPoint) -> tuple[float, float]:
        """Where a mouse event at viewport pixel ``point`` lands in the image (what the tools receive)."""
        canvas = self.window.canvas
        p = canvas.view.mapSceneToView(canvas.mapToScene(point))
        return float(p.x()), float(p.y())

    def hover(self, point: QPoint) -> None:
        """The mouse travels to ``point`` first, as a hand does (without it Qt takes a quick press somewhere
        else for the second half of a double click, and pyqtgraph drops moves closer than its rate limit)."""
        self.qtbot.wait(MOVE_GAP_MS)
        self.qtbot.mouseMove(self.window.canvas.viewport(), point)

    def click(self, x: float, y: float, modifier=Qt.KeyboardModifier.NoModifier) -> tuple[float, float]:  # noqa: ANN001
        """A left click at image point (x, y); returns where it landed in the image."""
        point = self.widget_point(x, y)
        self.hover(point)
        self.qtbot.mouseClick(self.window.canvas.viewport(), LEFT, modifier, point)
        return self.image_point(point)

    def drag(self, points: list[tuple[float, float]], steps: int = 4) -> list[tuple[float, float]]:
        """Press at the first point, move through the others (a few moves per segment), release at the last.
        Returns the image coordinates the tools saw, press first."""
        viewport = self.window.canvas.viewport()
        pixels = [self.widget_point(x, y) for x, y in points]
        self.hover(pixels[0])
        self.qtbot.mousePress(viewport, LEFT, pos=pixels[0])
        for a, b in zip(pixels[:-1], pixels[1:]):
            for t in np.linspace(0, 1, steps + 1)[1:]:
                self.qtbot.wait(MOVE_GAP_MS)
                x, y = round(a.x() + t * (b.x() - a.x())), round(a.y() + t * (b.y() - a.y()))
                self.qtbot.mouseMove(viewport, QPoint(x, y))
        self.qtbot.wait(MOVE_GAP_MS)
        self.qtbot.mouseRelease(viewport, LEFT, pos=pixels[-1])
        return [self.image_point(p) for p in pixels]

    def hover_image(self, x: float, y: float) -> None:
        """The mouse over image point (x, y), as the canvas's scene reports it."""
        canvas = self.window.canvas
        canvas.scene().sigMouseMoved.emit(canvas.view.mapViewToScene(QPointF(x, y)))

    # ----- what the user sees -----
    def image_rows(self) -> list[str]:
        """The image list's rows: "[state]  name"."""
        images = self.window.images
        return [images.row_text(r) for r in range(images.list.count())]

    def instance_rows(self) -> list[tuple[str, str, str]]:
        """The instance list's rows: (class, score, area) as shown."""
        instances = self.window.instances
        return [instances.row(r) for r in range(instances.row_count())]

    def shown_count(self) -> int:
        """How many detections the instance list shows."""
        return self.window.instances.row_count()

    def selected_row(self) -> int:
        """The instance list's selected row (-1: none)."""
        rows = self.window.instances.table.selectionModel().selectedRows()
        return rows[0].row() if rows else -1

    def selected_prediction(self) -> int:
        """The selected prediction's row among those shown (-1: none)."""
        return self.session.selection.prediction

    def selected_annotations(self) -> list:
        return list(self.session.selection.annotations)

    def overlay_pixels(self) -> np.ndarray:
        """The prediction masks layer as full-image (H,W,4) uint8, as drawn."""
        return self.window.canvas.mask_rgba()

    def layer(self, name: str):  # noqa: ANN201 - the canvas layer's graphics item
        return self.window.canvas.layers[name]

    def proposals_drawn(self) -> int:
        return self.layer("proposals").count()

    def highlighted(self) -> int:
        """The detection drawn highlighted (its box), -1 for none."""
        return self.layer("boxes").highlighted

    def annotations_drawn(self) -> int:
        """How many annotations the annotation layer draws."""
        return len(self.window.editor.shown)

    def status(self) -> str:
        return self.window.messages.status.text()

    def error(self) -> str:
        """The red banner's text ("" when hidden)."""
        return self.window.messages.error_text()

    def hint(self) -> str:
        """The message over the canvas ("" when none)."""
        return self.window.canvas.message_text()

    def edit_status(self) -> str:
        return self.window.messages.edit_status.text()

    def title(self) -> str:
        return self.window.windowTitle()

    def tool(self) -> str:
        return self.window.editor.tool_name

    def brush_radius(self) -> int:
        return self.window.editor.brush_radius

    def polygon_points(self) -> list:
        """The vertices of the polygon being drawn."""
        return self.window.editor.tools["polygon"].points

    def pending_boxes(self) -> int:
        """Boxes drawn whose mask the model has not answered yet."""
        return len(self.window.editor.pending_boxes)

    def class_names_listed(self) -> list[str]:
        return self.window.classes.names()

    # ----- the model and its worker -----
    def weights_path(self) -> str:
        """The weights the window uses (set as soon as a load is asked; ``model_path`` once it has loaded)."""
        return self.session.weights_path

    def model_path(self) -> str | None:
        model = self.window.inference.model
        return None if model is None else str(model.path)

    def stage_runs(self) -> dict[str, int]:
        """How often each stage of the model has run since it loaded (what a slider move re-ran)."""
        return self.window.inference.worker.predictor.stage_runs

    def requests_sent(self) -> int:
        return self.window.inference.requests_sent

    def inference_busy(self) -> bool:
        return self.window.inference.busy

    def dropped_results(self) -> int:
        return self.window.inference.dropped_results

    def hold_inference(self) -> list[int]:
        """The worker waits before each prediction until ``release_inference``; returns the list the ids of
        the requests it starts are appended to."""
        import threading

        worker = self.window.inference.worker
        started: list[int] = []
        worker.started.connect(started.append)
        worker.pause_before_predict = threading.Event()
        return started

    def release_inference(self) -> None:
        worker = self.window.inference.worker
        event, worker.pause_before_predict = worker.pause_before_predict, None
        if event is not None:
            event.set()

    def showing_newest_result(self) -> bool:
        """The result drawn answers the newest request."""
        client = self.window.inference
        return client.shown_id == client.latest_id

    # ----- the Train panel and its runs -----
    @property
    def _panel(self):  # noqa: ANN202 - gui.panels.train_panel.TrainPanel
        return self.window.train_panel

    def open_train_panel(self) -> None:
        """Model > Train…"""
        self.menu("&Train…")

    def train_panel_shown(self) -> bool:
        return self.window.train_dock.isVisible()

    def set_train_option(self, name: str, value) -> None:  # noqa: ANN001
        """One of the panel's options: a list's entry (by its value, else its text) or a number."""
        widget = getattr(self._panel, name)
        if hasattr(widget, "findData"):
            index = widget.findData(value)
            widget.setCurrentIndex(index if index >= 0 else widget.findText(str(value)))
        else:
            widget.setValue(value)

    def click_train_box(self, name: str) -> None:
        """Click one of the panel's check boxes (as a user does: the mouse, on its square)."""
        from PySide6.QtCore import Qt
        from PySide6.QtWidgets import QStyle, QStyleOptionButton

        box = getattr(self._panel, name)
        option = QStyleOptionButton()
        box.initStyleOption(option)  # the box's square: a click beyond its text does not toggle it
        square = box.style().subElementRect(QStyle.SubElement.SE_CheckBoxIndicator, option, box)
        self.qtbot.mouseClick(box, Qt.MouseButton.LeftButton, pos=square.center())

    def train_widget_enabled(self, name: str) -> bool:
        return getattr(self._panel, name).isEnabled()

    def train_option(self, name: str):  # noqa: ANN201
        """What one of the panel's lists has chosen (its value)."""
        return getattr(self._panel, name).currentData()

    def train_choices(self, name: str) -> list[tuple[object, str]]:
        """One of the panel's lists: (value, text as shown) for each entry."""
        combo = getattr(self._panel, name)
        return [(combo.itemData(r), combo.itemText(r)) for r in range(combo.count())]

    def train_request(self):  # noqa: ANN201 - gui.training.process.TrainRequest
        """What pressing Train would ask the trainer for, as the panel's widgets stand."""
        return self._panel.options()

    def press_train(self) -> None:
        self.qtbot.mouseClick(self._panel.train_button, LEFT)

    def press_cancel_training(self) -> None:
        self.qtbot.mouseClick(self._panel.cancel_button, LEFT)

    def train_buttons(self) -> tuple[bool, bool]:
        """Whether Train and Cancel can be pressed."""
        return self._panel.train_button.isEnabled(), self._panel.cancel_button.isEnabled()

    def train_status(self) -> str:
        return self._panel.status.text()

    def train_progress(self) -> tuple[int, int]:
        """The progress bar: (value, maximum)."""
        return self._panel.progress.value(), self._panel.progress.maximum()

    def loss_curve(self, term: str) -> tuple[np.ndarray, np.ndarray]:
        """The plotted curve of loss ``term``: (iterations, values)."""
        return self._panel.plot.points(term)

    def train_progress_text(self) -> str:
        """The progress bar's text as shown ("3 / 40")."""
        return self._panel.progress.text()

    def dot_drawn_at(self, term: str, x: float, y: float) -> bool:
        """The loss plot, as drawn on screen, holds a dot of loss ``term``'s colour at data point (x, y): most of the
        5x5 pixels there are of that colour (a line through the point covers fewer)."""
        from PySide6.QtCore import QPointF as Point

        from gui.panels.loss_plot import TERM_COLORS

        plot = self._panel.plot.loss_plot
        self.qtbot.wait(50)
        image = plot.grab().toImage()
        ratio = image.devicePixelRatio()
        at = plot.mapFromScene(plot.getPlotItem().vb.mapViewToScene(Point(x, y)))
        want = TERM_COLORS[term]
        hits = 0
        for dx in range(-2, 3):
            for dy in range(-2, 3):
                c = image.pixelColor(round((at.x() + dx) * ratio), round((at.y() + dy) * ratio))
                hits += max(abs(c.red() - want[0]), abs(c.green() - want[1]), abs(c.blue() - want[2])) < 40
        return hits >= 20

    def resume_offered(self, row: int) -> bool:
        """With row ``row`` of the Train panel's models list chosen, Resume can be pressed."""
        self._panel.models.setCurrentRow(row)
        return self._panel.resume_button.isEnabled()

    def press_resume(self, row: int) -> None:
        self._panel.models.setCurrentRow(row)
        self.qtbot.mouseClick(self._panel.resume_button, LEFT)

    def models_listed(self) -> list[str]:
        """The panel's list of the project's models, as shown."""
        models = self._panel.models
        return [models.item(r).text() for r in range(models.count())]

    def training(self) -> bool:
        """A trainer process is running."""
        return self.window.trainer.running

    def train_run(self):  # noqa: ANN201 - gui.training.process.TrainingRun | None
        """The latest run: its events as the trainer process reported them, its folder, its stderr."""
        return self.window.trainer.run

    def wait_training_ended(self, timeout: int) -> str:
        """Wait for the run started to end; how it ended ("done", "cancelled", "failed")."""
        trainer = self.window.trainer
        self.wait_until(lambda: trainer.run is not None and not trainer.running and bool(trainer.last_outcome), timeout)
        return trainer.last_outcome

    # ----- the Model panel: the folder's model, the classes box, the folder's runs (issue 13) -----
    def model_note(self) -> str:
        """What the Model panel says about the folder's own model."""
        return self.window.model_panel.project_note.text()

    def model_shown(self) -> str:
        """The model's name as the Model panel shows it."""
        return self.window.model_panel.name.text()

    def timing(self) -> str:
        """The status bar's line about the newest result (scale, tiles, where it came from, stage timings)."""
        return self.window.messages.timing.text()

    def wait_predict_all(self, timeout: int = 60000) -> None:
        """Model panel > Predict all, then wait until the batch has ended and nothing is in flight."""
        self.qtbot.mouseClick(self.window.model_panel.predict_all, LEFT)
        inference = self.window.inference
        self.wait_until(lambda: inference.batch_running, timeout=5000)
        self.wait_until(lambda: not inference.batch_running and self.is_idle(), timeout=timeout)

    def classes_box(self) -> str:
        """The Model panel's Classes box text ("" when hidden: the model's classes are the folder's)."""
        panel = self.window.model_panel
        return panel.classes_note.text() if panel.classes_box.isVisibleTo(panel) else ""

    def choose_class_mode(self, mode: str) -> None:
        """The Classes box's choice: "matching", "map", "add" (or "undecided")."""
        combo = self.window.model_panel.class_mode
        combo.setCurrentIndex(combo.findData(mode))

    def map_class(self, model_class: str, folder_class: str) -> None:
        """In map mode: model class -> one of the folder's ("" to hide it)."""
        combo = self.window.model_panel.class_map_combos[model_class]
        combo.setCurrentIndex(combo.findData(folder_class))

    def press_train_new_head(self) -> None:
        self.qtbot.mouseClick(self.window.model_panel.train_head, LEFT)

    def runs_listed(self) -> list[str]:
        """The Model panel's list of the folder's runs, as shown."""
        return self.window.model_panel.run_rows()

    def project_models_menu(self) -> list[str]:
        """Model > Project Models as it opens: its entries' texts."""
        menu = self.window.menu_actions.models_menu
        menu.aboutToShow.emit()
        return [action.text() for action in menu.actions()]

    def choose_run(self, row: int) -> None:
        self.window.model_panel.runs.setCurrentRow(row)

    def press_use_run(self) -> None:
        self.qtbot.mouseClick(self.window.model_panel.use_run, LEFT)

    def press_delete_run(self) -> None:
        self.qtbot.mouseClick(self.window.model_panel.delete_run, LEFT)

    # ----- the window's size -----
    def resize(self, width: int, height: int) -> None:
        self.window.resize(width, height)

    def window_size(self) -> tuple[int, int]:
        return self.window.width(), self.window.height()

    def smallest_height(self) -> int:
        """The least height the window's layout can take."""
        return max(self.window.minimumSizeHint().height(), self.window.minimumSize().height())

    def loss_plot_whole(self) -> bool:
        """The loss plot lies wholly inside the Train panel's dock (not cut off below)."""
        dock, plot = self.window.train_dock, self._panel.plot
        return dock.geometry().contains(plot.mapTo(self.window, plot.rect().bottomRight()))

    # ----- the window's layout on screen (issue 13, bug 5) -----
    def dock_widths(self) -> dict[str, int]:
        """The docks shown, by title: their widths as drawn."""
        return {d.windowTitle(): d.width() for d in self.window.findChildren(QDockWidget) if d.isVisible()}

    def canvas_size(self) -> tuple[int, int]:
        """The image view's size on screen (with the error banner's row above it)."""
        central = self.window.centralWidget()
        return central.width(), central.height()

    def settle_layout(self) -> None:
        """Let the window lay itself out after a resize (the docks follow on the next turns of the event loop)."""
        for _ in range(3):
            self.qtbot.wait(20)

    def on_screen(self) -> bool:
        """The whole window, its frame and its status bar included, lies on its screen's free area."""
        window, status = self.window, self.window.statusBar()
        area = (window.screen() or QApplication.primaryScreen()).availableGeometry()
        bottom_right = status.mapToGlobal(status.rect().bottomRight())
        return area.contains(window.frameGeometry()) and area.contains(bottom_right) and status.isVisible()

    def float_dock(self, title: str) -> None:
        """Undock a dock by its title (as a double click on its title bar does)."""
        dock = next(d for d in self.window.findChildren(QDockWidget) if d.windowTitle() == title)
        dock.setFloating(True)

    def start_again(self) -> Driver:
        """Quit (the settings are saved) and start a new window on the same settings file, as a user
        relaunching the app; returns the Driver of the new window (closed at the end of the test)."""
        from gui.window.main_window import MainWindow

        settings = self.window.settings
        self.window.close()
        window = MainWindow(settings, torch_threads=1)
        self.qtbot.addWidget(window)
        window.show()
        driver = Driver(self.qtbot, window)
        driver.settle_layout()
        return driver

    # ----- what may go stale (issue 13, bug 6) -----
    def batch_progress(self) -> str:
        """The Model panel's Predict all progress as shown ("5 / 5"); "" when it is hidden."""
        bar = self.window.model_panel.progress
        return bar.text() if bar.isVisible() else ""

    def draw_box(self, x0: float, y0: float, x1: float, y1: float) -> None:
        """The box tool (R) dragged from (x0, y0) to (x1, y1)."""
        self.press(Qt.Key.Key_R)
        self.drag([(x0, y0), (x1, y1)])

    # ----- what is saved -----
    def saved_path(self) -> Path | None:
        return self.window.saver.path

    def unsaved(self) -> bool:
        return self.window.saver.dirty

    def autosave_waits(self, ms: int) -> None:
        """The autosave's pause after an edit and its longest wait set to ``ms``: with a long one, only
        leaving the image (or Ctrl+S) starts a save."""
        saver = self.window.saver
        for timer in (saver._timer, saver._deadline):
            timer.setInterval(ms)

    def saved(self, timeout: int = 5000) -> dict:
        """Wait for the autosave (no flush: the debounced writer thread does it) and read the file."""
        saver = self.window.saver
        self.wait_until(lambda: not saver.dirty and saver.path is not None and saver.path.exists(), timeout)
        return json.loads(saver.path.read_text())

    def saved_annotations(self, image_name: str = "img_0.png", timeout: int = 5000) -> list[dict]:
        doc = self.saved(timeout)
        image = next(i for i in doc["images"] if Path(i["file_name"]).name == image_name)
        return [a for a in doc["annotations"] if a["image_id"] == image["id"]]

    # ----- display contrast (the Display panel) -----
    def record_model_inputs(self) -> list[np.ndarray]:
        """From now on, every image the model's Predictor is asked to predict is appended to the list returned."""
        predictor = self.window.inference.worker.predictor
        seen: list[np.ndarray] = []
        predict = predictor.predict

        def recording(image, *args, **kwargs):  # noqa: ANN001, ANN202
            seen.append(np.array(image, copy=True))
            return predict(image, *args, **kwargs)

        predictor.predict = recording
        return seen

    def shown_image(self) -> np.ndarray:
        """The pixels the canvas's image item shows."""
        return np.asarray(self.layer("image").image)

    def display_values(self) -> dict:
        """The Display panel as it reads: auto contrast on?, min, max, gamma."""
        panel = self.window.display_panel
        return {"auto": panel.auto_check.isChecked(), "minimum": panel.minimum.value(),
                "maximum": panel.maximum.value(), "gamma": round(panel.gamma.value(), 2)}  # fmt: skip

    def click_auto_contrast(self) -> None:
        self.qtbot.mouseClick(self.window.display_panel.auto_check, LEFT)

    def click_display_reset(self) -> None:
        self.qtbot.mouseClick(self.window.display_panel.reset_button, LEFT)

    def type_display_value(self, name: str, text: str) -> None:
        """Click into the Display panel's ``name`` box (minimum, maximum, gamma), type ``text``, press Enter."""
        box = getattr(self.window.display_panel, name)
        self.qtbot.mouseClick(box, LEFT)
        box.selectAll()
        self.qtbot.keyClicks(box, text)
        self.qtbot.keyClick(box, Qt.Key.Key_Return)

    # ----- vertex mode (V) -----
    def rings_shown(self) -> list[np.ndarray]:
        """The rings vertex mode draws with handles: (N,2) x, y each, outer rings and holes."""
        return [points.copy() for points, _closed in self.layer("shapes").shapes]

    def hole_rings_shown(self) -> list[bool]:
        """For each ring drawn, whether it is drawn as a hole."""
        return list(self.layer("shapes").holes)

    def wait_view_settled(self, timeout: int = 5000) -> None:
        """Wait until the canvas keeps its size and view range for 100 ms: a change of the panels (a row
        added, a longer status text) can resize the canvas, and a mouse event aimed before the view has
        followed lands elsewhere in the image."""
        canvas = self.window.canvas
        last: list = [None]

        def steady() -> bool:
            now = (canvas.size().toTuple(), tuple(canvas.view.viewRect().getRect()))
            same, last[0] = now == last[0], now
            return same

        steady()
        self.wait_until(lambda: self.qtbot.wait(100) or steady(), timeout)

    def right_click(self, x: float, y: float) -> None:
        point = self.widget_point(x, y)
        self.hover(point)
        self.qtbot.mouseClick(self.window.canvas.viewport(), Qt.MouseButton.RightButton, pos=point)

    def double_click(self, x: float, y: float) -> None:
        """Two clicks at image point (x, y) as Qt reports a hand's: press, release, double click, release (the
        double-click event stands for the second press; pyqtgraph sends its click on the release)."""
        point = self.widget_point(x, y)
        self.hover(point)
        viewport = self.window.canvas.viewport()
        self.qtbot.mouseClick(viewport, LEFT, pos=point)
        self.qtbot.mouseDClick(viewport, LEFT, pos=point)
        self.qtbot.mouseRelease(viewport, LEFT, pos=point)

    # ----- review queue, confidence colours, Errors view, image figures (issue 13, items 11-13) -----
    def review_action(self, name: str):  # noqa: ANN201 - QAction of the Review menu: queue, next, back, colour, ...
        return self.window.review.actions[name]

    def reviewing(self) -> bool:
        """The review queue runs (the Review menu's entry is checked)."""
        return self.review_action("queue").isChecked()

    def view_rect(self) -> tuple[float, float, float, float]:
        """The part of the image on screen: (x, y, width, height) in image pixels."""
        rect = self.window.canvas.visible_rect()
        return rect.x(), rect.y(), rect.width(), rect.height()

    def errors_layer(self) -> np.ndarray:
        """The Errors view's colours as a full-image (H,W,4) RGBA, as drawn (zeros where it draws nothing)."""
        return self.window.review.errors.full_rgba()

    def image_order(self) -> list[int]:
        """The images as the list orders them (their indices in the project, top row first)."""
        return self.window.images.order()

    def click_image_row(self, row: int) -> None:
        """A click on the ``row``-th row of the image list."""
        images = self.window.images.list
        point = images.visualItemRect(images.item(row)).center()
        self.qtbot.mouseClick(images.viewport(), LEFT, pos=point)

    def click_most_work_first(self) -> None:
        """The image list's "Most work first" check box."""
        box = self.window.images.sort_check
        self.qtbot.mouseClick(box, LEFT, pos=box.rect().center())


def stand_in_trainer(monkeypatch, folder: Path, script: str) -> Path:  # noqa: ANN001
    """The Train panel's trainer process replaced by ``script``, a Python program written to ``folder``/trainer.py
    and started with the real trainer's arguments: a test drives the panel through a run's events without
    training. Returns ``folder`` (for the files the script reads or writes)."""
    from gui.training import process

    folder.mkdir(exist_ok=True)
    (folder / "trainer.py").write_text(script)
    start = process.TrainingRun.start
    monkeypatch.setattr(process.TrainingRun, "start", lambda run, args: start(run, [str(folder / "trainer.py"), *args]))
    return folder
