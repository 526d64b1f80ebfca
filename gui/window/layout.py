"""The window's layout on screen: a first window that fits the screen, docks that come back after the window
is shrunk and grown again, a saved layout checked before it is restored, and View > Reset Layout (issue 13,
bug 5).

Qt's own behaviour is the reason for each piece. A shrinking ``QMainWindow`` takes the width from the central
widget first (the image view fell to 68 px at 640x480) and then from the docks; when it grows again, all the
new room goes to the central widget, so the docks stay as narrow as the shrink left them, and
``saveState`` then saves (and the next start restores) that squeezed layout. So: the image view has a
minimum size, ``DockKeeper`` remembers the docks' sizes as the user left them and puts them back when the
window regains the room it had, and the layout is saved with a record of what it looked like (``describe``)
that is checked (``problems``) before the layout is restored.
"""

from __future__ import annotations

import json

from PySide6.QtCore import QEvent, QMargins, QObject, QRect, QSize, Qt, QTimer
from PySide6.QtWidgets import QApplication, QDockWidget, QMainWindow, QWidget

WANTED = QSize(1280, 800)  # the first window's size where the screen has room for it
CANVAS_MIN = QSize(240, 160)  # the image view is never squeezed below this (it fell to 68 px wide)
DOCK_MIN_WIDTH = 120  # the first-run layout gives a side dock at least this
# a side dock narrower than this in a saved layout is a layout gone wrong (Qt itself squeezes a scrolled dock to
# ~70 px in a 640x480 window, which is small but sound)
SQUEEZED_DOCK_WIDTH = 50
# before the window is shown its frame is unknown: room for a title bar and borders (corrected once shown)
ASSUMED_FRAME = QMargins(4, 32, 4, 4)
LAYOUT_VERSION = 1  # bumped when the docks change: an older saved layout is not restored
LEFT, RIGHT = ("dock_images", "dock_instances"), ("dock_controls", "dock_classes")
BOTTOM = ("dock_train",)
SIDE_AREAS = (Qt.DockWidgetArea.LeftDockWidgetArea, Qt.DockWidgetArea.RightDockWidgetArea)


# ----- the window's place on the screen -----
def fitting_geometry(available: QRect, frame: QMargins, wanted: QSize = WANTED) -> QRect:
    """The window's inner rectangle: ``wanted`` where the screen's ``available`` area (less the window
    frame) has room for it, else as large as there is room for, centred. The frame and the status bar
    at its bottom are then on screen whatever the screen's size (1280x800 with a panel included)."""
    room_w = available.width() - frame.left() - frame.right()
    room_h = available.height() - frame.top() - frame.bottom()
    width, height = min(wanted.width(), room_w), min(wanted.height(), room_h)
    x = available.x() + frame.left() + (room_w - width) // 2
    y = available.y() + frame.top() + (room_h - height) // 2
    return QRect(x, y, width, height)


def available_geometry(window: QWidget) -> QRect:
    screen = window.screen() or QApplication.primaryScreen()
    return screen.availableGeometry()


def frame_margins(window: QWidget) -> QMargins:
    """The window manager's frame around the window: measured once shown, assumed before."""
    if not window.isVisible():
        return ASSUMED_FRAME
    outer, inner = window.frameGeometry(), window.geometry()
    return QMargins(
        inner.left() - outer.left(), inner.top() - outer.top(),
        outer.right() - inner.right(), outer.bottom() - inner.bottom(),
    )  # fmt: skip


def place_first_window(window: QWidget) -> None:
    """No saved geometry: the wanted size, or less where the screen is smaller."""
    window.setGeometry(fitting_geometry(available_geometry(window), frame_margins(window)))


def on_some_screen(frame: QRect, slack: int = 0) -> bool:
    """The whole of ``frame`` lies in one screen's available area (give or take ``slack`` px)."""
    grown = QMargins(slack, slack, slack, slack)
    return any(screen.availableGeometry().marginsAdded(grown).contains(frame) for screen in QApplication.screens())


def fit_to_screen(window: QWidget) -> bool:
    """Once shown (the frame is known then): a window that sticks out of its screen is made to fit, so that
    its title bar and status bar are on screen. True when it was moved or resized."""
    if window.isMaximized() or window.isFullScreen() or on_some_screen(window.frameGeometry()):
        return False
    window.setGeometry(fitting_geometry(available_geometry(window), frame_margins(window), window.size()))
    return True


# ----- what a layout looked like, and whether it is sound -----
def _docks(window: QMainWindow) -> list[QDockWidget]:
    return [dock for dock in window.findChildren(QDockWidget) if dock.objectName()]


