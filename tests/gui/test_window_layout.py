"""Issue 13, bug 5: the window on screen. The first window fits the screen (its status bar too); the docks come
back to their sizes after the window is shrunk to 640x480 and grown again; a broken saved layout is not
restored; View > Reset Layout puts the docks back.

The offscreen platform's screen is 800x800, so the "large" window here is 780x760 (a window that does not fit
the screen is not restored, by design); the real-window check at 1280x800 is in docs/GUI.md."""

from __future__ import annotations

from PySide6.QtCore import QMargins, QRect

from gui.window import layout
from tests.gui.conftest import Driver

LARGE, SMALL = (780, 760), (640, 480)


def test_the_first_window_fits_the_screen_with_its_status_bar(qtbot, settings):
    from gui.window.main_window import MainWindow

    window = MainWindow(settings, torch_threads=1)  # nothing saved: a first run
    qtbot.addWidget(window)
    window.show()
    app = Driver(qtbot, window)
    app.settle_layout()
    assert app.on_screen()
    width, height = app.canvas_size()
    assert width >= 0.4 * app.window_size()[0] and height >= 300  # and the image has most of the room


def test_on_a_1280x800_screen_with_a_panel_and_a_title_bar_the_status_bar_is_on_screen():
    available = QRect(0, 27, 1280, 773)  # a 27 px desktop panel at the top
    frame = QMargins(1, 30, 1, 1)  # a title bar and thin borders
    inner = layout.fitting_geometry(available, frame)
    outer = inner.marginsAdded(frame)
    assert available.contains(outer) and inner.bottom() <= 800 - 2
    big = layout.fitting_geometry(QRect(0, 0, 2560, 1440), frame)
    assert (big.width(), big.height()) == (1280, 800)  # a large screen gets the full size


def test_docks_come_back_after_a_shrink_to_640x480_and_back(driver):
    app = driver
    app.resize(*LARGE)
    app.settle_layout()
    before = app.dock_widths()
    assert set(before) >= {"Images", "Instances", "Controls", "Classes"}
    app.resize(*SMALL)
    app.settle_layout()
    width, height = app.canvas_size()
    assert width >= layout.CANVAS_MIN.width() and height >= layout.CANVAS_MIN.height()  # the image stays in view
    assert app.window_size() == SMALL
    app.resize(*LARGE)
    app.settle_layout()
    after = app.dock_widths()
    assert all(abs(after[title] - before[title]) <= 1 for title in before), (before, after)


def test_a_layout_saved_small_is_restored_and_still_grows_back(driver):
    app = driver
    app.resize(*LARGE)
    app.settle_layout()
    before = app.dock_widths()
    app.resize(*SMALL)
    app.settle_layout()
    again = app.start_again()
    assert again.window_size() == SMALL  # the user's size: sound, so restored
    again.resize(*LARGE)
    again.settle_layout()
    after = again.dock_widths()
    assert all(abs(after[title] - before[title]) <= 1 for title in before), (before, after)


def test_a_broken_saved_layout_is_discarded_not_restored(driver):
    """The layout today's code saved after a shrink: the image view squeezed to a sliver by the docks."""
    app = driver
    central = app.window.centralWidget()
    central.setMinimumSize(0, 0)  # as the window had no minimum for the image view before the fix
    app.resize(*SMALL)
    app.settle_layout()
    assert app.canvas_size()[0] < layout.CANVAS_MIN.width()  # broken as the issue saw it
    settings = app.window.settings
    again = app.start_again()
    width, height = again.canvas_size()
    assert width >= 0.4 * again.window_size()[0] and height >= 300 and again.on_screen()  # a first run's instead
    assert settings.window_state()[1] is None or settings.layout_record() == ""  # and it is forgotten


def test_a_layout_from_an_older_version_is_not_restored(driver):
    app = driver
    settings = app.window.settings
    app.resize(*SMALL)
    app.settle_layout()
    app.window.save_settings()
    settings.set("window/layout", "")  # as the versions before the record saved it
    app.window.save_settings = lambda: None  # the close must not save a new one over it
    again = app.start_again()
    assert again.window_size() != SMALL and again.on_screen()
    assert settings.window_state() == (None, None)


def test_reset_layout_puts_a_floated_dock_back(driver):
    app = driver
    app.resize(*LARGE)
    app.settle_layout()
    before = app.dock_widths()
    app.float_dock("Images")
    app.window.classes_dock.hide()
    app.settle_layout()
    assert app.window.docks[0].isFloating()
    app.menu("&Reset Layout")
    app.settle_layout()
    assert not app.window.docks[0].isFloating()
    after = app.dock_widths()
    assert set(after) == set(before)
    assert all(abs(after[title] - before[title]) <= 5 for title in before), (before, after)  # first-run sizes
