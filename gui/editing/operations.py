"""The edits a user can make, as methods of the Editor (gui/editing/editor.py).

Each gathers what the edit needs (the image's instances, the selection, the class, which may have to
be added first), calls the pure function in gui/editing/edits.py that makes the new instance list,
pushes it as one undoable command (or a macro, when a class is added on the way) and selects what the
edit made.

Instances are never changed in place (see gui/editing/undo.py); an edited mask becomes a new Instance
(RLE, origin "manual") that keeps the old one's id and class.
"""

from __future__ import annotations

import numpy as np

from engine.data import Instance
from engine.structures import InstanceMask
from gui.editing import edits
from gui.editing.masks import crop_of, rectangle_mask
from gui.editing.undo import RejectPredictions, SetImageState


class EditOperations:
    """Mixed into Editor; uses its session (what is open and shown, the selection), record, macro(),
    push_instances(), box_masks and message."""

    # ----- predictions -> annotations -----
    def accept_selected(self) -> None:
        """Accept the selected prediction (the row picked in the list or clicked on the canvas)."""
        index = self.session.selection.prediction
        if not 0 <= index < len(self.session.shown):
            self.message.emit("Select a prediction first (click it, or pick its row), then accept it")
            return
        self.accept_predictions([self.session.shown[index]], text="Accept prediction")

    def accept_all(self) -> int:
        """Accept every prediction shown (those above the score threshold, not yet matched)."""
        count = self.accept_predictions(list(self.session.shown), text="Accept all shown predictions")
        self.message.emit(f"Accepted {count} predictions")
        return count

    def accept_predictions(self, indices: list[int], category_id: int | None = None, text: str = "Accept") -> int:
        prediction, record = self.session.prediction, self.record
        if prediction is None or record is None or not indices:
            return 0
        if (prediction.height, prediction.width) != (record.height, record.width):
            self.message.emit("The prediction is for another image size; predict again")
            return 0
        kept = [i for i in indices if prediction.masks[i].mask.any()]  # classes only for what is accepted
        with self.macro(text):
            names = [self.session.class_name(int(prediction.labels[i])) for i in kept]
            ids = [category_id if category_id is not None else self.category_for_name(name) for name in names]
            crops, scores = [prediction.masks[i] for i in kept], [prediction.scores[i] for i in kept]
            edit = edits.accept_predictions(record.instances, crops, ids, scores, record.height, record.width)
            self.remember_crops(edit.selected, crops)  # before the push: its redraw reads them
            self.push_instances(record, edit.instances, text)
        self.select(edit.selected[-1:])  # (and the accepted prediction no longer)
        return len(edit.selected)

    # ----- delete, relabel, review -----
    def delete_selected(self) -> None:
        record = self.record
        if record is None:
            return
        if self.selection:
            self.push_instances(record, edits.delete(record.instances, self.selection).instances, "Delete")
            self.select([])
            return
        index = self.session.selection.prediction
        if 0 <= index < len(self.session.shown):  # a prediction: reject it (kept: session/rejections.py)
            crop = self.session.prediction.masks[self.session.shown[index]]
            rejected = self.project.rejected.setdefault(self.index, [])
            self.undo_stack.push(RejectPredictions(rejected, [crop], record, self._notify))
            self.session.clear_selection()

    def set_category(self, category_id: int) -> None:
        """Digit keys / the class list: relabel the selection, or accept the selected prediction as this
        class, and draw with this class from now on."""
        self.choose_category(category_id)
        record = self.record
        if record is None:
            return
        if self.selection:
            edit = edits.relabel(record.instances, self.selection, category_id)
            self.remember_crops(edit.selected, [self.crop_of(i) for i in self.selection])  # same masks
            self.push_instances(record, edit.instances, f"Relabel as {self.category_name(category_id)}")
            self.select(list(edit.selected))
        elif 0 <= (row := self.session.selection.prediction) < len(self.session.shown):
            self.accept_predictions([self.session.shown[row]], category_id, "Accept as class")

    def pick_class(self, number: int) -> None:
        """1..9: the class in that row of the class list."""
        categories = self.categories()
        if 1 <= number <= len(categories):
            self.set_category(categories[number - 1].id)
        else:
            self.message.emit(f"No class {number}: add classes in the Classes panel")

    def mark_reviewed(self) -> None:
        """Ctrl+Return: a person says the image is done ("reviewed": what the Train panel trains on by
        default; no edit sets it). On a reviewed image it takes that back: the image is "annotated" (or
        "predicted"/"not run" when it holds nothing that trains). Undoable either way."""
        record = self.record
        if record is None:
            return
        if record.state != "reviewed":
            self.undo_stack.push(SetImageState(record, "reviewed", self._notify, "Mark image reviewed"))
            self.message.emit("Marked reviewed: the image trains as it is (Ctrl+Return again takes it back)")
            return
        back = "predicted" if self.session.prediction is not None else "not_run"
        self.undo_stack.push(SetImageState(record, back, self._notify, "Unmark image reviewed"))
        shown = self.project.display_state(self.index).replace("_", " ")
        self.message.emit(f"No longer reviewed: the image is {shown} now (Ctrl+Return marks it reviewed again)")

    # ----- drawing -----
    def add_polygon(self, points: list[tuple[float, float]]) -> Instance | None:
        record = self.record
        if record is None or len(points) < 3:
            return None
        with self.macro("Draw polygon"):
            edit = edits.add_polygon(record.instances, points, self.ensure_category())
            self.push_instances(record, edit.instances, "Draw polygon")
        self.select(list(edit.selected))
        return edit.selected[0]

    def set_polygons(self, instance: Instance, polygons: list[list[float]], text: str = "Edit polygon") -> None:
        record = self.record
        if record is None:
            return
        edit = edits.set_polygons(record.instances, instance, polygons)
        self.push_instances(record, edit.instances, text)
        self.select(list(edit.selected))

    def commit_mask(self, target: Instance | None, mask: np.ndarray, text: str) -> Instance | None:
        """A painted (H,W) mask: a new instance (no target), the target repainted, or deleted when empty."""
        record = self.record
        if record is None:
            return None
        crop = crop_of(mask)
        if target is None and not crop.mask.size:
            return None
        with self.macro(text):
            category_id = self.ensure_category() if target is None else None  # a repaint keeps the class
            edit = edits.commit_crop(record.instances, target, crop, record.height, record.width, category_id)
            self.remember_crops(edit.selected, [crop] * len(edit.selected))
            self.push_instances(record, edit.instances, text)
        self.select(list(edit.selected))  # nothing when the target was erased away
        return edit.selected[0] if edit.selected else None

    def box_drawn(self, box: tuple[float, float, float, float]) -> None:
        """A box from the box tool: the model's mask for it (worker thread), else the rectangle."""
        record = self.record
        if record is None:
            return
        if self.box_uses_model and self.box_masks.can_mask_boxes():
            category_id = self.ensure_category()
            label = self.model_label(self.category_name(category_id))
            request = self.box_masks.request_box_mask(box, label)
            self.pending_boxes[request] = (record, category_id, box)
            self.message.emit("Box: asking the model for its mask…")
            return
        self.commit_mask(None, rectangle_mask(box, record.height, record.width), "Draw box")

    def model_label(self, category_name: str) -> int:
        """The model's label for a class name (1 when the model does not know the class)."""
        names = self.session.class_names
        return names.index(category_name) + 1 if category_name in names else 1

    def on_box_mask(self, request_id: int, crop: InstanceMask | None, error: str) -> None:
        record, cid, box = self.pending_boxes.pop(request_id, (None, None, None))
        if record is None:
            return
        if crop is None or not crop.mask.any():
            self.message.emit(f"{error or 'The model found no mask in the box'}: the rectangle is used")
            crop = crop_of(rectangle_mask(box, record.height, record.width))
        edit = edits.commit_crop(record.instances, None, crop, record.height, record.width, cid)
        if edit is None:  # the box lies outside the image
            return
        if record is self.record:
            self.remember_crops(edit.selected, [crop])
        self.push_instances(record, edit.instances, "Draw box")
        if record is self.record:
            self.select(list(edit.selected))

    # ----- split and merge -----
    def split_selected(self) -> None:
        if len(self.selection) != 1:
            self.message.emit("Select one mask to split into its connected parts")
            return
        record, target = self.record, self.selection[0]
        crop = self.crop_of(target)  # decoded once per instance (the project's cache)
        edit = edits.split_connected(record.instances, target, record.height, record.width, crop)
        self._push_parts(edit, "Split into parts")

    def split_by_line(self, points: list[tuple[float, float]]) -> None:
        target = self.selection[0] if len(self.selection) == 1 else None
        if target is None:
            middle = np.mean(np.asarray(points, float), axis=0)
            target = self.annotation_at(*middle)
        if target is None:
            self.message.emit("Draw the line across a mask (or select the mask first)")
            return
        record = self.record
        crop = self.crop_of(target)
        edit = edits.split_along_line(record.instances, target, points, record.height, record.width, crop)
        self._push_parts(edit, "Split along line")

    def _push_parts(self, edit: edits.Edit | None, text: str) -> None:
        if edit is None:
            self.message.emit("Nothing to split: the mask is in one piece there")
            return
        self.push_instances(self.record, edit.instances, text)
        self.select(list(edit.selected))
        self.message.emit(f"{text}: {len(edit.selected)} masks")

    def merge_selected(self) -> None:
        record = self.record
        if record is None or len(self.selection) < 2:
            self.message.emit("Select two or more masks (Ctrl+click) to merge them")
            return
        targets = self.selection  # the first one picked gives the merged mask its class, id and place
        crops = [self.crop_of(i) for i in targets]
        edit = edits.merge(record.instances, targets, record.height, record.width, crops)
        self.push_instances(record, edit.instances, f"Merge {len(targets)} masks")
        self.select(list(edit.selected))