def describe(window: QMainWindow) -> dict:
    """What the layout looks like now, saved beside Qt's state (a record ``problems`` checks at the next start)."""
    central = window.centralWidget()
    docks = {}
    for dock in _docks(window):
        frame = dock.frameGeometry() if dock.isFloating() else dock.geometry()
        docks[dock.objectName()] = {
            "visible": dock.isVisible(),
            "floating": dock.isFloating(),
            "area": window.dockWidgetArea(dock).name,
            "rect": [frame.x(), frame.y(), frame.width(), frame.height()],
        }
    return {
        "version": LAYOUT_VERSION,
        "window": [window.width(), window.height()],
        "canvas": [central.width(), central.height()] if central is not None else [0, 0],
        "docks": docks,
    }


def problems(record: dict | None) -> list[str]:
    """What was wrong with a saved layout, from its record; [] for a sound one. A layout saved by an older
    version (no record, or another version) is not known to be sound, and the issue's broken ones came from
    there, so it counts as a problem too."""
    if not isinstance(record, dict) or record.get("version") != LAYOUT_VERSION:
        return ["saved by an older version"]
    found = []
    canvas = record.get("canvas") or [0, 0]
    if canvas[0] < CANVAS_MIN.width() or canvas[1] < CANVAS_MIN.height():
        found.append(f"the image view was {canvas[0]}x{canvas[1]} px")
    for name, dock in (record.get("docks") or {}).items():
        if not dock.get("visible"):
            continue
        x, y, width, height = dock.get("rect") or [0, 0, 0, 0]
        if dock.get("floating"):
            if not on_some_screen(QRect(x, y, width, height)):
                found.append(f"{name} floated off screen")
        elif dock.get("area") in ("LeftDockWidgetArea", "RightDockWidgetArea") and width < SQUEEZED_DOCK_WIDTH:
            found.append(f"{name} was {width} px wide")
    return found


def encode(record: dict) -> str:
    return json.dumps(record, separators=(",", ":"))


def decode(text: object) -> dict | None:
    try:
        record = json.loads(str(text)) if text else None
    except ValueError:
        return None
    return record if isinstance(record, dict) else None


