"""The Session: what is open, Qt-free (as napari's ViewerModel). Widgets observe it; nothing here draws.

It owns the project, the current image (index, pixels), the model's prediction for it and which of its
detections are shown, the one selection, the model's class names and the model reference. Every change
goes through a setter that emits an event; widgets connect to the events and redraw. The window only
builds widgets and wires them to a Session (gui/window/main_window.py).

Events are plain callbacks (``Event.connect``), called on the thread that made the change: the GUI
thread, since the workers hand their results back through Qt signals first.
"""

from __future__ import annotations

import gc
import os
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from engine.data import ImageRecord, Instance
from engine.structures import Prediction
from gui.session.project import Project


def _file_stamp(path: str) -> tuple[int, int]:
    """(mtime in ns, size) of a file; (-1, -1) when it cannot be read."""
    try:
        stat = os.stat(path)
    except OSError:
        return (-1, -1)
    return (stat.st_mtime_ns, stat.st_size)


def freeze_long_lived() -> None:
    """Once per process: collect, then move every object alive into the collector's permanent generation.

    The app collects from a GUI-thread timer (pyqtgraph's GarbageCollector, gui/app.py), and its full
    collections walk every tracked object: ~390,000 once the window is up and a project open (the Qt
    wrappers, torch, the modules), 450-600 ms on the GUI thread of a loaded 2-core machine (issue 12.5).
    Almost all of them live as long as the app. Frozen, a full collection walks only what was made
    since (the project's instances, the crops: ~50,000 for 5,000 annotations). A frozen object that later
    becomes cyclic garbage is never freed: doing it once, after the startup's garbage is collected,
    bounds that to the first project's cycles (its records and instances have none)."""
    if gc.get_freeze_count() == 0:
        gc.collect()
        gc.freeze()


class Event:
    """A list of callbacks; ``emit(*args)`` calls each in the order they connected."""

    def __init__(self) -> None:
        self._callbacks: list[Callable[..., object]] = []

    def connect(self, callback: Callable[..., object]) -> None:
        self._callbacks.append(callback)

    def disconnect(self, callback: Callable[..., object]) -> None:
        self._callbacks = [c for c in self._callbacks if c != callback]

    def emit(self, *args: object) -> None:
        for callback in list(self._callbacks):
            callback(*args)


@dataclass(frozen=True, eq=False)
class Selection:
    """The one selection: annotations of the current image (by identity; an ``Instance`` is frozen, an
    edit replaces it) and/or one shown prediction (its row among ``Session.shown``; -1: none)."""

    annotations: tuple[Instance, ...] = ()
    prediction: int = -1

    def __bool__(self) -> bool:
        return bool(self.annotations) or self.prediction >= 0


@dataclass
class SessionEvents:
    """What changed, and (in the app as the window wires it) who redraws."""

    # a project was opened: Editor (reset), ImageList, InstanceList (class filter), TrainController, window title
    project: Event = field(default_factory=Event)
    # the current image changed (its index; pixels come later): ImageList (current row), Editor (drops a drawing)
    image: Event = field(default_factory=Event)
    # the current image's pixels arrived (None: unreadable): Canvas (the picture), Editor (annotation layer)
    pixels: Event = field(default_factory=Event)
    # a new prediction for the current image (or None); what is drawn follows with ``shown``
    prediction: Event = field(default_factory=Event)
    # which predictions are shown: Canvas (masks, boxes), InstanceList (rows), window (proposals)
    shown: Event = field(default_factory=Event)
    # the selection changed: Canvas and InstanceList (the selected prediction), Editor (selection layer, tool
    # handles, class to draw with), window (edit status)
    selection: Event = field(default_factory=Event)
    # the model reference, its description or class names changed: ModelPanel, InstanceList, TrainController
    model: Event = field(default_factory=Event)
    # an image's instances or state changed (its row): ImageList (its state), TrainController (counts)
    record: Event = field(default_factory=Event)


