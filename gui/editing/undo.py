"""Undoable edits of the plain-Python annotation model (engine.data): QUndoCommand subclasses.

Rules that keep undo exact and saving safe:
- an ``Instance`` is frozen and never changed in place: an edit builds new instances (the pure
  functions of gui/editing/edits.py) and swaps the image's instance list, so undo puts the old list
  (the same objects) back, and a snapshot taken for the autosave thread never sees a half-made edit;
- an edit of an image's instances never changes the image's state: "reviewed" means a person said so
  (Ctrl+Return, ``SetImageState``); an edited image shows "annotated" (gui/session/project.py);
- each command tells the ``notify`` callback which image (or None: categories) it touched.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from PySide6.QtGui import QUndoCommand

from engine.data import Category, Dataset, ImageRecord, Instance

Notify = Callable[[ImageRecord | None], None]


class SetInstances(QUndoCommand):
    """Replace an image's instance list (add, delete, repaint, relabel, split, merge, accept are all this:
    gui/editing/edits.py makes the new list). The record gets a new list object each time, so a list once
    handed out (to a snapshot, a loop) never changes under its holder."""

    def __init__(self, record: ImageRecord, instances: Sequence[Instance], text: str, notify: Notify) -> None:
        super().__init__(text)
        self.record, self.notify = record, notify
        self.before = tuple(record.instances)
        self.after = tuple(instances)

    def redo(self) -> None:
        self.record.instances = list(self.after)
        self.notify(self.record)

    def undo(self) -> None:
        self.record.instances = list(self.before)
        self.notify(self.record)


class SetImageState(QUndoCommand):
    """Set an image's state (Ctrl+Return: "reviewed", or back from it)."""

    def __init__(self, record: ImageRecord, state: str, notify: Notify, text: str = "") -> None:
        super().__init__(text or f"Mark image {state}")
        self.record, self.state, self.notify = record, state, notify
        self.state_before = record.state

    def redo(self) -> None:
        self.record.state = self.state
        self.notify(self.record)

    def undo(self) -> None:
        self.record.state = self.state_before
        self.notify(self.record)


class AddCategory(QUndoCommand):
    def __init__(self, dataset: Dataset, name: str, notify: Notify, color: tuple[int, int, int] | None = None) -> None:
        super().__init__(f"Add class {name}")
        self.dataset, self.notify = dataset, notify
        self.category = Category(max((c.id for c in dataset.categories), default=0) + 1, name, color)

    def redo(self) -> None:
        self.dataset.categories.append(self.category)
        self.notify(None)

    def undo(self) -> None:
        self.dataset.categories.remove(self.category)
        self.notify(None)


class EditCategory(QUndoCommand):
    """Rename and/or recolour a class (categories are small and copied for each save snapshot)."""

    def __init__(self, category: Category, name: str, color: tuple[int, int, int], notify: Notify) -> None:
        super().__init__(f"Rename class {category.name}" if name != category.name else f"Recolour {name}")
        self.category, self.notify = category, notify
        self.before = (category.name, category.color)
        self.after = (name, tuple(int(c) for c in color))

    def redo(self) -> None:
        self.category.name, self.category.color = self.after
        self.notify(None)

    def undo(self) -> None:
        self.category.name, self.category.color = self.before
        self.notify(None)


class DeleteCategory(QUndoCommand):
    """Remove a class, and swap the instance lists of the images that held its instances (removed or moved
    to another class: gui/editing/edits.py ``delete_category``); undo puts the class back in its place and
    the old lists (the same objects) back."""

    def __init__(
        self,
        dataset: Dataset,
        category: Category,
        changes: Sequence[tuple[ImageRecord, Sequence[Instance]]],
        text: str,
        notify: Notify,
    ) -> None:
        super().__init__(text)
        self.dataset, self.category, self.notify = dataset, category, notify
        self.position = dataset.categories.index(category)
        self.changes = [(record, tuple(record.instances), tuple(after)) for record, after in changes]

    def redo(self) -> None:
        self.dataset.categories.remove(self.category)
        for record, _before, after in self.changes:
            record.instances = list(after)
            self.notify(record)
        self.notify(None)

    def undo(self) -> None:
        self.dataset.categories.insert(self.position, self.category)
        for record, before, _after in self.changes:
            record.instances = list(before)
            self.notify(record)
        self.notify(None)


class RejectPredictions(QUndoCommand):
    """Hide predictions (as crops) of one image (saved with the folder by gui/window/rejection_saver.py; the
    image's state is left as it is)."""

    def __init__(self, rejected: list, crops: Sequence, record: ImageRecord, notify: Notify) -> None:
        super().__init__(f"Reject {len(crops)} prediction(s)")
        self.rejected, self.crops, self.record, self.notify = rejected, list(crops), record, notify

    def redo(self) -> None:
        self.rejected.extend(self.crops)
        self.notify(self.record)

    def undo(self) -> None:
        del self.rejected[len(self.rejected) - len(self.crops) :]
        self.notify(self.record)