# ----- the default layout -----
def default_widths(window_width: int) -> tuple[int, int]:
    """The left and right columns' widths: room for file names and the instance table on the left, the
    sliders and the class buttons on the right, and at least half the window for the image."""
    left = max(DOCK_MIN_WIDTH, min(270, window_width * 22 // 100))
    right = max(DOCK_MIN_WIDTH, min(370, window_width * 29 // 100))  # the class buttons want ~350 px
    return left, right


def reset(window: QMainWindow) -> None:
    """The first run's layout: every dock back in its place and docked; the Train panel keeps whether it
    is shown."""
    docks = {dock.objectName(): dock for dock in _docks(window)}
    areas = [(LEFT, Qt.DockWidgetArea.LeftDockWidgetArea), (RIGHT, Qt.DockWidgetArea.RightDockWidgetArea)]
    areas.append((BOTTOM, Qt.DockWidgetArea.BottomDockWidgetArea))
    for names, area in areas:
        for name in names:
            dock = docks.get(name)
            if dock is None:
                continue
            dock.setFloating(False)
            window.addDockWidget(area, dock)  # moves it there (Qt takes it out of where it was)
            if name not in BOTTOM:
                dock.show()
    if all(name in docks for name in (*LEFT, *RIGHT)):
        window.splitDockWidget(docks[LEFT[0]], docks[LEFT[1]], Qt.Orientation.Vertical)
        window.splitDockWidget(docks[RIGHT[1]], docks[RIGHT[0]], Qt.Orientation.Vertical)  # classes above
        left, right = default_widths(window.width())
        window.resizeDocks([docks[LEFT[0]], docks[RIGHT[0]]], [left, right], Qt.Orientation.Horizontal)
        window.resizeDocks([docks[LEFT[0]], docks[LEFT[1]]], [300, 400], Qt.Orientation.Vertical)


# ----- docks that come back after a shrink -----
class DockKeeper(QObject):
    """Remembers how wide the side docks (and how tall the bottom ones) were while the window had its room,
    and gives them that size again when the window grows back to that room.

    A dock's size is taken when it changes while the window keeps its size (the user dragged a separator,
    a dock was shown) or grows; not while the window is smaller than the room the sizes were taken at, since
    that change is the shrink squeezing it. Width and height are followed apart: a window made lower but not
    narrower keeps its docks' widths."""

    def __init__(self, window: QMainWindow) -> None:
        super().__init__(window)
        self.window = window
        self.room = QSize(0, 0)  # the window's size when the sizes were taken
        self.sizes: dict[str, int] = {}  # dock name -> its width (side docks) or height (bottom docks)
        self._watched: set[str] = set()
        self._seen = QSize(window.size())  # the window's size as of its last resize event
        self._settling = False  # a grow's give-back is under way
        window.installEventFilter(self)
        self.watch()

    def watch(self) -> None:
        """Follow the docks the window has now (call again when one is added)."""
        for dock in _docks(self.window):
            if dock.objectName() not in self._watched:
                self._watched.add(dock.objectName())
                dock.installEventFilter(self)

    def eventFilter(self, watched: QObject, event: QEvent) -> bool:  # noqa: N802 - Qt's name
        if event.type() == QEvent.Type.Resize:
            if watched is self.window:
                self._window_resized(event.oldSize())
            elif isinstance(watched, QDockWidget):
                self._take(watched)
        return False

    def _axis(self, dock: QDockWidget) -> str:
        if dock.isFloating() or not dock.isVisible():
            return ""
        return "width" if self.window.dockWidgetArea(dock) in SIDE_AREAS else "height"

    def _take(self, dock: QDockWidget) -> None:
        if self._settling or self.window.size() != self._seen:
            return  # the window is being resized: this is the layout following it, not the user's choice
        axis = self._axis(dock)
        if axis == "width" and self.window.width() == self.room.width():
            self.sizes[dock.objectName()] = dock.width()
        elif axis == "height" and self.window.height() == self.room.height():
            self.sizes[dock.objectName()] = dock.height()

    def _window_resized(self, old: QSize) -> None:
        size = QSize(self.window.size())
        self._seen = size
        grew = (size.width() > old.width(), size.height() > old.height())
        self._take_unknown()
        if any(grew):
            self._settling = True
            QTimer.singleShot(0, lambda: self._grown(*grew))  # resizeDocks inside the resize is undone by it

    def _take_unknown(self) -> None:
        """Docks whose size was never taken (the window was resized before its first layout settled) are taken
        as they are while the image view is above its minimum in their axis: Qt squeezes the image view first,
        so until it reaches its minimum no dock has been squeezed."""
        central = self.window.centralWidget()
        if central is None:
            return
        roomy = {"width": central.width() > CANVAS_MIN.width(), "height": central.height() > CANVAS_MIN.height()}
        for dock in _docks(self.window):
            axis = self._axis(dock)
            if axis and roomy[axis] and dock.objectName() not in self.sizes:
                self.sizes[dock.objectName()] = dock.width() if axis == "width" else dock.height()

    def _grown(self, wider: bool, taller: bool) -> None:
        """The window grew: the docks get back what a shrink took (as far as the image view's minimum lets
        them); at or above the room the sizes were taken at, this size is the room from now on."""
        if wider:
            self._give_back(Qt.Orientation.Horizontal, "width")
        if taller:
            self._give_back(Qt.Orientation.Vertical, "height")
        size = self.window.size()
        self.room = QSize(max(size.width(), self.room.width()), max(size.height(), self.room.height()))
        QTimer.singleShot(0, self._settled)

    def _settled(self) -> None:
        self._settling = False
        self._take_docks()

    def _give_back(self, orientation: Qt.Orientation, axis: str) -> None:
        docks, sizes = [], []
        for dock in _docks(self.window):
            remembered = self.sizes.get(dock.objectName())
            now = dock.width() if axis == "width" else dock.height()
            if remembered and self._axis(dock) == axis and now < remembered:
                docks.append(dock)
                sizes.append(remembered)
        if docks:
            self.window.resizeDocks(docks, sizes, orientation)

    def _take_docks(self) -> None:
        for dock in _docks(self.window):
            self._take(dock)

    def take_all(self) -> None:
        """Take every dock's size as it is now (the window's size is the room from now on)."""
        self.room = QSize(self.window.size())
        self._seen = QSize(self.window.size())
        self._take_docks()

    def forget(self) -> None:
        self.sizes.clear()
        self.room = QSize(0, 0)

    # the record saved with the layout, so that a start at a small size still grows back
    def to_dict(self) -> dict:
        return {"room": [self.room.width(), self.room.height()], "sizes": dict(self.sizes)}

    def load(self, saved: dict | None, window_size: QSize) -> None:
        """Sizes remembered by the last run, kept only when their room is larger than the window now."""
        if not isinstance(saved, dict):
            return
        try:
            room = QSize(*(int(v) for v in saved["room"]))
            sizes = {str(k): int(v) for k, v in saved["sizes"].items()}
        except (KeyError, TypeError, ValueError):
            return
        if room.width() > window_size.width() or room.height() > window_size.height():
            self.room, self.sizes = room, sizes
