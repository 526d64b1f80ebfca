"""The editing controller: the undo stack, the class to draw with, the active tool, and what the
annotation layer shows. The operations themselves (accept, paint, split, ...) are in
gui/editing/operations.py; the tools that turn mouse gestures into them in gui/editing/tools/.

It works on a Session (what is open, the one selection) and a Canvas, and asks the model for box masks
through the ``BoxMasks`` protocol; it never sees the window. Every change goes through a command
(gui/editing/undo.py) pushed on ``undo_stack``; a command calls ``_notify`` when it is done or undone,
which redraws, tells the Session which image changed and asks for an autosave.
"""

from __future__ import annotations

import contextlib
import operator
from collections.abc import Callable, Iterator, Sequence

import numpy as np
from PySide6.QtCore import QObject, QRectF, QTimer, Signal
from PySide6.QtGui import QUndoStack

from engine.data import Category, ImageRecord, Instance
from engine.structures import InstanceMask
from gui.canvas import overlay
from gui.canvas.view import Canvas
from gui.editing import edits, masks
from gui.editing.operations import EditOperations
from gui.editing.tools import build_tools
from gui.editing.undo import AddCategory, DeleteCategory, EditCategory, SetInstances
from gui.session.protocols import BoxMasks
from gui.session.session import Selection, Session

DEFAULT_CLASS = "object"


_mask_size = operator.attrgetter("mask.size")
_category_id = operator.attrgetter("category_id")


