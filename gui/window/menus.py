"""Menus, shortcuts (labelme's: A/D, Ctrl+S, Ctrl+wheel; the editing ones in gui/window/edit_menus.py),
file dialogs, recent folders, drops."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from PySide6.QtGui import QAction, QKeySequence
from PySide6.QtWidgets import QFileDialog

from engine.data.io.images import IMAGE_SUFFIXES
from gui.window import edit_menus as edit_actions
from gui.window.messages import WEIGHT_SUFFIXES

if TYPE_CHECKING:
    from gui.window.main_window import MainWindow


def _action(window: MainWindow, menu, text: str, slot, shortcut: str | None = None) -> QAction:  # noqa: ANN001
    action = QAction(text, window)
    if shortcut:
        action.setShortcut(QKeySequence(shortcut))
    action.triggered.connect(lambda _checked=False: slot())
    menu.addAction(action)
    return action


def build_menus(window: MainWindow) -> None:
    bar = window.menuBar()
    file_menu = bar.addMenu("&File")
    _action(window, file_menu, "Open &Folder…", lambda: open_folder_dialog(window), "Ctrl+O")
    _action(window, file_menu, "Open &Image…", lambda: open_image_dialog(window), "Ctrl+I")
    window.recent_menu = file_menu.addMenu("&Recent Folders")
    update_recent(window)
    window.save_action = _action(window, file_menu, "&Save", window.save, "Ctrl+S")
    window.save_action.setToolTip("Edits are saved automatically; Ctrl+S writes them now")
    file_menu.addSeparator()
    _action(window, file_menu, "&Quit", window.close, "Ctrl+Q")
    edit_actions.build_edit_menu(window, bar)
    edit_actions.build_tools_menu(window, bar)

    model_menu = bar.addMenu("&Model")
    _action(window, model_menu, "Open &Weights…", lambda: open_weights_dialog(window), "Ctrl+M")
    _action(window, model_menu, "&Predict All", window.predict_all)
    _action(window, model_menu, "&Cancel Predict All", window.inference.cancel_batch)
    model_menu.addSeparator()
    _action(window, model_menu, "&Train…", lambda: show_train(window), "Ctrl+T")
    window.models_menu = model_menu.addMenu("Project &Models")
    window.models_menu.aboutToShow.connect(lambda: update_models_menu(window))

    view_menu = bar.addMenu("&View")
    _action(window, view_menu, "&Fit to Window", window.canvas.fit, "F")
    _action(window, view_menu, "Zoom &In", lambda: window.canvas.view.scaleBy((0.8, 0.8)), "Ctrl++")
    _action(window, view_menu, "Zoom &Out", lambda: window.canvas.view.scaleBy((1.25, 1.25)), "Ctrl+-")
    view_menu.addSeparator()
    for name, check in window.overlays.checks.items():
        toggle = QAction(check.text(), window, checkable=True)
        toggle.setChecked(check.isChecked())
        toggle.toggled.connect(check.setChecked)
        check.toggled.connect(toggle.setChecked)
        view_menu.addAction(toggle)
        setattr(window, f"toggle_{name}", toggle)
    hide = QAction("&Hide Predictions Matching Annotations", window, checkable=True)
    hide.setChecked(window.overlays.hide_matched())
    hide.toggled.connect(window.overlays.hide_matched_check.setChecked)
    window.overlays.hide_matched_check.toggled.connect(hide.setChecked)
    view_menu.addAction(hide)
    view_menu.addAction(window.train_dock.toggleViewAction())
    view_menu.addAction(window.classes_dock.toggleViewAction())

    go_menu = bar.addMenu("&Go")
    _action(window, go_menu, "&Previous Image", lambda: window.step(-1), "A")
    _action(window, go_menu, "&Next Image", lambda: window.step(1), "D")

    help_menu = bar.addMenu("&Help")
    _action(window, help_menu, "&Shortcuts…", lambda: show_shortcuts(window), "F1")


def show_shortcuts(window: MainWindow) -> None:
    from gui.panels.shortcuts_dialog import ShortcutsDialog

    window.shortcuts_dialog = ShortcutsDialog(window)
    window.shortcuts_dialog.show()


def show_train(window: MainWindow) -> None:
    window.trainer.refresh()
    window.train_dock.show()
    window.train_dock.raise_()


def update_models_menu(window: MainWindow) -> None:
    """The models trained in this project (newest first); picking one loads it."""
    from gui.training.process import project_models

    menu = window.models_menu
    menu.clear()
    models = project_models(window.project.root) if window.project else []
    for path in models:
        action = menu.addAction(path.parent.name, lambda p=str(path): window.load_weights(p))
        action.setCheckable(True)
        action.setChecked(str(path) == window.weights_path)
    if not models:
        menu.addAction("No models trained in this project yet").setEnabled(False)


def update_recent(window: MainWindow) -> None:
    menu = window.recent_menu
    menu.clear()
    folders = window.settings.recent_folders()
    for folder in folders:
        action = menu.addAction(folder)
        action.triggered.connect(lambda _checked=False, f=folder: window.open_path(f))
    menu.setEnabled(bool(folders))


def _start_dir(window: MainWindow) -> str:
    return window.settings.last_folder or str(Path.home())


def open_folder_dialog(window: MainWindow) -> None:
    folder = QFileDialog.getExistingDirectory(window, "Open a folder of images", _start_dir(window))
    if folder:
        window.open_path(folder)


def open_image_dialog(window: MainWindow) -> None:
    patterns = " ".join(f"*{s}" for s in IMAGE_SUFFIXES)
    path, _ = QFileDialog.getOpenFileName(window, "Open an image", _start_dir(window), f"Images ({patterns})")
    if path:
        window.open_path(path)


def open_weights_dialog(window: MainWindow) -> None:
    patterns = " ".join(f"*{s}" for s in WEIGHT_SUFFIXES)
    start = str(Path(window.weights_path).parent) if window.weights_path else _start_dir(window)
    path, _ = QFileDialog.getOpenFileName(window, "Open model weights", start, f"Weights ({patterns})")
    if path:
        window.load_weights(path)


def open_dropped(window: MainWindow, paths: list[str]) -> None:
    """Weights files load as the model; the first folder, annotation file or image opens."""
    for path in paths:
        if Path(path).suffix.lower() in WEIGHT_SUFFIXES:
            window.load_weights(path)
    for path in paths:
        if Path(path).suffix.lower() not in WEIGHT_SUFFIXES:
            window.open_path(path)
            break
