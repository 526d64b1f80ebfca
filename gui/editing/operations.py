"""The edits a user can make, as methods of the Editor (gui/editing/editor.py): each builds new instances and
pushes one undoable command (or a macro, when a class has to be added on the way).

Instances are never changed in place (see gui/editing/undo.py); an edited mask becomes a new Instance
(RLE, origin "manual") that keeps the old one's id and class.
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np

from engine.data import ImageRecord, Instance
from engine.structures import InstanceMask
from gui.editing.masks import crop_of, crop_to_rle, cut_along_line, rectangle_mask, split_parts
from gui.editing.undo import RejectPredictions, SetImageState


class EditOperations:
    """Mixed into Editor; uses its record, selection, macro(), push_instances() and message."""

    # ----- predictions -> annotations -----
    def accept_selected(self) -> None:
        """Accept the selected prediction (the row picked in the list or clicked on the canvas)."""
        index = self.canvas.selected_index
        if not 0 <= index < len(self.window.shown):
            self.message.emit("Select a prediction first (click it, or pick its row), then accept it")
            return
        self.accept_predictions([self.window.shown[index]], text="Accept prediction")

    def accept_all(self) -> int:
        """Accept every prediction shown (those above the score threshold, not yet matched)."""
        count = self.accept_predictions(list(self.window.shown), text="Accept all shown predictions")
        self.message.emit(f"Accepted {count} predictions")
        return count

    def accept_predictions(self, indices: list[int], category_id: int | None = None, text: str = "Accept") -> int:
        prediction, record = self.window.prediction, self.record
        if prediction is None or record is None or not indices:
            return 0
        if (prediction.height, prediction.width) != (record.height, record.width):
            self.message.emit("The prediction is for another image size; predict again")
            return 0
        new = []
        with self.macro(text):
            for i in indices:
                crop = prediction.masks[i]
                if not crop.mask.any():
                    continue
                label = int(prediction.labels[i])
                cid = category_id if category_id is not None else self.category_for_name(self.window.class_name(label))
                rle = crop_to_rle(crop, record.height, record.width)
                new.append(Instance(cid, rle, score=float(prediction.scores[i]), origin="accepted"))
            self.push_instances(record, [*record.instances, *new], text)
        self.canvas.set_selected(-1)
        self.select(new[-1:])
        return len(new)

    # ----- delete, relabel, review -----
    def delete_selected(self) -> None:
        record = self.record
        if record is None:
            return
        if self.selection:
            gone = {id(i) for i in self.selection}
            self.push_instances(record, [i for i in record.instances if id(i) not in gone], "Delete")
            self.select([])
            return
        index = self.canvas.selected_index
        if 0 <= index < len(self.window.shown):  # a prediction: reject it for this session
            crop = self.window.prediction.masks[self.window.shown[index]]
            rejected = self.project.rejected.setdefault(self.index, [])
            self.undo_stack.push(RejectPredictions(rejected, [crop], record, self._notify))
            self.canvas.set_selected(-1)

    def set_category(self, category_id: int) -> None:
        """Digit keys / the class list: relabel the selection, or accept the selected prediction as this
        class, and draw with this class from now on."""
        self.choose_category(category_id)
        record = self.record
        if record is None:
            return
        if self.selection:
            changed = {id(i): replace(i, category_id=category_id) for i in self.selection}
            name = self.category_name(category_id)
            self.push_instances(record, [changed.get(id(i), i) for i in record.instances], f"Relabel as {name}")
            self.select(list(changed.values()))
        elif 0 <= self.canvas.selected_index < len(self.window.shown):
            self.accept_predictions([self.window.shown[self.canvas.selected_index]], category_id, "Accept as class")

    def pick_class(self, number: int) -> None:
        """1..9: the class in that row of the class list."""
        categories = self.categories()
        if 1 <= number <= len(categories):
            self.set_category(categories[number - 1].id)
        else:
            self.message.emit(f"No class {number}: add classes in the Classes panel")

    def mark_reviewed(self) -> None:
        record = self.record
        if record is not None and record.state != "reviewed":
            self.undo_stack.push(SetImageState(record, "reviewed", self._notify))

    # ----- drawing -----
    def add_polygon(self, points: list[tuple[float, float]]) -> Instance | None:
        record = self.record
        if record is None or len(points) < 3:
            return None
        with self.macro("Draw polygon"):
            cid = self.ensure_category()
            flat = [round(float(v), 2) for point in points for v in point]
            instance = Instance(cid, [flat], origin="manual")
            self.push_instances(record, [*record.instances, instance], "Draw polygon")
        self.select([instance])
        return instance

    def set_polygons(self, instance: Instance, polygons: list[list[float]], text: str = "Edit polygon") -> None:
        record = self.record
        if record is None:
            return
        edited = replace(instance, mask=[list(p) for p in polygons], box=None, score=None)
        self.push_instances(record, [edited if i is instance else i for i in record.instances], text)
        self.select([edited])

    def commit_mask(self, target: Instance | None, mask: np.ndarray, text: str) -> Instance | None:
        """A painted (H,W) mask: a new instance (no target), the target repainted, or deleted when empty."""
        record = self.record
        if record is None:
            return None
        crop = crop_of(mask)
        if target is None and not crop.mask.size:
            return None
        with self.macro(text):
            if not crop.mask.size:
                self.push_instances(record, [i for i in record.instances if i is not target], text)
                self.select([])
                return None
            cid = target.category_id if target is not None else self.ensure_category()
            new = self._instance_from_crop(crop, record, cid, target)
            if target is None:
                self.push_instances(record, [*record.instances, new], text)
            else:
                self.push_instances(record, [new if i is target else i for i in record.instances], text)
        self.select([new])
        return new

    def box_drawn(self, box: tuple[float, float, float, float]) -> None:
        """A box from the box tool: the model's mask for it (worker thread), else the rectangle."""
        record = self.record
        if record is None:
            return
        client = self.window.inference
        if self.box_uses_model and client.model is not None and self.window.image is not None:
            category_id = self.ensure_category()
            label = self.model_label(self.category_name(category_id))
            threshold = self.window.thresholds.settings().mask_threshold
            key = self.window.project.paths[self.index]
            request = client.mask_from_box(key, self.window.image, box, label, threshold)
            self.pending_boxes[request] = (record, category_id, box)
            self.message.emit("Box: asking the model for its mask…")
            return
        self.commit_mask(None, rectangle_mask(box, record.height, record.width), "Draw box")

    def model_label(self, category_name: str) -> int:
        """The model's label for a class name (1 when the model does not know the class)."""
        names = self.window.class_names
        return names.index(category_name) + 1 if category_name in names else 1

    def on_box_mask(self, request_id: int, crop: InstanceMask | None, error: str) -> None:
        record, cid, box = self.pending_boxes.pop(request_id, (None, None, None))
        if record is None:
            return
        if crop is None or not crop.mask.any():
            self.message.emit(f"{error or 'The model found no mask in the box'}: the rectangle is used")
            crop = crop_of(rectangle_mask(box, record.height, record.width))
        new = self._instance_from_crop(crop, record, cid, None)
        self.push_instances(record, [*record.instances, new], "Draw box")
        if record is self.record:
            self.select([new])

    # ----- split and merge -----
    def split_selected(self) -> None:
        if len(self.selection) != 1:
            self.message.emit("Select one mask to split into its connected parts")
            return
        target = self.selection[0]
        crop = self.crop_of(target)
        self._replace_with_parts(target, crop, split_parts(crop.mask), "Split into parts")

    def split_by_line(self, points: list[tuple[float, float]]) -> None:
        target = self.selection[0] if len(self.selection) == 1 else None
        if target is None:
            middle = np.mean(np.asarray(points, float), axis=0)
            target = self.annotation_at(*middle)
        if target is None:
            self.message.emit("Draw the line across a mask (or select the mask first)")
            return
        crop = self.crop_of(target)
        local = [(x - crop.x0, y - crop.y0) for x, y in points]
        self._replace_with_parts(target, crop, cut_along_line(crop.mask, local), "Split along line")

    def _replace_with_parts(self, target: Instance, crop: InstanceMask, parts: list, text: str) -> None:
        record = self.record
        if len(parts) < 2:
            self.message.emit("Nothing to split: the mask is in one piece there")
            return
        new = [
            self._instance_from_crop(InstanceMask(crop.x0, crop.y0, part), record, target.category_id, None)
            for part in parts
        ]
        at = next(k for k, i in enumerate(record.instances) if i is target)
        self.push_instances(record, [*record.instances[:at], *new, *record.instances[at + 1 :]], text)
        self.select(new)
        self.message.emit(f"{text}: {len(new)} masks")

    def merge_selected(self) -> None:
        record = self.record
        if record is None or len(self.selection) < 2:
            self.message.emit("Select two or more masks (Ctrl+click) to merge them")
            return
        crops = [self.crop_of(i) for i in self.selection]
        x0, y0 = min(c.x0 for c in crops), min(c.y0 for c in crops)
        x1 = max(c.x0 + c.mask.shape[1] for c in crops)
        y1 = max(c.y0 + c.mask.shape[0] for c in crops)
        union = np.zeros((y1 - y0, x1 - x0), dtype=bool)
        for c in crops:
            union[c.y0 - y0 : c.y0 - y0 + c.mask.shape[0], c.x0 - x0 : c.x0 - x0 + c.mask.shape[1]] |= c.mask
        first = self.selection[0]
        merged = self._instance_from_crop(InstanceMask(x0, y0, union), record, first.category_id, first)
        gone = {id(i) for i in self.selection[1:]}
        instances = [merged if i is first else i for i in record.instances if id(i) not in gone]
        self.push_instances(record, instances, f"Merge {len(crops)} masks")
        self.select([merged])

    @staticmethod
    def _instance_from_crop(crop: InstanceMask, record: ImageRecord, cid: int, old: Instance | None) -> Instance:
        rle = crop_to_rle(crop, record.height, record.width)
        if old is None:
            return Instance(cid, rle, origin="manual")
        return Instance(cid, rle, origin="manual", iscrowd=old.iscrowd, id=old.id)
