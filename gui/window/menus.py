"""Menus, shortcuts (labelme's: A/D, Ctrl+S, Ctrl+wheel; the editing ones in gui/window/edit_menus.py),
file dialogs, recent folders, drops.

``build_menus`` returns the QActions it made as one ``Actions`` object; it sets nothing on the window.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from PySide6.QtGui import QAction, QKeySequence
from PySide6.QtWidgets import QDockWidget, QFileDialog, QMainWindow, QMenu, QToolBar

from engine.data.io.images import IMAGE_SUFFIXES
from gui.canvas.view import Canvas
from gui.editing.editor import Editor
from gui.panels.class_list import ClassList
from gui.panels.controls import OverlayPanel
from gui.panels.display_panel import DisplayPanel
from gui.session.session import Session
from gui.training.controller import TrainController
from gui.window import edit_menus
from gui.window.controller import ImageController
from gui.window.messages import WEIGHT_SUFFIXES
from gui.window.settings import Settings


class MenuHost(Protocol):
    """What the menus act on (the main window is one): the parts it built and opening a path."""

    settings: Settings
    session: Session
    controller: ImageController
    editor: Editor
    trainer: TrainController
    canvas: Canvas
    overlays: OverlayPanel
    display_panel: DisplayPanel
    classes: ClassList
    train_dock: QDockWidget
    classes_dock: QDockWidget

    def open_path(self, path: str | Path) -> bool: ...

    def reset_layout(self) -> None: ...


@dataclass
class Actions:
    """The actions of the menus and the tool bar that something else updates or tests look at."""

    save: QAction
    undo: QAction
    redo: QAction
    accept: QAction
    accept_all: QAction
    box_model: QAction
    tools: dict[str, QAction]  # by tool name (checkable, one at a time)
    layers: dict[str, QAction]  # View > layer toggles, by layer name (kept in step with the check boxes)
    hide_matched: QAction
    recent_menu: QMenu
    models_menu: QMenu
    toolbar: QToolBar


def _action(window: QMainWindow, menu, text: str, slot, shortcut: str | None = None) -> QAction:  # noqa: ANN001
    action = QAction(text, window)
    if shortcut:
        action.setShortcut(QKeySequence(shortcut))
    action.triggered.connect(lambda _checked=False: slot())
    menu.addAction(action)
    return action


def _toggle(window: QMainWindow, menu: QMenu, text: str, check) -> QAction:  # noqa: ANN001 - a QCheckBox
    """A checkable action kept in step with a check box, both ways."""
    toggle = QAction(text, window, checkable=True)
    toggle.setChecked(check.isChecked())
    toggle.toggled.connect(check.setChecked)
    check.toggled.connect(toggle.setChecked)
    menu.addAction(toggle)
    return toggle


def build_menus(window: QMainWindow, host: MenuHost) -> Actions:
    bar = window.menuBar()
    controller = host.controller
    file_menu = bar.addMenu("&File")
    _action(window, file_menu, "Open &Folder…", lambda: open_folder_dialog(window, host), "Ctrl+O")
    _action(window, file_menu, "Open &Image…", lambda: open_image_dialog(window, host), "Ctrl+I")
    recent_menu = file_menu.addMenu("&Recent Folders")
    update_recent(recent_menu, host)
    save = _action(window, file_menu, "&Save", controller.save, "Ctrl+S")
    save.setToolTip("Edits are saved automatically; Ctrl+S writes them now")
    _action(window, file_menu, "Save &As…", lambda: save_as_dialog(window, host), "Ctrl+Shift+S")
    file_menu.addSeparator()
    _action(window, file_menu, "&Quit", window.close, "Ctrl+Q")
    edit = edit_menus.build_edit_menu(window, bar, host.editor, host.classes.ask_add)
    tools, toolbar = edit_menus.build_tools_menu(window, bar, host.editor, edit)

    model_menu = bar.addMenu("&Model")
    _action(window, model_menu, "Open &Weights…", lambda: open_weights_dialog(window, host), "Ctrl+M")
    _action(window, model_menu, "&Predict All", controller.predict_all)
    _action(window, model_menu, "&Cancel Predict All", controller.inference.cancel_batch)
    model_menu.addSeparator()
    _action(window, model_menu, "&Train…", lambda: show_train(host), "Ctrl+T")
    models_menu = model_menu.addMenu("Project &Models")
    models_menu.aboutToShow.connect(lambda: update_models_menu(models_menu, host))

    view_menu = bar.addMenu("&View")
    canvas = host.canvas
    _action(window, view_menu, "&Fit to Window", canvas.fit, "F")
    _action(window, view_menu, "Zoom &In", lambda: canvas.view.scaleBy((0.8, 0.8)), "Ctrl++")
    _action(window, view_menu, "Zoom &Out", lambda: canvas.view.scaleBy((1.25, 1.25)), "Ctrl+-")
    view_menu.addSeparator()
    layers = {name: _toggle(window, view_menu, check.text(), check) for name, check in host.overlays.checks.items()}
    text = "&Hide Predictions Matching Annotations"
    hide_matched = _toggle(window, view_menu, text, host.overlays.hide_matched_check)
    _toggle(window, view_menu, "Auto &Contrast", host.display_panel.auto_check)  # the Display box's, both ways
    view_menu.addAction(host.train_dock.toggleViewAction())
    view_menu.addAction(host.classes_dock.toggleViewAction())
    _action(window, view_menu, "&Reset Layout", host.reset_layout)  # docks back in place, at first-run sizes

    go_menu = bar.addMenu("&Go")
    _action(window, go_menu, "&Previous Image", lambda: controller.step(-1), "A")
    _action(window, go_menu, "&Next Image", lambda: controller.step(1), "D")

    help_menu = bar.addMenu("&Help")
    _action(window, help_menu, "&Shortcuts…", lambda: show_shortcuts(window), "F1")
    return Actions(save, *edit, tools, layers, hide_matched, recent_menu, models_menu, toolbar)


def show_shortcuts(window: QMainWindow) -> None:
    from gui.panels.shortcuts_dialog import ShortcutsDialog

    dialog = ShortcutsDialog(window)  # parented to the window: it lives as long as the window does
    dialog.show()


def show_train(host: MenuHost) -> None:
    host.trainer.refresh()
    host.train_dock.show()
    host.train_dock.raise_()


def update_models_menu(menu: QMenu, host: MenuHost) -> None:
    """The models trained in this project (newest first); picking one loads it."""
    from gui.training.process import project_models, run_info

    menu.clear()
    session = host.session
    models = project_models(session.project.root) if session.project else []
    for path in models:  # by the run's date and how far it got (every run's file is model.safetensors)
        label = run_info(path).label(size=False)
        action = menu.addAction(label, lambda p=str(path): host.controller.load_weights(p))
        action.setCheckable(True)
        action.setChecked(str(path) == session.weights_path)
    if not models:
        menu.addAction("No models trained in this project yet").setEnabled(False)


def update_recent(menu: QMenu, host: MenuHost) -> None:
    menu.clear()
    folders = host.settings.recent_folders()
    for folder in folders:
        action = menu.addAction(folder)
        action.triggered.connect(lambda _checked=False, f=folder: host.open_path(f))
    menu.setEnabled(bool(folders))


def _start_dir(host: MenuHost) -> str:
    return host.settings.last_folder or str(Path.home())


def open_folder_dialog(window: QMainWindow, host: MenuHost) -> None:
    folder = QFileDialog.getExistingDirectory(window, "Open a folder of images", _start_dir(host))
    if folder:
        host.open_path(folder)


def open_image_dialog(window: QMainWindow, host: MenuHost) -> None:
    patterns = " ".join(f"*{s}" for s in IMAGE_SUFFIXES)
    path, _ = QFileDialog.getOpenFileName(window, "Open an image", _start_dir(host), f"Images ({patterns})")
    if path:
        host.open_path(path)


def save_as_dialog(window: QMainWindow, host: MenuHost) -> None:
    """Write the annotations to another COCO file, which the edits are saved to from then on."""
    current = host.controller.saver.path
    if current is None:
        return
    path, _ = QFileDialog.getSaveFileName(window, "Save the annotations as", str(current), "COCO JSON (*.json)")
    if path:
        host.controller.save_as(path)


def open_weights_dialog(window: QMainWindow, host: MenuHost) -> None:
    patterns = " ".join(f"*{s}" for s in WEIGHT_SUFFIXES)
    weights = host.session.weights_path
    start = str(Path(weights).parent) if weights else _start_dir(host)
    path, _ = QFileDialog.getOpenFileName(window, "Open model weights", start, f"Weights ({patterns})")
    if path:
        host.controller.load_weights(path)


def open_dropped(host: MenuHost, paths: list[str]) -> None:
    """Weights files load as the model; the first folder, annotation file or image opens."""
    for path in paths:
        if Path(path).suffix.lower() in WEIGHT_SUFFIXES:
            host.controller.load_weights(path)
    for path in paths:
        if Path(path).suffix.lower() not in WEIGHT_SUFFIXES:
            host.open_path(path)
            break