class Editor(QObject, EditOperations):
    changed = Signal()  # the current image's annotations (or what hides predictions) changed
    categories_changed = Signal()
    edited = Signal()  # something to save
    message = Signal(str)
    tool_changed = Signal(str)
    brush_changed = Signal(int)  # the brush radius (image pixels)

    def __init__(
        self,
        session: Session,
        canvas: Canvas,
        box_masks: BoxMasks,
        go_to: Callable[[int], object],
        parent: QObject | None = None,
    ) -> None:
        QObject.__init__(self, parent)
        self.session, self.canvas, self.box_masks, self.go_to = session, canvas, box_masks, go_to
        self.undo_stack = QUndoStack(self)
        self.category_id: int | None = None
        self.brush_radius = 6
        self.box_uses_model = True
        self.shown: list[tuple[Instance, InstanceMask]] = []  # the annotation layer, in label-map order
        self.pending_boxes: dict[int, tuple] = {}  # box request id -> (record, class id, box)
        self.tools = build_tools(session, self)
        self.tool_name = ""
        self._replaying = False  # inside undo()/redo(): an edit of another image brings it on screen
        self.set_tool("edit")
        session.events.project.connect(lambda _project: self.reset())
        session.events.image.connect(lambda _index: self.leave_image())
        session.events.pixels.connect(lambda _image: self.refresh())
        session.events.selection.connect(self._on_selection)

    # ----- what is being edited -----
    @property
    def project(self):  # noqa: ANN201 - gui.session.project.Project | None
        return self.session.project

    @property
    def index(self) -> int:
        return self.session.index

    @property
    def record(self) -> ImageRecord | None:
        return self.session.record

    @property
    def selection(self) -> list[Instance]:
        """The selected annotations (the Session holds the selection)."""
        return list(self.session.selection.annotations)

    def reset(self) -> None:
        """A new project: nothing to undo, nothing selected."""
        self.undo_stack.clear()
        self.category_id = None
        self.canvas.clear_tool_layers()
        self.tools[self.tool_name].deactivate(self.canvas)
        self.categories_changed.emit()

    def leave_image(self) -> None:
        """Switching image (the Session has dropped the selection): drop a half-drawn shape too."""
        self.tools[self.tool_name].cancel(self.canvas)
        self.canvas.clear_tool_layers()

    def say(self, text: str) -> None:
        """A line for the status bar."""
        self.message.emit(text)

    # ----- commands -----
    @contextlib.contextmanager
    def macro(self, text: str) -> Iterator[None]:
        """Several commands that undo as one."""
        self.undo_stack.beginMacro(text)
        try:
            yield
        finally:
            self.undo_stack.endMacro()

    def push_instances(self, record: ImageRecord, instances: list[Instance], text: str) -> None:
        self.undo_stack.push(SetInstances(record, instances, text, self._notify))

    def _notify(self, record: ImageRecord | None, follow: bool = True) -> None:
        """A command did or undid its change of ``record`` (None: the classes). ``follow``: an undo/redo of
        another image brings that image on screen (not for a change of many images, as a class deletion)."""
        self.edited.emit()
        if record is None:
            self.categories_changed.emit()
            self.refresh()
            return
        project = self.project
        row = next((i for i, r in enumerate(project.records) if r is record), -1) if project else -1
        if row >= 0:
            self.session.record_changed(row)
        if record is self.record:
            self.refresh()
        elif row >= 0 and self._replaying and follow:  # an undo/redo on another image: show that image
            QTimer.singleShot(0, lambda: self.go_to(row))

    def undo(self) -> None:
        self._replay(self.undo_stack.undo)

    def redo(self) -> None:
        self._replay(self.undo_stack.redo)

    def _replay(self, step) -> None:  # noqa: ANN001
        self.tools[self.tool_name].cancel(self.canvas)  # a half-drawn shape is dropped, not undone
        self._replaying = True
        try:
            step()
        finally:
            self._replaying = False

    # ----- classes -----
    def categories(self) -> list[Category]:
        return sorted(self.project.dataset.categories, key=lambda c: c.id) if self.project else []

    def category_name(self, category_id: int | None) -> str:
        return next((c.name for c in self.categories() if c.id == category_id), "")

    def ensure_category(self) -> int:
        """The class for new drawings: the chosen one, else the first, else a new one (model's first name)."""
        ids = [c.id for c in self.categories()]
        if self.category_id in ids:
            return self.category_id
        if ids:
            self.category_id = ids[0]
            return self.category_id
        names = [n for n in self.session.class_names if n and n != "N/A"]
        return self.add_category(names[0] if names else DEFAULT_CLASS)

    def category_for_name(self, name: str) -> int:
        """The id of the class called ``name``, added (undoably) when the project has none."""
        for category in self.categories():
            if category.name == name:
                return category.id
        return self.add_category(name, make_current=False)

    def add_category(self, name: str, color: tuple[int, int, int] | None = None, make_current: bool = True) -> int:
        name = name.strip()
        existing = [c for c in self.categories() if c.name == name]
        if existing or not name or self.project is None:
            if existing:
                self.message.emit(f"There is already a class called {name}")
            return existing[0].id if existing else -1
        command = AddCategory(self.project.dataset, name, self._notify, color)
        self.undo_stack.push(command)
        if make_current:
            self.category_id = command.category.id
        return command.category.id

    def edit_category(self, category_id: int, name: str | None = None, color: tuple | None = None) -> bool:
        category = next((c for c in self.categories() if c.id == category_id), None)
        if category is None:
            return False
        name = category.name if name is None else name.strip()
        if not name or any(c.name == name and c is not category for c in self.categories()):
            self.message.emit(f"Cannot rename to {name!r}: empty or taken")
            return False
        color = category.color if color is None else color
        if (name, tuple(color)) != (category.name, category.color):
            self.undo_stack.push(EditCategory(category, name, color, self._notify))
        return True

    def category_usage(self, category_id: int) -> tuple[int, int]:
        """(instances, images) of class ``category_id`` in the project (predictions nobody accepted included)."""
        records = self.project.records if self.project else []
        counts = [sum(1 for i in r.instances if i.category_id == category_id) for r in records]
        return sum(counts), sum(1 for c in counts if c)

    def delete_category(self, category_id: int, move_to: int | None = None) -> bool:
        """Delete a class, undoably: its instances on every image go with it (``move_to`` None) or move to
        class ``move_to``. False: no such class (or ``move_to`` is it, or no class)."""
        category = next((c for c in self.categories() if c.id == category_id), None)
        if category is None or move_to == category_id or (move_to is not None and not self.category_name(move_to)):
            return False
        changes = []
        for record in self.project.records:
            if any(i.category_id == category_id for i in record.instances):
                changes.append((record, edits.delete_category(record.instances, category_id, move_to).instances))
        count = sum(len(r.instances) for r, _ in changes) - sum(len(after) for _, after in changes)
        if move_to is None:
            text = f"Delete class {category.name}" + (f" and its {count} instances" if count else "")
        else:
            text = f"Delete class {category.name}, its instances moved to {self.category_name(move_to)}"
        notify = lambda record: self._notify(record, follow=False)  # noqa: E731 - many images: stay here
        self.undo_stack.push(DeleteCategory(self.project.dataset, category, changes, text, notify))
        if self.category_id == category_id:
            self.category_id = move_to
            self.categories_changed.emit()
        self.message.emit(f"{text} (Ctrl+Z brings it back)")
        return True

    def choose_category(self, category_id: int) -> None:
        self.category_id = category_id
        self.categories_changed.emit()
        self.message.emit(f"Class: {self.category_name(category_id)}")

    # ----- selection (held by the Session) -----
    def select(self, instances: list[Instance], toggle: bool = False) -> None:
        """Select annotations (a selected prediction is unselected); ``toggle``: add or take them out."""
        if toggle:
            ids = {id(i) for i in self.selection}
            keep = [i for i in self.selection if id(i) not in {id(j) for j in instances}]
            instances = keep + [i for i in instances if id(i) not in ids]
        self.session.select(instances)

    def clear_selection(self) -> None:
        self.session.clear_selection()

    def _on_selection(self, selection: Selection) -> None:
        if len(selection.annotations) == 1:  # draw on with the class of what was picked
            self.category_id = selection.annotations[0].category_id
            self.categories_changed.emit()
        self.draw_selection()

    def annotation_at(self, x: float, y: float) -> Instance | None:
        if not self.canvas.layers["annotations"].isVisible():
            return None
        index = self.canvas.annotations.labels.at(x, y)
        return self.shown[index][0] if 0 <= index < len(self.shown) else None

    def crop_of(self, instance: Instance) -> InstanceMask:
        return self.project.crop(self.index, instance)

    def remember_crops(self, instances: Sequence[Instance], crops: Sequence[InstanceMask]) -> None:
        """The masks of instances an edit made from crops it holds (accepted predictions, a brush stroke, a
        relabel), given to the project's crop cache: else the next redraw decodes each back from its full-image
        RLE (Shift+A on 5,000 predictions took minutes)."""
        record = self.record
        if record is None:
            return
        for instance, crop in zip(instances, crops, strict=True):
            h, w = crop.mask.shape
            if crop.x0 >= 0 and crop.y0 >= 0 and crop.x0 + w <= record.width and crop.y0 + h <= record.height:
                self.project.remember_crop(self.index, instance, masks.tight(crop))  # (else: decoded, clipped)

    # ----- display -----
    def refresh(self) -> None:
        """Redraw the annotation layer and the selection from the current record."""
        project, record = self.project, self.record
        instances, crops = [], []
        if project is not None and record is not None and self.canvas.image_shape is not None:
            instances, crops = masks.annotation_crops(project, self.index)  # shared with the matching and the list
        # the passes over 5,000 instances in C (map, zip) where they can be: each Python loop was ~1-2 ms of an edit
        if all(map(_mask_size, crops)):
            self.shown = list(zip(instances, crops, strict=True))
        else:  # a mask that could not be decoded is left out
            self.shown = [(i, c) for i, c in zip(instances, crops, strict=True) if c.mask.size]
            instances, crops = [i for i, _ in self.shown], [c for _, c in self.shown]
        category_ids = list(map(_category_id, instances))
        styles = {c: self.project.category_style(c)[0] for c in set(category_ids)}  # per class, not per instance
        self.canvas.set_annotations(crops, list(map(styles.__getitem__, category_ids)))
        selection = self.session.selection
        present = set()
        if selection.annotations and record is not None:  # (5,000 ids to gather: only when something is selected)
            present = set(map(id, record.instances))  # the shown ones are among them
        kept = [i for i in selection.annotations if id(i) in present]
        if len(kept) < len(selection.annotations):
            self.session.select(kept, selection.prediction)  # -> draw_selection
        else:
            self.draw_selection()
        self.changed.emit()

    def draw_selection(self) -> None:
        layer = self.canvas.layers["selection"]
        crops = [self.crop_of(i) for i in self.selection if self.record is not None]
        crops = [c for c in crops if c.mask.size]
        if not crops:
            layer.clear()
        else:
            x0, y0, x1, y1 = overlay.union_box(crops, *self.canvas.image_shape)
            labels = overlay.label_map(crops, *self.canvas.image_shape, region=(x0, y0, x1, y1)).labels
            rgba = np.zeros((*labels.shape, 4), dtype=np.uint8)
            rgba[labels > 0] = (255, 255, 255, 70)
            rgba[overlay.boundary(labels, 2)] = (255, 255, 255, 255)
            layer.setImage(rgba, autoLevels=False, levels=None)
            layer.setRect(QRectF(x0, y0, x1 - x0, y1 - y0))
        self.tools[self.tool_name].selection_changed(self.canvas)

    # ----- tools -----
    def set_tool(self, name: str) -> None:
        if name not in self.tools:
            return
        self.tool_name = name
        self.canvas.set_tool(self.tools[name])
        self.draw_selection()
        self.tool_changed.emit(name)

    def set_brush_radius(self, radius: float) -> None:
        self.brush_radius = int(max(1, min(500, round(radius))))
        self.tools[self.tool_name].brush_changed(self.canvas)
        self.brush_changed.emit(self.brush_radius)
        self.message.emit(f"Brush radius {self.brush_radius} px")

    def status_text(self) -> str:
        """The status bar's editing part: tool, class, brush radius, how many masks are selected."""
        name = self.category_name(self.category_id) or "—"
        selected = f" · {len(self.selection)} selected" if self.selection else ""
        return f"{self.tool_name} · class {name} · brush {self.brush_radius} px{selected}"

    def grow_brush(self, factor: float) -> None:
        step = max(1, round(self.brush_radius * abs(factor - 1)))
        self.set_brush_radius(self.brush_radius + (step if factor > 1 else -step))