class Session:
    def __init__(self) -> None:
        self.events = SessionEvents()
        self.project: Project | None = None
        self.index = -1
        self.image: np.ndarray | None = None
        self.prediction: Prediction | None = None
        self.shown: list[int] = []  # indices into ``prediction`` of the detections drawn, in row order
        self.selection = Selection()
        self.class_names: list[str] = []  # the model's classes (label k is class_names[k - 1])
        self.weights_path = ""  # the model file (absolute, or a hub alias such as "coco")
        self.model_description = ""  # "loading…" while it loads, then what the model is ("" for none)
        self.unreadable: set[int] = set()  # rows whose image could not be decoded
        # files found unreadable in this run, with their (mtime, size) then: a folder opened again shows them
        # so before they are visited (a file changed since is tried again)
        self._unreadable_files: dict[str, tuple[int, int]] = {}
        self._loaded_model = ""  # the model whose predictions the images' "predicted" states are

    # ----- what is open -----
    @property
    def record(self) -> ImageRecord | None:
        project, index = self.project, self.index
        if project is None or not 0 <= index < len(project):
            return None
        return project.records[index]

    @property
    def key(self) -> str | None:
        """The current image's path (the key results are matched by)."""
        return self.project.paths[self.index] if self.record is not None else None

    def open_project(self, project: Project | None) -> None:
        had_selection = bool(self.selection)
        self.project, self.index, self.image = project, -1, None
        self.prediction, self.shown, self.selection = None, [], Selection()
        self.unreadable = set()
        if project is not None:
            self.unreadable = {row for row, path in enumerate(project.paths) if self._known_unreadable(path)}
        self.events.project.emit(project)
        if project is not None:
            freeze_long_lived()  # on the GUI thread, where the app collects (gui/app.py)
        if had_selection:  # what showed the old selection ("3 selected") shows none now
            self.events.selection.emit(self.selection)

    def _known_unreadable(self, path: str) -> bool:
        known = self._unreadable_files.get(path)
        if known is None:
            return False
        if _file_stamp(path) != known:
            del self._unreadable_files[path]  # changed (or gone) since: it is tried again
            return False
        return True

    def go_to(self, index: int) -> bool:
        """Make image ``index`` current (its pixels and prediction come later); False when it already is
        or does not exist."""
        if self.project is None or not 0 <= index < len(self.project) or index == self.index:
            return False
        had_selection = bool(self.selection)
        self.index, self.image = index, None
        self.prediction, self.shown, self.selection = None, [], Selection()
        self.events.image.emit(index)
        if had_selection:
            self.events.selection.emit(self.selection)
        return True

    def set_pixels(self, image: np.ndarray | None) -> None:
        """The current image's pixels; None: it could not be read (its row shows so)."""
        self.image = image
        if self.record is not None:
            path = self.project.paths[self.index]
            if image is None:
                self.unreadable.add(self.index)
                self._unreadable_files[path] = _file_stamp(path)
                self.events.record.emit(self.index)
            elif self.index in self.unreadable or path in self._unreadable_files:  # readable now
                self.unreadable.discard(self.index)
                self._unreadable_files.pop(path, None)
                self.events.record.emit(self.index)
        self.events.pixels.emit(image)

    def set_prediction(self, prediction: Prediction | None) -> None:
        self.prediction = prediction
        self.events.prediction.emit(prediction)

    def set_shown(self, shown: list[int]) -> None:
        """Which predictions are drawn. A selected prediction is unselected: it is a row of ``shown``,
        and the rows are numbered anew."""
        self.shown = list(shown)
        if self.selection.prediction >= 0:
            self.select(self.selection.annotations, -1)
        self.events.shown.emit(self.shown)

    def describe(self, row: int) -> str:
        """One line about shown prediction ``row`` (class, score, area); "" for none."""
        pred = self.prediction
        if pred is None or not 0 <= row < len(self.shown):
            return ""
        i = self.shown[row]
        return f"{self.class_name(int(pred.labels[i]))}  score {pred.scores[i]:.3f}  area {pred.masks[i].area} px"

    # ----- image states -----
    def display_state(self, row: int) -> str:
        """What the image list shows for image ``row``: its record's state, or "error" when unreadable."""
        return "error" if row in self.unreadable else self.project.display_state(row)

    def mark_predicted(self, row: int) -> None:
        """The model has run on this image: its state says so (saved with the next edit, not by itself)."""
        record = self.project.records[row]
        if record.state == "not_run":
            record.state = "predicted"
            self.events.record.emit(row)

    def record_changed(self, row: int) -> None:
        """An edit (or its undo) changed image ``row``'s instances or state. Selected annotations the current
        image no longer holds (an undo took them away) are no longer selected: the selection never names
        instances that are not there."""
        self.events.record.emit(row)
        record = self.record
        if row == self.index and record is not None and self.selection.annotations:
            present = set(map(id, record.instances))  # (in C: the comprehension was ~2 ms of each edit)
            kept = [i for i in self.selection.annotations if id(i) in present]
            if len(kept) < len(self.selection.annotations):
                self.select(kept, self.selection.prediction)

    # ----- selection -----
    def select(self, annotations: tuple[Instance, ...] | list[Instance] = (), prediction: int = -1) -> None:
        """Select annotations (by identity) and/or shown prediction row ``prediction``; emits when it changes."""
        selection = Selection(tuple(annotations), prediction)
        old = self.selection
        if selection.prediction == old.prediction and list(map(id, selection.annotations)) == list(
            map(id, old.annotations)
        ):
            return
        self.selection = selection
        self.events.selection.emit(selection)

    def clear_selection(self) -> None:
        self.select((), -1)

    # ----- model -----
    def set_model(self, weights_path: str, class_names: list[str] | None = None, description: str = "") -> None:
        """The model reference: set when it is asked for ("loading…"), again with its class names once it
        has loaded, or back to the model in use when loading failed."""
        self.weights_path, self.model_description = weights_path, description
        if class_names is not None:
            self.class_names = list(class_names)
            if self._loaded_model and weights_path != self._loaded_model:
                self._forget_predicted()  # those were another model's predictions
            self._loaded_model = weights_path
        self.events.model.emit(weights_path)

    def _forget_predicted(self) -> None:
        """Another model is in use: an image the earlier one predicted is "not run" for this one (an image
        with annotations stays annotated: that state comes from its instances)."""
        if self.project is None:
            return
        for row, record in enumerate(self.project.records):
            if record.state == "predicted":
                record.state = "not_run"
                self.events.record.emit(row)

    def class_name(self, label: int) -> str:
        if 1 <= label <= len(self.class_names):
            return self.class_names[label - 1]
        return f"class {label}"
